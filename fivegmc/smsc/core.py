"""The SMSC stub's logic, sync and pure (time passed in as Unix seconds):

- accounts and bind checks;
- MT: a submit_sm gets a unique message_id, a scheduled outcome (weights, delay range) and,
  when registered_delivery asks (SMPP v3.4 §5.2.17: bit 0 → any final receipt, bit 1 → on
  failure only), a delivery receipt deliver_sm (esm_class 0x04, receipted_message_id and
  message_state TLVs, Appendix B text, source and destination swapped);
- query_sm / cancel_sm on those messages (§4.8, §4.9);
- MO: text → segmented deliver_sm bodies in the right encoding;
- the handset's inbox (segments reassembled, decoded), bounded;
- per-system_id queues of deliver_sm waiting for a receiver bind, bounded.

The asyncio node (``server.py``) moves queued deliver_sm to binds and arms one timer for
``next_deadline()``.
"""

from __future__ import annotations

import heapq
import random
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..config import SmppAccount, SmscConfig
from ..smpp.constants import (
    ESM_DELIVERY_RECEIPT,
    RECEIPT_STAT,
    CommandStatus,
    DataCoding,
    MessageState,
    Tag,
)
from ..smpp.pdu import QuerySmResp, ShortMessage
from ..smpp.receipt import DeliveryReceipt, format_receipt, receipt_date
from ..smpp.segment import Reassembler, segment_text
from ..smpp.text import coding_name, encode_text

#: Queue key for MO messages that any receiver bind may take.
ANY_SYSTEM = "*"
#: Receipt ``err:`` per outcome (network error codes are SMSC-specific; these are ours).
_ERR = {"DELIVRD": "000", "ACCEPTD": "000", "UNDELIV": "001", "EXPIRED": "002",
        "REJECTD": "003", "DELETED": "004", "UNKNOWN": "005"}


@dataclass(slots=True)
class MtMessage:
    """One submitted segment and its fate."""

    message_id: str
    system_id: str
    source_addr: str
    destination_addr: str
    submitted_at: float
    registered_delivery: int
    preview: str
    outcome: str  # the stat it will end with
    due: float
    state: MessageState = MessageState.ENROUTE
    done_at: float | None = None

    @property
    def final(self) -> bool:
        return self.state is not MessageState.ENROUTE


@dataclass(slots=True)
class InboxEntry:
    """An MT message as the handset sees it."""

    source_addr: str
    destination_addr: str
    text: str
    encoding: str
    parts: int
    message_ids: tuple[str, ...]
    submitted_at: float
    system_id: str


def absolute_time(when: float) -> str:
    """SMPP absolute time ``YYMMDDhhmmsstnnp`` in UTC (v3.4 §7.1.1)."""
    dt = datetime.fromtimestamp(when, UTC)
    return dt.strftime("%y%m%d%H%M%S") + f"{dt.microsecond // 100000}00+"


