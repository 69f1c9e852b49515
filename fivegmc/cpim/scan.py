"""A quick CPIM check for the relay hot path: the same accept/reject decision as
:func:`fivegmc.cpim.parse_cpim` (a property test holds them together), without building the
header objects — only what the 5GMC reads while relaying: ``imdn.Message-ID`` and the
encapsulated Content-Type (is it an IMDN report?).

RFC 3862 §3: message headers, a blank line, encapsulated MIME headers, a blank line, content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fivegmc.sip.errors import RemoteProtocolError

from .message import CPIM_DEFAULT_NS, IMDN_NS, parse_cpim

_NAME = rb"[A-Za-z0-9!#$%&'*+\-^_`|~]+"
#: RFC 3862 §3.1 name-char (no "." and no ":"), for ``bytes.translate`` checks: a name is
#: valid when deleting these leaves nothing.
_NAME_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-^_`|~"
#: RFC 822 field-name characters (the encapsulated MIME headers).
_MIME_CHARS = bytes(c for c in range(33, 127) if c != 58)
_NS_VALUE = re.compile(rb"(?:(" + _NAME + rb")[ \t]+)?<([^<>\s\x1c-\x1f]+)>[ \t]*")
_IMDN = IMDN_NS.encode()
_DEFAULT_NS = CPIM_DEFAULT_NS.encode()


def _is_name(name: bytes) -> bool:
    """A non-empty run of RFC 3862 name-char. (Callers try ``replace(b"-", b"").isalnum()``
    first: far cheaper than ``translate``, which builds a table per call.)"""
    return bool(name and not name.translate(None, _NAME_BYTES))


@dataclass(slots=True)  # not frozen: construction is cheaper (hot path)
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
    if not head.isascii() or not mime.isascii():
        return _slow(body)  # non-ASCII (UTF-8 checks): the full parser decides
    lines = head.split(b"\r\n")
    breaks = len(lines) - 1
    if head.count(b"\n") != breaks or head.count(b"\r") != breaks:
        return _slow(body)  # a bare CR or LF: the full parser names the problem
    # RFC 3862 §3.1: each line is [prefix "."] name ":" value; §5.1: an NS header is in effect
    # for the lines after it. Anything unusual goes to the full parser, which names it.
    scope: dict[bytes, bytes] = {b"": _DEFAULT_NS}
    seen_from = seen_to = False
    message_id: bytes | None = None
    for line in lines:
        field, sep, value = line.partition(b":")
        if not sep:
            return _slow(body)
        if field.replace(b"-", b"").isalnum():
            first = field  # an unprefixed name of letters, digits and hyphens: the usual case
        else:
            first, dot, name = field.partition(b".")
            if not (first.replace(b"-", b"").isalnum() or _is_name(first)) or (
                    dot and not (name.replace(b"-", b"").isalnum() or _is_name(name))):
                return _slow(body)
            if dot:
                uri = scope.get(first)
                if uri is None:
                    return _slow(body)  # undeclared prefix
                if message_id is None and uri == _IMDN and name.lower() == b"message-id":
                    message_id = value.strip(b" \t")
                continue
        if message_id is None and scope[b""] == _IMDN and first.lower() == b"message-id":
            message_id = value.strip(b" \t")
        if first == b"From":
            seen_from = True
        elif first == b"To":
            seen_to = True
        elif first == b"NS":
            ns = _NS_VALUE.fullmatch(value.lstrip(b" \t"))
            if ns is None:
                return _slow(body)
            scope[ns.group(1) or b""] = ns.group(2)
        else:
            low = first.lower()
            if low == b"from":
                seen_from = True
            elif low == b"to":
                seen_to = True
    if not (seen_from and seen_to):
        return _slow(body)
    ctype: bytes | None = None
    length: bytes | None = None
    if mime:
        mlines = mime.split(b"\r\n")
        breaks = len(mlines) - 1
        if mime.count(b"\n") != breaks or mime.count(b"\r") != breaks:
            return _slow(body)
        for line in mlines:
            if not line or line[0] in b" \t":
                return _slow(body)  # folding and oddities: the full parser decides
            mname, sep, mvalue = line.partition(b":")
            if not mname or not sep or not (
                    mname.replace(b"-", b"").isalnum()
                    or not mname.translate(None, _MIME_CHARS)):
                return _slow(body)
            lname = mname.lower()
            if lname == b"content-type":
                if ctype is None:
                    ctype = mvalue.lstrip(b" \t")
            elif lname == b"content-length":
                if length is not None:
                    return _slow(body)
                length = mvalue.lstrip(b" \t")
    elif end2 != end1 + 2:
        return _slow(body)
    if length is not None and not (
        length.isdigit() and len(length) <= 18 and int(length) <= len(body) - end2 - 4
    ):
        return _slow(body)
    return CpimSummary(
        message_id.decode() if message_id is not None else None,
        (ctype.decode().split(";", 1)[0].strip().lower() or None) if ctype is not None else None,
    )


__all__ = ["CpimSummary", "RemoteProtocolError", "scan_cpim"]
