"""SIP requests and responses (RFC 3261 §7) with lazy typed accessors.

Parsing (see :mod:`.parser`) only splits the start line and the header fields; typed views
(:meth:`Message.via`, :meth:`Message.cseq`, ...) parse one header the first time they are read.
The body is kept as bytes, never decoded: the 5GMC carries CPIM bodies untouched.
"""

from __future__ import annotations

from .errors import RemoteProtocolError
from .headers import Headers, split_list
from .uri import NameAddr, SipUri, Uri, parse_name_addr, parse_uri
from .via import Via, parse_via

SIP_VERSION = "SIP/2.0"

#: Reason phrases (RFC 3261 §21 and the extension RFCs that the 5GMC uses).
REASONS: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized",
    402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    410: "Gone", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief", 429: "Too Many Requests",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


def reason_phrase(status: int) -> str:
    return REASONS.get(status, "Unknown")


def parse_cseq(value: str) -> tuple[int, str]:
    """``CSeq: 4711 MESSAGE`` (RFC 3261 §20.16) as (number, method)."""
    parts = value.split()  # LWS between the two, spaces or tabs (§20.16)
    num, method = (parts[0], parts[1]) if len(parts) == 2 else ("", "")
    if not (num.isdigit() and num.isascii()) or not method or len(num) > 10 \
            or int(num) >= 2**31:
        raise RemoteProtocolError(f"bad CSeq {value!r}")
    return int(num), method


class Message:
    """Common part of requests and responses."""

    __slots__ = ("_cseq", "_from", "_to", "_vias", "body", "headers", "lines")

    def __init__(self, headers: Headers, body: bytes = b"") -> None:
        self.headers = headers
        self.body = body
        # The header section's lines as received (start line first), when the parser saw no
        # folding: header item i is line i + 1. Lets a proxy edit a message without
        # re-serializing it. Cleared by :meth:`invalidate` after edits.
        self.lines: list[str] | None = None
        self._vias: list[Via] | None = None
        self._cseq: tuple[int, str] | None = None
        self._from: NameAddr | None = None
        self._to: NameAddr | None = None

    # -- typed views (parsed once, on first use) ------------------------------------------
    def vias(self) -> list[Via]:
        if self._vias is None:
            vias = [parse_via(v) for v in self.headers.get_all("Via")]
            if not vias:
                raise RemoteProtocolError("empty Via")  # §20.42: 1#via-parm
            self._vias = vias
        return self._vias

    def top_via(self) -> Via:
        value = self.headers.get("Via")
        if value is None:
            raise RemoteProtocolError("missing Via")
        if self._vias is not None:
            return self._vias[0]
        if '"' in value:  # a quoted parameter may hold a comma
            values = split_list(value)
            if not values:
                raise RemoteProtocolError("empty Via")
            return parse_via(values[0])
        comma = value.find(",")
        first = value if comma < 0 else value[:comma]
        if not first.strip():
            raise RemoteProtocolError("empty Via")
        return parse_via(first)

    def cseq(self) -> tuple[int, str]:
        if self._cseq is None:
            value = self.headers.get("CSeq")
            if value is None:
                raise RemoteProtocolError("missing CSeq")
            self._cseq = parse_cseq(value)
        return self._cseq

    def from_(self) -> NameAddr:
        if self._from is None:
            value = self.headers.get("From")
            if value is None:
                raise RemoteProtocolError("missing From")
            self._from = parse_name_addr(value)
        return self._from

    def to(self) -> NameAddr:
        if self._to is None:
            value = self.headers.get("To")
            if value is None:
                raise RemoteProtocolError("missing To")
            self._to = parse_name_addr(value)
        return self._to

    def call_id(self) -> str:
        value = self.headers.get("Call-ID")
        if not value or not value.strip():
            raise RemoteProtocolError("missing or empty Call-ID")
        return value.strip()

    def contacts(self) -> list[NameAddr] | None:
        """Contact values; None means the wildcard ``*`` (RFC 3261 §10.2.2)."""
        values = self.headers.get_all("Contact")
        if len(values) == 1 and values[0].strip() == "*":
            return None
        return [parse_name_addr(v) for v in values]

    def int_header(self, name: str) -> int | None:
        value = self.headers.get(name)
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit() or not value.isascii() or len(value) > 10:
            raise RemoteProtocolError(f"bad {name} {value!r}")
        return int(value)

    def invalidate(self) -> None:
        """Forget cached views (and the raw lines) after editing headers."""
        self.lines = None
        self._vias = None
        self._cseq = None
        self._from = None
        self._to = None

    # -- serialization ---------------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialize; Content-Length is always written to match the body (RFC 3261 §20.14)."""
        parts = [self.start_line()]
        for name, value in self.headers:
            if name != "Content-Length":
                parts.append(f"{name}: {value}")
        parts.append(f"Content-Length: {len(self.body)}")
        parts.append("")
        parts.append("")
        return "\r\n".join(parts).encode("utf-8", "surrogateescape") + self.body


    def replace_top_via(self, value: str) -> None:
        """Replace the topmost Via value (e.g. to add ``received``/``rport``, RFC 3261
        §18.2.1, RFC 3581 §4), keeping the raw lines in step for byte-level forwarding."""
        i = self.headers._firsts().get("via")
        if i is None:
            raise RemoteProtocolError("missing Via")
        name, field = self.headers._items[i]
        rest = split_list(field)[1:]
        new_field = ", ".join([value, *rest])
        self.headers._items[i] = (name, new_field)
        if self.lines is not None:
            self.lines[i + 1] = f"Via: {new_field}"
        self._vias = None

    def _first_line_index(self, key: str) -> int | None:
        """Line number of the first field named ``key`` (lower case) in :attr:`lines`."""
        i = self.headers._firsts().get(key)
        return None if i is None else i + 1


