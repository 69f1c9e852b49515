"""The China Telecom / China Unicom JSON dialect of the MaaP (issue 4 item 3; protocols.md §2B,
§9(2), §10 — spec "中国电信-中国联通 5G消息业务平台行业客户接入接口技术规范 V1.0.4").

Routes, under ``{server_root}/bot/v1/{chatbotId}/`` where ``chatbotId`` is the chatbot id
(``106500…``) or its SIP URI, raw or percent-encoded (``sip%3A106500%40botplatform…``):

- ``POST accessToken`` ``{appId, appKey}`` → ``{accessToken, expires, url, errorCode,
  errorMessage}``; a new token invalidates the previous one; at most ``token_calls_per_day``.
- ``POST messages`` (send, one or many ``destinationAddress``), ``POST revoke``;
- ``POST medias/upload`` (multipart ``file`` + optional ``thumbnail``, header ``uploadMode``),
  ``GET medias/download`` and ``DELETE medias/delete`` (file URL in header ``url``).

Requests carry ``Authorization: accessToken <token>`` (a bare ``<token>`` is accepted too).

Choices where the spec is silent or marked [U] (docs/maap-ctcu.md has the full list):

- HTTP status: application errors answer HTTP 200 with a non-zero ``errorCode`` like the real
  platform; but an unreadable body is 400 (47001 JSON syntax, 20002 wrong shape, with the
  field path), a missing/invalid/expired token 401 (41001/40001/42001), another chatbot's
  token 403 (48001), an unknown chatbot 404 (20002), a body or file above the limits 413
  (20002/40006), the per-chatbot rate limit 429 (30003) and the token-call limit 429 (45001).
  The JSON error body is there in every case.
- The ``POST …/messages`` path is shared with the GSMA dialect (``bot/v1/{botId}/messages``):
  this dialect adds plain routes for each CT/CU chatbot's id and URI (aiohttp tries them
  before any ``{botId}`` template), plus a ``{chatbotId}`` route constrained to the CT/CU
  chatbots (for other spellings, e.g. an upper-case URI, which does depend on being added
  before a catch-all GSMA route).
- Pushes: see :func:`fivegmc.maap.ctcu_wire.render_event`; statuses the send's
  ``reportRequest`` did not ask for are not pushed (remembered in memory for the most recent
  ``reports_remembered`` sends; without ``reportRequest`` every status is pushed).
"""

from __future__ import annotations

import hmac
import random
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..config import ChatbotConfig
from . import ctcu_wire as w
from .api import MaapApi
from .ctcu_openapi import document
from .ctcu_wire import CtcuError
from .files import parse_range
from .model import Event, FileRecord, Notification, Outbound, SmsFallback, StatusEvent

_log = structlog.get_logger("fivegmc.maap.ctcu")

_Handler = Callable[[web.Request, ChatbotConfig], Awaitable[web.StreamResponse]]

#: Parts of an upload other than ``file``/``thumbnail`` are read up to this size and ignored.
_OTHER_PART_MAX = 64 * 1024
#: Room for multipart framing on top of the largest file plus its thumbnail.
_MULTIPART_SLACK = 64 * 1024


