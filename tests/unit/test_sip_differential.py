"""Differential tests: fivegmc.sip against the independent ``sipmessage`` package (PyPI).

What sipmessage can do (0.7.x): ``Message.parse(bytes)`` splits a whole message into a
Request (method, ``URI``) or Response (code, phrase), a multi-dict of raw header values (compact
names expanded) and the body; typed accessors parse Via, From/To/Contact/Route/Record-Route
(``Address``), CSeq, Max-Forwards, Expires, auth headers and media types on demand. It does
*not* unfold continuation lines, strip whitespace before the colon, use Content-Length (the body
is everything after the blank line), check mandatory headers, or accept Request-URI schemes other
than sip/sips/tel. Its host grammar rejects top labels with digits ("h2") and its quoted-string
pattern is greedy across list elements, so the generated messages used here keep clear of those
(no folding, no odd spacing, letters-only top labels, one Contact per field).

Normalisations applied before comparing (each is a representation choice, not a disagreement):

* header names compared case-insensitively (sipmessage keeps the long name as written);
* URIs: sipmessage percent-decodes user, password and parameter names/values, fivegmc keeps the
  escapes, so fivegmc's are decoded with urllib.parse.unquote; an empty password is None in
  sipmessage; a tel URI is (user=number, host="") in sipmessage;
* display names: fivegmc keeps the raw quoted-string content (escapes included), sipmessage
  unescapes \\" and \\\\, so fivegmc's are unescaped; an absent display name is None vs "";
* Via transport compared upper-case; parameters compared as dicts (names are unique here).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import sipmessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fivegmc.sip.errors import RemoteProtocolError
from fivegmc.sip.message import Request, Response
from fivegmc.sip.parser import parse_message
from fivegmc.sip.uri import NameAddr, SipUri, TelUri, Uri, parse_name_addr, parse_uri
from fivegmc.sip.via import Via, parse_via
from tests.property.sip_strategies import GenMessage, sip_messages

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "sip"
DIFF = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COMPATIBLE = sip_messages(fold=False, odd_spacing=False, absolute=False, joined_lists=False)


# ----------------------------------------------------------------------------- normalisers
Params = dict[str, str | None]


def _params(params: tuple[tuple[str, str | None], ...]) -> Params:
    return {unquote(k): (None if v is None else unquote(v)) for k, v in params}


def ours_uri(uri: Uri) -> tuple[Any, ...]:
    if isinstance(uri, SipUri):
        user = unquote(uri.user) if uri.user is not None else None
        password = unquote(uri.password) if uri.password else None
        return uri.scheme, user, password, uri.host, uri.port, _params(uri.params)
    if isinstance(uri, TelUri):
        return "tel", uri.number, None, "", None, _params(uri.params)
    return ("absolute", str(uri))  # sipmessage has no such URIs: never equal to one of its


def sm_uri(uri: sipmessage.URI) -> tuple[Any, ...]:
    return uri.scheme, uri.user, uri.password, uri.host, uri.port, dict(uri.parameters)


def ours_addr(na: NameAddr) -> tuple[Any, ...]:
    display = re.sub(r"\\(.)", r"\1", na.display_name or "")
    return display, ours_uri(na.uri), _params(na.params)


def sm_addr(a: sipmessage.Address) -> tuple[Any, ...]:
    return a.name, sm_uri(a.uri), dict(a.parameters)


def ours_via(v: Via) -> tuple[Any, ...]:
    return v.transport.upper(), v.host, v.port, _params(v.params)


def sm_via(v: sipmessage.Via) -> tuple[Any, ...]:
    return v.transport.upper(), v.host, v.port, dict(v.parameters)


def ours_header_groups(msg: Request | Response) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    for name, value in msg.headers.items():
        groups.setdefault(name.lower(), []).append(value)
    return list(groups.items())


def sm_header_groups(msg: sipmessage.Message) -> list[tuple[str, list[str]]]:
    return [(k.lower(), list(msg.headers.getlist(k))) for k in msg.headers.keys()]  # noqa: SIM118


def compare_messages(ours: Request | Response, theirs: sipmessage.Message) -> None:
    """Both views of one message must agree (after the module docstring's normalisations)."""
    if isinstance(ours, Request):
        assert isinstance(theirs, sipmessage.Request)
        assert ours.method == theirs.method
        assert ours_uri(ours.request_uri()) == sm_uri(theirs.uri)
    else:
        assert isinstance(theirs, sipmessage.Response)
        assert (ours.status, ours.reason) == (theirs.code, theirs.phrase)
    assert ours_header_groups(ours) == sm_header_groups(theirs)
    assert [ours_via(v) for v in ours.vias()] == [sm_via(v) for v in theirs.via]
    assert ours_addr(ours.from_()) == sm_addr(theirs.from_address)
    assert ours_addr(ours.to()) == sm_addr(theirs.to_address)
    contacts = ours.contacts()
    assert contacts is not None
    assert [ours_addr(c) for c in contacts] == [sm_addr(a) for a in theirs.contact]
    for name, accessor in (("Route", "route"), ("Record-Route", "record_route")):
        ours_list = [ours_addr(parse_name_addr(v)) for v in ours.headers.get_all(name)]
        assert ours_list == [sm_addr(a) for a in getattr(theirs, accessor)]
    assert ours.cseq() == (theirs.cseq.sequence, theirs.cseq.method)
    assert ours.call_id() == theirs.call_id
    assert ours.int_header("Max-Forwards") == theirs.max_forwards
    assert ours.int_header("Expires") == theirs.expires


# ----------------------------------------------------------------------------- generated messages
@DIFF
@given(COMPATIBLE)
def test_both_parsers_agree_on_generated_messages(gen: GenMessage) -> None:
    data = gen.to_bytes()
    ours = parse_message(data)
    theirs = sipmessage.Message.parse(data)
    compare_messages(ours, theirs)
    assert ours.body == theirs.body == gen.body
    # and again on fivegmc's own serialisation (canonical names, Content-Length last)
    wire = ours.to_bytes()
    compare_messages(parse_message(wire), sipmessage.Message.parse(wire))


# ----------------------------------------------------------------------------- RFC vectors
def _sipmessage_can_read(data: bytes) -> bool:
    """No folding, no whitespace before a colon, sip/sips/tel Request-URI (see module doc)."""
    head = data.partition(b"\r\n\r\n")[0]
    lines = head.split(b"\r\n")
    if any(line[:1] in (b" ", b"\t") for line in lines[1:]):
        return False
    if any(re.match(rb"^[^:]*[ \t]:", line) for line in lines[1:]):
        return False
    parts = lines[0].split(b" ")
    return lines[0].startswith(b"SIP/") or parts[1].split(b":")[0] in (b"sip", b"sips", b"tel")


# intmeth is left to test_sip_vectors (fivegmc rejects its NUL, see there)
SM_READABLE = [
    p.stem for p in sorted((VECTORS / "valid").glob("*.sip"))
    if p.stem != "intmeth" and _sipmessage_can_read(p.read_bytes())
]


def test_most_vectors_are_readable_by_sipmessage() -> None:
    assert len(SM_READABLE) >= 30


def agree(ours_fn: Any, ours_norm: Any, theirs_fn: Any, theirs_norm: Any) -> None:
    """Where both parsers accept a header, their normalised views must be equal."""
    try:
        ours_view = ours_norm(ours_fn())
        theirs_view = theirs_norm(theirs_fn())
    except (ValueError, RemoteProtocolError):
        return
    assert ours_view == theirs_view


@pytest.mark.parametrize("name", SM_READABLE)
def test_both_parsers_agree_on_valid_vectors(name: str) -> None:
    data = (VECTORS / "valid" / f"{name}.sip").read_bytes()
    ours = parse_message(data)
    theirs = sipmessage.Message.parse(data)
    if isinstance(ours, Request):
        assert isinstance(theirs, sipmessage.Request) and ours.method == theirs.method
        assert ours_uri(ours.request_uri()) == sm_uri(theirs.uri)
    else:
        assert isinstance(theirs, sipmessage.Response)
        assert (ours.status, ours.reason) == (theirs.code, theirs.phrase)
    assert ours_header_groups(ours) == sm_header_groups(theirs)
    # sipmessage ignores Content-Length, so the bodies agree up to fivegmc's cut
    assert theirs.body.startswith(ours.body)
    # typed views: wherever both parse a header, they must agree
    agree(ours.vias, lambda xs: [ours_via(v) for v in xs],
          lambda: theirs.via, lambda xs: [sm_via(v) for v in xs])
    agree(ours.from_, ours_addr, lambda: theirs.from_address, sm_addr)
    agree(ours.to, ours_addr, lambda: theirs.to_address, sm_addr)
    agree(ours.cseq, lambda c: c, lambda: theirs.cseq, lambda c: (c.sequence, c.method))
    agree(ours.contacts, lambda xs: [ours_addr(c) for c in xs or []],
          lambda: theirs.contact, lambda xs: [sm_addr(a) for a in xs])


def test_sipmessage_cannot_unfold_but_fivegmc_can() -> None:
    data = (VECTORS / "valid" / "wsinv.sip").read_bytes()
    with pytest.raises(ValueError):
        sipmessage.Message.parse(data)
    assert len(parse_message(data).vias()) == 3


# ----------------------------------------------------------------------------- header level
VIA_VALUES = [
    "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8",
    "SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1;received=192.0.2.2",
    "SIP/2.0/TCP [2001:db8::77]:5060;branch=z9hG4bK-reg-1;rport",
    "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport",
    "SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en",
    "SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23",
    "SIP  / 2.0  / TCP spindle.example.com;branch=z9hG4bK9ikj8",
]
ADDRESSES = [
    "Bob <sip:bob@biloxi.com>;tag=a6c85cf",
    '"Alice" <sip:alice@atlanta.com>;tag=1928301774',
    "<sip:+8613800000001@ims.mnc000.mcc460.3gppnetwork.org>;tag=a1b2c3",
    "sip:caller@example.net;tag=134161461246",
    "<tel:+86-139-0000-0002>;tag=imdn01",
    "caller<sip:caller@example.com>;tag=323",
    '"%Z%45" <sip:resource@example.com>;tag=f232jadfj23',
    "<sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>",
    "sip:+19725552222@gw1.example.net;unknownparam",
    "<sip:+19725552222@gw1.example.net;unknownparam>",
    '<sip:+8613800000001@[2001:db8::77]:5060;transport=tcp>;expires=600;+g.3gpp.icsi-ref='
    '"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"',
    '"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>;tag=98asjd8',
]


@pytest.mark.parametrize("value", VIA_VALUES)
def test_via_values_agree(value: str) -> None:
    assert ours_via(parse_via(value)) == sm_via(sipmessage.Via.parse(value))


@pytest.mark.parametrize("value", ADDRESSES)
def test_addresses_agree(value: str) -> None:
    assert ours_addr(parse_name_addr(value)) == sm_addr(sipmessage.Address.parse(value))


@pytest.mark.parametrize(
    "value",
    [
        "sip:a?b@example.com",
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
        "(doesn't-it)@example.com",
    ],
    ids=["short", "rfc4475-intmeth"],
)
def test_uris_with_question_mark_in_user_agree(value: str) -> None:
    assert ours_uri(parse_uri(value)) == sm_uri(sipmessage.URI.parse(value))


# ----------------------------------------------------------------------------- rejections
REGISTER = (VECTORS / "valid" / "rfc3261-register.sip").read_bytes()
BROKEN = {
    "empty": b"",
    "no-blank-line": REGISTER.replace(b"\r\n\r\n", b"\r\n"),
    "header-without-colon": REGISTER.replace(b"Expires: 7200", b"Expires 7200"),
    "start-line-garbage": REGISTER.replace(b"REGISTER sip:registrar.biloxi.com SIP/2.0", b"HELLO"),
    "two-spaces-in-request-line": REGISTER.replace(b"REGISTER sip:", b"REGISTER  sip:"),
    "trailing-space-in-request-line": REGISTER.replace(b" SIP/2.0\r\n", b" SIP/2.0 \r\n", 1),
    "version-3": REGISTER.replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1),
    "status-not-a-number": b"SIP/2.0 2x0 OK\r\n" + REGISTER.partition(b"\r\n")[2],
    "lf-only": REGISTER.replace(b"\r\n", b"\n"),
    "embedded-lws-in-uri": REGISTER.replace(b"sip:registrar.biloxi.com",
                                            b"sip:registrar.biloxi.com; lr"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_both_reject_clearly_broken_messages(name: str) -> None:
    data = BROKEN[name]
    with pytest.raises(ValueError):
        sipmessage.Message.parse(data)
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(data)
    assert info.value.status_hint in (400, 505)


LAZY_BROKEN = {
    # sipmessage rejects these while parsing the message; fivegmc when request_uri() is read
    "ltgtruri": (VECTORS / "invalid" / "ltgtruri.sip").read_bytes(),
    "ruri-port-not-digits": REGISTER.replace(b"sip:registrar.biloxi.com ",
                                             b"sip:registrar.biloxi.com:50x0 "),
    "ruri-ipv6-unterminated": REGISTER.replace(b"sip:registrar.biloxi.com ",
                                               b"sip:[2001:db8::1 "),
}


@pytest.mark.parametrize("name", list(LAZY_BROKEN))
def test_both_reject_bad_request_uris(name: str) -> None:
    data = LAZY_BROKEN[name]
    with pytest.raises(ValueError):
        sipmessage.Message.parse(data)
    msg = parse_message(data)
    assert isinstance(msg, Request)
    with pytest.raises(RemoteProtocolError):
        msg.request_uri()


def structurally_broken(data: bytes) -> str | None:
    """A reason both parsers must reject ``data`` for, judged without either parser."""
    if data[:1] in (b"\r", b"\n"):
        return None  # fivegmc skips leading CRLF (RFC 3261 §7.5), sipmessage does not
    head, sep, _ = data.partition(b"\r\n\r\n")
    if not sep:
        return "no blank line"
    lines = head.split(b"\r\n")
    start = lines[0].split(b" ")
    if not lines[0].startswith(b"SIP/") and (len(start) != 3 or start[2] != b"SIP/2.0"):
        return "not a request line"
    for line in lines[1:]:
        if b":" not in line and line[:1] not in (b" ", b"\t"):
            return "header line without colon"
    return None


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(COMPATIBLE).to_bytes())
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["cut", "delete", "crlf", "space", "flip"]))
        if op == "cut":
            del data[pos:]
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "crlf":
            data[pos:pos] = b"\r\n"
        elif op == "space":
            data[pos:pos] = b" "
        elif data:
            data[pos] ^= draw(st.integers(1, 255))
        if not data:
            break
    return bytes(data)


@DIFF
@given(damaged())
def test_both_reject_structurally_broken_mutations(data: bytes) -> None:
    reason = structurally_broken(data)
    try:
        sipmessage.Message.parse(data)
        theirs_ok = True
    except ValueError:
        theirs_ok = False
    try:
        parse_message(data)
        ours_ok = True
    except RemoteProtocolError:
        ours_ok = False
    if reason is not None:
        assert not theirs_ok and not ours_ok, reason
