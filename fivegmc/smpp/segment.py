"""Long text → SMS segments, and segments → text (protocols.md §6 "Concatenation and encoding").

Sizes per segment (TS 23.040 §9.2.3.24.1 with a 6- or 7-octet UDH): GSM 7-bit 160 septets
alone / 153 per part (152 with a 16-bit reference), never splitting an escape from its
character; UCS-2 70 / 67 UTF-16 units (66 with a 16-bit reference), never splitting a surrogate
pair; 8-bit codings 140 / 134 octets (133). SAR TLVs (v3.4 §5.3.2.22–24) use the same sizes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from . import gsm7
from .constants import ESM_UDHI, DataCoding, Tag
from .pdu import ShortMessage, Tlvs, tlv_int
from .text import choose_coding, decode_text, encode_text
from .udh import Concat, build_udh, split_udh

ConcatMethod = Literal["udh8", "udh16", "sar"]


@dataclass(frozen=True, slots=True)
class Segment:
    short_message: bytes
    data_coding: int
    esm_class: int = 0
    tlvs: Tlvs = ()


def _limits(data_coding: int, method: ConcatMethod) -> tuple[int, int]:
    """(single-message capacity, per-part capacity) in the coding's units."""
    udh16 = method == "udh16"
    if data_coding == DataCoding.DEFAULT:
        return 160, 152 if udh16 else 153
    if data_coding == DataCoding.UCS2:
        return 70, 66 if udh16 else 67
    return 140, 133 if udh16 else 134


def _cost(ch: str, data_coding: int) -> int:
    if data_coding == DataCoding.DEFAULT:
        return gsm7.char_septets(ch)
    if data_coding == DataCoding.UCS2:
        return 2 if ord(ch) > 0xFFFF else 1
    return 1


def split_text(text: str, data_coding: int, method: ConcatMethod = "udh8") -> list[str]:
    """Split ``text`` into the parts that each fit one segment (one part if it fits whole)."""
    single, part = _limits(data_coding, method)
    if data_coding == DataCoding.DEFAULT:
        total = gsm7.septet_count(text)  # raises Gsm7Error outside the alphabet
    elif data_coding == DataCoding.UCS2:
        total = len(text.encode("utf-16-be", "surrogatepass")) // 2
    else:
        total = len(text)
    if total <= single:
        return [text]
    costs = [_cost(ch, data_coding) for ch in text]
    parts: list[str] = []
    start = used = 0
    for i, cost in enumerate(costs):
        if used + cost > part:
            parts.append(text[start:i])
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    return parts


def segment_text(text: str, ref: int, *, data_coding: int | None = None,
                 method: ConcatMethod = "udh8") -> list[Segment]:
    """Encode ``text`` as one or more segments; ``ref`` is the concatenation reference
    (8 or 16 bits by ``method``). Raises ValueError past 255 parts."""
    coding = choose_coding(text) if data_coding is None else data_coding
    parts = split_text(text, coding, method)
    if len(parts) == 1:
        return [Segment(encode_text(text, coding), coding)]
    if len(parts) > 255:
        raise ValueError(f"text needs {len(parts)} segments, more than 255")
    total = len(parts)
    out: list[Segment] = []
    for seq, part in enumerate(parts, start=1):
        payload = encode_text(part, coding)
        if method == "sar":
            tlvs: Tlvs = ((Tag.SAR_MSG_REF_NUM, (ref & 0xFFFF).to_bytes(2, "big")),
                          (Tag.SAR_TOTAL_SEGMENTS, bytes([total])),
                          (Tag.SAR_SEGMENT_SEQNUM, bytes([seq])))
            out.append(Segment(payload, coding, 0, tlvs))
        else:
            udh = build_udh(Concat(ref, total, seq, 16 if method == "udh16" else 8))
            out.append(Segment(udh + payload, coding, ESM_UDHI))
    return out


def concat_info(sm: ShortMessage) -> tuple[Concat | None, bytes]:
    """The concatenation info (UDH when esm_class has UDHI, else SAR TLVs) and the payload."""
    payload = sm.tlv(Tag.MESSAGE_PAYLOAD)
    data = sm.short_message if payload is None else payload
    if sm.esm_class & ESM_UDHI:
        return split_udh(data)
    ref = tlv_int(sm.tlvs, Tag.SAR_MSG_REF_NUM)
    total = tlv_int(sm.tlvs, Tag.SAR_TOTAL_SEGMENTS)
    seq = tlv_int(sm.tlvs, Tag.SAR_SEGMENT_SEQNUM)
    if ref is not None and total is not None and seq is not None:
        return Concat(ref, total, seq, 0), data
    return None, data


@dataclass(frozen=True, slots=True)
class Reassembled:
    text: str
    data_coding: int
    source_addr: str
    destination_addr: str
    parts: int
    #: Caller tags (e.g. SMSC message ids) of the parts, in sequence order.
    tags: tuple[str, ...]


@dataclass(slots=True)
class _Partial:
    first_seen: float
    total: int
    data_coding: int
    parts: dict[int, tuple[bytes, str]]


class Reassembler:
    """Collects segments by (source, destination, reference, total); bounded: at most
    ``max_partial`` messages in progress (the oldest is dropped), each for ``timeout_s``."""

    def __init__(self, max_partial: int = 1024, timeout_s: float = 300.0) -> None:
        self.max_partial = max_partial
        self.timeout_s = timeout_s
        self._partial: OrderedDict[tuple[str, str, int, int, int], _Partial] = OrderedDict()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._partial)

    def feed(self, sm: ShortMessage, now: float, tag: str = "") -> Reassembled | None:
        """Add one segment; returns the whole message once its last part is in."""
        self.expire(now)
        concat, payload = concat_info(sm)
        if concat is None or not concat.valid or concat.total == 1:
            return Reassembled(decode_text(payload, sm.data_coding), sm.data_coding,
                               sm.source_addr, sm.destination_addr, 1, (tag,))
        key = (sm.source_addr, sm.destination_addr, concat.ref_bits, concat.ref, concat.total)
        partial = self._partial.get(key)
        if partial is None:
            if len(self._partial) >= self.max_partial:
                self._partial.popitem(last=False)
                self.dropped += 1
            partial = _Partial(now, concat.total, sm.data_coding, {})
            self._partial[key] = partial
        partial.parts[concat.seq] = (payload, tag)  # a repeated part replaces the earlier one
        if len(partial.parts) < partial.total:
            return None
        del self._partial[key]
        ordered = [partial.parts[i] for i in range(1, partial.total + 1)]
        data = b"".join(p for p, _ in ordered)
        return Reassembled(decode_text(data, partial.data_coding), partial.data_coding,
                           sm.source_addr, sm.destination_addr, partial.total,
                           tuple(t for _, t in ordered))

    def expire(self, now: float) -> int:
        dropped = 0
        while self._partial:
            key, partial = next(iter(self._partial.items()))
            if now - partial.first_seen < self.timeout_s:
                break
            del self._partial[key]
            dropped += 1
        self.dropped += dropped
        return dropped
