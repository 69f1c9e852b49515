"""CPIM (RFC 3862) and IMDN (RFC 5438) codecs: vectors, round trips, rejections."""

from __future__ import annotations

import pytest

from fivegmc.cpim import (
    ALLOWED_STATUS,
    IMDN_NS,
    CpimMessage,
    build_cpim,
    build_imdn,
    build_imdn_report_cpim,
    parse_cpim,
    parse_imdn,
)
from fivegmc.sip.errors import LocalProtocolError, RemoteProtocolError


def crlf(text: str) -> bytes:
    """Join lines written with '\\n' in the test source with CRLF."""
    return text.replace("\n", "\r\n").encode()


# protocols.md §4 pager example. The spec text says Content-Length: 13 for the 12 bytes of
# "Hello world!" (it counts a line end); here the length matches the content exactly.
PAGER = crlf(
    "From: <sip:+8613800000001@ims.mnc000.mcc460.3gppnetwork.org>\n"
    "To: <sip:+8613800000002@ims.mnc000.mcc460.3gppnetwork.org>\n"
    "DateTime: 2026-05-16T12:00:00Z\n"
    "NS: imdn <urn:ietf:params:imdn>\n"
    "imdn.Message-ID: msg-001\n"
    "imdn.Disposition-Notification: positive-delivery, display\n"
    "\n"
    "Content-Type: text/plain;charset=UTF-8\n"
    "Content-Length: 12\n"
    "\n"
) + b"Hello world!"


def test_pager_example_fields() -> None:
    msg = parse_cpim(PAGER)
    assert msg.message_id == "msg-001"
    assert msg.disposition_notification == frozenset({"positive-delivery", "display"})
    assert msg.content == b"Hello world!"
    assert msg.content_type == "text/plain;charset=UTF-8"
    assert msg.from_ == "<sip:+8613800000001@ims.mnc000.mcc460.3gppnetwork.org>"
    assert msg.to == "<sip:+8613800000002@ims.mnc000.mcc460.3gppnetwork.org>"
    assert msg.datetime == "2026-05-16T12:00:00Z"
    assert msg.to_bytes() == PAGER


def test_pager_example_as_printed_in_the_spec() -> None:
    # Literal spec text: Content-Length 13, content line ended by CRLF. The length is honoured
    # and the trailing byte past it is kept, so forwarding stays byte-identical.
    data = PAGER.replace(b"Content-Length: 12", b"Content-Length: 13") + b"\r\n"
    msg = parse_cpim(data)
    assert msg.content == b"Hello world!\r"
    assert msg.to_bytes() == data


def test_rfc3862_style_several_namespaces_cc_subject_language() -> None:
    data = crlf(
        "From: Owl <im:owl@wood.example>\n"
        "To: Rabbit <im:rabbit@wood.example>\n"
        "cc: Kanga <im:kanga@wood.example>\n"
        "DateTime: 2001-01-02T09:30:00-05:00\n"
        "Subject: honey is out\n"
        "Subject:;lang=fr plus de miel\n"
        "NS: Feat <mid:Features@wood.example>\n"
        "NS: i <urn:ietf:params:imdn>\n"
        "Require: Feat.Urgent\n"
        "Feat.Urgent: yes\n"
        "Feat.Font:  big \n"
        "i.Message-ID: 34jk324j\n"
        "i.Disposition-Notification: Positive-Delivery,negative-delivery, x-custom\n"
        "\n"
        "Content-type: text/xml; charset=utf-8\n"
        "Content-ID: <1234567890@wood.example>\n"
        "\n"
        "<body>Tell everyone.</body>\n"
    )
    msg = parse_cpim(data)
    assert msg.to_bytes() == data
    assert msg.header_values("Subject") == ["honey is out", ";lang=fr plus de miel"]
    assert msg.header("CC") == "Kanga <im:kanga@wood.example>"
    assert msg.ns_header("mid:Features@wood.example", "Urgent") == "yes"
    assert msg.ns_header("mid:Features@wood.example", "Font") == "big"
    assert msg.message_id == "34jk324j"
    assert msg.disposition_notification == frozenset(
        {"positive-delivery", "negative-delivery", "x-custom"}
    )
    assert msg.content_type == "text/xml; charset=utf-8"
    assert msg.mime_header("content-id") == "<1234567890@wood.example>"
    assert msg.content == b"<body>Tell everyone.</body>\r\n"  # no Content-Length: the rest


