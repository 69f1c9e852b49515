"""SIP wire vectors (DESIGN.md §5 ring 1): tests/vectors/sip/{valid,invalid}/*.sip + manifest.toml.

Valid vectors parse, match their manifest expectations and survive parse∘serialize; invalid ones
raise RemoteProtocolError with the expected status_hint, at parse time or -- for defects that only
a lazy accessor can see -- when that accessor is called.

The second half covers rules that no vector file shows well (each test names the RFC rule; they
were parser defects once and are regression tests now), plus framing and datagram behaviours.
"""

from __future__ import annotations

import contextlib
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fivegmc.sip.errors import RemoteProtocolError
from fivegmc.sip.message import Request, Response
from fivegmc.sip.parser import KEEPALIVE, StreamFramer, parse_message
from fivegmc.sip.uri import AbsoluteUri, SipUri, TelUri, parse_uri, telephone_number
from fivegmc.sip.via import parse_via

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "sip"
MANIFEST: dict[str, dict[str, dict[str, Any]]] = tomllib.loads(
    (VECTORS / "manifest.toml").read_text("utf-8")
)
VALID: dict[str, dict[str, Any]] = MANIFEST["valid"]
INVALID: dict[str, dict[str, Any]] = MANIFEST["invalid"]
URI_CLASSES = {"SipUri": SipUri, "TelUri": TelUri, "AbsoluteUri": AbsoluteUri}


def load(kind: str, name: str) -> bytes:
    return (VECTORS / kind / f"{name}.sip").read_bytes()


def xfail(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)


def valid_params(roundtrip: bool = False) -> Iterator[Any]:
    for name, spec in VALID.items():
        marks = []
        if "xfail" in spec:
            marks.append(xfail(spec["xfail"]))
        elif roundtrip and "xfail_roundtrip" in spec:
            marks.append(xfail(spec["xfail_roundtrip"]))
        yield pytest.param(name, spec, marks=marks, id=name)


def invalid_params() -> Iterator[Any]:
    for name, spec in INVALID.items():
        for where in spec["at"]:
            marks = []
            if where in spec.get("xfail", {}):
                marks.append(xfail(spec["xfail"][where]))
            yield pytest.param(name, spec, where, marks=marks, id=f"{name}-{where}")


def parse_valid(data: bytes) -> Request | Response:
    try:
        return parse_message(data)
    except RemoteProtocolError as exc:  # turned into an AssertionError for the xfail marks
        raise AssertionError(f"valid vector rejected: {exc.reason}") from exc


# ----------------------------------------------------------------------------- the files
def test_every_vector_file_has_a_manifest_entry_and_back() -> None:
    for kind, table in (("valid", VALID), ("invalid", INVALID)):
        files = {p.stem for p in (VECTORS / kind).glob("*.sip")}
        assert files == set(table), kind
    assert len(VALID) >= 40 and len(INVALID) >= 30


def test_vectors_are_stored_with_crlf_line_ends() -> None:
    for path in VECTORS.glob("*/*.sip"):
        head = path.read_bytes().partition(b"\r\n\r\n")[0]
        assert b"\n" not in head.replace(b"\r\n", b""), path.name
    rules = (VECTORS.parent / ".gitattributes").read_text().splitlines()
    assert "** -text" in rules  # nested file: the pattern is relative to tests/vectors/


# ----------------------------------------------------------------------------- valid vectors
def check_name_addr(spec: dict[str, Any], prefix: str, getter: Callable[[], Any]) -> None:
    keys = [k for k in ("tag", "display", "str", "number") if f"{prefix}_{k}" in spec]
    if not keys:
        return
    na = getter()
    for k in keys:
        expected = spec[f"{prefix}_{k}"]
        if k == "tag":
            assert na.tag == expected
        elif k == "display":
            assert na.display_name == expected
        elif k == "str":
            assert str(na) == expected
        else:
            assert telephone_number(na.uri) == expected


