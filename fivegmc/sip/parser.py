"""Parse SIP messages from datagrams and frame them on streams (RFC 3261 §7, §18.3).

The parse is lazy: start line and header fields are split and unfolded, names canonicalised,
and only the headers every message needs are checked here (RFC 3261 §8.1.1: To, From, CSeq,
Call-ID, Via, and Max-Forwards on requests). Everything else is parsed when first read.
"""

from __future__ import annotations

import re

from .errors import RemoteProtocolError, is_digits
from .headers import CANONICAL_KEYS, Headers
from .message import SIP_VERSION, Request, Response, parse_cseq

#: RFC 3261 §25.1 token characters, for method names.
_TOKEN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)
# Max-Forwards is not required here: the proxy's sanity step handles its absence (§16.3).
_REQUIRED = tuple((n, n.lower()) for n in ("To", "From", "CSeq", "Call-ID", "Via"))
#: Headers that may appear only once (RFC 3261 §7.3.1: not list-valued).
_SINGLETONS = tuple(
    (n, n.lower())
    for n in ("To", "From", "CSeq", "Call-ID", "Max-Forwards", "Content-Length", "Content-Type")
)

DEFAULT_MAX_SIZE = 65535


#: Exact header-name spellings seen on the wire -> (canonical spelling, index key): the
#: canonical, lower-case and upper-case forms of every known name and compact form. A hit
#: skips ``str.lower()``; anything else takes the general path (:func:`_header_name`).
_NAME_KEYS: dict[str, tuple[str, str]] = {}
for _low, _known in CANONICAL_KEYS.items():
    for _spelling in (_known[0], _low, _low.upper()):
        _NAME_KEYS.setdefault(_spelling, _known)
_SINGLETON_KEYS = frozenset(key for _, key in _SINGLETONS)
_REQUIRED_KEYS = frozenset(key for _, key in _REQUIRED)


def _header_name(raw: str) -> tuple[str, str]:
    """(canonical spelling, index key) of a header name not in :data:`_NAME_KEYS`."""
    keys = CANONICAL_KEYS
    known = keys.get(raw.lower())
    if known is None:
        raw = raw.rstrip(" \t")  # LWS before the colon (§7.3.1)
        known = keys.get(raw.lower())
        if known is None:
            if not raw or not _TOKEN.issuperset(raw):
                raise RemoteProtocolError(f"bad header name {raw[:40]!r}")
            known = (raw, raw.lower())
    return known


def _split_head(lines: list[str]) -> tuple[list[tuple[str, str]], dict[str, int], bool, bool]:
    """Split header lines (``lines[0]`` is the start line) into (name, value) items and a
    lower-case name -> first position map, in one pass.

    Also returns whether some singleton header (:data:`_SINGLETONS`) occurs more than once,
    and whether the head had continuation lines (RFC 3261 §7.3.1 folding; then the lines do not
    map one to one to the items).
    """
    items: list[tuple[str, str]] = []
    first: dict[str, int] = {}
    keys = _NAME_KEYS
    setdefault = first.setdefault
    repeated = False
    for i, line in enumerate(lines[1:]):
        raw, colon, value = line.partition(":")
        known = keys.get(raw)
        if known is None or not colon:
            if line[:1] in (" ", "\t"):
                return _split_folded(lines)  # a continuation line: the general path
            if not colon or not raw:
                if not line:
                    raise RemoteProtocolError("empty line inside the header section")
                raise RemoteProtocolError(f"header line without a name: {line[:40]!r}")
            known = _header_name(raw)
        key = known[1]
        if setdefault(key, i) != i and key in _SINGLETON_KEYS:
            repeated = True
        items.append((known[0], value.strip()))
    return items, first, repeated, False


def _split_folded(
    lines: list[str],
) -> tuple[list[tuple[str, str]], dict[str, int], bool, bool]:
    """:func:`_split_head` for a head with continuation lines."""
    items: list[tuple[str, str]] = []
    first: dict[str, int] = {}
    repeated = False
    for n in range(1, len(lines)):
        line = lines[n]
        if line and (line[0] == " " or line[0] == "\t"):
            # Header folding (RFC 3261 §7.3.1): a continuation joins the previous line.
            if not items:
                raise RemoteProtocolError("continuation line before the first header")
            name, value = items[-1]
            cont = line.strip()
            items[-1] = (name, f"{value} {cont}" if value else cont)
            continue
        colon = line.find(":")
        if colon <= 0:
            if not line:
                raise RemoteProtocolError("empty line inside the header section")
            raise RemoteProtocolError(f"header line without a name: {line[:40]!r}")
        known = _header_name(line[:colon])
        key = known[1]
        if first.setdefault(key, len(items)) != len(items) and key in _SINGLETON_KEYS:
            repeated = True
        items.append((known[0], line[colon + 1 :].strip()))
    return items, first, repeated, True


