"""Recipient lists of a one-to-many pager MESSAGE (RFC 5365; resource-lists RFC 4826).

The body is ``multipart/mixed`` (RFC 2046 §5.1): one part with the message itself (usually
``message/cpim``) and one ``application/resource-lists+xml`` part (Content-Disposition:
recipient-list) naming the recipients. Sans-IO; untrusted XML is refused if it declares a DTD
or entities, and every problem is a RemoteProtocolError(400).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .errors import RemoteProtocolError

RESOURCE_LISTS = "application/resource-lists+xml"
_NS = "{urn:ietf:params:xml:ns:resource-lists}"
_CP = "{urn:ietf:params:xml:ns:copycontrol}"


@dataclass(frozen=True, slots=True)
class Recipient:
    uri: str
    copy_control: str = "to"  # RFC 5364: to / cc / bcc


@dataclass(frozen=True, slots=True)
class ListMessage:
    """The message part to distribute and who gets it."""

    content_type: str
    body: bytes
    recipients: tuple[Recipient, ...]


def _param(content_type: str, name: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return None


def _parts(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    delimiter = b"--" + boundary.encode()
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise RemoteProtocolError("multipart body without its closing delimiter")
    out: list[tuple[dict[str, str], bytes]] = []
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n"):
            raise RemoteProtocolError("multipart delimiter not followed by CRLF")
        head, sep, content = chunk[2:].partition(b"\r\n\r\n")
        if not sep:
            if head.startswith(b"\r\n"):  # a part with no headers at all
                head, content = b"", head[2:]
            else:
                raise RemoteProtocolError("multipart part without a blank line")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if not line:
                continue
            name, colon, value = line.partition(":")
            if not colon:
                raise RemoteProtocolError(f"bad multipart header {line[:40]!r}")
            headers[name.strip().lower()] = value.strip()
        if content.endswith(b"\r\n"):
            content = content[:-2]  # the CRLF belongs to the next delimiter (RFC 2046)
        out.append((headers, content))
    return out


def parse_resource_list(xml: bytes) -> tuple[Recipient, ...]:
    """The ``<entry uri=…>`` elements of a resource-lists document, in document order."""
    low = xml[:4096].lower()
    if b"<!doctype" in low or b"<!entity" in low:
        raise RemoteProtocolError("resource list must not declare a DTD or entities")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise RemoteProtocolError(f"resource list is not well-formed XML: {exc}") from None
    if root.tag != f"{_NS}resource-lists":
        raise RemoteProtocolError("resource list root is not <resource-lists>")
    out: list[Recipient] = []
    for entry in root.iter(f"{_NS}entry"):
        uri = entry.get("uri")
        if not uri:
            raise RemoteProtocolError("resource list <entry> without a uri")
        out.append(Recipient(uri.strip(), entry.get(f"{_CP}copyControl", "to")))
    if not out:
        raise RemoteProtocolError("resource list names no recipient")
    return tuple(out)


def parse_list_message(content_type: str, body: bytes) -> ListMessage:
    """Split a RFC 5365 MESSAGE body into the message part and its recipients."""
    if content_type.split(";", 1)[0].strip().lower() != "multipart/mixed":
        raise RemoteProtocolError("a recipient-list MESSAGE needs a multipart/mixed body")
    boundary = _param(content_type, "boundary")
    if not boundary:
        raise RemoteProtocolError("multipart/mixed without a boundary")
    recipients: tuple[Recipient, ...] | None = None
    message: tuple[str, bytes] | None = None
    for headers, content in _parts(body, boundary):
        ctype = headers.get("content-type", "text/plain")
        if ctype.split(";", 1)[0].strip().lower() == RESOURCE_LISTS:
            recipients = parse_resource_list(content)
        elif message is None:
            message = (ctype, content)
    if recipients is None:
        raise RemoteProtocolError("no application/resource-lists+xml part")
    if message is None:
        raise RemoteProtocolError("no message part next to the recipient list")
    return ListMessage(message[0], message[1], recipients)


def build_list_body(boundary: str, content_type: str, content: bytes,
                    recipients: list[str]) -> bytes:
    """A RFC 5365 body (for tests and load tools)."""
    entries = "".join(f'<entry uri="{uri}"/>' for uri in recipients)
    xml = ('<?xml version="1.0" encoding="UTF-8"?>'
           '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">'
           f"<list>{entries}</list></resource-lists>").encode()
    return b"".join((
        f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode(), content,
        f"\r\n--{boundary}\r\nContent-Type: {RESOURCE_LISTS}\r\n"
        "Content-Disposition: recipient-list\r\n\r\n".encode(), xml,
        f"\r\n--{boundary}--\r\n".encode(),
    ))
