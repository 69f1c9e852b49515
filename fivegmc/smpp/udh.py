"""User Data Header concatenation elements (3GPP TS 23.040 §9.2.3.24.1 and .8).

8-bit reference: ``05 00 03 ref total seq``; 16-bit reference: ``06 08 04 refHi refLo total seq``.
"""

from __future__ import annotations

from dataclasses import dataclass

IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08


@dataclass(frozen=True, slots=True)
class Concat:
    ref: int
    total: int
    seq: int
    ref_bits: int = 8  # 8 or 16 (or 0 for SAR TLVs)

    @property
    def valid(self) -> bool:
        return 1 <= self.seq <= self.total


def build_udh(concat: Concat) -> bytes:
    if concat.ref_bits == 16:
        return bytes([6, IEI_CONCAT_16, 4, concat.ref >> 8 & 0xFF, concat.ref & 0xFF,
                      concat.total, concat.seq])
    return bytes([5, IEI_CONCAT_8, 3, concat.ref & 0xFF, concat.total, concat.seq])


def split_udh(short_message: bytes) -> tuple[Concat | None, bytes]:
    """(concatenation element or None, payload after the UDH). A UDH whose length overruns
    the message is treated as absent (the whole message is payload)."""
    if not short_message:
        return None, short_message
    udhl = short_message[0]
    if 1 + udhl > len(short_message):
        return None, short_message
    header = short_message[1:1 + udhl]
    payload = short_message[1 + udhl:]
    pos = 0
    concat: Concat | None = None
    while pos + 2 <= len(header):
        iei, iedl = header[pos], header[pos + 1]
        data = header[pos + 2:pos + 2 + iedl]
        if len(data) < iedl:
            break
        if iei == IEI_CONCAT_8 and iedl == 3:
            concat = Concat(data[0], data[1], data[2], 8)
        elif iei == IEI_CONCAT_16 and iedl == 4:
            concat = Concat(data[0] << 8 | data[1], data[2], data[3], 16)
        pos += 2 + iedl
    return concat, payload
