"""An asyncio ESME (SMPP v3.4 client) for SMS fallback: binds as a transceiver, keeps the
bind alive, reconnects with exponential backoff and never loses a submitted message.

``await esme.submit(source, dest, text)`` returns the SMSC message ids (one per segment).
While the SMSC is unreachable, submissions are held in memory (at most ``max_held``; beyond →
``EsmeQueueFull``) and sent in order once a bind succeeds. Segments in flight when a connection
drops are sent again after the reconnect. Receipts and MO messages (reassembled) go to the
``on_receipt`` / ``on_mo`` callbacks.

The ESME owns one task (``start()`` creates it, ``close()`` unbinds, cancels and awaits it); each
connection runs its reader, sender and keep-alive under one TaskGroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import EsmeConfig
from ..smpp.constants import ESM_TYPE_MASK, CommandId, CommandStatus, status_name
from ..smpp.errors import SmppError
from ..smpp.pdu import Bind, MessageIdResp, Pdu, ShortMessage
from ..smpp.receipt import DeliveryReceipt, ReceiptError, receipt_from_sm
from ..smpp.segment import ConcatMethod, Reassembler, segment_text
from ..smpp.session import (
    BindCompleted,
    ConnectionBroken,
    PduRejected,
    RequestReceived,
    ResponseReceived,
    Role,
    Session,
    UnbindCompleted,
    UnbindReceived,
)

_RETRY = frozenset({CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL})


class EsmeError(Exception):
    """Base of the ESME's errors."""


