"""The GSMA MaaP chatbot API dialect (FNW.11-style ``bot/v1`` JSON, protocols.md §1, §9(1)).

Routes (``{root}`` = ``[maap] server_root``; every ``bot/v1`` call needs ``Authorization:
Bearer``):

- ``POST {root}/oauth2/v1/token``: OAuth2 client credentials (RFC 6749 §4.4); the client
  authenticates with ``Authorization: Basic base64(clientId:clientSecret)`` (§2.3.1) or the
  ``client_id``/``client_secret`` form fields. Also ``grant_type=refresh_token`` (§6).
- ``POST {root}/bot/v1/{botId}/messages``: one ``RCSMessage`` to one ``messageContact``.
- ``GET|PUT {root}/bot/v1/{botId}/messages/{msgId}/status``: status; ``cancelled`` revokes,
  ``displayed`` sends a read receipt for a user's message.
- ``GET {root}/bot/v1/{botId}/contactCapabilities?userContact=…|chatId=…``.
- ``POST {root}/bot/v1/{botId}/files``, ``GET|DELETE {root}/bot/v1/{botId}/files/{fileId}``.

Choices where the sources are silent ([U], documented in ``docs/maap-gsma.md``):

- ``POST …/messages`` answers **202 Accepted** with ``{"RCSMessage": {"msgId", "status":
  "pending"}, "messageContact": {…}}``; a ``msgId`` the chatbot already used answers the same
  202 body again and sends nothing (idempotent sends, protocols.md §11). ``isTyping`` is
  answered the same way with a fresh id (typing is never tracked).
- A user who is not a 5G-message user (unknown, or registered without RCS tags) → **404**
  (protocols.md §11); an RCS user who is offline is accepted and stored by the 5GMC.
- Revoking a message that already reached the terminal → **409** (the webhook gets no event).
- Errors are ``{"reason": {"text": "…"}}`` (protocols.md §1) with 400 bad JSON/field (the text
  names the JSON path), 401 token missing/invalid/expired (``WWW-Authenticate: Bearer``), 403 a
  token of another chatbot, 404 unknown chatbot/msgId/fileId/user, 409 not cancellable,
  410 expired file, 413 body/file too large, 429 rate limit (``Retry-After``).
- Webhook POST bodies: ``{"event": …, "eventId": uuid, "timestamp": ISO-8601, "messageContact":
  {"userContact", "chatId"}, "RCSMessage": {…}}``; ``messageStatus`` statuses are sent,
  delivered, displayed, failed (with ``failureReason {code, text}``), cancelled; a suggestion tap
  is ``response`` with ``RCSMessage.suggestedResponse`` = the UE's botsuggestion.response body.
  With a ``webhook_secret`` every POST carries ``X-MaaP-Signature: sha256=<hex HMAC-SHA256 of
  the raw body>`` (protocols.md §11); header name and hash are per-chatbot settings
  (``webhook_signature_header``, ``webhook_signature_algorithm``).
- ``chatId`` is ``HMAC-SHA256(clientSecret, number)`` (24 hex digits); a request naming a
  ``chatId`` the node has not shown in a webhook since it started is 404.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
import urllib.parse
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import msgspec
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..config import ChatbotConfig
from .api import MaapApi
from .cards import validate_botmessage, validate_suggestions
from .content import (
    ContentError,
    FileInfo,
    GeoPush,
    content_type_param,
    ft_http_xml,
    is_composing_xml,
    iso_utc,
    media_type,
    multipart_mixed,
    parse_ft_http_xml,
    parse_is_composing,
    parse_iso,
    parse_multipart_mixed,
    parse_push_location,
    push_location_xml,
    suggestions_payload,
    text_payload,
)
from .gsma_openapi import openapi_part
from .model import (
    BOTMESSAGE,
    FT_HTTP,
    IS_COMPOSING,
    PUSH_LOCATION,
    SHARED_CLIENT_DATA,
    SUGGESTION_RESPONSE,
    TEXT,
    Event,
    FailureCode,
    FileRecord,
    FileStatusEvent,
    InboundEvent,
    NewUserEvent,
    Notification,
    Outbound,
    Payload,
    SendResult,
    SmsFallback,
    Status,
    StatusEvent,
    TypingEvent,
)

#: Text message limit (protocols.md §11: text ≤ 3072 characters).
MAX_TEXT = 3072
MAX_ID = 128
#: Default webhook signature header (``ChatbotConfig.webhook_signature_header``).
SIGNATURE_HEADER = "X-MaaP-Signature"
SCOPE = "botmessage"

_MSG_ID = re.compile(r"^[A-Za-z0-9._~:@+=-]{1,128}$")
_E164 = re.compile(r"^\+[1-9][0-9]{4,14}$")

#: MaaP Status → GSMA ``messageStatus`` token (None: no webhook event).
STATUS_TOKEN: Mapping[Status, str | None] = {
    Status.ACCEPTED: "pending",
    Status.SENT: "sent",
    Status.DELIVERED: "delivered",
    Status.DISPLAYED: "displayed",
    Status.FAILED: "failed",
    Status.REVOKED: "cancelled",
    Status.REVOKE_FAILED: None,
    Status.DELIVERED_TO_NETWORK: "delivered",
}


class GsmaError(Exception):
    """A request the dialect refuses: HTTP ``status`` with ``{"reason": {"text": text}}``."""

    def __init__(self, status: int, text: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = dict(headers or {})


class OAuthError(Exception):
    """An RFC 6749 §5.2 token endpoint error."""

    def __init__(self, status: int, error: str, description: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = dict(headers or {})


def error_response(status: int, text: str,
                   headers: Mapping[str, str] | None = None) -> web.Response:
    body = msgspec.json.encode({"reason": {"text": text}})
    return web.Response(status=status, body=body, content_type="application/json",
                        headers=headers)


# -- request bodies (msgspec Structs; camelCase names as on the wire) ---------------------------


class MessageContact(msgspec.Struct, omit_defaults=True):
    userContact: str | None = None
    chatId: str | None = None


class FileMessage(msgspec.Struct):
    fileUrl: str
    fileName: str | None = None
    fileMIMEType: str | None = None
    fileSize: int | None = None
    thumbnailUrl: str | None = None
    thumbnailFileName: str | None = None
    thumbnailMIMEType: str | None = None
    thumbnailFileSize: int | None = None


class AudioMessage(msgspec.Struct):
    fileUrl: str
    fileName: str | None = None
    fileMIMEType: str | None = None
    fileSize: int | None = None
    playingLength: int | None = None


class GeolocationPushMessage(msgspec.Struct):
    #: ``"latitude longitude"`` (GML pos) or ``[latitude, longitude]``
    pos: str | list[float]
    label: str | None = None
    timestamp: str | None = None
    expiry: str | None = None
    timeOffset: int | None = None
    radius: float | None = None


class RCSMessage(msgspec.Struct):
    msgId: str | None = None
    textMessage: str | None = None
    fileMessage: FileMessage | None = None
    audioMessage: AudioMessage | None = None
    geolocationPushMessage: GeolocationPushMessage | None = None
    richcardMessage: dict[str, Any] | None = None
    suggestedChipList: dict[str, Any] | None = None
    isTyping: Literal["active", "idle"] | None = None
    #: extensions (documented): CPIM maap.Traffic-Type and the SIP conversation headers
    trafficType: str | None = None
    conversationId: str | None = None
    contributionId: str | None = None
    inReplyToContributionId: str | None = None


class SendRequest(msgspec.Struct):
    rcs: RCSMessage = msgspec.field(name="RCSMessage")
    contact: MessageContact = msgspec.field(name="messageContact")
    #: extension (issue 5): per-message SMS fallback, as the China JSON API's fields; absent →
    #: the chatbot's ``fallback_text`` decides
    smsSupported: bool | None = None
    smsContent: str | None = None


class StatusBody(msgspec.Struct):
    status: str


class StatusRequest(msgspec.Struct):
    rcs: StatusBody = msgspec.field(name="RCSMessage")
    contact: MessageContact | None = msgspec.field(name="messageContact", default=None)


_CONTENT_FIELDS = ("textMessage", "fileMessage", "audioMessage", "geolocationPushMessage",
                   "richcardMessage", "isTyping")

_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")


def _msgspec_problem(exc: msgspec.ValidationError) -> str:
    """``Expected `str`, got `int` - at `$.RCSMessage.textMessage``` →
    ``RCSMessage.textMessage: expected str, got int``."""
    text = str(exc)
    what, _, at = text.partition(" - at `")
    path = at.rstrip("`").removeprefix("$").lstrip(".") if at else ""
    if m := _MISSING.match(what):
        path = f"{path}.{m['field']}" if path else m["field"]
        return f"{path}: required"
    if m := _EXPECTED.match(what):
        what = f"expected {m['want']}, got {m['got']}"
    return f"{path or '$'}: {what}"


def decode(body: bytes, kind: type[Any]) -> Any:
    """Decode a JSON body into ``kind``; GsmaError(400) naming the JSON path otherwise."""
    if not body.strip():
        raise GsmaError(400, "empty body: a JSON object is required")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise GsmaError(400, _msgspec_problem(exc)) from None
    except msgspec.DecodeError as exc:
        raise GsmaError(400, f"malformed JSON: {exc}") from None


def parse_send(body: bytes) -> SendRequest:
    """Decode and check a ``POST …/messages`` body (shape, one content variant, card and
    suggestion bounds, text and id limits). Raises GsmaError(400)."""
    req: SendRequest = decode(body, SendRequest)
    rcs = req.rcs
    present = [f for f in _CONTENT_FIELDS if getattr(rcs, f) is not None]
    if len(present) != 1:
        raise GsmaError(400, f"RCSMessage: exactly one of {', '.join(_CONTENT_FIELDS)} "
                             f"required (got {', '.join(present) or 'none'})")
    if rcs.msgId is not None and not _MSG_ID.match(rcs.msgId):
        raise GsmaError(400, "RCSMessage.msgId: 1-128 characters of A-Z a-z 0-9 . _ ~ : @ "
                             "+ = -")
    for name in ("conversationId", "contributionId", "inReplyToContributionId"):
        value = getattr(rcs, name)
        if value is not None and not _MSG_ID.match(value):
            raise GsmaError(400, f"RCSMessage.{name}: 1-128 characters of A-Z a-z 0-9 . _ ~ "
                                 ": @ + = -")
    if req.smsSupported and req.smsContent is not None and not req.smsContent.strip():
        raise GsmaError(400, "smsContent: empty while smsSupported is true")
    if req.smsContent is not None and len(req.smsContent) > MAX_TEXT:
        raise GsmaError(400, f"smsContent: longer than {MAX_TEXT}")
    if rcs.textMessage is not None:
        if not rcs.textMessage:
            raise GsmaError(400, "RCSMessage.textMessage: empty")
        if len(rcs.textMessage) > MAX_TEXT:
            raise GsmaError(400, f"RCSMessage.textMessage: longer than {MAX_TEXT}")
    problems: list[str] = []
    if rcs.richcardMessage is not None:
        problems += validate_botmessage(rcs.richcardMessage, "RCSMessage.richcardMessage")
    if rcs.suggestedChipList is not None:
        if rcs.isTyping is not None:
            problems.append("RCSMessage.suggestedChipList: not allowed with isTyping")
        problems += validate_suggestions(rcs.suggestedChipList,
                                         "RCSMessage.suggestedChipList")
    for name in ("fileMessage", "audioMessage"):
        fm = getattr(rcs, name)
        if fm is None:
            continue
        for key in ("fileUrl", "thumbnailUrl"):
            url = getattr(fm, key, None)
            if url is not None and not url.startswith(("http://", "https://")):
                problems.append(f"RCSMessage.{name}.{key}: not an http(s) URL")
        for key in ("fileSize", "thumbnailFileSize", "playingLength"):
            n = getattr(fm, key, None)
            if n is not None and n < 0:
                problems.append(f"RCSMessage.{name}.{key}: negative")
    if problems:
        raise GsmaError(400, "; ".join(problems[:10]))
    return req


def _geo(push: GeolocationPushMessage) -> GeoPush:
    where = "RCSMessage.geolocationPushMessage"
    try:
        if isinstance(push.pos, str):
            lat_s, lon_s = push.pos.replace(",", " ").split()
            lat, lon = float(lat_s), float(lon_s)
        elif len(push.pos) == 2:
            lat, lon = push.pos
        else:
            raise ValueError
    except ValueError:
        raise GsmaError(400, f"{where}.pos: expected 'latitude longitude'") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise GsmaError(400, f"{where}.pos: latitude/longitude out of range")
    if push.label is not None and len(push.label) > 100:
        raise GsmaError(400, f"{where}.label: longer than 100")
    times: dict[str, float] = {}
    for key in ("timestamp", "expiry"):
        value = getattr(push, key)
        if value is not None:
            try:
                times[key] = parse_iso(value)
            except ContentError:
                raise GsmaError(400, f"{where}.{key}: not an ISO-8601 date-time") from None
    if push.radius is not None and not (0 <= push.radius <= 1e7):
        raise GsmaError(400, f"{where}.radius: out of range")
    if push.timeOffset is not None and abs(push.timeOffset) > 24 * 60:
        raise GsmaError(400, f"{where}.timeOffset: out of range")
    return GeoPush(latitude=lat, longitude=lon, label=push.label or "", radius=push.radius,
                   timestamp=times.get("timestamp", 0.0), expiry=times.get("expiry", 0.0),
                   time_offset=push.timeOffset)


def normalize_number(contact: str, where: str) -> str:
    """``+8613800000001``, ``tel:+86…``, ``sip:+86…@domain;user=phone`` → ``+86…``."""
    value = urllib.parse.unquote(contact.strip())
    for scheme in ("tel:", "sip:", "sips:"):
        if value.lower().startswith(scheme):
            value = value[len(scheme):]
    value = value.split(";", 1)[0].split("@", 1)[0]
    if not _E164.match(value):
        raise GsmaError(400, f"{where}: not an E.164 number with '+'")
    return value


# -- the dialect -------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GsmaDialect:
    """GSMA MaaP ``bot/v1`` dialect (:class:`fivegmc.maap.api.Dialect`)."""

    name = "gsma"

    def __init__(self, api: MaapApi, clock: Callable[[], float] = time.time) -> None:
        self.api = api
        self._clock = clock
        self.root = api.config.server_root.rstrip("/")
        # refresh token → bot id (RFC 6749 §6); bounded, rotated on use
        self._refresh: OrderedDict[str, str] = OrderedDict()
        # chatId → (bot id, number): anonymised ids shown in webhooks since start
        self._chat_ids: OrderedDict[str, tuple[str, str]] = OrderedDict()
        # (bot id, P2A message id) → user: for PUT displayed without messageContact
        self._inbound: OrderedDict[tuple[str, str], str] = OrderedDict()

    # -- routes --------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        base = f"{self.root}/bot/v1/{{botId}}"
        r = app.router
        r.add_post(f"{self.root}/oauth2/v1/token", self._guard(self.token))
        r.add_post(f"{base}/messages", self._guard(self.send))
        r.add_get(f"{base}/messages/{{msgId}}/status", self._guard(self.get_status),
                  allow_head=False)
        r.add_put(f"{base}/messages/{{msgId}}/status", self._guard(self.put_status))
        r.add_get(f"{base}/contactCapabilities", self._guard(self.contact_capabilities),
                  allow_head=False)
        r.add_post(f"{base}/files", self._guard(self.upload))
        r.add_get(f"{base}/files/{{fileId}}", self._guard(self.file_info), allow_head=False)
        r.add_delete(f"{base}/files/{{fileId}}", self._guard(self.delete_file))

    @staticmethod
    def _guard(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except GsmaError as exc:
                return error_response(exc.status, exc.text, exc.headers)
            except OAuthError as exc:
                body = msgspec.json.encode({"error": exc.error,
                                            "error_description": exc.description})
                return web.Response(status=exc.status, body=body,
                                    content_type="application/json",
                                    headers={"Cache-Control": "no-store", **exc.headers})
            except web.HTTPRequestEntityTooLarge:
                return error_response(413, "request body too large")
        return guarded

    async def _body(self, request: web.Request, limit: int | None = None) -> bytes:
        limit = limit or self.api.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise GsmaError(413, f"request body larger than {limit} bytes")
        body = await request.read()
        if len(body) > limit:
            raise GsmaError(413, f"request body larger than {limit} bytes")
        return body

    def _authorize(self, request: web.Request) -> ChatbotConfig:
        """The chatbot in the path, if the bearer token is its own (404/401/403 otherwise)."""
        bot_id = request.match_info["botId"]
        bot = self.api.bot(bot_id)
        if bot is None or bot.dialect != "gsma":
            raise GsmaError(404, f"unknown chatbot {bot_id[:80]!r}")
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GsmaError(401, "missing bearer token",
                            {"WWW-Authenticate": 'Bearer realm="MaaP"'})
        check = self.api.tokens.check(token.strip())
        if check.problem or check.bot_id is None:
            problem = check.problem or "invalid"
            raise GsmaError(401, f"access token {problem}",
                            {"WWW-Authenticate": f'Bearer realm="MaaP", error="invalid_token", '
                                                 f'error_description="token {problem}"'})
        if check.bot_id != bot.id:
            raise GsmaError(403, f"the access token does not belong to chatbot {bot.id}")
        return bot

    # -- OAuth2 token (RFC 6749 §4.4, §5, §6) --------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        body = await self._body(request, 8192)
        try:
            form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True,
                                         strict_parsing=False, max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            raise OAuthError(400, "invalid_request", "body is not form-urlencoded") from None
        fields = {k: v[0] for k, v in form.items() if len(v) == 1}
        if any(len(v) > 1 for v in form.values()):
            raise OAuthError(400, "invalid_request", "a parameter is repeated")
        bot = self._client(request, fields)
        grant = fields.get("grant_type", "")
        if not grant:
            raise OAuthError(400, "invalid_request", "grant_type is required")
        scope = fields.get("scope", SCOPE)
        if SCOPE not in scope.split():
            raise OAuthError(400, "invalid_scope", f"scope must be {SCOPE}")
        if grant == "refresh_token":
            old = fields.get("refresh_token", "")
            if self._refresh.get(old) != bot.id:
                raise OAuthError(400, "invalid_grant", "unknown refresh_token")
            del self._refresh[old]
        elif grant != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type",
                             "grant_type must be client_credentials or refresh_token")
        token, expires = self.api.tokens.issue(bot.id)
        refresh = secrets.token_urlsafe(32)
        self._refresh[refresh] = bot.id
        while len(self._refresh) > 10_000:
            self._refresh.popitem(last=False)
        now = self._clock()
        out = {"access_token": token, "token_type": "Bearer",
               "expires_in": max(0, int(expires - now)), "scope": SCOPE,
               "refresh_token": refresh}
        return web.Response(body=msgspec.json.encode(out), content_type="application/json",
                            headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _client(self, request: web.Request,
                fields: Mapping[str, str]) -> ChatbotConfig:
        header = request.headers.get("Authorization", "")
        scheme, _, cred = header.partition(" ")
        basic = scheme.lower() == "basic"
        if basic:
            try:
                raw = base64.b64decode(cred.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise OAuthError(401, "invalid_client", "malformed Basic credentials",
                                 {"WWW-Authenticate": 'Basic realm="MaaP"'}) from None
            cid, sep, secret = raw.partition(":")
            if not sep:
                raise OAuthError(401, "invalid_client", "malformed Basic credentials",
                                 {"WWW-Authenticate": 'Basic realm="MaaP"'})
            cid, secret = urllib.parse.unquote(cid), urllib.parse.unquote(secret)
        elif "client_id" in fields:
            cid, secret = fields["client_id"], fields.get("client_secret", "")
        else:
            raise OAuthError(401, "invalid_client", "client authentication required",
                             {"WWW-Authenticate": 'Basic realm="MaaP"'})
        for bot in self.api.bots():
            if bot.dialect == "gsma" and hmac.compare_digest(bot.app_id.encode(),
                                                             cid.encode()):
                if hmac.compare_digest(bot.secret.encode(), secret.encode()):
                    return bot
                break
        headers = {"WWW-Authenticate": 'Basic realm="MaaP"'} if basic else {}
        raise OAuthError(401, "invalid_client", "unknown client or wrong secret", headers)

    # -- messages ------------------------------------------------------------------------------

    def _contact(self, bot: ChatbotConfig, contact: MessageContact | None,
                 where: str) -> str:
        if contact is not None and contact.userContact:
            return normalize_number(contact.userContact, f"{where}.userContact")
        if contact is not None and contact.chatId:
            known = self._chat_ids.get(contact.chatId)
            if known is None or known[0] != bot.id:
                raise GsmaError(404, f"{where}.chatId: unknown chatId")
            return known[1]
        raise GsmaError(400, f"{where}: userContact or chatId required")

    async def _reachable(self, bot: ChatbotConfig, number: str, sms_ok: bool) -> None:
        """404 unless the user is a 5G-message user (protocols.md §11): unknown (OPTIONS 404)
        or IMS-only (200 without RCS tags) fail; an RCS user who is offline (OPTIONS 480,
        ``rcs`` true, ``registered`` false) passes: the 5GMC stores the message. When SMS
        fallback is allowed (``sms_ok``) SMS-only users are reached too."""
        caps = await self.api.capabilities(bot.id, number)
        if caps.known and not caps.rcs and sms_ok:
            return
        if not caps.known or not caps.rcs:
            raise GsmaError(404, f"{number} is not a 5G-message user")

    @staticmethod
    def _fallback(bot: ChatbotConfig, req: SendRequest, msg_id: str) -> SmsFallback:
        """GSMA defines no per-message fallback field ([U]): the request's ``smsSupported`` /
        ``smsContent`` (the China JSON fields, accepted as an extension) when given, else the
        chatbot's ``fallback_text``."""
        default = bot.fallback_text.replace("{messageId}", msg_id)
        if req.smsSupported is None:
            return SmsFallback(bool(default), default)
        text = req.smsContent or default
        return SmsFallback(bool(req.smsSupported and text), text)

    def _accepted(self, msg_id: str, number: str, status: str = "pending") -> web.Response:
        body = {"RCSMessage": {"msgId": msg_id, "status": status},
                "messageContact": {"userContact": number}}
        return web.Response(status=202, body=msgspec.json.encode(body),
                            content_type="application/json")

    async def send(self, request: web.Request) -> web.Response:
        bot = self._authorize(request)
        req = parse_send(await self._body(request))
        number = self._contact(bot, req.contact, "messageContact")
        rcs = req.rcs
        if rcs.isTyping is None and rcs.msgId and self.api.record(bot.id, rcs.msgId):
            return self._accepted(rcs.msgId, number)  # idempotent: nothing resent
        if not self.api.allow(bot.id):
            raise GsmaError(429, f"chatbot {bot.id} is over its rate limit",
                            {"Retry-After": "1"})
        traffic = rcs.trafficType or ""
        if traffic and traffic not in bot.traffic_types:
            raise GsmaError(403, f"RCSMessage.trafficType: {traffic[:40]!r} is not allowed "
                                 f"for chatbot {bot.id}")
        try:
            payload = self.payload(bot, rcs)
        except ContentError as exc:
            raise GsmaError(400, f"RCSMessage: {exc}") from None
        typing = rcs.isTyping is not None
        msg_id = uuid.uuid4().hex if typing or not rcs.msgId else rcs.msgId
        fallback = self._fallback(bot, req, msg_id)
        await self._reachable(bot, number, fallback.allowed and not typing)
        out = Outbound(
            bot_id=bot.id, recipients=(number,), payload=payload, message_id=msg_id,
            conversation_id=rcs.conversationId or "", contribution_id=rcs.contributionId or "",
            in_reply_to=rcs.inReplyToContributionId or "", traffic_type=traffic,
            dispositions=() if typing else ("positive-delivery", "display"),
            is_typing=typing,
            fallback=fallback,
        )
        try:
            result = await self.api.send(out)
        except ValueError as exc:
            raise GsmaError(400, str(exc)) from None
        return self._send_answer(result, number)

    def _send_answer(self, result: SendResult, number: str) -> web.Response:
        for _, status, failure in result.recipients:
            if status is Status.FAILED and failure in (FailureCode.TERMINAL_NOT_FOUND,
                                                       FailureCode.NOT_5G_MESSAGE_TERMINAL):
                raise GsmaError(404, f"{number} is not a 5G-message user")
        return self._accepted(result.message_id, number)

    def payload(self, bot: ChatbotConfig, rcs: RCSMessage) -> Payload:
        """The CPIM payload for a checked ``RCSMessage`` (protocols.md §3)."""
        content: Payload
        if rcs.textMessage is not None:
            content = text_payload(rcs.textMessage)
        elif rcs.fileMessage is not None:
            fm = rcs.fileMessage
            main = self._file_info("RCSMessage.fileMessage", fm.fileUrl, fm.fileName,
                                   fm.fileMIMEType, fm.fileSize)
            thumb = None
            if fm.thumbnailUrl:
                thumb = self._file_info("RCSMessage.fileMessage.thumbnail", fm.thumbnailUrl,
                                        fm.thumbnailFileName, fm.thumbnailMIMEType,
                                        fm.thumbnailFileSize)
            content = ft_http_xml(main, thumb)
        elif rcs.audioMessage is not None:
            am = rcs.audioMessage
            info = self._file_info("RCSMessage.audioMessage", am.fileUrl, am.fileName,
                                   am.fileMIMEType, am.fileSize)
            content = ft_http_xml(FileInfo(info.url, info.content_type, info.size, info.until,
                                           info.name, am.playingLength or 0))
        elif rcs.geolocationPushMessage is not None:
            content = push_location_xml(_geo(rcs.geolocationPushMessage), bot.uri)
        elif rcs.richcardMessage is not None:
            content = Payload(BOTMESSAGE, msgspec.json.encode(rcs.richcardMessage))
        else:
            return is_composing_xml(rcs.isTyping == "active")
        if rcs.suggestedChipList is not None:
            try:
                return multipart_mixed([content, suggestions_payload(rcs.suggestedChipList)])
            except ContentError as exc:
                raise GsmaError(400, f"RCSMessage: {exc}") from None
        return content

    def _file_info(self, where: str, url: str, name: str | None, mime: str | None,
                   size: int | None) -> FileInfo:
        """A file reference: a MaaP file URL is filled from its record (410 if expired);
        another URL needs fileMIMEType and fileSize and is valid for ``file_ttl_s``."""
        now = self._clock()
        rec = self.api.files.by_url(url)
        if rec is not None:
            if rec.until <= now:
                raise GsmaError(410, f"{where}: file {rec.file_id} has expired")
            return FileInfo(rec.url, mime or rec.content_type, rec.size, rec.until,
                            name or rec.name)
        if not mime or size is None:
            raise GsmaError(400, f"{where}: a file not uploaded to this MaaP needs "
                                 "MIMEType and FileSize")
        if "/" not in mime or len(mime) > 255:
            raise GsmaError(400, f"{where}: not a media type")
        return FileInfo(url, mime, size, now + self.api.config.file_ttl_s, name or "")

    # -- status --------------------------------------------------------------------------------

    async def get_status(self, request: web.Request) -> web.Response:
        bot = self._authorize(request)
        msg_id = request.match_info["msgId"]
        rec = self.api.record(bot.id, msg_id)
        if rec is None or not rec.recipients:
            raise GsmaError(404, f"unknown msgId {msg_id[:80]!r}")
        r = rec.recipients[0]
        status = STATUS_TOKEN.get(r.status) or "sent"
        rcs: dict[str, Any] = {"msgId": msg_id, "status": status,
                               "timestamp": iso_utc(r.updated_at)}
        if r.failure is not None:
            rcs["failureReason"] = {"code": int(r.failure), "text": r.failure.name}
        body = {"RCSMessage": rcs, "messageContact": {"userContact": r.number}}
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")

    async def put_status(self, request: web.Request) -> web.Response:
        bot = self._authorize(request)
        msg_id = request.match_info["msgId"]
        req: StatusRequest = decode(await self._body(request), StatusRequest)
        status = req.rcs.status
        if status == "cancelled":
            rec = self.api.record(bot.id, msg_id)
            if rec is None:
                raise GsmaError(404, f"unknown msgId {msg_id[:80]!r}")
            outcomes = await self.api.revoke(bot.id, msg_id)
            if not outcomes or any(s is not Status.REVOKED for s in outcomes.values()):
                raise GsmaError(409, f"message {msg_id} already reached the user; "
                                     "not cancelled")
            result = "cancelled"
        elif status == "displayed":
            user = self._inbound.get((bot.id, msg_id))
            if req.contact is not None and (req.contact.userContact or req.contact.chatId):
                user = self._contact(bot, req.contact, "messageContact")
            if user is None or not await self.api.displayed(bot.id, user, msg_id):
                raise GsmaError(404, f"no message {msg_id[:80]!r} from that user")
            result = "displayed"
        else:
            raise GsmaError(400, "RCSMessage.status: must be cancelled or displayed")
        body = {"RCSMessage": {"msgId": msg_id, "status": result}}
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")

    # -- capabilities --------------------------------------------------------------------------

    async def contact_capabilities(self, request: web.Request) -> web.Response:
        bot = self._authorize(request)
        q = request.query
        contact = MessageContact(userContact=q.get("userContact"), chatId=q.get("chatId"))
        number = self._contact(bot, contact, "query")
        caps = await self.api.capabilities(bot.id, number)
        if not caps.known or not caps.rcs:
            raise GsmaError(404, f"{number} is not a 5G-message user")
        tags = [t.lower() for t in caps.feature_tags]
        features: list[str] = []
        if caps.chatbot:
            features += ["RICHCARD_STANDALONE", "RICHCARD_CAROUSEL", "ACTION_OPEN_URL",
                         "ACTION_DIAL", "ACTION_CREATE_CALENDAR_EVENT",
                         "ACTION_SHARE_LOCATION", "ACTION_VIEW_LOCATION"]
        if any("fthttp" in t for t in tags):
            features.append("FILE_TRANSFER")
        if any("geopush" in t or "geosms" in t for t in tags):
            features.append("GEOLOCATION_PUSH")
        body = {"messageContact": {"userContact": number}, "online": caps.registered,
                "chatbotCommunication": caps.chatbot, "features": features,
                "featureTags": list(caps.feature_tags)}
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")

    # -- files ---------------------------------------------------------------------------------

    @staticmethod
    def _file_json(rec: FileRecord, thumb: FileRecord | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"fileId": rec.file_id, "fileUrl": rec.url,
                               "fileName": rec.name, "fileMIMEType": rec.content_type,
                               "fileSize": rec.size, "until": iso_utc(rec.until)}
        if thumb is not None:
            out.update(thumbnailFileId=thumb.file_id, thumbnailUrl=thumb.url,
                       thumbnailFileName=thumb.name, thumbnailMIMEType=thumb.content_type,
                       thumbnailFileSize=thumb.size)
        return out

    async def _part_bytes(self, part: BodyPartReader, limit: int, name: str) -> bytes:
        data = bytearray()
        while chunk := await part.read_chunk(65536):
            data += chunk
            if len(data) > limit:
                raise GsmaError(413, f"{name}: larger than {limit} bytes")
        return bytes(data)

    async def upload(self, request: web.Request) -> web.Response:
        bot = self._authorize(request)
        if media_type(request.content_type) != "multipart/form-data" or not \
                content_type_param(request.headers.get("Content-Type", ""), "boundary"):
            raise GsmaError(400, "body must be multipart/form-data")
        limit = self.api.config.max_file_bytes
        if request.content_length is not None and request.content_length > 2 * limit + 65536:
            raise GsmaError(413, f"upload larger than {limit} bytes")
        fields: dict[str, str] = {}
        files: dict[str, tuple[str, str, bytes]] = {}
        try:
            reader = await request.multipart()
            for _ in range(20):
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    raise GsmaError(400, "nested multipart parts are not accepted")
                name = part.name or ""
                if name in ("fileContent", "thumbnail", "thumbnailContent"):
                    key = "thumbnail" if name.startswith("thumbnail") else "file"
                    data = await self._part_bytes(part, limit, name)
                    ctype = part.headers.get("Content-Type", "application/octet-stream")
                    files[key] = (part.filename or "", media_type(ctype), data)
                else:
                    raw = await self._part_bytes(part, 4096, name or "field")
                    fields[name] = raw.decode("utf-8", "replace").strip()
            else:
                raise GsmaError(400, "too many multipart parts")
        except (ValueError, EOFError, HttpProcessingError) as exc:  # malformed multipart
            raise GsmaError(400, f"malformed multipart body: {exc}") from None
        if "fileUrl" in fields:
            raise GsmaError(400, "fileUrl: uploads by URL are not supported; send fileContent")
        if "file" not in files:
            raise GsmaError(400, "fileContent: required")
        now = self._clock()
        ttl: float | None = None
        if fields.get("until"):
            try:
                ttl = parse_iso(fields["until"]) - now
            except ContentError:
                raise GsmaError(400, "until: not an ISO-8601 date-time") from None
            if ttl <= 0:
                raise GsmaError(400, "until: must be in the future")
        fname, ftype, fdata = files["file"]
        ftype = fields.get("fileType") or ftype
        try:
            rec = await self.api.files.put(bot.id, fname or "file", ftype, fdata, ttl_s=ttl)
            thumb = None
            if "thumbnail" in files:
                tname, ttype, tdata = files["thumbnail"]
                thumb = await self.api.files.put(bot.id, tname or "thumbnail", ttype, tdata,
                                                 ttl_s=ttl, thumbnail_of=rec.file_id)
        except ValueError as exc:
            status = 413 if "more than" in str(exc) else 400
            raise GsmaError(status, str(exc)) from None
        return web.Response(status=201, body=msgspec.json.encode(self._file_json(rec, thumb)),
                            content_type="application/json",
                            headers={"Location": rec.url})

    def _own_file(self, bot: ChatbotConfig, file_id: str) -> FileRecord:
        rec = self.api.files.get(file_id)
        if rec is None or rec.bot_id != bot.id:
            raise GsmaError(404, f"unknown fileId {file_id[:80]!r}")
        return rec

    async def file_info(self, request: web.Request) -> web.Response:
        bot = self._authorize(request)
        rec = self._own_file(bot, request.match_info["fileId"])
        if rec.until <= self._clock():
            raise GsmaError(410, f"file {rec.file_id} has expired")
        return web.Response(body=msgspec.json.encode(self._file_json(rec)),
                            content_type="application/json")

    async def delete_file(self, request: web.Request) -> web.Response:
        bot = self._authorize(request)
        rec = self._own_file(bot, request.match_info["fileId"])
        await self.api.files.delete(rec.file_id)
        return web.Response(status=204)

    # -- webhooks (protocols.md §1 "Webhook", §11) ---------------------------------------------

    def chat_id(self, bot: ChatbotConfig, number: str) -> str:
        cid = hmac.new(bot.secret.encode(), number.encode(), hashlib.sha256).hexdigest()[:24]
        self._chat_ids[cid] = (bot.id, number)
        self._chat_ids.move_to_end(cid)
        while len(self._chat_ids) > 100_000:
            self._chat_ids.popitem(last=False)
        return cid

    def render(self, bot: ChatbotConfig, event: Event) -> Notification | None:
        if not bot.webhook:
            return None
        user = ""
        body: dict[str, Any]
        match event:
            case StatusEvent():
                token = STATUS_TOKEN.get(event.status)
                if token is None or token == "pending":
                    return None
                user = event.user
                rcs: dict[str, Any] = {"msgId": event.message_id, "status": token}
                if event.failure is not None:
                    rcs["failureReason"] = {"code": int(event.failure),
                                            "text": event.failure.name}
                if event.status is Status.DELIVERED_TO_NETWORK:
                    rcs["deliveredVia"] = "sms"
                body = {"event": "messageStatus", "RCSMessage": rcs}
            case InboundEvent():
                user = event.user
                self._inbound[(event.bot_id, event.message_id)] = user
                while len(self._inbound) > 100_000:
                    self._inbound.popitem(last=False)
                kind, rcs = inbound_rcs(event.payload)
                rcs = {"msgId": event.message_id, **rcs}
                body = {"event": kind, "RCSMessage": rcs}
                if event.conversation_id:
                    body["conversationId"] = event.conversation_id
                if event.contribution_id:
                    body["contributionId"] = event.contribution_id
                if event.in_reply_to:
                    body["inReplyToContributionId"] = event.in_reply_to
                if event.via_sms:
                    body["viaSms"] = True
            case TypingEvent():
                user = event.user
                body = {"event": "isTyping",
                        "RCSMessage": {"isTyping": "active" if event.active else "idle"}}
            case NewUserEvent():
                user = event.user
                body = {"event": "newUser"}
            case FileStatusEvent():
                body = {"event": "fileStatus", "fileId": event.file_id, "status": event.state}
            case _:
                return None
        out: dict[str, Any] = {"event": body.pop("event"), "eventId": uuid.uuid4().hex,
                               "timestamp": iso_utc(event.at or self._clock())}
        if user:
            out["messageContact"] = {"userContact": user, "chatId": self.chat_id(bot, user)}
        out.update(body)
        raw = msgspec.json.encode(out)
        headers: tuple[tuple[str, str], ...] = ()
        if bot.webhook_secret:
            headers = (webhook_signature(bot, raw),)
        return Notification(url=bot.webhook, body=raw, content_type="application/json",
                            ordering_key=f"{bot.id}|{user}", headers=headers)

    def openapi(self) -> dict[str, Any]:
        return openapi_part(self.root, MAX_TEXT)