class Request(Message):
    __slots__ = ("_max_forwards", "_ruri", "method", "uri")

    def __init__(self, method: str, uri: str, headers: Headers, body: bytes = b"") -> None:
        # Message.__init__ inlined (one call less per parsed message)
        self.headers = headers
        self.body = body
        self.lines = None
        self._vias = None
        self._cseq = None
        self._from = None
        self._to = None
        self.method = method
        self.uri = uri
        self._ruri: Uri | None = None
        self._max_forwards: int | None = -1  # -1: not read yet

    def invalidate(self) -> None:
        super().invalidate()
        self._max_forwards = -1

    def max_forwards(self) -> int | None:
        """Max-Forwards (RFC 3261 §20.22) as a number, None when absent; read once."""
        mf = self._max_forwards
        if mf == -1:
            mf = self._max_forwards = self.int_header("Max-Forwards")
        return mf

    def request_uri(self) -> Uri:
        if self._ruri is None:
            uri = parse_uri(self.uri)
            if isinstance(uri, SipUri) and uri.headers is not None:
                # §19.1.5: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
                raise RemoteProtocolError("Request-URI must not contain headers")
            self._ruri = uri
        return self._ruri

    def set_uri(self, uri: str) -> None:
        self.uri = uri
        self._ruri = None

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"

    def forward_bytes(self, uri: str, via: str, max_forwards: int) -> bytes:
        """The request as a proxy forwards it (RFC 3261 §16.6): new Request-URI, our Via on
        top, Max-Forwards set; every other header and the body passed on as received."""
        lines = self.lines
        if lines is None:
            headers = self.headers.copy()
            headers.add("Via", via, first=True)
            headers.set("Max-Forwards", str(max_forwards))
            return Request(self.method, uri, headers, self.body).to_bytes()
        out = lines.copy()
        out[0] = f"{self.method} {uri} {SIP_VERSION}"
        mf = self._first_line_index("max-forwards")
        if mf is None:
            out.append(f"Max-Forwards: {max_forwards}")
        else:
            out[mf] = f"Max-Forwards: {max_forwards}"
        out.insert(1, f"Via: {via}")
        if "content-length" not in self.headers._firsts():
            out.append(f"Content-Length: {len(self.body)}")  # §16.6 step 9 / §18.3
        out.append("")
        out.append("")
        return "\r\n".join(out).encode("utf-8", "surrogateescape") + self.body

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    __slots__ = ("reason", "status")

    def __init__(self, status: int, reason: str, headers: Headers, body: bytes = b"") -> None:
        # Message.__init__ inlined (one call less per parsed message)
        self.headers = headers
        self.body = body
        self.lines = None
        self._vias = None
        self._cseq = None
        self._from = None
        self._to = None
        self.status = status
        self.reason = reason

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def without_top_via(self) -> bytes:
        """The response as a proxy relays it upstream: our (topmost) Via value removed
        (RFC 3261 §16.7 step 3), everything else as received."""
        lines = self.lines
        i = self._first_line_index("via")
        if lines is None or i is None:
            headers = self.headers.copy()
            headers.pop_first_value("Via")
            return Response(self.status, self.reason, headers, self.body).to_bytes()
        out = lines.copy()
        rest = split_list(self.headers._items[i - 1][1])[1:]
        if rest:
            out[i] = "Via: " + ", ".join(rest)
        else:
            del out[i]
        out.append("")
        out.append("")
        return "\r\n".join(out).encode("utf-8", "surrogateescape") + self.body

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


#: Headers copied from a request into a response it answers (RFC 3261 §8.2.6.2).
_COPIED = ("Via", "From", "Call-ID", "CSeq")


def _has_tag(value: str) -> bool:
    gt = value.rfind(">")
    params = value[gt + 1 :] if gt >= 0 else value.partition(";")[2]
    return "tag=" in params.lower().replace(" ", "")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    extra: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> Response:
    """Build a response to ``request``: Via/From/Call-ID/CSeq copied, To with our tag."""
    items: list[tuple[str, str]] = []
    src = request.headers
    for name in _COPIED:
        for value in src.get_fields(name):
            items.append((name, value))
        if name == "From":
            to_value = src.get("To") or ""
            if to_tag is not None and status > 100 and not _has_tag(to_value):
                to_value = f"{to_value};tag={to_tag}"
            items.append(("To", to_value))
    if extra:
        items.extend(extra)
    return Response(status, reason or reason_phrase(status), Headers(items), body)
