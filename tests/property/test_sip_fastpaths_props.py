"""The relay hot path's shortcuts decide exactly as the general code they stand in for.

Each fast path in fivegmc/sip and the proxy core (string methods instead of a regex, a plain
split instead of a character scan, a header split that leaves folding to a general pass, our own
Via read without the Via parser) must give the same answer, or the same error, as the general
path on every input, not only on the well-formed ones it is there for.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from fivegmc.center.proxy import ProxyCore
from fivegmc.core.registrar import Flow
from fivegmc.core.routing import Router
from fivegmc.sip.errors import RemoteProtocolError
from fivegmc.sip.headers import _split_list_scan, split_list
from fivegmc.sip.message import Response
from fivegmc.sip.parser import (
    _content_length,
    _content_length_scan,
    _split_folded,
    _split_head,
    parse_message,
)
from fivegmc.sip.transaction import TimerConfig
from fivegmc.sip.uri import (
    _HOSTNAME,
    SipUri,
    TelUri,
    _parse_host_port,
    is_hostname,
    parse_uri,
    telephone_number,
)

from ..unit.sipbuild import directory_for, lab_profile, registrar_for
from . import sip_strategies as gen

HOST_CHARS = "aZ09.-_:[]@ é٣\t"
LIST_CHARS = 'ab ,;"<>\\\t='


@given(st.text(HOST_CHARS, max_size=12))
@example("a.")
@example("a..b")
@example("-a")
@example("a-")
@example("1.2.3.4")
@example("١")
def test_is_hostname_is_the_hostname_grammar(host: str) -> None:
    assert is_hostname(host) == (_HOSTNAME.fullmatch(host) is not None)


@given(st.text(HOST_CHARS, max_size=14))
@example("example.com")
@example("example.com:5060")
@example("[::1]:5060")
def test_uri_host_shortcut_matches_the_host_parser(hostport: str) -> None:
    text = f"sip:u@{hostport}"
    try:
        expected: object = _parse_host_port(hostport, text)
    except RemoteProtocolError as exc:
        expected = exc.reason
    if any(c in hostport for c in " \t?;@"):
        return  # handled before the host is looked at (whitespace, headers, params, userinfo)
    try:
        uri = parse_uri(text)
    except RemoteProtocolError as exc:
        assert exc.reason == expected
        return
    assert isinstance(uri, SipUri)
    assert (uri.host, uri.port) == expected


@given(st.text(LIST_CHARS, max_size=16))
@example('a, "b, c", <d,e>')
@example(" , ,a")
def test_split_list_shortcut_matches_the_scan(value: str) -> None:
    assert split_list(value) == _split_list_scan(value)


@given(st.text("+0123456789-.()%;a٣", min_size=1, max_size=10))
@example("+8613800000000")
@example("+")
@example("+86-138")
def test_telephone_number_of_a_sip_user_matches_the_tel_path(user: str) -> None:
    sip = telephone_number(SipUri("sip", user, "h"))
    if "%" in user or ";" in user:
        return  # unescaping and user parameters apply to SIP users only
    assert sip == telephone_number(TelUri(user))


def _lines(gen_msg: gen.GenMessage) -> list[str]:
    data = gen_msg.to_bytes()
    return data[: data.find(b"\r\n\r\n")].decode("utf-8", "surrogateescape").split("\r\n")


def _split(fn: object, lines: list[str]) -> object:
    try:
        return fn(lines)[:3]  # type: ignore[operator]
    except RemoteProtocolError as exc:
        return exc.reason


@given(gen.sip_messages(fold=False))
def test_header_split_matches_the_general_pass(gen_msg: gen.GenMessage) -> None:
    lines = _lines(gen_msg)
    assert _split(_split_head, lines) == _split(_split_folded, lines)


@given(gen.sip_messages(fold=False), st.integers(1, 30), st.sampled_from(
    ["", " ", "x", ":", "v", "Via", "To: a", " To: a", "\tx", "a b: c", "Via :x", "X-Y: 1"]))
def test_header_split_matches_the_general_pass_on_odd_lines(
        gen_msg: gen.GenMessage, at: int, line: str) -> None:
    lines = _lines(gen_msg)
    lines.insert(min(at, len(lines)), line)
    if line[:1] in (" ", "\t"):
        return  # a continuation: _split_head hands the whole head to the general pass
    assert _split(_split_head, lines) == _split(_split_folded, lines)


OWN = "SIP/2.0/UDP 192.0.2.1:5060"
BRANCH_CHARS = "z9hG4bK0a.-_;=, \"<>"


def _core() -> ProxyCore:
    profile = lab_profile()
    router = Router(profile, registrar_for(profile), directory_for(profile),
                    local_sent_by=lambda: frozenset({"192.0.2.1:5060"}))
    return ProxyCore(router, send=lambda data, flow: None, local_via=lambda transport: OWN,
                     timers=TimerConfig(), max_message_size=4096, server_header="t")


@given(st.text(BRANCH_CHARS, max_size=20),
       st.sampled_from(["", ", SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKu",
                        ',SIP/2.0/TCP h;x="a,b"', " ;rport"]),
       st.sampled_from([OWN, "SIP/2.0/UDP 192.0.2.1:5061", "SIP/2.0/TCP 192.0.2.1:5060"]))
@example("z9hG4bKab12.cd34", "", OWN)
@example("z9hG4bKab12.cd34", ", SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKu", OWN)
def test_own_branch_is_the_top_via_branch(branch: str, more: str, sent: str) -> None:
    data = (f"SIP/2.0 200 OK\r\nVia: {sent};branch={branch}{more}\r\nFrom: <sip:a@h>;tag=1\r\n"
            "To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n")
    try:
        resp = parse_message(data.encode())
    except RemoteProtocolError:
        return
    assert isinstance(resp, Response)
    fast = _core()._own_branch(resp, Flow("udp", "198.51.100.7", 5062))
    if fast is None:
        return
    assert fast == resp.top_via().branch


CL_PIECES = [b"\r\n", b"Content-Length: 12", b"content-length:3", b"CONTENT-LENGTH :4", b"l: 5",
             b"L:6", b"X-Content-Length: 7", b" ", b"\t", b"\x0b", b"\n", b"\r", b"12", b":",
             b"Via: x", b"MESSAGE sip:a@b SIP/2.0", b"\xff", b"+1", b"0123456789"]


def _length(fn: object, head: bytes) -> object:
    try:
        return fn(head)  # type: ignore[operator]
    except RemoteProtocolError as exc:
        return exc.reason


@given(st.lists(st.sampled_from(CL_PIECES) | st.binary(max_size=4), max_size=14))
@example([b"MESSAGE sip:a@b SIP/2.0", b"\r\n", b"Content-Length: 12"])
@example([b"MESSAGE sip:a@b SIP/2.0", b"\r\n", b"Content-Length: 12", b"\r\n", b"l: 5"])
def test_stream_content_length_shortcut_matches_the_line_scan(parts: list[bytes]) -> None:
    head = b"".join(parts)
    assert _length(_content_length, head) == _length(_content_length_scan, head)
