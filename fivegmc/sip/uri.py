"""SIP, SIPS and TEL URIs (RFC 3261 §19.1, RFC 3966) and name-addr / addr-spec (§20.10, §25.1)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from .errors import RemoteProtocolError, is_digits

Params = tuple[tuple[str, str | None], ...]


def find_param(params: Params, name: str) -> str | None:
    """A parameter's value by case-insensitive name; "" for a flag, None when absent."""
    key = name.lower()
    for k, v in params:
        if k.lower() == key:
            return v if v is not None else ""
    return None


def format_params(params: Params) -> str:
    if not params:
        return ""
    return "".join([f";{k}" if v is None else f";{k}={v}" for k, v in params])


@dataclass(slots=True)  # not frozen: construction is 4x cheaper (hot path)
class SipUri:
    """``sip:user:password@host:port;params?headers`` (RFC 3261 §19.1.1)."""

    scheme: str  # "sip" or "sips"
    user: str | None
    host: str
    port: int | None = None
    password: str | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: str | None = None

    def param(self, name: str) -> str | None:
        return find_param(self.params, name)

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        user = self.user
        if user is None:
            text = f"{self.scheme}:{self.host}"
        elif self.password is None:
            text = f"{self.scheme}:{user}@{self.host}"
        else:
            text = f"{self.scheme}:{user}:{self.password}@{self.host}"
        if self.port is not None:
            text = f"{text}:{self.port}"
        if self.params:
            text += format_params(self.params)
        if self.headers is not None:
            text = f"{text}?{self.headers}"
        return text


@dataclass(slots=True)  # not frozen: construction is 4x cheaper (hot path)
class TelUri:
    """``tel:+8613800000000;params`` (RFC 3966)."""

    number: str
    params: tuple[tuple[str, str | None], ...] = ()
    scheme: str = "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"


