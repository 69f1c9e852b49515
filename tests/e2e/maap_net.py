"""The shared MaaP end-to-end fixture: one Node (5GMC + MaaP) on 127.0.0.1 with ephemeral ports
and short timers, a test CSP server every lab chatbot's webhook points at, and registered test
UEs speaking SIP over TCP.

    async with maap_network() as net:
        ue = await net.ue("+8613800000001")
        ...  # call net.base (the MaaP HTTP API) with net.http, then
        req, cpim = await ue.next_message()
        await net.csp.wait(lambda r: r.path.startswith("/gsma/"))
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from fivegmc.config import load_profile
from fivegmc.cpim import CpimMessage, build_cpim, build_imdn_report_cpim, parse_cpim
from fivegmc.node import Node, running
from fivegmc.sip.message import Request, Response

from .conftest import FAST
from .ue import DOMAIN, RCS_TAGS, UE

#: Tags of a UE whose client supports chatbots (protocols.md §4).
BOT_TAGS = (RCS_TAGS + ';+g.3gpp.iari-ref="urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.chatbot"'
            ';+g.gsma.rcs.botversion="#=1,#=2"')

#: Short MaaP timers for tests (webhook retries in tenths of a second).
MAAP_FAST = ("maap.port=0", "maap.sip_port=0", "maap.webhook_retry_initial_s=0.05",
             "maap.webhook_retry_max_s=0.4", "maap.webhook_timeout_s=2.0")


@dataclass(frozen=True, slots=True)
class CspRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    at: float


class CspServer:
    """A CSP platform's webhook/notify receiver: records every request, answers 200 with
    ``{}`` unless told otherwise (``fail_next``, ``reply``)."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[CspRequest] = []
        self._failures: list[int] = []
        self._replies: list[tuple[str, int, bytes, str]] = []
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        #: answer notify-URL checks (GET …/notifyPath) as this appId; None: plain {} answer
        self.verify_app_id: str | None = None

    async def start(self) -> CspServer:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        host, port = sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self._failures:
            # A failed delivery is not recorded as received: the MaaP must try again.
            status = self._failures.pop(0)
            return web.json_response({"error": "test CSP failure"}, status=status)
        self.requests.append(CspRequest(request.method, request.path_qs,
                                        dict(request.headers), body, time.time()))
        self._changed.set()
        if self.verify_app_id is not None and request.path.endswith("/notifyPath"):
            # protocols.md §10: a CSP passes the notify-URL check by echoing echoStr and
            # giving its appId
            return web.Response(status=200, headers={
                "echoStr": request.headers.get("echoStr", ""), "appId": self.verify_app_id})
        for prefix, status, reply, content_type in self._replies:
            if request.path.startswith(prefix):
                return web.Response(status=status, body=reply, content_type=None,
                                    headers={"Content-Type": content_type})
        return web.json_response({})

    def fail_next(self, n: int, status: int = 500) -> None:
        """Answer the next ``n`` requests with ``status`` (they are not recorded)."""
        self._failures.extend([status] * n)

    def stop_failing(self) -> None:
        """Forget the failures still queued by :meth:`fail_next`."""
        self._failures.clear()

    def reply(self, path_prefix: str, status: int, body: bytes, content_type: str) -> None:
        """Answer requests whose path starts with ``path_prefix`` like this from now on."""
        self._replies.insert(0, (path_prefix, status, body, content_type))

    async def wait(self, pred: Callable[[CspRequest], bool] = lambda r: True, count: int = 1,
                   timeout: float = 5.0) -> list[CspRequest]:
        """The first ``count`` recorded requests matching ``pred`` (waits for them)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [r for r in self.requests if pred(r)]
            if len(found) >= count:
                return found[:count]
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"CSP got {len(found)} of {count} matching requests "
                                   f"(of {len(self.requests)} in all)")
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)


def _bot_addr(bot_uri: str) -> str:
    return bot_uri if bot_uri.startswith("sip:") else f"sip:{bot_uri}"


@dataclass
class BotUE(UE):
    """A test UE that talks to chatbots: CPIM MESSAGEs, IMDNs and typing notifications."""

    _cursor: int = field(default=0)

    async def next_message(self, timeout: float = 5.0) -> tuple[Request, CpimMessage]:
        """The next MESSAGE this UE received (in arrival order), with its CPIM parsed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while self._cursor < len(self.received):
                req = self.received[self._cursor]
                self._cursor += 1
                if req.method == "MESSAGE":
                    return req, parse_cpim(req.body)
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"{self.number}: no MESSAGE within {timeout} s")
            self.got_message.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self.got_message.wait(), left)

    def _cpim_request(self, bot_uri: str, body: bytes,
                      extra: list[tuple[str, str]] | None = None) -> Request:
        uri = _bot_addr(bot_uri)
        return self.build("MESSAGE", uri, f"<{uri}>", headers=[
            ("Content-Type", "message/cpim"),
            ("Accept-Contact",
             '*;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"'),
            *(extra or []),
        ], body=body)

    async def send_to_bot(self, bot_uri: str, content_type: str, body: bytes, *,
                          mid: str | None = None, conversation_id: str = "",
                          contribution_id: str = "") -> Response:
        cpim = build_cpim(
            from_=f"sip:{self.number}@{DOMAIN}", to=_bot_addr(bot_uri),
            content_type=content_type, content=body, message_id=mid or uuid.uuid4().hex,
            datetime=_now_iso(), disposition=("positive-delivery", "display"),
        )
        extra = []
        if conversation_id:
            extra.append(("Conversation-ID", conversation_id))
        if contribution_id:
            extra.append(("Contribution-ID", contribution_id))
        return await self.request(self._cpim_request(bot_uri, cpim, extra))

    async def imdn(self, bot_uri: str, message_id: str, status: str) -> Response:
        """A ``delivered`` or ``displayed`` IMDN about the chatbot's ``message_id``."""
        kind = "display" if status == "displayed" else "delivery"
        body = build_imdn_report_cpim(
            from_=f"sip:{self.number}@{DOMAIN}", to=_bot_addr(bot_uri),
            message_id=uuid.uuid4().hex, datetime=_now_iso(),
            original_message_id=message_id, original_datetime=_now_iso(),
            kind=kind, status=status,  # type: ignore[arg-type]
        )
        return await self.request(self._cpim_request(bot_uri, body))

    async def typing(self, bot_uri: str, active: bool = True) -> Response:
        state = "active" if active else "idle"
        doc = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
               f'<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">'
               f'<state>{state}</state><contenttype>text/plain</contenttype>'
               f'<refresh>60</refresh></isComposing>').encode()
        cpim = build_cpim(
            from_=f"sip:{self.number}@{DOMAIN}", to=_bot_addr(bot_uri),
            content_type="application/im-iscomposing+xml", content=doc,
            message_id=uuid.uuid4().hex, datetime=_now_iso(),
        )
        return await self.request(self._cpim_request(bot_uri, cpim))


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class MaapNet:
    node: Node
    base: str
    admin: str
    csp: CspServer
    http: aiohttp.ClientSession
    _ues: list[BotUE] = field(default_factory=list)

    async def ue(self, number: str, *, chatbot: bool = True,
                 answer: int | None = 200) -> BotUE:
        """A UE registered over TCP (with the chatbot feature tags when ``chatbot``)."""
        lst = self.node.listener("tcp")
        ue = BotUE(number, (lst.host, lst.port), "tcp", answer=answer)
        await ue.start()
        self._ues.append(ue)
        resp = await ue.register(tags=BOT_TAGS if chatbot else RCS_TAGS)
        assert resp.status == 200, f"REGISTER of {number} answered {resp.status}"
        return ue

    def close_ues(self) -> None:
        for ue in self._ues:
            ue.close()


