"""SMPP v3.4 wire layer (sans-IO): PDU codec, framer, session state machine, GSM 7-bit and
UCS-2 text, concatenation (UDH / SAR), segmentation and delivery receipts."""

from .constants import (
    CommandId,
    CommandStatus,
    DataCoding,
    MessageState,
    Tag,
)
from .errors import LocalProtocolError, RemoteProtocolError, SmppError
from .framer import Framer
from .pdu import (
    Bind,
    BindResp,
    CancelSm,
    Empty,
    MessageIdResp,
    Pdu,
    QuerySm,
    QuerySmResp,
    ShortMessage,
    decode_pdu,
    encode_pdu,
)
from .receipt import DeliveryReceipt, format_receipt, parse_receipt
from .segment import Reassembled, Reassembler, Segment, segment_text
from .session import Role, Session, SessionState

__all__ = [
    "Bind", "BindResp", "CancelSm", "CommandId", "CommandStatus", "DataCoding",
    "DeliveryReceipt", "Empty", "Framer", "LocalProtocolError", "MessageIdResp",
    "MessageState", "Pdu", "QuerySm", "QuerySmResp", "Reassembled", "Reassembler",
    "RemoteProtocolError", "Role", "Segment", "Session", "SessionState", "ShortMessage",
    "SmppError", "Tag", "decode_pdu", "encode_pdu", "format_receipt", "parse_receipt",
    "segment_text",
]
