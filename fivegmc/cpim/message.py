"""CPIM message codec (``message/cpim``, RFC 3862), sans-IO.

A CPIM body is: message headers (From, To, cc, DateTime, Subject, NS, Require and namespaced
headers such as ``imdn.Message-ID``), CRLF CRLF, the encapsulated MIME headers (Content-Type,
Content-Length, ...), CRLF CRLF, then the content.

The 5GMC forwards CPIM untouched, so :func:`parse_cpim` keeps every header in order with its
exact spelling, separator and value, and :meth:`CpimMessage.to_bytes` gives back the same bytes.
Lines end in CRLF (RFC 3862 §3.1); CPIM message headers may not be folded, encapsulated MIME
headers may (the fold is kept inside the value).

Malformed peer input raises :class:`RemoteProtocolError` with ``status_hint=400``; bad arguments
to the builder raise :class:`LocalProtocolError` (our own bug).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from fivegmc.sip.errors import LocalProtocolError, RemoteProtocolError, is_digits

#: Namespace of the IMDN CPIM headers (RFC 5438 §3).
IMDN_NS = "urn:ietf:params:imdn"
#: Namespace of the unprefixed core CPIM headers (RFC 3862 §3.4).
CPIM_DEFAULT_NS = "urn:ietf:params:cpim-headers:"

CRLF = "\r\n"

# RFC 3862 §3.1: Header-name = [ Name-prefix "." ] Name; name-char excludes "." and ":".
_NAME_CHARS = r"[A-Za-z0-9!#$%&'*+\-^_`|~]+"
_MSG_NAME = re.compile(rf"(?:({_NAME_CHARS})\.)?({_NAME_CHARS})")
# RFC 822/2045 field-name: printable ASCII except ":".
_MIME_NAME = re.compile(r"[!-9;-~]+")
# NS: [ Name-prefix SP ] "<" URI ">"
#: A whole message header line: (name, prefix or None, ":" + whitespace, value).
_MSG_LINE = re.compile(rf"((?:({_NAME_CHARS})\.)?{_NAME_CHARS})(:[ \t]*)(.*)", re.S)
_NS_VALUE = re.compile(rf"(?:({_NAME_CHARS})[ \t]+)?<([^<>\s]+)>[ \t]*")
_TOKEN = re.compile(_NAME_CHARS)
_LINE_BREAK = re.compile(r"[\r\n]")
_UNFOLD = re.compile(r"\r\n(?=[ \t])")
_EMPTY: Mapping[str, str] = MappingProxyType({})


def _bad(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"CPIM: {reason}", 400)


class CpimHeader(NamedTuple):
    """One header line: ``name + sep + value`` (``sep`` is ':' and the whitespace after it).
    (A named tuple: immutable, and cheaper to build than a frozen dataclass — one per line.)"""

    name: str
    value: str
    sep: str = ": "

    def to_line(self) -> str:
        return f"{self.name}{self.sep}{self.value}{CRLF}"


@dataclass(frozen=True, slots=True)
class CpimMessage:
    """A parsed CPIM body; ``body`` is every byte after the MIME headers' blank line."""

    headers: tuple[CpimHeader, ...]
    mime_headers: tuple[CpimHeader, ...]
    body: bytes

    def to_bytes(self) -> bytes:
        head = "".join(h.to_line() for h in self.headers)
        mime = "".join(h.to_line() for h in self.mime_headers)
        return f"{head}{CRLF}{mime}{CRLF}".encode() + self.body

    # -- lookups -------------------------------------------------------------------------

    def header_values(self, name: str) -> list[str]:
        """Values (stripped) of the message headers spelled ``name`` (case-insensitive)."""
        low = name.lower()
        return [h.value.strip(" \t") for h in self.headers if h.name.lower() == low]

    def header(self, name: str) -> str | None:
        low = name.lower()
        for h in self.headers:
            if h.name == name or h.name.lower() == low:
                return h.value.strip(" \t")
        return None

    def namespaced(self) -> Iterator[tuple[str, str, CpimHeader]]:
        """Yield (namespace URI, local name, header) with each prefix resolved where it is used.

        An NS header is in effect for the header lines after it (RFC 3862 §5.1); a header whose
        prefix is not declared is skipped (:func:`parse_cpim` rejects those).
        """
        scope: dict[str, str] = {"": CPIM_DEFAULT_NS}
        for h in self.headers:
            prefix, _, local = h.name.rpartition(".")
            uri = scope.get(prefix)
            if uri is not None:
                yield uri, local, h
            if h.name == "NS":
                m = _NS_VALUE.fullmatch(h.value)
                if m is not None:
                    scope[m.group(1) or ""] = m.group(2)

    def ns_header_values(self, uri: str, name: str) -> list[str]:
        low = name.lower()
        return [h.value.strip(" \t") for u, local, h in self.namespaced()
                if u == uri and local.lower() == low]

    def ns_header(self, uri: str, name: str) -> str | None:
        """First value of header ``name`` in namespace ``uri``, whatever prefix was chosen."""
        values = self.ns_header_values(uri, name)
        return values[0] if values else None

    def mime_header(self, name: str) -> str | None:
        """First encapsulated MIME header ``name`` (case-insensitive), unfolded and stripped."""
        low = name.lower()
        for h in self.mime_headers:
            if h.name.lower() == low:
                value = h.value
                if "\r" in value:
                    value = _UNFOLD.sub("", value)
                return value.strip(" \t")
        return None

    # -- convenience ---------------------------------------------------------------------

    @property
    def from_(self) -> str:
        return self.header("From") or ""

    @property
    def to(self) -> str:
        """The first To header (a CPIM message may carry several)."""
        return self.header("To") or ""

    @property
    def datetime(self) -> str | None:
        return self.header("DateTime")

    @property
    def message_id(self) -> str | None:
        return self.ns_header(IMDN_NS, "Message-ID")

    @property
    def disposition_notification(self) -> frozenset[str]:
        """Requested IMDN dispositions, lower-cased; unknown tokens are kept."""
        tokens: set[str] = set()
        for value in self.ns_header_values(IMDN_NS, "Disposition-Notification"):
            tokens.update(t.strip(" \t").lower() for t in value.split(",") if t.strip(" \t"))
        return frozenset(tokens)

    @property
    def content_type(self) -> str | None:
        return self.mime_header("Content-Type")

    @property
    def content(self) -> bytes:
        """The content: ``Content-Length`` bytes when that header is valid, else the rest."""
        length = self.mime_header("Content-Length")
        if length is not None and is_digits(length) and len(length) <= 18:
            n = int(length)
            if n <= len(self.body):
                return self.body[:n]
        return self.body


