"""Chatbot message content: building and reading the CPIM payloads of protocols.md §3.

Reusable by every dialect (pure, no I/O):

- :func:`text_payload`, :func:`botmessage_payload`, :func:`suggestions_payload`;
- :func:`multipart_mixed` (content + chip list, RFC 2046 §5.1.3 with a generated boundary) and
  :func:`parse_multipart_mixed`;
- :func:`ft_http_xml` / :func:`parse_ft_http_xml`: FT-over-HTTP file descriptors
  (``application/vnd.gsma.rcs-ft-http+xml``, root ``<file
  xmlns="urn:gsma:params:xml:ns:rcs:rcs:fthttp">``);
- :func:`push_location_xml` / :func:`parse_push_location`: geolocation push
  (``application/vnd.gsma.rcspushlocation+xml``);
- :func:`is_composing_xml` / :func:`parse_is_composing` (RFC 3994).

Untrusted XML is refused outright when it holds a DTD or an entity declaration (as
``fivegmc.cpim.imdn`` does); every problem with peer input raises :class:`ContentError`.

Geolocation push document [U] (protocols.md §3 gives the MIME type only): an RCC.07-style
PIDF-LO envelope kept deliberately small::

    <rcsenvelope xmlns="urn:gsma:params:xml:ns:rcs:rcs:geolocation" entity="{entity}">
      <rcspushlocation id="{id}" label="{label}">
        <rpid:time-offset rpid:until="{expiry}">{timeOffset}</rpid:time-offset>
        <gp:geopriv><gp:location-info>
          <gs:Circle srsName="urn:ogc:def:crs:EPSG::4326">
            <gml:pos>{latitude} {longitude}</gml:pos>
            <gs:radius uom="urn:ogc:def:uom:EPSG::9001">{radius}</gs:radius>
          </gs:Circle>            (a gml:Point when there is no radius)
        </gp:location-info>
        <gp:usage-rules><gp:retention-expiry>{expiry}</gp:retention-expiry></gp:usage-rules>
        </gp:geopriv>
        <timestamp>{timestamp}</timestamp>
      </rcspushlocation>
    </rcsenvelope>
"""

from __future__ import annotations

import calendar
import math
import re
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

import msgspec

from .model import (
    BOTMESSAGE,
    BOTSUGGESTION,
    FT_HTTP,
    IS_COMPOSING,
    MULTIPART_MIXED,
    PUSH_LOCATION,
    TEXT,
    Payload,
)

FTHTTP_NS = "urn:gsma:params:xml:ns:rcs:rcs:fthttp"
GEOLOCATION_NS = "urn:gsma:params:xml:ns:rcs:rcs:geolocation"
RPID_NS = "urn:ietf:params:xml:ns:pidf:rpid"
GEOPRIV_NS = "urn:ietf:params:xml:ns:pidf:geopriv10"
GML_NS = "http://www.opengis.net/gml"
PIDFLO_NS = "http://www.opengis.net/pidflo/1.0"
ISCOMPOSING_NS = "urn:ietf:params:xml:ns:im-iscomposing"
TEXT_UTF8 = f"{TEXT};charset=UTF-8"

_XML_DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# Characters XML 1.0 cannot carry (TAB/CR/LF are fine in text but not wanted in attributes).
_BAD_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_BOUNDARY_OK = re.compile(r"^[0-9A-Za-z'()+_,./:=? -]{1,70}$")


class ContentError(ValueError):
    """Peer content that cannot be read or built; the message says what is wrong."""


# -- time ----------------------------------------------------------------------------------------


