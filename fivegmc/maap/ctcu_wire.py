"""China Telecom / China Unicom CSP interface (spec V1.0.4, protocols.md §2B, §10): the wire
format, pure and sync (no I/O, time passed in).

- request bodies as msgspec Structs (:class:`TokenRequest`, :class:`SendRequest`,
  :class:`RevokeRequest`) and their conversion to the MaaP model (:func:`build_payload`,
  :func:`parse_address`, :func:`dispositions`);
- the return codes and :class:`CtcuError` (HTTP status + ``errorCode`` + ``errorMessage``);
- the pushes to the CSP (:func:`render_event`): ``messageNotification`` for uplink messages,
  ``deliveryNotification`` for statuses, ``notifyInfoNotification/…/notice/rcsspam`` for spam
  reports, each signed with ``signature``/``timestamp``/``nonce`` (:func:`signature`);
- the notify-URL verification request (:func:`verification_headers`,
  :func:`verification_ok`).

The HTTP side lives in :mod:`fivegmc.maap.ctcu`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import msgspec

from ..config import ChatbotConfig
from .cards import validate_botmessage, validate_suggestions
from .content import (
    ContentError,
    FileInfo,
    ft_http_xml,
    media_type,
    multipart_mixed,
    parse_ft_http_xml,
    parse_multipart_mixed,
    safe_xml,
    text_payload,
)
from .model import (
    BOTMESSAGE,
    BOTSUGGESTION,
    FT_HTTP,
    PUSH_LOCATION,
    SPAM_REPORT,
    TEXT,
    Event,
    FailureCode,
    FileRecord,
    InboundEvent,
    Notification,
    Payload,
    Status,
    StatusEvent,
)

# -- return codes (protocols.md §10 "Return codes") -------------------------------------------

OK = 0
BUSY = -1
INTERNAL = -2
PARAMETER = 20002
OVER_RATE = 30003
CALLBACK_FAILED = 30006
SENDER_MISMATCH = 30008
BAD_CREDENTIAL = 40001
BAD_FILE_TYPE = 40005
BAD_FILE_SIZE = 40006
BAD_MEDIA_URL = 40007
BAD_MESSAGE_TYPE = 40008
BAD_BUTTON_COUNT = 40016
BAD_BUTTON_TYPE = 40017
BAD_BUTTON_NAME = 40018
BAD_BUTTON_KEY = 40019
BAD_BUTTON_URL = 40020
BAD_TEXT_LENGTH = 40021
TEMP_FILE_EXPIRED = 40022
TOO_MANY_FILES = 40040
MISSING_TOKEN = 41001
MISSING_APP_ID = 41002
MISSING_APP_KEY = 41004
MISSING_MEDIA = 41005
MISSING_MEDIA_URL = 41006
TOKEN_EXPIRED = 42001
EMPTY_MEDIA = 44001
EMPTY_POST = 44002
API_LIMIT = 45001
PARSE_ERROR = 47001
NOT_AUTHORISED = 48001

#: Every code this dialect answers with (the OpenAPI document lists them).
CODES: Mapping[int, str] = {
    OK: "success", BUSY: "system busy", INTERNAL: "internal error",
    PARAMETER: "parameter error", OVER_RATE: "over the per-second send limit",
    SENDER_MISMATCH: "chatbotId and senderAddress do not match",
    BAD_CREDENTIAL: "bad appKey or invalid accessToken", BAD_FILE_TYPE: "bad file type",
    BAD_FILE_SIZE: "bad file size", BAD_MEDIA_URL: "bad media url",
    BAD_MESSAGE_TYPE: "bad message type", BAD_BUTTON_COUNT: "bad button count",
    BAD_BUTTON_TYPE: "bad button type", BAD_BUTTON_NAME: "bad button name length",
    BAD_BUTTON_KEY: "bad button key length", BAD_BUTTON_URL: "bad button url length",
    BAD_TEXT_LENGTH: "bad text length", TEMP_FILE_EXPIRED: "temporary file expired",
    TOO_MANY_FILES: "too many files", MISSING_TOKEN: "missing accessToken",
    MISSING_APP_ID: "missing appId", MISSING_APP_KEY: "missing appKey",
    MISSING_MEDIA: "missing media file data", MISSING_MEDIA_URL: "missing media url",
    TOKEN_EXPIRED: "accessToken expired", EMPTY_MEDIA: "media file is empty",
    EMPTY_POST: "POST body is empty", API_LIMIT: "API call limit exceeded",
    PARSE_ERROR: "JSON parse error", NOT_AUTHORISED: "API not authorised",
}


class CtcuError(Exception):
    """An error answer: HTTP ``status`` with ``{"errorCode": code, "errorMessage": ...}``.

    HTTP status per case (dialect choice, see docs/maap-ctcu.md): 200 for application errors
    as the real platform does, 400 for unreadable bodies, 401/403 for authentication, 404 for
    an unknown chatbot, 413 for bodies above the limits, 429 for rate limits."""

    def __init__(self, code: int, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def body(self, **extra: Any) -> dict[str, Any]:
        return {"errorCode": self.code, "errorMessage": self.message, **extra}


# -- request bodies -------------------------------------------------------------------------


class TokenRequest(msgspec.Struct):
    appId: str | None = None
    appKey: str | None = None


class ContentItem(msgspec.Struct):
    """One ``messageList`` entry. ``contentText`` is a string (text, base64) or a JSON
    object/array (cards, chip lists, file lists)."""

    contentType: str
    contentText: str | dict[str, Any] | list[Any]
    contentEncoding: str | None = None


class ServiceCapability(msgspec.Struct):
    capabilityId: str | None = None
    version: str | None = None


class SendRequest(msgspec.Struct):
    messageList: list[ContentItem]
    destinationAddress: list[str]
    messageId: str | None = None
    senderAddress: str | None = None
    conversationId: str | None = None
    contributionId: str | None = None
    serviceCapability: list[ServiceCapability] | None = None
    trafficType: str | None = None
    smsSupported: bool | None = None
    smsContent: str | None = None
    imFormat: str | None = None
    inReplyTo: str | None = None
    reportRequest: list[str] | None = None
    storeSupported: bool | None = None
    clientCorrelator: str | None = None


class RevokeRequest(msgspec.Struct):
    messageId: str
    status: str
    destinationAddress: list[str] | None = None


_T = TypeVar("_T")
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {
    t: msgspec.json.Decoder(t) for t in (TokenRequest, SendRequest, RevokeRequest)
}


def decode(body: bytes, kind: type[_T]) -> _T:
    """Decode a JSON request body; 400 + 47001 (syntax) or 20002 (shape, with the path)."""
    if not body.strip():
        raise CtcuError(EMPTY_POST, "request body is empty", 400)
    try:
        value: _T = _DECODERS[kind].decode(body)
    except msgspec.ValidationError as exc:
        raise CtcuError(PARAMETER, f"invalid request body: {exc}", 400) from None
    except msgspec.DecodeError as exc:
        raise CtcuError(PARSE_ERROR, f"JSON parse error: {exc}", 400) from None
    return value


# -- field checks ----------------------------------------------------------------------------

TRAFFIC_TYPES = ("advertisement", "payment", "premium", "subscription", "token")
IM_FORMATS = ("IM", "LargerMode", "PagerMode")
REPORTS = ("sent", "failed", "delivered", "displayed", "deliveredToNetwork")
MAX_TEXT = 2000
MAX_ID = 128
_E164 = re.compile(r"\+[1-9][0-9]{5,14}")
# Ids end up in SIP headers and CPIM: visible ASCII only, no spaces, no CR/LF.
_ID = re.compile(r"[\x21-\x7e]{1," + str(MAX_ID) + "}")
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]{0,256}")


def check_id(value: str | None, field: str) -> str:
    """An optional id field: "" when absent, else 1–128 visible ASCII characters."""
    if value is None or value == "":
        return ""
    if not _ID.fullmatch(value):
        raise CtcuError(PARAMETER, f"{field}: expected 1-{MAX_ID} visible ASCII characters")
    return value


def check_printable(value: str | None, field: str) -> str:
    if value is None:
        return ""
    if not _PRINTABLE.fullmatch(value):
        raise CtcuError(PARAMETER, f"{field}: at most 256 characters, no control characters")
    return value


def parse_address(value: str, field: str) -> str:
    """``tel:+86…`` (also ``+86…`` and ``sip:+86…@host``) → ``+86…``; 20002 otherwise."""
    v = value.strip()
    low = v.lower()
    if low.startswith("tel:"):
        v = v[4:]
    elif low.startswith(("sip:", "sips:")):
        v = v.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0]
    if not _E164.fullmatch(v):
        raise CtcuError(PARAMETER, f"{field}: expected tel:+<E.164 number>, got {value[:40]!r}")
    return v


def parse_addresses(values: list[str], field: str) -> tuple[str, ...]:
    """Distinct numbers in request order."""
    seen: dict[str, None] = {}
    for i, v in enumerate(values):
        seen[parse_address(v, f"{field}[{i}]")] = None
    return tuple(seen)


def dispositions(report: list[str] | None) -> tuple[str, ...] | None:
    """IMDN dispositions asked for by ``reportRequest`` (None: the MaaP default)."""
    if report is None:
        return None
    for i, r in enumerate(report):
        if r not in REPORTS:
            raise CtcuError(PARAMETER, f"reportRequest[{i}]: expected one of "
                                       f"{', '.join(REPORTS)}")
    out = []
    if "delivered" in report:
        out.append("positive-delivery")
    if "failed" in report:
        out.append("negative-delivery")
    if "displayed" in report:
        out.append("display")
    return tuple(out)


# -- messageList → CPIM payload (protocols.md §2B, §3, §10 "Send") ------------------------------

#: CT/CU name the file type without the ``+xml`` suffix.
FT_HTTP_CTCU = "application/vnd.gsma.rcs-ft-http"
_JSON_TYPES = (BOTMESSAGE, BOTSUGGESTION)

#: Looks up a media URL handed out by this platform (None: not ours).
MediaLookup = Callable[[str], FileRecord | None]


def _card_code(problem: str) -> int:
    """The V1.0.4 return code closest to a card/suggestion problem from cards.py."""
    path, _, what = problem.partition(": ")
    last = path.rsplit(".", 1)[-1]
    if "suggestions" in last and ("more than" in what or "fewer than" in what):
        return BAD_BUTTON_COUNT
    if last.startswith("displayText"):
        return BAD_BUTTON_NAME
    if last.startswith(("postback", "data")):
        return BAD_BUTTON_KEY
    if last.lower().endswith("url") and "longer" in what:
        return BAD_BUTTON_URL
    if "exactly one of" in what and ("reply" in what or "Action" in what):
        return BAD_BUTTON_TYPE
    if last in ("title", "description") and ("longer" in what or "empty" in what):
        return BAD_TEXT_LENGTH
    return PARAMETER


def _raise_card(problems: list[str], field: str) -> None:
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CtcuError(_card_code(first), f"{field}.{first}{more}")


def _raw_bytes(item: ContentItem, field: str) -> bytes | None:
    """The item's bytes when contentText is a string (decoded from base64 if so marked)."""
    enc = (item.contentEncoding or "utf8").lower().replace("-", "")
    if enc not in ("utf8", "base64"):
        raise CtcuError(PARAMETER, f"{field}.contentEncoding: expected utf8 or base64")
    text = item.contentText
    if not isinstance(text, str):
        if enc == "base64":
            raise CtcuError(PARAMETER, f"{field}.contentText: base64 content must be a string")
        return None
    if enc == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise CtcuError(PARAMETER, f"{field}.contentText: not valid base64") from None
    return text.encode("utf-8", "surrogatepass")


