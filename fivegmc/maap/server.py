"""The MaaP network element (:class:`MaapNode`): the aiohttp app with the three northbound
dialects, the file route, the chatbot directory and ``/openapi.json``; the core and its SIP
link to the 5GMC; the durable webhook queue; and admin routes on the node's admin app.

Lifecycle (driven by ``fivegmc.node.Node``): construct → ``add_admin_routes(admin_app)`` →
``await start()`` (stores opened, HTTP and SIP listening) → ``run(center)`` in the node's
TaskGroup until cancelled → ``await close()``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from ..config import ChatbotConfig, Profile
from ..http import HttpClient
from .api import Dialect, MaapApi
from .cmcc import CmccDialect
from .core import MaapCore
from .ctcu import CtcuDialect
from .directory import directory_routes
from .directory import openapi_part as directory_openapi
from .fallback import CdrSink, NoteEvent, SmsFallbackService
from .files import FileStore, file_routes
from .files import openapi_part as files_openapi
from .gsma import GsmaDialect
from .model import Event, FileStatusEvent, Notification
from .openapi import build_openapi, openapi_routes
from .sip_link import SipLink
from .state import MessageStates
from .tokens import TokenBook
from .webhooks import WebhookQueue


def load_dialects(api: MaapApi) -> dict[str, Dialect]:
    """One instance of each dialect, by ``ChatbotConfig.dialect`` name."""
    dialects: tuple[Dialect, ...] = (CtcuDialect(api), CmccDialect(api), GsmaDialect(api))
    return {d.name: d for d in dialects}


@web.middleware
async def _body_limit(request: web.Request, handler: Any) -> web.StreamResponse:
    """A body over ``maap.max_body_bytes`` is 413 with a JSON reason, whichever route."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPRequestEntityTooLarge as exc:
        return web.json_response({"error": "request body too large",
                                  "reason": {"text": exc.text or "request body too large"}},
                                 status=413)


