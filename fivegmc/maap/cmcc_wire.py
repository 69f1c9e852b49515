"""China Mobile OMA-NetAPI-style XML: the wire codec of the ``cmcc`` dialect (protocols.md §2A,
§9(3)). Pure and sync: parse CSP request bodies, build responses, errors and notifications,
check the ``Authorization: Basic base64(appId:sha256hex(token + Date))`` digest.

XML from the CSP is untrusted: it must be UTF-8, DTDs and entity declarations are refused
(no entity expansion can happen, as in :mod:`fivegmc.cpim.imdn`), and every problem is a
:class:`CmccError` naming the element path, rendered as an OMA ``requestError``.

Bodies are built as text with escaping rather than through ElementTree so the shape is exactly
the one CSP code expects (CMT/CMX/FEI samples): a ``msg:``-prefixed root in
``urn:oma:xml:rest:netapi:messaging:1`` with unqualified children. On input, children are
matched by local name, unqualified or in the ``msg`` namespace.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from xml.sax.saxutils import escape, quoteattr

from . import cards, content, model

NS = "urn:oma:xml:rest:netapi:messaging:1"
XML_CONTENT_TYPE = "application/xml"
_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'

#: serviceCapability the samples carry on every message (CMT, CMLOG).
CAPABILITY_ID = "ChatbotSA"
CAPABILITY_VERSION = '+g.gsma.rcs.botversion="#=1"'

#: CMT ``reportRequest`` values → IMDN dispositions (RFC 5438 §9, protocols.md §4).
REPORT_REQUESTS = {
    "delivered": "positive-delivery",
    "displayed": "display",
    "failed": "negative-delivery",
}

#: Revoke request ``status`` values accepted on ``PUT …/requests/{messageId}/status``.
REVOKE_STATUSES = frozenset({"revoked", "revokerequested"})

# Characters XML 1.0 cannot carry (TAB/LF/CR are fine in text).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_E164 = re.compile(r"\+[1-9][0-9]{5,14}")
_CN_MOBILE = re.compile(r"1[3-9][0-9]{9}")


# -- errors ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CmccError(Exception):
    """An OMA NetAPI error: HTTP status, ``serviceException`` (SVC) or ``policyException``
    (POL), the exception ``messageId``, its ``text`` template and ``variables`` (%1, %2…).
    The code table lives in docs/maap-cmcc.md."""

    status: int
    code: str
    text: str
    variables: tuple[str, ...] = ()

    @property
    def policy(self) -> bool:
        return self.code.startswith("POL")

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.text} {list(self.variables)}"


def invalid(path: str, why: str = "") -> CmccError:
    """SVC0002: a value present but not acceptable."""
    return CmccError(400, "SVC0002", "Invalid input value for message part %1",
                     (path, why) if why else (path,))


def missing(path: str, why: str = "missing") -> CmccError:
    """SVC0001: malformed body or a required element absent."""
    return CmccError(400, "SVC0001", "A service error occurred. Error code is %1",
                     (path, why))


def no_addresses(path: str) -> CmccError:
    return CmccError(400, "SVC0004", "No valid addresses provided in message part %1", (path,))


def too_many_addresses(path: str, limit: int) -> CmccError:
    return CmccError(400, "POL0003", "Too many addresses specified in message part %1",
                     (path, str(limit)))


def not_found(what: str, value: str) -> CmccError:
    return CmccError(404, "SVC0002", "Invalid input value for message part %1", (what, value))


def unauthorized(why: str) -> CmccError:
    return CmccError(401, "POL1002", "Authentication failed: %1", (why,))


def forbidden(why: str) -> CmccError:
    return CmccError(403, "POL1003", "Application not authorised for this chatbot: %1", (why,))


def too_large(what: str, limit: int) -> CmccError:
    return CmccError(413, "POL1004", "Message part %1 is larger than %2 bytes",
                     (what, str(limit)))


def rate_limited(bot_id: str) -> CmccError:
    return CmccError(429, "POL1001", "Rate limit exceeded for chatbot %1", (bot_id,))


def media_not_supported(what: str, content_type: str) -> CmccError:
    return CmccError(400, "POL0011", "Media type not supported in message part %1",
                     (what, content_type))


def send_failed(reason: str, addresses: Iterable[str]) -> CmccError:
    return CmccError(400, "POL0001", "A policy error occurred. Error code is %1",
                     (reason, *addresses))


# -- small XML helpers ----------------------------------------------------------------------

def xml_text(value: str) -> str:
    """``value`` escaped for element text, with characters XML cannot carry replaced."""
    return escape(_NOT_XML.sub("\ufffd", value))


def _attr(value: str) -> str:
    return quoteattr(_NOT_XML.sub("\ufffd", value))


def _el(name: str, value: str) -> str:
    return f"<{name}>{xml_text(value)}</{name}>"


def _root(name: str, inner: str) -> bytes:
    return (f'{_DECL}<msg:{name} xmlns:msg="{NS}">{inner}</msg:{name}>').encode()


def parse_xml(body: bytes, what: str) -> ET.Element:
    """Parse untrusted XML safely (UTF-8, no DTD/entities); errors are SVC0001 for ``what``."""
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise missing(what, "body is not UTF-8") from None
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise missing(what, "DTDs and entity declarations are not accepted")
    try:
        # A str is parsed as text whatever encoding the XML declaration claims.
        return ET.fromstring(text)
    except (ET.ParseError, ValueError) as exc:
        raise missing(what, f"malformed XML ({exc})") from None


def _local(tag: object) -> str | None:
    """The local name of an element in the msg namespace or none; None for anything else
    (comments, processing instructions, foreign namespaces)."""
    if not isinstance(tag, str):
        return None
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return local if ns == NS else None
    return tag


def _check_root(root: ET.Element, names: Sequence[str]) -> str:
    local = _local(root.tag)
    if local is None or local not in names:
        raise missing(names[0], f"root element must be <msg:{names[0]}> in {NS}")
    return local


class _Children:
    """An element's children by local name, with path-naming accessors."""

    def __init__(self, element: ET.Element, path: str) -> None:
        self.path = path
        self.by_name: dict[str, list[ET.Element]] = {}
        for child in element:
            local = _local(child.tag)
            if local is not None:
                self.by_name.setdefault(local, []).append(child)

    def all_text(self, name: str) -> list[str]:
        return [(el.text or "").strip() for el in self.by_name.get(name, [])]

    def element(self, name: str, *, required: bool = False) -> ET.Element | None:
        found = self.by_name.get(name, [])
        if len(found) > 1:
            raise invalid(f"{self.path}/{name}", "appears more than once")
        if not found:
            if required:
                raise missing(f"{self.path}/{name}")
            return None
        return found[0]

    def text(self, name: str, *, required: bool = False, strip: bool = True) -> str:
        el = self.element(name, required=required)
        if el is None:
            return ""
        if len(el):
            raise invalid(f"{self.path}/{name}", "must hold text, not elements")
        value = el.text or ""
        value = value.strip() if strip else value
        if required and not value.strip():
            raise missing(f"{self.path}/{name}", "empty")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.text(name).lower()
        if not value:
            return default
        if value in ("true", "1"):
            return True
        if value in ("false", "0"):
            return False
        raise invalid(f"{self.path}/{name}", "must be true or false")