def test_prefix_redeclared_applies_to_later_headers() -> None:
    data = crlf(
        "From: <sip:a@x>\nTo: <sip:b@x>\n"
        "NS: p <urn:example:one>\np.Tag: first\n"
        "NS: p <urn:ietf:params:imdn>\np.Message-ID: second\n"
        "\nContent-Type: text/plain\n\n"
    )
    msg = parse_cpim(data)
    assert msg.ns_header("urn:example:one", "Tag") == "first"
    assert msg.ns_header("urn:example:one", "Message-ID") is None
    assert msg.message_id == "second"
    assert msg.ns_header("urn:ietf:params:cpim-headers:", "From") == "<sip:a@x>"


def test_folded_mime_header_round_trips() -> None:
    data = crlf(
        "From: <sip:a@x>\nTo: <sip:b@x>\n\n"
        "Content-Type: text/plain;\n\tcharset=UTF-8\n\nhi"
    )
    msg = parse_cpim(data)
    assert msg.to_bytes() == data
    assert msg.content_type == "text/plain;\tcharset=UTF-8"
    assert msg.content == b"hi"


_HEAD = "From: <sip:a@x>\nTo: <sip:b@x>\n"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (crlf(_HEAD), "no blank line"),
        (crlf(_HEAD + "\nContent-Type: text/plain\n"), "no blank line"),
        (crlf(_HEAD + "Subject hello\n\n\n"), "without ':'"),
        (crlf(_HEAD + "imdn.Message-ID: 1\n\n\n"), "undeclared"),
        (crlf(_HEAD + "imdn.Message-ID: 1\nNS: imdn <urn:ietf:params:imdn>\n\n\n"), "undeclared"),
        (crlf(_HEAD + "NS: imdn urn:ietf:params:imdn\n\n\n"), "malformed NS"),
        (crlf(_HEAD + " folded\n\n\n"), "folded"),
        (crlf(_HEAD + "Bad Name: x\n\n\n"), "invalid header name"),
        (crlf(_HEAD + "\nContent-Length: 5\n\nabc"), "larger than the content"),
        (crlf(_HEAD + "\nContent-Length: " + "9" * 5000 + "\n\nabc"), "larger than the content"),
        (crlf(_HEAD + "\nContent-Length: 3x\n\nabc"), "not a number"),
        (crlf(_HEAD + "\nContent-Length: 1\ncontent-length: 1\n\nabc"), "more than one"),
        (crlf(_HEAD + "\n folded first\n\n"), "continuation"),
        (crlf("To: <sip:b@x>\n\n\n"), "missing From"),
        (crlf("From: <sip:a@x>\n\n\n"), "missing To"),
        (b"From: \xff\r\nTo: <sip:b@x>\r\n\r\n\r\n", "not UTF-8"),
        (b"From: <sip:a@x>\nTo: <sip:b@x>\r\n\r\n\r\n", "bare CR or LF"),
        (b"", "no blank line"),
    ],
)
def test_malformed_cpim_is_400(data: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_cpim(data)
    assert info.value.status_hint == 400
    assert reason in info.value.reason


def test_build_cpim_shape() -> None:
    body = build_cpim(
        from_="sip:+8613800000001@ims.mnc000.mcc460.3gppnetwork.org",
        to="<sip:+8613800000002@ims.mnc000.mcc460.3gppnetwork.org>",
        content_type="text/plain;charset=UTF-8",
        content=b"Hello world!",
        message_id="msg-001",
        datetime="2026-05-16T12:00:00Z",
        disposition=("positive-delivery", "display"),
    )
    assert body == PAGER


def test_build_cpim_extra_namespaces_and_headers() -> None:
    body = build_cpim(
        from_="sip:bot@botplatform.example",
        to="tel:+8613800000002",
        content_type="application/vnd.gsma.botmessage.v1.0+json",
        content=b"{}",
        message_id="m1",
        datetime="2026-05-16T12:00:00Z",
        extra_ns={"maap": "http://www.gsma.com/rcs/maap/"},
        extra_headers=[("maap.Traffic-Type", "advertisement"), ("Subject", "promo")],
        mime_headers=[("Content-ID", "<c1@x>")],
    )
    msg = parse_cpim(body)
    assert msg.ns_header("http://www.gsma.com/rcs/maap/", "Traffic-Type") == "advertisement"
    assert msg.header("Subject") == "promo"
    assert msg.disposition_notification == frozenset()
    assert msg.mime_header("Content-ID") == "<c1@x>"
    assert msg.content == b"{}"
    assert msg.to == "<tel:+8613800000002>"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"message_id": "a\r\nInjected: 1"},
        {"extra_headers": [("other.X", "1")]},
        {"extra_headers": [("Bad Name", "1")]},
        {"extra_ns": {"imdn": "urn:x"}},
        {"disposition": ["display, evil"]},
        {"mime_headers": [("Content-ID", "x\ny")]},
    ],
)
def test_build_cpim_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {
        "from_": "sip:a@x", "to": "sip:b@x", "content_type": "text/plain", "content": b"",
        "message_id": "m", "datetime": "2026-05-16T12:00:00Z",
    }
    with pytest.raises(LocalProtocolError):
        build_cpim(**{**base, **kwargs})  # type: ignore[arg-type]