def parse_start_line(start: str) -> tuple[str, str] | tuple[int, str]:
    """Return (method, request-uri) for a request or (status, reason) for a response."""
    if start[:4].upper() == "SIP/":
        version, _, rest = start.partition(" ")
        if version != SIP_VERSION and version.upper() != SIP_VERSION:
            # §7.1: the version string is case-insensitive
            raise RemoteProtocolError(f"unsupported version {version[:20]!r}", 505)
        code, _, reason = rest.partition(" ")
        if len(code) != 3 or not is_digits(code) or not 100 <= int(code) <= 699:
            raise RemoteProtocolError(f"bad status code {code[:20]!r}")
        return int(code), reason
    parts = start.split(" ")
    if len(parts) != 3:
        raise RemoteProtocolError(f"bad request line {start[:80]!r}")
    method, uri, version = parts
    if not method or not _TOKEN.issuperset(method):
        raise RemoteProtocolError(f"bad method {method[:20]!r}")
    if version != SIP_VERSION and version.upper() != SIP_VERSION:
        if version.upper().startswith("SIP/"):
            raise RemoteProtocolError(f"unsupported version {version[:20]!r}", 505)
        raise RemoteProtocolError(f"bad request line version {version[:20]!r}")
    if ":" not in uri:
        raise RemoteProtocolError(f"bad Request-URI {uri[:80]!r}")
    return method, uri


def parse_message(
    data: bytes, *, max_size: int = DEFAULT_MAX_SIZE, stream: bool = False
) -> Request | Response:
    """Parse one whole SIP message.

    ``stream=True`` means the bytes were framed by Content-Length on a stream transport, where
    Content-Length is mandatory (RFC 3261 §18.3); on datagrams it may be absent and means "the
    rest of the datagram". Raises :class:`RemoteProtocolError` (and nothing else) on bad input,
    with ``status_hint`` 513 when the message is larger than ``max_size``.
    """
    if len(data) > max_size:
        raise RemoteProtocolError(f"message of {len(data)} bytes exceeds {max_size}", 513)
    # Leading CRLFs before a start line are ignored (RFC 3261 §7.5).
    if data[:2] == b"\r\n":
        data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise RemoteProtocolError("no empty line after the header section")
    try:
        head = data[:end].decode("utf-8")
    except UnicodeDecodeError:
        head = data[:end].decode("utf-8", "surrogateescape")
    if "\x00" in head and _nul_outside_quotes(head):
        raise RemoteProtocolError("NUL byte outside a quoted string")
    lines = head.split("\r\n")
    # Line ends are CRLF only (RFC 3261 §7.3.1); a bare CR or LF inside a value would let a
    # peer smuggle a header past us to a downstream parser that splits on LF.
    flat = "".join(lines)
    if "\r" in flat or "\n" in flat:
        raise RemoteProtocolError("bare CR or LF in the header section")
    start = lines[0]
    if start[:1] in (" ", "\t"):
        raise RemoteProtocolError("start line begins with white space")
    items, first, repeated, folded = _split_head(lines)
    code, text = parse_start_line(start)
    body = data[end + 4 :]
    i = first.get("content-length")
    if i is None:
        if stream:
            raise RemoteProtocolError("Content-Length is required on stream transports")
    else:
        length_text = items[i][1].strip()
        if not length_text.isdigit() or not length_text.isascii() or len(length_text) > 9:
            raise RemoteProtocolError(f"bad Content-Length {length_text[:20]!r}")
        length = int(length_text)
        if length > len(body):
            raise RemoteProtocolError(
                f"Content-Length {length} is larger than the {len(body)} body bytes received"
            )
        # Extra datagram bytes past Content-Length are discarded (RFC 3261 §18.3).
        if length != len(body):
            body = body[:length]
    headers = Headers(items, first)
    msg: Request | Response
    if isinstance(code, int):
        msg = Response(code, text, headers, body)
    else:
        msg = Request(code, text, headers, body)
    if not folded:
        msg.lines = lines
    if not first.keys() >= _REQUIRED_KEYS:
        for name, key in _REQUIRED:
            if key not in first:
                raise RemoteProtocolError(f"missing {name} header")
    if repeated:
        index = headers._idx()
        for name, key in _SINGLETONS:
            slot = index.get(key)
            if slot is not None and len(slot) > 1:
                # RFC 4475 §3.3.8/§3.3.9: several of these cannot be resolved; reject.
                values = {items[i][1] for i in slot}
                if len(values) > 1 or key != "content-length":
                    raise RemoteProtocolError(f"more than one {name} header")
    if not items[first["call-id"]][1]:
        raise RemoteProtocolError("empty Call-ID")
    # CSeq is validated up front: transaction matching and responses depend on it.
    msg._cseq = cseq = parse_cseq(items[first["cseq"]][1])
    cseq_method = cseq[1]
    if cseq_method != code and not isinstance(code, int):
        raise RemoteProtocolError(f"CSeq method {cseq_method!r} differs from {code!r}")
    return msg