def iso_utc(ts: float) -> str:
    """``2020-11-25T19:23:54Z`` (the form FT-over-HTTP ``until`` uses)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|z|[+-]\d{2}:?\d{2})?$")


def parse_iso(value: str) -> float:
    """An ISO-8601 / RFC 3339 date-time as unix time (no zone = UTC); ContentError if not."""
    m = _ISO.match(value.strip())
    if m is None:
        raise ContentError(f"not an ISO-8601 date-time: {value[:40]!r}")
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and s <= 60):
        raise ContentError(f"not a valid date-time: {value[:40]!r}")
    ts = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + float(m.group(7) or 0)
    zone = m.group(8)
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        ts -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return ts


# -- simple payloads ----------------------------------------------------------------------------


def text_payload(text: str) -> Payload:
    return Payload(TEXT_UTF8, text.encode("utf-8"))


def json_payload(content_type: str, obj: Any) -> Payload:
    return Payload(content_type, msgspec.json.encode(obj))


def botmessage_payload(card: Any) -> Payload:
    """A rich card / carousel ``{"message": {...}}`` as ``application/vnd.gsma.botmessage``."""
    return json_payload(BOTMESSAGE, card)


def suggestions_payload(chips: Any) -> Payload:
    """A chip list ``{"suggestions": [...]}`` as ``application/vnd.gsma.botsuggestion``."""
    return json_payload(BOTSUGGESTION, chips)


def media_type(content_type: str) -> str:
    """``text/plain;charset=UTF-8`` → ``text/plain`` (lower case, parameters dropped)."""
    return content_type.split(";", 1)[0].strip().lower()


def content_type_param(content_type: str, name: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, sep, value = part.partition("=")
        if sep and key.strip().lower() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


# -- multipart/mixed (RFC 2046 §5.1) ------------------------------------------------------------


def multipart_mixed(parts: Sequence[Payload], boundary: str | None = None) -> Payload:
    """One ``multipart/mixed`` payload holding ``parts`` in order (each with its
    Content-Type and Content-Length), e.g. content + botsuggestion JSON (protocols.md §3)."""
    if not parts:
        raise ContentError("multipart/mixed needs at least one part")
    b = boundary or f"next-{uuid.uuid4().hex}"
    if not _BOUNDARY_OK.match(b) or b.endswith(" "):
        raise ContentError(f"bad multipart boundary {b!r}")
    delim = b"--" + b.encode()
    for p in parts:
        if delim in p.body:
            raise ContentError("a part contains the multipart boundary")
    out = bytearray()
    for p in parts:
        out += delim + b"\r\n"
        out += f"Content-Type: {p.content_type}\r\n".encode()
        out += f"Content-Length: {len(p.body)}\r\n\r\n".encode()
        out += p.body + b"\r\n"
    out += delim + b"--\r\n"
    return Payload(f'{MULTIPART_MIXED}; boundary="{b}"', bytes(out))


def parse_multipart_mixed(payload: Payload) -> list[Payload]:
    """The parts of a ``multipart/*`` payload (headers other than Content-Type ignored;
    a part without Content-Type is ``text/plain`` per RFC 2046 §5.1)."""
    boundary = content_type_param(payload.content_type, "boundary")
    if not boundary:
        raise ContentError("multipart payload without a boundary parameter")
    delim = b"--" + boundary.encode("utf-8", "replace")
    body = payload.body
    start = body.find(delim)
    if start < 0:
        raise ContentError("multipart boundary not found in the body")
    parts: list[Payload] = []
    pos = start + len(delim)
    while True:
        if body[pos:pos + 2] == b"--":
            break
        eol = body.find(b"\n", pos)
        if eol < 0:
            raise ContentError("multipart body ends inside a delimiter line")
        nxt = body.find(b"\r\n" + delim, eol)
        crlf = 2
        if nxt < 0:
            nxt = body.find(b"\n" + delim, eol)
            crlf = 1
        if nxt < 0:
            raise ContentError("multipart body has no closing delimiter")
        parts.append(_part(body[eol + 1:nxt]))
        pos = nxt + crlf + len(delim)
        if len(parts) > 100:
            raise ContentError("multipart body has more than 100 parts")
    if not parts:
        raise ContentError("multipart body has no parts")
    return parts


def _part(raw: bytes) -> Payload:
    sep = raw.find(b"\r\n\r\n")
    skip = 4
    if sep < 0:
        sep, skip = raw.find(b"\n\n"), 2
    if raw.startswith((b"\r\n", b"\n")):
        head, body = b"", raw[2 if raw.startswith(b"\r\n") else 1:]
    elif sep < 0:
        raise ContentError("multipart part has no blank line after its headers")
    else:
        head, body = raw[:sep], raw[sep + skip:]
    content_type = TEXT
    for line in head.decode("utf-8", "replace").splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() == "content-type" and value.strip():
            content_type = value.strip()
    return Payload(content_type, body)


# -- safe XML --------------------------------------------------------------------------------------


def safe_xml(body: bytes, what: str) -> ET.Element:
    """Parse untrusted XML: UTF-8 only, no DTD or entity declarations (no expansion)."""
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise ContentError(f"{what}: body is not UTF-8") from None
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise ContentError(f"{what}: DTDs and entity declarations are not accepted")
    try:
        return ET.fromstring(text)
    except (ET.ParseError, ValueError) as exc:
        raise ContentError(f"{what}: malformed XML ({exc})") from None


def _esc(value: str, what: str) -> str:
    """``value`` as XML character data; ContentError for characters XML cannot carry."""
    if _BAD_XML_CHARS.search(value):
        raise ContentError(f"{what} has characters XML cannot carry")
    return xml_escape(value)


def _attr(value: str, what: str) -> str:
    """``value`` as a quoted XML attribute value."""
    if _BAD_XML_CHARS.search(value):
        raise ContentError(f"{what} has characters XML cannot carry")
    return quoteattr(value)


# -- FT over HTTP (protocols.md §3) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One ``<file-info>`` of an FT-over-HTTP descriptor."""

    url: str
    content_type: str
    size: int
    #: unix time the URL stops working (``<data until=…>``)
    until: float
    name: str = ""
    #: audio messages: playing length in seconds (``<playing-length>``, file-disposition render)
    playing_length: int | None = None


@dataclass(frozen=True, slots=True)
class FtHttp:
    file: FileInfo
    thumbnail: FileInfo | None = None


def ft_http_xml(file: FileInfo, thumbnail: FileInfo | None = None) -> Payload:
    """The FT-over-HTTP descriptor for ``file`` (and its thumbnail, listed first)."""
    out = [f'<file xmlns="{FTHTTP_NS}">']
    for kind, info in (("thumbnail", thumbnail), ("file", file)):
        if info is None:
            continue
        audio = kind == "file" and info.playing_length is not None
        disposition = ' file-disposition="render"' if audio else ""
        out.append(f'<file-info type="{kind}"{disposition}>')
        out.append(f"<file-size>{int(info.size)}</file-size>")
        if info.name and kind == "file":
            out.append(f"<file-name>{_esc(info.name, 'file name')}</file-name>")
        out.append(f"<content-type>{_esc(info.content_type, 'content type')}</content-type>")
        if audio:
            out.append(f"<playing-length>{int(info.playing_length or 0)}</playing-length>")
        out.append(f"<data url={_attr(info.url, 'file URL')} until=\"{iso_utc(info.until)}\"/>")
        out.append("</file-info>")
    out.append("</file>")
    return Payload(FT_HTTP, _XML_DECL + "".join(out).encode())


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, local: str) -> ET.Element | None:
    for c in el:
        if _local(c.tag) == local:
            return c
    return None


def _read_file_info(fi: ET.Element) -> FileInfo:
    size_el = _child(fi, "file-size")
    ct_el = _child(fi, "content-type")
    data = _child(fi, "data")
    if data is None or not data.get("url"):
        raise ContentError("FT-over-HTTP: <file-info> without <data url=…>")
    try:
        size = int((size_el.text or "").strip()) if size_el is not None else 0
    except ValueError:
        raise ContentError("FT-over-HTTP: <file-size> is not an integer") from None
    if size < 0:
        raise ContentError("FT-over-HTTP: negative <file-size>")
    until_attr = data.get("until")
    until = parse_iso(until_attr) if until_attr else 0.0
    name_el = _child(fi, "file-name")
    pl_el = _child(fi, "playing-length")
    playing: int | None = None
    if pl_el is not None:
        try:
            playing = int((pl_el.text or "").strip())
        except ValueError:
            raise ContentError("FT-over-HTTP: <playing-length> is not an integer") from None
    return FileInfo(
        url=data.get("url", ""),
        content_type=((ct_el.text or "").strip() if ct_el is not None else "")
        or "application/octet-stream",
        size=size, until=until,
        name=(name_el.text or "").strip() if name_el is not None else "",
        playing_length=playing,
    )


def parse_ft_http_xml(body: bytes) -> FtHttp:
    """Read an FT-over-HTTP descriptor (a UE's file sent to a chatbot)."""
    root = safe_xml(body, "FT-over-HTTP")
    if _local(root.tag) != "file":
        raise ContentError("FT-over-HTTP: root element is not <file>")
    file: FileInfo | None = None
    thumb: FileInfo | None = None
    for fi in root:
        if _local(fi.tag) != "file-info":
            continue
        info = _read_file_info(fi)
        if fi.get("type") == "thumbnail":
            thumb = info
        else:
            file = info
    if file is None:
        raise ContentError('FT-over-HTTP: no <file-info type="file">')
    return FtHttp(file, thumb)


# -- geolocation push ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GeoPush:
    latitude: float
    longitude: float
    label: str = ""
    #: metres; None: a point
    radius: float | None = None
    #: unix times; 0 = absent
    timestamp: float = 0.0
    expiry: float = 0.0
    #: minutes from UTC of the sender's local time
    time_offset: int | None = None


def push_location_xml(geo: GeoPush, entity: str, push_id: str | None = None) -> Payload:
    """The ``application/vnd.gsma.rcspushlocation+xml`` document for ``geo`` (module doc)."""
    if not (math.isfinite(geo.latitude) and math.isfinite(geo.longitude)
            and -90 <= geo.latitude <= 90 and -180 <= geo.longitude <= 180):
        raise ContentError("latitude/longitude out of range")
    label = f" label={_attr(geo.label, 'label')}" if geo.label else ""
    pid = _attr(push_id or uuid.uuid4().hex[:12], "id")
    out = [f'<rcsenvelope xmlns="{GEOLOCATION_NS}" xmlns:rpid="{RPID_NS}" '
           f'xmlns:gp="{GEOPRIV_NS}" xmlns:gml="{GML_NS}" xmlns:gs="{PIDFLO_NS}" '
           f"entity={_attr(entity, 'entity')}>",
           f"<rcspushlocation id={pid}{label}>"]
    if geo.time_offset is not None:
        until = f' rpid:until="{iso_utc(geo.expiry)}"' if geo.expiry else ""
        out.append(f"<rpid:time-offset{until}>{int(geo.time_offset)}</rpid:time-offset>")
    out.append("<gp:geopriv><gp:location-info>")
    pos = f"<gml:pos>{geo.latitude:.9g} {geo.longitude:.9g}</gml:pos>"
    srs = 'srsName="urn:ogc:def:crs:EPSG::4326"'
    if geo.radius is not None:
        if not math.isfinite(geo.radius) or geo.radius < 0:
            raise ContentError("radius must be a non-negative number")
        out.append(f'<gs:Circle {srs}>{pos}<gs:radius uom="urn:ogc:def:uom:EPSG::9001">'
                   f"{geo.radius:g}</gs:radius></gs:Circle>")
    else:
        out.append(f"<gml:Point {srs}>{pos}</gml:Point>")
    out.append("</gp:location-info>")
    if geo.expiry:
        out.append(f"<gp:usage-rules><gp:retention-expiry>{iso_utc(geo.expiry)}"
                   "</gp:retention-expiry></gp:usage-rules>")
    out.append("</gp:geopriv>")
    if geo.timestamp:
        out.append(f"<timestamp>{iso_utc(geo.timestamp)}</timestamp>")
    out.append("</rcspushlocation></rcsenvelope>")
    return Payload(PUSH_LOCATION, _XML_DECL + "".join(out).encode())


def _find(el: ET.Element, local: str) -> ET.Element | None:
    for c in el.iter():
        if _local(c.tag) == local:
            return c
    return None


def parse_push_location(body: bytes) -> GeoPush:
    """Read a geolocation push document (a UE sharing its location with a chatbot)."""
    root = safe_xml(body, "geolocation push")
    loc = _find(root, "rcspushlocation")
    pos = _find(root, "pos")
    if loc is None or pos is None:
        raise ContentError("geolocation push: no <rcspushlocation> with a <gml:pos>")
    try:
        lat_s, lon_s = (pos.text or "").split()
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise ContentError("geolocation push: <gml:pos> is not 'latitude longitude'") from None
    if not (math.isfinite(lat) and math.isfinite(lon)
            and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise ContentError("geolocation push: latitude/longitude out of range")
    radius: float | None = None
    rad = _find(root, "radius")
    if rad is not None:
        try:
            radius = float((rad.text or "").strip())
        except ValueError:
            raise ContentError("geolocation push: <radius> is not a number") from None
    ts_el, exp_el, off_el = _find(loc, "timestamp"), _find(root, "retention-expiry"), \
        _find(loc, "time-offset")
    offset: int | None = None
    if off_el is not None:
        try:
            offset = int((off_el.text or "").strip())
        except ValueError:
            raise ContentError("geolocation push: <time-offset> is not an integer") from None
    return GeoPush(
        latitude=lat, longitude=lon, label=loc.get("label", ""), radius=radius,
        timestamp=parse_iso(ts_el.text or "") if ts_el is not None else 0.0,
        expiry=parse_iso(exp_el.text or "") if exp_el is not None else 0.0,
        time_offset=offset,
    )


# -- isComposing (RFC 3994) ----------------------------------------------------------------------


def is_composing_xml(active: bool, refresh_s: int = 60) -> Payload:
    state = "active" if active else "idle"
    refresh = f"<refresh>{refresh_s}</refresh>" if active else ""
    doc = (f'<isComposing xmlns="{ISCOMPOSING_NS}"><state>{state}</state>'
           f"<contenttype>text/plain</contenttype>{refresh}</isComposing>")
    return Payload(IS_COMPOSING, _XML_DECL + doc.encode())


def parse_is_composing(body: bytes) -> bool:
    """True when the document's ``<state>`` is ``active``."""
    root = safe_xml(body, "isComposing")
    state = _find(root, "state")
    if state is None:
        raise ContentError("isComposing: no <state>")
    return (state.text or "").strip().lower() == "active"
