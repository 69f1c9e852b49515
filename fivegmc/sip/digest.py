"""SIP Digest authentication, server side (and the few client helpers tests need).

RFC 3261 §22 (Digest in SIP, grammar §25.1), RFC 7616 §3.4 (response computation, replaces
RFC 2617; RFC 2069 form without qop kept), RFC 8760 (SHA-256 for SIP).

Works on header *values* as plain strings; knows nothing of SIP message classes. Sans-IO: the
nonce clock is ``now`` (wall-clock seconds, so nonces survive a restart with the same secret).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
import re
import secrets
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "Challenge",
    "Credentials",
    "DigestError",
    "NonceManager",
    "NonceStatus",
    "challenge",
    "compute_response",
    "format_credentials",
    "parse_challenge",
    "parse_credentials",
    "verify",
]


class DigestError(ValueError):
    """Malformed or unsupported Digest input. ``reason`` is a short human-readable cause."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- grammar (RFC 3261 §25.1; RFC 7235 §2.1 list rules) ------------------------------------

# SWS/LWS: spaces, tabs and line folds (CRLF or bare LF followed by WSP, RFC 3261 §7.3.1).
_WS = r"(?:[ \t]|\r?\n[ \t])*"
# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
# quoted-string: qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII;
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
_QSTR = r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f]|\r?\n[ \t])*)"'

_WS_RE = re.compile(_WS)
_SCHEME_RE = re.compile(_WS + "(" + _TOKEN + ")")
_PARAM_RE = re.compile(f"({_TOKEN}){_WS}={_WS}(?:{_QSTR}|({_TOKEN})){_WS}")
_UNQUOTE_RE = re.compile(r"\\(.)|\r?\n", re.DOTALL)
_TOKEN_RE = re.compile(_TOKEN)
_HEX_RE = re.compile(r"[0-9A-Fa-f]*")
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}")  # nc-value = 8LHEX
_BAD_QUOTED_OUT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # controls we refuse to emit


def _skip_ws(value: str, pos: int) -> int:
    m = _WS_RE.match(value, pos)
    return m.end() if m is not None else pos


def _unquote(body: str) -> str:
    if "\\" not in body and "\n" not in body:
        return body
    return _UNQUOTE_RE.sub(lambda m: m.group(1) or "", body)