class MaapNode:
    def __init__(self, profile: Profile, log: Any, registry: Any = None, *,
                 note_event: NoteEvent | None = None, cdrs: CdrSink | None = None) -> None:
        self.profile = profile
        self.log = log
        cfg = self.config = profile.maap
        data = Path(cfg.data_dir).expanduser()
        data.mkdir(parents=True, exist_ok=True)
        self.link = SipLink(on_request=self._on_sip_request, log=log,
                            timeout_s=64 * profile.sip.t1_ms / 1000,
                            max_size=profile.sip.max_message_size)
        self.states = MessageStates(str(data / "messages.db"),
                                    max_cached=cfg.max_cached_messages)
        self.tokens = TokenBook(cfg.token_ttl_s)
        self.files = FileStore(data / "files", cfg.public_url or "", cfg.max_file_bytes,
                               cfg.file_ttl_s, root=cfg.server_root,
                               on_expired=self._file_expired)
        self.webhooks = WebhookQueue(data / "webhooks.db", HttpClient,
                                     retry_initial_s=cfg.webhook_retry_initial_s,
                                     retry_max_s=cfg.webhook_retry_max_s,
                                     timeout_s=cfg.webhook_timeout_s, log=log)
        self.core = MaapCore(profile, link=self.link, states=self.states, tokens=self.tokens,
                             files=self.files, enqueue=self.webhooks.enqueue,
                             render=self._render, log=log)
        self.core.pending_events = self.webhooks.pending
        self.dialects = load_dialects(self.core)
        # SMS fallback and MO SMS (issue 5): the MaaP's own ESME bind, fallback.py
        self.sms: SmsFallbackService | None = None
        if cfg.sms.enabled:
            self.sms = SmsFallbackService(self.core, cfg.sms, str(data / "fallback.db"),
                                          note_event=note_event, cdrs=cdrs, log=log)
            self.core.sms_fallback = self.sms.hook
        self.app = web.Application(client_max_size=cfg.max_body_bytes,
                                   middlewares=[_body_limit])
        for dialect in self.dialects.values():
            dialect.add_routes(self.app)
        self.app.add_routes(file_routes(self.files))
        self.app.add_routes(directory_routes(self.core.bots, cfg.server_root))
        self.app.add_routes(openapi_routes(self.openapi))
        self._runner: web.AppRunner | None = None
        self.http_address: tuple[str, int] = (cfg.host, cfg.port)

    # -- wiring ----------------------------------------------------------------------------
    def _on_sip_request(self, req: Any) -> Any:
        return self.core.handle_request(req)

    def _render(self, bot: ChatbotConfig, event: Event) -> Notification | None:
        dialect = self.dialects.get(bot.dialect)
        return None if dialect is None else dialect.render(bot, event)

    async def _file_expired(self, event: FileStatusEvent) -> None:
        bot = self.core.bot(event.bot_id)
        note = self._render(bot, event) if bot is not None else None
        if note is not None:
            await self.webhooks.enqueue(event.bot_id, note)

    def openapi(self) -> dict[str, Any]:
        root = self.config.server_root
        parts = [d.openapi() for d in self.dialects.values()]
        parts += [files_openapi(self.files), directory_openapi(root)]
        return build_openapi(parts)

    @property
    def chatbot_domains(self) -> list[str]:
        """The domains of the chatbot URIs (the 5GMC routes them to this MaaP)."""
        domains: dict[str, None] = {}
        for bot in self.config.chatbots:
            host = bot.uri.split("@", 1)[-1].split(";", 1)[0].split(">", 1)[0]
            domains[host.split(":", 1)[0].lower()] = None
        return list(domains)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> list[str]:
        cfg = self.config
        await self.states.open()
        await self.webhooks.open()
        if self.sms is not None:
            await self.sms.open()  # after the states: its jobs report into them
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            sock = sockets[0].getsockname()
            self.http_address = (str(sock[0]), int(sock[1]))
        host, port = self.http_address
        if not cfg.public_url:
            self.files.public_base = f"http://{host}:{port}"
        sip_host, sip_port = await self.link.listen(cfg.sip_host, cfg.sip_port)
        return [f"maap/http {host}:{port}", f"maap/sip {sip_host}:{sip_port}"]

    async def run(self, center: tuple[str, int], smsc: tuple[str, int] | None = None) -> None:
        """Run until cancelled: the SIP link to ``center``, the core's workers, the state
        flusher, the webhook queue, the file sweeper and (with ``smsc``) the SMS fallback's
        bind to that SMSC."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.link.run(center))
            tg.create_task(self.core.run())
            tg.create_task(self.states.run())
            tg.create_task(self.webhooks.run())
            tg.create_task(self.files.run())
            if self.sms is not None and smsc is not None:
                tg.create_task(self.sms.run(smsc))

    async def close(self) -> None:
        await self.core.close()
        await self.link.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.sms is not None:
            await self.sms.close()
        await self.webhooks.close()
        await self.states.close()

    # -- admin -----------------------------------------------------------------------------
    def add_admin_routes(self, app: web.Application) -> None:
        app.router.add_get("/admin/v1/chatbots", self._admin_bots, allow_head=False)
        app.router.add_get("/admin/v1/chatbots/{id}/events", self._admin_events,
                           allow_head=False)
        app.router.add_get("/admin/v1/chatbots/{id}/messages/{msgId}", self._admin_message,
                           allow_head=False)

    async def _admin_bots(self, request: web.Request) -> web.Response:
        bots = [{"id": b.id, "uri": b.uri, "dialect": b.dialect, "name": b.name,
                 "webhook": b.webhook, "rate_limit_per_s": b.rate_limit_per_s,
                 "traffic_types": list(b.traffic_types),
                 "served": b.dialect in self.dialects,
                 "pending_events": self.webhooks.pending(b.id)}
                for b in self.core.bots()]
        return web.json_response({"chatbots": bots})

    async def _admin_events(self, request: web.Request) -> web.Response:
        bot_id = request.match_info["id"]
        if self.core.bot(bot_id) is None:
            return web.json_response({"error": f"no chatbot {bot_id[:100]!r}"}, status=404)
        raw = request.query.get("limit", "100")
        state = request.query.get("state") or None
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 10000:
            return web.json_response({"error": "limit must be an integer 1-10000"}, status=400)
        if state not in (None, "queued", "retrying", "delivered"):
            return web.json_response({"error": "state must be queued, retrying or delivered"},
                                     status=400)
        events = await self.webhooks.events(bot_id, int(raw), state)  # type: ignore[arg-type]
        return web.json_response({"chatbot": bot_id, "pending": self.webhooks.pending(bot_id),
                                  "events": events})

    async def _admin_message(self, request: web.Request) -> web.Response:
        bot_id, message_id = request.match_info["id"], request.match_info["msgId"]
        record = self.core.record(bot_id, message_id)
        if record is None:
            return web.json_response({"error": f"no message {message_id[:100]!r} of chatbot "
                                               f"{bot_id[:100]!r}"}, status=404)
        return web.json_response({
            "chatbot": bot_id, "message_id": message_id, "created_at": record.created_at,
            "client_correlator": record.client_correlator,
            "conversation_id": record.conversation_id,
            "contribution_id": record.contribution_id,
            "recipients": [{"number": r.number, "status": r.status.value,
                            "failure": int(r.failure) if r.failure is not None else None,
                            "failure_name": r.failure.name if r.failure is not None else None,
                            "updated_at": r.updated_at} for r in record.recipients],
        })
