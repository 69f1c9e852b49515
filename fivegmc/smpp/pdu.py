"""SMPP v3.4 PDUs: frozen dataclasses, ``encode_pdu`` and ``decode_pdu`` (sans-IO, pure).

Layouts follow SMPP v3.4 §4 (bind §4.1, unbind §4.2, generic_nack §4.3, submit_sm §4.4,
deliver_sm §4.6, query_sm §4.8, cancel_sm §4.9, enquire_link §4.11) and field sizes §5.2.
A response with a non-zero command_status carries no body (§4.4.2, §4.1.2); decoding accepts
either. Optional parameters (TLVs, §5.3) are kept in order as ``(tag, value)`` pairs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .constants import (
    HEADER_SIZE,
    INTERFACE_VERSION,
    CommandId,
    CommandStatus,
)
from .errors import LocalProtocolError, RemoteProtocolError

Tlvs: TypeAlias = tuple[tuple[int, bytes], ...]

_HEADER = struct.Struct(">IIII")
_TLV_HEAD = struct.Struct(">HH")
#: short_message is at most 254 octets (§5.2.22); longer text goes in message_payload.
MAX_SHORT_MESSAGE = 254


@dataclass(frozen=True, slots=True)
class Empty:
    """No body: enquire_link(_resp), unbind(_resp), generic_nack, cancel_sm_resp."""


@dataclass(frozen=True, slots=True)
class Bind:
    """bind_transmitter / bind_receiver / bind_transceiver body (§4.1.1)."""

    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True)
class BindResp:
    """bind_*_resp body (§4.1.2): the SMSC's system_id (+ sc_interface_version TLV)."""

    system_id: str = ""
    tlvs: Tlvs = ()


@dataclass(frozen=True, slots=True)
class ShortMessage:
    """submit_sm (§4.4.1) and deliver_sm (§4.6.1) body; the same field order."""

    source_addr: str = ""
    destination_addr: str = ""
    short_message: bytes = b""
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    tlvs: Tlvs = ()

    def tlv(self, tag: int) -> bytes | None:
        return tlv_get(self.tlvs, tag)


@dataclass(frozen=True, slots=True)
class MessageIdResp:
    """submit_sm_resp (§4.4.2) / deliver_sm_resp (§4.6.2, message_id unused: "")."""

    message_id: str = ""


@dataclass(frozen=True, slots=True)
class QuerySm:
    """query_sm body (§4.8.1)."""

    message_id: str = ""
    source_addr: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0


@dataclass(frozen=True, slots=True)
class QuerySmResp:
    """query_sm_resp body (§4.8.2)."""

    message_id: str = ""
    final_date: str = ""
    message_state: int = 0
    error_code: int = 0


@dataclass(frozen=True, slots=True)
class CancelSm:
    """cancel_sm body (§4.9.1)."""

    message_id: str = ""
    source_addr: str = ""
    destination_addr: str = ""
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0


Body: TypeAlias = Empty | Bind | BindResp | ShortMessage | MessageIdResp | QuerySm | \
    QuerySmResp | CancelSm


@dataclass(frozen=True, slots=True)
class Pdu:
    command_id: CommandId
    sequence_number: int
    body: Body = field(default_factory=Empty)
    command_status: int = CommandStatus.ESME_ROK

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & 0x80000000)


def tlv_get(tlvs: Tlvs, tag: int) -> bytes | None:
    for t, v in tlvs:
        if t == tag:
            return v
    return None


def tlv_int(tlvs: Tlvs, tag: int) -> int | None:
    value = tlv_get(tlvs, tag)
    return None if value is None or not value else int.from_bytes(value, "big")


# -------------------------------------------------------------------------------------------------
# Body schemas: (field name, kind, max size incl. NUL for C-strings, status when invalid)

_C = "c"  # C-Octet string, ASCII
_I1 = "1"  # 1-octet integer
_I4 = "4"  # 4-octet integer
_SM = "sm"  # sm_length + short_message
_TLV = "tlv"

