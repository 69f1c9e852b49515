"""Classification of MESSAGEs to a chatbot (P2A, IMDNs, typing) including hostile CPIM."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fivegmc.cpim import build_cpim, build_imdn_report_cpim
from fivegmc.maap.inbound import (
    ImdnReceived,
    Rejected,
    UserMessage,
    bot_key,
    classify,
)
from fivegmc.maap.model import FailureCode, Status, TypingEvent
from fivegmc.sip.headers import Headers
from fivegmc.sip.message import Request

BOT = "sip:labbot@botplatform.example"
USER = "sip:+8613800000001@ims.example"


def message(body: bytes, content_type: str = "message/cpim", frm: str = USER,
            extra: list[tuple[str, str]] | None = None) -> Request:
    return Request("MESSAGE", BOT, Headers([
        ("Via", "SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKx"), ("From", f"<{frm}>;tag=a"),
        ("To", f"<{BOT}>"), ("Call-ID", "c"), ("CSeq", "1 MESSAGE"),
        ("Content-Type", content_type), *(extra or [])]), body)


def cpim(content_type: str, content: bytes, mid: str = "m1") -> bytes:
    return build_cpim(from_=USER, to=BOT, content_type=content_type, content=content,
                      message_id=mid, datetime="2026-01-01T00:00:00Z",
                      disposition=("positive-delivery",))


def imdn(status: str) -> bytes:
    kind = "display" if status == "displayed" else "delivery"
    return build_imdn_report_cpim(from_=USER, to=BOT, message_id="r1", datetime="x",
                                  original_message_id="orig", original_datetime="y",
                                  kind=kind, status=status)  # type: ignore[arg-type]


def test_text_and_suggestion_responses_are_user_messages() -> None:
    got = classify(message(cpim("text/plain;charset=UTF-8", b"hi"), extra=[
        ("Conversation-ID", "conv"), ("Contribution-ID", "contrib"),
        ("In-Reply-To-Contribution-ID", "prev")]), "labbot", 7.0)
    assert isinstance(got, UserMessage)
    ev = got.event
    assert (ev.bot_id, ev.user, ev.message_id, ev.payload.body, ev.at) == (
        "labbot", "+8613800000001", "m1", b"hi", 7.0)
    assert (ev.conversation_id, ev.contribution_id, ev.in_reply_to) == ("conv", "contrib",
                                                                        "prev")
    assert got.datetime == "2026-01-01T00:00:00Z"
    assert got.dispositions == frozenset({"positive-delivery"})
    response = b'{"response":{"reply":{"displayText":"Yes","postback":{"data":"y"}}}}'
    got = classify(message(cpim("application/vnd.gsma.botsuggestion.response.v1.0+json",
                                response)), "labbot", 0.0)
    assert isinstance(got, UserMessage) and got.event.payload.body == response


def test_imdns_become_status_changes() -> None:
    expect = {"delivered": (Status.DELIVERED, None), "displayed": (Status.DISPLAYED, None),
              "failed": (Status.FAILED, FailureCode.EXPIRED),
              "forbidden": (Status.FAILED, FailureCode.TERMINAL_REFUSED),
              "error": (Status.FAILED, FailureCode.BAD_CONTENT)}
    for status, (want, failure) in expect.items():
        got = classify(message(imdn(status)), "labbot", 0.0)
        assert got == ImdnReceived("labbot", "+8613800000001", "orig", want, failure)


def test_typing() -> None:
    doc = (b'<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">'
           b"<state>idle</state></isComposing>")
    got = classify(message(cpim("application/im-iscomposing+xml", doc)), "labbot", 3.0)
    assert got == TypingEvent("labbot", "+8613800000001", False, 3.0)
    got = classify(message(cpim("application/im-iscomposing+xml", b"<x/>")), "labbot", 0.0)
    assert isinstance(got, Rejected) and got.status == 400


def test_rejections() -> None:
    body = cpim("text/plain", b"hi")
    assert classify(message(body), None, 0.0) == Rejected(404, "No such chatbot")
    assert classify(message(b"hi", "text/plain"), "labbot", 0.0).status == 415  # type: ignore[union-attr]
    got = classify(message(body, frm="sip:alice@example.com"), "labbot", 0.0)
    assert isinstance(got, Rejected) and got.status == 400
    got = classify(message(cpim("application/x-unknown", b"?")), "labbot", 0.0)
    assert isinstance(got, Rejected) and got.status == 415
    no_id = body.replace(b"imdn.Message-ID: m1\r\n", b"")
    got = classify(message(no_id), "labbot", 0.0)
    assert isinstance(got, Rejected) and "Message-ID" in got.reason
    broken = imdn("delivered").replace(b"<message-id>", b"<message-idx>")
    got = classify(message(broken), "labbot", 0.0)
    assert isinstance(got, Rejected) and got.status == 400


def test_bot_key() -> None:
    assert bot_key("sip:Bot@BotPlatform.Example") == "Bot@botplatform.example"
    assert bot_key("<sip:bot@x;transport=tcp>") == "bot@x"
    assert bot_key("tel:+123") is None and bot_key("<<") is None


_PRINTABLE = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40)


@given(st.binary(max_size=800))
def test_hostile_cpim_bodies_never_raise(body: bytes) -> None:
    got = classify(message(body), "labbot", 0.0)
    assert isinstance(got, Rejected | UserMessage | ImdnReceived | TypingEvent)
    if isinstance(got, Rejected):
        assert got.status in (400, 415) and got.reason.isprintable()


@given(_PRINTABLE, st.binary(max_size=300), _PRINTABLE)
def test_hostile_contents_inside_valid_cpim(content_type: str, content: bytes,
                                            mid: str) -> None:
    head = (f"From: <{USER}>\r\nTo: <{BOT}>\r\nNS: imdn <urn:ietf:params:imdn>\r\n"
            f"imdn.Message-ID: {mid}\r\n\r\nContent-Type: {content_type}\r\n\r\n").encode()
    got = classify(message(head + content), "labbot", 0.0)
    assert isinstance(got, Rejected | UserMessage | ImdnReceived | TypingEvent)
    for ct in ("message/imdn+xml", "application/im-iscomposing+xml", "text/plain"):
        head2 = head.replace(f"Content-Type: {content_type}".encode(),
                             f"Content-Type: {ct}".encode())
        got = classify(message(head2 + content), "labbot", 0.0)
        assert isinstance(got, Rejected | UserMessage | ImdnReceived | TypingEvent)
