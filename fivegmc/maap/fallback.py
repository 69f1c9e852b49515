"""SMS fallback of chatbot (A2P) messages and MO SMS to chatbots (issue 5, protocols.md §6).

The policy (:func:`decide`, pure): the core hands over a recipient it could not deliver as a
5G message, with why; the SMS goes out when the profile enables fallback, the CSP allowed it
for this message and there is a text:

- ``NOT_5G_MESSAGE_TERMINAL`` (the 5GMC answered 480 for an SMS-only number) → at once;
- ``OFFLINE_NOT_STORED`` (``storeSupported=false`` and the user is offline, §6 [C]) → at once;
- ``EXPIRED`` (not delivered within ``maap.delivery_timeout_s``): the core has already revoked
  the stored 5G message and hands over only if the revoke succeeded (a failed revoke means the
  UE has it: no SMS);
- the CSP forbade it (CT/CU ``smsSupported`` false; GSMA/CMCC: the chatbot has no
  ``fallback_text``) → the recipient FAILS, no SMS.

Text: the request's (CT/CU ``smsContent``), else the chatbot's ``fallback_text`` with
``{messageId}`` replaced (CMCC: an H5 link). Source address: ``maap.sms.source`` or the
chatbot's ``sms_port``. Segmentation and encoding are the ESME's (UCS-2 67 characters per part
for Chinese, GSM 7-bit 153 otherwise, 8-bit UDH reference).

The service (:class:`SmsFallbackService`): the MaaP's own ESME bind (``[maap.sms]``); every
taken-over recipient is committed to :class:`~fivegmc.maap.sms_queue.SmsQueue` before the core
is told, handed to the ESME (which holds it while the SMSC is down), and its delivery
receipts map back by SMSC message id: all segments DELIVRD → ``core.sms_result(delivered=
True)`` (the dialect's deliveredToNetwork), any UNDELIV/EXPIRED/REJECTD/DELETED/UNKNOWN →
failed. Each step is added to the 5GMC's trace of the message id (``note_event``:
``fallback-sms``, ``submit_sm``, ``dlr``), and a CDR (outcome FALLBACK_SMS, or FAILED) is
written when the last receipt decides the outcome. MO SMS whose destination is a chatbot's
SMS port become that chatbot's ``InboundEvent(via_sms=True)``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..config import ChatbotConfig, MaapSmsConfig
from ..obs import cdr_pb2
from ..smpp.receipt import DeliveryReceipt
from ..smsc.esme import Esme, EsmeClosed, EsmeQueueFull, MoMessage
from .model import TEXT, FailureCode, InboundEvent, Outbound, Payload
from .sms_queue import DONE, QUEUED, SUBMITTED, SmsJob, SmsQueue

if TYPE_CHECKING:
    from .core import MaapCore

#: Receipt stats (SMPP v3.4 Appendix B) that end a segment delivered / not delivered.
DELIVERED_STATS = frozenset({"DELIVRD", "ACCEPTD"})
FAILED_STATS = frozenset({"UNDELIV", "EXPIRED", "REJECTD", "DELETED", "UNKNOWN"})

#: Why the SMS went out, by the core's failure code (the trace's ``fallback-sms`` detail).
REASONS = {
    FailureCode.NOT_5G_MESSAGE_TERMINAL: "sms-only",
    FailureCode.OFFLINE_NOT_STORED: "offline-not-stored",
    FailureCode.EXPIRED: "not-delivered-in-time",
}

NoteEvent = Callable[[str, str, str], None]


class CdrSink(Protocol):
    """What :class:`fivegmc.center.cdrs.CdrRecorder` offers (kept structural: the MaaP does
    not import the 5GMC)."""

    def record(self, *, message_id: str, sender: str, recipient: str,
               outcome: cdr_pb2.Outcome, sip_status: int, received_at: float,
               final_at: float | None = None, content_type: str = "", body_size: int = 0,
               attempts: int = 0, imdn_message_id: str | None = None,
               recipients: int = 1, kind: int = cdr_pb2.MESSAGE_KIND_P2P) -> None: ...


# -- the policy (pure) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """Send ``text`` as SMS (``send``), or not; ``reason`` says why either way."""

    send: bool
    reason: str
    text: str = ""


def fallback_text(out: Outbound, bot: ChatbotConfig) -> str:
    """The request's SMS text, else the chatbot's ``fallback_text`` (``{messageId}`` filled)."""
    if out.fallback.text.strip():
        return out.fallback.text
    return bot.fallback_text.replace("{messageId}", out.message_id)


def decide(out: Outbound, bot: ChatbotConfig, why: FailureCode | None,
           cfg: MaapSmsConfig) -> Decision:
    """Whether a recipient the 5G path gave up on (``why``) falls back to SMS."""
    if not cfg.enabled:
        return Decision(False, "fallback disabled in the profile")
    if why is None or why not in REASONS:
        return Decision(False, f"no fallback for {why.name if why else 'this failure'}")
    if not out.fallback.allowed:
        return Decision(False, "the CSP did not allow SMS fallback")
    text = fallback_text(out, bot)
    if not text.strip():
        return Decision(False, "no SMS text (request or chatbot fallback_text)")
    return Decision(True, REASONS[why], text)


def sms_source(bot: ChatbotConfig, cfg: MaapSmsConfig) -> str:
    """The SMS source address: the profile's, else the chatbot's SMS port (else its id)."""
    return cfg.source or bot.sms_port or bot.id[:20]


def receipt_outcome(stats: Sequence[str]) -> bool | None:
    """A (possibly concatenated) SMS's outcome from its segments' receipt stats: True when
    every segment is delivered, False as soon as one is not, None while any is pending."""
    if any(s in FAILED_STATS for s in stats):
        return False
    if stats and all(s in DELIVERED_STATS for s in stats):
        return True
    return None


def msisdn(addr: str) -> str:
    """An MO source address as E.164 with ``+`` (China: 13900000001 / 86… / 0086…)."""
    addr = addr.strip()
    if addr.startswith("+") or not addr.isdigit():
        return addr
    if addr.startswith("00"):
        return "+" + addr[2:]
    if addr.startswith("86") and len(addr) == 13:
        return "+" + addr
    if len(addr) == 11 and addr.startswith("1"):
        return "+86" + addr
    return "+" + addr


def bot_for_port(bots: Iterable[ChatbotConfig], destination: str) -> ChatbotConfig | None:
    """The chatbot whose SMS port the MO is addressed to: the longest port that is the
    destination or its prefix (a port may carry extension digits)."""
    best: ChatbotConfig | None = None
    for bot in bots:
        port = bot.sms_port
        if port and destination.startswith(port) and (best is None
                                                       or len(port) > len(best.sms_port)):
            best = bot
    return best


# -- the service -------------------------------------------------------------------------------


class SmsFallbackService:
    """Lifecycle: construct → ``await open()`` (after the core's states) → ``run(smsc)`` under
    the MaaP's TaskGroup until cancelled → ``await close()``."""

    def __init__(self, core: MaapCore, cfg: MaapSmsConfig, path: str, *,
                 note_event: NoteEvent | None = None, cdrs: CdrSink | None = None,
                 log: Any = None, clock: Callable[[], float] = time.time,
                 max_early_receipts: int = 10_000) -> None:
        self.core = core
        self.cfg = cfg
        self.queue = SmsQueue(path)
        self.note_event = note_event
        self.cdrs = cdrs
        self.log = log
        self.clock = clock
        self.esme: Esme | None = None
        self.max_early_receipts = max_early_receipts
        self._ready: deque[SmsJob] = deque()
        self._by_smsc: dict[str, SmsJob] = {}
        self._early: OrderedDict[str, str] = OrderedDict()
        self._wake = asyncio.Event()
        #: counters for tests and benchmarks
        self.taken = self.delivered = self.failed = self.mo = 0

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        for job in await self.queue.open():
            if job.state == QUEUED:
                self._ready.append(job)
            else:
                for smsc_id in job.smsc_ids:
                    self._by_smsc[smsc_id] = job

    async def run(self, smsc: tuple[str, int]) -> None:
        """Bind to the SMSC at ``smsc`` and serve until cancelled (the ESME reconnects)."""
        cfg = self.cfg
        esme = self.esme = Esme.from_config(
            cfg, smsc[0], smsc[1], on_receipt=self._on_receipt, on_mo=self._on_mo,
            log=self.log, address_range=self._ports_range())
        esme.start()
        for job in {id(j): j for j in self._by_smsc.values()}.values():
            self._check(job)  # receipts committed before a restart may already decide it
        self._wake.set()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.queue.run())
                tg.create_task(self._pump(esme))
        finally:
            self.esme = None
            await esme.close()

    async def close(self) -> None:
        if self.esme is not None:
            esme, self.esme = self.esme, None
            await esme.close()
        await self.queue.close()

    # -- the core's hook ---------------------------------------------------------------------
    async def hook(self, out: Outbound, number: str, why: FailureCode) -> bool:
        """``MaapCore.sms_fallback``: take the recipient over (True) or let it fail."""
        bot = self.core.bot(out.bot_id)
        if bot is None:
            return False
        decision = decide(out, bot, why, self.cfg)
        if not decision.send:
            self._note(out.message_id, "fallback-refused", f"{number} {decision.reason}")
            return False
        job = await self.queue.add(out.bot_id, out.message_id, number, sms_source(bot, self.cfg),
                                   decision.text, decision.reason, self.clock())
        if job is None:
            return True  # this recipient is already on the SMS path
        self.taken += 1
        self._note(out.message_id, "fallback-sms", f"{number} {decision.reason}")
        self._ready.append(job)
        self._wake.set()
        return True

    # -- to the SMSC -------------------------------------------------------------------------
    async def _pump(self, esme: Esme) -> None:
        """Hand queued jobs to the ESME, at most ``max_held`` unaccepted at a time."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._ready and esme.held < esme.max_held:
                job = self._ready.popleft()
                try:
                    fut = esme.submit_nowait(job.source, job.number, job.text)
                except EsmeQueueFull:
                    self._ready.appendleft(job)
                    break
                except EsmeClosed:
                    self._ready.appendleft(job)
                    return
                except ValueError as exc:  # longer than 255 segments
                    self._finish(job, False, f"not sendable: {exc}")
                    continue
                fut.add_done_callback(functools.partial(self._accepted, job))
            if self._ready:
                await asyncio.sleep(0.05)  # wait for the ESME to make room
                self._wake.set()

    def _accepted(self, job: SmsJob, fut: asyncio.Future[list[str]]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if isinstance(exc, EsmeClosed):
            return  # still queued on disk: sent again after the restart
        if exc is not None:
            self._note(job.message_id, "submit_sm", f"{job.number} refused: {exc}")
            self._finish(job, False, str(exc))
            return
        job.smsc_ids = tuple(fut.result())
        job.state = SUBMITTED
        for smsc_id in job.smsc_ids:
            self._by_smsc[smsc_id] = job
            job.stats.setdefault(smsc_id, "")
        self.queue.submitted(job)
        self._note(job.message_id, "submit_sm",
                   f"{job.number} {len(job.smsc_ids)} segment(s), SMSC message_id "
                   f"{','.join(job.smsc_ids)}")
        for smsc_id in job.smsc_ids:
            stat = self._early.pop(smsc_id, None)
            if stat is not None:
                self._receipt(job, smsc_id, stat)
        self._check(job)

    # -- from the SMSC -----------------------------------------------------------------------
    def _on_receipt(self, receipt: DeliveryReceipt) -> None:
        job = self._by_smsc.get(receipt.message_id)
        if job is None:
            # the receipt overtook the last submit_sm_resp of its message: keep it a while
            self._early[receipt.message_id] = receipt.stat
            while len(self._early) > self.max_early_receipts:
                self._early.popitem(last=False)
            return
        self._receipt(job, receipt.message_id, receipt.stat)
        self._check(job)

    def _receipt(self, job: SmsJob, smsc_id: str, stat: str) -> None:
        job.stats[smsc_id] = stat
        self.queue.receipt(smsc_id, stat)
        self._note(job.message_id, "dlr", f"{job.number} id:{smsc_id} stat:{stat}")

    def _check(self, job: SmsJob) -> None:
        if job.state != SUBMITTED:
            return
        outcome = receipt_outcome([job.stats.get(i, "") for i in job.smsc_ids])
        if outcome is not None:
            stats = ",".join(job.stats.get(i, "") for i in job.smsc_ids)
            self._finish(job, outcome, f"stat {stats}")

    def _finish(self, job: SmsJob, delivered: bool, detail: str) -> None:
        now = self.clock()
        job.state = DONE
        for smsc_id in job.smsc_ids:
            self._by_smsc.pop(smsc_id, None)
        self.queue.done(job, "delivered" if delivered else "failed", now)
        if delivered:
            self.delivered += 1
        else:
            self.failed += 1
        if self.log is not None:
            self.log.debug("maap_sms_fallback_done", message_id=job.message_id,
                           number=job.number, delivered=delivered, detail=detail)
        self.core.sms_result(job.bot_id, job.message_id, job.number, delivered=delivered,
                             sms_message_id=",".join(job.smsc_ids))
        bot = self.core.bot(job.bot_id)
        if self.cdrs is not None:
            self.cdrs.record(
                message_id=job.message_id, sender=bot.uri if bot is not None else job.bot_id,
                recipient=job.number,
                outcome=cdr_pb2.OUTCOME_FALLBACK_SMS if delivered else cdr_pb2.OUTCOME_FAILED,
                kind=cdr_pb2.MESSAGE_KIND_A2P,
                sip_status=0, received_at=job.created_at, final_at=now, content_type=TEXT,
                body_size=len(job.text.encode()), attempts=len(job.smsc_ids),
                imdn_message_id=job.message_id)

    def _on_mo(self, mo: MoMessage) -> None:
        bot = bot_for_port(self.core.bots(), mo.destination_addr)
        if bot is None:
            if self.log is not None:
                self.log.warning("maap_mo_sms_unrouted", destination=mo.destination_addr)
            return
        self.mo += 1
        event = InboundEvent(bot.id, msisdn(mo.source_addr), uuid.uuid4().hex,
                             Payload(TEXT, mo.text.encode()), at=self.clock(), via_sms=True)
        self.core.inbound_sms(event)

    def _ports_range(self) -> str:
        """The bind's address_range: the chatbots' SMS ports, with extension digits, so the
        SMSC routes MO for them to this bind (and not to the 5GMC's)."""
        ports = sorted({b.sms_port for b in self.core.bots() if b.sms_port})
        if not ports:
            return ""
        exact = f"(?:{'|'.join(re.escape(p) for p in ports)})[0-9]*"
        if len(exact) <= 40:  # SMPP 3.4 §4.1.1: address_range is at most 41 octets with NUL
            return exact
        common = os.path.commonprefix(ports)  # noqa: RUF071 (character prefix wanted)
        return f"{re.escape(common)}[0-9]*" if common and len(common) <= 34 else ""

    def _note(self, message_id: str, event: str, detail: str) -> None:
        if self.note_event is not None:
            self.note_event(message_id, event, detail)

    @property
    def pending(self) -> int:
        """Jobs not yet finished (queued, held by the ESME or awaiting receipts)."""
        return len(self._ready) + len({id(j) for j in self._by_smsc.values()}) + (
            self.esme.held if self.esme is not None else 0)