_Schema = tuple[tuple[str, str, int, int], ...]
_S = CommandStatus
_BIND: _Schema = (
    ("system_id", _C, 16, _S.ESME_RINVSYSID), ("password", _C, 9, _S.ESME_RINVPASWD),
    ("system_type", _C, 13, _S.ESME_RINVSERTYP), ("interface_version", _I1, 0, 0),
    ("addr_ton", _I1, 0, 0), ("addr_npi", _I1, 0, 0),
    ("address_range", _C, 41, _S.ESME_RINVPARLEN),
)
_BIND_RESP: _Schema = (("system_id", _C, 16, _S.ESME_RINVSYSID), ("tlvs", _TLV, 0, 0))
_SHORT_MESSAGE: _Schema = (
    ("service_type", _C, 6, _S.ESME_RINVSERTYP), ("source_addr_ton", _I1, 0, 0),
    ("source_addr_npi", _I1, 0, 0), ("source_addr", _C, 21, _S.ESME_RINVSRCADR),
    ("dest_addr_ton", _I1, 0, 0), ("dest_addr_npi", _I1, 0, 0),
    ("destination_addr", _C, 21, _S.ESME_RINVDSTADR), ("esm_class", _I1, 0, 0),
    ("protocol_id", _I1, 0, 0), ("priority_flag", _I1, 0, 0),
    ("schedule_delivery_time", _C, 17, _S.ESME_RINVSCHED),
    ("validity_period", _C, 17, _S.ESME_RINVEXPIRY), ("registered_delivery", _I1, 0, 0),
    ("replace_if_present_flag", _I1, 0, 0), ("data_coding", _I1, 0, 0),
    ("sm_default_msg_id", _I1, 0, 0), ("short_message", _SM, 0, 0), ("tlvs", _TLV, 0, 0),
)
_MESSAGE_ID_RESP: _Schema = (("message_id", _C, 65, _S.ESME_RINVMSGID),)
_QUERY_SM: _Schema = (
    ("message_id", _C, 65, _S.ESME_RINVMSGID), ("source_addr_ton", _I1, 0, 0),
    ("source_addr_npi", _I1, 0, 0), ("source_addr", _C, 21, _S.ESME_RINVSRCADR),
)
_QUERY_SM_RESP: _Schema = (
    ("message_id", _C, 65, _S.ESME_RINVMSGID), ("final_date", _C, 17, _S.ESME_RINVPARLEN),
    ("message_state", _I1, 0, 0), ("error_code", _I1, 0, 0),
)
_CANCEL_SM: _Schema = (
    ("service_type", _C, 6, _S.ESME_RINVSERTYP), ("message_id", _C, 65, _S.ESME_RINVMSGID),
    ("source_addr_ton", _I1, 0, 0), ("source_addr_npi", _I1, 0, 0),
    ("source_addr", _C, 21, _S.ESME_RINVSRCADR), ("dest_addr_ton", _I1, 0, 0),
    ("dest_addr_npi", _I1, 0, 0), ("destination_addr", _C, 21, _S.ESME_RINVDSTADR),
)

_C_ = CommandId
_BODY_TYPES: dict[CommandId, tuple[type[Body], _Schema]] = {
    _C_.BIND_RECEIVER: (Bind, _BIND), _C_.BIND_TRANSMITTER: (Bind, _BIND),
    _C_.BIND_TRANSCEIVER: (Bind, _BIND),
    _C_.BIND_RECEIVER_RESP: (BindResp, _BIND_RESP),
    _C_.BIND_TRANSMITTER_RESP: (BindResp, _BIND_RESP),
    _C_.BIND_TRANSCEIVER_RESP: (BindResp, _BIND_RESP),
    _C_.SUBMIT_SM: (ShortMessage, _SHORT_MESSAGE), _C_.DELIVER_SM: (ShortMessage, _SHORT_MESSAGE),
    _C_.SUBMIT_SM_RESP: (MessageIdResp, _MESSAGE_ID_RESP),
    _C_.DELIVER_SM_RESP: (MessageIdResp, _MESSAGE_ID_RESP),
    _C_.QUERY_SM: (QuerySm, _QUERY_SM), _C_.QUERY_SM_RESP: (QuerySmResp, _QUERY_SM_RESP),
    _C_.CANCEL_SM: (CancelSm, _CANCEL_SM), _C_.CANCEL_SM_RESP: (Empty, ()),
    _C_.UNBIND: (Empty, ()), _C_.UNBIND_RESP: (Empty, ()),
    _C_.ENQUIRE_LINK: (Empty, ()), _C_.ENQUIRE_LINK_RESP: (Empty, ()),
    _C_.GENERIC_NACK: (Empty, ()),
}


