"""Byte stream → whole PDUs by command_length (SMPP v3.4 §3.2), fed in arbitrary slices."""

from __future__ import annotations

from .constants import HEADER_SIZE, CommandStatus
from .errors import RemoteProtocolError

#: Default largest accepted command_length (a 254-octet short_message plus TLVs fits easily;
#: message_payload may be up to 64 KB).
DEFAULT_MAX_PDU = 70_000


class Framer:
    """Accumulates octets and cuts them into PDUs.

    A command_length below 16 or above ``max_length`` makes the stream unframeable: ``next_pdu``
    raises a fatal RemoteProtocolError(ESME_RINVCMDLEN) and keeps raising it.
    """

    __slots__ = ("_broken", "_buf", "_pos", "max_length")

    def __init__(self, max_length: int = DEFAULT_MAX_PDU) -> None:
        self.max_length = max_length
        self._buf = bytearray()
        self._pos = 0
        self._broken: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        if self._broken is None:
            if self._pos:
                del self._buf[:self._pos]
                self._pos = 0
            self._buf += data

    def next_pdu(self) -> bytes | None:
        """The next whole PDU's octets, or None until more data arrives."""
        if self._broken is not None:
            raise self._broken
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < 4:
            return None
        length = int.from_bytes(buf[pos:pos + 4], "big")
        if length < HEADER_SIZE or length > self.max_length:
            sequence = int.from_bytes(buf[pos + 12:pos + 16], "big") \
                if len(buf) - pos >= 16 else 0
            self._broken = RemoteProtocolError(
                f"command_length {length} outside {HEADER_SIZE}..{self.max_length}",
                CommandStatus.ESME_RINVCMDLEN, sequence_number=sequence, fatal=True)
            self._buf.clear()
            self._pos = 0
            raise self._broken
        if len(buf) - pos < length:
            return None
        self._pos = pos + length
        return bytes(buf[pos:pos + length])