@pytest.mark.parametrize(("name", "spec"), list(valid_params()))
def test_valid_vector_matches_manifest(name: str, spec: dict[str, Any]) -> None:
    msg = parse_valid(load("valid", name))
    if "method" in spec:
        assert isinstance(msg, Request)
        assert msg.method == spec["method"]
    else:
        assert isinstance(msg, Response)
        assert msg.status == spec["status"]
        assert msg.reason == spec["reason"]
    assert msg.call_id() == spec["call_id"]
    assert len(msg.vias()) == spec["vias"]
    assert len(msg.body) == spec["body_length"]
    assert len(msg.headers) == spec["headers"]
    top = msg.top_via()
    assert top == msg.vias()[0]
    if "via_transports" in spec:
        assert [v.transport for v in msg.vias()] == spec["via_transports"]
    for key, attr in (("via_branch", "branch"), ("via_host", "host"), ("via_port", "port")):
        if key in spec:
            assert getattr(top, attr) == spec[key]
    if isinstance(msg, Request):
        ruri = msg.request_uri()
        assert msg.cseq()[1] == msg.method
        if "ruri" in spec:
            assert isinstance(ruri, URI_CLASSES[spec["ruri"]])
        if "ruri_user" in spec:
            assert isinstance(ruri, SipUri) and ruri.user == spec["ruri_user"]
        if "ruri_host" in spec:
            assert isinstance(ruri, SipUri) and ruri.host == spec["ruri_host"]
        if "ruri_number" in spec:
            assert telephone_number(ruri) == spec["ruri_number"]
    if "cseq" in spec:
        assert list(msg.cseq()) == spec["cseq"]
    for key, header in (("max_forwards", "Max-Forwards"), ("expires", "Expires")):
        if key in spec:
            assert msg.int_header(header) == spec[key]
    check_name_addr(spec, "from", msg.from_)
    check_name_addr(spec, "to", msg.to)
    if "contacts" in spec:
        contacts = msg.contacts()
        if spec["contacts"] == -1:
            assert contacts is None
        else:
            assert contacts is not None and len(contacts) == spec["contacts"]
    if "contact_str" in spec or "contact_params" in spec:
        contacts = msg.contacts()
        assert contacts
        if "contact_str" in spec:
            assert str(contacts[0]) == spec["contact_str"]
        for pname, pvalue in spec.get("contact_params", {}).items():
            assert contacts[0].param(pname) == pvalue
    for hname, hvalue in spec.get("header", {}).items():
        assert msg.headers.get(hname) == hvalue
    for hname, count in spec.get("values", {}).items():
        assert len(msg.headers.get_all(hname)) == count


def _view(msg: Request | Response) -> tuple[Any, ...]:
    start = (msg.method, msg.uri) if isinstance(msg, Request) else (msg.status, msg.reason)
    return start, [(n, v) for n, v in msg.headers.items() if n != "Content-Length"], msg.body


@pytest.mark.parametrize(("name", "spec"), list(valid_params(roundtrip=True)))
def test_valid_vector_round_trip(name: str, spec: dict[str, Any]) -> None:
    msg = parse_valid(load("valid", name))
    wire = msg.to_bytes()
    again = parse_message(wire, stream=True)
    assert _view(again) == _view(msg)
    assert again.headers.get("Content-Length") == str(len(msg.body))
    assert again.to_bytes() == wire
    # the serialised form is what a TCP peer frames as exactly one message
    assert StreamFramer().feed(wire) == [wire]


@pytest.mark.parametrize(("name", "spec"), list(valid_params()))
def test_valid_vector_frames_whole_on_a_stream(name: str, spec: dict[str, Any]) -> None:
    data = load("valid", name)
    msg = parse_valid(data)
    declared = msg.headers.get("Content-Length")
    head_len = data.index(b"\r\n\r\n") + 4
    if declared is None or head_len + int(declared) != len(data):
        pytest.skip("no Content-Length, or trailing datagram octets: not a stream message")
    assert StreamFramer().feed(data) == [data]


# ----------------------------------------------------------------------------- invalid vectors
@pytest.mark.parametrize(("name", "spec", "where"), list(invalid_params()))
def test_invalid_vector_is_rejected(name: str, spec: dict[str, Any], where: str) -> None:
    hints = spec["status_hint"] if isinstance(spec["status_hint"], list) else [spec["status_hint"]]
    data = load("invalid", name)
    try:
        msg = parse_message(data, max_size=spec.get("max_size", 65535))
    except RemoteProtocolError as exc:
        assert exc.status_hint in hints, exc.reason
        return
    assert where != "parse", f"{name} parsed, RFC: {spec['rfc']}"
    if where.startswith("int_header:"):
        header = where.partition(":")[2]

        def accessor() -> object:
            return msg.int_header(header)
    else:
        accessor = getattr(msg, where)
    try:
        result = accessor()
    except RemoteProtocolError as exc:
        assert exc.status_hint in hints, exc.reason
        return
    raise AssertionError(f"{name}: {where}() returned {result!r}; RFC: {spec['rfc']}")


