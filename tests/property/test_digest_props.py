"""Properties of fivegmc.sip.digest: parsers only ever raise DigestError; round trips hold."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from hypothesis import assume, given
from hypothesis import strategies as st

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

SECRET = b"property-test-secret-0123456789"

# text made of the characters the grammar cares about, to get past the first branch often
_GRAMMAR_CHARS = 'Digestaunmrlcpq=,"\\ \t\r\n0123456789-_/:@.é'
grammarish = st.text(alphabet=_GRAMMAR_CHARS, max_size=120)
pieces = st.lists(
    st.sampled_from(
        [
            "Digest ",
            "digest",
            "username=",
            "realm=",
            "nonce=",
            "uri=",
            "response=",
            "qop=auth",
            "nc=00000001",
            "cnonce=",
            "algorithm=MD5",
            '"',
            '"x"',
            '\\"',
            "\\",
            ",",
            ", ",
            " ",
            "\r\n ",
            "\r\n",
            "=",
            "00ff",
            "\x00",
            "\ud800",
        ]
    ),
    max_size=20,
).map("".join)
any_text = st.one_of(st.text(), grammarish, pieces, pieces.map(lambda s: "Digest " + s))

# values a challenge/credential may carry in a quoted-string (no CR, LF or other controls)
qtext = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters='\t"\\'),
    max_size=40,
)
token = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=16,
)
algorithms = st.sampled_from(["MD5", "SHA-256", "MD5-sess", "SHA-256-sess", "md5", "sha-256"])


@given(any_text)
def test_parse_credentials_raises_only_digest_error(value: str) -> None:
    try:
        c = parse_credentials(value)
    except DigestError:
        return
    assert c.username is not None
    # anything parsed can be verified without raising
    verify(c, method="REGISTER", password="pw", realm=c.realm, allowed_algorithms=["MD5"])


@given(any_text)
def test_parse_challenge_raises_only_digest_error(value: str) -> None:
    try:
        ch = parse_challenge(value)
    except DigestError:
        return
    assert isinstance(ch.stale, bool)


@given(
    realm=qtext,
    nonce=qtext,
    opaque=st.none() | qtext,
    alg=algorithms,
    stale=st.booleans(),
    username=qtext,
    password=st.text(max_size=20),
    uri=qtext,
    cnonce=qtext,
    nc=st.integers(min_value=1, max_value=0xFFFFFFFF),
)
def test_challenge_to_credentials_round_trip(
    realm: str,
    nonce: str,
    opaque: str | None,
    alg: str,
    stale: bool,
    username: str,
    password: str,
    uri: str,
    cnonce: str,
    nc: int,
) -> None:
    ch = parse_challenge(challenge(realm, nonce, alg, stale=stale, opaque=opaque))
    assert (ch.realm, ch.nonce, ch.opaque, ch.stale) == (realm, nonce, opaque, stale)
    assert ch.algorithm.lower() == alg.lower()
    assert ch.qop == ("auth",)
    # a client answers it from the parsed params
    p = ch.params
    ncs = f"{nc:08x}"
    resp = compute_response(
        algorithm=p["algorithm"],
        username=username,
        realm=p["realm"],
        password=password,
        method="REGISTER",
        uri=uri,
        nonce=p["nonce"],
        qop="auth",
        nc=ncs,
        cnonce=cnonce,
    )
    sent = Credentials(
        username=username,
        realm=p["realm"],
        nonce=p["nonce"],
        uri=uri,
        response=resp,
        algorithm=ch.algorithm,
        cnonce=cnonce,
        opaque=p.get("opaque"),
        qop="auth",
        nc=ncs,
    )
    got = parse_credentials(format_credentials(sent))
    assert dataclasses.replace(got, params=MappingProxyType({})) == sent
    allowed = [ch.algorithm]
    assert verify(
        got, method="REGISTER", password=password, realm=realm, allowed_algorithms=allowed
    )
    assert not verify(
        got, method="REGISTER", password=password + "x", realm=realm, allowed_algorithms=allowed
    )


@st.composite
def credentials(draw: st.DrawFn) -> Credentials:
    with_qop = draw(st.booleans())
    return Credentials(
        username=draw(qtext),
        realm=draw(qtext),
        nonce=draw(qtext),
        uri=draw(qtext),
        response=draw(st.text("0123456789abcdefABCDEF", max_size=64)),
        algorithm=draw(st.sampled_from(["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"]) | token),
        cnonce=draw(qtext) if with_qop else draw(st.none() | qtext),
        opaque=draw(st.none() | qtext),
        qop=draw(st.just("auth") | token) if with_qop else None,
        nc=draw(st.text("0123456789abcdef", min_size=8, max_size=8))
        if with_qop
        else draw(st.none() | st.text("0123456789ABCDEF", min_size=8, max_size=8)),
    )


@given(credentials())
def test_format_parse_credentials_round_trip(c: Credentials) -> None:
    text = format_credentials(c)
    got = parse_credentials(text)
    assume(got.algorithm == c.algorithm)  # unknown spellings of known names get canonicalised
    assert dataclasses.replace(got, params=MappingProxyType({})) == c
    assert format_credentials(got) == text


@given(any_text, st.floats(allow_nan=True, allow_infinity=True))
def test_nonce_check_never_raises(value: str, now: float) -> None:
    assert isinstance(NonceManager(SECRET, 30.0).check(value, now), NonceStatus)


@given(
    issued=st.floats(min_value=0, max_value=4e9),
    ttl=st.floats(min_value=0.01, max_value=1e6),
    age=st.floats(min_value=0, max_value=2e6),
)
def test_nonce_status_follows_age(issued: float, ttl: float, age: float) -> None:
    nm = NonceManager(SECRET, ttl, clock_skew_s=0.001)
    n = nm.issue(issued)
    assume(abs(age - ttl) > 1e-3)  # keep clear of the µs rounding at the boundary
    expected = NonceStatus.VALID if age < ttl else NonceStatus.STALE
    assert nm.check(n, issued + age) is expected


@given(st.floats(min_value=0, max_value=4e9), st.data())
def test_any_edit_of_a_nonce_is_invalid(now: float, data: st.DataObject) -> None:
    nm = NonceManager(SECRET, 60.0)
    n = nm.issue(now)
    i = data.draw(st.integers(min_value=0, max_value=len(n) - 1))
    ch = data.draw(st.characters(codec="ascii").filter(lambda c: c != n[i]))
    edited = data.draw(st.sampled_from([n[:i] + ch + n[i + 1 :], n[:i] + n[i + 1 :], n + ch]))
    assert nm.check(edited, now) is NonceStatus.INVALID
