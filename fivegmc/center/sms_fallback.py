"""P2P SMS fallback in the 5GMC (issue 5; protocols.md §6): a pager MESSAGE from a subscriber to
an SMS-only subscriber goes out as an SMS — the text part of its CPIM body — through the SMSC
(SMPP ``submit_sm`` from the node's ESME), instead of a 480.

- The sender gets 202 once the SMSC accepted every segment (``submit_sm_resp``): from then on
  the SMSC is responsible for it. If the SMSC cannot be reached within
  ``messaging.answer_timeout_s`` the sender gets 503 + Retry-After; the submission stays held by
  the ESME and goes out when the SMSC is back, and the sender's retry (same imdn.Message-ID) is
  recognised and answered 202 without a second SMS.
- The SMSC's delivery receipts are mapped back by message id: when every segment has its final
  receipt the sender gets a delivery IMDN (RFC 5438) if it asked for one — ``delivered`` for
  DELIVRD, ``failed`` otherwise — stored and delivered like any other message.
- The message's trace gets ``sms-fallback``, ``submit_sm`` (SMSC ids) and ``dlr`` events, and a
  CDR with outcome FALLBACK_SMS is written at the receipt.

Messages from a routed domain (a chatbot platform) are not converted: the MaaP applies its own
fallback policy to the 480 it gets.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import Profile
from ..core.routing import SmsOut
from ..cpim import parse_cpim
from ..sip.errors import RemoteProtocolError
from ..sip.message import Request
from ..sip.uri import aor_key
from ..smpp.receipt import DeliveryReceipt
from ..smsc.esme import Esme, EsmeError
from .cdrs import FALLBACK_SMS, CdrRecorder
from .forwarding import StoreAndForward
from .proxy import ProxyCore

#: Remembered (sender, imdn.Message-ID) pairs and pending receipts: bounded.
_MEMORY = 100_000


def sms_text(content_type: str, body: bytes) -> str | None:
    """The text an SMS carries for a pager MESSAGE body: the ``text/plain`` content of a CPIM
    body (RFC 3862) or a plain-text body; None when there is no text part. Malformed CPIM
    raises RemoteProtocolError (400)."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype == "message/cpim":
        cpim = parse_cpim(body)
        inner = (cpim.content_type or "").split(";", 1)[0].strip().lower()
        return cpim.content.decode("utf-8", "replace") if inner == "text/plain" else None
    if ctype == "text/plain":
        return body.decode("utf-8", "replace")
    return None


@dataclass(slots=True)
class _Pending:
    """One SMS waiting for its receipts."""

    sender: str
    recipient: str
    imdn_id: str | None
    trace_key: str
    dispositions: frozenset[str]
    original_datetime: str | None
    received_at: float
    segments: int
    body_size: int
    stats: dict[str, str] = field(default_factory=dict)  # SMSC id → receipt stat