def _json_content(item: ContentItem, field: str) -> Any:
    raw = _raw_bytes(item, field)
    if raw is None:
        return item.contentText
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise CtcuError(PARSE_ERROR, f"{field}.contentText: not a JSON document") from None


def _check_media(url: Any, path: str, lookup: MediaLookup, now: float) -> FileRecord:
    if not isinstance(url, str) or not url:
        raise CtcuError(BAD_MEDIA_URL, f"{path}: missing media url")
    rec = lookup(url)
    if rec is None:
        raise CtcuError(BAD_MEDIA_URL, f"{path}: {url[:100]!r} was not uploaded to this "
                                       "platform (medias/upload)")
    if now >= rec.until:
        raise CtcuError(TEMP_FILE_EXPIRED, f"{path}: {url[:100]!r} has expired")
    return rec


def _card_media(card: Any) -> Iterator[tuple[str, Any]]:
    message = card.get("message", {}) if isinstance(card, dict) else {}
    if not isinstance(message, dict):
        return
    single = message.get("generalPurposeCard")
    carousel = message.get("generalPurposeCardCarousel")
    contents: list[tuple[str, Any]] = []
    if isinstance(single, dict):
        contents.append(("message.generalPurposeCard.content", single.get("content")))
    if isinstance(carousel, dict) and isinstance(carousel.get("content"), list):
        contents += [(f"message.generalPurposeCardCarousel.content[{i}]", c)
                     for i, c in enumerate(carousel["content"])]
    for path, content in contents:
        media = content.get("media") if isinstance(content, dict) else None
        if isinstance(media, dict):
            for key in ("mediaUrl", "thumbnailUrl"):
                if key in media:
                    yield f"{path}.media.{key}", media[key]