# -- addresses ------------------------------------------------------------------------------

def normalize_address(address: str) -> str | None:
    """An E.164 number with ``+`` from ``tel:+86…``, ``sip:+86…@host`` or a bare number; an
    11-digit mainland mobile number without country code gets ``+86`` (our leniency)."""
    value = address.strip()
    lower = value.lower()
    if lower.startswith("tel:"):
        value = value[4:].split(";", 1)[0]
    elif lower.startswith(("sip:", "sips:")):
        value = value.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0]
    if _CN_MOBILE.fullmatch(value):
        value = "+86" + value
    return value if _E164.fullmatch(value) else None


def tel(number: str) -> str:
    return f"tel:{number}"


def _norm_uri(uri: str) -> str:
    uri = uri.strip().removeprefix("<").removesuffix(">")
    scheme, _, rest = uri.partition(":")
    user, at, host = rest.rpartition("@")
    return f"{scheme.lower()}:{user}{at}{host.lower()}"


def same_uri(a: str, b: str) -> bool:
    """Chatbot URI equality: scheme and host case-insensitive, angle brackets ignored."""
    return _norm_uri(a) == _norm_uri(b)


# -- outboundMessageRequest -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ImMessage:
    """``outboundIMMessage``."""

    content_type: str
    body_text: str
    conversation_id: str = ""
    contribution_id: str = ""
    report_requests: tuple[str, ...] = ()
    capability_id: str = ""
    capability_version: str = ""
    #: ours: ``trafficType`` (CPIM maap.Traffic-Type), ``inReplyToContributionID``
    traffic_type: str = ""
    in_reply_to: str = ""
    #: template sends: ``templateID``
    template_id: str = ""


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """``msg:outboundMessageRequest`` as sent by the CSP."""

    #: every ``address`` then ``destinationAddress`` value, in order, as written
    addresses: tuple[str, ...]
    sender_address: str
    message: ImMessage
    client_correlator: str = ""
    store_supported: bool = True