def test_manual_message_serializes() -> None:
    msg = parse_cpim(PAGER)
    rebuilt = CpimMessage(msg.headers, msg.mime_headers, msg.body)
    assert rebuilt.to_bytes() == PAGER
    assert rebuilt.ns_header(IMDN_NS, "message-id") == "msg-001"


# -- IMDN ----------------------------------------------------------------------------------

COMBOS = [(kind, status) for kind, statuses in ALLOWED_STATUS.items() for status in statuses]


@pytest.mark.parametrize(("kind", "status"), COMBOS)
def test_imdn_round_trip(kind: str, status: str) -> None:
    xml = build_imdn(
        message_id="msg-001",
        datetime="2026-05-16T12:00:00Z",
        kind=kind,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        original_recipient="sip:+8613800000002@ims.example",
    )
    imdn = parse_imdn(xml)
    assert (imdn.kind, imdn.status) == (kind, status)
    assert imdn.message_id == "msg-001"
    assert imdn.datetime == "2026-05-16T12:00:00Z"
    assert imdn.original_recipient_uri == "sip:+8613800000002@ims.example"
    assert imdn.recipient_uri is None


def test_imdn_shape_matches_protocols_md() -> None:
    xml = build_imdn(message_id="msg-001", datetime="2026-05-16T12:00:00Z",
                     kind="delivery", status="delivered")
    assert xml.endswith(
        b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>msg-001</message-id>'
        b"<datetime>2026-05-16T12:00:00Z</datetime><delivery-notification><status>"
        b"<delivered /></status></delivery-notification></imdn>"
    )


@pytest.mark.parametrize(
    ("kind", "status"),
    [("display", "delivered"), ("display", "failed"), ("delivery", "displayed"),
     ("processing", "processed")],
)
def test_build_imdn_disallowed_combos(kind: str, status: str) -> None:
    with pytest.raises(LocalProtocolError):
        build_imdn(message_id="m", datetime="d", kind=kind, status=status)  # type: ignore[arg-type]


def _doc(inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<imdn xmlns="urn:ietf:params:xml:ns:imdn" xmlns:x="urn:example:ext">\n'
        "  <message-id>34jk324j</message-id>\n"
        "  <datetime>2008-04-04T12:16:49-05:00</datetime>\n"
        f"{inner}</imdn>\n"
    ).encode()