def response_id(command_id: int) -> CommandId | None:
    """The ``_resp`` of a request, or None (generic_nack and responses have none)."""
    if command_id & 0x80000000:
        return None
    try:
        return CommandId(command_id | 0x80000000)
    except ValueError:
        return None


def default_response(pdu: Pdu, status: int = CommandStatus.ESME_ROK) -> Pdu:
    """The ``_resp`` to ``pdu`` with ``status`` and an empty body (or a generic_nack)."""
    resp = response_id(pdu.command_id)
    body: Body = Empty()
    if resp is None:
        resp = CommandId.GENERIC_NACK
    elif status == CommandStatus.ESME_ROK:
        body = _BODY_TYPES[resp][0]()
    return Pdu(resp, pdu.sequence_number, body, status)


# -------------------------------------------------------------------------------------------------
# Encoding


def encode_pdu(pdu: Pdu) -> bytes:
    """Serialize ``pdu``; raises LocalProtocolError if a field does not fit its SMPP size."""
    body_type, schema = _BODY_TYPES[pdu.command_id]
    if pdu.is_response and pdu.command_status != CommandStatus.ESME_ROK:
        body = b""  # an error response has no body (§4.4.2)
    else:
        if type(pdu.body) is not body_type:
            raise LocalProtocolError(
                f"{pdu.command_id.name} needs a {body_type.__name__} body, "
                f"got {type(pdu.body).__name__}")
        body = _encode_body(pdu.body, schema)
    if not 0 <= pdu.sequence_number <= 0xFFFFFFFF:
        raise LocalProtocolError(f"sequence_number {pdu.sequence_number} out of range")
    return _HEADER.pack(HEADER_SIZE + len(body), pdu.command_id, pdu.command_status,
                        pdu.sequence_number) + body


def _encode_body(body: Body, schema: _Schema) -> bytes:
    out = bytearray()
    for name, kind, size, _status in schema:
        value = getattr(body, name)
        if kind == _C:
            raw = value.encode("ascii", "strict") if value else b""
            if len(raw) + 1 > size or b"\0" in raw:
                raise LocalProtocolError(f"{name} {value!r} longer than {size - 1} octets")
            out += raw
            out.append(0)
        elif kind == _I1:
            if not 0 <= value <= 0xFF:
                raise LocalProtocolError(f"{name} {value} is not one octet")
            out.append(value)
        elif kind == _SM:
            if len(value) > MAX_SHORT_MESSAGE:
                raise LocalProtocolError(
                    f"short_message of {len(value)} octets > {MAX_SHORT_MESSAGE}; "
                    "use message_payload")
            out.append(len(value))
            out += value
        else:  # _TLV
            out += encode_tlvs(value)
    return bytes(out)


def encode_tlvs(tlvs: Tlvs) -> bytes:
    out = bytearray()
    for tag, value in tlvs:
        if not 0 <= tag <= 0xFFFF or len(value) > 0xFFFF:
            raise LocalProtocolError(f"TLV 0x{tag:04X} does not fit")
        out += _TLV_HEAD.pack(tag, len(value))
        out += value
    return bytes(out)


# -------------------------------------------------------------------------------------------------
# Decoding


