"""CPIM payload building and reading (fivegmc.maap.content, protocols.md §3)."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fivegmc.maap.content import (
    ContentError,
    FileInfo,
    GeoPush,
    ft_http_xml,
    is_composing_xml,
    iso_utc,
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
from fivegmc.maap.model import BOTSUGGESTION, FT_HTTP, PUSH_LOCATION, Payload

UNTIL = 1764098634.0  # 2025-11-25T19:23:54Z


def test_iso_round_trip_and_zones() -> None:
    assert iso_utc(UNTIL) == "2025-11-25T19:23:54Z"
    assert parse_iso("2025-11-25T19:23:54Z") == UNTIL
    assert parse_iso("2025-11-25T21:23:54+02:00") == UNTIL
    assert parse_iso("2025-11-25T19:23:54.5") == UNTIL + 0.5
    for bad in ("", "yesterday", "2025-13-01T00:00:00Z", "2025-11-25"):
        with pytest.raises(ContentError):
            parse_iso(bad)


def test_ft_http_xml_file_and_thumbnail() -> None:
    f = FileInfo("http://127.0.0.1:8080/files/abc", "image/jpeg", 1234, UNTIL, "cat & dog.jpg")
    t = FileInfo("http://127.0.0.1:8080/files/th", "image/png", 99, UNTIL)
    p = ft_http_xml(f, t)
    assert p.content_type == FT_HTTP
    text = p.body.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert '<file xmlns="urn:gsma:params:xml:ns:rcs:rcs:fthttp">' in text
    assert text.index('type="thumbnail"') < text.index('type="file"')
    assert '<data url="http://127.0.0.1:8080/files/abc" until="2025-11-25T19:23:54Z"/>' in text
    assert "<file-name>cat &amp; dog.jpg</file-name>" in text
    back = parse_ft_http_xml(p.body)
    assert back.file == f
    assert back.thumbnail == t


def test_ft_http_audio_playing_length() -> None:
    f = FileInfo("http://h/files/a", "audio/amr", 5000, UNTIL, "a.amr", playing_length=12)
    p = ft_http_xml(f)
    assert b'file-disposition="render"' in p.body
    assert b"<playing-length>12</playing-length>" in p.body
    assert parse_ft_http_xml(p.body).file.playing_length == 12


def test_ft_http_refuses_hostile_xml() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
            b'<file xmlns="urn:gsma:params:xml:ns:rcs:rcs:fthttp">&a;</file>')
    with pytest.raises(ContentError, match="DTD"):
        parse_ft_http_xml(bomb)
    with pytest.raises(ContentError, match="no <file-info"):
        parse_ft_http_xml(b'<file xmlns="urn:gsma:params:xml:ns:rcs:rcs:fthttp"/>')
    with pytest.raises(ContentError):
        parse_ft_http_xml(b"<file><file-info type='file'><data/></file-info></file>")
    with pytest.raises(ContentError):
        ft_http_xml(FileInfo("http://h/\x01", "a/b", 1, UNTIL))


def test_multipart_round_trip() -> None:
    parts = [text_payload("Pick one"), suggestions_payload({"suggestions": []})]
    mp = multipart_mixed(parts, boundary="next")
    assert mp.content_type == 'multipart/mixed; boundary="next"'
    assert mp.body.startswith(b"--next\r\nContent-Type: text/plain;charset=UTF-8\r\n")
    assert mp.body.endswith(b"--next--\r\n")
    back = parse_multipart_mixed(mp)
    assert back == parts
    assert back[1].content_type == BOTSUGGESTION
    generated = multipart_mixed(parts)
    assert parse_multipart_mixed(generated) == parts


def test_multipart_errors() -> None:
    with pytest.raises(ContentError):
        multipart_mixed([])
    with pytest.raises(ContentError):
        multipart_mixed([Payload("text/plain", b"x\r\n--b\r\n")], boundary="b")
    with pytest.raises(ContentError):
        parse_multipart_mixed(Payload("multipart/mixed", b"--x\r\n"))
    with pytest.raises(ContentError):
        parse_multipart_mixed(Payload("multipart/mixed; boundary=x", b"--x\r\nabc"))


@given(st.lists(st.tuples(st.sampled_from(["text/plain", "application/json", "a/b;x=1"]),
                          st.binary(max_size=200)), min_size=1, max_size=4))
def test_multipart_round_trip_property(raw: list[tuple[str, bytes]]) -> None:
    parts = [Payload(ct, body) for ct, body in raw]
    try:
        mp = multipart_mixed(parts)
    except ContentError:
        return  # a part happened to contain the boundary
    assert parse_multipart_mixed(mp) == parts


@given(st.binary(max_size=300), st.text(max_size=20))
def test_multipart_parse_never_crashes(body: bytes, boundary: str) -> None:
    with contextlib.suppress(ContentError):
        parse_multipart_mixed(Payload(f'multipart/mixed; boundary="{boundary}"', body))


@given(st.binary(max_size=300))
def test_xml_readers_never_crash(body: bytes) -> None:
    for fn in (parse_ft_http_xml, parse_push_location, parse_is_composing):
        with contextlib.suppress(ContentError):
            fn(body)


def test_push_location_round_trip() -> None:
    g = GeoPush(39.9042, 116.4074, "Tian'anmen <square>", radius=10.0, timestamp=UNTIL,
                expiry=UNTIL + 3600, time_offset=480)
    p = push_location_xml(g, "sip:labbot@botplatform.example", push_id="a1")
    assert p.content_type == PUSH_LOCATION
    assert b"<gml:pos>39.9042 116.4074</gml:pos>" in p.body
    assert b"gs:Circle" in p.body
    assert parse_push_location(p.body) == g
    point = GeoPush(-33.5, 151.25)
    pp = push_location_xml(point, "sip:x@y")
    assert b"gml:Point" in pp.body
    assert parse_push_location(pp.body) == point
    with pytest.raises(ContentError):
        push_location_xml(GeoPush(91, 0), "sip:x@y")


def test_is_composing() -> None:
    assert parse_is_composing(is_composing_xml(True).body) is True
    assert parse_is_composing(is_composing_xml(False).body) is False


def test_suggestions_payload_is_json() -> None:
    p = suggestions_payload({"suggestions": [{"reply": {"displayText": "好"}}]})
    assert json.loads(p.body)["suggestions"][0]["reply"]["displayText"] == "好"