def _file_infos(item: ContentItem, field: str, lookup: MediaLookup,
                now: float) -> Payload:
    """A CT/CU file message (a list of ``{type, url, …}`` objects) → FT-over-HTTP XML."""
    raw = _raw_bytes(item, field)
    if raw is not None and raw.lstrip().startswith(b"<"):
        try:
            ft = parse_ft_http_xml(raw)
        except ContentError as exc:
            raise CtcuError(PARAMETER, f"{field}.contentText: {exc}") from None
        for info, what in ((ft.file, "file"), (ft.thumbnail, "thumbnail")):
            if info is not None:
                _check_media(info.url, f"{field}.contentText.{what}", lookup, now)
        return Payload(FT_HTTP, raw)
    value = _json_content(item, field)
    files = [value] if isinstance(value, dict) else value
    if not isinstance(files, list) or not files:
        raise CtcuError(PARAMETER, f"{field}.contentText: expected an array of file objects")
    if len(files) > 2:
        raise CtcuError(TOO_MANY_FILES, f"{field}.contentText: at most 2 files (file and "
                                        "thumbnail)")
    found: dict[str, FileInfo] = {}
    for i, f in enumerate(files):
        path = f"{field}.contentText[{i}]"
        if not isinstance(f, dict):
            raise CtcuError(PARAMETER, f"{path}: expected an object")
        kind = f.get("type", "file")
        if kind not in ("file", "thumbnail") or kind in found:
            raise CtcuError(PARAMETER, f"{path}.type: expected one 'file' and at most one "
                                       "'thumbnail'")
        rec = _check_media(f.get("url"), f"{path}.url", lookup, now)
        if kind == "thumbnail" and (not rec.content_type.startswith("image/")
                                    or rec.size > THUMBNAIL_MAX):
            raise CtcuError(BAD_FILE_TYPE, f"{path}: a thumbnail must be an image of at most "
                                           f"{THUMBNAIL_MAX} bytes")
        name = f.get("fileName")
        found[kind] = FileInfo(url=rec.url, content_type=rec.content_type, size=rec.size,
                               until=rec.until,
                               name=name if isinstance(name, str) and name else rec.name)
    if "file" not in found:
        raise CtcuError(PARAMETER, f"{field}.contentText: no entry with type 'file'")
    try:
        return ft_http_xml(found["file"], found.get("thumbnail"))
    except ContentError as exc:
        raise CtcuError(PARAMETER, f"{field}.contentText: {exc}") from None