class P2pSmsFallback:
    def __init__(self, profile: Profile, core: ProxyCore, esme: Esme,
                 forwarding: StoreAndForward | None, log: Any, now: Callable[[], float],
                 note_event: Callable[[str, str, str], None],
                 cdrs: CdrRecorder | None = None) -> None:
        self.profile = profile
        self.core = core
        self.esme = esme
        self.forwarding = forwarding
        self.log = log
        self.now = now
        self.note_event = note_event
        self.cdrs = cdrs
        self.domain = profile.operator.home_domain
        self._spawn: Callable[[Any], Any] | None = None
        self._accepted: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._by_smsc_id: dict[str, _Pending] = {}
        esme.on_receipt = self.on_receipt

    def bind(self, spawn: Callable[[Any], Any]) -> None:
        self._spawn = spawn

    # -- MESSAGE → submit_sm --------------------------------------------------------------------
    def on_sms(self, req: Request, d: SmsOut, token: object) -> None:
        """ProxyCore hands over a MESSAGE for an SMS-only subscriber; answered via answer()."""
        try:
            text = sms_text(req.headers.get("Content-Type") or "", req.body)
            cpim = (parse_cpim(req.body) if (req.headers.get("Content-Type") or "")
                    .lower().startswith("message/cpim") else None)
        except RemoteProtocolError as exc:
            self.core.answer(token, 400, self.now(), f"Bad Request ({exc.reason})"[:200])
            return
        if not text:
            self.core.answer(token, 480, self.now(), "Recipient has no 5G Message client")
            return
        sender = aor_key(req.from_().uri) or str(req.from_().uri)
        imdn_id = cpim.message_id if cpim is not None else None
        if imdn_id and (sender, imdn_id) in self._accepted:
            self.core.answer(token, 202, self.now())  # a retry: the SMS is already on its way
            return
        pending = _Pending(
            sender=sender, recipient=d.number, imdn_id=imdn_id,
            trace_key=imdn_id or req.call_id(),
            dispositions=cpim.disposition_notification if cpim is not None else frozenset(),
            original_datetime=cpim.datetime if cpim is not None else None,
            received_at=time.time(), segments=0, body_size=len(req.body),
        )
        if self._spawn is None:
            self.core.answer(token, 503, self.now(), "SMS fallback not running",
                             (("Retry-After", "5"),))
            return
        self._spawn(self._submit(pending, text, token))

    async def _submit(self, p: _Pending, text: str, token: object) -> None:
        self.note_event(p.trace_key, "sms-fallback", f"{p.recipient} is SMS-only")
        try:
            future = self.esme.submit_nowait(p.sender, p.recipient, text)
        except EsmeError as exc:
            self.log.warning("SMS fallback refused by the ESME", error=str(exc))
            self.core.answer(token, 503, self.now(), "SMS center unavailable",
                             (("Retry-After", "5"),))
            return
        if p.imdn_id:
            self._remember((p.sender, p.imdn_id))
        future.add_done_callback(lambda f: self._submitted(p, f))
        timeout = self.profile.messaging.answer_timeout_s or 8.0
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            # Held by the ESME until the SMSC is back; the sender's retry is recognised.
            self.core.answer(token, 503, self.now(), "SMS center unreachable",
                             (("Retry-After", "5"),))
            return
        except EsmeError as exc:
            if p.imdn_id:
                self._accepted.pop((p.sender, p.imdn_id), None)
            self.core.answer(token, 480, self.now(), f"SMS refused ({exc})"[:200])
            return
        self.core.answer(token, 202, self.now())

    def _submitted(self, p: _Pending, future: asyncio.Future[list[str]]) -> None:
        if future.cancelled() or future.exception() is not None:
            self.note_event(p.trace_key, "sms-failed", repr(future.exception()))
            return
        ids = future.result()
        p.segments = len(ids)
        for smsc_id in ids:
            self._by_smsc_id[smsc_id] = p
        while len(self._by_smsc_id) > _MEMORY:
            del self._by_smsc_id[next(iter(self._by_smsc_id))]
        self.note_event(p.trace_key, "submit_sm", f"SMSC message id(s) {', '.join(ids)}")

    def _remember(self, key: tuple[str, str]) -> None:
        self._accepted[key] = None
        if len(self._accepted) > _MEMORY:
            self._accepted.popitem(last=False)

    # -- DLR → IMDN ----------------------------------------------------------------------------
    def on_receipt(self, dlr: DeliveryReceipt) -> None:
        p = self._by_smsc_id.pop(dlr.message_id, None)
        if p is None:
            return  # not ours (or forgotten)
        p.stats[dlr.message_id] = dlr.stat
        self.note_event(p.trace_key, "dlr", f"{dlr.message_id} stat:{dlr.stat} err:{dlr.err}")
        if len(p.stats) < p.segments:
            return  # a concatenated SMS is delivered when every segment is
        delivered = all(stat == "DELIVRD" for stat in p.stats.values())
        if self.cdrs is not None:
            self.cdrs.record(
                message_id=p.trace_key, sender=p.sender, recipient=p.recipient,
                outcome=FALLBACK_SMS, sip_status=202, received_at=p.received_at,
                content_type="text/plain", body_size=p.body_size, imdn_message_id=p.imdn_id,
            )
        wanted = "positive-delivery" if delivered else "negative-delivery"
        if (p.imdn_id and wanted in p.dispositions and self.forwarding is not None
                and p.sender.startswith("+") and self._spawn is not None):
            self._spawn(self.forwarding.report(
                recipient=p.sender, about=p.recipient, original_message_id=p.imdn_id,
                original_datetime=p.original_datetime,
                status="delivered" if delivered else "failed",
                message_id=uuid.uuid4().hex,
            ))
