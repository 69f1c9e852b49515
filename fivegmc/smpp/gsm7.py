"""GSM 03.38 (3GPP TS 23.038 §6.2.1) default alphabet and its extension table.

SMPP carries data_coding 0 unpacked, one septet per octet (protocols.md §6); an extension
character is the escape 0x1B followed by its code and costs two septets.
"""

from __future__ import annotations

ESCAPE = 0x1B

# TS 23.038 §6.2.1: the basic character set, indexed by septet value (0x1B = escape).
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(BASIC) == 128

# TS 23.038 §6.2.1.1: the extension table (after an escape).
EXTENSION = {
    0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~",
    0x3E: "]", 0x40: "|", 0x65: "€",
}

_ENCODE: dict[str, bytes] = {ch: bytes([i]) for i, ch in enumerate(BASIC) if i != ESCAPE}
_ENCODE.update({ch: bytes([ESCAPE, code]) for code, ch in EXTENSION.items()})
_DECODE_EXT = {code: ch for code, ch in EXTENSION.items()}
_CHARSET = frozenset(_ENCODE)
# str.translate tables: the fast paths (C loops) for text without escapes.
_ENCODE_TABLE = {ord(ch): code.decode("latin-1") for ch, code in _ENCODE.items()}
_DECODE_TABLE = {i: ch for i, ch in enumerate(BASIC)}


class Gsm7Error(ValueError):
    """Text holds a character outside the GSM 7-bit alphabet."""


def is_gsm7(text: str) -> bool:
    return _CHARSET.issuperset(text)


def char_septets(ch: str) -> int:
    """Septets one character costs: 1 (basic), 2 (extension); KeyError if neither."""
    return len(_ENCODE[ch])


def septet_count(text: str) -> int:
    return len(encode(text))


def encode(text: str) -> bytes:
    """Text → unpacked septets (one per octet)."""
    if not _CHARSET.issuperset(text):
        bad = next(ch for ch in text if ch not in _CHARSET)
        raise Gsm7Error(f"{bad!r} is not in the GSM 7-bit alphabet")
    return text.translate(_ENCODE_TABLE).encode("latin-1")


def decode(data: bytes) -> str:
    """Unpacked septets → text. Octets ≥ 0x80 take their low 7 bits; an escape before an
    unknown code reads as the basic character (TS 23.038 §6.2.1.1 note), a trailing escape
    as a space."""
    if ESCAPE not in data and (not data or max(data) < 0x80):
        return data.decode("latin-1").translate(_DECODE_TABLE)
    out: list[str] = []
    escaped = False
    for octet in data:
        septet = octet & 0x7F
        if escaped:
            escaped = False
            out.append(_DECODE_EXT.get(septet, BASIC[septet] if septet != ESCAPE else " "))
        elif septet == ESCAPE:
            escaped = True
        else:
            out.append(BASIC[septet])
    if escaped:
        out.append(" ")
    return "".join(out)


def pack(septets: bytes) -> bytes:
    """Pack septets 8-into-7 octets (TS 23.038 §6.1.2.1), for UDH-less binary use."""
    out = bytearray()
    acc = 0
    bits = 0
    for septet in septets:
        acc |= (septet & 0x7F) << bits
        bits += 7
        while bits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            bits -= 8
    if bits:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack(data: bytes, count: int) -> bytes:
    """Unpack ``count`` septets from packed octets."""
    out = bytearray()
    acc = 0
    bits = 0
    for octet in data:
        acc |= octet << bits
        bits += 8
        while bits >= 7 and len(out) < count:
            out.append(acc & 0x7F)
            acc >>= 7
            bits -= 7
    return bytes(out)
