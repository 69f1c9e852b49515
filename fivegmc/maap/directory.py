"""The chatbot directory a UE client searches (issue 4 item 8): the chatbots' public profile
(name, description, category, SIP URI, SMS port) and nothing else — no credentials, webhooks
or dialect.

- ``GET {root}/directory/v1/chatbots?q=&category=&limit=``: search, case-insensitive, ``q``
  in the id, name, description or URI; ``category`` exact (case-insensitive).
- ``GET {root}/directory/v1/chatbots/{id}``: one chatbot by id (or by its SIP URI).

Errors are JSON ``{"error": "..."}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..config import ChatbotConfig

Bots = Callable[[], tuple[ChatbotConfig, ...]]

MAX_LIMIT = 1000
_MAX_QUERY = 200


def entry(bot: ChatbotConfig) -> dict[str, str]:
    """A chatbot's public directory entry."""
    return {"id": bot.id, "name": bot.name, "description": bot.description,
            "category": bot.category, "uri": bot.uri, "sms_port": bot.sms_port}


def search(bots: tuple[ChatbotConfig, ...], q: str = "", category: str = "",
           limit: int = MAX_LIMIT) -> list[ChatbotConfig]:
    """The chatbots matching ``q`` (substring of id/name/description/uri) and ``category``."""
    needle, cat = q.strip().casefold(), category.strip().casefold()
    found = []
    for bot in bots:
        if cat and bot.category.casefold() != cat:
            continue
        if needle and not any(needle in s.casefold()
                              for s in (bot.id, bot.name, bot.description, bot.uri)):
            continue
        found.append(bot)
        if len(found) >= limit:
            break
    return found


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


def directory_routes(bots: Bots, root: str = "") -> list[web.RouteDef]:
    base = f"{root.rstrip('/')}/directory/v1/chatbots"

    async def list_bots(request: web.Request) -> web.Response:
        q = request.query.get("q", "")
        category = request.query.get("category", "")
        if len(q) > _MAX_QUERY or len(category) > _MAX_QUERY:
            return _error(400, f"q and category are at most {_MAX_QUERY} characters")
        raw = request.query.get("limit", str(MAX_LIMIT))
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            return _error(400, f"limit must be an integer 1-{MAX_LIMIT}, got {raw[:20]!r}")
        found = search(bots(), q, category, int(raw))
        return web.json_response({"count": len(found), "chatbots": [entry(b) for b in found]})

    async def one_bot(request: web.Request) -> web.Response:
        key = request.match_info["id"]
        for bot in bots():
            if bot.id == key or bot.uri.casefold() == key.casefold():
                return web.json_response(entry(bot))
        return _error(404, f"no chatbot {key[:100]!r}")

    return [web.get(base, list_bots, allow_head=False),
            web.get(base + "/{id}", one_bot, allow_head=False)]


def openapi_part(root: str = "") -> dict[str, Any]:
    """The directory's part of the OpenAPI document."""
    base = f"{root.rstrip('/')}/directory/v1/chatbots"
    err = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {
        "paths": {
            base: {"get": {
                "operationId": "searchChatbots", "tags": ["directory"],
                "summary": "Search the chatbot directory",
                "parameters": [
                    {"name": "q", "in": "query", "required": False,
                     "description": "Substring of the id, name, description or URI "
                                    "(case-insensitive)",
                     "schema": {"type": "string", "maxLength": _MAX_QUERY}},
                    {"name": "category", "in": "query", "required": False,
                     "schema": {"type": "string", "maxLength": _MAX_QUERY}},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
                ],
                "responses": {
                    "200": {"description": "Matching chatbots", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/ChatbotList"}}}},
                    "400": {"description": "Bad query parameter", **err},
                },
            }},
            base + "/{id}": {"get": {
                "operationId": "getChatbot", "tags": ["directory"],
                "summary": "One chatbot's directory entry (by id or SIP URI)",
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "The chatbot", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/ChatbotEntry"}}}},
                    "404": {"description": "No such chatbot", **err},
                },
            }},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"],
                      "properties": {"error": {"type": "string"}}},
            "ChatbotEntry": {
                "type": "object",
                "required": ["id", "name", "description", "category", "uri", "sms_port"],
                "properties": {k: {"type": "string"} for k in
                               ("id", "name", "description", "category", "uri", "sms_port")},
            },
            "ChatbotList": {
                "type": "object", "required": ["count", "chatbots"],
                "properties": {
                    "count": {"type": "integer", "minimum": 0},
                    "chatbots": {"type": "array",
                                 "items": {"$ref": "#/components/schemas/ChatbotEntry"}},
                },
            },
        }},
    }
