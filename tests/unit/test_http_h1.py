"""Sans-IO HTTP/1.1 client core (fivegmc.http.h1): request building and response parsing
(RFC 9112), with hypothesis properties for arbitrary splits and hostile bytes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fivegmc.http.h1 import ProtocolError, Response, ResponseParser, build_request

# -- build_request ---------------------------------------------------------------------------


def test_build_post_has_host_first_and_content_length() -> None:
    raw = build_request("POST", "/hook?a=%20b", "example.com:8080",
                        [("Content-Type", "application/json")], b'{"x":1}')
    assert raw == (b"POST /hook?a=%20b HTTP/1.1\r\nHost: example.com:8080\r\n"
                   b"Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"x\":1}")


def test_build_post_and_put_send_content_length_zero() -> None:
    assert b"Content-Length: 0\r\n" in build_request("POST", "/", "h", [], b"")
    assert b"Content-Length: 0\r\n" in build_request("PUT", "/", "h", [], b"")
    assert b"Content-Length" not in build_request("GET", "/", "h", [], b"")
    assert build_request("GET", "/x", "h", [], b"") == b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"


def test_build_caller_host_replaces_default() -> None:
    raw = build_request("GET", "/", "h", [("host", "other")], b"")
    assert raw == b"GET / HTTP/1.1\r\nhost: other\r\n\r\n"


def test_build_utf8_value() -> None:
    assert "X-Name: 张三\r\n".encode() in build_request("GET", "/", "h", [("X-Name", "张三")], b"")


@pytest.mark.parametrize(("method", "target", "host", "headers"), [
    ("POST", "/a\r\nX-Evil: 1", "h", []),
    ("POST", "/a b", "h", []),
    ("POST", "/a\x00", "h", []),
    ("POST", "", "h", []),
    ("PO ST", "/", "h", []),
    ("POST\r\n", "/", "h", []),
    ("POST", "/", "h\r\nX: 1", []),
    ("POST", "/", "h", [("X-A", "v\r\nX-Evil: 1")]),
    ("POST", "/", "h", [("X-A", "v\nX")]),
    ("POST", "/", "h", [("X-A", "v\rX")]),
    ("POST", "/", "h", [("X-A", "v\x00")]),
    ("POST", "/", "h", [("X-A\r\nX-Evil", "v")]),
    ("POST", "/", "h", [("X A", "v")]),
    ("POST", "/", "h", [("X-A:", "v")]),
    ("POST", "/", "h", [("", "v")]),
    ("POST", "/", "h", [("Content-Length", "5")]),
    ("POST", "/", "h", [("transfer-encoding", "chunked")]),
])
def test_build_rejects_injection_and_bad_names(method: str, target: str, host: str,
                                               headers: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        build_request(method, target, host, headers, b"")


@given(st.text(), st.text())
def test_build_never_lets_crlf_through(name: str, value: str) -> None:
    try:
        raw = build_request("POST", "/", "h", [(name, value)], b"")
    except ValueError:
        return
    head = raw.split(b"\r\n\r\n", 1)[0]
    # exactly the request line, Host, the one field and Content-Length: nothing injected
    assert head.count(b"\r\n") == 3
    assert b"\n" not in head.replace(b"\r\n", b"") and b"\r" not in head.replace(b"\r\n", b"")


# -- parsing ---------------------------------------------------------------------------------


def parse_all(data: bytes, *methods: str, eof: bool = False, **limits: int) -> list[Response]:
    p = ResponseParser(**limits)
    for m in methods:
        p.expect(m)
    out = p.feed(data)
    if eof:
        out += p.feed_eof()
    return out


def test_content_length_body() -> None:
    [r] = parse_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 2\r\n\r\n{}")
    assert (r.status, r.reason, r.body, r.keep_alive) == (200, "OK", b"{}", True)
    assert r.header("content-type") == "application/json"
    assert r.header("CONTENT-LENGTH") == "2"
    assert r.header("x-missing") is None
    assert r.headers == (("Content-Type", "application/json"), ("Content-Length", "2"))


def test_two_responses_in_one_feed_and_byte_by_byte() -> None:
    data = (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    rs = parse_all(data)
    assert [(r.status, r.body) for r in rs] == [(200, b"abc"), (404, b"")]
    p = ResponseParser()
    got: list[Response] = []
    for i in range(len(data)):
        got += p.feed(data[i:i + 1])
    assert got == rs
    assert not p.in_progress


def test_chunked_with_extensions_and_trailers() -> None:
    data = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;name=value;q=\"x y\"\r\nhello\r\n"
            b"1 ; ext\r\n \r\n"
            b"6\r\nworld!\r\n"
            b"0;last\r\nX-Checksum: abc\r\nX-Other:  2 \r\n\r\n")
    [r] = parse_all(data)
    assert r.body == b"hello world!"
    assert r.trailers == (("X-Checksum", "abc"), ("X-Other", "2"))
    assert r.keep_alive


def test_chunked_upper_hex_and_bare_lf() -> None:
    data = b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\nA\n0123456789\n0\n\n"
    [r] = parse_all(data)
    assert r.body == b"0123456789"


def test_transfer_encoding_overrides_content_length_but_closes() -> None:
    data = (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nok\r\n0\r\n\r\n")
    [r] = parse_all(data)
    assert (r.body, r.keep_alive) == (b"ok", False)


def test_close_delimited_body() -> None:
    p = ResponseParser()
    assert p.feed(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart1 ") == []
    assert p.feed(b"part2") == []
    [r] = p.feed_eof()
    assert (r.body, r.keep_alive) == (b"part1 part2", False)


def test_clean_eof_between_responses() -> None:
    p = ResponseParser()
    assert len(p.feed(b"HTTP/1.1 204 No Content\r\n\r\n")) == 1
    assert p.feed_eof() == []


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Len",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n",
])
def test_cut_short_raises_on_eof(data: bytes) -> None:
    p = ResponseParser()
    assert p.feed(data) == []
    with pytest.raises(ProtocolError, match="connection closed"):
        p.feed_eof()


def test_head_response_has_no_body() -> None:
    data = (b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    rs = parse_all(data, "HEAD", "GET")
    assert [(r.status, r.body, r.header("Content-Length")) for r in rs] == [
        (200, b"", "1234"), (200, b"hi", "2")]


@pytest.mark.parametrize("status", [204, 304])
def test_204_304_have_no_body(status: int) -> None:
    data = (f"HTTP/1.1 {status} X\r\nContent-Length: 7\r\n\r\n".encode()
            + b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz")
    rs = parse_all(data)
    assert [(r.status, r.body) for r in rs] == [(status, b""), (200, b"z")]


def test_1xx_interim_responses_are_skipped() -> None:
    data = (b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    [r] = parse_all(data, "POST")
    assert r.status == 201


def test_101_is_unsupported() -> None:
    with pytest.raises(ProtocolError, match="101"):
        parse_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")


@pytest.mark.parametrize(("head", "keep_alive"), [
    (b"HTTP/1.1 200 OK\r\n", True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\n", False),
    (b"HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\n", False),
    (b"HTTP/1.0 200 OK\r\n", False),
    (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n", True),
])
def test_keep_alive(head: bytes, keep_alive: bool) -> None:
    [r] = parse_all(head + b"Content-Length: 0\r\n\r\n")
    assert r.keep_alive is keep_alive


def test_obs_fold_and_whitespace_and_missing_reason() -> None:
    [r] = parse_all(b"HTTP/1.1 200\r\nX-A: one\r\n  two\r\n\tthree\r\nX-B:\t v \t\r\n"
                    b"Content-Length: 0\r\n\r\n")
    assert r.reason == ""
    assert r.header("x-a") == "one two three"
    assert r.header("x-b") == "v"


def test_leading_empty_lines_ignored() -> None:
    [r] = parse_all(b"\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert r.status == 200


@pytest.mark.parametrize(("data", "message"), [
    (b"HTTP/1.1 OK\r\n\r\n", "status line"),
    (b"HTTP/2.0 200 OK\r\n\r\n", "version"),
    (b"HTTP/1.1 099 X\r\n\r\n", "status line"),
    (b"ICY 200 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "header line"),
    (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "header line"),
    (b"HTTP/1.1 200 OK\r\nName : x\r\n\r\n", "header line"),
    (b"HTTP/1.1 200 OK\r\n folded-first\r\n\r\n", "continuation"),
    (b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", "CR or NUL"),
    (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", "CR or NUL"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nok", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "does not end"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "does not end"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "unsupported"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk-size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", "chunk-size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX", "CRLF"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 40 + b"\r\n", "too large"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer\r\n\r\n",
     "trailer"),
])
def test_malformed_raises_protocol_error(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_all(data)


def test_parser_stays_failed() -> None:
    p = ResponseParser()
    with pytest.raises(ProtocolError):
        p.feed(b"garbage\r\n\r\n")
    with pytest.raises(ProtocolError, match="malformed status line"):
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ProtocolError):
        p.feed_eof()


def test_header_limit() -> None:
    big = b"HTTP/1.1 200 OK\r\nX: " + b"a" * 2000
    p = ResponseParser(max_header_bytes=1024)
    with pytest.raises(ProtocolError, match=r"max_header_bytes \(1024\)"):
        p.feed(big)  # no end of head in sight: fails before it arrives
    with pytest.raises(ProtocolError, match="max_header_bytes"):
        parse_all(big + b"\r\nContent-Length: 0\r\n\r\n", max_header_bytes=1024)
    # trickled in: fails as soon as the limit is passed, without buffering more
    p = ResponseParser(max_header_bytes=1024)
    with pytest.raises(ProtocolError, match="max_header_bytes"):
        for i in range(0, len(big), 100):
            p.feed(big[i:i + 100])
    assert parse_all(big[:900] + b"\r\n\r\n", eof=True, max_header_bytes=1024)


def test_body_limits() -> None:
    with pytest.raises(ProtocolError, match=r"max_body_bytes \(100\)"):
        parse_all(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n", max_body_bytes=100)
    [r] = parse_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100,
                    max_body_bytes=100)
    assert len(r.body) == 100
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"32\r\n" + b"x" * 50
    with pytest.raises(ProtocolError, match="max_body_bytes"):
        parse_all(chunked + b"\r\n33\r\n", max_body_bytes=100)
    with pytest.raises(ProtocolError, match="max_body_bytes"):
        parse_all(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 101, max_body_bytes=100)
    with pytest.raises(ProtocolError, match="chunk-size line longer"):
        parse_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 5000)


def test_trailer_limit() -> None:
    data = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: "
            + b"t" * 3000 + b"\r\n\r\n")
    with pytest.raises(ProtocolError, match="trailer section exceeds"):
        parse_all(data, max_header_bytes=1024)


# -- properties ------------------------------------------------------------------------------

_tchar = st.sampled_from("!#$%&'*+-.^_`|~0123456789"
                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_names = st.text(_tchar, min_size=1, max_size=12).filter(
    lambda n: n.lower() not in {"content-length", "transfer-encoding", "connection"})
# field-value: visible ASCII and obs-text, SP/HTAB only inside (OWS around it is not kept)
_vchar = st.sampled_from([chr(c) for c in (*range(0x21, 0x7F), *range(0xA0, 0x100))])
_values = st.builds(lambda a, b: (a + " " + b).strip() if b else a,
                    st.text(_vchar, max_size=10), st.text(_vchar, max_size=6))
_reasons = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


@dataclass
class Gen:
    wire: bytes
    expected: list[Response]
    methods: list[str]
    eof: bool


@st.composite
def one_response(draw: st.DrawFn, last: bool) -> tuple[bytes, Response, str]:
    method = draw(st.sampled_from(["GET", "POST", "HEAD"]))
    status = draw(st.sampled_from([200, 201, 202, 204, 301, 304, 400, 404, 429, 500, 503]))
    reason = draw(_reasons).strip()
    headers = draw(st.lists(st.tuples(_names, _values), max_size=5))
    body = draw(st.binary(max_size=300))
    framings = ["length", "chunked"] + (["eof"] if last else [])
    framing = draw(st.sampled_from(framings))
    no_body = method == "HEAD" or status in (204, 304)
    interim = draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2))
    wire = b"".join(f"HTTP/1.1 {s} Interim\r\n\r\n".encode() for s in interim)
    wire += f"HTTP/1.1 {status} {reason}\r\n".encode()
    hdrs = list(headers)
    trailers: list[tuple[str, str]] = []
    payload = b""
    keep_alive = True
    if framing == "length":
        hdrs.append(("Content-Length", str(len(body))))
        payload = b"" if no_body else body
    elif framing == "chunked":
        hdrs.append(("Transfer-Encoding", "chunked"))
        if not no_body:
            cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
            pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
            for piece in pieces:
                if piece:
                    ext = draw(st.sampled_from(["", ";a", ";a=b", ';q="x;y"', " ;z"]))
                    payload += f"{len(piece):x}{ext}\r\n".encode() + piece + b"\r\n"
            trailers = draw(st.lists(st.tuples(_names, _values), max_size=2))
            payload += b"0\r\n" + b"".join(f"{n}: {v}\r\n".encode("latin-1")
                                           for n, v in trailers) + b"\r\n"
    else:
        payload = b"" if no_body else body
        keep_alive = no_body
    for n, v in hdrs:
        wire += f"{n}: {v}\r\n".encode("latin-1")
    wire += b"\r\n" + payload
    resp = Response(status, reason, tuple(hdrs), b"" if no_body else body, keep_alive,
                    tuple(trailers))
    return wire, resp, method


@st.composite
def conversations(draw: st.DrawFn) -> Gen:
    n = draw(st.integers(1, 3))
    wire = b""
    expected: list[Response] = []
    methods: list[str] = []
    for i in range(n):
        w, r, m = draw(one_response(last=i == n - 1))
        wire += w
        expected.append(r)
        methods.append(m)
    return Gen(wire, expected, methods, eof=True)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(conversations(), st.lists(st.integers(0, 10_000), max_size=12))
def test_any_split_parses_identically(g: Gen, cuts: list[int]) -> None:
    whole = ResponseParser()
    for m in g.methods:
        whole.expect(m)
    got_whole = whole.feed(g.wire) + whole.feed_eof()
    assert got_whole == g.expected
    split = ResponseParser()
    for m in g.methods:
        split.expect(m)
    got_split: list[Response] = []
    for piece in _split(g.wire, cuts):
        got_split += split.feed(piece)
    got_split += split.feed_eof()
    assert got_split == g.expected


def _only_protocol_errors(pieces: list[bytes], limits: dict[str, int]) -> None:
    p = ResponseParser(**limits)
    p.expect("GET")
    try:
        for piece in pieces:
            p.feed(piece)
        p.feed_eof()
    except ProtocolError:
        pass


@given(st.lists(st.binary(max_size=200), max_size=8))
def test_arbitrary_bytes_raise_only_protocol_error(pieces: list[bytes]) -> None:
    _only_protocol_errors(pieces, {})


@given(conversations(), st.data())
def test_mutated_responses_raise_only_protocol_error(g: Gen, data: st.DataObject) -> None:
    wire = bytearray(g.wire)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(wire)))
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        byte = data.draw(st.sampled_from(b"\r\n\x00 :;0aZ\t\xff9"))
        if op == "insert" or i == len(wire):
            wire.insert(i, byte)
        elif op == "delete":
            del wire[i]
        else:
            wire[i] = byte
    cuts = data.draw(st.lists(st.integers(0, 10_000), max_size=6))
    _only_protocol_errors(_split(bytes(wire), cuts), {"max_header_bytes": 200,
                                                      "max_body_bytes": 150})
