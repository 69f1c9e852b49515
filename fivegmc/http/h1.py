"""Sans-IO HTTP/1.1, client side (RFC 9112): request serialization and an incremental response
parser. No I/O and no clock: bytes in, :class:`Response` objects out.

Framing follows RFC 9112 §6.3 in order: a response to HEAD and any 1xx/204/304 has no body
(rule 1); ``Transfer-Encoding`` ending in ``chunked`` wins over ``Content-Length`` (rules 3-4);
one valid ``Content-Length`` gives the length (rules 5-6); otherwise the body runs to EOF (rule 8).
Anything malformed or over a configured limit raises :class:`ProtocolError`, and the parser then
stays failed: the connection it reads cannot be trusted any more.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["HttpError", "ProtocolError", "Response", "ResponseParser", "build_request"]


class HttpError(Exception):
    """Base class of every error raised by :mod:`fivegmc.http`."""


class ProtocolError(HttpError):
    """The peer broke HTTP/1.1 framing or exceeded a limit; the connection must not be reused."""


#: token (RFC 9110 §5.6.2): method and field names.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Header injection (RFC 9110 §5.5: CR, LF and NUL are never valid in a field value).
_CR_LF_NUL = re.compile(r"[\r\n\x00]")
#: Not allowed in a request-target (RFC 9112 §3.2: no whitespace or control characters).
_TARGET_BAD = re.compile(r"[\x00-\x20\x7f]")
_TCHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
#: A field section in the common form: CRLF line ends, no obs-fold, no CR/LF/NUL in values,
#: no whitespace before a line end.
_FIELD_BLOCK = re.compile(rf"(?:{_TCHAR}++:[^\r\n\x00]*+(?<![ \t])\r\n)*+")
#: One field line of such a section, the OWS before the value left out (RFC 9112 §5).
_FIELD = re.compile(rf"({_TCHAR}++):[ \t]*+([^\r\n]*+)\r\n")
#: status-line = HTTP-version SP status-code SP [ reason-phrase ]  (RFC 9112 §4); the SP
#: before an empty reason is often left out, so it is optional here.
_STATUS_LINE = re.compile(r"HTTP/([0-9])\.([0-9]) ([1-9][0-9][0-9])(?: ([^\r\x00]*))?")
#: chunk-size [ chunk-ext ] CRLF (RFC 9112 §7.1, §7.1.1); extensions are read and ignored.
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r?")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_FRAMING_FIELDS = frozenset({"content-length", "transfer-encoding"})

#: Longest chunk-size line accepted (size plus extensions), bytes.
MAX_CHUNK_LINE = 4096
#: More hex digits than this is a size no body limit would let through.
_MAX_SIZE_DIGITS = 16


def build_request(method: str, target: str, host: str, headers: Sequence[tuple[str, str]],
                  body: bytes) -> bytes:
    """Serialize one request (RFC 9112 §3): request line, ``Host`` first (§3.2: unless the
    caller gives its own), the given fields, then ``Content-Length`` for POST/PUT/PATCH (even
    0; RFC 9110 §8.6) or any non-empty body. Raises ValueError for a name that is not a token
    and for CR, LF or NUL anywhere (header injection); framing fields are ours to write."""
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"invalid HTTP method {method!r}")
    if not target or _TARGET_BAD.search(target):
        raise ValueError(f"invalid request target {target!r} (empty, whitespace or control)")
    fields: list[str] = []
    own_host = False
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if _CR_LF_NUL.search(value):
            raise ValueError(f"header {name}: CR, LF or NUL in the value")
        lname = name.lower()
        if lname in _FRAMING_FIELDS:
            raise ValueError(f"header {name} is set from the body; do not pass it")
        if lname == "host":
            own_host = True
        fields += (name, ": ", value, "\r\n")
    head = [method, " ", target, " HTTP/1.1\r\n"]
    if not own_host:
        if not host or _TARGET_BAD.search(host):
            raise ValueError(f"invalid Host {host!r}")
        head += ("Host: ", host, "\r\n")
    head += fields
    if body or method in _BODY_METHODS:
        head += ("Content-Length: ", str(len(body)), "\r\n")
    head.append("\r\n")
    return "".join(head).encode() + body


@dataclass(frozen=True, slots=True)
class Response:
    """One complete response. ``headers`` keep names as received and field order;
    ``trailers`` are the fields of a chunked trailer section (RFC 9112 §7.1.2), kept apart
    from the header fields as RFC 9110 §6.5.1 asks."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    keep_alive: bool
    trailers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str | None:
        """The first value of field ``name`` (case-insensitive), or None."""
        lname = name.lower()
        for n, v in self.headers:
            if n.lower() == lname:
                return v
        return None


