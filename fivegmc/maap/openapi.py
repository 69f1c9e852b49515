"""The MaaP's OpenAPI 3.0.3 document (issue 4 item 10), served at ``GET /openapi.json``.

:func:`build_openapi` merges the parts each piece of the node contributes (the dialects'
``Dialect.openapi()``, ``files.openapi_part``, ``directory.openapi_part``) and adds the
``/openapi.json`` operation itself. Two parts documenting the same operation, or the same
component name differently, are an error: the document is built once, at start-up.

:func:`app_operations` and :func:`doc_operations` list ``(METHOD, /path/{param})`` pairs of an
aiohttp app and of a document, so a test can keep the two in sync.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

OPENAPI_PATH = "/openapi.json"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_COMPONENT_SECTIONS = ("schemas", "responses", "parameters", "examples", "requestBodies",
                       "headers", "securitySchemes", "links", "callbacks")


def own_part() -> dict[str, Any]:
    """The ``/openapi.json`` operation."""
    return {"paths": {OPENAPI_PATH: {"get": {
        "operationId": "getOpenApi", "tags": ["meta"],
        "summary": "This OpenAPI document",
        "responses": {"200": {"description": "The OpenAPI 3.0.3 document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    }}}}


def build_openapi(parts: Iterable[dict[str, Any]], *, title: str = "fivegmc MaaP",
                  version: str = "1.0.0", description: str = "") -> dict[str, Any]:
    """One OpenAPI 3.0.3 document from ``parts`` (each ``{"paths": …, "components": …}``)."""
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, dict[str, Any]] = {}
    tags: dict[str, None] = {}
    for part in [*parts, own_part()]:
        unknown = set(part) - {"paths", "components", "tags"}
        if unknown:
            raise ValueError(f"an OpenAPI part may only hold paths and components, "
                             f"not {sorted(unknown)}")
        for path, item in part.get("paths", {}).items():
            if not path.startswith("/"):
                raise ValueError(f"OpenAPI path must start with '/': {path!r}")
            merged = paths.setdefault(path, {})
            for key, value in item.items():
                if key in merged and merged[key] != value:
                    what = f"{key.upper()} {path}" if key in METHODS else f"{path} {key}"
                    raise ValueError(f"{what} is documented twice")
                merged[key] = copy.deepcopy(value)
                if key in METHODS:
                    for tag in value.get("tags", ()):
                        tags[tag] = None
        for section, entries in part.get("components", {}).items():
            if section not in _COMPONENT_SECTIONS:
                raise ValueError(f"unknown OpenAPI components section {section!r}")
            merged_section = components.setdefault(section, {})
            for name, value in entries.items():
                if name in merged_section and merged_section[name] != value:
                    raise ValueError(f"components.{section}.{name} is defined twice, "
                                     f"differently")
                merged_section[name] = copy.deepcopy(value)
        for tag in part.get("tags", ()):
            tags[tag["name"] if isinstance(tag, dict) else str(tag)] = None
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version,
                 "description": description or
                 "Chatbot APIs of the fivegmc MaaP: GSMA MaaP (bot/v1 + OAuth2), "
                 "China Telecom/Unicom JSON, China Mobile OMA NetAPI XML; files; directory."},
        "paths": dict(sorted(paths.items())),
        "tags": [{"name": t} for t in sorted(tags)],
    }
    if components:
        doc["components"] = {k: dict(sorted(v.items())) for k, v in sorted(components.items())}
    return doc


def openapi_routes(doc: dict[str, Any] | Callable[[], dict[str, Any]]) -> list[web.RouteDef]:
    """``GET /openapi.json`` serving ``doc`` (or what ``doc()`` returns, built once)."""
    cache: list[dict[str, Any]] = []

    async def serve(request: web.Request) -> web.Response:
        if not cache:
            cache.append(doc() if callable(doc) else doc)
        return web.json_response(cache[0])

    return [web.get(OPENAPI_PATH, serve, allow_head=False)]


def app_operations(app: web.Application) -> set[tuple[str, str]]:
    """``(METHOD, path template)`` of every route in ``app`` (HEAD routes aiohttp adds beside
    a GET count only when the document has HEAD for that path: compare with
    :func:`doc_operations` after dropping them)."""
    ops: set[tuple[str, str]] = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None:
            continue
        ops.add((route.method.upper(), resource.canonical))
    return ops


def doc_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc.get("paths", {}).items()
            for method in item if method in METHODS}


def out_of_sync(app: web.Application, doc: dict[str, Any]) -> tuple[set[tuple[str, str]],
                                                                      set[tuple[str, str]]]:
    """(routes the document lacks, documented operations the app lacks). aiohttp's implicit
    HEAD beside a GET is not required in the document."""
    routes, documented = app_operations(app), doc_operations(doc)
    implicit_head = {("HEAD", p) for m, p in routes if m == "GET"}
    return (routes - documented - (implicit_head - documented)), documented - routes
