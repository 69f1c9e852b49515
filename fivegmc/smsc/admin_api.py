"""The SMSC stub's admin routes on the admin HTTP server:

- ``POST /admin/v1/smsc/mo`` JSON ``{"from", "to", "text", "system_id"?}``: inject an MO SMS,
  sent as deliver_sm (segmented, GSM 7-bit or UCS-2) to bound receivers → 202
  ``{"segments": n}``;
- ``GET /admin/v1/smsc/messages[?to=…][&from=…][&limit=…]``: MT messages as the handset sees
  them (reassembled, decoded), newest first, with SMSC message ids, state and receipt outcome.

Errors are JSON ``{"error": "..."}`` with a 4xx status.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from .core import ANY_SYSTEM
from .server import SmscNode


class MoRequest(msgspec.Struct, forbid_unknown_fields=True, rename={"source": "from"}):
    source: str
    to: str
    text: str
    system_id: str = ANY_SYSTEM


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


def _address_ok(addr: str) -> bool:
    return 0 < len(addr) <= 20 and addr.isascii() and addr.isprintable()


def add_routes(app: web.Application, smsc: SmscNode) -> None:
    async def mo(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            req = msgspec.json.decode(raw, type=MoRequest)
        except msgspec.ValidationError as exc:
            return _error(400, f"invalid MO request: {exc}")
        except msgspec.DecodeError as exc:
            return _error(400, f"invalid JSON: {exc}")
        if not _address_ok(req.source) or not _address_ok(req.to):
            return _error(400, "from and to must be 1-20 printable ASCII characters")
        if req.system_id != ANY_SYSTEM and req.system_id not in smsc.core.accounts:
            return _error(404, f"no SMPP account {req.system_id!r}")
        try:
            segments = smsc.inject_mo(req.source, req.to, req.text, req.system_id)
        except ValueError as exc:
            return _error(413, str(exc))
        return web.json_response({"segments": segments, "queued": smsc.core.queued()},
                                 status=202)

    async def messages(request: web.Request) -> web.Response:
        query = request.query
        try:
            limit = int(query["limit"]) if "limit" in query else None
        except ValueError:
            return _error(400, "limit must be an integer")
        out = smsc.core.inbox_json(to=query.get("to"), source=query.get("from"), limit=limit)
        return web.json_response({"count": len(out), "messages": out})

    app.router.add_post("/admin/v1/smsc/mo", mo)
    app.router.add_get("/admin/v1/smsc/messages", messages)