def test_oversize_vector_parses_without_the_limit() -> None:
    assert len(parse_message(load("invalid", "oversize")).body) == 1400


# ----------------------------------------------------------------------------- datagram / stream
REGISTER = load("valid", "rfc3261-register")


def test_extra_datagram_octets_are_discarded_but_stream_frames_them() -> None:
    data = load("valid", "dblreq")
    assert parse_message(data).body == b""
    frames = StreamFramer().feed(data)
    assert frames[0].startswith(b"REGISTER ") and frames[1].startswith(b"INVITE ")


def test_content_length_is_required_on_streams_only() -> None:
    data = load("valid", "inv2543")
    assert len(parse_message(data).body) == 105
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(data, stream=True)
    assert info.value.status_hint == 400
    with pytest.raises(RemoteProtocolError):
        StreamFramer().feed(data)


def test_leading_crlf_before_the_start_line_is_ignored() -> None:
    assert isinstance(parse_message(b"\r\n\r\n" + REGISTER), Request)
    framer = StreamFramer()
    assert framer.feed(b"\r\n" + REGISTER) == [REGISTER]


def test_keepalive_ping_and_pong_on_a_stream() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r\n") == [KEEPALIVE]
    assert framer.feed(b"\r\n\r\n\r\n\r\n" + REGISTER[:10]) == [KEEPALIVE, KEEPALIVE]
    assert framer.feed(REGISTER[10:]) == [REGISTER]
    assert framer.buffered == 0


def test_stream_conflicting_content_lengths_are_rejected() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        StreamFramer().feed(load("invalid", "mcl01"))
    assert info.value.status_hint == 400


def test_compact_forms_are_expanded_and_lists_split() -> None:
    msg = parse_valid(load("valid", "longreq"))
    assert {name for name, _ in msg.headers.items()} >= {"Via", "From", "Content-Length"}
    assert "v" not in {name for name, _ in msg.headers.items()}
    assert msg.headers.get("f") == msg.headers.get("From")
    assert len(msg.headers.get_fields("Via")) == 34
    auth = parse_valid(load("valid", "regaut01"))
    assert auth.headers.get_all("Authorization") == ["NoOneKnowsThisScheme opaque-data=here"]


# ----------------------------------------------------------------------------- parser defects
def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


Accessor = Callable[[Request | Response], object]


def _rejects(data: bytes, accessor: Accessor | None = None) -> None:
    """Assert a RemoteProtocolError 400 at parse or, failing that, from ``accessor``.

    Any other exception becomes an AssertionError, so the strict xfails below hold whichever
    way the parser currently gets it wrong.
    """
    try:
        msg = parse_message(data)
        if accessor is None:
            raise AssertionError("parsed")
        result = accessor(msg)
    except RemoteProtocolError as exc:
        assert exc.status_hint == 400
        return
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__} leaked: {exc}") from exc
    raise AssertionError(f"accessor returned {result!r}")


def _request_uri(msg: Request | Response) -> object:
    assert isinstance(msg, Request)
    return msg.request_uri()


# Regression guard: str.isdigit() also accepts '²' (then int() raises ValueError) and '٥' or
# '２' (then they count as numbers). RFC 3261 DIGIT is %x30-39 only.
@pytest.mark.parametrize(
    ("old", "new", "accessor"),
    [
        pytest.param(b"Content-Length: 0", "Content-Length: ²".encode(), None, id="CL-super2"),
        pytest.param(b"Content-Length: 0", "Content-Length: ٠".encode(), None, id="CL-arabic"),
        pytest.param(b"CSeq: 1826", "CSeq: ²".encode(), lambda m: m.cseq(), id="cseq-super2"),
        pytest.param(b"CSeq: 1826", "CSeq: １８２６".encode(), lambda m: m.cseq(),
                     id="cseq-fullwidth"),
        pytest.param(b"Expires: 7200", "Expires: ²".encode(), lambda m: m.int_header("Expires"),
                     id="expires-super2"),
        pytest.param(b"Max-Forwards: 70", "Max-Forwards: ７０".encode(),
                     lambda m: m.int_header("Max-Forwards"), id="max-forwards-fullwidth"),
        pytest.param(b"biloxi.com:5060;", "biloxi.com:٥٠٦٠;".encode(), lambda m: m.vias(),
                     id="via-port-arabic"),
        pytest.param(b"biloxi.com:5060;", "biloxi.com:²;".encode(), lambda m: m.top_via(),
                     id="via-port-super2"),
        pytest.param(b"sip:registrar.biloxi.com ", "sip:registrar.biloxi.com:５０６０ ".encode(),
                     _request_uri, id="ruri-port-fullwidth"),
    ],
)
def test_non_ascii_digits_are_rejected(old: bytes, new: bytes, accessor: Accessor | None) -> None:
    _rejects(_replace(REGISTER, old, new), accessor)