class CtcuDialect:
    """:class:`fivegmc.maap.api.Dialect` for chatbots with ``dialect = "ctcu"``."""

    name = "ctcu"

    def __init__(self, api: MaapApi, *, clock: Callable[[], float] = time.time,
                 temp_ttl_s: float | None = None, push: w.PushOptions | None = None,
                 require_uploaded_media: bool | None = None,
                 token_calls_per_day: int | None = None,
                 reports_remembered: int = 100_000) -> None:
        self.api = api
        self._clock = clock
        self._rng = random.Random()  # seeded from os.urandom
        # [U] choices come from the profile's [maap.ctcu]; keyword arguments override (tests)
        cfg = api.config.ctcu
        #: ``uploadMode: temp`` files expire after this long ("N days", operator-set, §10);
        #: ``perm`` files live ``maap.file_ttl_s``.
        self.temp_ttl_s = cfg.temp_media_days * 86400.0 if temp_ttl_s is None else temp_ttl_s
        self.push = push or w.PushOptions(sort_signature=cfg.signature_order == "sorted",
                                          content_type=cfg.push_content_type,
                                          status_batch=cfg.status_batch)
        #: media URLs in sends must have been uploaded here (§10 "Send"); else 40007
        self.require_uploaded_media = (cfg.require_uploaded_media
                                       if require_uploaded_media is None
                                       else require_uploaded_media)
        self.token_calls_per_day = (cfg.token_calls_per_day if token_calls_per_day is None
                                    else token_calls_per_day)
        self._token_calls: dict[str, tuple[int, int]] = {}
        self._verified: set[str] = set()  # chatbots whose notify URL passed the check
        self._reports: OrderedDict[tuple[str, str], frozenset[str]] = OrderedDict()
        self._reports_max = reports_remembered
        self._modes: OrderedDict[str, str] = OrderedDict()

    # -- routes -----------------------------------------------------------------------------

    def _bots(self) -> list[ChatbotConfig]:
        return [b for b in self.api.bots() if b.dialect == self.name]

    def _bot_pattern(self) -> str:
        """A path-segment regex matching only this dialect's chatbots (id, URI, URI without
        the scheme), so the shared ``…/messages`` path leaves other chatbots to GSMA."""
        alts: list[str] = []
        for bot in self._bots():
            alts.append(re.escape(bot.id))
            alts.append("(?i:" + re.escape(bot.uri) + ")")
            alts.append("(?i:" + re.escape(bot.uri.split(":", 1)[1]) + ")")
        return "|".join(alts) if alts else "(?!)"

    def paths(self) -> dict[str, str]:
        root = self.api.config.server_root
        base = f"{root}/bot/v1/{{chatbotId}}"
        return {"accessToken": f"{base}/accessToken", "messages": f"{base}/messages",
                "revoke": f"{base}/revoke", "upload": f"{base}/medias/upload",
                "download": f"{base}/medias/download", "delete": f"{base}/medias/delete"}

    def fixed_message_paths(self) -> dict[str, ChatbotConfig]:
        """``…/bot/v1/{id}/messages`` and ``…/bot/v1/{uri}/messages`` of each CT/CU chatbot
        as plain paths. aiohttp tries the most specific path prefix first, so these win over
        a ``{botId}`` template of another dialect whatever the registration order (a
        percent-encoded URI in the request path matches the raw form)."""
        root = self.api.config.server_root
        out: dict[str, ChatbotConfig] = {}
        for bot in self._bots():
            for seg in (bot.id, bot.uri):
                if "{" not in seg and "}" not in seg and "/" not in seg:
                    out[f"{root}/bot/v1/{seg}/messages"] = bot
        return out

    def add_routes(self, app: web.Application) -> None:
        p = self.paths()
        root = self.api.config.server_root
        messages = f"{root}/bot/v1/{{chatbotId:{self._bot_pattern()}}}/messages"
        app.router.add_post(p["accessToken"], self._wrap(self._access_token, auth=False))
        for path, bot in self.fixed_message_paths().items():
            app.router.add_post(path, self._wrap(self._messages, bot=bot))
        app.router.add_post(messages, self._wrap(self._messages))
        app.router.add_post(p["revoke"], self._wrap(self._revoke))
        app.router.add_post(p["upload"], self._wrap(self._upload))
        app.router.add_get(p["download"], self._wrap(self._download), allow_head=False)
        app.router.add_delete(p["delete"], self._wrap(self._delete))

    def _wrap(self, handler: _Handler, *, auth: bool = True,
              bot: ChatbotConfig | None = None) -> Callable[
            [web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                target = bot or self._bot(request)
                if auth:
                    self._authorize(request, target)
                return await handler(request, target)
            except CtcuError as err:
                return _error(err)
            except (web.HTTPException, ConnectionError):
                raise
            except Exception:  # a bug of ours: still answer in the dialect's format
                _log.exception("ctcu_handler_failed", path=request.path)
                return _error(CtcuError(w.INTERNAL, "internal error", 500))
        return run

    # -- common steps -----------------------------------------------------------------------

    def _bot(self, request: web.Request) -> ChatbotConfig:
        seg = request.match_info.get("chatbotId", "")
        bot: ChatbotConfig | None
        if "@" in seg:
            uri = seg if seg.lower().startswith(("sip:", "sips:")) else f"sip:{seg}"
            bot = self.api.bot_by_uri(uri)
        else:
            bot = self.api.bot(seg)
        if bot is None or bot.dialect != self.name:
            raise CtcuError(w.PARAMETER, f"unknown chatbot {seg[:100]!r}", 404)
        return bot

    def _authorize(self, request: web.Request, bot: ChatbotConfig) -> None:
        raw = request.headers.get("Authorization", "").strip()
        scheme, _, rest = raw.partition(" ")
        token = rest.strip() if scheme.lower() in ("accesstoken", "bearer") and rest else raw
        check = self.api.tokens.check(token or None)
        if check.problem == "missing" or not token:
            raise CtcuError(w.MISSING_TOKEN, "missing accessToken (Authorization header)", 401)
        if check.problem == "expired":
            raise CtcuError(w.TOKEN_EXPIRED, "accessToken expired", 401)
        if check.bot_id is None:
            raise CtcuError(w.BAD_CREDENTIAL, "invalid accessToken", 401)
        if check.bot_id != bot.id:
            raise CtcuError(w.NOT_AUTHORISED, "accessToken belongs to another chatbot", 403)

    async def _body(self, request: web.Request, limit: int | None = None) -> bytes:
        limit = self.api.config.max_body_bytes if limit is None else limit
        too_big = CtcuError(w.PARAMETER, f"request body above {limit} bytes", 413)
        if request.content_length is not None and request.content_length > limit:
            raise too_big
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(65536):
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
        return b"".join(chunks)

    # -- accessToken ------------------------------------------------------------------------

    async def _access_token(self, request: web.Request, bot: ChatbotConfig) -> web.Response:
        req = w.decode(await self._body(request), w.TokenRequest)
        if not req.appId:
            raise CtcuError(w.MISSING_APP_ID, "appId: required", 400)
        if not req.appKey:
            raise CtcuError(w.MISSING_APP_KEY, "appKey: required", 400)
        if not (_same(req.appId, bot.app_id) and _same(req.appKey, bot.secret)):
            raise CtcuError(w.BAD_CREDENTIAL, "appId/appKey do not match this chatbot", 401)
        # at most token_calls_per_day per chatbot (§10), counted per China-time day
        day = int((self._clock() + 8 * 3600) // 86400)
        seen_day, count = self._token_calls.get(bot.id, (day, 0))
        count = count + 1 if seen_day == day else 1
        self._token_calls[bot.id] = (day, count)
        if count > self.token_calls_per_day:
            raise CtcuError(w.API_LIMIT, f"more than {self.token_calls_per_day} accessToken "
                                         "calls today", 429)
        token, _ = self.api.tokens.issue(bot.id, replace=True)
        if bot.verify_notify_url and bot.id not in self._verified:
            # §10: the token call marks the chatbot connected; its notify URL is checked now
            # and the chatbot cannot send until the check passes (a later token call retries)
            async with aiohttp.ClientSession() as http:
                if await self.verify_notify_url(http, bot):
                    self._verified.add(bot.id)
        return web.json_response({
            "accessToken": token, "expires": self.api.config.token_ttl_s,
            "url": self._api_url(request, bot), "errorCode": w.OK, "errorMessage": "success",
        })

    def _api_url(self, request: web.Request, bot: ChatbotConfig) -> str:
        public = self.api.config.public_url.rstrip("/") or f"{request.scheme}://{request.host}"
        return f"{public}{self.api.config.server_root}/bot/v1/{quote(bot.uri, safe='')}"

    # -- messages ---------------------------------------------------------------------------

    async def _messages(self, request: web.Request, bot: ChatbotConfig) -> web.Response:
        if bot.verify_notify_url and bot.id not in self._verified:
            raise CtcuError(w.CALLBACK_FAILED, "notify URL not verified: answer the "
                                               "notifyPath check, then get a new accessToken",
                            200)
        req = w.decode(await self._body(request), w.SendRequest)
        cap = self.api.config.max_destinations
        if len(req.destinationAddress) > cap:
            raise CtcuError(w.PARAMETER, f"destinationAddress: {len(req.destinationAddress)} "
                                         f"entries, at most {cap}", 413)
        out = self._outbound(bot, req)
        if not self.api.allow(bot.id):
            raise CtcuError(w.OVER_RATE, "over the chatbot's per-second send limit", 429)
        try:
            result = await self.api.send(out)
        except ValueError as exc:
            raise CtcuError(w.PARAMETER, str(exc)) from None
        if req.reportRequest is not None and not result.duplicate:
            self._remember_reports(bot.id, out.message_id, frozenset(req.reportRequest))
        body: dict[str, Any] = {
            "errorCode": w.OK, "errorMessage": "success", "messageId": result.message_id,
            "conversationId": out.conversation_id, "contributionId": out.contribution_id,
        }
        if out.client_correlator:
            body["clientCorrelator"] = out.client_correlator
        return web.json_response(body)

    def _outbound(self, bot: ChatbotConfig, req: w.SendRequest) -> Outbound:
        """The request's fields checked (§2B, §10) and turned into the core's Outbound."""
        if req.senderAddress and req.senderAddress.strip().lower() not in (
                bot.uri.lower(), bot.id.lower()):
            raise CtcuError(w.SENDER_MISMATCH, f"senderAddress {req.senderAddress[:100]!r} is "
                                               f"not this chatbot ({bot.uri})")
        recipients = w.parse_addresses(req.destinationAddress, "destinationAddress")
        if not recipients:
            raise CtcuError(w.PARAMETER, "destinationAddress: at least one address required")
        traffic = req.trafficType or ""
        if traffic and traffic not in w.TRAFFIC_TYPES:
            raise CtcuError(w.PARAMETER, f"trafficType: expected one of "
                                         f"{', '.join(w.TRAFFIC_TYPES)}")
        if traffic and traffic not in bot.traffic_types:
            raise CtcuError(w.PARAMETER, f"trafficType: {traffic!r} is not allowed for this "
                                         "chatbot")
        if req.imFormat and req.imFormat not in w.IM_FORMATS:
            raise CtcuError(w.PARAMETER, f"imFormat: expected one of {', '.join(w.IM_FORMATS)}")
        sms_text = req.smsContent or ""
        if req.smsSupported and not sms_text.strip():
            raise CtcuError(w.PARAMETER, "smsContent: required and non-empty when smsSupported "
                                         "is true")
        if len(sms_text) > w.MAX_TEXT:
            raise CtcuError(w.BAD_TEXT_LENGTH, f"smsContent: at most {w.MAX_TEXT} characters")
        disp = w.dispositions(req.reportRequest)
        payload = w.build_payload(req.messageList, self._media, self._clock(),
                                  require_uploaded=self.require_uploaded_media)
        extra: dict[str, Any] = {} if disp is None else {"dispositions": disp}
        return Outbound(
            bot_id=bot.id, recipients=recipients, payload=payload,
            message_id=w.check_id(req.messageId, "messageId") or str(uuid.uuid4()),
            conversation_id=w.check_id(req.conversationId, "conversationId")
            or str(uuid.uuid4()),
            contribution_id=w.check_id(req.contributionId, "contributionId")
            or str(uuid.uuid4()),
            in_reply_to=w.check_id(req.inReplyTo, "inReplyTo"),
            traffic_type=traffic,
            store=req.storeSupported is not False,
            fallback=SmsFallback(bool(req.smsSupported), sms_text if req.smsSupported else ""),
            client_correlator=w.check_printable(req.clientCorrelator, "clientCorrelator"),
            **extra,
        )

    def _media(self, url: str) -> FileRecord | None:
        return self.api.files.by_url(url)

    def _remember_reports(self, bot_id: str, message_id: str, wanted: frozenset[str]) -> None:
        self._reports[(bot_id, message_id)] = wanted
        while len(self._reports) > self._reports_max:
            self._reports.popitem(last=False)

    # -- revoke -----------------------------------------------------------------------------

    async def _revoke(self, request: web.Request, bot: ChatbotConfig) -> web.Response:
        req = w.decode(await self._body(request), w.RevokeRequest)
        if req.status != "RevokeRequested":
            raise CtcuError(w.PARAMETER, "status: expected 'RevokeRequested'")
        message_id = w.check_id(req.messageId, "messageId")
        recipients = w.parse_addresses(req.destinationAddress or [], "destinationAddress")
        if not message_id or self.api.record(bot.id, message_id) is None:
            raise CtcuError(w.PARAMETER, f"messageId: this chatbot sent no message "
                                         f"{req.messageId[:100]!r}")
        # The outcome per recipient goes to the CSP as revokeOk / revokeFail (§10 "Revoke").
        await self.api.revoke(bot.id, message_id, recipients)
        return web.json_response({"messageId": message_id, "errorCode": w.OK,
                                  "errorMessage": "success", "conversationId": None,
                                  "contributionId": None})

    # -- media ------------------------------------------------------------------------------

    async def _upload(self, request: web.Request, bot: ChatbotConfig) -> web.Response:
        mode = request.headers.get("uploadMode", "perm").strip().lower() or "perm"
        if mode not in ("perm", "temp"):
            raise CtcuError(w.PARAMETER, "uploadMode: expected perm or temp", 400)
        if request.content_type != "multipart/form-data":
            raise CtcuError(w.PARAMETER, "Content-Type: expected multipart/form-data", 400)
        biggest = max(k.max_bytes for k in w.MEDIA_KINDS)
        limit = min(biggest, self.api.config.max_file_bytes) + w.THUMBNAIL_MAX + \
            _MULTIPART_SLACK
        if request.content_length is not None and request.content_length > limit:
            raise CtcuError(w.BAD_FILE_SIZE, f"request body above {limit} bytes", 413)
        parts = await _read_parts(request)
        if "file" not in parts:
            raise CtcuError(w.MISSING_MEDIA, "multipart part 'file' required", 400)
        ttl = self.temp_ttl_s if mode == "temp" else None
        name, ctype, data = parts["file"]
        rec = await self._put(bot, name, ctype, data, ttl, "")
        records = [rec]
        if "thumbnail" in parts:
            tname, tctype, tdata = parts["thumbnail"]
            records.append(await self._put(bot, tname, tctype, tdata, ttl, rec.file_id))
        for r in records:
            self._modes[r.file_id] = mode
        while len(self._modes) > self._reports_max:
            self._modes.popitem(last=False)
        infos = []
        for r in records:
            info: dict[str, Any] = {"url": r.url, "fileName": r.name,
                                    "contentType": r.content_type, "fileSize": r.size,
                                    "fileHashAlgorithm": "sha256", "fileHashValue": r.sha256}
            if mode == "temp":
                info["until"] = _iso_z(r.until)
            infos.append(info)
        return web.json_response({"fileInfo": infos, "fileCount": len(infos),
                                  "totalCount": len(infos), "errorCode": w.OK,
                                  "errorMessage": "success"})

    async def _put(self, bot: ChatbotConfig, name: str, ctype: str, data: bytes,
                   ttl: float | None, thumbnail_of: str) -> FileRecord:
        kind, ctype = w.media_kind(ctype, name)
        cap = kind.max_bytes
        if thumbnail_of:
            if kind.name != "image":
                raise CtcuError(w.BAD_FILE_TYPE, "thumbnail: must be a JPG/PNG image")
            cap = w.THUMBNAIL_MAX
        what = "thumbnail" if thumbnail_of else "file"
        if not data:
            raise CtcuError(w.EMPTY_MEDIA, f"{what}: empty")
        if len(data) > cap:
            raise CtcuError(w.BAD_FILE_SIZE, f"{what}: {len(data)} bytes, a {kind.name} may "
                                             f"have at most {cap}", 413)
        try:
            return await self.api.files.put(bot.id, name or what, ctype, data, ttl_s=ttl,
                                            thumbnail_of=thumbnail_of)
        except ValueError as exc:
            raise CtcuError(w.BAD_FILE_SIZE, f"{what}: {exc}", 413) from None

    def _own_file(self, request: web.Request, bot: ChatbotConfig, status: int) -> FileRecord:
        url = request.headers.get("url", "").strip()
        if not url:
            raise CtcuError(w.MISSING_MEDIA_URL, "url header required", 400)
        rec = self.api.files.by_url(url)
        if rec is None or rec.bot_id != bot.id:
            raise CtcuError(w.BAD_MEDIA_URL, f"no media of this chatbot at {url[:100]!r}",
                            status)
        return rec

    async def _download(self, request: web.Request, bot: ChatbotConfig) -> web.StreamResponse:
        rec = self._own_file(request, bot, 404)
        expired = CtcuError(w.TEMP_FILE_EXPIRED, "the file has expired", 410)
        if self._clock() >= rec.until:
            raise expired
        try:
            data = await self.api.files.read(rec.file_id)
        except KeyError:
            raise expired from None
        headers = {"Content-Type": rec.content_type, "Cache-Control": "no-cache, must-revalidate",
                   "Content-Disposition": f'attachment; filename="{_safe_name(rec.name)}"',
                   "Accept-Ranges": "bytes"}
        size = len(data)
        try:
            span = parse_range(request.headers.get("Range", ""), size)
        except ValueError:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        if span is not None:
            start, end = span
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            return web.Response(status=206, body=data[start:end], headers=headers)
        return web.Response(body=data, headers=headers)

    async def _delete(self, request: web.Request, bot: ChatbotConfig) -> web.Response:
        rec = self._own_file(request, bot, 200)
        await self.api.files.delete(rec.file_id)
        mode = self._modes.pop(rec.file_id, "perm")
        return web.json_response({"deleteMode": mode, "fileCount": 1, "totalCount": 1,
                                  "errorCode": w.OK, "errorMessage": "success"})

    # -- pushes -----------------------------------------------------------------------------

    def _nonce(self) -> str:
        """A UUID-shaped random nonce for a push (§10), without uuid4's syscall per call."""
        h = f"{self._rng.getrandbits(128):032x}"
        variant = "89ab"[int(h[16], 16) & 3]  # RFC 9562 §4.1: 10xx
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"

    def render(self, bot: ChatbotConfig, event: Event) -> Notification | None:
        wanted = None
        if isinstance(event, StatusEvent):
            wanted = self._reports.get((bot.id, event.message_id))
        return w.render_event(bot, event, now=self._clock(), nonce=self._nonce(),
                              options=self.push, wanted=wanted)

    async def verify_notify_url(self, http: aiohttp.ClientSession, bot: ChatbotConfig, *,
                                timeout_s: float = 5.0) -> bool:
        """The optional notify-URL check (§10): ``GET {notifyURL}/notifyPath`` with a signature;
        the CSP must echo ``echoStr`` and give its ``appId``. Not enforced by default."""
        echo = uuid.uuid4().hex
        url, headers = w.verification_request(bot, self._clock(), str(uuid.uuid4()), echo,
                                              sort=self.push.sort_signature)
        try:
            async with http.get(url, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                return w.verification_ok(bot, echo, resp.status, resp.headers)
        except (aiohttp.ClientError, TimeoutError):
            return False

    def openapi(self) -> dict[str, Any]:
        return document(self.paths(), list(self.fixed_message_paths()))


# -- helpers ----------------------------------------------------------------------------------


def _error(err: CtcuError) -> web.Response:
    return web.json_response(err.body(), status=err.status)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _iso_z(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _safe_name(name: str) -> str:
    return "".join(c for c in name if c.isprintable() and c not in '"\\') or "file"


async def _read_parts(request: web.Request) -> dict[str, tuple[str, str, bytes]]:
    """The ``file`` and ``thumbnail`` parts (name, content type, bytes) of an upload; each
    read up to its kind's limit (413 + 40006 beyond); other parts are drained and ignored."""
    parts: dict[str, tuple[str, str, bytes]] = {}
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader):
                raise CtcuError(w.PARAMETER, "nested multipart parts are not accepted", 400)
            name = (part.name or "").lower()
            filename = part.filename or ""
            ctype = part.headers.get("Content-Type", "")
            if name in ("file", "thumbnail") and name not in parts:
                kind, _ = w.media_kind(ctype, filename)
                cap = w.THUMBNAIL_MAX if name == "thumbnail" else kind.max_bytes
            else:
                name, cap = "", _OTHER_PART_MAX
            data = bytearray()
            while chunk := await part.read_chunk(65536):
                data += chunk
                if len(data) > cap:
                    raise CtcuError(w.BAD_FILE_SIZE, f"part {part.name!r} above {cap} bytes",
                                    413)
            if name:
                parts[name] = (filename, ctype, bytes(data))
    except CtcuError:
        raise
    except (ValueError, AssertionError, RuntimeError, KeyError, LookupError,
            aiohttp.ClientPayloadError, HttpProcessingError) as exc:
        raise CtcuError(w.PARAMETER, f"malformed multipart body: {exc}", 400) from None
    return parts
