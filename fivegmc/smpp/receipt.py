"""Delivery receipts in deliver_sm (SMPP v3.4 Appendix B, protocols.md §6):

``id:{id} sub:{nnn} dlvrd:{nnn} submit date:{YYMMDDhhmm} done date:{YYMMDDhhmm} stat:{STAT}
err:{nnn} text:{first 20 chars}``, with receipted_message_id and message_state TLVs beside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from .constants import RECEIPT_STAT, MessageState, Tag
from .pdu import ShortMessage, tlv_get, tlv_int
from .text import decode_text

_RECEIPT = re.compile(
    r"id:(?P<id>\S*)\s+sub:(?P<sub>\S*)\s+dlvrd:(?P<dlvrd>\S*)\s+"
    r"submit date:(?P<submit>\S*)\s+done date:(?P<done>\S*)\s+stat:(?P<stat>\S*)"
    r"(?:\s+err:(?P<err>\S*))?(?:\s+text:(?P<text>.*))?",
    re.IGNORECASE | re.DOTALL)


class ReceiptError(ValueError):
    """The text is not a delivery receipt."""


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    message_id: str
    stat: str
    err: str = "000"
    sub: str = "001"
    dlvrd: str = "001"
    submit_date: str = ""
    done_date: str = ""
    text: str = ""
    #: message_state from the TLV, or derived from ``stat``.
    state: MessageState = MessageState.UNKNOWN
    #: Source and destination of the receipt PDU (swapped relative to the submit).
    source_addr: str = ""
    destination_addr: str = ""


def receipt_date(when: datetime) -> str:
    return when.strftime("%y%m%d%H%M")


def format_receipt(r: DeliveryReceipt) -> str:
    return (f"id:{r.message_id} sub:{r.sub} dlvrd:{r.dlvrd} submit date:{r.submit_date} "
            f"done date:{r.done_date} stat:{r.stat} err:{r.err} text:{r.text[:20]}")


def parse_receipt(text: str) -> DeliveryReceipt:
    match = _RECEIPT.search(text)
    if match is None:
        raise ReceiptError(f"not a delivery receipt: {text[:60]!r}")
    stat = match["stat"].upper()
    return DeliveryReceipt(
        message_id=match["id"], stat=stat, err=match["err"] or "000", sub=match["sub"],
        dlvrd=match["dlvrd"], submit_date=match["submit"], done_date=match["done"],
        text=match["text"] or "", state=RECEIPT_STAT.get(stat, MessageState.UNKNOWN))


def receipt_from_sm(sm: ShortMessage) -> DeliveryReceipt:
    """A receipt from a deliver_sm body: the TLVs win over the text (v3.4 §5.3.2.12)."""
    payload = sm.tlv(Tag.MESSAGE_PAYLOAD)
    body = decode_text(payload if payload is not None else sm.short_message, sm.data_coding)
    try:
        r = parse_receipt(body)
    except ReceiptError:
        r = DeliveryReceipt(message_id="", stat="UNKNOWN", text=body)
    raw_id = tlv_get(sm.tlvs, Tag.RECEIPTED_MESSAGE_ID)
    message_id = raw_id.rstrip(b"\0").decode("ascii", "replace") if raw_id else r.message_id
    state_value = tlv_int(sm.tlvs, Tag.MESSAGE_STATE)
    state = r.state
    if state_value is not None and state_value in MessageState._value2member_map_:
        state = MessageState(state_value)
    if not message_id:
        raise ReceiptError("deliver_sm receipt without a message id")
    return DeliveryReceipt(message_id, r.stat, r.err, r.sub, r.dlvrd, r.submit_date,
                           r.done_date, r.text, state, sm.source_addr, sm.destination_addr)
