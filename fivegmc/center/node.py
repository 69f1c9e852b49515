"""The 5GMC SIP node on asyncio: listeners feed the sans-IO :class:`ProxyCore`, whose output
goes back out through them; one loop timer is armed at the core's next deadline."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..config import Profile
from ..core.registrar import Binding, Flow, Registrar, feature_tags
from ..core.routing import Relay, Router
from ..core.subscribers import SubscriberDirectory
from ..cpim import parse_cpim, parse_imdn
from ..net.stream import StreamTransport
from ..net.udp import Address, UdpEndpoint, open_udp
from ..obs.metrics import SipMetrics
from ..sip.digest import NonceManager
from ..sip.errors import RemoteProtocolError
from ..sip.message import Request
from ..sip.transaction import TimerConfig
from ..sip.uri import SipUri, aor_key, parse_name_addr
from ..store.protocol import Store, StoredBinding, StoreError, TraceEvent
from .cdrs import DELIVERED, FAILED, CdrRecorder
from .forwarding import StoreAndForward
from .proxy import ProxyCore, reason_for, salvage_response
from .traces import RecentTraces

TIMER_TICK = 0.01
#: Peers whose Flow objects are kept for reuse, per transport kind (then the table restarts).
_MAX_CACHED_FLOWS = 65536
_TRANSPORTS = {t: t for t in ("udp", "tcp", "tls")}  # one string object each


@dataclass(frozen=True, slots=True)
class Listener:
    transport: str  # udp, tcp, tls
    host: str
    port: int

    def __str__(self) -> str:
        return f"sip/{self.transport} {self.host}:{self.port}"


class SipNode:
    """Owns the SIP listeners, the proxy core, its timer, and the registrar."""

    def __init__(self, profile: Profile, metrics: SipMetrics, log: Any,
                 store: Store | None = None, cdrs: CdrRecorder | None = None) -> None:
        self.profile = profile
        self.metrics = metrics
        self.log = log
        sip = profile.sip
        self.registrar = Registrar(profile.registrar)
        self.directory = SubscriberDirectory(profile.operator.number_ranges)
        nonces = (
            NonceManager(os.urandom(32), profile.auth.nonce_ttl_s)
            if profile.auth.enabled else None
        )
        self.listeners: list[Listener] = []
        self._sent_by: frozenset[str] = frozenset()
        self.router = Router(profile, self.registrar, self.directory,
                             local_sent_by=lambda: self._sent_by, nonces=nonces,
                             wall_clock=time.time)
        self.core = ProxyCore(
            self.router, send=self._send, local_via=self._local_via,
            timers=TimerConfig(t1=sip.t1_ms / 1000, t2=sip.t2_ms / 1000, t4=sip.t4_ms / 1000),
            max_message_size=sip.max_message_size, server_header=sip.server_header,
            metrics=metrics, log=log, debug=profile.log.level.upper() == "DEBUG",
            max_pending_relays=sip.max_pending_relays, retry_after=sip.overload_retry_after_s,
            flow_open=self._flow_open,
        )
        self._datagrams = 0
        self._backlog_high = sip.overload_backlog_bytes
        self.cdrs = cdrs
        self.traces = RecentTraces(profile.messaging.recent_traces)
        self.core.outcome_handler = self._relay_outcome
        self.forwarding: StoreAndForward | None = None
        if store is not None and profile.messaging.store_and_forward:
            self.forwarding = StoreAndForward(profile, store, self.core, self.registrar,
                                              self.core.target_flow, log, self._now,
                                              cdrs=cdrs, route_for=self._route_for,
                                              traces=self.traces, on_imdn=self.note_imdn,
                                              on_core_change=self._rearm_if_running)
            self.core.store_handler = self.forwarding.on_store
            self.core.late_success_handler = self.forwarding.on_late_success
            self.core.distribute_handler = self.forwarding.on_distribute
            self.core.revoke_handler = self.forwarding.on_revoke
            self.core.answer_timeout = profile.messaging.answer_timeout_s
            self.router.on_registered = self.forwarding.on_registered
        self.store = store
        self._saves: set[asyncio.Task[None]] = set()
        self._spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]] | None = None
        if store is not None:
            self.router.on_bindings = self._save_bindings
        metrics.watch_registrar(lambda: self.registrar.binding_count,
                                lambda: self.registrar.aor_count)
        self._udp: UdpEndpoint | None = None
        self._streams: dict[str, StreamTransport] = {}
        self._vias: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        # Flows of the peers that send to us, shared between messages (see _udp_flow).
        self._udp_flows: dict[Address, Flow] = {}
        self._stream_flows: dict[tuple[str, str, int], Flow] = {}

    def _route_for(self, uri: str) -> Binding | None:
        try:
            return self.router.route_for(parse_name_addr(f"<{uri}>").uri)
        except RemoteProtocolError:
            return None

    def add_route(self, domain: str, next_hop: str) -> None:
        """Route requests for a foreign ``domain`` to ``next_hop`` (``sip:host:port;transport=
        tcp``), e.g. chatbot domains to the MaaP, and trust that peer for its domain."""
        self.router.add_route(domain, next_hop)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> list[Listener]:
        self._loop = asyncio.get_running_loop()
        restored = await self.load_registrations()
        if restored:
            self.log.info("registrations restored from the store", bindings=restored)
        sip = self.profile.sip
        if sip.enable_udp:
            self._udp = await open_udp(sip.host, sip.udp_port, self._on_datagram,
                                       self._on_udp_error)
            host, port = self._udp.local_address
            self.listeners.append(Listener("udp", host, port))
        if sip.enable_tcp:
            await self._listen_stream("tcp", sip.tcp_port, None)
        if sip.tls_cert and sip.tls_key:
            server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_ctx.load_cert_chain(sip.tls_cert, sip.tls_key)
            await self._listen_stream("tls", sip.tls_port, server_ctx)
        for lst in self.listeners:
            proto = "UDP" if lst.transport == "udp" else lst.transport.upper()
            self._vias[lst.transport] = f"SIP/2.0/{proto} {lst.host}:{lst.port}"
        self._sent_by = frozenset(f"{lst.host}:{lst.port}" for lst in self.listeners)
        return self.listeners

    async def _listen_stream(self, name: str, port: int, ctx: ssl.SSLContext | None) -> None:
        sip = self.profile.sip
        client_ctx = None
        if ctx is not None:
            # Lab peers use self-signed certificates: outgoing TLS does not verify them.
            client_ctx = ssl.create_default_context()
            client_ctx.check_hostname = False
            client_ctx.verify_mode = ssl.CERT_NONE
        st = StreamTransport(
            name, on_message=self._on_stream_message, on_framing_error=self._on_framing_error,
            on_send_failed=self._on_send_failed, on_count=self.metrics.tcp_connections.inc,
            max_size=sip.max_message_size, max_connections=sip.max_tcp_connections,
            idle_timeout=sip.tcp_idle_timeout_s, server_ssl=ctx, client_ssl=client_ctx,
        )
        host, bound = await st.listen(sip.host, port)
        self._streams[name] = st
        self.listeners.append(Listener(name, host, bound))

    async def run(self) -> None:
        """Run until cancelled, under one TaskGroup: housekeeping, and the outgoing stream
        connects the transports start (their parent is this group)."""
        async with asyncio.TaskGroup() as tg:
            self._spawn = tg.create_task
            for st in self._streams.values():
                st.spawn = tg.create_task
            if self.forwarding is not None:
                self.forwarding.bind(tg.create_task)
                tg.create_task(self.forwarding.run())
            if self.store is not None:
                tg.create_task(self.store.watch_bindings(self._shared_bindings))
            tg.create_task(self._housekeeping())

    # -- registrations kept in the store ----------------------------------------------------
    def _save_bindings(self, aor: str, bindings: tuple[Binding, ...]) -> None:
        """Persist an AoR's bindings after a REGISTER (soft state: written after the 200; a
        UE whose save is lost re-registers within its own refresh interval)."""
        assert self.store is not None and self._loop is not None
        offset = time.time() - self._now()
        stored = [
            StoredBinding(aor=aor, contact=str(b.contact), contact_key=b.contact_key,
                          expires_at=b.expires_at + offset, call_id=b.call_id, cseq=b.cseq,
                          transport=b.flow.transport, host=b.flow.host, port=b.flow.port,
                          q=b.q, registered_at=b.registered_at + offset)
            for b in bindings
        ]
        spawn = self._spawn or self._loop.create_task  # the node's TaskGroup once it runs
        task = spawn(self._write_bindings(aor, stored))
        self._saves.add(task)
        task.add_done_callback(self._saves.discard)

    async def _write_bindings(self, aor: str, stored: list[StoredBinding]) -> None:
        assert self.store is not None
        try:
            await self.store.save_bindings(aor, stored)
        except StoreError as exc:
            self.log.warning("could not save a registration", aor=aor, error=str(exc))

    async def load_registrations(self) -> int:
        """Rebuild the registrar from the store (at start, before listening)."""
        if self.store is None:
            return 0
        now_wall = time.time()
        offset = now_wall - self._now()
        count = 0
        async for page in self.store.iter_bindings(now_wall):
            for sb in page:
                binding = self._binding(sb, offset)
                if binding is not None:
                    self.registrar.restore(binding)
                    count += 1
        return count

    @staticmethod
    def _binding(sb: StoredBinding, offset: float) -> Binding | None:
        """A registrar binding from its stored form. Values that repeat inside one binding
        (the number, the host, the port) or across all of them (transport, q = 1.0) are shared
        rather than copied: restoring 1,000,000 registrations is a memory target (issue 3)."""
        try:
            contact = parse_name_addr(sb.contact)
        except RemoteProtocolError:
            return None
        uri = contact.uri
        host, port = sb.host, sb.port
        if isinstance(uri, SipUri):
            if uri.user == sb.aor:
                uri.user = sb.aor
            if uri.host == host:
                host = uri.host
            if uri.port == port:
                port = uri.port
        return Binding(
            aor=sb.aor, contact=contact, contact_key=sb.contact_key,
            expires_at=sb.expires_at - offset, call_id=sb.call_id, cseq=sb.cseq,
            flow=Flow(_TRANSPORTS.get(sb.transport, sb.transport), host, port),
            q=1.0 if sb.q == 1.0 else sb.q,
            feature_tags=feature_tags(contact), registered_at=sb.registered_at - offset,
        )

    def _shared_bindings(self, aor: str, stored: list[StoredBinding]) -> None:
        """Another process sharing the store registered (or unregistered) ``aor``: mirror it
        so MESSAGEs arriving here reach that UE (over UDP, or a connection we can open to its
        Contact; a TCP flow owned by the other process cannot be reused from here)."""
        offset = time.time() - self._now()
        bindings = [b for b in (self._binding(sb, offset) for sb in stored)
                    if b is not None and b.expires_at > self._now()]
        self.registrar.replace(aor, bindings)

    def _relay_outcome(self, req: Request, relay: Relay, status: int, elapsed: float) -> None:
        """Trace (and CDR) of a relayed MESSAGE; the stored ones are traced in the store."""
        sender = aor_key(req.from_().uri) or str(req.from_().uri)
        now = time.time()
        recipient = relay.number or req.uri
        ctype = req.headers.get("Content-Type") or ""
        seq = self.traces.relayed(sender, recipient, relay.imdn_id, ctype, len(req.body),
                                  now - elapsed, now, status, len(relay.targets))
        if relay.is_report:
            self.note_imdn(req.body, now)
        if self.cdrs is not None:
            self.cdrs.record(
                message_id=self.traces.trace_id(seq), sender=sender, recipient=recipient,
                outcome=DELIVERED if 200 <= status < 300 else FAILED, sip_status=status,
                received_at=now - elapsed, final_at=now, content_type=ctype,
                body_size=len(req.body), imdn_message_id=relay.imdn_id,
            )

    def note_event(self, message_id: str, event: str, detail: str = "") -> None:
        """Add an event to a message's trace (``/admin/v1/messages/{id}``) from outside the SIP
        path — e.g. the MaaP's revoke and SMS fallback (submit_sm, SMSC id, DLR). ``message_id``
        is a trace id, a stored message id or the CPIM imdn.Message-ID."""
        at = time.time()
        stored_id = self.traces.note(message_id, at, event, detail)
        if stored_id is None or self.store is None:
            return
        store = self.store

        async def add() -> None:
            with contextlib.suppress(StoreError):
                await store.add_trace(stored_id, TraceEvent(at=at, event=event, detail=detail))

        if self._spawn is not None:
            self._spawn(add())

    def note_imdn(self, cpim_body: bytes, at: float) -> None:
        """An IMDN passed through: add ``imdn-seen`` to the trace of the message it reports on
        (RFC 5438 §7: matched by the original imdn.Message-ID)."""
        try:
            report = parse_imdn(parse_cpim(cpim_body).content)
        except RemoteProtocolError:
            return  # relayed untouched; the recipient judges it
        trace_id = self.traces.resolve(report.message_id)
        if trace_id is None:
            return
        detail = f"{report.kind} {report.status}"
        if self.traces.imdn_seen(trace_id, at, detail) or self.store is None:
            return
        store = self.store

        async def add() -> None:
            with contextlib.suppress(StoreError):
                await store.add_trace(trace_id, TraceEvent(at=at, event="imdn-seen",
                                                           detail=detail))

        if self._spawn is not None:
            self._spawn(add())

    async def _housekeeping(self) -> None:
        """Registration expiry, idle connections and CDR flushing, once a second."""
        while True:
            await asyncio.sleep(1.0)
            if self.cdrs is not None:
                self.cdrs.flush()
            now = self._now()
            self.registrar.expire(now)
            mono = time.monotonic()
            for st in self._streams.values():
                st.sweep_idle(mono)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._udp is not None:
            self._udp.close()
        for st in self._streams.values():
            await st.close()

    # -- plumbing between transports and the core ----------------------------------------
    def now(self) -> float:
        """The loop clock the registrar and timers run on."""
        return self._now()

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _flow_open(self, flow: Flow) -> bool:
        st = self._streams.get(flow.transport)
        return st is not None and (flow.host, flow.port) in st.connections

    def _local_via(self, transport: str) -> str:
        return self._vias.get(transport) or next(iter(self._vias.values()))

    def _on_datagram(self, data: bytes, addr: Address) -> None:
        self._datagrams += 1
        if self._datagrams & 31 == 0:
            self._sample_backlog()
        flow = self._udp_flows.get(addr)
        if flow is None:
            flow = self._udp_flow(addr)
        assert self._loop is not None
        self.core.receive(data, flow, self._loop.time())
        self._rearm()

    def _udp_flow(self, addr: Address) -> Flow:
        """The Flow of a UDP peer, made once and shared (immutable): building one per datagram
        costs more than the lookup. The table is bounded: emptied when it grows too large."""
        flows = self._udp_flows
        if len(flows) >= _MAX_CACHED_FLOWS:
            flows.clear()
        flow = flows[addr] = Flow("udp", str(addr[0]), int(addr[1]))
        return flow

    def _sample_backlog(self) -> None:
        """Every 32 datagrams: how much is queued unread in the socket. Over the profile's
        bound the core sheds new requests with 503 until the backlog is down to half."""
        if self._udp is None or not self._backlog_high:
            return
        info = self._udp.meminfo()
        if info is None:
            return
        backlog, drops = info
        self.metrics.udp_backlog_bytes.set(backlog)
        self.metrics.udp_kernel_drops.set(drops)
        core = self.core
        if not core.backlogged and backlog > self._backlog_high:
            core.backlogged = True
            self.metrics.overloaded.set(1)
            self.log.warning("overload: answering new requests 503", backlog_bytes=backlog,
                             kernel_drops=drops, pending_relays=core.pending_relays)
        elif core.backlogged and backlog < self._backlog_high // 2:
            core.backlogged = False
            self.metrics.overloaded.set(0)
            self.log.warning("overload cleared", backlog_bytes=backlog, kernel_drops=drops)

    def _on_stream_message(self, data: bytes, transport: str, host: str, port: int) -> None:
        key = (transport, host, port)
        flow = self._stream_flows.get(key)
        if flow is None:
            if len(self._stream_flows) >= _MAX_CACHED_FLOWS:
                self._stream_flows.clear()
            flow = self._stream_flows[key] = Flow(transport, host, port)
        assert self._loop is not None
        self.core.receive(data, flow, self._loop.time())
        self._rearm()

    def _on_framing_error(self, transport: str, host: str, port: int,
                          exc: RemoteProtocolError, head: bytes) -> bytes | None:
        kind = "oversize" if exc.status_hint == 513 else "framing"
        self.metrics.parse_errors.inc(transport, kind)
        self.log.warning("closing stream connection: bad framing", transport=transport,
                         peer=f"{host}:{port}", why=exc.reason)
        # Say why before closing when the request's identifying headers can be read.
        return salvage_response(head, exc.status_hint, reason_for(exc), "fr" + os.urandom(4).hex())

    def _on_send_failed(self, transport: str, host: str, port: int) -> None:
        self.core.flow_failed(Flow(transport, host, port), self._now())
        self._rearm()

    def _on_udp_error(self, exc: Exception) -> None:
        if self.profile.log.level.upper() == "DEBUG":
            self.log.debug("udp error", error=str(exc))

    def _send(self, data: bytes, flow: Flow) -> None:
        if flow.transport == "udp":
            if self._udp is not None:
                self._udp.send(data, flow.host, flow.port)
            return
        st = self._streams.get(flow.transport)
        if st is None:
            self._loop_call_failed(flow)
            return
        st.send(data, flow.host, flow.port)

    def _loop_call_failed(self, flow: Flow) -> None:
        assert self._loop is not None
        self._loop.call_soon(self._on_send_failed, flow.transport, flow.host, flow.port)

    def _rearm_if_running(self) -> None:
        if self._loop is not None:
            self._rearm()

    def _rearm(self) -> None:
        at = self._timer_at
        assert self._loop is not None
        if at is not None and at <= self._loop.time() + self.core.min_timer_delay:
            # Armed no later than anything the core can have filed since (every new timer is
            # at least min_timer_delay away): the usual case under load, nothing to ask.
            return
        deadline = self.core.next_deadline()
        if deadline is None:
            return
        # Round up to a 10 ms tick: one loop wake-up then serves every transaction due in that
        # tick instead of one wake-up per message (RFC 3261 timers are 500 ms and more).
        deadline = math.ceil(deadline / TIMER_TICK) * TIMER_TICK
        at = self._timer_at
        if at is not None and at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.core.handle_timer(self._now())
        self._rearm()
