"""IMDN codec (``message/imdn+xml``, RFC 5438 §7), sans-IO.

Only delivery and display notifications are handled (the 5G Message profile, protocols.md §4);
a processing notification is rejected as unsupported. Untrusted XML is decoded as UTF-8 and
refused outright if it holds a DTD or an entity declaration, so no entity expansion can happen;
every parse or shape problem is a :class:`RemoteProtocolError` with ``status_hint=400``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

from fivegmc.cpim.message import build_cpim
from fivegmc.sip.errors import LocalProtocolError, RemoteProtocolError

IMDN_XML_NS = "urn:ietf:params:xml:ns:imdn"
IMDN_CONTENT_TYPE = "message/imdn+xml"

ImdnKind = Literal["delivery", "display"]
ImdnStatus = Literal["delivered", "failed", "forbidden", "error", "displayed"]

#: kind -> the status elements RFC 5438 §7 allows inside it.
ALLOWED_STATUS: Mapping[str, frozenset[str]] = {
    "delivery": frozenset({"delivered", "failed", "forbidden", "error"}),
    "display": frozenset({"displayed", "forbidden", "error"}),
}
_ELEMENT_KIND = {"delivery-notification": "delivery", "display-notification": "display"}
_KIND_ELEMENT = {kind: element for element, kind in _ELEMENT_KIND.items()}
# Characters XML 1.0 cannot carry, plus TAB/CR/LF (a parser would normalise or we strip them).
_BAD_TEXT = re.compile("[\x00-\x1f\ud800-\udfff\ufffe\uffff]")


def _q(local: str) -> str:
    return f"{{{IMDN_XML_NS}}}{local}"


def _bad(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"IMDN: {reason}", 400)


@dataclass(frozen=True, slots=True)
class Imdn:
    """A delivery or display notification about ``message_id``."""

    message_id: str
    datetime: str
    kind: ImdnKind
    status: ImdnStatus
    recipient_uri: str | None = None
    original_recipient_uri: str | None = None


def _check_text(what: str, value: str) -> str:
    if not value or value != value.strip() or _BAD_TEXT.search(value):
        raise LocalProtocolError(f"IMDN {what} is empty or has characters XML cannot carry")
    return value


def build_imdn(
    *,
    message_id: str,
    datetime: str,
    kind: ImdnKind,
    status: ImdnStatus,
    original_recipient: str | None = None,
    recipient: str | None = None,
) -> bytes:
    """Serialize an IMDN document; ``datetime`` is the original message's DateTime (§7)."""
    allowed = ALLOWED_STATUS.get(kind)
    if allowed is None or status not in allowed:
        raise LocalProtocolError(
            f"IMDN status {status!r} is not allowed in a {kind!r} notification"
        )
    root = ET.Element(_q("imdn"))
    ET.SubElement(root, _q("message-id")).text = _check_text("message-id", message_id)
    ET.SubElement(root, _q("datetime")).text = _check_text("datetime", datetime)
    if recipient is not None:
        ET.SubElement(root, _q("recipient-uri")).text = _check_text("recipient-uri", recipient)
    if original_recipient is not None:
        ET.SubElement(root, _q("original-recipient-uri")).text = _check_text(
            "original-recipient-uri", original_recipient
        )
    notification = ET.SubElement(root, _q(_KIND_ELEMENT[kind]))
    ET.SubElement(ET.SubElement(notification, _q("status")), _q(status))
    text = ET.tostring(root, encoding="unicode", default_namespace=IMDN_XML_NS)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + text.encode()


def _only_text(found: dict[str, list[ET.Element]], local: str, required: bool) -> str | None:
    elements = found.get(local, [])
    if len(elements) > 1:
        raise _bad(f"more than one <{local}>")
    if not elements:
        if required:
            raise _bad(f"missing <{local}>")
        return None
    text = (elements[0].text or "").strip()
    if not text:
        raise _bad(f"empty <{local}>")
    return text


# The fast path below reads the plain shape every UE and build_imdn produce: an optional XML
# declaration, <imdn> with only the default-namespace declaration, known children in any order
# with ASCII text (no markup, entities or controls), whitespace between elements. Anything
# else (prefixes, comments, CDATA, other attributes or elements, duplicates, ...) goes to the
# ElementTree parser, which decides and names the problem; a property test holds both to the
# same result.
_FAST_DECL = re.compile(r'<\?xml version="1\.0"(?: encoding="(?i:utf-8)")?\?>')
_FAST_ROOT = re.compile(r'[ \t\r\n]*<imdn xmlns="urn:ietf:params:xml:ns:imdn"[ \t\r\n]*>')
_FAST_CHILD = re.compile(
    r"[ \t\r\n]*(?:<(message-id|datetime|recipient-uri|original-recipient-uri)>([ -%'-;=?-~]*)</\1>"
    r"|<(delivery-notification|display-notification)>[ \t\r\n]*<status>[ \t\r\n]*"
    r"<(delivered|failed|forbidden|error|displayed)[ \t\r\n]*/>[ \t\r\n]*</status>[ \t\r\n]*</\3>)")