def _nul_outside_quotes(head: str) -> bool:
    """NUL may only appear as a quoted-pair inside a quoted-string (§25.1, RFC 4475 §3.1.1.2)."""
    for line in head.split("\r\n"):
        quoted = escaped = False
        for ch in line:
            if escaped:
                escaped = False
            elif quoted and ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = not quoted
            elif ch == "\x00" and not quoted:
                return True
    return False


class StreamFramer:
    """Cut a byte stream into SIP messages by Content-Length (RFC 3261 §18.3).

    Feed it bytes in any slices; :meth:`feed` returns the complete messages (as bytes) in order.
    A bare CRLF pair between messages is an RFC 5626 §4.4.1 keep-alive ping and is reported as
    :data:`KEEPALIVE` so the caller can answer with a single CRLF pong. On framing errors it
    raises :class:`RemoteProtocolError`; the connection cannot be resynchronised after that.
    """

    __slots__ = ("_buf", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self._buf = bytearray()
        self.max_size = max_size

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def pending_head(self, limit: int = 8192) -> bytes:
        """The start of what is buffered (for a best-effort error answer after a failure)."""
        return bytes(self._buf[:limit])

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while buf:
            if buf[0] in (13, 10):
                if buf[:4] == b"\r\n\r\n":
                    del buf[:4]
                    out.append(KEEPALIVE)
                    continue
                if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                    break  # maybe the start of a ping; wait for more
                if buf[:2] == b"\r\n":
                    del buf[:2]  # stray CRLF (a pong, or a lone CRLF before a message)
                    continue
                if buf[:1] == b"\n":
                    del buf[:1]
                    continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.max_size:
                    raise RemoteProtocolError("header section exceeds the maximum size", 513)
                break
            length = _content_length(bytes(buf[:end]))
            total = end + 4 + length
            if total > self.max_size:
                raise RemoteProtocolError(
                    f"message of {total} bytes exceeds {self.max_size}", 513
                )
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
        return out


KEEPALIVE = b"\r\n\r\n"
#: A line that may be a compact Content-Length ("l"), a fold, or a name behind white space.
_ODD_LINE_START = re.compile(rb"\r\n[l \t\x0b\x0c]")


def _content_length(head: bytes) -> int:
    """Content-Length of a framed head (start line + header lines, no final CRLF CRLF)."""
    low = head.lower()
    i = low.find(b"\r\ncontent-length:")
    # (``find`` rather than ``in``: bytes.__contains__ first tries its argument as an integer
    # and formats a TypeError each time.)
    if i >= 0 and low.count(b"content-length") == 1 and _ODD_LINE_START.search(low) is None:
        # One long-form field and nothing that could be another (a compact "l", folding, a
        # name behind other white space): read it in place. Anything else: the line scan.
        end = head.find(b"\r\n", i + 2)
        text = head[i + 17 : end if end >= 0 else len(head)].strip()
        if not text.isdigit() or len(text) > 9:
            raise RemoteProtocolError(f"bad Content-Length {text[:20]!r}")
        return int(text)
    return _content_length_scan(head)


def _content_length_scan(head: bytes) -> int:
    found: int | None = None
    if head.find(b"\r\n ") >= 0 or head.find(b"\r\n\t") >= 0:
        head = head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")  # §7.3.1 folding
    for line in head.split(b"\r\n")[1:]:
        colon = line.find(b":")
        if colon <= 0:
            continue
        name = line[:colon].strip().lower()
        if name == b"content-length" or name == b"l":
            text = line[colon + 1 :].strip()
            if not text.isdigit() or len(text) > 9:
                raise RemoteProtocolError(f"bad Content-Length {text[:20]!r}")
            value = int(text)
            if found is not None and found != value:
                raise RemoteProtocolError("conflicting Content-Length headers")
            found = value
    if found is None:
        raise RemoteProtocolError("Content-Length is required on stream transports")
    return found