def _parse_auth(value: str) -> tuple[str, dict[str, str]]:
    """Split ``scheme 1*SP #auth-param`` into the scheme and lower-cased param names → values."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DigestError("not valid UTF-8") from None
    m = _SCHEME_RE.match(value)
    if m is None:
        raise DigestError("missing auth-scheme")
    scheme = m.group(1)
    if scheme.lower() != "digest":
        raise DigestError(f"unsupported auth-scheme {scheme!r}")
    end = len(value)
    pos = m.end()
    ws_end = _skip_ws(value, pos)
    if ws_end == pos and pos != end:
        raise DigestError("auth-scheme must be followed by whitespace")
    pos = ws_end
    params: dict[str, str] = {}
    while pos < end:
        if value[pos] == ",":  # empty list element (RFC 7230 §7): skip
            pos = _skip_ws(value, pos + 1)
            continue
        pm = _PARAM_RE.match(value, pos)
        if pm is None:
            raise DigestError(f"malformed auth-param at offset {pos}")
        name = pm.group(1).lower()
        if name in params:
            raise DigestError(f"duplicate parameter {name!r}")
        quoted = pm.group(2)
        params[name] = _unquote(quoted) if quoted is not None else pm.group(3)
        pos = pm.end()
        if pos < end and value[pos] != ",":
            raise DigestError(f"expected ',' at offset {pos}")
    return scheme, params


def _quote(value: str, what: str) -> str:
    if _BAD_QUOTED_OUT.search(value):
        raise DigestError(f"{what} contains control characters")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _token(value: str, what: str) -> str:
    if _TOKEN_RE.fullmatch(value) is None:
        raise DigestError(f"{what} is not a token: {value!r}")
    return value


# --- algorithms (RFC 7616 §3.4.1-3.4.2, RFC 8760 §2) ---------------------------------------

# lower-case name → (canonical name, hashlib name, is "-sess")
_ALGORITHMS: dict[str, tuple[str, str, bool]] = {
    "md5": ("MD5", "md5", False),
    "md5-sess": ("MD5-sess", "md5", True),
    "sha-256": ("SHA-256", "sha256", False),
    "sha-256-sess": ("SHA-256-sess", "sha256", True),
}


def _canonical_algorithm(name: str) -> str:
    """Known algorithms in their RFC spelling; unknown ones unchanged."""
    known = _ALGORITHMS.get(name.lower())
    return known[0] if known is not None else name


def _h(hash_name: str, data: str) -> str:
    return hashlib.new(hash_name, data.encode("utf-8"), usedforsecurity=False).hexdigest()


def compute_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: str | None,
    cnonce: str | None,
) -> str:
    """The request-digest (lower-case hex), RFC 7616 §3.4.1.

    ``qop`` is ``"auth"`` or ``None`` (RFC 2069 form: ``H(HA1:nonce:HA2)``). ``auth-int`` needs
    the body and is not supported. Raises DigestError for unsupported algorithm/qop or a
    missing ``nc``/``cnonce``.
    """
    spec = _ALGORITHMS.get(algorithm.lower())
    if spec is None:
        raise DigestError(f"unsupported algorithm {algorithm!r}")
    _, hname, sess = spec
    try:
        ha1 = _h(hname, f"{username}:{realm}:{password}")
        if sess:  # RFC 7616 §3.4.2
            if cnonce is None:
                raise DigestError(f"{algorithm} needs cnonce")
            ha1 = _h(hname, f"{ha1}:{nonce}:{cnonce}")
        ha2 = _h(hname, f"{method}:{uri}")  # RFC 7616 §3.4.3, qop=auth or absent
        if not qop:
            return _h(hname, f"{ha1}:{nonce}:{ha2}")
        if qop.lower() != "auth":
            raise DigestError(f"unsupported qop {qop!r}")
        if nc is None or cnonce is None:
            raise DigestError("qop needs nc and cnonce")
        return _h(hname, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    except UnicodeEncodeError:
        raise DigestError("input is not encodable as UTF-8") from None


# --- credentials (Authorization / Proxy-Authorization, RFC 3261 §22.2-22.3) ----------------

_EMPTY: Mapping[str, str] = MappingProxyType({})
_REQUIRED_CREDS = ("username", "realm", "nonce", "uri", "response")


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """A parsed Digest ``credentials`` (RFC 3261 §25.1 ``digest-response``).

    ``nonce`` and ``response`` may be empty: IMS UEs send such an Authorization in their first
    REGISTER (3GPP TS 24.229 §5.1.1.2) — the registrar answers it with a fresh challenge.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"  # RFC 7616 §3.3: absent means MD5
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None
    scheme: str = "Digest"
    # every param as received, lower-case names, values unquoted
    params: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)


def parse_credentials(value: str) -> Credentials:
    """Parse an ``Authorization`` / ``Proxy-Authorization`` value. Raises only DigestError."""
    scheme, p = _parse_auth(value)
    for name in _REQUIRED_CREDS:
        if name not in p:
            raise DigestError(f"missing {name}")
    if _HEX_RE.fullmatch(p["response"]) is None:
        raise DigestError("response is not hex")
    nc = p.get("nc")
    if nc is not None and _NC_RE.fullmatch(nc) is None:
        raise DigestError("nc is not 8 hex digits")
    qop = p.get("qop")
    if qop is not None and (nc is None or "cnonce" not in p):  # RFC 7616 §3.4
        raise DigestError("qop without nc and cnonce")
    return Credentials(
        scheme=scheme,
        username=p["username"],
        realm=p["realm"],
        nonce=p["nonce"],
        uri=p["uri"],
        response=p["response"],
        algorithm=_canonical_algorithm(p.get("algorithm", "MD5")),
        cnonce=p.get("cnonce"),
        opaque=p.get("opaque"),
        qop=qop,
        nc=nc,
        params=MappingProxyType(p),
    )


