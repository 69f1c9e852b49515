"""SMPP v3.4 numbers: command ids, command_status values, TLV tags, data codings, message states.

Names are the spec's (SMPP v3.4 §5.1.2 command_id, §5.1.3 command_status, §5.3.2 TLV tags,
§5.2.19 data_coding, §5.2.28 message_state); protocols.md §6 lists the subset used here.
"""

from __future__ import annotations

from enum import IntEnum

#: A response's command_id is the request's with this bit set (§5.1.2.1).
RESP_BIT = 0x80000000
#: interface_version for v3.4 (§5.2.4).
INTERFACE_VERSION = 0x34
#: PDU header size: command_length, command_id, command_status, sequence_number (§3.2).
HEADER_SIZE = 16
#: sequence_number range (§5.1.4): 0x00000001 – 0x7FFFFFFF.
MAX_SEQUENCE = 0x7FFFFFFF


class CommandId(IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015

    @property
    def is_response(self) -> bool:
        return bool(self & RESP_BIT)


BIND_COMMANDS = frozenset({CommandId.BIND_RECEIVER, CommandId.BIND_TRANSMITTER,
                           CommandId.BIND_TRANSCEIVER})


class CommandStatus(IntEnum):
    """command_status (§5.1.3), the ESME_* error codes."""

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RINVPRTFLG = 0x06
    ESME_RINVREGDLVFLG = 0x07
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RCANCELFAIL = 0x11
    ESME_RREPLACEFAIL = 0x13
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVNUMDESTS = 0x33
    ESME_RINVESMCLASS = 0x43
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSRCTON = 0x48
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RQUERYFAIL = 0x67
    ESME_RX_T_APPN = 0x64
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_RINVPARLEN = 0xC2
    ESME_RINVOPTPARAMVAL = 0xC4
    ESME_RUNKNOWNERR = 0xFF


def status_name(status: int) -> str:
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"0x{status:08X}"


class Tag(IntEnum):
    """TLV tags (§5.3.2) used here; others are kept as raw bytes."""

    SC_INTERFACE_VERSION = 0x0210
    RECEIPTED_MESSAGE_ID = 0x001E
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


class DataCoding(IntEnum):
    """data_coding (§5.2.19)."""

    DEFAULT = 0x00  # SMSC default alphabet: GSM 03.38 7-bit, one septet per octet
    IA5 = 0x01
    BINARY = 0x02
    LATIN1 = 0x03
    BINARY8 = 0x04
    UCS2 = 0x08


class MessageState(IntEnum):
    """message_state (§5.2.28)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


#: Delivery-receipt ``stat:`` words (SMPP v3.4 Appendix B) and their message_state.
RECEIPT_STAT: dict[str, MessageState] = {
    "ENROUTE": MessageState.ENROUTE,
    "DELIVRD": MessageState.DELIVERED,
    "EXPIRED": MessageState.EXPIRED,
    "DELETED": MessageState.DELETED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "ACCEPTD": MessageState.ACCEPTED,
    "UNKNOWN": MessageState.UNKNOWN,
    "REJECTD": MessageState.REJECTED,
}
STAT_FOR_STATE: dict[MessageState, str] = {v: k for k, v in RECEIPT_STAT.items()}

# esm_class bits (§5.2.12)
ESM_UDHI = 0x40
ESM_DELIVERY_RECEIPT = 0x04
ESM_TYPE_MASK = 0x3C
