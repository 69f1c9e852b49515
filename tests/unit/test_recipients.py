"""RFC 5365 recipient-list bodies: multipart/mixed + resource-lists XML."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fivegmc.sip.errors import RemoteProtocolError
from fivegmc.sip.recipients import build_list_body, parse_list_message, parse_resource_list

CT = 'multipart/mixed; boundary="b1"'


def test_round_trip_keeps_message_and_recipient_order() -> None:
    uris = ["sip:+8613800000002@d", "tel:+8613800000003", "sip:+8613800000004@d"]
    body = build_list_body("b1", "message/cpim", b"CPIM\r\n\r\nhello", uris)
    lm = parse_list_message(CT, body)
    assert lm.content_type == "message/cpim"
    assert lm.body == b"CPIM\r\n\r\nhello"
    assert [r.uri for r in lm.recipients] == uris


def test_copy_control_is_read() -> None:
    xml = (b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists" '
           b'xmlns:cp="urn:ietf:params:xml:ns:copycontrol"><list>'
           b'<entry uri="sip:a@d" cp:copyControl="bcc"/></list></resource-lists>')
    assert parse_resource_list(xml)[0].copy_control == "bcc"


@pytest.mark.parametrize("ctype, body", [
    ("text/plain", b"x"),
    ("multipart/mixed", b"--b1\r\n\r\nx\r\n--b1--"),
    (CT, b"--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1--\r\n"),  # no list
    (CT, b"--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n"),  # no closing delimiter
    (CT, build_list_body("b1", "text/plain", b"hi", []).replace(b"<list></list>", b"<list>")),
])
def test_bad_list_bodies_are_400(ctype: str, body: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        parse_list_message(ctype, body)
    assert exc.value.status_hint == 400


def test_dtd_and_entities_are_refused() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]>'
            b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"/>')
    with pytest.raises(RemoteProtocolError):
        parse_resource_list(bomb)


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_the_protocol_error(data: bytes) -> None:
    for parse in (lambda: parse_list_message(CT, data), lambda: parse_resource_list(data)):
        with contextlib.suppress(RemoteProtocolError):
            parse()