def test_non_ascii_status_code_is_rejected() -> None:
    data = _replace(load("valid", "rfc3261-register-200"), b"200 OK", "２００ OK".encode())
    _rejects(data)


def test_telephone_number_is_ascii() -> None:
    uri = parse_uri("sip:+٨٦١٣٨٠٠١٣٨٠٠٠@example.com")
    assert telephone_number(uri) is None


@pytest.mark.parametrize("kind", ["request", "response"])
def test_sip_version_is_case_insensitive(kind: str) -> None:
    if kind == "request":
        data = _replace(REGISTER, b" SIP/2.0\r\n", b" sip/2.0\r\n")
    else:
        data = _replace(load("valid", "rfc3261-register-200"), b"SIP/2.0 200", b"sip/2.0 200")
    try:
        parse_message(data)
    except RemoteProtocolError as exc:
        raise AssertionError(exc.reason) from exc


def test_cseq_separator_may_be_a_tab() -> None:
    try:
        msg = parse_message(_replace(REGISTER, b"CSeq: 1826 ", b"CSeq: 1826\t"))
    except RemoteProtocolError as exc:
        raise AssertionError(exc.reason) from exc
    assert msg.cseq() == (1826, "REGISTER")


def test_empty_via_header_rejected_by_accessors() -> None:
    data = _replace(REGISTER, b"Via: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bKnashds7",
                    b"Via: ")
    _rejects(data, lambda m: m.top_via())
    _rejects(data, lambda m: m.vias())

    def vias_then_top_via(msg: Request | Response) -> object:
        with contextlib.suppress(RemoteProtocolError):
            msg.vias()
        return msg.top_via()

    _rejects(data, vias_then_top_via)


def test_top_via_agrees_with_vias_on_quoted_comma() -> None:
    msg = parse_message(_replace(REGISTER, b";branch=z9hG4bKnashds7",
                                 b';x="a,b";branch=z9hG4bKnashds7'))
    try:
        top = msg.top_via()
    except RemoteProtocolError as exc:
        raise AssertionError(exc.reason) from exc
    assert top == msg.vias()[0]


def test_via_garbage_after_sent_by_is_rejected() -> None:
    try:
        via = parse_via("SIP/2.0/UDP host junk;branch=z9hG4bK1")
    except RemoteProtocolError:
        return
    raise AssertionError(f"parsed as {via!r}")


@pytest.mark.parametrize(("vector", "header"), [("wsinv", "Route"), ("wsinv", "To"),
                                                ("esc01", "Contact")])
def test_folded_value_has_no_leading_space(vector: str, header: str) -> None:
    value = parse_valid(load("valid", vector)).headers.get(header)
    assert value is not None and value == value.strip()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Content-Length: 0", b"Content-Length:\r\n 0"),
        (b"Expires: 7200", b"Subject: see\r\n l: 5\r\nExpires: 7200"),
    ],
    ids=["folded-value", "continuation-looks-like-header"],
)
def test_framer_understands_continuation_lines(old: bytes, new: bytes) -> None:
    data = _replace(REGISTER, old, new)
    assert parse_message(data, stream=True).body == b""
    try:
        frames = StreamFramer().feed(data)
    except RemoteProtocolError as exc:
        raise AssertionError(exc.reason) from exc
    assert frames == [data]


@pytest.mark.parametrize("sep", [b"\n", b"\r"], ids=["LF", "CR"])
def test_bare_cr_or_lf_in_header_section_is_rejected(sep: bytes) -> None:
    _rejects(_replace(REGISTER, b"Expires: 7200",
                      b"Subject: hi" + sep + b"Via: SIP/2.0/UDP evil.example.com\r\nExpires: 7200"))


def test_empty_call_id_is_rejected() -> None:
    _rejects(_replace(REGISTER, b"Call-ID: 843817637684230@998sdasdh09", b"Call-ID: "),
             lambda m: m.call_id())


@pytest.mark.parametrize("name", [b"X\x01Y", "Zé".encode(), b"X#Y"], ids=["ctl", "utf8", "hash"])
def test_header_name_must_be_a_token(name: bytes) -> None:
    _rejects(_replace(REGISTER, b"Expires: 7200", name + b": 1\r\nExpires: 7200"))