_CRED_FIELDS = frozenset(
    ("username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "opaque", "qop", "nc")
)


def format_credentials(creds: Credentials) -> str:
    """Serialize credentials (client side: tests, load harness). Extra ``params`` are kept."""
    parts = [
        f"username={_quote(creds.username, 'username')}",
        f"realm={_quote(creds.realm, 'realm')}",
        f"nonce={_quote(creds.nonce, 'nonce')}",
        f"uri={_quote(creds.uri, 'uri')}",
        f"response={_quote(creds.response, 'response')}",
        f"algorithm={_token(creds.algorithm, 'algorithm')}",
    ]
    if creds.cnonce is not None:
        parts.append(f"cnonce={_quote(creds.cnonce, 'cnonce')}")
    if creds.opaque is not None:
        parts.append(f"opaque={_quote(creds.opaque, 'opaque')}")
    if creds.qop is not None:
        parts.append(f"qop={_token(creds.qop, 'qop')}")
    if creds.nc is not None:
        parts.append(f"nc={_token(creds.nc, 'nc')}")
    for name, val in creds.params.items():
        if name not in _CRED_FIELDS:
            parts.append(f"{_token(name, 'param name')}={_quote(val, name)}")
    return f"{_token(creds.scheme, 'scheme')} " + ", ".join(parts)


def verify(
    creds: Credentials,
    *,
    method: str,
    password: str,
    realm: str,
    allowed_algorithms: Sequence[str],
) -> bool:
    """True iff ``creds.response`` is right for ``password`` (constant-time compare).

    False for another realm, an algorithm not in ``allowed_algorithms``, a qop other than
    ``auth``, or anything uncomputable. Nonce freshness (NonceManager.check) and the
    ``uri`` vs Request-URI check (RFC 3261 §22.4) are the caller's.
    """
    if creds.realm != realm:
        return False
    alg = creds.algorithm.lower()
    if all(alg != a.lower() for a in allowed_algorithms):
        return False
    try:
        expected = compute_response(
            algorithm=creds.algorithm,
            username=creds.username,
            realm=creds.realm,
            password=password,
            method=method,
            uri=creds.uri,
            nonce=creds.nonce,
            qop=creds.qop,
            nc=creds.nc,
            cnonce=creds.cnonce,
        )
    except DigestError:
        return False
    if not creds.response.isascii():
        return False
    return hmac.compare_digest(expected.encode("ascii"), creds.response.lower().encode("ascii"))


# --- challenges (WWW-Authenticate / Proxy-Authenticate, RFC 3261 §22.1, RFC 8760 §2.4) -----


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """A parsed Digest ``challenge`` (RFC 3261 §25.1 ``digest-cln``)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()  # qop-options split on ","; () when absent
    stale: bool = False
    opaque: str | None = None
    domain: str | None = None
    scheme: str = "Digest"
    params: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)


def challenge(
    realm: str,
    nonce: str,
    algorithm: str,
    *,
    stale: bool = False,
    opaque: str | None = None,
    qop: str | None = "auth",
) -> str:
    """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` value for one algorithm.

    Send one per offered algorithm, preferred first (RFC 8760 §2.4). ``stale=True`` when the
    nonce was authentic but expired (RFC 3261 §22.4, RFC 7616 §3.3). ``qop=None`` omits it.
    """
    spec = _ALGORITHMS.get(algorithm.lower())
    if spec is None:
        raise DigestError(f"unsupported algorithm {algorithm!r}")
    parts = [f"realm={_quote(realm, 'realm')}", f"nonce={_quote(nonce, 'nonce')}"]
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque, 'opaque')}")
    parts.append(f"algorithm={spec[0]}")
    if qop is not None:
        for q in qop.split(","):
            _token(q.strip(), "qop")
        parts.append(f"qop={_quote(qop, 'qop')}")
    if stale:
        parts.append("stale=TRUE")
    return "Digest " + ", ".join(parts)


def parse_challenge(value: str) -> Challenge:
    """Parse a ``WWW-Authenticate`` / ``Proxy-Authenticate`` value. Raises only DigestError."""
    scheme, p = _parse_auth(value)
    for name in ("realm", "nonce"):
        if name not in p:
            raise DigestError(f"missing {name}")
    qop = p.get("qop")
    qops: tuple[str, ...] = ()
    if qop is not None:
        qops = tuple(q for q in (x.strip(" \t") for x in qop.split(",")) if q)
    return Challenge(
        scheme=scheme,
        realm=p["realm"],
        nonce=p["nonce"],
        algorithm=_canonical_algorithm(p.get("algorithm", "MD5")),
        qop=qops,
        stale=p.get("stale", "").lower() == "true",
        opaque=p.get("opaque"),
        domain=p.get("domain"),
        params=MappingProxyType(p),
    )


# --- stateless nonces (RFC 7616 §3.3 suggests time-stamp + private key) --------------------


class NonceStatus(enum.Enum):
    VALID = "valid"
    STALE = "stale"  # authentic but expired: re-challenge with stale=TRUE
    INVALID = "invalid"  # forged, garbled or from another secret: plain re-challenge


_NONCE_DOMAIN = b"fivegmc digest nonce v1\x00"
_NONCE_TS = struct.Struct(">q")  # issue time, integer microseconds
_SALT_LEN = 8
_TAG_LEN = 16  # HMAC-SHA256 truncated to 128 bits
_NONCE_RAW_LEN = _NONCE_TS.size + _SALT_LEN + _TAG_LEN
_NONCE_CHARS = re.compile(r"[A-Za-z0-9_-]+")


class NonceManager:
    """Issues and checks nonces ``b64url(time | salt | HMAC-SHA256(secret, time | salt))``.

    No per-nonce state, so any node (or a restarted one) holding the same ``secret`` validates
    them; ``now`` must therefore be wall-clock time. Being stateless it cannot detect replay of
    a (nonce, nc) pair within ``ttl_s``. Nonces are base64url: safe as tokens and quoted-strings.
    """

    def __init__(
        self,
        secret: bytes,
        ttl_s: float,
        *,
        clock_skew_s: float = 2.0,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        if not secret:
            raise ValueError("secret must not be empty")
        if not ttl_s > 0:
            raise ValueError("ttl_s must be > 0")
        self._secret = secret
        self._ttl_s = ttl_s
        self._skew_s = clock_skew_s
        self._random_bytes = random_bytes

    def _tag(self, body: bytes) -> bytes:
        return hmac.digest(self._secret, _NONCE_DOMAIN + body, "sha256")[:_TAG_LEN]

    def issue(self, now: float) -> str:
        if not math.isfinite(now) or abs(now) > 1e12:
            raise ValueError("now must be finite wall-clock seconds")
        salt = self._random_bytes(_SALT_LEN)
        if len(salt) != _SALT_LEN:
            raise ValueError("random_bytes returned the wrong length")
        body = _NONCE_TS.pack(round(now * 1e6)) + salt
        return base64.urlsafe_b64encode(body + self._tag(body)).rstrip(b"=").decode("ascii")

    def check(self, nonce: str, now: float) -> NonceStatus:
        if _NONCE_CHARS.fullmatch(nonce) is None:
            return NonceStatus.INVALID
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:  # binascii.Error
            return NonceStatus.INVALID
        if len(raw) != _NONCE_RAW_LEN:
            return NonceStatus.INVALID
        # canonical spelling only (unused low bits of the last char must be zero)
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != nonce:
            return NonceStatus.INVALID
        body, tag = raw[:-_TAG_LEN], raw[-_TAG_LEN:]
        if not hmac.compare_digest(tag, self._tag(body)):
            return NonceStatus.INVALID
        (issued_us,) = _NONCE_TS.unpack_from(body)
        age = now - issued_us / 1e6
        if -self._skew_s <= age <= self._ttl_s:
            return NonceStatus.VALID
        # authentic but too old (or issued "in the future" after a clock step back): the
        # client holds valid credentials, so let it retry without prompting (stale=TRUE)
        return NonceStatus.STALE
