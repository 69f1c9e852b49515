"""What a MESSAGE from the 5GMC to a chatbot means (P2A, protocols.md §3–4), sans-IO.

A user's MESSAGE to ``sip:{bot}@{botplatform}`` carries CPIM (RFC 3862). Its content decides:

- ``message/imdn+xml`` (RFC 5438): a delivery/display report about one of the chatbot's
  messages → :class:`ImdnReceived` (the core turns it into a state change + StatusEvent);
- ``application/im-iscomposing+xml`` (RFC 3994) → :class:`TypingEvent`;
- text, suggestion responses, FT-over-HTTP, push location, spam reports, shared client data,
  multipart/mixed → :class:`UserMessage` (an :class:`InboundEvent`; the core adds
  ``NewUserEvent`` the first time a user writes to a chatbot).

Malformed CPIM, an IMDN that does not parse, or a content type no chatbot handles is a
:class:`Rejected` with SIP 400/415 and a reason phrase saying what is wrong; an unknown chatbot
404. Nothing here raises on peer input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..cpim import IMDN_CONTENT_TYPE, CpimMessage, parse_cpim, parse_imdn
from ..sip.errors import RemoteProtocolError
from ..sip.message import Request
from ..sip.uri import SipUri, TelUri, aor_key, parse_name_addr
from . import model
from .model import FailureCode, InboundEvent, Payload, Status, TypingEvent

#: Content types a user may send a chatbot (protocols.md §3).
USER_CONTENT = frozenset({
    model.TEXT, model.SUGGESTION_RESPONSE, model.SHARED_CLIENT_DATA, model.FT_HTTP,
    model.PUSH_LOCATION, model.SPAM_REPORT, model.MULTIPART_MIXED, model.BOTMESSAGE,
    "application/vnd.gsma.rcslink-report+xml", "application/vnd.gsma.rcsalias-mgmt+xml",
})
_STATE = re.compile(rb"<(?:\w+:)?state>\s*(active|idle)\s*</(?:\w+:)?state>")


@dataclass(frozen=True, slots=True)
class Rejected:
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class ImdnReceived:
    bot_id: str
    user: str
    #: the chatbot's message the report is about
    message_id: str
    status: Status
    failure: FailureCode | None


@dataclass(frozen=True, slots=True)
class UserMessage:
    event: InboundEvent
    #: CPIM DateTime of the message (echoed in a displayed IMDN, RFC 5438 §7)
    datetime: str
    dispositions: frozenset[str]


Classified = Rejected | ImdnReceived | TypingEvent | UserMessage


def bot_key(uri: str) -> str | None:
    """``user@host`` of a chatbot URI, host lower-cased (the lookup key for chatbots)."""
    try:
        parsed = parse_name_addr(uri).uri if "<" in uri else parse_name_addr(f"<{uri}>").uri
    except RemoteProtocolError:
        return None
    if isinstance(parsed, SipUri) and parsed.user:
        return f"{parsed.user}@{parsed.host.lower()}"
    return None


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _safe(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:120]


def user_of(req: Request) -> str | None:
    """The sender's number (E.164) from the SIP From header, None if it names no number."""
    uri = req.from_().uri
    key = aor_key(uri) if isinstance(uri, SipUri | TelUri) else None
    return key if key is not None and key.startswith("+") else None


def classify(req: Request, bot_id: str | None, now: float) -> Classified:
    """Classify a MESSAGE already addressed to a chatbot (``bot_id`` None: unknown chatbot)."""
    if bot_id is None:
        return Rejected(404, "No such chatbot")
    try:
        user = user_of(req)
    except RemoteProtocolError as exc:
        return Rejected(400, f"Bad From ({_safe(exc.reason)})")
    if user is None:
        return Rejected(400, "From names no telephone number")
    if _media_type(req.headers.get("Content-Type")) != "message/cpim":
        return Rejected(415, "Chatbot messages must be message/cpim")
    try:
        cpim = parse_cpim(req.body)
    except RemoteProtocolError as exc:
        return Rejected(400, _safe(exc.reason))
    content_type = _media_type(cpim.content_type)
    if not content_type:
        return Rejected(400, "CPIM: no Content-Type in the encapsulated MIME headers")
    if content_type == IMDN_CONTENT_TYPE:
        return _imdn(cpim, bot_id, user)
    if content_type == model.IS_COMPOSING:
        match = _STATE.search(cpim.content)
        if match is None:
            return Rejected(400, "isComposing: no <state>active|idle</state>")
        return TypingEvent(bot_id, user, match.group(1) == b"active", now)
    if content_type not in USER_CONTENT:
        return Rejected(415, f"Unsupported content {_safe(content_type)}")
    message_id = cpim.message_id
    if not message_id:
        return Rejected(400, "CPIM: no imdn.Message-ID")
    headers = req.headers
    event = InboundEvent(
        bot_id=bot_id, user=user, message_id=message_id,
        payload=Payload(cpim.content_type or content_type, cpim.content), at=now,
        conversation_id=(headers.get("Conversation-ID") or "").strip(),
        contribution_id=(headers.get("Contribution-ID") or "").strip(),
        in_reply_to=(headers.get("In-Reply-To-Contribution-ID") or "").strip(),
    )
    return UserMessage(event, cpim.datetime or "", cpim.disposition_notification)


def _imdn(cpim: CpimMessage, bot_id: str, user: str) -> Classified:
    try:
        report = parse_imdn(cpim.content)
    except RemoteProtocolError as exc:
        return Rejected(400, _safe(exc.reason))
    failure: FailureCode | None = None
    match report.status:
        case "delivered":
            status = Status.DELIVERED
        case "displayed":
            status = Status.DISPLAYED
        case "failed":
            # A UE never reports "failed" itself: it is the 5GMC's report that the stored
            # copy expired (RFC 5438 §6.3 negative-delivery).
            status, failure = Status.FAILED, FailureCode.EXPIRED
        case "forbidden":
            status, failure = Status.FAILED, FailureCode.TERMINAL_REFUSED
        case _:
            status, failure = Status.FAILED, FailureCode.BAD_CONTENT
    return ImdnReceived(bot_id, user, report.message_id, status, failure)