def _one_payload(item: ContentItem, field: str, lookup: MediaLookup, now: float,
                 require_uploaded: bool) -> Payload:
    ctype = media_type(item.contentType)
    if ctype == TEXT:
        raw = _raw_bytes(item, field)
        if raw is None:
            raise CtcuError(PARAMETER, f"{field}.contentText: text/plain content must be a "
                                       "string")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CtcuError(PARAMETER, f"{field}.contentText: not UTF-8 text") from None
        if not 1 <= len(text) <= MAX_TEXT:
            raise CtcuError(BAD_TEXT_LENGTH, f"{field}.contentText: text must be 1-{MAX_TEXT} "
                                             f"characters, got {len(text)}")
        return text_payload(text)
    if ctype == BOTMESSAGE:
        card = _json_content(item, field)
        _raise_card(validate_botmessage(card), f"{field}.contentText")
        if require_uploaded:
            for path, url in _card_media(card):
                _check_media(url, f"{field}.contentText.{path}", lookup, now)
        return Payload(BOTMESSAGE, msgspec.json.encode(card))
    if ctype == BOTSUGGESTION:
        chips = _json_content(item, field)
        _raise_card(validate_suggestions(chips), f"{field}.contentText")
        return Payload(BOTSUGGESTION, msgspec.json.encode(chips))
    if ctype in (FT_HTTP, FT_HTTP_CTCU):
        return _file_infos(item, field, lookup, now)
    if ctype == PUSH_LOCATION:
        raw = _raw_bytes(item, field)
        if raw is None:
            raise CtcuError(PARAMETER, f"{field}.contentText: expected the XML document")
        try:
            safe_xml(raw, "geolocation push")
        except ContentError as exc:
            raise CtcuError(PARAMETER, f"{field}.contentText: {exc}") from None
        return Payload(PUSH_LOCATION, raw)
    raise CtcuError(BAD_MESSAGE_TYPE, f"{field}.contentType: unsupported "
                                      f"{item.contentType[:80]!r}")


