"""SIP header field names and an ordered, case-insensitive header list.

Header names compare case-insensitively and have compact forms (RFC 3261 §7.3.3, §20; RFC 3841
for a/j/d; RFC 4474 y/n; RFC 3515 r; RFC 3892 b; RFC 3265 o/u; RFC 4028 x).
"""

from __future__ import annotations

from collections.abc import Iterator

COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
    "n": "Identity-Info",
}

_KNOWN = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "Contribution-ID", "Conversation-ID", "CSeq", "Date", "Error-Info", "Event",
    "Expires", "From", "In-Reply-To", "Max-Forwards", "MIME-Version", "Min-Expires",
    "Organization", "P-Access-Network-Info", "P-Asserted-Identity", "P-Associated-URI",
    "P-Charging-Vector", "P-Preferred-Identity", "P-Preferred-Service", "P-Asserted-Service",
    "Path", "Priority", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reject-Contact", "Reply-To",
    "Request-Disposition", "Require", "Retry-After", "Route", "Server", "Service-Route",
    "Session-Expires", "Subject", "Supported", "Timestamp", "To", "Unsupported", "User-Agent",
    "Via", "Warning", "WWW-Authenticate", "Identity", "Identity-Info", "Subscription-State",
)

#: lower-case name (long or compact) -> canonical spelling.
CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN}
CANONICAL.update(COMPACT_FORMS)
#: lower-case name (long or compact) -> (canonical spelling, its lower-case index key).
CANONICAL_KEYS: dict[str, tuple[str, str]] = {
    low: (name, name.lower()) for low, name in CANONICAL.items()
}


#: canonical spelling -> lower case, to skip str.lower() on the hot lookups.
_LOWER: dict[str, str] = {name: name.lower() for name in _KNOWN}


def canonical_name(name: str) -> str:
    """Return the canonical spelling of a header name; unknown names keep theirs."""
    return CANONICAL.get(name.lower(), name)


#: Headers whose value is a comma-separated list (RFC 3261 §7.3.1). Others (e.g.
#: WWW-Authenticate, Authorization, Date) contain commas inside one value and are never split.
LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Via", "Contact", "Route", "Record-Route", "Path", "Service-Route", "Allow", "Supported",
        "Require", "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding",
        "Accept-Language", "Accept-Contact", "Reject-Contact", "Allow-Events",
        "Content-Encoding", "Content-Language", "In-Reply-To", "Warning", "Error-Info",
        "Call-Info", "Alert-Info", "Request-Disposition", "P-Asserted-Identity",
        "P-Associated-URI", "Reason",
    )
)


def split_list(value: str) -> list[str]:
    """Split a list-valued header on commas that are outside quotes and angle brackets."""
    if "," not in value:
        v = value.strip()
        return [v] if v else []
    if '"' not in value and "<" not in value:
        # Nothing quoted, no <uri>: every comma separates (the usual Via/Require case).
        return [p for p in map(str.strip, value.split(",")) if p]
    return _split_list_scan(value)


def _split_list_scan(value: str) -> list[str]:
    """:func:`split_list` by a scan of every character (quotes, escapes, angle brackets)."""
    out: list[str] = []
    start = 0
    quoted = False
    angle = False
    escaped = False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            part = value[start:i].strip()
            if part:
                out.append(part)
            start = i + 1
    part = value[start:].strip()
    if part:
        out.append(part)
    return out


class Headers:
    """An ordered list of (name, value) header fields with case-insensitive lookup.

    Names are stored in canonical spelling (compact forms expanded). Lookups go through a
    lower-case name -> first position map (the parser hands it over, built in its one pass;
    otherwise it is built on first lookup and after edits); the positions of repeated names
    are collected only when a caller asks for every field of one of them.
    """

    __slots__ = ("_first", "_index", "_items")

    def __init__(
        self,
        items: list[tuple[str, str]] | None = None,
        first: dict[str, int] | None = None,
    ) -> None:
        self._items: list[tuple[str, str]] = items if items is not None else []
        # lower-case name -> position of its first field; ``first`` may come from the parser.
        self._first: dict[str, int] | None = first
        # lower-case name -> positions of all its fields (built on demand).
        self._index: dict[str, list[int]] | None = None

    def _firsts(self) -> dict[str, int]:
        first = self._first
        if first is None:
            first = {}
            for i, (name, _) in enumerate(self._items):
                first.setdefault(_LOWER.get(name) or name.lower(), i)
            self._first = first
        return first

    def _idx(self) -> dict[str, list[int]]:
        index = self._index
        if index is None:
            index = {}
            for i, (name, _) in enumerate(self._items):
                key = _LOWER.get(name) or name.lower()
                slot = index.get(key)
                if slot is None:
                    index[key] = [i]
                else:
                    slot.append(i)
            self._index = index
        return index

    def _edited(self) -> None:
        self._first = None
        self._index = None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical_name(name).lower() in self._firsts()

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def get(self, name: str) -> str | None:
        """The first field of that name, whole (not split), or None."""
        first = self._first
        if first is None:
            first = self._firsts()
        key = _LOWER.get(name)  # a canonical spelling: the usual case
        if key is None:
            key = canonical_name(name).lower()
        i = first.get(key)
        return None if i is None else self._items[i][1]

    def first_values(self, keys: tuple[str, ...]) -> list[str]:
        """The first field of each name (given in lower case), "" for an absent one."""
        first = self._first
        if first is None:
            first = self._firsts()
        items = self._items
        return [items[i][1] if (i := first.get(k)) is not None else "" for k in keys]

    def get_fields(self, name: str) -> list[str]:
        """Every field of that name, in order, each whole."""
        key = _LOWER.get(name) or canonical_name(name).lower()
        first = self._first
        if first is None:
            first = self._firsts()
        i = first.get(key)
        if i is None:
            return []
        items = self._items
        if len(first) == len(items):  # no name occurs twice
            return [items[i][1]]
        return [items[j][1] for j in self._idx()[key]]

    def get_all(self, name: str) -> list[str]:
        """All values of that name; list-valued headers are split on their commas."""
        fields = self.get_fields(name)
        if not fields or (_LOWER.get(name) or canonical_name(name).lower()) not in LIST_HEADERS:
            return fields
        out: list[str] = []
        for f in fields:
            out.extend(split_list(f))
        return out

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        name = canonical_name(name)
        if first:
            self._items.insert(0, (name, value))
        else:
            self._items.append((name, value))
        self._edited()

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name by one, kept at the first one's position."""
        name = canonical_name(name)
        slot = self._idx().get(name.lower())
        if not slot:
            self.add(name, value)
            return
        self._items[slot[0]] = (name, value)
        for i in reversed(slot[1:]):
            del self._items[i]
        self._edited()

    def remove(self, name: str) -> None:
        key = canonical_name(name).lower()
        self._items = [item for item in self._items if item[0].lower() != key]
        self._edited()

    def pop_first_value(self, name: str) -> str | None:
        """Remove and return the first value of a list header (e.g. the top Via)."""
        slot = self._idx().get(canonical_name(name).lower())
        if not slot:
            return None
        i = slot[0]
        fname, field = self._items[i]
        values = split_list(field)
        if len(values) <= 1:
            del self._items[i]
        else:
            self._items[i] = (fname, ", ".join(values[1:]))
        self._edited()
        return values[0] if values else ""

    def copy(self) -> Headers:
        return Headers(list(self._items))
