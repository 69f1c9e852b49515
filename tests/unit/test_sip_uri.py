"""SIP / SIPS / TEL URIs, name-addr and Via values (RFC 3261 §19.1, §20.10, §20.42, RFC 3966).

Tables of accepted and rejected inputs, telephone_number() normalisation (``;user=phone`` and
visual separators, the E.164 key of the registrar), str() round trips, and hypothesis checks on
generated values (tests/property/sip_strategies.py). Each rejection test names the RFC rule.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from fivegmc.sip.errors import RemoteProtocolError
from fivegmc.sip.uri import (
    AbsoluteUri,
    NameAddr,
    SipUri,
    TelUri,
    aor_key,
    parse_name_addr,
    parse_uri,
    telephone_number,
)
from fivegmc.sip.via import Via, parse_via
from tests.property.sip_strategies import (
    GenNameAddr,
    GenUri,
    GenVia,
    name_addrs,
    request_uris,
    via_values,
)

GEN = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def xfail(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)


def must_reject(fn: Any, text: str) -> None:
    """Assert fn(text) raises RemoteProtocolError 400 (anything else is an AssertionError)."""
    try:
        result = fn(text)
    except RemoteProtocolError as exc:
        assert exc.status_hint == 400
        assert exc.reason
        return
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__} leaked: {exc}") from exc
    raise AssertionError(f"{text!r} accepted as {result!r}")


# ----------------------------------------------------------------------------- SIP / SIPS
SIP_OK: list[tuple[str, dict[str, Any]]] = [
    # RFC 3261 §19.1.3 examples
    ("sip:alice@atlanta.com", {"user": "alice", "host": "atlanta.com"}),
    ("sip:alice:secretword@atlanta.com;transport=tcp",
     {"user": "alice", "password": "secretword", "params": (("transport", "tcp"),)}),
    ("sips:alice@atlanta.com?subject=project%20x&priority=urgent",
     {"scheme": "sips", "headers": "subject=project%20x&priority=urgent"}),
    ("sip:+1-212-555-1212:1234@gateway.com;user=phone",
     {"user": "+1-212-555-1212", "password": "1234", "params": (("user", "phone"),)}),
    ("sips:1212@gateway.com", {"scheme": "sips", "user": "1212", "host": "gateway.com"}),
    ("sip:alice@192.0.2.4", {"host": "192.0.2.4", "port": None}),
    ("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
     {"user": None, "host": "atlanta.com", "params": (("method", "REGISTER"),),
      "headers": "to=alice%40atlanta.com"}),
    ("sip:alice;day=tuesday@atlanta.com", {"user": "alice;day=tuesday", "host": "atlanta.com"}),
    # ports, IPv6 references
    ("sip:bob@biloxi.com:5060", {"port": 5060, "host_port": "biloxi.com:5060"}),
    ("sip:bob@biloxi.com:65535", {"port": 65535}),
    ("sip:[2001:db8::10]", {"user": None, "host": "[2001:db8::10]", "port": None}),
    ("sip:[2001:db8::10]:5070;transport=udp",
     {"host": "[2001:db8::10]", "port": 5070, "host_port": "[2001:db8::10]:5070"}),
    ("sips:bob@[::ffff:192.0.2.1]:5061", {"host": "[::ffff:192.0.2.1]", "port": 5061}),
    ("sip:h;maddr=[2001:db8::1];lr", {"params": (("maddr", "[2001:db8::1]"), ("lr", None))}),
    # escapes are kept as written (compared after unescaping elsewhere)
    ("sip:%41lice@atlanta.com", {"user": "%41lice"}),
    ("sip:sips%3Auser%40example.com@example.net", {"user": "sips%3Auser%40example.com"}),
    ("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31",
     {"params": (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))}),
    # scheme case-insensitive (RFC 3261 §19.1.4), stored lower-case; host case kept
    ("SIP:Alice@AtLanTa.CoM", {"scheme": "sip", "user": "Alice", "host": "AtLanTa.CoM"}),
    ("sip:alice:@h", {"password": ""}),
    ("sip:user;par=u%40example.net@example.com", {"user": "user;par=u%40example.net"}),
    ("sip:ims.mnc000.mcc460.3gppnetwork.org", {"host": "ims.mnc000.mcc460.3gppnetwork.org"}),
]


@pytest.mark.parametrize(("text", "expected"), SIP_OK, ids=[t for t, _ in SIP_OK])
def test_sip_uri_fields(text: str, expected: dict[str, Any]) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    for key, value in expected.items():
        assert getattr(uri, key) == value, key
    assert parse_uri(str(uri)) == uri


def test_sip_uri_param_lookup_is_case_insensitive() -> None:
    uri = parse_uri("sip:bob@biloxi.com;Transport=TCP;lr")
    assert isinstance(uri, SipUri)
    assert uri.param("transport") == "TCP"
    assert uri.param("LR") == ""
    assert uri.param("maddr") is None


SIP_BAD = [
    "sip:",  # no host
    "sip:alice@",  # no host
    "sip:@atlanta.com",  # empty user
    "sip::pw@atlanta.com",  # empty user
    "sip:alice@atlanta.com:0",
    "sip:alice@atlanta.com:65536",
    "sip:alice@atlanta.com:",
    "sip:alice@atlanta.com:50x0",
    "sip:alice@atlanta.com:-1",
    "sip:[2001:db8::1",  # unterminated IPv6 reference
    "sip:[2001:db8::1]x",
    "sip:[2001:db8::1]:",
    "sip:al ice@atlanta.com",  # whitespace
    "sip:alice@atlanta.com;\tlr",
    "sip:alice@atl<anta.com",
    'sip:alice@atl"anta.com',
    "sip:alice@atlanta.com;=tcp",  # empty parameter name
    "sipalice@atlanta.com",  # no scheme
    "1sip:alice@atlanta.com",  # scheme must start with a letter
    ":alice@atlanta.com",
    "",
]


@pytest.mark.parametrize("text", SIP_BAD)
def test_bad_sip_uris_are_rejected(text: str) -> None:
    must_reject(parse_uri, text)


@pytest.mark.parametrize(
    ("text", "user", "password"),
    [
        ("sip:a?b@example.com", "a?b", None),
        ("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
         "(doesn't-it)@example.com", "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*",
         "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"),
    ],
    ids=["short", "rfc4475-intmeth"],
)
def test_question_mark_in_user_part(text: str, user: str, password: str | None) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    assert (uri.user, uri.password, uri.host, uri.headers) == (user, password, "example.com", None)


@pytest.mark.parametrize(
    "text",
    ["sip:alice@exa_mple.com", "sip:alice@example..com", "sip:alice@-bad.example.com",
     "sip:alice@[not-an-ip]", "sip:alice@ex%41mple.com", "sip:a@b@example.com"],
)
def test_host_grammar_is_enforced(text: str) -> None:
    must_reject(parse_uri, text)


@pytest.mark.parametrize("text", ["sip:alice@atlanta.com;;lr", "sip:alice@atlanta.com;lr="])
def test_uri_parameter_grammar_is_enforced(text: str) -> None:
    must_reject(parse_uri, text)


# ----------------------------------------------------------------------------- TEL and others
TEL_OK: list[tuple[str, str, tuple[tuple[str, str | None], ...], bool]] = [
    ("tel:+8613800138000", "+8613800138000", (), True),
    ("tel:+86-138-0013-8000", "+86-138-0013-8000", (), True),
    ("tel:+86(138)0013.8000;npdi", "+86(138)0013.8000", (("npdi", None),), True),
    ("tel:10086;phone-context=+86", "10086", (("phone-context", "+86"),), False),
    ("tel:*21#;phone-context=example.cn", "*21#", (("phone-context", "example.cn"),), False),
    ("TEL:+1-201-555-0123", "+1-201-555-0123", (), True),
]


@pytest.mark.parametrize(("text", "number", "params", "is_global"), TEL_OK,
                         ids=[t[0] for t in TEL_OK])
def test_tel_uri_fields(text: str, number: str, params: tuple[Any, ...], is_global: bool) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, TelUri)
    assert (uri.number, uri.params, uri.is_global, uri.scheme) == (number, params, is_global, "tel")
    assert parse_uri(str(uri)) == uri


@pytest.mark.parametrize("text", ["tel:", "tel:+86 138", "tel:+86/138", "tel:;x=1",
                                  "tel:86@138"])
def test_bad_tel_uris_are_rejected(text: str) -> None:
    must_reject(parse_uri, text)


@pytest.mark.parametrize("text", ["tel:+86-139-abc", "tel:+8613800138000p123", "tel:+86#1",
                                  "tel:+", "tel:+-"])
def test_tel_global_number_grammar_is_enforced(text: str) -> None:
    must_reject(parse_uri, text)


@pytest.mark.parametrize(
    ("text", "scheme", "rest"),
    [
        ("urn:service:sos", "urn", "service:sos"),
        ("mailto:alice@example.com", "mailto", "alice@example.com"),
        ("soap.beep://192.0.2.103:3002", "soap.beep", "//192.0.2.103:3002"),
        ("nobodyKnowsThisScheme:totallyopaquecontent", "nobodyknowsthisscheme",
         "totallyopaquecontent"),
        ("isbn:2983792873", "isbn", "2983792873"),
    ],
)
def test_other_schemes_are_kept_verbatim(text: str, scheme: str, rest: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, AbsoluteUri)
    assert (uri.scheme, uri.rest) == (scheme, rest)
    assert telephone_number(uri) is None and aor_key(uri) is None


# ----------------------------------------------------------------------------- E.164 keys
@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("tel:+8613800138000", "+8613800138000"),
        ("tel:+86-138-0013-8000", "+8613800138000"),
        ("tel:+86(138)0013.8000;npdi", "+8613800138000"),
        ("sip:+8613800138000@ims.mnc000.mcc460.3gppnetwork.org;user=phone", "+8613800138000"),
        ("sip:+86-138-0013-8000@ims.example.cn;user=phone", "+8613800138000"),
        ("sip:+86.138.0013.8000@ims.example.cn", "+8613800138000"),  # no user=phone: still counts
        ("sip:+8613800138000;npdi;rn=+8613900000000@ims.example.cn;user=phone",
         "+8613800138000"),
        ("sip:%2B8613800138000@ims.example.cn;user=phone", "+8613800138000"),
        ("sips:+8613800138000:pw@ims.example.cn", "+8613800138000"),
        ("sip:+1-212-555-1212:1234@gateway.com;user=phone", "+12125551212"),
        # not global numbers
        ("tel:10086;phone-context=+86", None),
        ("sip:10086@ims.example.cn;user=phone", None),
        ("sip:alice@atlanta.com", None),
        ("sip:atlanta.com", None),
        ("sip:+86abc@ims.example.cn;user=phone", None),
        ("sip:+@ims.example.cn", None),
        ("urn:service:sos", None),
    ],
)
def test_telephone_number(text: str, number: str | None) -> None:
    assert telephone_number(parse_uri(text)) == number


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("sip:+86-138-0013-8000@ims.example.cn;user=phone", "+8613800138000"),
        ("tel:+8613800138000", "+8613800138000"),
        ("sip:Alice@AtLanTa.CoM;transport=tcp", "Alice@atlanta.com"),
        ("sip:%41lice@atlanta.com", "Alice@atlanta.com"),
        ("sip:atlanta.com", None),
    ],
)
def test_aor_key(text: str, key: str | None) -> None:
    assert aor_key(parse_uri(text)) == key


def test_same_subscriber_in_tel_and_sip_form_has_one_key() -> None:
    forms = ["tel:+86-138-0013-8000", "sip:+8613800138000@ims.mnc000.mcc460.3gppnetwork.org",
             "sip:+86.138.0013.8000@other.example.cn;user=phone", "tel:+86(138)00138000;npdi"]
    assert {aor_key(parse_uri(f)) for f in forms} == {"+8613800138000"}


# ----------------------------------------------------------------------------- name-addr
NA_OK: list[tuple[str, str | None, str, tuple[tuple[str, str | None], ...]]] = [
    ('"Alice" <sip:alice@atlanta.com>;tag=1928301774', "Alice", "sip:alice@atlanta.com",
     (("tag", "1928301774"),)),
    ("Alice <sip:alice@atlanta.com>", "Alice", "sip:alice@atlanta.com", ()),
    ("Bob Smith   <sip:bob@biloxi.com>", "Bob Smith", "sip:bob@biloxi.com", ()),
    ("caller<sip:caller@example.com>;tag=323", "caller", "sip:caller@example.com",
     (("tag", "323"),)),
    ("<sip:alice@atlanta.com;transport=tcp>;expires=60", None,
     "sip:alice@atlanta.com;transport=tcp", (("expires", "60"),)),
    # addr-spec: parameters after the URI belong to the header (RFC 3261 §20.10)
    ("sip:alice@atlanta.com;tag=88", None, "sip:alice@atlanta.com", (("tag", "88"),)),
    ("sip:+16505552222@ss1.example.net;user=phone", None, "sip:+16505552222@ss1.example.net",
     (("user", "phone"),)),
    # quoted display names keep their escapes (raw quoted-string content)
    ('"A \\"quoted\\" name" <sip:a@example.com>', 'A \\"quoted\\" name', "sip:a@example.com", ()),
    ('"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>', 'J Rosenberg \\\\\\"',
     "sip:jdrosen@example.com", ()),
    ('"Bell, Alexander" <sip:a.g.bell@example.com>;tag=43', "Bell, Alexander",
     "sip:a.g.bell@example.com", (("tag", "43"),)),
    ('"张三" <sip:+8613800000001@ims.example.cn>', "张三", "sip:+8613800000001@ims.example.cn",
     ()),
    ('""<sip:a@example.com>', "", "sip:a@example.com", ()),
    # header parameters: flags, quoted values with ; and , inside, spaces around =
    ("<sip:a@example.com>;+g.gsma.rcs.isbot;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims."
     'icsi.oma.cpm.msg";+sip.instance="<urn:gsma:imei:35000000-000000-0>"', None,
     "sip:a@example.com",
     (("+g.gsma.rcs.isbot", None),
      ("+g.3gpp.icsi-ref", '"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"'),
      ("+sip.instance", '"<urn:gsma:imei:35000000-000000-0>"'))),
    ('<sip:a@example.com> ; x = "a;b" ; q = 0.5', None, "sip:a@example.com",
     (("x", '"a;b"'), ("q", "0.5"))),
    ("<sip:[2001:db8::1]:5060;transport=tcp>", None, "sip:[2001:db8::1]:5060;transport=tcp", ()),
    ("<tel:+8613800000001>;tag=x", None, "tel:+8613800000001", (("tag", "x"),)),
    ("<urn:service:sos>", None, "urn:service:sos", ()),
    ("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>", None,
     "sip:user@example.com?Route=%3Csip:sip.example.com%3E", ()),
    ("  <sip:a@example.com>  ", None, "sip:a@example.com", ()),
]


@pytest.mark.parametrize(("text", "display", "uri", "params"), NA_OK,
                         ids=[str(i) for i in range(len(NA_OK))])
def test_name_addr_fields(text: str, display: str | None, uri: str,
                          params: tuple[tuple[str, str | None], ...]) -> None:
    na = parse_name_addr(text)
    assert na.display_name == display
    assert str(na.uri) == uri
    assert na.params == params
    again = parse_name_addr(str(na))
    assert again == na


def test_name_addr_tag_and_param_lookup() -> None:
    na = parse_name_addr("<sip:a@example.com>;TAG=abc;lr;Expires=30")
    assert na.tag == "abc"
    assert na.param("lr") == ""
    assert na.param("expires") == "30"
    assert na.param("q") is None
    assert parse_name_addr("<sip:a@example.com>").tag is None


NA_BAD = [
    '"Mr. J. User <sip:j.user@example.com>',  # RFC 4475 quotbal
    '"Alice" sip:alice@atlanta.com',  # quoted display name without <>
    "<sip:alice@atlanta.com",  # unterminated <
    "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # RFC 4475 regbadct
    "sip:a@example.com,sip:b@example.com",  # ',' in addr-spec
    '<sip:a@example.com>;x="unterminated',
    "<sip:a@example.com>;=x",
    "<>",
    "",
    "<sip:alice@[2001:db8::1>",
    "<sip:alice@atlanta.com:99999>",
]


@pytest.mark.parametrize("text", NA_BAD)
def test_bad_name_addrs_are_rejected(text: str) -> None:
    must_reject(parse_name_addr, text)


@pytest.mark.parametrize("text", ["<sip:a@example.com>junk", "<sip:a@example.com> tag=1"])
def test_junk_after_raquot_is_rejected(text: str) -> None:
    must_reject(parse_name_addr, text)


@pytest.mark.parametrize("text", ['"Joe" <sip:joe@example.org>;;;;',
                                  "<sip:a@example.com>;tag=1;;x=2"])
def test_empty_header_parameters_are_rejected(text: str) -> None:
    must_reject(parse_name_addr, text)


@pytest.mark.parametrize("text", ["Bell, Alexander <sip:a.g.bell@example.com>",
                                  "Wat@son <sip:t.watson@example.org>"])
def test_unquoted_display_name_must_be_tokens(text: str) -> None:
    must_reject(parse_name_addr, text)


# ----------------------------------------------------------------------------- Via values
VIA_OK: list[tuple[str, str, str, int | None, tuple[tuple[str, str | None], ...]]] = [
    ("SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds", "UDP", "pc33.atlanta.com", None,
     (("branch", "z9hG4bK776asdhds"),)),
    ("SIP/2.0/UDP 192.0.2.1:5060;received=192.0.2.207;branch=z9hG4bK77asjd;rport=5060", "UDP",
     "192.0.2.1", 5060, (("received", "192.0.2.207"), ("branch", "z9hG4bK77asjd"),
                          ("rport", "5060"))),
    ("SIP/2.0/TCP client.example.com:5060;branch=z9hG4bK1;rport", "TCP", "client.example.com",
     5060, (("branch", "z9hG4bK1"), ("rport", None))),
    ("sip/2.0/tls h.example.com:5061;branch=z9hG4bK2", "TLS", "h.example.com", 5061,
     (("branch", "z9hG4bK2"),)),
    ("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw", "UDP", "192.0.2.2", None,
     (("branch", "390skdjuw"),)),
    ("SIP  / 2.0  / TCP     spindle.example.com   ;   branch  =   z9hG4bK9ikj8", "TCP",
     "spindle.example.com", None, (("branch", "z9hG4bK9ikj8"),)),
    ("SIP/2.0/WSS [2001:db8::9]:443;branch=z9hG4bK3", "WSS", "[2001:db8::9]", 443,
     (("branch", "z9hG4bK3"),)),
    ("SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en", "UNKNOWN", "t4.example.com", None,
     (("branch", "z9hG4bKasd0f3en"),)),
    ('SIP/2.0/SCTP t2.example.com;x="a,b;c";branch=z9hG4bK4', "SCTP", "t2.example.com", None,
     (("x", '"a,b;c"'), ("branch", "z9hG4bK4"))),
    ("SIP/2.0/UDP iftgw.example.com", "UDP", "iftgw.example.com", None, ()),
    ("SIP/2.0/UDP 192.0.2.1 : 5060;branch=z9hG4bK5", "UDP", "192.0.2.1", 5060,
     (("branch", "z9hG4bK5"),)),
]


@pytest.mark.parametrize(("text", "transport", "host", "port", "params"), VIA_OK,
                         ids=[str(i) for i in range(len(VIA_OK))])
def test_via_fields(text: str, transport: str, host: str, port: int | None,
                    params: tuple[tuple[str, str | None], ...]) -> None:
    via = parse_via(text)
    assert (via.transport, via.host, via.port, via.params) == (transport, host, port, params)
    assert parse_via(str(via)) == via


def test_via_param_lookup() -> None:
    via = parse_via("SIP/2.0/UDP h.example.com;Branch=z9hG4bK1;RPORT;received=192.0.2.1")
    assert via.branch == "z9hG4bK1"
    assert via.param("rport") == ""
    assert via.param("maddr") is None
    assert via.sent_by == "h.example.com"


VIA_BAD = [
    "SIP/2.0 pc33.atlanta.com",  # no transport
    "SIP/3.0/UDP pc33.atlanta.com",
    "HTTP/1.1/TCP pc33.atlanta.com",
    "SIP/2.0/UDP",  # no sent-by
    "SIP/2.0/UDP ",
    "SIP/2.0/UDP pc33.atlanta.com:0",
    "SIP/2.0/UDP pc33.atlanta.com:70000",
    "SIP/2.0/UDP pc33.atlanta.com:５０６０",
    "SIP/2.0/UDP [2001:db8::1;branch=z9hG4bK1",
    "SIP/2.0/UDP h;branch=z9hG4bK1;",  # empty parameter
    'SIP/2.0/UDP h;branch="unterminated',
    "SIP/2.0/UDP h;=x",
    "",
    ";",
]


@pytest.mark.parametrize("text", VIA_BAD)
def test_bad_vias_are_rejected(text: str) -> None:
    must_reject(parse_via, text)


@pytest.mark.parametrize("text", ["SIP/2.0/SCTP h.example.com;;branch=z9hG4bK1",
                                  "SIP/2.0/UDP [2001:db8::1];;branch=z9hG4bK1",
                                  "SIP/2.0/UDP  h.example.com;branch=z9hG4bK1;;"])
def test_empty_via_parameters_are_rejected_on_every_path(text: str) -> None:
    must_reject(parse_via, text)


# ----------------------------------------------------------------------------- generated values
def _expect_uri(parsed: Any, gen: GenUri) -> None:
    if gen.scheme in ("sip", "sips"):
        assert isinstance(parsed, SipUri)
        assert (parsed.scheme, parsed.user, parsed.password, parsed.host, parsed.port,
                parsed.params) == (gen.scheme, gen.user, gen.password, gen.host, gen.port,
                                   gen.params)
    elif gen.scheme == "tel":
        assert isinstance(parsed, TelUri)
        assert (parsed.number, parsed.params) == (gen.user, gen.params)
    else:
        assert isinstance(parsed, AbsoluteUri)
    assert telephone_number(parsed) == gen.e164


@GEN
@given(request_uris())
def test_generated_uris_parse_and_print_back(gen: GenUri) -> None:
    uri = parse_uri(gen.text)
    _expect_uri(uri, gen)
    assert str(uri) == gen.text
    assert parse_uri(str(uri)) == uri


@GEN
@given(name_addrs(contact=True))
def test_generated_name_addrs_parse_and_print_back(gen: GenNameAddr) -> None:
    na = parse_name_addr(gen.text)
    assert isinstance(na, NameAddr)
    _expect_uri(na.uri, gen.uri)
    assert na.display_name == gen.display
    assert na.params == gen.params
    assert parse_name_addr(str(na)) == na


@GEN
@given(via_values())
def test_generated_vias_parse_and_print_back(gen: GenVia) -> None:
    via = parse_via(gen.text)
    assert isinstance(via, Via)
    assert (via.transport, via.host, via.port, via.params) == (
        gen.transport, gen.host, gen.port, gen.params
    )
    assert str(via) == gen.text
    assert parse_via(str(via)) == via
