"""SIP Digest authentication (fivegmc.sip.digest): parsing, RFC vectors, nonces, verify."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import pytest

from fivegmc.sip.digest import (
    Credentials,
    DigestError,
    NonceManager,
    NonceStatus,
    challenge,
    compute_response,
    format_credentials,
    parse_challenge,
    parse_credentials,
    verify,
)

REALM = "ims.mnc000.mcc460.3gppnetwork.org"
SECRET = b"0123456789abcdef-test-secret"


def md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


def sha256(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def fixed_random(n: int) -> bytes:
    return b"\x42" * n


# --- parse_credentials --------------------------------------------------------------------


def test_parse_sipp_style_without_qop() -> None:
    # SIPp's layout: no spaces after commas, response quoted, algorithm a bare token
    v = (
        'Digest username="alice",realm="ims.mnc000.mcc460.3gppnetwork.org",'
        'uri="sip:ims.mnc000.mcc460.3gppnetwork.org",nonce="abc",'
        'response="0123456789abcdef0123456789abcdef",algorithm=MD5'
    )
    c = parse_credentials(v)
    assert c.scheme == "Digest"
    assert (c.username, c.realm, c.uri, c.nonce) == ("alice", REALM, f"sip:{REALM}", "abc")
    assert c.response == "0123456789abcdef0123456789abcdef"
    assert c.algorithm == "MD5"
    assert c.qop is c.nc is c.cnonce is c.opaque is None
    assert c.params["username"] == "alice"


def test_parse_sipp_style_with_qop() -> None:
    v = (
        'Digest username="alice",realm="r",cnonce="6b8b4567327b23c6",nc=00000001,qop=auth,'
        'uri="sip:r",nonce="n1",response="00ff",algorithm=MD5,opaque="op"'
    )
    c = parse_credentials(v)
    assert (c.cnonce, c.nc, c.qop, c.opaque) == ("6b8b4567327b23c6", "00000001", "auth", "op")


def test_parse_rfc3261_style_with_folding_and_spaces() -> None:
    # RFC 3261 §25.1 LWS includes line folding; §20.7 examples use ", " and folded lines
    v = (
        'Digest username="bob",\r\n realm="biloxi.com",'
        '\r\n\tnonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",'
        '\r\n  uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b",'
        ' response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    c = parse_credentials(v)
    assert c.realm == "biloxi.com"
    assert c.uri == "sip:bob@biloxi.com"
    assert c.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    assert c.algorithm == "MD5"  # RFC 7616 §3.3: absent means MD5
    assert "algorithm" not in c.params


def test_parse_weird_spacing_and_empty_list_elements() -> None:
    v = '  digest \t username \t=  "a" ,, realm= "r",nonce ="n" , ,uri\t=\t"u",response="AB" ,  '
    c = parse_credentials(v)
    assert (c.username, c.realm, c.nonce, c.uri, c.response) == ("a", "r", "n", "u", "AB")


def test_parse_case_insensitive_names_scheme_and_algorithm() -> None:
    v = 'DIGEST UserName="a", REALM="r", Nonce="n", URI="u", Response="00", Algorithm=sha-256'
    c = parse_credentials(v)
    assert c.username == "a"
    assert c.algorithm == "SHA-256"  # canonical spelling
    assert c.scheme == "DIGEST"


def test_parse_quoted_pair_escapes() -> None:
    v = r'Digest username="a\"b\\c\d", realm="r,\"x=y\"", nonce="", uri="u", response=""'
    c = parse_credentials(v)
    assert c.username == 'a"b\\cd'
    assert c.realm == 'r,"x=y"'


def test_parse_utf8_username() -> None:
    c = parse_credentials('Digest username="用户", realm="r", nonce="n", uri="u", response="0"')
    assert c.username == "用户"


def test_parse_ims_initial_register_empty_nonce_and_response() -> None:
    # 3GPP TS 24.229 §5.1.1.2: first REGISTER carries the private identity, empty nonce/response
    v = (
        'Digest username="460001234567890@ims.mnc000.mcc460.3gppnetwork.org",'
        f'realm="{REALM}",uri="sip:{REALM}",nonce="",response=""'
    )
    c = parse_credentials(v)
    assert c.nonce == c.response == ""
    assert NonceManager(SECRET, 30).check(c.nonce, 0.0) is NonceStatus.INVALID


def test_parse_keeps_extension_params() -> None:
    c = parse_credentials(
        'Digest username="a",realm="r",nonce="n",uri="u",response="0",integrity-protected="no"'
    )
    assert c.params["integrity-protected"] == "no"


def test_parse_qop_quoted_is_tolerated() -> None:
    c = parse_credentials(
        'Digest username="a",realm="r",nonce="n",uri="u",response="0",qop="auth",nc=00000001,'
        'cnonce="c"'
    )
    assert c.qop == "auth"


GOOD = 'username="a", realm="r", nonce="n", uri="u", response="00"'


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "Digest",
        "Digest ",
        f"Basic {GOOD}",
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        f"Digest,{GOOD}",
        'Digest realm="r", nonce="n", uri="u", response="00"',  # no username
        'Digest username="a", nonce="n", uri="u", response="00"',  # no realm
        'Digest username="a", realm="r", uri="u", response="00"',  # no nonce
        'Digest username="a", realm="r", nonce="n", response="00"',  # no uri
        'Digest username="a", realm="r", nonce="n", uri="u"',  # no response
        f'Digest {GOOD}, username="b"',  # duplicate
        f'Digest {GOOD}, REALM="r"',  # duplicate, other case
        'Digest username="a, realm="r", nonce="n", uri="u", response="00"',  # unbalanced quote
        f'Digest {GOOD}, opaque="x',  # unterminated
        f'Digest {GOOD} opaque="x"',  # missing comma
        f'Digest {GOOD}, opaque="x" y',  # junk after value
        f"Digest {GOOD}, opaque=",  # no value
        f'Digest {GOOD}, ="x"',  # no name
        f"Digest {GOOD}, opaque=a/b",  # '/' not a token char
        'Digest username="a", realm="r", nonce="n", uri="u", response="xyz"',  # not hex
        f"Digest {GOOD}, qop=auth, nc=00000001",  # qop without cnonce
        f'Digest {GOOD}, qop=auth, cnonce="c"',  # qop without nc
        f'Digest {GOOD}, qop=auth, cnonce="c", nc=1',  # nc not 8LHEX
        f'Digest {GOOD}, qop=auth, cnonce="c", nc=0000000g',
        f'Digest {GOOD}, opaque="a\r\nb"',  # CRLF inside quotes without a fold
        f'Digest {GOOD}, opaque="a\x00b"',  # control char in qdtext
        f'Digest {GOOD}, opaque="a\\\nb"',  # quoted-pair cannot carry LF
        f"Digest {GOOD}\r\nVia: x",  # header injection / unfolded line
        f"Digest {GOOD}, opaque=\ud800",  # lone surrogate
    ],
)
def test_parse_rejects_malformed(value: str) -> None:
    with pytest.raises(DigestError) as ei:
        parse_credentials(value)
    assert ei.value.reason
    assert isinstance(ei.value, ValueError)


# --- compute_response: published vectors ---------------------------------------------------

RFC7616 = {
    "username": "Mufasa",
    "password": "Circle of Life",
    "realm": "http-auth@example.org",
    "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    "nc": "00000001",
    "qop": "auth",
    "method": "GET",
}


def test_rfc7616_3_9_1_md5() -> None:
    assert compute_response(algorithm="MD5", **RFC7616) == "8ca523f5e9506fed4657c9700eebdbec"


def test_rfc7616_3_9_1_sha256() -> None:
    assert (
        compute_response(algorithm="SHA-256", **RFC7616)
        == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )


def test_rfc2617_3_5_md5() -> None:
    assert (
        compute_response(
            algorithm="MD5",
            username="Mufasa",
            password="Circle Of Life",
            realm="testrealm@host.com",
            uri="/dir/index.html",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            cnonce="0a4f113b",
            nc="00000001",
            qop="auth",
            method="GET",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


def test_rfc7616_header_verifies() -> None:
    v = (
        'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        'algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, '
        'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, '
        'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    c = parse_credentials(v)

    def ok(password: str, allowed: list[str]) -> bool:
        realm = "http-auth@example.org"
        return verify(c, method="GET", password=password, realm=realm, allowed_algorithms=allowed)

    assert ok("Circle of Life", ["SHA-256"])
    assert not ok("Circle of life", ["SHA-256"])
    assert not ok("Circle of Life", ["MD5"])


def test_rfc2069_form_without_qop() -> None:
    ha1 = md5("alice:r:pw")
    ha2 = md5(f"REGISTER:sip:{REALM}")
    expected = md5(f"{ha1}:n0nce:{ha2}")
    got = compute_response(
        algorithm="MD5",
        username="alice",
        realm="r",
        password="pw",
        method="REGISTER",
        uri=f"sip:{REALM}",
        nonce="n0nce",
        qop=None,
        nc=None,
        cnonce=None,
    )
    assert got == expected


@pytest.mark.parametrize(("alg", "h"), [("MD5-sess", md5), ("SHA-256-sess", sha256)])
def test_sess_algorithms(alg: str, h: Callable[[str], str]) -> None:
    ha1 = h(f"{h('alice:r:pw')}:N:C")  # RFC 7616 §3.4.2
    ha2 = h("MESSAGE:sip:bob@r")
    expected = h(f"{ha1}:N:0000000a:C:auth:{ha2}")
    got = compute_response(
        algorithm=alg,
        username="alice",
        realm="r",
        password="pw",
        method="MESSAGE",
        uri="sip:bob@r",
        nonce="N",
        qop="auth",
        nc="0000000a",
        cnonce="C",
    )
    assert got == expected


@pytest.mark.parametrize(
    ("alg", "qop", "nc", "cnonce"),
    [
        ("SHA-512-256", "auth", "00000001", "c"),
        ("AKAv1-MD5", "auth", "00000001", "c"),
        ("MD5", "auth-int", "00000001", "c"),
        ("MD5", "auth", None, "c"),
        ("MD5", "auth", "00000001", None),
        ("MD5-sess", None, None, None),
    ],
)
def test_compute_rejects_unsupported(
    alg: str, qop: str | None, nc: str | None, cnonce: str | None
) -> None:
    with pytest.raises(DigestError):
        compute_response(
            algorithm=alg,
            username="a",
            realm="r",
            password="p",
            method="REGISTER",
            uri="sip:r",
            nonce="n",
            qop=qop,
            nc=nc,
            cnonce=cnonce,
        )


# --- verify ---------------------------------------------------------------------------------


def _sipp_authorization(nonce: str, password: str, *, qop: bool, alg: str = "MD5") -> str:
    """What SIPp sends, built by hand (its comma style, its parameter order)."""
    h = md5 if alg == "MD5" else sha256
    uri = f"sip:{REALM}"
    ha1, ha2 = h(f"alice:{REALM}:{password}"), h(f"REGISTER:{uri}")
    if qop:
        resp = h(f"{ha1}:{nonce}:00000001:6b8b4567327b23c6:auth:{ha2}")
        return (
            f'Digest username="alice",realm="{REALM}",cnonce="6b8b4567327b23c6",nc=00000001,'
            f'qop=auth,uri="{uri}",nonce="{nonce}",response="{resp}",algorithm={alg}'
        )
    resp = h(f"{ha1}:{nonce}:{ha2}")
    return (
        f'Digest username="alice",realm="{REALM}",uri="{uri}",nonce="{nonce}",'
        f'response="{resp}",algorithm={alg}'
    )


@pytest.mark.parametrize("qop", [False, True])
@pytest.mark.parametrize("alg", ["MD5", "SHA-256"])
def test_sipp_authorization_verifies(qop: bool, alg: str) -> None:
    c = parse_credentials(_sipp_authorization("nonce-1", "secret", qop=qop, alg=alg))
    both = ("SHA-256", "MD5")
    assert verify(c, method="REGISTER", password="secret", realm=REALM, allowed_algorithms=both)
    assert not verify(c, method="REGISTER", password="Secret", realm=REALM, allowed_algorithms=both)
    assert not verify(c, method="INVITE", password="secret", realm=REALM, allowed_algorithms=both)
    assert not verify(c, method="REGISTER", password="secret", realm="x", allowed_algorithms=both)
    assert not verify(c, method="REGISTER", password="secret", realm=REALM, allowed_algorithms=())


def test_verify_accepts_uppercase_hex_response() -> None:
    c = parse_credentials(_sipp_authorization("n", "pw", qop=True))
    up = dataclasses.replace(c, response=c.response.upper())
    assert verify(up, method="REGISTER", password="pw", realm=REALM, allowed_algorithms=["md5"])


def test_verify_false_for_unsupported_or_odd_input() -> None:
    c = parse_credentials(_sipp_authorization("n", "pw", qop=True))
    md5_only = ["MD5"]

    def ok(x: Credentials, allowed: list[str]) -> bool:
        return verify(x, method="REGISTER", password="pw", realm=REALM, allowed_algorithms=allowed)

    assert ok(c, md5_only)
    assert not ok(dataclasses.replace(c, qop="auth-int"), md5_only)
    assert not ok(dataclasses.replace(c, algorithm="AKAv1-MD5"), ["AKAv1-MD5"])
    assert not ok(dataclasses.replace(c, response="é"), md5_only)
    assert not ok(dataclasses.replace(c, response=""), md5_only)
    assert not ok(dataclasses.replace(c, nc="00000002"), md5_only)


# --- challenge ------------------------------------------------------------------------------


def test_challenge_format() -> None:
    assert challenge(REALM, "abc", "SHA-256") == (
        f'Digest realm="{REALM}", nonce="abc", algorithm=SHA-256, qop="auth"'
    )
    assert challenge("r", "n", "md5", stale=True, opaque="o") == (
        'Digest realm="r", nonce="n", opaque="o", algorithm=MD5, qop="auth", stale=TRUE'
    )
    assert challenge("r", "n", "MD5", qop=None) == 'Digest realm="r", nonce="n", algorithm=MD5'
    assert challenge('a"b\\c', "n", "MD5").startswith(r'Digest realm="a\"b\\c"')


@pytest.mark.parametrize(
    ("realm", "nonce", "alg", "qop"),
    [
        ("r\r\nVia: x", "n", "MD5", "auth"),
        ("r", "n\n", "MD5", "auth"),
        ("r", "n", "SHA-512-256", "auth"),
        ("r", "n", "MD5", ""),
        ("r", "n", "MD5", 'auth"'),
    ],
)
def test_challenge_rejects_bad_input(realm: str, nonce: str, alg: str, qop: str) -> None:
    with pytest.raises(DigestError):
        challenge(realm, nonce, alg, qop=qop)


def test_parse_challenge() -> None:
    ch = parse_challenge(
        'Digest realm="r", nonce="n", opaque="o", algorithm=sha-256, qop="auth,auth-int",'
        ' stale=true, domain="sip:r"'
    )
    assert (ch.realm, ch.nonce, ch.opaque, ch.algorithm) == ("r", "n", "o", "SHA-256")
    assert ch.qop == ("auth", "auth-int")
    assert ch.stale is True
    assert ch.domain == "sip:r"
    plain = parse_challenge('Digest realm="r", nonce="n"')
    assert (plain.algorithm, plain.qop, plain.stale) == ("MD5", (), False)
    with pytest.raises(DigestError):
        parse_challenge('Digest realm="r"')


# --- NonceManager -----------------------------------------------------------------------------


def test_nonce_valid_then_stale() -> None:
    nm = NonceManager(SECRET, ttl_s=30.0)
    n = nm.issue(now=1_700_000_000.25)
    assert nm.check(n, 1_700_000_000.25) is NonceStatus.VALID
    assert nm.check(n, 1_700_000_030.24) is NonceStatus.VALID
    assert nm.check(n, 1_700_000_030.26) is NonceStatus.STALE
    assert nm.check(n, 1_800_000_000.0) is NonceStatus.STALE


def test_nonce_from_the_future_beyond_skew_is_stale() -> None:
    nm = NonceManager(SECRET, ttl_s=30.0, clock_skew_s=2.0)
    n = nm.issue(now=1000.0)
    assert nm.check(n, 998.5) is NonceStatus.VALID
    assert nm.check(n, 990.0) is NonceStatus.STALE


def test_nonce_survives_restart_with_same_secret_only() -> None:
    n = NonceManager(SECRET, 30.0).issue(100.0)
    assert NonceManager(SECRET, 30.0).check(n, 110.0) is NonceStatus.VALID
    assert NonceManager(b"another secret", 30.0).check(n, 110.0) is NonceStatus.INVALID


def test_nonce_unique_and_token_safe() -> None:
    nm = NonceManager(SECRET, 30.0)
    nonces = {nm.issue(5.0) for _ in range(50)}
    assert len(nonces) == 50
    for n in nonces:
        assert parse_challenge(challenge("r", n, "MD5")).nonce == n


def test_nonce_deterministic_with_injected_randomness() -> None:
    a = NonceManager(SECRET, 30.0, random_bytes=fixed_random).issue(1.0)
    b = NonceManager(SECRET, 30.0, random_bytes=fixed_random).issue(1.0)
    assert a == b


def test_tampered_nonce_is_invalid() -> None:
    nm = NonceManager(SECRET, 30.0)
    n = nm.issue(100.0)
    for i in range(len(n)):
        c = "A" if n[i] != "A" else "B"
        assert nm.check(n[:i] + c + n[i + 1 :], 100.0) is NonceStatus.INVALID, i


@pytest.mark.parametrize(
    "garbage",
    ["", "abc", "é" * 43, "=" * 43, "A" * 43, "A" * 44, "A" * 42 + "=", "AAAA AAAA", "\x00"],
)
def test_garbled_nonce_is_invalid(garbage: str) -> None:
    assert NonceManager(SECRET, 30.0).check(garbage, 0.0) is NonceStatus.INVALID


def test_non_canonical_base64_spelling_is_invalid() -> None:
    nm = NonceManager(SECRET, 30.0)
    n = nm.issue(100.0)
    # the last char of 43 carries 2 unused bits; a different char with the same top bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    idx = alphabet.index(n[-1])
    alt = n[:-1] + alphabet[idx | 1]
    assert idx & 3 == 0
    assert nm.check(alt, 100.0) is NonceStatus.INVALID


@pytest.mark.parametrize("now", [float("nan"), float("inf")])
def test_issue_rejects_non_finite_time(now: float) -> None:
    with pytest.raises(ValueError):
        NonceManager(SECRET, 30.0).issue(now)


def test_nonce_manager_rejects_bad_config() -> None:
    with pytest.raises(ValueError):
        NonceManager(b"", 30.0)
    with pytest.raises(ValueError):
        NonceManager(SECRET, 0.0)


# --- the whole exchange, as the registrar will run it -------------------------------------------


def test_register_flow_with_stale_nonce() -> None:
    nm = NonceManager(SECRET, ttl_s=60.0)
    allowed = ("SHA-256", "MD5")
    t = 1_000.0
    # 401 with one challenge per algorithm, preferred first (RFC 8760 §2.4)
    headers = [challenge(REALM, nm.issue(t), alg) for alg in allowed]
    chosen = parse_challenge(headers[1])  # an MD5-only UA (e.g. SIPp) picks the MD5 one
    auth = _sipp_authorization(chosen.nonce, "pw", qop="auth" in chosen.qop)
    creds = parse_credentials(auth)
    assert nm.check(creds.nonce, t + 1) is NonceStatus.VALID
    assert verify(creds, method="REGISTER", password="pw", realm=REALM, allowed_algorithms=allowed)
    # the same credentials later: authentic nonce, expired -> 401 with stale=TRUE
    assert nm.check(creds.nonce, t + 61) is NonceStatus.STALE
    again = parse_challenge(challenge(REALM, nm.issue(t + 61), "MD5", stale=True))
    assert again.stale


def test_format_credentials_round_trip() -> None:
    c = parse_credentials(_sipp_authorization("n", "pw", qop=True))
    assert parse_credentials(format_credentials(c)) == c
    built = Credentials(username="u", realm="r", nonce="n", uri="sip:r", response="00")
    assert format_credentials(built) == (
        'Digest username="u", realm="r", nonce="n", uri="sip:r", response="00", algorithm=MD5'
    )
