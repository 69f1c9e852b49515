"""The SMSC stub node: an asyncio SMPP v3.4 server around ``SmscCore`` and ``smpp.Session``.

One ``asyncio.Protocol`` per connection (callbacks, no task per PDU); one timer for the core's
next receipt; one housekeeping task (idle binds) owned by ``run()``. Limits per bind:
``throttle_per_s`` (token bucket → ESME_RTHROTTLED), ``max_pending`` unanswered requests
(→ ESME_RMSGQFUL), ``window`` unacknowledged deliver_sm; a peer that stops reading has its
socket reads paused, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable
from typing import Any, cast

from ..config import SmppAccount, SmscConfig
from ..smpp.constants import INTERFACE_VERSION, CommandId, CommandStatus, Tag, status_name
from ..smpp.errors import LocalProtocolError
from ..smpp.pdu import BindResp, CancelSm, MessageIdResp, Pdu, QuerySm, ShortMessage
from ..smpp.session import (
    BindCompleted,
    ConnectionBroken,
    PduRejected,
    RequestReceived,
    ResponseReceived,
    Role,
    Session,
    SessionState,
    UnbindCompleted,
    UnbindReceived,
)
from .core import ANY_SYSTEM, SmscCore
from .metrics import SmscMetrics
from .throttle import TokenBucket

SMSC_SYSTEM_ID = "fivegmc-smsc"
_RETRY_STATUSES = frozenset({CommandStatus.ESME_RMSGQFUL, CommandStatus.ESME_RTHROTTLED,
                             CommandStatus.ESME_RX_T_APPN})
_BIND_TYPE = {CommandId.BIND_TRANSMITTER: "transmitter", CommandId.BIND_RECEIVER: "receiver",
              CommandId.BIND_TRANSCEIVER: "transceiver"}


class _Connection(asyncio.Protocol):
    def __init__(self, node: SmscNode) -> None:
        self.node = node
        self.session = Session(Role.SMSC, node.config.max_pdu_bytes)
        self.transport: asyncio.Transport | None = None
        self.account: SmppAccount | None = None
        #: the bind's address_range: which destinations' MO this ESME serves (None: any)
        self.address_range: re.Pattern[str] | None = None
        self.bucket: TokenBucket | None = None
        self.inflight: dict[int, tuple[str, ShortMessage]] = {}
        self.last_rx = node.clock()
        self.peer = ""
        self.closing = False

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.node.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.close()
        self.node.forget(self)

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()  # the peer is not reading: stop taking more work

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        node = self.node
        now = node.clock()
        self.last_rx = now
        session = self.session
        for event in session.receive_data(data):
            match event:
                case RequestReceived(pdu):
                    node.metrics.pdus_in.inc(pdu.command_id.name.lower())
                    self._on_request(pdu, now)
                case ResponseReceived(pdu, request):
                    node.metrics.pdus_in.inc(pdu.command_id.name.lower())
                    self._on_response(pdu, request)
                case PduRejected(command_id, _seq, status, reason):
                    node.metrics.rejected.inc(status_name(status))
                    node.log.warning("smpp_pdu_rejected", peer=self.peer, reason=reason,
                                     command_id=command_id)
                case ConnectionBroken(status, reason):
                    node.metrics.closed.inc("framing")
                    node.log.warning("smpp_connection_broken", peer=self.peer, reason=reason)
                    self.close_after_flush()
                case UnbindReceived():
                    node.metrics.closed.inc("unbind")
                    self.close_after_flush()
                case UnbindCompleted():
                    self.close_after_flush()
                case BindCompleted():
                    pass
        self.flush()

    # -- requests ----------------------------------------------------------------------------

    def _on_request(self, pdu: Pdu, now: float) -> None:
        node = self.node
        session = self.session
        cid = pdu.command_id
        if len(session.pending_in) > node.config.max_pending:
            node.metrics.rejected.inc("ESME_RMSGQFUL")
            session.answer(pdu, CommandStatus.ESME_RMSGQFUL)
            return
        if cid in _BIND_TYPE:
            self._on_bind(pdu, now)
        elif cid is CommandId.SUBMIT_SM:
            self._on_submit(pdu, now)
        elif cid is CommandId.QUERY_SM:
            body = pdu.body
            assert isinstance(body, QuerySm)
            answer = node.core.query(session.system_id, body.message_id)
            if answer is None:
                session.answer(pdu, CommandStatus.ESME_RQUERYFAIL)
            else:
                session.answer(pdu, CommandStatus.ESME_ROK, answer)
        elif cid is CommandId.CANCEL_SM:
            body = pdu.body
            assert isinstance(body, CancelSm)
            status = node.core.cancel(session.system_id, body.message_id, body.source_addr,
                                      body.destination_addr, now)
            session.answer(pdu, status)
        else:  # pragma: no cover - the session's table lets nothing else through
            session.answer(pdu, CommandStatus.ESME_RINVCMDID)

    def _on_bind(self, pdu: Pdu, now: float) -> None:
        node = self.node
        body = pdu.body
        bind_type = _BIND_TYPE[pdu.command_id]
        system_id = getattr(body, "system_id", "")
        status = node.core.check_bind(system_id, getattr(body, "password", ""))
        node.metrics.binds.inc(bind_type, status_name(status))
        if status != CommandStatus.ESME_ROK:
            node.log.warning("smpp_bind_refused", peer=self.peer, system_id=system_id,
                             bind=bind_type, status=status_name(status))
            self.session.answer(pdu, status)
            return
        self.account = node.core.accounts[system_id]
        self.address_range = _address_range(getattr(body, "address_range", ""))
        rate = self.account.throttle_per_s
        self.bucket = TokenBucket(rate, rate, now)
        self.session.answer(pdu, CommandStatus.ESME_ROK, BindResp(
            SMSC_SYSTEM_ID, ((Tag.SC_INTERFACE_VERSION, bytes([INTERFACE_VERSION])),)))
        node.log.info("smpp_bound", peer=self.peer, system_id=system_id, bind=bind_type)
        if self.session.state in (SessionState.BOUND_RX, SessionState.BOUND_TRX):
            node.add_receiver(self)

    def _on_submit(self, pdu: Pdu, now: float) -> None:
        node = self.node
        body = pdu.body
        assert isinstance(body, ShortMessage)
        status = CommandStatus.ESME_ROK
        if self.bucket is not None and not self.bucket.take(now):
            status = CommandStatus.ESME_RTHROTTLED
        elif not body.destination_addr:
            status = CommandStatus.ESME_RINVDSTADR
        elif body.short_message and body.tlv(Tag.MESSAGE_PAYLOAD) is not None:
            status = CommandStatus.ESME_RINVPARLEN  # §5.3.2.32: one or the other, not both
        if status != CommandStatus.ESME_ROK:
            node.metrics.submits.inc(status_name(status))
            self.session.answer(pdu, status)
            return
        message_id = node.core.submit(self.session.system_id, body, now)
        node.metrics.submits.inc("ESME_ROK")
        node.arm_timer()
        delay = node.config.submit_delay_s
        if delay > 0:
            loop = asyncio.get_running_loop()
            loop.call_later(delay, self._answer_later, pdu, message_id)
        else:
            self.session.answer(pdu, CommandStatus.ESME_ROK, MessageIdResp(message_id))

    def _answer_later(self, pdu: Pdu, message_id: str) -> None:
        if self.session.state is SessionState.CLOSED or self.closing:
            return
        self.session.answer(pdu, CommandStatus.ESME_ROK, MessageIdResp(message_id))
        self.flush()

    # -- deliver_sm --------------------------------------------------------------------------

    def _on_response(self, pdu: Pdu, request: CommandId | None) -> None:
        if request is not CommandId.DELIVER_SM:
            return
        entry = self.inflight.pop(pdu.sequence_number, None)
        if entry is None:
            return
        if pdu.command_status in _RETRY_STATUSES:
            key, sm = entry
            self.node.core.enqueue(key, sm, front=True)
            self.node.pump_later()  # back off: the ESME asked us to slow down
            return
        if pdu.command_status != CommandStatus.ESME_ROK:
            self.node.log.info("smpp_deliver_refused", peer=self.peer,
                               status=status_name(pdu.command_status))
        self.node.pump(entry[0])

    def window_free(self) -> int:
        if self.account is None or self.closing:
            return 0
        return self.account.window - len(self.inflight)

    def send_deliver(self, key: str, sm: ShortMessage) -> None:
        pdu = Pdu(CommandId.DELIVER_SM, self.session.next_sequence(), sm)
        try:
            self.session.send(pdu)
        except LocalProtocolError:
            self.node.core.enqueue(key, sm, front=True)
            return
        self.inflight[pdu.sequence_number] = (key, sm)
        self.node.metrics.delivers.inc("receipt" if sm.esm_class & 0x04 else "mo")

    # -- plumbing ----------------------------------------------------------------------------

    def flush(self) -> None:
        data = self.session.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        if self.closing and self.transport is not None:
            self.transport.close()

    def close_after_flush(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


class SmscNode:
    """The SMSC stub: ``start()`` listens, ``run()`` does housekeeping until cancelled,
    ``close()`` drops every connection."""

    def __init__(self, config: SmscConfig, metrics: SmscMetrics, log: Any,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.metrics = metrics
        self.log = log
        self.clock = clock
        self.core = SmscCore(config, rng)
        self.connections: set[_Connection] = set()
        self.receivers: dict[str, list[_Connection]] = {}
        self._server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pump_handle: asyncio.TimerHandle | None = None
        self._rotation: list[None] = []  # spreads range-less MO across binds
        self.address: tuple[str, int] | None = None
        metrics.watch(self.bound_count, self.core.queued)

    def bound_count(self) -> int:
        return sum(1 for c in self.connections if c.session.state.bound)

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.config.host,
                                                self.config.port)
        sock = self._server.sockets[0].getsockname()
        self.address = (str(sock[0]), int(sock[1]))
        return self.address

    async def run(self) -> None:
        """Drop idle binds until cancelled."""
        idle = self.config.idle_timeout_s
        period = min(max(idle / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(period)
            now = self.clock()
            for conn in list(self.connections):
                if now - conn.last_rx > idle:
                    self.metrics.closed.inc("idle")
                    self.log.info("smpp_idle_dropped", peer=conn.peer,
                                  system_id=conn.session.system_id)
                    conn.abort()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._pump_handle is not None:
            self._pump_handle.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self.connections.clear()
        self.receivers.clear()

    # -- receivers and queues ----------------------------------------------------------------

    def add_receiver(self, conn: _Connection) -> None:
        self.receivers.setdefault(conn.session.system_id, []).append(conn)
        self.pump(conn.session.system_id)
        self.pump(ANY_SYSTEM)

    def forget(self, conn: _Connection) -> None:
        self.connections.discard(conn)
        receivers = self.receivers.get(conn.session.system_id)
        if receivers and conn in receivers:
            receivers.remove(conn)
        # deliver_sm never acknowledged go back to the front of their queue, in order
        for key, sm in reversed(list(conn.inflight.values())):
            self.core.enqueue(key, sm, front=True)
        conn.inflight.clear()
        if conn.session.system_id:
            self.log.info("smpp_unbound", peer=conn.peer, system_id=conn.session.system_id)
        self.pump_later()

    def pump(self, key: str) -> None:
        """Send queued deliver_sm of ``key`` to its receiver binds, within their windows."""
        queue = self.core.queues.get(key)
        if not queue:
            return
        if key == ANY_SYSTEM:
            conns = [c for lst in self.receivers.values() for c in lst]
            if any(c.address_range is not None for c in conns):
                self._pump_by_range(queue, conns)
                return
        else:
            conns = self.receivers.get(key, [])
        if not conns:
            return
        conns.append(conns.pop(0))  # rotate: spread the work across binds
        for conn in conns:
            free = conn.window_free()
            while free > 0 and queue:
                conn.send_deliver(key, queue.popleft())
                free -= 1
            conn.flush()
            if not queue:
                break

    def _pump_by_range(self, queue: Any, conns: list[_Connection]) -> None:
        """MO for any system: to the binds whose address_range (SMPP 3.4 §5.2.7, a regular
        expression of the addresses an ESME serves) matches the destination; when none does,
        to the binds that declared no range. In order: a message waits for a free window."""
        start = len(self._rotation) % max(1, len(conns))
        self._rotation.append(None)
        if len(self._rotation) > 1000:
            self._rotation.clear()
        ordered = conns[start:] + conns[:start]
        touched: set[_Connection] = set()
        while queue:
            sm = queue[0]
            dest = sm.destination_addr
            fits = [c for c in ordered
                    if c.address_range is not None and c.address_range.fullmatch(dest)]
            if not fits:
                fits = [c for c in ordered if c.address_range is None] or ordered
            target = next((c for c in fits if c.window_free() > 0), None)
            if target is None:
                break
            target.send_deliver(ANY_SYSTEM, queue.popleft())
            touched.add(target)
        for conn in touched:
            conn.flush()

    def pump_all(self) -> None:
        for key in list(self.core.queues):
            self.pump(key)

    def pump_later(self, delay: float = 0.2) -> None:
        if self._pump_handle is None or self._pump_handle.cancelled():
            loop = asyncio.get_running_loop()
            self._pump_handle = loop.call_later(delay, self._pump_fired)

    def _pump_fired(self) -> None:
        self._pump_handle = None
        self.pump_all()

    # -- receipts timer ----------------------------------------------------------------------

    def arm_timer(self) -> None:
        deadline = self.core.next_deadline()
        if deadline is None:
            return
        if self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer_at = deadline
        self._timer = loop.call_later(max(0.0, deadline - self.clock()), self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self._timer_at = None
        stats = self.core.handle_timer(self.clock())
        for stat in stats:
            self.metrics.receipts.inc(stat)
        if stats:
            self.pump_all()
        self.arm_timer()

    # -- MO ----------------------------------------------------------------------------------

    def inject_mo(self, source_addr: str, destination_addr: str, text: str,
                  system_id: str = ANY_SYSTEM) -> int:
        segments = self.core.mo(source_addr, destination_addr, text, system_id)
        self.metrics.mo.inc()
        self.pump(system_id)
        return segments


def _address_range(text: str) -> re.Pattern[str] | None:
    """A bind's address_range as a pattern; None when empty or not a valid expression."""
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error:
        return None
