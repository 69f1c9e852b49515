"""Properties of the CPIM and IMDN codecs (DESIGN.md §5 ring 2).

* arbitrary bytes (and mutations of a valid body) given to parse_cpim / parse_imdn either parse
  or raise RemoteProtocolError with status 400, never anything else; what parses as CPIM
  serializes back to the same bytes and its accessors raise nothing;
* build_cpim / build_imdn with generated safe values parse back to the same fields.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fivegmc.cpim import (
    ALLOWED_STATUS,
    IMDN_NS,
    CpimMessage,
    build_cpim,
    build_imdn,
    parse_cpim,
    parse_imdn,
)
from fivegmc.sip.errors import RemoteProtocolError

VALID = (
    b"From: <sip:a@x>\r\nTo: <sip:b@x>\r\nDateTime: 2026-05-16T12:00:00Z\r\n"
    b"NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: m1\r\n"
    b"imdn.Disposition-Notification: positive-delivery, display\r\n\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
)
IMDN_XML = build_imdn(message_id="m1", datetime="d", kind="delivery", status="delivered")


def _touch(msg: CpimMessage) -> None:
    """Every accessor must work on whatever parsed."""
    _ = (msg.from_, msg.to, msg.datetime, msg.message_id, msg.disposition_notification,
         msg.content_type, msg.content, msg.ns_header(IMDN_NS, "Message-ID"))


def _check_cpim(data: bytes) -> None:
    try:
        msg = parse_cpim(data)
    except RemoteProtocolError as exc:
        assert exc.status_hint == 400
        return
    assert msg.to_bytes() == data
    _touch(msg)


def _check_imdn(data: bytes) -> None:
    try:
        parse_imdn(data)
    except RemoteProtocolError as exc:
        assert exc.status_hint == 400


@given(st.binary(max_size=400))
def test_arbitrary_bytes_cpim(data: bytes) -> None:
    _check_cpim(data)


def _mutated(base: bytes) -> st.SearchStrategy[bytes]:
    pieces = st.sampled_from([b"\r\n", b"\r", b"\n", b":", b" ", b".", b"<", b">", b"\xff",
                              b"\x00", b"NS: ", b"x.", b"Content-Length: 9", b"<!DOCTYPE",
                              b"&a;", b"</imdn>", b"<status>"])

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, len(data)))
            if draw(st.booleans()) and pos < len(data):
                end = draw(st.integers(pos, min(len(data), pos + 8)))
                del data[pos:end]
            else:
                data[pos:pos] = draw(pieces)
        return bytes(data)

    return build()


@given(_mutated(VALID))
def test_mutated_cpim(data: bytes) -> None:
    _check_cpim(data)


@given(st.binary(max_size=400))
def test_arbitrary_bytes_imdn(data: bytes) -> None:
    _check_imdn(data)


@given(st.text(max_size=300).map(str.encode))
def test_arbitrary_text_imdn(data: bytes) -> None:
    _check_imdn(data)


@given(_mutated(IMDN_XML))
def test_mutated_imdn(data: bytes) -> None:
    _check_imdn(data)


# -- generated valid bodies ----------------------------------------------------------------

_SAFE = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x2FFF, exclude_characters="<>\x7f"),
    min_size=1, max_size=30,
)
_TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_+!",
                 min_size=1, max_size=20)
_ADDRESS = st.builds(lambda user, host: f"sip:{user}@{host}", _TOKEN, _TOKEN)


@settings(max_examples=150)
@given(
    from_=_ADDRESS,
    to=_ADDRESS,
    content=st.binary(max_size=200),
    message_id=_SAFE,
    datetime=_SAFE,
    disposition=st.lists(st.sampled_from(["positive-delivery", "negative-delivery", "display"]),
                         unique=True),
    ns_uri=st.none() | _TOKEN.map(lambda t: f"urn:example:{t}"),
    extra=_SAFE,
)
def test_build_cpim_parses_back(
    from_: str, to: str, content: bytes, message_id: str, datetime: str,
    disposition: list[str], ns_uri: str | None, extra: str,
) -> None:
    extra_ns = {"ext": ns_uri} if ns_uri else {}
    extra_headers = [("ext.Value", extra)] if ns_uri else [("Subject", extra)]
    body = build_cpim(from_=from_, to=to, content_type="application/octet-stream",
                      content=content, message_id=message_id, datetime=datetime,
                      disposition=disposition, extra_ns=extra_ns, extra_headers=extra_headers)
    msg = parse_cpim(body)
    assert msg.to_bytes() == body
    assert msg.from_ == f"<{from_}>"
    assert msg.to == f"<{to}>"
    assert msg.message_id == message_id
    assert msg.datetime == datetime
    assert msg.disposition_notification == frozenset(disposition)
    assert msg.content_type == "application/octet-stream"
    assert msg.content == content
    if ns_uri:
        assert msg.ns_header(ns_uri, "Value") == extra
    else:
        assert msg.header("Subject") == extra


_XML_SAFE = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFFFD, exclude_categories=["Cs"]),
    min_size=1, max_size=40,
).map(str.strip).filter(bool)
_COMBOS = st.sampled_from(
    [(kind, status) for kind, statuses in sorted(ALLOWED_STATUS.items())
     for status in sorted(statuses)]
)


@given(message_id=_XML_SAFE, datetime=_XML_SAFE, combo=_COMBOS,
       original=st.none() | _XML_SAFE)
def test_build_imdn_parses_back(
    message_id: str, datetime: str, combo: tuple[str, str], original: str | None
) -> None:
    kind, status = combo
    xml = build_imdn(message_id=message_id, datetime=datetime, kind=kind,  # type: ignore[arg-type]
                     status=status, original_recipient=original)  # type: ignore[arg-type]
    imdn = parse_imdn(xml)
    assert (imdn.message_id, imdn.datetime, imdn.kind, imdn.status) == (
        message_id, datetime, kind, status)
    assert imdn.original_recipient_uri == original