class SmscCore:
    def __init__(self, config: SmscConfig, rng: random.Random | None = None,
                 id_prefix: str | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()
        self.accounts: dict[str, SmppAccount] = {a.system_id: a for a in config.accounts}
        self._prefix = id_prefix if id_prefix is not None else f"{self.rng.getrandbits(24):06x}"
        self._counter = 0
        self._stats = [s for s, w in config.outcomes.items() if w > 0]
        self._weights = [config.outcomes[s] for s in self._stats]
        self.messages: OrderedDict[str, MtMessage] = OrderedDict()
        self.max_messages = max(10 * config.inbox_size, 10_000)
        self._due: list[tuple[float, int, str]] = []
        self.inbox: deque[InboxEntry] = deque(maxlen=config.inbox_size)
        self._mt_parts = Reassembler(max_partial=config.inbox_size, timeout_s=600.0)
        self.queues: dict[str, deque[ShortMessage]] = {}
        self.queue_dropped = 0
        self._mo_ref = self.rng.randrange(256)

    # -- binds -------------------------------------------------------------------------------

    def check_bind(self, system_id: str, password: str) -> CommandStatus:
        account = self.accounts.get(system_id)
        if account is None:
            return CommandStatus.ESME_RINVSYSID
        if account.password != password:
            return CommandStatus.ESME_RINVPASWD
        return CommandStatus.ESME_ROK

    # -- MT ----------------------------------------------------------------------------------

    def new_message_id(self) -> str:
        self._counter += 1
        return f"{self._prefix}{self._counter:010x}"

    def submit(self, system_id: str, sm: ShortMessage, now: float) -> str:
        """Accept one submit_sm segment; returns its message_id."""
        message_id = self.new_message_id()
        if len(self._stats) == 1:
            outcome = self._stats[0]
        else:
            outcome = self.rng.choices(self._stats, self._weights)[0]
        cfg = self.config
        delay = cfg.receipt_delay_min_s
        if cfg.receipt_delay_max_s > delay:
            delay = self.rng.uniform(delay, cfg.receipt_delay_max_s)
        due = now + delay
        whole = self._mt_parts.feed(sm, now, message_id)
        preview = ""
        if whole is not None:
            preview = whole.text
            self.inbox.append(InboxEntry(sm.source_addr, sm.destination_addr, whole.text,
                                         coding_name(whole.data_coding), whole.parts,
                                         whole.tags, now, system_id))
        msg = MtMessage(message_id, system_id, sm.source_addr, sm.destination_addr, now,
                        sm.registered_delivery, preview, outcome, due)
        messages = self.messages
        messages[message_id] = msg
        if len(messages) > self.max_messages:
            messages.popitem(last=False)
        heapq.heappush(self._due, (due, self._counter, message_id))
        return message_id

    def next_deadline(self) -> float | None:
        return self._due[0][0] if self._due else None

    def handle_timer(self, now: float) -> list[str]:
        """Finish the messages due by ``now``; queue their receipts. Returns their stats."""
        queued: list[str] = []
        due = self._due
        while due and due[0][0] <= now:
            _, _, message_id = heapq.heappop(due)
            msg = self.messages.get(message_id)
            if msg is None or msg.final:
                continue  # evicted or cancelled
            msg.state = RECEIPT_STAT[msg.outcome]
            msg.done_at = now
            wanted = msg.registered_delivery & 0x03
            failed = msg.state is not MessageState.DELIVERED
            if wanted == 1 or (wanted == 2 and failed):
                self.enqueue(msg.system_id, self.receipt_sm(msg))
                queued.append(msg.outcome)
        return queued

    def receipt_sm(self, msg: MtMessage) -> ShortMessage:
        done = msg.done_at if msg.done_at is not None else msg.submitted_at
        receipt = DeliveryReceipt(
            message_id=msg.message_id, stat=msg.outcome, err=_ERR.get(msg.outcome, "000"),
            sub="001", dlvrd="001" if msg.state is MessageState.DELIVERED else "000",
            submit_date=receipt_date(datetime.fromtimestamp(msg.submitted_at, UTC)),
            done_date=receipt_date(datetime.fromtimestamp(done, UTC)),
            text=msg.preview[:20])
        text = format_receipt(receipt)
        try:
            body = encode_text(text, DataCoding.DEFAULT)
        except ValueError:  # the preview holds non-GSM characters: drop it from the text
            body = encode_text(format_receipt(DeliveryReceipt(
                receipt.message_id, receipt.stat, receipt.err, receipt.sub, receipt.dlvrd,
                receipt.submit_date, receipt.done_date)), DataCoding.DEFAULT)
        return ShortMessage(
            source_addr=msg.destination_addr, destination_addr=msg.source_addr,
            short_message=body[:254], esm_class=ESM_DELIVERY_RECEIPT,
            data_coding=DataCoding.DEFAULT,
            tlvs=((Tag.RECEIPTED_MESSAGE_ID, msg.message_id.encode("ascii") + b"\0"),
                  (Tag.MESSAGE_STATE, bytes([msg.state]))))

    def query(self, system_id: str, message_id: str) -> QuerySmResp | None:
        msg = self.messages.get(message_id)
        if msg is None or msg.system_id != system_id:
            return None
        final_date = absolute_time(msg.done_at) if msg.done_at is not None else ""
        return QuerySmResp(message_id, final_date, msg.state,
                           int(_ERR.get(msg.outcome, "0")) if msg.final else 0)

    def cancel(self, system_id: str, message_id: str, source_addr: str,
               destination_addr: str, now: float) -> CommandStatus:
        """Cancel a message still en route (or, with no id, all from source to destination)."""
        if message_id:
            candidates = [self.messages.get(message_id)]
        else:
            candidates = [m for m in self.messages.values()
                          if m.source_addr == source_addr and (
                              not destination_addr or m.destination_addr == destination_addr)]
        cancelled = 0
        for msg in candidates:
            if msg is None or msg.system_id != system_id or msg.final:
                continue
            msg.state = MessageState.DELETED
            msg.outcome = "DELETED"
            msg.done_at = now
            cancelled += 1
        return CommandStatus.ESME_ROK if cancelled else CommandStatus.ESME_RCANCELFAIL

    # -- MO ----------------------------------------------------------------------------------

    def mo(self, source_addr: str, destination_addr: str, text: str,
           system_id: str = ANY_SYSTEM) -> int:
        """Queue an MO message as deliver_sm segment(s); returns the segment count."""
        self._mo_ref = (self._mo_ref + 1) % 256
        segments = segment_text(text, self._mo_ref)
        for seg in segments:
            self.enqueue(system_id, ShortMessage(
                source_addr=source_addr, destination_addr=destination_addr,
                short_message=seg.short_message, esm_class=seg.esm_class,
                data_coding=seg.data_coding, source_addr_ton=1 if source_addr.startswith("+")
                else 0, tlvs=seg.tlvs))
        return len(segments)

    # -- queues ------------------------------------------------------------------------------

    def enqueue(self, system_id: str, sm: ShortMessage, front: bool = False) -> None:
        queue = self.queues.get(system_id)
        if queue is None:
            queue = self.queues[system_id] = deque()
        if len(queue) >= self.config.max_queued:
            self.queue_dropped += 1
            if front:
                return
            queue.popleft()  # the oldest goes: bounded memory
        if front:
            queue.appendleft(sm)
        else:
            queue.append(sm)

    def queued(self) -> int:
        return sum(len(q) for q in self.queues.values())

    # -- views -------------------------------------------------------------------------------

    def inbox_json(self, to: str | None = None, source: str | None = None,
                   limit: int | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for entry in reversed(self.inbox):
            if to is not None and entry.destination_addr != to:
                continue
            if source is not None and entry.source_addr != source:
                continue
            states = [self.messages[m] for m in entry.message_ids if m in self.messages]
            state = _combined_state(states)
            outcome = next((m.outcome for m in states if m.final), None)
            out.append({
                "from": entry.source_addr, "to": entry.destination_addr, "text": entry.text,
                "encoding": entry.encoding, "parts": entry.parts,
                "message_ids": list(entry.message_ids),
                "submitted_at": datetime.fromtimestamp(entry.submitted_at, UTC).isoformat(),
                "state": state, "outcome": outcome if state != "ENROUTE" else None,
                "system_id": entry.system_id,
            })
            if limit is not None and len(out) >= limit:
                break
        return out


def _combined_state(parts: list[MtMessage]) -> str:
    if not parts:
        return "UNKNOWN"
    if any(not m.final for m in parts):
        return "ENROUTE"
    worst = max(parts, key=lambda m: m.state is not MessageState.DELIVERED)
    return worst.state.name
