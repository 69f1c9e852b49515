"""China Mobile OMA-NetAPI-style XML dialect of the MaaP (protocols.md §2A, §9(3)).

Routes (under ``MaapConfig.server_root``; ``{chatbotURI}`` percent-encoded or raw):

- ``POST /messaging/group/v1/outbound/{chatbotURI}/requests``: group / broadcast send,
  ``msg:outboundMessageRequest`` with repeatable ``address`` / ``destinationAddress``;
- ``POST /messaging/interaction/v1/outbound/{chatbotURI}/requests``: interactive reply,
  exactly one destination;
- ``POST /messaging/group/template/outbound/{chatbotURI}/requests``: template send, same body
  plus ``outboundIMMessage/templateID`` [U]; ``bodyText`` is the rendered text;
- ``PUT /messaging/v1/outbound/{chatbotURI}/requests/{messageId}/status``: revoke
  (``status`` ``RevokeRequested`` or ``Revoked``); the outcome follows as a
  MessageStatusNotification;
- ``GET /messaging/v1/outbound/{chatbotURI}/requests/{messageId}/deliveryInfos`` (OMA, ours):
  per-recipient states;
- ``POST /Content`` (multipart parts ``File``, ``Thumbnail``; chatbot from
  ``X-3GPP-Intended-Identity``) → FT-over-HTTP XML; ``DELETE /Content`` (file URL in query
  ``url`` or header ``url``) [U].

Every call carries ``Date`` (RFC 1123, within ``maap.date_skew_s``) and ``Authorization: Basic
base64(appId:sha256hex(sha256hex(password) + Date))`` (CMT). Errors are OMA ``requestError``
bodies (codes in docs/maap-cmcc.md). Notifications are POSTed to
``{notifyURL}/{InboundMessageNotification|DeliveryInfoNotification|MessageStatusNotification}/
{chatbotURI percent-encoded}``; typing, new-user and file events are not pushed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import BodyPartReader, web

from ..config import ChatbotConfig
from . import cmcc_wire as w
from . import content
from .api import MaapApi
from .ctcu_wire import TRAFFIC_TYPES, signature
from .model import Event as MaapEvent
from .model import (
    FailureCode,
    FileRecord,
    InboundEvent,
    Notification,
    Outbound,
    RecipientState,
    SmsFallback,
    Status,
    StatusEvent,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Pushed ``deliveryStatus`` per MaaP state (docs/maap-cmcc.md). ACCEPTED and SENT are not
#: pushed: ``reportRequest`` has no "sent" and SENT only means the 5GMC took the message.
DELIVERY_STATUS: dict[Status, str] = {
    Status.DELIVERED: "DeliveredToTerminal",
    Status.DISPLAYED: "DisplayedToTerminal",
    Status.FAILED: "DeliveryImpossible",
    # SMS fallback: the SMSC reported the SMS delivered (handed to the SMS network).
    Status.DELIVERED_TO_NETWORK: "DeliveredToNetwork",
}
#: ``deliveryStatus`` in a deliveryInfos query, where pending states are shown too.
QUERY_STATUS: dict[Status, str] = {
    **DELIVERY_STATUS,
    Status.ACCEPTED: "MessageWaiting",
    Status.SENT: "MessageWaiting",
    Status.REVOKED: "DeliveryImpossible",
    Status.REVOKE_FAILED: "DeliveredToTerminal",
}
#: MessageStatusNotification ``status`` for revoke outcomes.
REVOKE_STATUS = {Status.REVOKED: "Revoked", Status.REVOKE_FAILED: "RevokeFailed"}
#: ``description`` of a pushed deliveryInfo: SVC1000 = success (FEI sample), failures as
#: SVC10xx with the CT/CU failure numbering (ours).
SUCCESS_DESCRIPTION = "SVC1000"

MB = 1024 * 1024
#: Upload limits (CMT comments): kind → (bytes, {content type: extensions}).
MEDIA_LIMITS: dict[str, tuple[int, dict[str, tuple[str, ...]]]] = {
    "image": (2 * MB, {"image/jpeg": (".jpg", ".jpeg"), "image/png": (".png",)}),
    "audio": (5 * MB, {"audio/amr": (".amr",), "audio/mpeg": (".mp3",),
                       "audio/mp4": (".m4a",)}),
    "video": (10 * MB, {"video/mp4": (".mp4",), "video/webm": (".webm",)}),
}
THUMBNAIL_LIMIT = 200 * 1024
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "audio/mp3": "audio/mpeg",
            "audio/x-m4a": "audio/mp4", "audio/m4a": "audio/mp4", "audio/aac": "audio/mp4",
            "audio/x-amr": "audio/amr"}
_GENERIC = ("", "application/octet-stream", "binary/octet-stream")


def failure_description(failure: FailureCode | None) -> str:
    return f"SVC{1000 + int(failure)}" if failure is not None else "SVC1099"


def classify_media(content_type: str, filename: str, *, thumbnail: bool) -> tuple[str, int]:
    """(canonical content type, byte limit) for an upload part; POL0011 when not allowed."""
    part = "Thumbnail" if thumbnail else "File"
    ctype = _ALIASES.get(content.media_type(content_type), content.media_type(content_type))
    ext = ("." + filename.rsplit(".", 1)[-1].lower()) if "." in filename else ""
    kinds = ("image",) if thumbnail else tuple(MEDIA_LIMITS)
    for kind in kinds:
        limit, types = MEDIA_LIMITS[kind]
        for known, exts in types.items():
            if ctype == known or (ctype in _GENERIC and ext in exts):
                return known, THUMBNAIL_LIMIT if thumbnail else limit
    raise w.media_not_supported(part, content_type or ext or "unknown")


class CmccDialect:
    """:class:`fivegmc.maap.api.Dialect` for chatbots with ``dialect = "cmcc"``."""

    name = "cmcc"

    def __init__(self, api: MaapApi, *, clock: Callable[[], float] = time.time) -> None:
        self.api = api
        self.clock = clock
        self.root = api.config.server_root.rstrip("/")

    # -- routes ---------------------------------------------------------------------------

    def paths(self) -> dict[str, str]:
        """Route name → path template (as registered and documented)."""
        r = self.root
        req = f"{r}/messaging/v1/outbound/{{chatbotURI}}/requests/{{messageId}}"
        return {
            "group": f"{r}/messaging/group/v1/outbound/{{chatbotURI}}/requests",
            "interaction": f"{r}/messaging/interaction/v1/outbound/{{chatbotURI}}/requests",
            "template": f"{r}/messaging/group/template/outbound/{{chatbotURI}}/requests",
            "status": f"{req}/status",
            "deliveryInfos": f"{req}/deliveryInfos",
            "content": f"{r}/Content",
        }

    def add_routes(self, app: web.Application) -> None:
        p = self.paths()
        app.router.add_post(p["group"], self._guard(self._group))
        app.router.add_post(p["interaction"], self._guard(self._interaction))
        app.router.add_post(p["template"], self._guard(self._template))
        app.router.add_put(p["status"], self._guard(self._revoke))
        app.router.add_get(p["deliveryInfos"], self._guard(self._delivery_infos))
        app.router.add_post(p["content"], self._guard(self._upload))
        app.router.add_delete(p["content"], self._guard(self._delete))

    @staticmethod
    def _guard(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except w.CmccError as err:
                return error_response(err)
        return guarded

    # -- request plumbing -----------------------------------------------------------------

    def _path_bot(self, request: web.Request) -> ChatbotConfig:
        raw = request.match_info.get("chatbotURI", "")
        uri = unquote(raw) if "%" in raw else raw
        bot = self.api.bot_by_uri(uri) if ":" in uri else self.api.bot(uri)
        if bot is None or bot.dialect != self.name:
            raise w.not_found("chatbotURI", uri)
        return bot

    def _authenticate(self, request: web.Request, bot: ChatbotConfig) -> None:
        """Date skew and the Basic digest; another cmcc chatbot's valid credentials → 403."""
        date = request.headers.get("Date", "")
        if not date:
            raise w.unauthorized("Date header missing")
        skew = self.api.config.date_skew_s
        if abs(self.clock() - w.parse_date(date)) > skew:
            raise w.unauthorized(f"Date header is more than {skew} s from the server clock")
        header = request.headers.get("Authorization", "")
        if not header:
            raise w.unauthorized("Authorization header missing")
        app_id, digest = w.parse_authorization(header)
        if app_id == bot.app_id:
            if w.check_digest(bot.secret, date, digest):
                return
            raise w.unauthorized("digest does not match")
        others = [b for b in self.api.bots() if b.dialect == self.name and b.app_id == app_id]
        if any(w.check_digest(b.secret, date, digest) for b in others):
            raise w.forbidden(f"appId {app_id} does not own {bot.uri}")
        raise w.unauthorized("unknown appId or digest does not match")

    async def _read_body(self, request: web.Request, limit: int) -> bytes:
        if request.content_length is not None and request.content_length > limit:
            raise w.too_large("body", limit)
        data = bytearray()
        async for chunk in request.content.iter_chunked(65536):
            data += chunk
            if len(data) > limit:
                raise w.too_large("body", limit)
        return bytes(data)

    def _origin(self, request: web.Request) -> str:
        return self.api.config.public_url.rstrip("/") or f"{request.scheme}://{request.host}"

    def _public(self) -> str:
        cfg = self.api.config
        files_base = getattr(self.api.files, "public_base", "")
        return (cfg.public_url.rstrip("/") or (files_base if isinstance(files_base, str)
                                               else "") or f"http://{cfg.host}:{cfg.port}")

    def _request_url(self, base: str, bot: ChatbotConfig, message_id: str) -> str:
        return (f"{base}{self.root}/messaging/v1/outbound/{quote(bot.uri, safe='')}"
                f"/requests/{quote(message_id, safe='')}")

    # -- sends ----------------------------------------------------------------------------

    async def _group(self, request: web.Request) -> web.StreamResponse:
        return await self._send(request, "group")

    async def _interaction(self, request: web.Request) -> web.StreamResponse:
        return await self._send(request, "interaction")

    async def _template(self, request: web.Request) -> web.StreamResponse:
        return await self._send(request, "template")

    async def _send(self, request: web.Request, mode: str) -> web.StreamResponse:
        bot = self._path_bot(request)
        self._authenticate(request, bot)
        body = await self._read_body(request, self.api.config.max_body_bytes)
        req = w.parse_outbound_request(body)
        if not w.same_uri(req.sender_address, bot.uri):
            raise w.invalid("outboundMessageRequest/senderAddress",
                            "must be the chatbot URI of the request path")
        im = req.message
        if mode == "template" and not im.template_id:
            raise w.missing("outboundMessageRequest/outboundIMMessage/templateID")
        if im.traffic_type and im.traffic_type not in TRAFFIC_TYPES:
            raise w.invalid("outboundMessageRequest/outboundIMMessage/trafficType",
                            f"expected one of {', '.join(TRAFFIC_TYPES)}")
        if im.traffic_type and im.traffic_type not in bot.traffic_types:
            # a policy, not a bad value: POL0010 (ours; docs/maap-cmcc.md)
            raise w.CmccError(403, "POL0010", "Traffic type %1 is not allowed for chatbot %2",
                              (im.traffic_type, bot.uri))
        payload = w.build_payload(im, template=mode == "template")
        numbers, failed = self._recipients(req.addresses, mode)
        if not self.api.allow(bot.id):
            raise w.rate_limited(bot.id)
        # clientCorrelator makes the request idempotent (OMA): same correlator, same message.
        message_id = (str(uuid.uuid5(uuid.NAMESPACE_URL, f"cmcc:{bot.id}:{req.client_correlator}"))
                      if req.client_correlator else str(uuid.uuid4()))
        fallback = SmsFallback(bool(bot.fallback_text),
                               bot.fallback_text.replace("{messageId}", message_id))
        out = Outbound(
            bot_id=bot.id, recipients=tuple(numbers), payload=payload, message_id=message_id,
            conversation_id=im.conversation_id, contribution_id=im.contribution_id,
            in_reply_to=im.in_reply_to, traffic_type=im.traffic_type,
            dispositions=w.dispositions(im.report_requests), store=req.store_supported,
            fallback=fallback, client_correlator=req.client_correlator,
        )
        try:
            result = await self.api.send(out)
        except ValueError as exc:
            raise w.invalid("outboundMessageRequest", str(exc)) from None
        for number, status, failure in result.recipients:
            if status is Status.FAILED:
                reason = failure.name if failure is not None else "FAILED"
                failed.append(w.FailedAddress(numbers.get(number, w.tel(number)),
                                              w.send_failed(reason, ())))
        if not any(status is not Status.FAILED for _, status, _ in result.recipients):
            # a full failure (CMX): nobody can receive it
            reasons = sorted({f.error.variables[0] if f.error.code == "POL0001"
                              else "INVALID_ADDRESS" for f in failed})
            raise w.send_failed(",".join(reasons), [f.address for f in failed])
        url = self._request_url(self._origin(request), bot, message_id)
        return xml_response(w.build_send_response(message_id, req.client_correlator, url, failed),
                            status=201, headers={"Location": url})

    def _recipients(self, addresses: tuple[str, ...],
                    mode: str) -> tuple[dict[str, str], list[w.FailedAddress]]:
        """Numbers to send to (number → address as written) and the unusable addresses."""
        path = "outboundMessageRequest/destinationAddress"
        if not addresses:
            raise w.missing(path)
        distinct = list(dict.fromkeys(a.strip() for a in addresses))
        if mode == "interaction" and len(distinct) != 1:
            raise w.too_many_addresses(path, 1)
        limit = self.api.config.max_destinations
        if len(distinct) > limit:
            raise w.too_many_addresses(path, limit)
        numbers: dict[str, str] = {}
        failed: list[w.FailedAddress] = []
        for address in distinct:
            number = w.normalize_address(address)
            if number is None:
                failed.append(w.FailedAddress(address, w.invalid(path, "not a tel: number")))
            else:
                numbers.setdefault(number, address)
        if not numbers:
            if mode == "interaction":
                raise w.invalid(path, "not a tel: number")
            raise w.no_addresses(path)
        return numbers, failed

    # -- revoke and status query ----------------------------------------------------------

    async def _revoke(self, request: web.Request) -> web.StreamResponse:
        bot = self._path_bot(request)
        self._authenticate(request, bot)
        body = await self._read_body(request, self.api.config.max_body_bytes)
        update = w.parse_status_update(body)
        message_id = request.match_info["messageId"]
        if self.api.record(bot.id, message_id) is None:
            raise w.not_found("messageId", message_id)
        recipients: list[str] = []
        for address in update.addresses:
            number = w.normalize_address(address)
            if number is None:
                raise w.invalid("messageStatusReport/address", "not a tel: number")
            recipients.append(number)
        await self.api.revoke(bot.id, message_id, tuple(recipients))
        url = self._request_url(self._origin(request), bot, message_id)
        return xml_response(w.build_status_response(message_id, "RevokeRequested", url))

    async def _delivery_infos(self, request: web.Request) -> web.StreamResponse:
        bot = self._path_bot(request)
        self._authenticate(request, bot)
        message_id = request.match_info["messageId"]
        record = self.api.record(bot.id, message_id)
        if record is None:
            raise w.not_found("messageId", message_id)
        infos = [w.DeliveryInfo(w.tel(r.number), QUERY_STATUS[r.status], _description(r))
                 for r in record.recipients]
        url = self._request_url(self._origin(request), bot, message_id) + "/deliveryInfos"
        return xml_response(w.build_delivery_infos(infos, url))

    # -- media ----------------------------------------------------------------------------

    def _content_bot(self, request: web.Request) -> ChatbotConfig:
        """The chatbot of a Content call: ``X-3GPP-Intended-Identity``, else the one whose
        appId signed the request."""
        identity = request.headers.get("X-3GPP-Intended-Identity", "").strip().strip('"')
        identity = unquote(identity.removeprefix("<").removesuffix(">"))
        if identity:
            bot = self.api.bot_by_uri(identity)
            if bot is None or bot.dialect != self.name:
                raise w.not_found("X-3GPP-Intended-Identity", identity)
            return bot
        header = request.headers.get("Authorization", "")
        if not header:
            raise w.unauthorized("Authorization header missing")
        app_id, _ = w.parse_authorization(header)
        for bot in self.api.bots():
            if bot.dialect == self.name and bot.app_id == app_id:
                return bot
        raise w.unauthorized("unknown appId")

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        bot = self._content_bot(request)
        self._authenticate(request, bot)
        if not request.content_type.lower().startswith("multipart/"):
            raise w.missing("Content", "body must be multipart/form-data with parts File "
                            "and Thumbnail")
        total = MEDIA_LIMITS["video"][0] + THUMBNAIL_LIMIT + 64 * 1024
        if request.content_length is not None and request.content_length > total:
            raise w.too_large("Content", total)
        parts: dict[str, tuple[str, str, bytes]] = {}
        try:
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    continue  # a nested multipart: not ours
                name = (part.name or "").lower()
                if name not in ("file", "thumbnail"):
                    continue
                if name in parts:
                    raise w.invalid(name.capitalize(), "appears more than once")
                filename = part.filename or ""
                ctype, limit = classify_media(part.headers.get("Content-Type", ""), filename,
                                              thumbnail=name == "thumbnail")
                limit = min(limit, self.api.config.max_file_bytes)
                buf = bytearray()
                while chunk := await part.read_chunk(65536):
                    buf += chunk
                    if len(buf) > limit:
                        raise w.too_large(name.capitalize(), limit)
                parts[name] = (ctype, filename or name, bytes(buf))
        except w.CmccError:
            raise
        except Exception as exc:  # aiohttp's multipart reader raises a variety on garbage
            raise w.missing("Content", f"malformed multipart body ({exc.__class__.__name__})"
                            ) from None
        if "file" not in parts:
            raise w.missing("Content/File")
        ctype, name, data = parts["file"]
        if not data:
            raise w.invalid("File", "empty")
        try:
            file = await self.api.files.put(bot.id, name, ctype, data)
            thumb: FileRecord | None = None
            if "thumbnail" in parts:
                tctype, tname, tdata = parts["thumbnail"]
                thumb = await self.api.files.put(bot.id, tname, tctype, tdata,
                                                 thumbnail_of=file.file_id)
        except ValueError as exc:
            raise w.CmccError(413, "POL1004", "Message part %1 is too large: %2",
                              ("File", str(exc))) from None
        body = content.ft_http_xml(_file_info(file), _file_info(thumb) if thumb else None)
        return web.Response(status=200, body=body.body,
                            headers={"Content-Type": body.content_type})

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        bot = self._content_bot(request)
        self._authenticate(request, bot)
        url = request.query.get("url") or request.headers.get("url", "")
        if not url:
            raise w.missing("url", "give the file URL in query parameter or header 'url'")
        record = self.api.files.by_url(url)
        if record is None:
            raise w.not_found("url", url)
        if record.bot_id != bot.id:
            raise w.forbidden(f"the file belongs to another chatbot than {bot.uri}")
        await self.api.files.delete(record.file_id)
        return web.Response(status=204)

    # -- notifications --------------------------------------------------------------------

    def render(self, bot: ChatbotConfig, event: MaapEvent) -> Notification | None:
        base = bot.webhook.rstrip("/")
        if not base:
            return None
        target = quote(bot.uri, safe="")
        if isinstance(event, InboundEvent):
            resource = (f"{self._public()}{self.root}/messaging/v1/inbound/registrations/"
                        f"{target}/messages/{quote(event.message_id, safe='')}")
            body = w.build_inbound_notification(
                chatbot_uri=bot.uri, sender=w.tel(event.user), message_id=event.message_id,
                content_type=event.payload.content_type, body=event.payload.body,
                conversation_id=event.conversation_id,
                contribution_id=event.contribution_id,
                date_time=w.iso_time(event.at or self.clock()), resource_url=resource,
                in_reply_to=event.in_reply_to)
            url = f"{base}/InboundMessageNotification/{target}"
        elif isinstance(event, StatusEvent):
            link = self._request_url(self._public(), bot, event.message_id)
            if event.status in REVOKE_STATUS:
                body = w.build_message_status_notification(
                    w.tel(event.user), event.message_id, REVOKE_STATUS[event.status], link)
                url = f"{base}/MessageStatusNotification/{target}"
            elif event.status in DELIVERY_STATUS:
                description = (failure_description(event.failure)
                               if event.status is Status.FAILED else SUCCESS_DESCRIPTION)
                info = w.DeliveryInfo(w.tel(event.user), DELIVERY_STATUS[event.status],
                                      description, event.message_id)
                body = w.build_delivery_info_notification(info, link)
                url = f"{base}/DeliveryInfoNotification/{target}"
            else:
                return None
        else:
            return None
        return Notification(url=url, body=body, content_type=w.XML_CONTENT_TYPE,
                            ordering_key=f"{bot.id}|{event.user}",
                            headers=self._signed(bot))

    def _signed(self, bot: ChatbotConfig) -> tuple[tuple[str, str], ...]:
        """``signature``/``timestamp``/``nonce`` when ``[maap.cmcc] notify_signing`` is on
        ([U]: the CT/CU scheme, protocols.md §10 note; the token is sha256hex(password) as in
        the CMT client; unsorted concatenation by default)."""
        cfg = self.api.config.cmcc
        if not cfg.notify_signing:
            return ()
        ts, nonce = str(int(self.clock())), str(uuid.uuid4())
        sig = signature(w.sha256hex(bot.secret), ts, nonce,
                        sort=cfg.signature_order == "sorted")
        return (("signature", sig), ("timestamp", ts), ("nonce", nonce))

    # -- OpenAPI --------------------------------------------------------------------------

    def openapi(self) -> dict[str, Any]:
        from .cmcc_openapi import document

        return document(self.paths())


def _description(state: RecipientState) -> str:
    if state.status is Status.FAILED:
        return failure_description(state.failure)
    if state.status is Status.REVOKED:
        return "Revoked"
    return SUCCESS_DESCRIPTION if state.status in DELIVERY_STATUS else ""


def _file_info(record: FileRecord) -> content.FileInfo:
    return content.FileInfo(url=record.url, content_type=record.content_type,
                            size=record.size, until=record.until, name=record.name)


def xml_response(body: bytes, *, status: int = 200,
                 headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body,
                        headers={"Content-Type": f"{w.XML_CONTENT_TYPE}; charset=utf-8",
                                 **(headers or {})})


def error_response(err: w.CmccError) -> web.Response:
    headers = {}
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="maap"'
    return xml_response(w.build_error(err), status=err.status, headers=headers)