def _split_line(line: str) -> tuple[str, str, str]:
    colon = line.find(":")
    if colon < 0:
        raise _bad(f"header line without ':': {line[:60]!r}")
    after = line[colon + 1 :]
    value = after.lstrip(" \t")
    return line[:colon], line[colon : len(line) - len(value)], value


def _read_block(data: bytes, pos: int, what: str) -> tuple[list[str], int]:
    """Lines from ``pos`` up to the next empty line; returns them and the offset after it."""
    if data.startswith(b"\r\n", pos):
        return [], pos + 2
    end = data.find(b"\r\n\r\n", pos)
    if end >= 0:
        # The usual case in one go: no bare CR or LF (each CR is in a CRLF and so is each
        # LF), valid UTF-8. Anything else: the line-by-line reader names the problem.
        raw = data[pos:end]
        breaks = raw.count(b"\r\n")
        if raw.count(b"\r") == breaks and raw.count(b"\n") == breaks:
            try:
                return raw.decode("utf-8").split("\r\n"), end + 4
            except UnicodeDecodeError:
                pass
    return _read_lines(data, pos, what)


def _read_lines(data: bytes, pos: int, what: str) -> tuple[list[str], int]:
    lines: list[str] = []
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            raise _bad(f"no blank line after the {what}")
        if eol == pos:
            return lines, eol + 2
        raw = data[pos:eol]
        if b"\r" in raw or b"\n" in raw:
            raise _bad(f"bare CR or LF in the {what}")
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise _bad(f"{what} are not UTF-8") from None
        pos = eol + 2


def parse_cpim(body: bytes) -> CpimMessage:
    """Parse a ``message/cpim`` body; malformed input raises RemoteProtocolError(400)."""
    return _parse_cpim(body, True)