_FAST_END = re.compile(r"[ \t\r\n]*</imdn>[ \t\r\n]*")


def _fast_imdn(text: str) -> Imdn | None:
    """The common IMDN document read with a few regexes; None: let ElementTree decide."""
    decl = _FAST_DECL.match(text)
    pos = decl.end() if decl is not None else 0
    root = _FAST_ROOT.match(text, pos)
    if root is None:
        return None
    pos = root.end()
    texts: dict[str, str] = {}
    notification: tuple[str, str] | None = None
    while (m := _FAST_CHILD.match(text, pos)) is not None:
        pos = m.end()
        local = m.group(1)
        if local is not None:
            value = m.group(2).strip()
            if local in texts or not value:
                return None
            texts[local] = value
        else:
            if notification is not None:
                return None
            notification = (_ELEMENT_KIND[m.group(3)], m.group(4))
    end = _FAST_END.fullmatch(text, pos)
    if end is None or notification is None:
        return None
    kind, status = notification
    message_id = texts.get("message-id")
    datetime = texts.get("datetime")
    if message_id is None or datetime is None or status not in ALLOWED_STATUS[kind]:
        return None
    return Imdn(message_id=message_id, datetime=datetime, kind=cast(ImdnKind, kind),
                status=cast(ImdnStatus, status), recipient_uri=texts.get("recipient-uri"),
                original_recipient_uri=texts.get("original-recipient-uri"))


def parse_imdn(xml: bytes) -> Imdn:
    """Parse a ``message/imdn+xml`` body; anything malformed raises RemoteProtocolError(400)."""
    try:
        text = xml.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise _bad("body is not UTF-8") from None
    fast = _fast_imdn(text)
    if fast is not None:
        return fast
    return _parse_imdn_tree(text)


def _parse_imdn_tree(text: str) -> Imdn:
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise _bad("DTDs and entity declarations are not accepted")
    try:
        # A str is parsed as UTF-8 whatever encoding the XML declaration claims.
        root = ET.fromstring(text)
    except (ET.ParseError, ValueError) as exc:
        raise _bad(f"malformed XML ({exc})") from None
    if root.tag != _q("imdn"):
        raise _bad(f"root element is {root.tag!r}, not <imdn> in {IMDN_XML_NS}")

    found: dict[str, list[ET.Element]] = {}
    for child in root:
        if isinstance(child.tag, str) and child.tag.startswith(f"{{{IMDN_XML_NS}}}"):
            found.setdefault(child.tag[len(IMDN_XML_NS) + 2 :], []).append(child)
    if "processing-notification" in found:
        raise _bad("processing notifications are not supported")
    notifications = [(local, el) for local, els in found.items() if local in _ELEMENT_KIND
                     for el in els]
    if len(notifications) != 1:
        raise _bad("need exactly one delivery-notification or display-notification")
    local, notification = notifications[0]
    kind = _ELEMENT_KIND[local]
    statuses = notification.findall(_q("status"))
    if len(statuses) != 1:
        raise _bad(f"<{local}> needs exactly one <status>")
    values = [el.tag[len(IMDN_XML_NS) + 2 :] for el in statuses[0]
              if isinstance(el.tag, str) and el.tag.startswith(f"{{{IMDN_XML_NS}}}")]
    if len(values) != 1:
        raise _bad("<status> needs exactly one status element")
    status = values[0]
    if status not in ALLOWED_STATUS[kind]:
        raise _bad(f"status <{status}/> is not allowed in <{local}>")

    message_id = _only_text(found, "message-id", required=True)
    datetime = _only_text(found, "datetime", required=True)
    return Imdn(
        message_id=message_id or "",
        datetime=datetime or "",
        kind=cast(ImdnKind, kind),
        status=cast(ImdnStatus, status),
        recipient_uri=_only_text(found, "recipient-uri", required=False),
        original_recipient_uri=_only_text(found, "original-recipient-uri", required=False),
    )


def build_imdn_report_cpim(
    *,
    from_: str,
    to: str,
    message_id: str,
    datetime: str,
    original_message_id: str,
    original_datetime: str,
    kind: ImdnKind,
    status: ImdnStatus,
    original_recipient: str | None = None,
) -> bytes:
    """The CPIM body of an IMDN report (RFC 5438 §7.1.1, protocols.md §4).

    ``message_id`` is the report's own, new ``imdn.Message-ID``; no disposition is requested;
    the content is the IMDN document about ``original_message_id``.
    """
    document = build_imdn(
        message_id=original_message_id,
        datetime=original_datetime,
        kind=kind,
        status=status,
        original_recipient=original_recipient,
    )
    return build_cpim(
        from_=from_,
        to=to,
        content_type=IMDN_CONTENT_TYPE,
        content=document,
        message_id=message_id,
        datetime=datetime,
        mime_headers=[("Content-Disposition", "notification")],
    )