def test_parse_hand_written_imdn_with_prefix_and_extension() -> None:
    xml = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<n:imdn xmlns:n="urn:ietf:params:xml:ns:imdn" xmlns:x="urn:example:ext">\n'
        b"  <n:message-id> 34jk324j </n:message-id>\n"
        b"  <n:datetime>2008-04-04T12:16:49-05:00</n:datetime>\n"
        b"  <n:recipient-uri>im:bob@example.com</n:recipient-uri>\n"
        b"  <x:note>ignored</x:note>\n"
        b"  <n:display-notification>\n    <n:status>\n      <n:displayed/>\n"
        b"    </n:status>\n  </n:display-notification>\n</n:imdn>\n"
    )
    imdn = parse_imdn(xml)
    assert imdn.message_id == "34jk324j"
    assert imdn.kind == "display"
    assert imdn.status == "displayed"
    assert imdn.recipient_uri == "im:bob@example.com"


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE imdn [\n <!ENTITY a "aaaaaaaaaa">\n'
    b' <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n]>\n'
    b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>&b;</message-id></imdn>'
)


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        (BILLION_LAUGHS, "DTD"),
        (b'<!doctype imdn SYSTEM "file:///etc/passwd"><imdn/>', "DTD"),
        (b"<!ENTITY x 'y'>", "DTD"),
        (b"<imdn xmlns='urn:ietf:params:xml:ns:imdn'>", "malformed XML"),
        (b"not xml at all", "malformed XML"),
        (b"", "malformed XML"),
        (_doc("<message-id>&undefined;</message-id>"), "malformed XML"),
        (b"\xff\xfe<\x00i\x00", "not UTF-8"),
        (b"<imdn><message-id>1</message-id></imdn>", "root element"),
        (_doc("<display-notification><status><delivered/></status></display-notification>"),
         "not allowed"),
        (_doc("<delivery-notification><status><displayed/></status></delivery-notification>"),
         "not allowed"),
        (_doc(""), "exactly one delivery-notification"),
        (_doc("<delivery-notification><status><delivered/></status></delivery-notification>"
              "<display-notification><status><displayed/></status></display-notification>"),
         "exactly one delivery-notification"),
        (_doc("<processing-notification><status><processed/></status>"
              "</processing-notification>"), "processing"),
        (_doc("<delivery-notification></delivery-notification>"), "exactly one <status>"),
        (_doc("<delivery-notification><status/></delivery-notification>"),
         "exactly one status element"),
        (_doc("<message-id>2</message-id><delivery-notification><status><delivered/>"
              "</status></delivery-notification>"), "more than one <message-id>"),
        (b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><datetime>d</datetime>'
         b"<delivery-notification><status><delivered/></status></delivery-notification>"
         b"</imdn>", "missing <message-id>"),
        (b'<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id> </message-id><datetime>d'
         b"</datetime><delivery-notification><status><delivered/></status>"
         b"</delivery-notification></imdn>", "empty <message-id>"),
    ],
)
def test_malformed_imdn_is_400(xml: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_imdn(xml)
    assert info.value.status_hint == 400
    assert reason in info.value.reason


def test_declared_foreign_encoding_is_read_as_utf8() -> None:
    xml = build_imdn(message_id="é-1", datetime="d", kind="display", status="displayed")
    xml = xml.replace(b'encoding="UTF-8"', b'encoding="UTF-16"')
    assert parse_imdn(xml).message_id == "é-1"


def test_imdn_report_cpim() -> None:
    body = build_imdn_report_cpim(
        from_="sip:anonymous@anonymous.invalid",
        to="sip:anonymous@anonymous.invalid",
        message_id="report-9",
        datetime="2026-05-16T12:00:05Z",
        original_message_id="msg-001",
        original_datetime="2026-05-16T12:00:00Z",
        kind="delivery",
        status="delivered",
    )
    msg = parse_cpim(body)
    assert msg.to_bytes() == body
    assert msg.message_id == "report-9"
    assert msg.disposition_notification == frozenset()
    assert msg.header("imdn.Disposition-Notification") is None
    assert msg.content_type == "message/imdn+xml"
    assert msg.mime_header("Content-Disposition") == "notification"
    imdn = parse_imdn(msg.content)
    assert (imdn.message_id, imdn.datetime) == ("msg-001", "2026-05-16T12:00:00Z")
    assert (imdn.kind, imdn.status) == ("delivery", "delivered")
