"""Parse SIP messages from datagrams and frame them on streams (RFC 3261 §7, §18.3).

The parse is lazy: start line and header fields are split and unfolded, names canonicalised,
and only the headers every message needs are checked here (RFC 3261 §8.1.1: To, From, CSeq,
Call-ID, Via, and Max-Forwards on requests). Everything else is parsed when first read.
"""

from __future__ import annotations

from .errors import RemoteProtocolError, is_digits
from .headers import CANONICAL_KEYS, Headers
from .message import SIP_VERSION, Request, Response

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


def _split_head(
    lines: list[str], folded: bool
) -> tuple[list[tuple[str, str]], dict[str, list[int]]]:
    """Split header lines into (name, value) items and a lower-case name index, in one pass.

    ``folded`` says a continuation line exists somewhere (checked once on the whole head).
    """
    items: list[tuple[str, str]] = []
    index: dict[str, list[int]] = {}
    keys = CANONICAL_KEYS
    for n in range(1, len(lines)):
        line = lines[n]
        if folded and line and (line[0] == " " or line[0] == "\t"):
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
        raw = line[:colon]
        known = keys.get(raw.lower())
        if known is None:
            raw = raw.rstrip(" \t")
            known = keys.get(raw.lower())
            if known is None:
                if not raw or not _TOKEN.issuperset(raw):
                    raise RemoteProtocolError(f"bad header name {raw[:40]!r}")
                known = (raw, raw.lower())
        key = known[1]
        slot = index.get(key)
        if slot is None:
            index[key] = [len(items)]
        else:
            slot.append(len(items))
        items.append((known[0], line[colon + 1 :].strip()))
    return items, index


def parse_start_line(start: str) -> tuple[str, str] | tuple[int, str]:
    """Return (method, request-uri) for a request or (status, reason) for a response."""
    if start[:4].upper() == "SIP/":
        version, _, rest = start.partition(" ")
        if version.upper() != SIP_VERSION:  # §7.1: the version string is case-insensitive
            raise RemoteProtocolError(f"unsupported version {version[:20]!r}", 505)
        code, _, reason = rest.partition(" ")
        if len(code) != 3 or not is_digits(code) or not 100 <= int(code) <= 699:
            raise RemoteProtocolError(f"bad status code {code[:20]!r}")
        return int(code), reason
    parts = start.split(" ")
    if len(parts) != 3:
        raise RemoteProtocolError(f"bad request line {start[:80]!r}")
    method, uri, version = parts
    if not method or any(c not in _TOKEN for c in method):
        raise RemoteProtocolError(f"bad method {method[:20]!r}")
    if version.upper() != SIP_VERSION:
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
    breaks = len(lines) - 1
    if head.count("\n") != breaks or head.count("\r") != breaks:
        raise RemoteProtocolError("bare CR or LF in the header section")
    folded = "\n " in head or "\n\t" in head
    if lines[0][:1] in (" ", "\t"):
        raise RemoteProtocolError("start line begins with white space")
    items, index = _split_head(lines, folded)
    first = parse_start_line(lines[0])
    headers = Headers(items, index)
    body = data[end + 4 :]
    length_text = headers.get("Content-Length")
    if length_text is None:
        if stream:
            raise RemoteProtocolError("Content-Length is required on stream transports")
    else:
        length_text = length_text.strip()
        if not is_digits(length_text) or len(length_text) > 9:
            raise RemoteProtocolError(f"bad Content-Length {length_text[:20]!r}")
        length = int(length_text)
        if length > len(body):
            raise RemoteProtocolError(
                f"Content-Length {length} is larger than the {len(body)} body bytes received"
            )
        # Extra datagram bytes past Content-Length are discarded (RFC 3261 §18.3).
        body = body[:length]
    if isinstance(first[0], int):
        status, reason = first
        assert isinstance(status, int)
        msg: Request | Response = Response(status, str(reason), headers, body)
        msg.lines = None if folded else lines
    else:
        method, uri = first
        assert isinstance(method, str)
        msg = Request(method, str(uri), headers, body)
        msg.lines = None if folded else lines
    for name, key in _REQUIRED:
        if key not in index:
            raise RemoteProtocolError(f"missing {name} header")
    for name, key in _SINGLETONS:
        slot = index.get(key)
        if slot is not None and len(slot) > 1:
            # RFC 4475 §3.3.8/§3.3.9: several of these cannot be resolved; reject.
            values = {items[i][1] for i in slot}
            if len(values) > 1 or key != "content-length":
                raise RemoteProtocolError(f"more than one {name} header")
    if not items[index["call-id"][0]][1]:
        raise RemoteProtocolError("empty Call-ID")
    # CSeq is validated up front: transaction matching and responses depend on it.
    _, cseq_method = msg.cseq()
    if isinstance(msg, Request) and cseq_method != msg.method:
        raise RemoteProtocolError(f"CSeq method {cseq_method!r} differs from {msg.method!r}")
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


def _content_length(head: bytes) -> int:
    found: int | None = None
    if b"\r\n " in head or b"\r\n\t" in head:
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