def build_payload(items: list[ContentItem], lookup: MediaLookup, now: float, *,
                  require_uploaded: bool = True) -> Payload:
    """``messageList`` → one CPIM payload: a single entry as itself; a content entry plus a
    botsuggestion entry → ``multipart/mixed`` (content first, protocols.md §3)."""
    if not items:
        raise CtcuError(PARAMETER, "messageList: at least one entry required")
    if len(items) > 2:
        raise CtcuError(BAD_MESSAGE_TYPE, "messageList: at most a content entry and a "
                                          "botsuggestion entry")
    payloads = [_one_payload(it, f"messageList[{i}]", lookup, now, require_uploaded)
                for i, it in enumerate(items)]
    if len(payloads) == 1:
        if payloads[0].content_type == BOTSUGGESTION:
            raise CtcuError(BAD_MESSAGE_TYPE, "messageList: a botsuggestion entry needs a "
                                              "content entry")
        return payloads[0]
    chips = [p for p in payloads if p.content_type == BOTSUGGESTION]
    content = [p for p in payloads if p.content_type != BOTSUGGESTION]
    if len(chips) != 1:
        raise CtcuError(BAD_MESSAGE_TYPE, "messageList: two entries must be one content and "
                                          "one botsuggestion")
    return multipart_mixed([content[0], chips[0]])


# -- media limits (protocols.md §10 "Media") --------------------------------------------------

MB = 1024 * 1024
THUMBNAIL_MAX = 200 * 1024


@dataclass(frozen=True, slots=True)
class MediaKind:
    name: str
    max_bytes: int
    types: tuple[str, ...]
    extensions: tuple[str, ...]


MEDIA_KINDS = (
    MediaKind("image", 2 * MB, ("image/jpeg", "image/jpg", "image/png"),
              ("jpg", "jpeg", "png")),
    MediaKind("audio", 5 * MB, ("audio/amr", "audio/mpeg", "audio/mp3", "audio/mp4",
                                "audio/m4a", "audio/x-m4a", "audio/aac"),
              ("amr", "mp3", "m4a")),
    MediaKind("video", 10 * MB, ("video/mp4", "video/webm"), ("mp4", "webm")),
)
_EXT_TYPE = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png",
             "amr": "audio/amr", "mp3": "audio/mpeg", "m4a": "audio/mp4",
             "mp4": "video/mp4", "webm": "video/webm"}


def media_kind(content_type: str, filename: str) -> tuple[MediaKind, str]:
    """The media kind and content type of an upload; 40005 when neither the part's
    Content-Type nor the file name extension is an allowed type."""
    ctype = media_type(content_type or "")
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    for kind in MEDIA_KINDS:
        if ctype in kind.types:
            return kind, ctype
    if ctype in ("", "application/octet-stream") and ext in _EXT_TYPE:
        inferred = _EXT_TYPE[ext]
        return next(k for k in MEDIA_KINDS if inferred in k.types), inferred
    raise CtcuError(BAD_FILE_TYPE, f"file type {ctype or ext or '?'!r} not allowed: images "
                                   "JPG/PNG, audio AMR/MP3/M4A, video MP4/WEBM")


# -- pushes to the CSP (protocols.md §10 "Push paths") ----------------------------------------

_CST = dt.timezone(dt.timedelta(hours=8))