def decode_header(data: bytes) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number) of a 16-octet header."""
    return _HEADER.unpack_from(data)


def decode_pdu(data: bytes) -> Pdu:
    """Parse one whole PDU (``data`` is exactly command_length octets).

    Raises RemoteProtocolError carrying the status to answer: RINVCMDLEN when the length is
    wrong, RINVCMDID for an unknown command_id, a field-specific status for a bad body.
    """
    if len(data) < HEADER_SIZE:
        raise RemoteProtocolError(f"PDU of {len(data)} octets is shorter than its header",
                                  CommandStatus.ESME_RINVCMDLEN, fatal=True)
    length, command_id, status, sequence = _HEADER.unpack_from(data)
    if length != len(data):
        raise RemoteProtocolError(
            f"command_length {length} but {len(data)} octets", CommandStatus.ESME_RINVCMDLEN,
            sequence_number=sequence, fatal=True)
    try:
        cid = CommandId(command_id)
    except ValueError:
        raise RemoteProtocolError(f"unknown command_id 0x{command_id:08X}",
                                  CommandStatus.ESME_RINVCMDID,
                                  sequence_number=sequence) from None
    body_type, schema = _BODY_TYPES[cid]
    if len(data) == HEADER_SIZE and (cid.is_response or not schema):
        return Pdu(cid, sequence, Empty() if status or not schema else body_type(), status)
    try:
        values = _decode_body(data, HEADER_SIZE, schema)
    except RemoteProtocolError as exc:
        exc.command_id = cid
        exc.sequence_number = sequence
        raise
    return Pdu(cid, sequence, body_type(**values), status)


def _decode_body(data: bytes, pos: int, schema: _Schema) -> dict[str, Any]:
    end = len(data)
    values: dict[str, Any] = {}
    for name, kind, size, status in schema:
        if kind == _C:
            nul = data.find(b"\0", pos, end)
            if nul < 0:
                raise RemoteProtocolError(f"{name}: no NUL before the end of the PDU",
                                          CommandStatus.ESME_RINVCMDLEN)
            if nul - pos + 1 > size:
                raise RemoteProtocolError(f"{name}: longer than {size - 1} octets", status)
            raw = data[pos:nul]
            if raw and max(raw) > 0x7E:
                raise RemoteProtocolError(f"{name}: not printable ASCII", status)
            values[name] = raw.decode("ascii")
            pos = nul + 1
        elif kind == _I1:
            if pos >= end:
                raise RemoteProtocolError(f"{name}: PDU ends early",
                                          CommandStatus.ESME_RINVCMDLEN)
            values[name] = data[pos]
            pos += 1
        elif kind == _SM:
            if pos >= end:
                raise RemoteProtocolError("sm_length: PDU ends early",
                                          CommandStatus.ESME_RINVCMDLEN)
            sm_length = data[pos]
            if sm_length > MAX_SHORT_MESSAGE or pos + 1 + sm_length > end:
                raise RemoteProtocolError(f"sm_length {sm_length} overruns the PDU",
                                          CommandStatus.ESME_RINVMSGLEN)
            values[name] = data[pos + 1:pos + 1 + sm_length]
            pos += 1 + sm_length
        else:  # _TLV
            values[name] = decode_tlvs(data, pos)
            pos = end
    if pos != end:
        raise RemoteProtocolError(f"{end - pos} stray octet(s) after the body",
                                  CommandStatus.ESME_RINVCMDLEN)
    return values


def decode_tlvs(data: bytes, pos: int = 0) -> Tlvs:
    end = len(data)
    out: list[tuple[int, bytes]] = []
    while pos < end:
        if pos + 4 > end:
            raise RemoteProtocolError("truncated TLV header",
                                      CommandStatus.ESME_RINVOPTPARSTREAM)
        tag, length = _TLV_HEAD.unpack_from(data, pos)
        pos += 4
        if pos + length > end:
            raise RemoteProtocolError(f"TLV 0x{tag:04X} length {length} overruns the PDU",
                                      CommandStatus.ESME_RINVPARLEN)
        out.append((tag, data[pos:pos + length]))
        pos += length
    return tuple(out)