class SubmitError(EsmeError):
    """The SMSC refused a segment with a permanent error status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"submit_sm refused: {status_name(status)}")
        self.status = status


class EsmeQueueFull(EsmeError):
    """More than ``max_held`` messages are waiting."""


class EsmeClosed(EsmeError):
    """The ESME was closed before the message was accepted."""


@dataclass(frozen=True, slots=True)
class MoMessage:
    source_addr: str
    destination_addr: str
    text: str
    data_coding: int
    parts: int


@dataclass(eq=False)
class _Submission:
    number: int
    segments: list[ShortMessage]
    future: asyncio.Future[list[str]]
    ids: list[str | None] = field(default_factory=list)
    pending: deque[int] = field(default_factory=deque)

    @property
    def done(self) -> bool:
        return self.future.done()


def _ton_npi(addr: str) -> tuple[int, int]:
    if addr.startswith("+"):
        return 1, 1  # international, E.164
    if addr.isdigit():
        return 0, 1
    return 5, 0  # alphanumeric


class _Disconnect(Exception):
    """The connection must be dropped (peer closed, unbind, timeout, broken framing)."""


class Esme:
    def __init__(self, host: str, port: int, system_id: str, password: str, *,
                 window: int = 10, enquire_link_s: float = 30.0,
                 reconnect_initial_s: float = 0.5, reconnect_max_s: float = 30.0,
                 response_timeout_s: float = 10.0, max_held: int = 10000,
                 on_receipt: Callable[[DeliveryReceipt], None] | None = None,
                 on_mo: Callable[[MoMessage], None] | None = None,
                 concat: ConcatMethod = "udh8", log: Any = None,
                 address_range: str = "") -> None:
        self.host = host
        self.port = port
        self.system_id = system_id
        self.password = password
        self.window = window
        self.enquire_link_s = enquire_link_s
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self.response_timeout_s = response_timeout_s
        self.max_held = max_held
        self.on_receipt = on_receipt
        self.on_mo = on_mo
        self.concat = concat
        self.log = log
        #: SMPP 3.4 §5.2.7: the addresses this ESME serves (a regular expression), so the SMSC
        #: sends it the MO SMS for those destinations only
        self.address_range = address_range
        self.bound = asyncio.Event()
        self.binds = 0  # successful binds so far
        self.last_error = ""
        self._queue: deque[_Submission] = deque()  # unfinished, with segments still to send
        self._unfinished = 0
        self._inflight: dict[int, tuple[_Submission, int, float]] = {}
        self._numbers = itertools.count(1)
        self._ref = 0
        self._wake = asyncio.Event()
        self._reassembler = Reassembler()
        self._session: Session | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._unbound = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._retry_at = 0.0

    @classmethod
    def from_config(cls, cfg: EsmeConfig, host: str, port: int, **kwargs: Any) -> Esme:
        return cls(host, port, cfg.system_id, cfg.password, window=cfg.window,
                   enquire_link_s=cfg.enquire_link_s,
                   reconnect_initial_s=cfg.reconnect_initial_s,
                   reconnect_max_s=cfg.reconnect_max_s,
                   response_timeout_s=cfg.response_timeout_s, max_held=cfg.max_held, **kwargs)

    # -- public API --------------------------------------------------------------------------

    @property
    def held(self) -> int:
        """Messages submitted and not yet accepted by the SMSC (waiting or in flight)."""
        return self._unfinished

    def submit_nowait(self, source: str, dest: str, text: str,
                      registered_delivery: bool = True) -> asyncio.Future[list[str]]:
        """Queue a message; the future gets its SMSC message ids."""
        if self._closing:
            raise EsmeClosed("ESME closed")
        if self._unfinished >= self.max_held:
            raise EsmeQueueFull(f"{self._unfinished} messages already held")
        self._ref = (self._ref + 1) & 0xFF
        src_ton, src_npi = _ton_npi(source)
        dst_ton, dst_npi = _ton_npi(dest)
        segments = [ShortMessage(
            source_addr=source, destination_addr=dest, short_message=seg.short_message,
            source_addr_ton=src_ton, source_addr_npi=src_npi, dest_addr_ton=dst_ton,
            dest_addr_npi=dst_npi, esm_class=seg.esm_class, data_coding=seg.data_coding,
            registered_delivery=1 if registered_delivery else 0, tlvs=seg.tlvs)
            for seg in segment_text(text, self._ref, method=self.concat)]
        future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        sub = _Submission(next(self._numbers), segments, future, [None] * len(segments),
                          deque(range(len(segments))))
        self._queue.append(sub)
        self._unfinished += 1
        future.add_done_callback(self._finished)
        self._wake.set()
        return future

    async def submit(self, source: str, dest: str, text: str,
                     registered_delivery: bool = True) -> list[str]:
        return await self.submit_nowait(source, dest, text, registered_delivery)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"esme-{self.system_id}")

    async def close(self, timeout: float = 1.0) -> None:
        """Unbind (briefly waiting for unbind_resp), stop, fail what is still held."""
        self._closing = True
        session, writer = self._session, self._writer
        if session is not None and writer is not None and session.state.bound:
            with contextlib.suppress(SmppError, OSError):
                session.request(CommandId.UNBIND)
                writer.write(session.data_to_send())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._unbound.wait(), timeout)
        task = self._task
        if task is not None:
            # A cancel that lands while the connection's TaskGroup is already unwinding (3.11)
            # can be absorbed; ``_closing`` stops the loop and the cancel is repeated.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.1)
            if not task.cancelled() and task.exception() is not None:
                self.last_error = repr(task.exception())
            self._task = None
        for sub in list(self._queue) + [s for s, _, _ in self._inflight.values()]:
            if not sub.done:
                sub.future.set_exception(EsmeClosed("ESME closed before the SMSC accepted it"))
        self._queue.clear()
        self._inflight.clear()

    async def __aenter__(self) -> Esme:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- connection loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, bind and serve; reconnect with exponential backoff until cancelled."""
        backoff = self.reconnect_initial_s
        while not self._closing:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                self.last_error = f"connect: {exc}"
            else:
                binds_before = self.binds
                try:
                    await self._serve(reader, writer)
                except* (_Disconnect, OSError, SmppError) as group:
                    self.last_error = str(group.exceptions[0])
                finally:
                    self._drop_connection(writer)
                if self.binds > binds_before:
                    backoff = self.reconnect_initial_s
                if self._closing:
                    return
            if self.log is not None:
                self.log.info("esme_reconnect", host=self.host, port=self.port,
                              wait_s=backoff, reason=self.last_error, held=self.held)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.reconnect_max_s)

    def _drop_connection(self, writer: asyncio.StreamWriter) -> None:
        self.bound.clear()
        self._session = None
        self._writer = None
        writer.close()
        if self._inflight:  # not acknowledged: send again, in submission order
            back: dict[int, _Submission] = {}
            for sub, index, _ in self._inflight.values():
                if not sub.done:
                    sub.pending.append(index)
                    back[sub.number] = sub
            self._inflight.clear()
            for sub in back.values():
                sub.pending = deque(sorted(set(sub.pending)))
            queued = {s.number: s for s in self._queue}
            queued.update(back)
            self._queue = deque(queued[n] for n in sorted(queued))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(Role.ESME)
        self._session = session
        self._writer = writer
        self._unbound.clear()
        session.request(CommandId.BIND_TRANSCEIVER, Bind(self.system_id, self.password,
                                                           address_range=self.address_range))
        writer.write(session.data_to_send())
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._reader(session, reader, writer))
            tg.create_task(self._sender(session, writer))
            tg.create_task(self._keepalive(session, writer))

    async def _reader(self, session: Session, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                raise _Disconnect("SMSC closed the connection")
            for event in session.receive_data(data):
                match event:
                    case ResponseReceived(pdu, request):
                        self._on_response(pdu, request)
                    case RequestReceived(pdu):
                        self._on_request(session, pdu)
                    case BindCompleted():
                        self.binds += 1
                        self.bound.set()
                        self._wake.set()
                    case UnbindCompleted():
                        self._unbound.set()
                    case UnbindReceived():
                        writer.write(session.data_to_send())
                        raise _Disconnect("SMSC unbound")
                    case ConnectionBroken(_, reason):
                        writer.write(session.data_to_send())
                        raise _Disconnect(reason)
                    case PduRejected(_, _, _, reason):
                        if self.log is not None:
                            self.log.warning("esme_pdu_rejected", reason=reason)
            out = session.data_to_send()
            if out:
                writer.write(out)
            if self._unbound.is_set():
                raise _Disconnect("unbound")

    def _on_response(self, pdu: Pdu, request: CommandId | None) -> None:
        if request in (CommandId.BIND_TRANSCEIVER,) and pdu.command_status:
            raise _Disconnect(f"bind refused: {status_name(pdu.command_status)}")
        entry = self._inflight.pop(pdu.sequence_number, None)
        if entry is None:
            return
        sub, index, _ = entry
        self._wake.set()
        if sub.done:
            return
        status = pdu.command_status
        if status == CommandStatus.ESME_ROK and isinstance(pdu.body, MessageIdResp):
            sub.ids[index] = pdu.body.message_id
            if all(i is not None for i in sub.ids):
                sub.future.set_result([i for i in sub.ids if i is not None])
        elif status in _RETRY:
            # the SMSC asks us to slow down: send this segment again after a pause
            sub.pending.appendleft(index)
            if sub not in self._queue:
                self._queue.appendleft(sub)
            self._retry_at = time.monotonic() + 0.05
        else:
            sub.future.set_exception(SubmitError(status))

    def _on_request(self, session: Session, pdu: Pdu) -> None:
        sm = pdu.body
        if pdu.command_id is not CommandId.DELIVER_SM or not isinstance(sm, ShortMessage):
            session.answer(pdu, CommandStatus.ESME_RINVCMDID)
            return
        try:
            if sm.esm_class & ESM_TYPE_MASK == 0x04:  # SMSC delivery receipt (§5.2.12)
                receipt = receipt_from_sm(sm)
                if self.on_receipt is not None:
                    self.on_receipt(receipt)
            else:
                whole = self._reassembler.feed(sm, time.time())
                if whole is not None and self.on_mo is not None:
                    self.on_mo(MoMessage(whole.source_addr, whole.destination_addr, whole.text,
                                         whole.data_coding, whole.parts))
        except ReceiptError as exc:
            if self.log is not None:
                self.log.warning("esme_bad_receipt", error=str(exc))
        except Exception as exc:  # a callback failed: ours to report, not the SMSC's fault
            if self.log is not None:
                self.log.error("esme_callback_failed", error=repr(exc))
        session.answer(pdu, CommandStatus.ESME_ROK, MessageIdResp(""))

    async def _sender(self, session: Session, writer: asyncio.StreamWriter) -> None:
        await self.bound.wait()
        while True:
            await self._wake.wait()
            self._wake.clear()
            pause = self._retry_at - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            now = time.monotonic()
            queue = self._queue
            while queue and len(self._inflight) < self.window:
                sub = queue[0]
                if sub.done or not sub.pending:
                    queue.popleft()
                    continue
                index = sub.pending.popleft()
                if not sub.pending:
                    queue.popleft()
                pdu = session.request(CommandId.SUBMIT_SM, sub.segments[index])
                self._inflight[pdu.sequence_number] = (sub, index, now)
            out = session.data_to_send()
            if out:
                writer.write(out)
                await writer.drain()

    async def _keepalive(self, session: Session, writer: asyncio.StreamWriter) -> None:
        sent_at: dict[int, float] = {}
        last_link = time.monotonic()
        tick = min(self.enquire_link_s, self.response_timeout_s, 1.0) / 2
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for seq in list(sent_at):
                if seq not in session.outstanding:
                    del sent_at[seq]
            for seq in session.outstanding:
                sent_at.setdefault(seq, now)
            if sent_at and now - min(sent_at.values()) > self.response_timeout_s:
                raise _Disconnect("no response from the SMSC within "
                                  f"{self.response_timeout_s}s")
            if session.state.bound and now - last_link >= self.enquire_link_s:
                session.request(CommandId.ENQUIRE_LINK)
                writer.write(session.data_to_send())
                last_link = now

    def _finished(self, future: asyncio.Future[list[str]]) -> None:
        self._unfinished -= 1
