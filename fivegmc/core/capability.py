"""Capability discovery answers (RCC.07 semantics as restated in TS 33.127 Annex D.3).

A 200 with RCS feature tags means a 5G-message user; 200 without them an IMS subscriber with no
RCS client (SMS/voice only); 480 an RCS user who is not registered now; 404 not a subscriber.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sip.uri import format_params
from .registrar import Binding
from .subscribers import SubscriberKind


def is_rcs_tag(name: str, value: str | None) -> bool:
    """True for the ICSI/IARI/GSMA tags that make a UE an RCS (5G Message) client."""
    low = name.lower()
    if low.startswith("+g.gsma.rcs"):
        return True
    if low in ("+g.3gpp.icsi-ref", "+g.3gpp.iari-ref") and value is not None:
        v = value.lower()
        return "oma.cpm" in v or "iari.rcs" in v or "iari.rcse" in v
    return False


@dataclass(frozen=True, slots=True)
class CapabilityAnswer:
    status: int
    reason: str | None
    tags: tuple[tuple[str, str | None], ...] = ()


def capability_answer(kind: SubscriberKind, bindings: list[Binding]) -> CapabilityAnswer:
    if kind is SubscriberKind.UNKNOWN:
        return CapabilityAnswer(404, None)
    if kind is SubscriberKind.SMS_ONLY:
        return CapabilityAnswer(200, None)  # IMS subscriber, no RCS tags
    if not bindings:
        return CapabilityAnswer(480, None)
    seen: dict[str, tuple[str, str | None]] = {}
    for b in bindings:
        for name, value in b.feature_tags:
            if is_rcs_tag(name, value):
                seen.setdefault(f"{name.lower()}={value}", (name, value))
    return CapabilityAnswer(200, None, tuple(seen.values()))


def format_tags(tags: tuple[tuple[str, str | None], ...]) -> str:
    return format_params(tags)


class CapabilityCache:
    """Answers UEs gave to forwarded OPTIONS, per number, for a TTL (time passed in)."""

    __slots__ = ("_entries", "max_entries", "ttl")

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, CapabilityAnswer]] = {}

    def get(self, number: str, now: float) -> CapabilityAnswer | None:
        entry = self._entries.get(number)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[number]
            return None
        return entry[1]

    def put(self, number: str, answer: CapabilityAnswer, now: float) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # bounded; a cache miss only costs a forwarded OPTIONS
        self._entries[number] = (now + self.ttl, answer)

    def invalidate(self, number: str) -> None:
        self._entries.pop(number, None)

    def __len__(self) -> int:
        return len(self._entries)
