"""Who is a subscriber of this operator, and of what kind, by provisioned number range."""

from __future__ import annotations

import bisect
import enum
from collections.abc import Sequence

from ..config import NumberRange


class SubscriberKind(enum.Enum):
    RCS = "rcs"  # 5G Message (RCS UP2.4) capable
    SMS_ONLY = "sms_only"  # an IMS/SMS subscriber with no 5G Message client
    UNKNOWN = "unknown"  # not a subscriber of this operator


class SubscriberDirectory:
    """Classify E.164 numbers by the profile's number ranges (binary search per length)."""

    __slots__ = ("_by_len",)

    def __init__(self, ranges: Sequence[NumberRange]) -> None:
        by_len: dict[int, tuple[list[str], list[tuple[str, SubscriberKind]]]] = {}
        for r in sorted(ranges, key=lambda r: (len(r.first), r.first)):
            firsts, rest = by_len.setdefault(len(r.first), ([], []))
            firsts.append(r.first)
            rest.append((r.last, SubscriberKind(r.kind)))
        self._by_len = by_len

    def kind(self, number: str | None) -> SubscriberKind:
        if number is None:
            return SubscriberKind.UNKNOWN
        entry = self._by_len.get(len(number))
        if entry is None:
            return SubscriberKind.UNKNOWN
        firsts, rest = entry
        # Same-length digit strings order like the numbers they spell.
        i = bisect.bisect_right(firsts, number) - 1
        if i >= 0:
            last, kind = rest[i]
            if number <= last:
                return kind
        return SubscriberKind.UNKNOWN