def webhook_signature(bot: ChatbotConfig, raw: bytes) -> tuple[str, str]:
    """The webhook signature header (protocols.md §11 [U]: name and HMAC hash are per-chatbot
    settings): ``(webhook_signature_header, "<algorithm>=<hex HMAC(webhook_secret, raw)>")``."""
    algorithm = bot.webhook_signature_algorithm
    mac = hmac.new(bot.webhook_secret.encode(), raw, algorithm).hexdigest()
    return bot.webhook_signature_header, f"{algorithm}={mac}"


def inbound_rcs(payload: Payload) -> tuple[str, dict[str, Any]]:
    """A UE's CPIM payload as a webhook ``event`` kind and ``RCSMessage`` members."""
    ctype = media_type(payload.content_type)
    try:
        if ctype.startswith("multipart/"):
            parts = parse_multipart_mixed(payload)
            for part in parts:  # a tap wins over the text that may accompany it
                if media_type(part.content_type) == SUGGESTION_RESPONSE:
                    return inbound_rcs(part)
            return inbound_rcs(parts[0])
        if ctype == TEXT or ctype.startswith("text/"):
            return "message", {"textMessage": payload.body.decode("utf-8", "replace")}
        if ctype == SUGGESTION_RESPONSE:
            return "response", {"suggestedResponse": msgspec.json.decode(payload.body)}
        if ctype == FT_HTTP:
            ft = parse_ft_http_xml(payload.body)
            f = ft.file
            if f.playing_length is not None:
                return "message", {"audioMessage": {
                    "fileUrl": f.url, "fileName": f.name, "fileMIMEType": f.content_type,
                    "fileSize": f.size, "playingLength": f.playing_length}}
            fm: dict[str, Any] = {"fileUrl": f.url, "fileName": f.name,
                                  "fileMIMEType": f.content_type, "fileSize": f.size}
            if ft.thumbnail is not None:
                t = ft.thumbnail
                fm.update(thumbnailUrl=t.url, thumbnailMIMEType=t.content_type,
                          thumbnailFileSize=t.size)
            return "message", {"fileMessage": fm}
        if ctype == PUSH_LOCATION:
            g = parse_push_location(payload.body)
            geo: dict[str, Any] = {"pos": f"{g.latitude:.9g} {g.longitude:.9g}"}
            if g.label:
                geo["label"] = g.label
            if g.radius is not None:
                geo["radius"] = g.radius
            if g.timestamp:
                geo["timestamp"] = iso_utc(g.timestamp)
            if g.expiry:
                geo["expiry"] = iso_utc(g.expiry)
            if g.time_offset is not None:
                geo["timeOffset"] = g.time_offset
            return "message", {"geolocationPushMessage": geo}
        if ctype == SHARED_CLIENT_DATA:
            return "message", {"sharedData": msgspec.json.decode(payload.body)}
        if ctype == IS_COMPOSING:
            return "isTyping", {"isTyping": "active" if parse_is_composing(payload.body)
                                else "idle"}
    except (ContentError, msgspec.DecodeError, UnicodeDecodeError) as exc:
        return "message", {"unreadableContent": {"contentType": payload.content_type,
                                                 "reason": str(exc)[:200]}}
    return "message", {"unsupportedContent": {"contentType": payload.content_type,
                                              "size": len(payload.body)}}

