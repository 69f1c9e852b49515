"""Text ↔ short_message octets by data_coding (SMPP v3.4 §5.2.19, protocols.md §6).

Every ``str`` encodes (lone surrogates pass through UCS-2 unchanged) and every octet string
decodes, so a hostile short_message never raises.
"""

from __future__ import annotations

from . import gsm7
from .constants import DataCoding


def choose_coding(text: str) -> DataCoding:
    """GSM 7-bit when every character is in the default alphabet or its extension, else
    UCS-2 (China: Chinese text is always UCS-2)."""
    return DataCoding.DEFAULT if gsm7.is_gsm7(text) else DataCoding.UCS2


def encode_text(text: str, data_coding: int) -> bytes:
    if data_coding == DataCoding.DEFAULT:
        return gsm7.encode(text)
    if data_coding == DataCoding.UCS2:
        return text.encode("utf-16-be", "surrogatepass")
    if data_coding == DataCoding.IA5:
        return text.encode("ascii")
    return text.encode("latin-1")


def decode_text(data: bytes, data_coding: int) -> str:
    if data_coding == DataCoding.DEFAULT:
        return gsm7.decode(data)
    if data_coding == DataCoding.UCS2:
        if len(data) % 2:
            data = data[:-1]
        return data.decode("utf-16-be", "surrogatepass")
    if data_coding == DataCoding.IA5:
        return data.decode("ascii", "replace")
    return data.decode("latin-1")  # Latin-1 and 8-bit binary: one char per octet


_NAMES = {DataCoding.DEFAULT: "gsm7", DataCoding.UCS2: "ucs2", DataCoding.LATIN1: "latin1",
          DataCoding.IA5: "ia5"}


def coding_name(data_coding: int) -> str:
    for coding, name in _NAMES.items():
        if coding == data_coding:
            return name
    return f"binary({data_coding})"