@dataclass(slots=True)  # not frozen: construction is 4x cheaper (hot path)
class AbsoluteUri:
    """Any other absolute URI (e.g. ``urn:``, ``mailto:``), kept verbatim."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


def _split_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """``a=b;c`` (the text after the first ';'): pname [ "=" pvalue ], pvalue non-empty."""
    out: list[tuple[str, str | None]] = []
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not name or (eq and not value.strip()):
            raise RemoteProtocolError(f"empty parameter in {text!r}")
        out.append((name, value.strip() if eq else None))
    return tuple(out)


_VISUAL_CHARS = frozenset("-.()")
_GLOBAL_TEL = frozenset("0123456789-.()")
_LOCAL_TEL = frozenset("0123456789abcdefABCDEF*#-.()")
#: hostname / IPv4address (RFC 3261 §25.1): labels of alphanumerics with inner hyphens.
_HOSTNAME = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?"
)
#: token characters (§25.1) plus the LWS that may separate display-name tokens
_DISPLAY_TOKEN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~ \t"
)


def is_hostname(host: str) -> bool:
    """hostname / IPv4address (RFC 3261 §25.1): dot-separated labels of ASCII letters and
    digits with inner hyphens, optionally a final dot. (The same as matching ``_HOSTNAME``,
    in string methods, which cost a fraction of the regex: a host is checked per URI.)"""
    if not host.isascii():
        return False
    core = host[:-1] if host[-1:] == "." else host
    return bool(
        core
        and core.replace(".", "").replace("-", "").isalnum()
        and core[0] not in ".-"
        and core[-1] not in ".-"
        and ".." not in core
        and ".-" not in core
        and "-." not in core
    )


def _parse_host_port(text: str, whole: str) -> tuple[str, int | None]:
    if not text:
        raise RemoteProtocolError(f"URI without host: {whole!r}")
    if text.startswith("["):  # IPv6 reference (RFC 3261 §25.1)
        end = text.find("]")
        if end < 0:
            raise RemoteProtocolError(f"unterminated IPv6 reference in {whole!r}")
        host = text[: end + 1]
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise RemoteProtocolError(f"bad IPv6 reference in {whole!r}") from None
        rest = text[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise RemoteProtocolError(f"bad text after IPv6 reference in {whole!r}")
        port_text = rest[1:]
    else:
        host, colon, port_text = text.partition(":")
        if not colon:
            port_text = ""
        if not host or not is_hostname(host):
            raise RemoteProtocolError(f"bad host in URI {whole!r}")
        if not colon:
            return host, None
    if not (port_text.isdigit() and port_text.isascii()) or not 0 < int(port_text) < 65536:
        raise RemoteProtocolError(f"bad port in URI {whole!r}")
    return host, int(port_text)


def parse_uri(text: str) -> Uri:
    """Parse an absolute URI; SIP/SIPS/TEL structurally, others verbatim."""
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme or not scheme[0].isalpha():
        raise RemoteProtocolError(f"not an absolute URI: {text!r}")
    low = scheme.lower()
    if " " in rest or "\t" in rest or "\r" in rest or "\n" in rest:
        raise RemoteProtocolError(f"whitespace inside URI {text!r}")
    if low in ("sip", "sips"):
        # '@' may not appear unescaped in uri-parameters or headers (§25.1), so the first one
        # ends the userinfo, whose user part may itself contain '?' or ';'.
        user: str | None = None
        password: str | None = None
        if "@" in rest:
            userinfo, _, rest = rest.partition("@")
            user, pcolon, pw = userinfo.partition(":")
            password = pw if pcolon else None
            if not user:
                raise RemoteProtocolError(f"empty user part in {text!r}")
        headers: str | None = None
        if "?" in rest:
            rest, _, headers = rest.partition("?")
        hostport, semi, params = rest.partition(";")
        if (hostport.isascii() and hostport.replace(".", "").replace("-", "").isalnum()
                and hostport[0] not in ".-" and hostport[-1] not in ".-"
                and ".." not in hostport and ".-" not in hostport and "-." not in hostport):
            # a plain hostname without port (is_hostname, inlined): the usual case
            host: str = hostport
            port: int | None = None
        else:
            host, port = _parse_host_port(hostport, text)
        return SipUri(low, user, host, port, password,
                      _split_params(params) if semi else (), headers)
    if low == "tel":
        number, semi, params = rest.partition(";")
        # RFC 3966 §3: global = "+" digits and visual separators; local = hex digits, * and #
        # with visual separators. At least one digit either way.
        if number.startswith("+"):
            ok = _GLOBAL_TEL.issuperset(number[1:]) and any(c.isdigit() for c in number)
        else:
            ok = _LOCAL_TEL.issuperset(number) and not _VISUAL_CHARS.issuperset(number)
        if not number or not ok:
            raise RemoteProtocolError(f"bad telephone-subscriber in {text!r}")
        return TelUri(number, _split_params(params) if semi else ())
    return AbsoluteUri(low, rest)


def telephone_number(uri: Uri) -> str | None:
    """The E.164 number a URI names, or None (RFC 3261 §19.1.6 user=phone, RFC 3966).

    Visual separators (``-.()``) are removed. A SIP URI counts when its user part is a global
    number (``+`` and digits), whether or not it says ``user=phone``, since IMS UEs and SIPp often
    leave that parameter out.
    """
    if isinstance(uri, SipUri):
        raw = uri.user
        if raw is None:
            return None
        if raw[:1] == "+" and raw.isascii() and raw[1:].isdigit():
            return raw  # "+" and digits: the usual form, nothing to remove
        raw = unquote(raw).split(";", 1)[0]
    elif isinstance(uri, TelUri):
        raw = uri.number
    else:
        return None
    digits = raw.translate(_VISUAL)
    if len(digits) > 1 and digits[0] == "+" and is_digits(digits[1:]):
        return digits
    return None


_VISUAL = str.maketrans("", "", "-.()")


@dataclass(slots=True)  # not frozen: construction is 4x cheaper (hot path)
class NameAddr:
    """``"Display" <uri>;params`` or a bare addr-spec with params (RFC 3261 §20.10)."""

    uri: Uri
    display_name: str | None = None
    params: tuple[tuple[str, str | None], ...] = field(default=())

    def param(self, name: str) -> str | None:
        return find_param(self.params, name)

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    def __str__(self) -> str:
        head = f'"{self.display_name}" ' if self.display_name is not None else ""
        return f"{head}<{self.uri}>{format_params(self.params)}"


def _split_header_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """Split ``;a=b;c;d="x;y"`` (the text after a URI or '>'), respecting quoted strings (feature
    tags are quoted). Every parameter must be introduced by exactly one ';' (§25.1 SEMI)."""
    text = text.strip()
    if not text:
        return ()
    if text[0] != ";":
        raise RemoteProtocolError(f"expected ';' before parameters in {text[:40]!r}")
    if '"' not in text:
        return _split_params(text[1:])
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(text)
    while i < n:
        # here text[i] == ';' (possibly after white space)
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        if text[i] != ";":
            raise RemoteProtocolError(f"expected ';' in parameters {text[:40]!r}")
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        start = i
        while i < n and text[i] not in "=;":
            i += 1
        name = text[start:i].strip()
        if not name:
            raise RemoteProtocolError(f"empty header parameter in {text!r}")
        value: str | None = None
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == '"':
                j = i + 1
                while j < n and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                if j >= n:
                    raise RemoteProtocolError(f"unterminated quoted parameter in {text!r}")
                value = text[i : j + 1]
                i = j + 1
            else:
                start = i
                while i < n and text[i] != ";":
                    i += 1
                value = text[start:i].strip()
                if not value:
                    raise RemoteProtocolError(f"empty parameter value in {text!r}")
        out.append((name, value))
    return tuple(out)


def parse_name_addr(text: str) -> NameAddr:
    """Parse From/To/Contact/Route-style values: name-addr or addr-spec, then params."""
    text = text.strip()
    display: str | None = None
    if text.startswith('"'):
        j = 1
        n = len(text)
        while j < n and text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        if j >= n:
            raise RemoteProtocolError(f"unterminated display name in {text!r}")
        display = text[1:j]
        text = text[j + 1 :].lstrip()
        if not text.startswith("<"):
            raise RemoteProtocolError("display name without <uri>")
    lt = text.find("<")
    if lt >= 0:
        gt = text.find(">", lt)
        if gt < 0:
            raise RemoteProtocolError(f"unterminated <uri> in {text!r}")
        if display is None and lt > 0:
            display = text[:lt].strip() or None
            if display is not None and not _DISPLAY_TOKEN.issuperset(display):
                # display-name = *(token LWS) / quoted-string (§25.1; RFC 4475 §3.1.2.15)
                raise RemoteProtocolError(f"display name needs quotes: {display[:40]!r}")
        uri = parse_uri(text[lt + 1 : gt])
        params = _split_header_params(text[gt + 1 :])
        return NameAddr(uri, display, params)
    # addr-spec form: parameters after the URI belong to the header (RFC 3261 §20.10).
    uri_text, semi, param_text = text.partition(";")
    if "?" in uri_text or "," in uri_text:
        raise RemoteProtocolError(f"addr-spec with reserved characters must use <>: {text!r}")
    return NameAddr(parse_uri(uri_text), None,
                    _split_header_params(";" + param_text) if semi else ())


def aor_key(uri: Uri) -> str | None:
    """A canonical key for an address of record: the E.164 number when there is one."""
    number = telephone_number(uri)
    if number is not None:
        return number
    if isinstance(uri, SipUri) and uri.user is not None:
        return f"{unquote(uri.user)}@{uri.host.lower()}"
    return None