@asynccontextmanager
async def maap_network(*overrides: str) -> AsyncIterator[MaapNet]:
    """A Node (5GMC + MaaP, memory/tmp stores, port 0, short timers) with every lab chatbot's
    webhook pointed at one test CSP server: gsma bot → f"{csp.url}/gsma/{id}", ctcu/cmcc bots →
    f"{csp.url}/{dialect}/{id}" (their notify URL base)."""
    csp = await CspServer().start()
    with tempfile.TemporaryDirectory(prefix="maap-") as data_dir:
        base_overrides = (*FAST, *MAAP_FAST, f'maap.data_dir="{data_dir}"')
        lab = load_profile(None, base_overrides)
        hooks = tuple(
            f'maap.chatbots[{i}].webhook="{csp.url}/{bot.dialect}/{bot.id}"'
            for i, bot in enumerate(lab.maap.chatbots)
        )
        profile = load_profile(None, (*base_overrides, *hooks, *overrides))
        try:
            async with running(profile) as node, aiohttp.ClientSession() as http:
                maap = node.maap
                assert maap is not None, "the profile has the MaaP disabled"
                host, port = maap.http_address
                assert node.admin.address is not None
                ahost, aport = node.admin.address
                net = MaapNet(node, f"http://{host}:{port}", f"http://{ahost}:{aport}", csp, http)
                try:
                    yield net
                finally:
                    net.close_ues()
        finally:
            await csp.close()