STATUS_TOKENS: Mapping[Status, str] = {
    Status.SENT: "sent",
    Status.DELIVERED: "delivered",
    Status.DISPLAYED: "displayed",
    Status.FAILED: "failed",
    Status.REVOKED: "revokeOk",
    Status.REVOKE_FAILED: "revokeFail",
    Status.DELIVERED_TO_NETWORK: "deliveredToNetwork",
}
#: ``failed`` errorCode 1–6 (§10 "Status values"); our EXPIRED is reported as 4 (offline).
FAILURE_CODES: Mapping[FailureCode, tuple[int, str]] = {
    FailureCode.TERMINAL_NOT_FOUND: (1, "terminal not found"),
    FailureCode.NOT_5G_MESSAGE_TERMINAL: (2, "not a 5G message terminal and smsSupported is "
                                             "false"),
    FailureCode.NON_COMPLIANT_CONTENT: (3, "message contains non-compliant content"),
    FailureCode.OFFLINE_NOT_STORED: (4, "terminal offline and storeSupported is false"),
    FailureCode.TERMINAL_REFUSED: (5, "terminal refused the message"),
    FailureCode.BAD_CONTENT: (6, "message content does not meet the requirements"),
    FailureCode.EXPIRED: (4, "terminal offline until the message expired"),
}


def china_time(ts: float) -> str:
    """``2020-01-17T14:42:20.840+08:00`` (the spec's ``yyyy-MM-ddTHH:mm:ss.SSSzzz``)."""
    t = dt.datetime.fromtimestamp(ts, _CST)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+08:00"


def signature(token: str, timestamp: str, nonce: str, *, sort: bool = True) -> str:
    """``sha256hex(concat(sorted([token, timestamp, nonce])))`` (§10); ``sort=False`` gives
    the unsorted ``token + timestamp + nonce`` some test clients compute."""
    parts = sorted([token, timestamp, nonce]) if sort else [token, timestamp, nonce]
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def signed_headers(bot: ChatbotConfig, now: float, nonce: str, *,
                   sort: bool = True) -> tuple[tuple[str, str], ...]:
    """``signature``/``timestamp``/``nonce`` push headers; the token is the bot's appKey."""
    ts = str(int(now))
    return (("signature", signature(bot.secret, ts, nonce, sort=sort)),
            ("timestamp", ts), ("nonce", nonce), ("Accept", "application/json"))


def notify_base(bot: ChatbotConfig) -> str:
    return bot.webhook.rstrip("/")


def _bot_segment(bot: ChatbotConfig) -> str:
    return quote(bot.id, safe="")


