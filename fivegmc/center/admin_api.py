"""The 5GMC's admin read API on the admin HTTP server (``/admin/v1/…``):

- ``GET /admin/v1/registrations`` and ``/admin/v1/registrations/{number}``: bindings and the
  capabilities (feature tags) each UE registered;
- ``GET /admin/v1/capabilities/{number}``: the capability answer the node gives for a number
  (protocols.md §4 semantics), for tools and the MaaP capability API;
- ``GET /admin/v1/messages/{id}``: a message's state and its trace — stored ones (received,
  stored, delivery attempts, delivered, expired, revoked, IMDN sent/seen …) from the store,
  relayed ones (received, relayed, delivered/failed, IMDN seen) from the recent-trace ring;
  ``{id}`` is the node's trace id or the CPIM ``imdn.Message-ID``.

Errors are JSON ``{"error": "..."}`` with a 4xx status.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..core.capability import capability_answer
from ..core.registrar import Binding
from ..store.protocol import Store, StoreError
from .node import SipNode


def _binding_json(b: Binding, now: float) -> dict[str, Any]:
    return {
        "contact": str(b.contact.uri),
        "expires_in": b.remaining(now),
        "q": b.q,
        "flow": {"transport": b.flow.transport, "host": b.flow.host, "port": b.flow.port},
        "feature_tags": {name: value for name, value in b.feature_tags},
        "instance": b.instance,
    }


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


def add_routes(app: web.Application, sip: SipNode, store: Store) -> None:
    async def registrations(request: web.Request) -> web.Response:
        now = sip.now()
        out = []
        for aor in sorted(sip.registrar.all_aors()):
            bindings = sip.registrar.lookup(aor, now)
            if bindings:
                out.append({"aor": aor, "bindings": [_binding_json(b, now) for b in bindings]})
        return web.json_response({"count": len(out), "registrations": out})

    async def registration(request: web.Request) -> web.Response:
        number = request.match_info["number"]
        now = sip.now()
        bindings = sip.registrar.lookup(number, now)
        if not bindings:
            return _error(404, f"{number} has no registration")
        return web.json_response({"aor": number,
                                  "bindings": [_binding_json(b, now) for b in bindings]})

    async def capabilities(request: web.Request) -> web.Response:
        number = request.match_info["number"]
        kind = sip.directory.kind(number)
        bindings = sip.registrar.lookup(number, sip.now())
        answer = capability_answer(kind, bindings)
        return web.json_response({
            "number": number,
            "subscriber": kind.value,
            "registered": bool(bindings),
            "rcs": answer.status == 200 and bool(answer.tags),
            "sip_status": answer.status,  # what an OPTIONS query is answered with
            "feature_tags": {name: value for name, value in answer.tags},
        })

    async def message(request: web.Request) -> web.Response:
        key = request.match_info["id"]  # a trace id, or a CPIM imdn.Message-ID
        msg_id = sip.traces.resolve(key) or key
        relayed = sip.traces.get(msg_id)
        if relayed is not None:
            return web.json_response({
                "id": relayed.id, "state": relayed.state, "recipient": relayed.recipient,
                "sender": relayed.sender, "imdn_message_id": relayed.imdn_message_id,
                "content_type": relayed.content_type, "body_size": relayed.body_size,
                "stored": False,
                "trace": [{"at": _iso(e.at), "event": e.event, "detail": e.detail}
                          for e in relayed.events],
            })
        try:
            msg = await store.get_message(msg_id)
            trace = await store.trace(msg_id)
        except StoreError as exc:
            return _error(503, f"message store unavailable: {exc}")
        if msg is None:
            external = sip.traces.external(key)
            if external is None:
                return _error(404, f"no message {msg_id}")
            return web.json_response({
                "id": key, "state": external[-1].event, "stored": False, "relayed": False,
                "trace": [{"at": _iso(e.at), "event": e.event, "detail": e.detail}
                          for e in external],
            })
        return web.json_response({
            "id": msg.id, "state": msg.state.value, "recipient": msg.recipient,
            "sender": msg.sender,
            "imdn_message_id": (msg.imdn_message_id or "").split("#", 1)[0] or None,
            "content_type": msg.content_type, "body_size": len(msg.body),
            "received_at": _iso(msg.received_at), "expires_at": _iso(msg.expires_at),
            "attempts": msg.attempts, "stored": True,
            "trace": [{"at": _iso(e.at), "event": e.event, "detail": e.detail}
                      for e in trace],
        })

    app.router.add_get("/admin/v1/registrations", registrations)
    app.router.add_get("/admin/v1/registrations/{number}", registration)
    app.router.add_get("/admin/v1/capabilities/{number}", capabilities)
    async def message_event(request: web.Request) -> web.Response:
        """Add a step taken outside this process (a MaaP running apart: revoke, SMS fallback)
        to a message's trace: JSON ``{"event": "...", "detail": "..."}``."""
        try:
            doc = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _error(400, "body is not JSON")
        event = doc.get("event") if isinstance(doc, dict) else None
        detail = doc.get("detail", "") if isinstance(doc, dict) else None
        if not isinstance(event, str) or not 0 < len(event) <= 64 or not isinstance(
                detail, str) or len(detail) > 1000:
            return _error(400, "expected {\"event\": 1-64 characters, \"detail\": "
                               "at most 1000 characters}")
        sip.note_event(request.match_info["id"], event, detail)
        return web.Response(status=204)

    app.router.add_get("/admin/v1/messages/{id}", message)
    app.router.add_post("/admin/v1/messages/{id}/events", message_event)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