_ROOT_PATH = "outboundMessageRequest"
_MSG_PATH = f"{_ROOT_PATH}/outboundIMMessage"


def parse_outbound_request(body: bytes) -> OutboundRequest:
    """Parse a send body; raises CmccError (400) naming the offending element."""
    root = parse_xml(body, _ROOT_PATH)
    _check_root(root, (_ROOT_PATH,))
    top = _Children(root, _ROOT_PATH)
    addresses = [*top.all_text("address"), *top.all_text("destinationAddress")]
    sender = top.text("senderAddress", required=True)
    im_el = top.element("outboundIMMessage", required=True)
    assert im_el is not None
    im = _Children(im_el, _MSG_PATH)
    content_type = im.text("contentType", required=True)
    body_text = im.text("bodyText", strip=False)
    reports: list[str] = []
    for value in im.all_text("reportRequest"):
        if value.lower() not in REPORT_REQUESTS:
            raise invalid(f"{_MSG_PATH}/reportRequest", "must be Delivered, Displayed or Failed")
        reports.append(value.lower())
    cap_id = cap_version = ""
    cap_el = im.element("serviceCapability")
    if cap_el is not None:
        cap = _Children(cap_el, f"{_MSG_PATH}/serviceCapability")
        cap_id = cap.text("capabilityId")
        cap_version = cap.text("version")
    for name in ("conversationID", "contributionID", "inReplyToContributionID"):
        value = im.text(name)
        if len(value) > 256 or _NOT_XML.search(value) or any(c.isspace() for c in value):
            raise invalid(f"{_MSG_PATH}/{name}", "must be a token of at most 256 characters")
    return OutboundRequest(
        addresses=tuple(addresses),
        sender_address=sender,
        message=ImMessage(
            content_type=content_type,
            body_text=body_text,
            conversation_id=im.text("conversationID"),
            contribution_id=im.text("contributionID"),
            report_requests=tuple(dict.fromkeys(reports)),
            capability_id=cap_id,
            capability_version=cap_version,
            traffic_type=im.text("trafficType"),
            in_reply_to=im.text("inReplyToContributionID"),
            template_id=im.text("templateID"),
        ),
        client_correlator=top.text("clientCorrelator"),
        store_supported=top.boolean("storeSupported", True),
    )


def dispositions(reports: tuple[str, ...]) -> tuple[str, ...]:
    """IMDN dispositions for the request's ``reportRequest`` values (none given: Delivered +
    Displayed, our default)."""
    if not reports:
        return ("positive-delivery", "display")
    return tuple(REPORT_REQUESTS[r] for r in reports)


# -- content (bodyText) ---------------------------------------------------------------------

_SENDABLE = frozenset({model.TEXT, model.BOTMESSAGE, model.FT_HTTP, model.MULTIPART_MIXED,
                       model.PUSH_LOCATION})
_PART_TYPES = frozenset({model.TEXT, model.BOTMESSAGE, model.FT_HTTP, model.BOTSUGGESTION,
                         model.PUSH_LOCATION})