# Parser states.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _TO_EOF, _DONE, _FAILED = range(9)


class ResponseParser:
    """Incremental parser of the responses on one connection, in order.

    Call :meth:`expect` with the method of each request sent (a HEAD response has no body,
    RFC 9112 §6.3 rule 1); a response with no expectation queued is read as for GET.
    """

    __slots__ = ("_body", "_buf", "_error", "_expected", "_headers", "_keep_alive",
                 "_max_body", "_max_header", "_reason", "_remaining", "_scan", "_state",
                 "_status")

    def __init__(self, *, max_header_bytes: int = 64 * 1024,
                 max_body_bytes: int = 1024 * 1024) -> None:
        self._max_header = max_header_bytes
        self._max_body = max_body_bytes
        self._buf = bytearray()
        self._scan = 0          # where to resume looking for the end of a field section
        self._state = _HEAD
        self._error = ""
        self._expected: deque[str] = deque()
        self._status = 0
        self._reason = ""
        self._headers: list[tuple[str, str]] = []
        self._keep_alive = True
        self._remaining = 0     # bytes still due in a Content-Length body or in a chunk
        self._body = bytearray()  # chunked bodies only

    def expect(self, method: str) -> None:
        """Note that a request with ``method`` was sent; its response is read accordingly."""
        self._expected.append(method)

    @property
    def in_progress(self) -> bool:
        """True when bytes of a response not yet complete have been received."""
        return self._state != _HEAD or bool(self._buf)

    def feed(self, data: bytes) -> list[Response]:
        """Take received bytes; return the responses they complete (1xx interim ones skipped)."""
        if self._state >= _DONE:
            raise ProtocolError(self._error or "data received after the end of the stream")
        self._buf += data
        out: list[Response] = []
        try:
            while self._step(out):
                pass
        except ProtocolError as exc:
            self._state = _FAILED
            self._error = str(exc)
            raise
        return out

    def feed_eof(self) -> list[Response]:
        """The peer closed the connection: complete a close-delimited body (RFC 9112 §6.3
        rule 8); raise ProtocolError if a response was cut short (§8: incomplete message)."""
        state = self._state
        if state == _FAILED:
            raise ProtocolError(self._error)
        self._state = _DONE
        if state == _TO_EOF:
            body = bytes(self._buf)
            self._buf.clear()
            return [self._complete(body)]
        if state == _HEAD and not self._buf.strip(b"\r\n"):
            return []
        if state == _HEAD:
            why = f"inside a response head ({len(self._buf)} bytes received)"
        elif state == _LENGTH:
            why = f"with {self._remaining - len(self._buf)} Content-Length body bytes missing"
        elif state == _DONE:
            why = "twice"
        else:
            why = "inside a chunked body"
        self._error = f"connection closed {why}"
        raise ProtocolError(self._error)

    # -- internals ------------------------------------------------------------------------

    def _step(self, out: list[Response]) -> bool:
        """Advance by one unit (head, body, chunk line, ...); False when more data is needed."""
        state = self._state
        buf = self._buf
        if state == _HEAD:
            return self._read_head(out)
        if state == _LENGTH:
            n = self._remaining
            if len(buf) < n:
                return False
            body = bytes(buf[:n])
            del buf[:n]
            out.append(self._complete(body))
            return True
        if state == _CHUNK_SIZE:
            return self._read_chunk_size()
        if state == _CHUNK_DATA:
            n = self._remaining
            if len(buf) < n:
                return False
            self._body += buf[:n]
            del buf[:n]
            self._state = _CHUNK_END
            return True
        if state == _CHUNK_END:  # the CRLF after chunk-data (RFC 9112 §7.1)
            if buf[:2] == b"\r\n":
                del buf[:2]
            elif buf[:1] == b"\n":  # bare LF accepted as a line end (RFC 9112 §2.2)
                del buf[:1]
            elif buf == b"\r" or not buf:
                return False
            else:
                raise ProtocolError("chunk data not followed by CRLF (RFC 9112 §7.1)")
            self._state = _CHUNK_SIZE
            return True
        if state == _TRAILERS:
            return self._read_trailers(out)
        # _TO_EOF: keep everything until feed_eof, within the body limit.
        if len(buf) > self._max_body:
            raise ProtocolError(f"response body exceeds max_body_bytes ({self._max_body})")
        return False

    def _section_end(self) -> tuple[int, int]:
        """(end of the field lines, start of what follows) of a section ending in an empty
        line, or (-1, -1) if it is not all here yet (CRLF, or a bare LF: RFC 9112 §2.2)."""
        buf = self._buf
        start = self._scan
        a = buf.find(b"\n\r\n", start)
        b = buf.find(b"\n\n", start, a + 2 if a >= 0 else len(buf))
        if b >= 0:
            return b, b + 2
        if a >= 0:
            return a, a + 3
        self._scan = max(0, len(buf) - 2)
        return -1, -1

    def _read_head(self, out: list[Response]) -> bool:
        buf = self._buf
        if buf and buf[0] in (13, 10):  # empty lines before a status line are ignored (§2.2)
            n = len(buf) - len(buf.lstrip(b"\r\n"))
            del buf[:n]
        if not buf:
            return False
        end, rest = self._section_end()
        if end < 0:
            if len(buf) > self._max_header:
                raise ProtocolError(
                    f"response header block exceeds max_header_bytes ({self._max_header})")
            return False
        if rest > self._max_header:
            raise ProtocolError(
                f"response header block exceeds max_header_bytes ({self._max_header})")
        text = buf[:end + 1].decode("latin-1")  # every line with its line end
        del buf[:rest]
        self._scan = 0
        nl = text.find("\n")
        m = _STATUS_LINE.fullmatch(text, 0, nl - 1 if text[nl - 1] == "\r" else nl)
        if m is None:
            raise ProtocolError(f"malformed status line {text[:min(nl, 80)]!r} (RFC 9112 §4)")
        major, minor, code, reason = m.groups()
        if major != "1":
            raise ProtocolError(f"unsupported HTTP version {major}.{minor}")
        status = int(code)
        headers = _parse_fields(text, nl + 1, "header")
        if status < 200:
            if status == 101:
                raise ProtocolError("101 Switching Protocols: protocol upgrades are not supported")
            return True  # interim response (RFC 9110 §15.2): the final one follows
        method = self._expected.popleft() if self._expected else "GET"
        self._status = status
        self._reason = reason or ""
        self._headers = headers
        self._frame(method, status, minor != "0", headers, out)
        return True

    def _frame(self, method: str, status: int, http11: bool, headers: list[tuple[str, str]],
               out: list[Response]) -> None:
        """Choose how the body is delimited (RFC 9112 §6.3) and the connection's fate (§9.3)."""
        lengths: list[str] = []
        codings: list[str] = []
        options: list[str] = []
        for name, value in headers:
            n = len(name)  # (cheaper than lower-casing every name)
            if n == 14 and name.lower() == "content-length":
                lengths.append(value)
            elif n == 17 and name.lower() == "transfer-encoding":
                codings += (c.strip(" \t").lower() for c in value.split(","))
            elif n == 10 and name.lower() == "connection":
                options += (c.strip(" \t").lower() for c in value.split(","))
        # §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive".
        self._keep_alive = "close" not in options if http11 else "keep-alive" in options
        if method == "HEAD" or status == 204 or status == 304:  # rule 1: no body
            out.append(self._complete(b""))
            return
        if method == "CONNECT" and status < 300:
            raise ProtocolError("CONNECT tunnels are not supported")
        codings = [c for c in codings if c]
        if codings:
            if codings[-1] != "chunked":  # rule 4 reads to EOF; refused here as unframeable
                raise ProtocolError(
                    f"Transfer-Encoding {', '.join(codings)!r} does not end with chunked")
            if len(codings) > 1:
                raise ProtocolError(
                    f"unsupported transfer coding(s) {', '.join(codings[:-1])!r}")
            if lengths or not http11:
                # rule 3: chunked overrides Content-Length, but the message is suspect (§6.1)
                self._keep_alive = False
            self._body = bytearray()
            self._state = _CHUNK_SIZE
            return
        if lengths:
            if len(lengths) > 1:
                raise ProtocolError("more than one Content-Length field (RFC 9112 §6.3 rule 5)")
            value = lengths[0]
            if not (value.isascii() and value.isdigit()) or len(value) > 18:
                raise ProtocolError(f"invalid Content-Length {value[:40]!r} (RFC 9112 §6.3)")
            n = int(value)
            if n > self._max_body:
                raise ProtocolError(
                    f"Content-Length {n} exceeds max_body_bytes ({self._max_body})")
            if n == 0:
                out.append(self._complete(b""))
            else:
                self._remaining = n
                self._state = _LENGTH
            return
        self._keep_alive = False  # rule 8: the body ends when the server closes
        self._state = _TO_EOF

    def _read_chunk_size(self) -> bool:
        buf = self._buf
        i = buf.find(b"\n", 0, MAX_CHUNK_LINE + 1)
        if i < 0:
            if len(buf) > MAX_CHUNK_LINE:
                raise ProtocolError(f"chunk-size line longer than {MAX_CHUNK_LINE} bytes")
            return False
        m = _CHUNK_LINE.fullmatch(buf, 0, i)
        if m is None:
            raise ProtocolError(f"malformed chunk-size line {bytes(buf[:min(i, 40)])!r}")
        digits = m.group(1)
        del buf[:i + 1]
        if len(digits) > _MAX_SIZE_DIGITS:
            raise ProtocolError(f"chunk size {digits[:40]!r} too large")
        size = int(digits, 16)
        if size == 0:  # last-chunk: the trailer section follows (§7.1.2)
            self._state = _TRAILERS
            return True
        if len(self._body) + size > self._max_body:
            raise ProtocolError(f"chunked body exceeds max_body_bytes ({self._max_body})")
        self._remaining = size
        self._state = _CHUNK_DATA
        return True

    def _read_trailers(self, out: list[Response]) -> bool:
        buf = self._buf
        if buf[:2] == b"\r\n" or buf[:1] == b"\n":  # no trailer fields
            del buf[:2 if buf[0] == 13 else 1]
            out.append(self._complete(bytes(self._body)))
            return True
        if buf == b"\r" or not buf:
            return False
        end, rest = self._section_end()
        if end < 0:
            if len(buf) > self._max_header:
                raise ProtocolError(
                    f"trailer section exceeds max_header_bytes ({self._max_header})")
            return False
        if rest > self._max_header:
            raise ProtocolError(f"trailer section exceeds max_header_bytes ({self._max_header})")
        text = buf[:end + 1].decode("latin-1")
        del buf[:rest]
        self._scan = 0
        trailers = _parse_fields(text, 0, "trailer")
        out.append(self._complete(bytes(self._body), tuple(trailers)))
        return True

    def _complete(self, body: bytes, trailers: tuple[tuple[str, str], ...] = ()) -> Response:
        resp = Response(self._status, self._reason, tuple(self._headers), body,
                        self._keep_alive, trailers)
        self._state = _HEAD
        self._headers = []
        self._body = bytearray()
        return resp


