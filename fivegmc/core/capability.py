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