def to_crlf(text: str) -> str:
    """XML parsing turned CRLF into LF inside bodyText (XML 1.0 §2.11); MIME needs CRLF."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _json(body: bytes, path: str) -> object:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise invalid(path, f"not valid JSON ({exc.__class__.__name__})") from None


def check_content(kind: str, body: bytes, path: str, *, in_multipart: bool) -> None:
    """Validate one payload (or multipart part) for its type: card and chip JSON against the
    GSMA chatbot-message bounds (cards.py), FT-over-HTTP XML shape (content.py)."""
    allowed = _PART_TYPES if in_multipart else _SENDABLE
    if kind not in allowed or kind == model.MULTIPART_MIXED:
        raise invalid(path, f"unsupported content type {kind!r}")
    problems: list[str] = []
    if kind == model.BOTMESSAGE:
        problems = cards.validate_botmessage(_json(body, path))
    elif kind == model.BOTSUGGESTION:
        problems = cards.validate_suggestions(_json(body, path))
    elif kind == model.FT_HTTP:
        try:
            content.parse_ft_http_xml(body)
        except content.ContentError as exc:
            raise invalid(path, str(exc)) from None
    elif kind == model.PUSH_LOCATION:
        try:
            content.parse_push_location(body)
        except content.ContentError as exc:
            raise invalid(path, str(exc)) from None
    elif kind == model.TEXT and not body.strip():
        raise missing(path, "empty text part")
    if problems:
        raise invalid(path, "; ".join(problems[:5]))


def build_payload(im: ImMessage, *, template: bool = False) -> model.Payload:
    """The CPIM payload for ``outboundIMMessage`` (content type checked, bodyText validated
    for its type). Template sends: ``template``/``dynamic-template`` content is the rendered
    text and goes out as text/plain."""
    path = f"{_MSG_PATH}/bodyText"
    kind = content.media_type(im.content_type)
    content_type = im.content_type.strip()
    if template and kind in ("template", "dynamic-template"):
        kind, content_type = model.TEXT, content.TEXT_UTF8
    if kind not in _SENDABLE:
        raise invalid(f"{_MSG_PATH}/contentType", f"unsupported content type {kind!r}")
    if _NOT_XML.search(content_type) or len(content_type) > 200:
        raise invalid(f"{_MSG_PATH}/contentType", "not a valid content type")
    if not im.body_text.strip():
        raise missing(path, "empty")
    if kind == model.TEXT:
        return model.Payload(content_type, im.body_text.encode())
    if kind == model.MULTIPART_MIXED:
        if not content.content_type_param(content_type, "boundary"):
            raise invalid(f"{_MSG_PATH}/contentType", "multipart/mixed needs a boundary")
        payload = model.Payload(content_type, to_crlf(im.body_text.strip()).encode() + b"\r\n")
        try:
            parts = content.parse_multipart_mixed(payload)
        except content.ContentError as exc:
            raise invalid(path, str(exc)) from None
        for part in parts:
            check_content(content.media_type(part.content_type), part.body, path,
                          in_multipart=True)
        return payload
    body = im.body_text.strip().encode()
    check_content(kind, body, path, in_multipart=False)
    return model.Payload(content_type, body)


# -- revoke (PUT …/status) ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StatusUpdate:
    status: str
    addresses: tuple[str, ...] = ()


_STATUS_ROOTS = ("messageStatusReport", "messageStatus", "messageStatusNotification",
                 "outboundMessageRequest")


def parse_status_update(body: bytes) -> StatusUpdate:
    """The revoke body: ``<msg:messageStatusReport><status>RevokeRequested</status>
    [<address>tel:+86…</address>…]</msg:messageStatusReport>`` (any of the roots above)."""
    root = parse_xml(body, _STATUS_ROOTS[0])
    name = _check_root(root, _STATUS_ROOTS)
    top = _Children(root, name)
    status = top.text("status", required=True)
    if status.lower() not in REVOKE_STATUSES:
        raise invalid(f"{name}/status", "must be RevokeRequested or Revoked")
    return StatusUpdate(status, (*top.all_text("address"), *top.all_text("destinationAddress")))


# -- responses ------------------------------------------------------------------------------

def build_error(err: CmccError) -> bytes:
    """``msg:requestError`` holding a ``serviceException`` or ``policyException``."""
    return _root("requestError", _exception(err))


@dataclass(frozen=True, slots=True)
class FailedAddress:
    """One recipient of a group send that failed at once."""

    address: str
    error: CmccError


def build_send_response(message_id: str, client_correlator: str, resource_url: str,
                        failed: Sequence[FailedAddress] = ()) -> bytes:
    """The 201 body: ``messageId`` + ``clientCorrelator`` (CMX), the OMA resourceReference,
    and ``deliveryInfoList`` for recipients that failed at once (a partial group failure)."""
    inner = (f"<resourceReference>{_el('resourceURL', resource_url)}</resourceReference>"
             f"{_el('messageId', message_id)}{_el('clientCorrelator', client_correlator)}")
    if failed:
        infos = "".join(
            f"<deliveryInfo>{_el('address', f.address)}"
            f"{_el('deliveryStatus', 'DeliveryImpossible')}"
            + _exception(f.error) + "</deliveryInfo>"
            for f in failed)
        inner += f"<deliveryInfoList>{infos}</deliveryInfoList>"
    return _root("outboundMessageRequest", inner)


def _exception(err: CmccError) -> str:
    kind = "policyException" if err.policy else "serviceException"
    variables = "".join(_el("variables", v) for v in err.variables)
    return (f"<{kind}>{_el('messageId', err.code)}{_el('exceptionId', err.code)}"
            f"{_el('text', err.text)}{variables}</{kind}>")


def build_status_response(message_id: str, status: str, resource_url: str) -> bytes:
    """The answer to a revoke request (the outcome follows as a MessageStatusNotification)."""
    return _root("messageStatusReport",
                 f"{_el('messageId', message_id)}{_el('status', status)}"
                 f"{_el('resourceURL', resource_url)}")


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    address: str
    delivery_status: str
    description: str = ""
    message_id: str = ""


def build_delivery_infos(infos: Sequence[DeliveryInfo], resource_url: str) -> bytes:
    """``GET …/requests/{messageId}/deliveryInfos`` (OMA): the per-recipient states."""
    inner = "".join(_delivery_info(i) for i in infos)
    return _root("deliveryInfoList",
                 f"{inner}{_el('resourceURL', resource_url)}")


def _delivery_info(info: DeliveryInfo) -> str:
    out = f"<deliveryInfo>{_el('address', info.address)}"
    if info.message_id:
        out += _el("messageId", info.message_id)
    out += _el("deliveryStatus", info.delivery_status)
    if info.description:
        out += _el("description", info.description)
    return out + "</deliveryInfo>"


def _link(rel: str, href: str) -> str:
    return f"<link rel={_attr(rel)} href={_attr(href)}/>"


# -- notifications (MaaP → CSP notify URL) --------------------------------------------------

def build_inbound_notification(*, chatbot_uri: str, sender: str, message_id: str,
                               content_type: str, body: bytes, conversation_id: str,
                               contribution_id: str, date_time: str, resource_url: str,
                               in_reply_to: str = "") -> bytes:
    """``msg:inboundMessageNotification`` (CMX, CMLOG); ``bodyText`` is base64 of the CPIM
    payload as in the CMLOG samples."""
    inner = (
        f"{_el('destinationAddress', chatbot_uri)}{_el('senderAddress', sender)}"
        f"{_el('origUser', sender)}{_el('resourceURL', resource_url)}"
        f"{_link('InboundMessage', resource_url)}"
        f"{_el('messageId', message_id)}{_el('contentType', content_type)}"
        f"<serviceCapability>{_el('capabilityId', CAPABILITY_ID)}"
        f"{_el('version', CAPABILITY_VERSION)}</serviceCapability>"
        f"{_el('bodyText', base64.b64encode(body).decode())}"
        f"{_el('conversationID', conversation_id)}{_el('contributionID', contribution_id)}"
        + (_el("inReplyToContributionID", in_reply_to) if in_reply_to else "")
        + _el("dateTime", date_time)
    )
    return _root("inboundMessageNotification", f"<inboundMessage>{inner}</inboundMessage>")


def build_delivery_info_notification(info: DeliveryInfo, link_href: str) -> bytes:
    """``msg:deliveryInfoNotification`` (FEI, CMX)."""
    return _root("deliveryInfoNotification",
                 _delivery_info(info) + _link("OutboundMessageRequest", link_href))


def build_message_status_notification(address: str, message_id: str, status: str,
                                      link_href: str) -> bytes:
    """``msg:messageStatusNotification`` (CMX): the revoke outcome."""
    return _root("messageStatusNotification",
                 f"{_el('address', address)}{_el('messageId', message_id)}"
                 f"{_el('status', status)}{_link('OutboundMessageRequest', link_href)}")


def iso_time(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


# -- authentication -------------------------------------------------------------------------

def sha256hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def authorization(app_id: str, password: str, date: str) -> str:
    """The CSP's header value (CMT): ``Basic base64(appId:sha256hex(sha256hex(password)+Date))``."""
    digest = sha256hex(sha256hex(password) + date)
    return "Basic " + base64.b64encode(f"{app_id}:{digest}".encode()).decode()


def parse_date(value: str) -> float:
    """Unix time of an RFC 1123 ``Date`` (a zone-less date is taken as GMT)."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise unauthorized("Date header is not an RFC 1123 date") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_authorization(value: str) -> tuple[str, str]:
    """(appId, digest) from ``Basic base64(appId:digest)``."""
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() != "basic" or not credentials.strip():
        raise unauthorized("Authorization must be Basic base64(appId:sha256(token+Date))")
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise unauthorized("Authorization credentials are not base64 of UTF-8") from None
    app_id, colon, digest = decoded.partition(":")
    if not colon or not app_id or not digest:
        raise unauthorized("Authorization credentials must be appId:digest")
    return app_id, digest


def check_digest(password: str, date: str, digest: str) -> bool:
    expected = sha256hex(sha256hex(password) + date)
    return hmac.compare_digest(expected.encode(), digest.strip().lower().encode())