def _parse_fields(text: str, start: int, what: str) -> list[tuple[str, str]]:
    """The field lines of ``text`` from ``start``, each ending in a line end:
    field-line = field-name ":" OWS field-value OWS (RFC 9112 §5). The common case (CRLF,
    no obs-fold) is two regex passes; anything else goes line by line."""
    if _FIELD_BLOCK.fullmatch(text, start):
        return _FIELD.findall(text, start)
    fields: list[tuple[str, str]] = []
    for line in text[start:].replace("\r\n", "\n").split("\n")[:-1]:
        if line[:1] in (" ", "\t"):  # obs-fold: one SP instead (§5.2)
            if not fields:
                raise ProtocolError(f"{what} section starts with a continuation line")
            name, value = fields[-1]
            line = line.strip(" \t")
            fields[-1] = (name, f"{value} {line}" if line else value)
        else:
            name, colon, value = line.partition(":")
            if not colon or not _TOKEN.fullmatch(name):  # no whitespace before ":" (§5.1)
                raise ProtocolError(f"malformed {what} line {line[:80]!r} (RFC 9112 §5)")
            fields.append((name, value.strip(" \t")))
        if "\r" in line or "\x00" in line:
            raise ProtocolError(f"CR or NUL in {what} {name} (RFC 9110 §5.5)")
    return fields