def _parse_cpim(body: bytes, fast: bool) -> CpimMessage:
    """``fast=False``: only the line-by-line readers (a property test holds both equal)."""
    read = _read_block if fast else _read_lines
    msg_lines, pos = read(body, 0, "CPIM message headers")
    mime_lines, pos = read(body, pos, "encapsulated MIME headers")
    rest = body[pos:]

    headers: list[CpimHeader] = []
    declared: set[str] = {""}
    for line in msg_lines:
        m = _MSG_LINE.fullmatch(line) if fast else None
        if m is not None:  # the usual case, one regex: name ":" whitespace value
            name, prefix, sep, value = m.groups()
        else:
            if line[0] in " \t":
                raise _bad("folded CPIM header lines are not allowed")
            name, sep, value = _split_line(line)
            m = _MSG_NAME.fullmatch(name)
            if m is None:
                raise _bad(f"invalid header name {name[:40]!r}")
            prefix = m.group(1)
        if prefix is not None and prefix not in declared:
            raise _bad(f"header {name[:40]!r} uses an undeclared namespace prefix")
        if name == "NS":
            ns = _NS_VALUE.fullmatch(value)
            if ns is None:
                raise _bad(f"malformed NS header {value[:60]!r}")
            declared.add(ns.group(1) or "")
        headers.append(CpimHeader(name, value, sep))

    mime: list[CpimHeader] = []
    for line in mime_lines:
        if line[0] in " \t":
            if not mime:
                raise _bad("continuation line before the first MIME header")
            prev = mime[-1]
            mime[-1] = CpimHeader(prev.name, f"{prev.value}{CRLF}{line}", prev.sep)
            continue
        name, sep, value = _split_line(line)
        if _MIME_NAME.fullmatch(name) is None:
            raise _bad(f"invalid MIME header name {name[:40]!r}")
        mime.append(CpimHeader(name, value, sep))

    msg = CpimMessage(tuple(headers), tuple(mime), rest)
    for required in ("From", "To"):
        if msg.header(required) is None:
            raise _bad(f"missing {required} header")
    lengths = [h for h in mime if h.name.lower() == "content-length"]
    if len(lengths) > 1:
        raise _bad("more than one Content-Length")
    if lengths:
        text = msg.mime_header("Content-Length") or ""
        if not is_digits(text):
            raise _bad(f"Content-Length is not a number: {text[:20]!r}")
        if len(text) > 18 or int(text) > len(rest):
            raise _bad(f"Content-Length {text[:20]} is larger than the content ({len(rest)})")
    return msg


# -- builder -----------------------------------------------------------------------------------


def _check_value(what: str, value: str) -> str:
    if _LINE_BREAK.search(value):
        raise LocalProtocolError(f"CPIM {what} contains CR or LF: {value!r}")
    return value


def _angle(address: str) -> str:
    """``sip:a@b`` -> ``<sip:a@b>``; a value already holding ``<...>`` is kept as given."""
    return address if "<" in address else f"<{address}>"


def build_cpim(
    *,
    from_: str,
    to: str,
    content_type: str,
    content: bytes,
    message_id: str,
    datetime: str,
    disposition: Iterable[str] = (),
    extra_ns: Mapping[str, str] = _EMPTY,
    extra_headers: Iterable[tuple[str, str]] = (),
    mime_headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """Build a CPIM body in the protocols.md §4 shape.

    From, To, DateTime, ``NS: imdn <urn:ietf:params:imdn>``, ``imdn.Message-ID``,
    ``imdn.Disposition-Notification`` (when ``disposition`` is not empty), one NS per
    ``extra_ns`` (prefix -> URI), ``extra_headers``; then Content-Type, ``mime_headers``,
    Content-Length and the content. Addresses without ``<...>`` are put in angle brackets.
    """
    tokens = list(disposition)
    for token in tokens:
        if _TOKEN.fullmatch(token) is None:
            raise LocalProtocolError(f"invalid Disposition-Notification token {token!r}")
    declared = {"imdn"}
    lines = [
        CpimHeader("From", _check_value("From", _angle(from_))),
        CpimHeader("To", _check_value("To", _angle(to))),
        CpimHeader("DateTime", _check_value("DateTime", datetime)),
        CpimHeader("NS", f"imdn <{IMDN_NS}>"),
        CpimHeader("imdn.Message-ID", _check_value("Message-ID", message_id)),
    ]
    if tokens:
        lines.append(CpimHeader("imdn.Disposition-Notification", ", ".join(tokens)))
    for prefix, uri in extra_ns.items():
        if prefix in declared or _TOKEN.fullmatch(prefix) is None:
            raise LocalProtocolError(f"invalid or duplicate namespace prefix {prefix!r}")
        if re.fullmatch(r"[^<>\s]+", uri) is None:
            raise LocalProtocolError(f"invalid namespace URI {uri!r}")
        declared.add(prefix)
        lines.append(CpimHeader("NS", f"{prefix} <{uri}>"))
    for name, value in extra_headers:
        m = _MSG_NAME.fullmatch(name)
        if m is None or (m.group(1) is not None and m.group(1) not in declared):
            raise LocalProtocolError(f"invalid or undeclared CPIM header name {name!r}")
        lines.append(CpimHeader(name, _check_value(name, value)))
    mime = [CpimHeader("Content-Type", _check_value("Content-Type", content_type))]
    for name, value in mime_headers:
        if _MIME_NAME.fullmatch(name) is None:
            raise LocalProtocolError(f"invalid MIME header name {name!r}")
        mime.append(CpimHeader(name, _check_value(name, value)))
    mime.append(CpimHeader("Content-Length", str(len(content))))
    return CpimMessage(tuple(lines), tuple(mime), content).to_bytes()
