"""A quick CPIM check for the relay hot path: the same accept/reject decision as
:func:`fivegmc.cpim.parse_cpim` (a property test holds them together), without building the
header objects — only what the 5GMC reads while relaying: ``imdn.Message-ID`` and the
encapsulated Content-Type (is it an IMDN report?).

RFC 3862 §3: message headers, a blank line, encapsulated MIME headers, a blank line, content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fivegmc.sip.errors import RemoteProtocolError, is_digits

from .message import CPIM_DEFAULT_NS, IMDN_NS, parse_cpim

_NAME = rb"[A-Za-z0-9!#$%&'*+\-^_`|~]+"
#: RFC 822 field-name characters (the encapsulated MIME headers).
_MIME_CHARS = bytes(c for c in range(33, 127) if c != 58)
_NS_VALUE = re.compile(rb"(?:(" + _NAME + rb")[ \t]+)?<([^<>\s\x1c-\x1f]+)>[ \t]*")
_IMDN = IMDN_NS.encode()
_DEFAULT_NS = CPIM_DEFAULT_NS.encode()
#: The whole message-header block checked in one C-level match: lines of
#: ``[prefix "."] name ":" value`` (RFC 3862 §3.1), no bare CR or LF.
_HEAD = re.compile(rb"(?:" + _NAME + rb"(?:\." + _NAME + rb")?:[^\r\n]*\r\n)*"
                   + _NAME + rb"(?:\." + _NAME + rb")?:[^\r\n]*")


@dataclass(frozen=True, slots=True)
class CpimSummary:
    message_id: str | None
    #: encapsulated Content-Type, lower-cased, without parameters
    content_type: str | None


def _slow(body: bytes) -> CpimSummary:
    """Anything unusual: the full parser decides (and names the problem)."""
    msg = parse_cpim(body)
    ctype = msg.content_type
    return CpimSummary(msg.message_id,
                       (ctype.split(";", 1)[0].strip().lower() or None) if ctype else None)


def scan_cpim(body: bytes) -> CpimSummary:
    """Check a ``message/cpim`` body; malformed input raises RemoteProtocolError(400)."""
    end1 = body.find(b"\r\n\r\n")
    if end1 <= 0:
        return _slow(body)
    end2 = body.find(b"\r\n\r\n", end1 + 2)
    if end2 < 0:
        return _slow(body)
    head = body[:end1]
    mime = body[end1 + 4 : end2] if end2 > end1 + 2 else b""
    if b"\n\n" in head or b"\r\r" in head or not head.isascii() or not mime.isascii():
        return _slow(body)  # bare CR/LF, non-ASCII (UTF-8 checks): the full parser decides
    # RFC 3862 §5.1: an NS header is in effect for the lines after it.
    scope: dict[bytes, bytes] = {b"": _DEFAULT_NS}
    seen_from = seen_to = False
    message_id: bytes | None = None
    if _HEAD.fullmatch(head) is None:
        return _slow(body)  # names, colons, bare CR/LF: the full parser names the problem
    for line in head.split(b"\r\n"):
        colon = line.find(b":")
        first, dot, name = line[:colon].partition(b".")
        prefix: bytes | None = first
        if not dot:
            prefix, name = None, first
        value = line[colon + 1:].lstrip(b" \t")
        uri = scope.get(prefix or b"")
        if uri is None:
            return _slow(body)  # undeclared prefix
        if message_id is None and uri == _IMDN and name.lower() == b"message-id":
            message_id = value.strip(b" \t")
        if prefix is None:
            if name == b"NS":
                ns = _NS_VALUE.fullmatch(value)
                if ns is None:
                    return _slow(body)
                scope[ns.group(1) or b""] = ns.group(2)
            elif name.lower() == b"from":
                seen_from = True
            elif name.lower() == b"to":
                seen_to = True
    if not (seen_from and seen_to):
        return _slow(body)
    ctype: bytes | None = None
    length: bytes | None = None
    if mime:
        for line in mime.split(b"\r\n"):
            if not line or line[0] in b" \t" or b"\r" in line or b"\n" in line:
                return _slow(body)  # folding and oddities: the full parser decides
            colon = line.find(b":")
            if colon <= 0 or line[:colon].translate(None, _MIME_CHARS):
                return _slow(body)
            lname = line[:colon].lower()
            mvalue = line[colon + 1:].lstrip(b" \t")
            if lname == b"content-type":
                ctype = ctype if ctype is not None else mvalue
            elif lname == b"content-length":
                if length is not None:
                    return _slow(body)
                length = mvalue
    if length is not None:
        text = length.decode()
        if not is_digits(text) or len(text) > 18 or int(text) > len(body) - end2 - 4:
            return _slow(body)
    if mime == b"" and end2 != end1 + 2:
        return _slow(body)
    return CpimSummary(
        message_id.decode() if message_id is not None else None,
        (ctype.decode().split(";", 1)[0].strip().lower() or None) if ctype is not None else None,
    )


__all__ = ["CpimSummary", "RemoteProtocolError", "scan_cpim"]