def _content_entries(payload: Payload) -> list[dict[str, Any]]:
    """An uplink CPIM payload → ``messageList`` entries (multipart: one per part)."""
    ctype = media_type(payload.content_type)
    if ctype.startswith("multipart/"):
        try:
            return [e for p in parse_multipart_mixed(payload) for e in _content_entries(p)]
        except ContentError:
            pass  # not readable as multipart: pass it on as one opaque entry below
    if ctype == FT_HTTP:
        try:
            ft = parse_ft_http_xml(payload.body)
        except ContentError:
            pass
        else:
            files = []
            for kind, info in (("thumbnail", ft.thumbnail), ("file", ft.file)):
                if info is None:
                    continue
                entry: dict[str, Any] = {"type": kind, "fileSize": info.size,
                                         "contentType": info.content_type, "url": info.url}
                if info.name:
                    entry["fileName"] = info.name
                if info.until:
                    entry["until"] = dt.datetime.fromtimestamp(
                        info.until, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                files.append(entry)
            return [{"contentType": FT_HTTP_CTCU, "contentEncoding": "utf8",
                     "contentText": files}]
    if ctype.endswith("+json"):
        try:
            obj = msgspec.json.decode(payload.body)
        except msgspec.DecodeError:
            pass
        else:
            return [{"contentType": ctype, "contentEncoding": "utf8", "contentText": obj}]
    try:
        text = payload.body.decode("utf-8")
    except UnicodeDecodeError:
        return [{"contentType": ctype or "application/octet-stream",
                 "contentEncoding": "base64",
                 "contentText": base64.b64encode(payload.body).decode()}]
    return [{"contentType": ctype or TEXT, "contentEncoding": "utf8", "contentText": text}]


def _spam_report(payload: Payload) -> dict[str, Any] | None:
    """A user's spam report (``<SR>``, protocols.md §2A) → the ``rcsspam`` notice body."""
    try:
        root = safe_xml(payload.body, "spam report")
    except ContentError:
        return None
    ids: list[str] = []
    spam_type = free_text = ""
    for el in root.iter():
        local = el.tag.rsplit("}", 1)[-1].lower()
        text = (el.text or "").strip()
        if local == "message-id" and text:
            ids.append(text)
        elif local == "spam-type":
            spam_type = text
        elif local == "free-text":
            free_text = text
    body: dict[str, Any] = {"spamType": spam_type[:50], "freeText": free_text}
    if ids:
        body["messageId"] = ids
    return body


def _json(obj: Any) -> bytes:
    return msgspec.json.encode(obj)


@dataclass(frozen=True, slots=True)
class PushOptions:
    """Dialect settings for pushes ([U] choices, docs/maap-ctcu.md)."""

    #: sort token/timestamp/nonce before hashing (§10); False: plain concatenation
    sort_signature: bool = True
    #: Content-Type of the pushes; the real platform is seen to say ``multipart/form-data``
    #: while sending JSON (a quirk CSPs must survive): set that here to reproduce it
    content_type: str = "application/json"
    #: most ``deliveryInfoList`` entries merged into one status push (1: one per push)
    status_batch: int = 1


def render_event(bot: ChatbotConfig, event: Event, *, now: float, nonce: str,
                 options: PushOptions = PushOptions(),
                 wanted: frozenset[str] | None = None) -> Notification | None:
    """The push for ``event`` (None: CT/CU does not push it). ``wanted``: the status tokens
    the send's ``reportRequest`` asked for (None: all); revoke outcomes always go out."""
    if not bot.webhook:
        return None
    base = notify_base(bot)
    key = f"{bot.id}|{getattr(event, 'user', '')}"
    headers = signed_headers(bot, now, nonce, sort=options.sort_signature)
    at = getattr(event, "at", 0.0) or now
    if isinstance(event, StatusEvent):
        token = STATUS_TOKENS.get(event.status)
        if token is None:
            return None
        if wanted is not None and token not in wanted and token not in ("revokeOk",
                                                                         "revokeFail"):
            return None
        info: dict[str, Any] = {
            "messageId": event.message_id,
            "status": token,
            "dateTime": china_time(at),
            "destinationAddress": bot.uri,
            "senderAddress": f"tel:{event.user}",
        }
        if event.status == Status.FAILED:
            code, text = FAILURE_CODES.get(event.failure or FailureCode.BAD_CONTENT,
                                           (6, "failed"))
            info["errorCode"] = code
            info["errorMessage"] = text
        if event.client_correlator:
            info["clientCorrelator"] = event.client_correlator
        return Notification(f"{base}/deliveryNotification/{_bot_segment(bot)}/status",
                            _json({"deliveryInfoList": [info]}), options.content_type, key,
                            headers, batch="deliveryInfoList",
                            batch_max=options.status_batch)
    if isinstance(event, InboundEvent):
        if media_type(event.payload.content_type) == SPAM_REPORT:
            spam = _spam_report(event.payload)
            if spam is not None:
                return Notification(
                    f"{base}/notifyInfoNotification/{_bot_segment(bot)}/notice/rcsspam",
                    _json(spam), options.content_type, key, headers)
        stamp = china_time(at)
        body: dict[str, Any] = {
            "messageId": event.message_id,
            "messageList": _content_entries(event.payload),
            "dateTime": stamp,
            # the V1.0.4 field table spells it dataTime, its examples dateTime: send both
            "dataTime": stamp,
            "destinationAddress": bot.uri,
            "senderAddress": f"tel:{event.user}",
            "conversationId": event.conversation_id,
            "contributionId": event.contribution_id,
        }
        if event.in_reply_to:
            body["inReplyTo"] = event.in_reply_to
        return Notification(f"{base}/messageNotification/{_bot_segment(bot)}/messages",
                            _json(body), options.content_type, key, headers)
    return None  # typing, new user, file status: CT/CU defines no push for them


# -- notify-URL verification (§10) --------------------------------------------------------------


def verification_request(bot: ChatbotConfig, now: float, nonce: str, echo: str, *,
                         sort: bool = True) -> tuple[str, dict[str, str]]:
    """The ``GET {notifyURL}/notifyPath`` the platform sends to check a CSP's notify URL."""
    ts = str(int(now))
    return f"{notify_base(bot)}/notifyPath", {
        "signature": signature(bot.secret, ts, nonce, sort=sort), "timestamp": ts,
        "nonce": nonce, "echoStr": echo, "chatbotId": bot.id,
    }


def verification_ok(bot: ChatbotConfig, echo: str, status: int,
                    headers: Mapping[str, str]) -> bool:
    """The CSP passed: 2xx with headers ``echoStr`` (unchanged) and ``appId``."""
    return (200 <= status < 300 and headers.get("echoStr") == echo
            and headers.get("appId") == bot.app_id)

