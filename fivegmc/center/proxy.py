"""The 5GMC's SIP core: a transaction-stateful proxy and registrar, sans-IO.

Bytes come in with the flow they arrived on (:meth:`ProxyCore.receive`); bytes go out through
the ``send`` callable the adapter provides; time is passed in and the adapter arms one loop
timer at :meth:`ProxyCore.next_deadline`. Routing decisions come from the pipeline in
:mod:`fivegmc.core.routing`; this module carries them out with RFC 3261 §17 transactions and
the §16 proxy rules (Via, Max-Forwards, forking, best-response selection).
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
from collections.abc import Callable
from typing import Any

from ..core.registrar import Binding, Flow
from ..core.routing import (
    Absorb,
    Decision,
    Distribute,
    Relay,
    Reply,
    Revoke,
    Router,
    SmsOut,
    Store,
    loop_hash,
)
from ..obs.metrics import SipMetrics
from ..sip.errors import RemoteProtocolError, is_digits
from ..sip.headers import Headers, split_list
from ..sip.message import Request, Response, make_response, reason_phrase
from ..sip.parser import KEEPALIVE, parse_message
from ..sip.transaction import (
    MAGIC_COOKIE,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    RequestRetransmissionAbsorbed,
    RequestSent,
    ResponseReceived,
    ResponseSent,
    TimerConfig,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from ..sip.uri import SipUri
from ..sip.via import parse_via

Sender = Callable[[bytes, Flow], None]
_RELIABLE = frozenset(("tcp", "tls"))
#: Timer resolution of the proxy core: 10 ms (RFC 3261 timers are 500 ms and longer).
TICKS_PER_SECOND = 100
_IP_CHARS = frozenset("0123456789.:abcdefABCDEF[]")


class _ServerSide:
    """A server transaction plus what the proxy needs to answer through it."""

    __slots__ = ("armed", "best", "branches", "challenges", "context_done", "flow", "key",
                 "method", "number", "relay", "relayed", "request", "started", "stored", "txn")

    def __init__(self, key: Any, txn: NonInviteServerTransaction, flow: Flow, request: Request,
                 started: float) -> None:
        self.key = key
        self.txn = txn
        self.flow = flow
        # The parsed request is needed until a final response is sent upstream, then dropped:
        # a UDP server transaction lives on for Timer J (32 s) and should hold only the bytes
        # of its final response, not ~60 objects of parsed headers (GC cost at load).
        self.request: Request | None = request
        self.method = request.method
        self.started = started
        self.armed: int | None = None  # the timer tick this side is filed under
        self.branches = 0  # client branches still without a final response
        self.best: tuple[int, Response | None] | None = None  # best final (§16.7 step 6)
        # from 401/407 branches (§16.7 step 7); a list only once there is one (one object less
        # per transaction for the collector to scan)
        self.challenges: list[tuple[str, str]] | None = None
        self.context_done = False  # a final response has been sent upstream
        self.relayed = False
        self.number: str | None = None  # recipient subscriber, for store-on-timeout
        self.relay: Relay | None = None  # the relay decision, for the outcome handler
        self.stored = False  # handed to store-and-forward after the answer timeout


class _ClientSide:
    """A client transaction: a branch of a relayed request (``server`` set), or a request the
    node originates itself (``on_final`` set, e.g. a store-and-forward delivery)."""

    __slots__ = ("armed", "flow", "key", "on_final", "server", "txn")

    def __init__(self, key: Any, txn: NonInviteClientTransaction, flow: Flow,
                 server: _ServerSide | None,
                 on_final: Callable[[int], None] | None = None) -> None:
        self.key = key
        self.txn = txn
        self.flow = flow
        self.server = server
        self.on_final = on_final
        self.armed: int | None = None

    def settle(self, status: int) -> None:
        """Report the final outcome of an originated request, once."""
        callback = self.on_final
        if callback is not None:
            self.on_final = None
            callback(status)


#: 4xx answers a UAC can act on, preferred among 4xx (RFC 3261 §16.7 step 6).
_ACTIONABLE_4XX = frozenset((401, 407, 415, 420, 484))
_CANCELABLE = ("MESSAGE", "OPTIONS", "REGISTER")
_CHALLENGES = ("WWW-Authenticate", "Proxy-Authenticate")


def _response_rank(status: int) -> tuple[int, int]:
    """Order for best-response choice (RFC 3261 §16.7 step 6): any 6xx first, then the lowest
    class; within 4xx prefer 401/407/415/420/484, and within a class prefer real answers to
    the 408/503 we synthesize for timeouts and transport errors."""
    if status >= 600:
        return (0, status)
    if status in _ACTIONABLE_4XX:
        return (status // 100, 0)
    return (status // 100, 2 if status in (408, 503) else 1)


class ProxyCore:
    """Routes out-of-dialog requests for one node. No I/O, no asyncio, no global state."""

    def __init__(
        self,
        router: Router,
        *,
        send: Sender,
        local_via: Callable[[str], str],
        timers: TimerConfig,
        max_message_size: int,
        server_header: str,
        metrics: SipMetrics | None = None,
        log: Any = None,
        debug: bool = False,
        max_pending_relays: int = 20000,
        retry_after: int = 1,
        flow_open: Callable[[Flow], bool] | None = None,
        on_store: Callable[[Request, str, object, bool], None] | None = None,
        answer_timeout: float = 0.0,
    ) -> None:
        self.router = router
        self._send = send
        # Asks the adapter whether a connection-oriented flow is still open (a query, no I/O).
        self._flow_open = flow_open or (lambda flow: True)
        # Store decisions go to this handler, which answers later through :meth:`answer`;
        # its last argument says "stored after the answer timeout, a relay is still running".
        self.store_handler = on_store
        # Told when a relayed MESSAGE gets its final response: (request, the relay decision,
        # status, seconds since it arrived) — for traces and CDRs.
        self.outcome_handler: Callable[[Request, Relay, int, float], None] | None = None
        # One-to-many requests go to this handler, answered later through :meth:`answer`.
        self.distribute_handler: Callable[[Request, Distribute, object], None] | None = None
        # Told when a UE's 2xx arrives for a request already stored after the answer timeout.
        self.late_success_handler: Callable[[object], None] | None = None
        # Revoke requests go to this handler, answered later through :meth:`answer`.
        self.revoke_handler: Callable[[Request, Revoke, object], None] | None = None
        # P2P SMS fallback goes to this handler, answered later through :meth:`answer`.
        self.sms_handler: Callable[[Request, SmsOut, object], None] | None = None
        self.timers = timers
        self.min_timer_delay = 0.0
        self.answer_timeout = answer_timeout  # sets min_timer_delay
        self._answer_deadlines: list[tuple[float, int, _ServerSide]] = []
        self._answer_seq = itertools.count()
        self._local_via = local_via
        self.max_message_size = max_message_size
        self.server_header = server_header
        self.metrics = metrics
        self.log = log
        self.debug = debug
        self._servers: dict[Any, _ServerSide] = {}
        self._clients: dict[tuple[str, str], _ClientSide] = {}
        # Timers by tick (TICKS_PER_SECOND): filing a transaction is O(1); a small heap orders
        # the ticks that have buckets. Entries whose side was re-armed since are skipped.
        self._buckets: dict[int, list[_ServerSide | _ClientSide]] = {}
        self._ticks: list[int] = []
        self._branch_seq = itertools.count(1)
        # Our own Via values (one per transport) known to parse plainly: see _own_branch.
        self._plain_vias: set[str] = set()
        self._tag_prefix = os.urandom(4).hex()
        # Overload (DESIGN.md §3): set by the adapter from the socket backlog; pending relays
        # are counted here. While either is over its bound, new requests get 503.
        self.backlogged = False
        self.max_pending_relays = max_pending_relays
        self.retry_after = str(retry_after)
        self._pending_relays = 0
        self._tag_seq = itertools.count(1)
        if metrics is not None:
            metrics.watch_transactions(lambda: len(self._servers), lambda: len(self._clients))

    # -- inputs --------------------------------------------------------------------------
    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        """One datagram, or one framed message from a stream."""
        if data == KEEPALIVE:
            # RFC 5626 §4.4.1: answer a CRLFCRLF ping with a CRLF pong on streams.
            if flow.transport in _RELIABLE:
                self._send(b"\r\n", flow)
            return
        try:
            msg = parse_message(data, max_size=self.max_message_size,
                                stream=flow.transport in _RELIABLE)
        except RemoteProtocolError as exc:
            self._bad_input(data, flow, exc)
            return
        try:
            if isinstance(msg, Request):
                self._on_request(msg, flow, now)
            else:
                self._on_response(msg, flow, now)
        except RemoteProtocolError as exc:
            self._bad_input(data, flow, exc, msg)

    def handle_timer(self, now: float) -> None:
        deadlines = self._answer_deadlines
        while deadlines and deadlines[0][0] <= now:
            _, _, waiting = heapq.heappop(deadlines)
            if waiting.context_done or waiting.request is None or self.store_handler is None:
                continue
            # No final answer in time: store-and-forward takes over (issue 3) and answers 202.
            assert waiting.number is not None
            waiting.stored = True
            self.store_handler(waiting.request, waiting.number, waiting, True)
        ticks = self._ticks
        buckets = self._buckets
        while ticks and ticks[0] / TICKS_PER_SECOND <= now:
            tick = heapq.heappop(ticks)
            for side in buckets.pop(tick, ()):
                if side.armed != tick:
                    continue  # re-armed or finished since it was filed here
                side.armed = None
                if isinstance(side, _ServerSide):
                    self._server_events(side, side.txn.handle_timer(now), now)
                else:
                    self._client_events(side, side.txn.handle_timer(now), now)

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` should run next (a tick boundary, never before a timer's
        own deadline; it may find nothing left to do there)."""
        ticks = self._ticks
        buckets = self._buckets
        first: float | None = None
        while ticks:
            tick = ticks[0]
            if any(side.armed == tick for side in buckets.get(tick, ())):
                first = tick / TICKS_PER_SECOND
                break
            heapq.heappop(ticks)  # nothing live left in the front bucket: drop it
            buckets.pop(tick, None)
        deadlines = self._answer_deadlines
        while deadlines and deadlines[0][2].context_done:
            heapq.heappop(deadlines)
        if deadlines and (first is None or deadlines[0][0] < first):
            return deadlines[0][0]
        return first

    def flow_failed(self, flow: Flow, now: float) -> None:
        """The adapter could not send on ``flow`` (e.g. TCP connect refused): §16.9."""
        for side in [c for c in self._clients.values() if c.flow == flow]:
            self._client_events(side, side.txn.transport_error(now), now)

    @property
    def answer_timeout(self) -> float:
        return self._answer_timeout

    @answer_timeout.setter
    def answer_timeout(self, seconds: float) -> None:
        self._answer_timeout = seconds
        # No timer this core files is due sooner than this after the call that files it
        # (Timer E = T1, K = T4, F = J = 64·T1; the answer timeout): an adapter whose loop
        # timer is due within this need not ask next_deadline() again.
        delay = min(self.timers.t1, self.timers.t4)
        self.min_timer_delay = min(delay, seconds) if seconds > 0 else delay

    @property
    def pending_relays(self) -> int:
        return self._pending_relays

    @property
    def transaction_counts(self) -> tuple[int, int]:
        return len(self._servers), len(self._clients)

    # -- requests ------------------------------------------------------------------------
    def _on_request(self, req: Request, flow: Flow, now: float) -> None:
        via = req.top_via()
        branch = via.branch
        method = req.method
        if branch is not None and branch.startswith(MAGIC_COOKIE):
            key: Any = (branch, via.sent_by, "INVITE" if method == "ACK" else method)
        else:  # RFC 2543 peers: match on the request's identity (§17.2.3, simplified)
            key = (req.call_id(), req.headers.get("CSeq"), str(req.from_().tag),
                   str(via), method)
        existing = self._servers.get(key)
        if existing is not None:
            if self.metrics is not None:
                self.metrics.retransmissions.inc("received")
            self._server_events(existing, existing.txn.receive_request(now), now)
            return
        if method == "ACK":
            self._count(method, "absorbed")
            return  # ACK for a response we never sent, or a 2xx ACK routed to us: drop
        rport = via.param("rport")
        if via.host != flow.host or rport == "":
            # §18.2.1: note the source address; RFC 3581 §4: fill in an empty rport.
            params = [(k, v) for k, v in via.params if k.lower() not in ("received", "rport")]
            params.append(("received", flow.host))
            if rport is not None:
                params.append(("rport", str(flow.port)))
            via.params = tuple(params)
            req.replace_top_via(str(via))
        decision: Decision
        if self.backlogged or self._pending_relays >= self.max_pending_relays:
            # Shed new work cheaply: no routing, no relay; the UAC stops retransmitting.
            decision = Reply(503, "Overloaded", headers=(("Retry-After", self.retry_after),))
            if self.metrics is not None:
                self.metrics.dropped.inc("overload 503")
        elif method == "CANCEL" and self._cancel_matches(branch, via.sent_by):
            # §9.2 / §16.10: a CANCEL matching a transaction is answered 200; a non-INVITE
            # transaction goes on to its own final response.
            decision = Reply(200)
        else:
            decision = self.router.route(req, flow, now)
        if isinstance(decision, Absorb):
            self._count(method, "absorbed")
            return
        side = _ServerSide(key, NonInviteServerTransaction(
            branch or "", reliable=flow.transport in _RELIABLE, timers=self.timers,
        ), flow, req, now)
        self._servers[key] = side
        if isinstance(decision, Relay):
            self._relay(side, decision, now)
        elif isinstance(decision, Reply):
            self._reply(side, decision, now)
        elif isinstance(decision, Distribute):
            if self.distribute_handler is None:
                self._reply(side, Reply(420, headers=(("Unsupported", "recipient-list-message"),)),
                            now)
            else:
                self.distribute_handler(req, decision, side)  # answered via answer()
        elif isinstance(decision, SmsOut):
            if self.sms_handler is None:
                self._reply(side, Reply(480, "Recipient has no 5G Message client"), now)
            else:
                self.sms_handler(req, decision, side)  # answered via answer()
        elif isinstance(decision, Revoke):
            if self.revoke_handler is None:
                self._reply(side, Reply(404, "Message not stored"), now)
            else:
                self.revoke_handler(req, decision, side)  # answered via answer()
        elif isinstance(decision, Store):
            if self.store_handler is None:
                self._reply(side, Reply(480, log_reason="store-and-forward unavailable"), now)
            else:
                self.store_handler(req, decision.number, side, False)  # answered via answer()

    def answer(self, token: object, status: int, now: float, reason: str | None = None,
               headers: tuple[tuple[str, str], ...] = ()) -> None:
        """Send the final response for a request handed to the adapter (a Store decision)."""
        assert isinstance(token, _ServerSide)
        if token.context_done or token.request is None:
            return
        self._reply(token, Reply(status, reason, headers), now)

    def originate(self, data: bytes, flow: Flow, branch: str, method: str,
                  on_final: Callable[[int], None], now: float) -> None:
        """Send a request of the node's own (e.g. a stored MESSAGE) in a client transaction;
        ``on_final`` gets the final status, 408 on timeout, 503 on a transport error."""
        txn = NonInviteClientTransaction(branch, data, reliable=flow.transport in _RELIABLE,
                                         timers=self.timers)
        ckey = (branch, method)
        client = _ClientSide(ckey, txn, flow, None, on_final)
        self._clients[ckey] = client
        self._client_events(client, txn.start(now), now)

    def new_branch(self) -> str:
        return f"{MAGIC_COOKIE}{self._tag_prefix}o{next(self._branch_seq):x}"

    def local_via(self, transport: str) -> str:
        return self._local_via(transport)

    def _cancel_matches(self, branch: str | None, sent_by: str) -> bool:
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            return False
        return any((branch, sent_by, m) in self._servers for m in _CANCELABLE)

    def _reply(self, side: _ServerSide, d: Reply, now: float) -> None:
        req = side.request
        assert req is not None
        extra = list(d.headers)
        extra.append(("Server", self.server_header))
        resp = make_response(req, d.status, d.reason, to_tag=self._new_tag(), extra=extra,
                             body=d.body)
        if d.log_reason and self.log is not None:
            if d.status >= 500 or d.status in (400, 413, 420, 482, 483, 513):
                self.log.warning("request refused", method=req.method, status=d.status,
                                 why=d.log_reason, call_id=req.headers.get("Call-ID"),
                                 peer=f"{side.flow.host}:{side.flow.port}")
            elif self.debug:
                self.log.debug("request answered", method=req.method, status=d.status,
                               why=d.log_reason)
        self._finish(side, d.status, resp.to_bytes(), now)

    def _relay(self, side: _ServerSide, d: Relay, now: float) -> None:
        """Forward to each target (RFC 3261 §16.6), one client transaction per branch."""
        req = side.request
        assert req is not None
        side.relayed = True
        self._pending_relays += 1
        side.number = d.number
        side.relay = d
        if (self._answer_timeout and d.number is not None and self.store_handler is not None
                and req.method == "MESSAGE" and d.storable):
            heapq.heappush(self._answer_deadlines,
                           (now + self._answer_timeout, next(self._answer_seq), side))
        lh = loop_hash(req)
        for binding in d.targets:
            flow = self._target_flow(binding)
            branch = f"{MAGIC_COOKIE}{lh}.{self._tag_prefix}{next(self._branch_seq):x}"
            out = req.forward_bytes(req.uri if d.keep_uri else str(binding.contact.uri),
                                    f"{self._local_via(flow.transport)};branch={branch}",
                                    d.max_forwards)
            txn = NonInviteClientTransaction(
                branch, out, reliable=flow.transport in _RELIABLE, timers=self.timers,
            )
            ckey = (branch, req.method)
            client = _ClientSide(ckey, txn, flow, side)
            self._clients[ckey] = client
            side.branches += 1
            self._client_events(client, txn.start(now), now)
        if self.debug and self.log is not None:
            self.log.debug("request relayed", method=req.method, uri=req.uri,
                           branches=len(d.targets))

    def target_flow(self, b: Binding) -> Flow:
        return self._target_flow(b)

    def _target_flow(self, b: Binding) -> Flow:
        """Where to send a request for a binding (RFC 3261 §18.1.1, RFC 5626 style reuse):
        back over the registration's own connection while it is open; otherwise to the
        Contact's address over the transport it names (UDP by default)."""
        if b.flow.transport in _RELIABLE and self._flow_open(b.flow):
            return b.flow
        uri = b.contact.uri
        if isinstance(uri, SipUri) and _IP_CHARS.issuperset(uri.host):
            transport = (uri.param("transport") or "udp").lower() if uri.params else "udp"
            if uri.scheme == "sips" and transport == "tcp":
                transport = "tls"
            if transport in ("udp", "tcp", "tls"):
                port = uri.port or (5061 if transport == "tls" else 5060)
                host = uri.host.strip("[]")
                own = b.flow  # usually the Contact's own address: no new Flow
                if own.port == port and own.host == host and own.transport == transport:
                    return own
                return Flow(transport, host, port)
        return b.flow

    # -- responses -----------------------------------------------------------------------
    def _on_response(self, resp: Response, flow: Flow, now: float) -> None:
        branch = self._own_branch(resp, flow)
        if branch is None:
            branch = resp.top_via().branch
        client = self._clients.get((branch or "", resp.cseq()[1]))
        if client is None:
            # §16.7 step 2: a response matching no client transaction is forwarded
            # statelessly; we only originate branches ourselves, so it is stray.
            self._drop("stray response")
            return
        self._client_events(client, client.txn.receive_response(resp.status, b"", now), now,
                            resp)

    def _own_branch(self, resp: Response, flow: Flow) -> str | None:
        """The branch of the top Via when it is ours as we sent it (``<our Via>;branch=<b>``,
        the usual case; RFC 3261 §16.7 step 3 finds our Via there): read without parsing the
        Via, the same value :meth:`Message.top_via` would give. None: parse it."""
        value = resp.headers.get("Via")
        if value is None:
            return None
        own = self._local_via(flow.transport)
        n = len(own)
        if value[n : n + 8] != ";branch=" or not value.startswith(own):
            return None
        if own not in self._plain_vias:
            if not self._is_plain_via(own):
                return None  # e.g. an IPv6 listener: let the parser judge
            self._plain_vias.add(own)
        branch = value[n + 8 :]
        comma = branch.find(",")
        if comma >= 0:
            branch = branch[:comma]
        # letters, digits and dots only (as we make them): nothing the Via grammar treats apart
        if branch.isascii() and branch.replace(".", "").isalnum() and '"' not in value:
            return branch
        return None

    @staticmethod
    def _is_plain_via(own: str) -> bool:
        """Our Via value parses to itself plus the branch (checked once per listener)."""
        try:
            via = parse_via(f"{own};branch=z9hG4bK0")
        except RemoteProtocolError:
            return False
        return str(via) == f"{own};branch=z9hG4bK0" and via.branch == "z9hG4bK0"

    def _client_events(self, client: _ClientSide, events: list[Any], now: float,
                       resp: Response | None = None) -> None:
        for ev in events:
            if isinstance(ev, RequestSent):
                self._send(ev.data, client.flow)
            elif isinstance(ev, ResponseReceived):
                assert resp is not None
                if client.server is None:
                    if resp.status >= 200:
                        client.settle(resp.status)
                else:
                    self._branch_response(client, resp, now)
            elif isinstance(ev, TransactionTimedOut):
                if client.server is None:
                    client.settle(408)
                else:
                    self._branch_final(client.server, 408, None, now)  # §16.8
            elif isinstance(ev, TransportErrorOccurred):
                if client.server is None:
                    client.settle(503)
                else:
                    self._branch_final(client.server, 503, None, now)  # §16.9
            elif isinstance(ev, TransactionTerminated):
                self._clients.pop(client.key, None)
                client.armed = None
                if self.metrics is not None:
                    self.metrics.transactions.inc("client", "completed")
                return
        self._arm(client)

    def _branch_response(self, client: _ClientSide, resp: Response, now: float) -> None:
        side = client.server
        assert side is not None  # originated requests are settled in _client_events
        status = resp.status
        if status < 200:
            if status == 100 or side.context_done:
                return  # 100 is hop-by-hop (§16.7 step 5)
            self._forward_response(side, resp, now, final=False)
            return
        side.branches -= 1
        if side.context_done:
            if side.stored and status < 300 and self.late_success_handler is not None:
                side.stored = False  # once
                self.late_success_handler(side)  # delivered after all: do not send it again
            return
        if status < 300:
            self._forward_response(side, resp, now, final=True)  # first 2xx wins
            return
        self._branch_final(side, status, resp, now)

    def _branch_final(self, side: _ServerSide, status: int, resp: Response | None,
                      now: float) -> None:
        if resp is None:
            side.branches -= 1
        if side.context_done:
            return
        if resp is not None and status in (401, 407):
            for name in _CHALLENGES:
                if side.challenges is None:
                    side.challenges = []
                side.challenges.extend((name, v) for v in resp.headers.get_fields(name))
        if side.best is None or _response_rank(status) < _response_rank(side.best[0]):
            side.best = (status, resp)
        if side.branches > 0:
            return
        best_status, best = side.best
        if best_status == 408:
            # RFC 4320 §4.1: a transaction-stateful element MUST NOT send 408 to a non-INVITE
            # request; the UAC's own Timer F has fired by now. End silently.
            self._abandon(side, now)
            return
        if best is None or best_status == 503:
            # Our own answer: a synthesized failure, or 500 instead of a 503 (§16.7 step 6).
            status_out = 500 if best_status == 503 else best_status
            assert side.request is not None
            data = make_response(side.request, status_out, to_tag=self._new_tag(),
                                 extra=[("Server", self.server_header)]).to_bytes()
            self._finish(side, status_out, data, now)
            return
        if best_status in (401, 407):
            # §16.7 step 7: the challenges of every 401/407 branch go into the one forwarded.
            headers = best.headers.copy()
            headers.pop_first_value("Via")
            for name in _CHALLENGES:
                headers.remove(name)
            for k, v in side.challenges or ():
                headers.add(k, v)
            data = Response(best.status, best.reason, headers, best.body).to_bytes()
        else:
            data = best.without_top_via()
        self._finish(side, best_status, data, now)

    def _abandon(self, side: _ServerSide, now: float) -> None:
        side.context_done = True
        if side.relayed:
            self._pending_relays -= 1
        side.request = None
        side.best = None
        self._count(side.method, "timeout")
        self._servers.pop(side.key, None)
        side.armed = None
        if self.metrics is not None:
            self.metrics.transactions.inc("server", "abandoned")

    def _forward_response(self, side: _ServerSide, resp: Response, now: float, *,
                          final: bool) -> None:
        if final and side.method == "OPTIONS" and side.number is not None:
            self.router.note_capabilities(side.number, resp.status,
                                          resp.headers.get("Contact"), now)
        data = self._strip_via(resp)
        if self.metrics is not None:
            self.metrics.responses_relayed.inc(f"{resp.status // 100}xx")
        if final:
            self._finish(side, resp.status, data, now)
        else:
            self._server_events(side, side.txn.send_response(resp.status, data, now), now)

    @staticmethod
    def _strip_via(resp: Response) -> bytes:
        """§16.7 step 3: remove our Via (the topmost) before forwarding the response."""
        return resp.without_top_via()

    def _finish(self, side: _ServerSide, status: int, data: bytes, now: float) -> None:
        side.context_done = True
        if side.relayed:
            self._pending_relays -= 1
            if (self.outcome_handler is not None and side.request is not None
                    and side.relay is not None and side.method == "MESSAGE"
                    and not side.stored):
                self.outcome_handler(side.request, side.relay, status, now - side.started)
        side.request = None
        side.relay = None
        side.best = None
        side.challenges = None
        self._count(side.method, str(status))
        if side.relayed and self.metrics is not None:
            self.metrics.relay_seconds.observe(now - side.started)
        self._server_events(side, side.txn.send_response(status, data, now), now)

    # -- server transaction events -------------------------------------------------------
    def _server_events(self, side: _ServerSide, events: list[Any], now: float) -> None:
        for ev in events:
            if isinstance(ev, ResponseSent):
                self._send(ev.data, side.flow)
            elif isinstance(ev, TransactionTerminated):
                self._servers.pop(side.key, None)
                side.armed = None
                if self.metrics is not None:
                    self.metrics.transactions.inc("server", "completed")
                return
            elif isinstance(ev, RequestRetransmissionAbsorbed):
                continue
            elif isinstance(ev, TransportErrorOccurred):
                self._drop("transport error answering")
        self._arm(side)

    def _arm(self, side: _ServerSide | _ClientSide) -> None:
        deadline = side.txn.next_deadline()
        if deadline is None:
            side.armed = None
            return
        # Round up to the next tick (the small epsilon keeps 32.0 s at tick 3200, not 3201),
        # but never to a tick before the deadline, or the timer would find nothing due.
        tick = math.ceil(deadline * TICKS_PER_SECOND - 1e-6)
        if tick / TICKS_PER_SECOND < deadline:
            tick += 1
        if tick != side.armed:
            side.armed = tick
            bucket = self._buckets.get(tick)
            if bucket is None:
                self._buckets[tick] = [side]
                heapq.heappush(self._ticks, tick)
            else:
                bucket.append(side)

    # -- bad input -----------------------------------------------------------------------
    def _bad_input(self, data: bytes, flow: Flow, exc: RemoteProtocolError,
                   msg: Request | Response | None = None) -> None:
        kind = "oversize" if exc.status_hint == 513 else "malformed"
        if self.metrics is not None:
            self.metrics.parse_errors.inc(flow.transport, kind)
        answer = None
        if isinstance(msg, Request):
            try:
                answer = make_response(msg, exc.status_hint, reason_for(exc),
                                       to_tag=self._new_tag(),
                                       extra=[("Server", self.server_header)]).to_bytes()
            except RemoteProtocolError:
                answer = None
        if answer is None and not isinstance(msg, Response):
            answer = salvage_response(data, exc.status_hint, reason_for(exc), self._new_tag())
        if self.log is not None:
            self.log.warning("bad SIP input", transport=flow.transport,
                             peer=f"{flow.host}:{flow.port}", why=exc.reason,
                             status=exc.status_hint if answer else None, size=len(data))
        if answer is not None:
            self._send(answer, flow)
        else:
            self._drop("unanswerable bad input")

    def _drop(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.dropped.inc(reason)

    def _count(self, method: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.requests.inc(method if method in _METRIC_METHODS else "other", outcome)

    def _new_tag(self) -> str:
        return f"{self._tag_prefix}{next(self._tag_seq):x}"


_METRIC_METHODS = frozenset(("REGISTER", "MESSAGE", "OPTIONS", "ACK", "CANCEL", "INVITE",
                             "BYE", "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "PRACK",
                             "UPDATE", "REFER"))


def reason_for(exc: RemoteProtocolError) -> str:
    """A reason phrase that says why (RFC 3261 §21.4.1 allows any text), one line only."""
    base = reason_phrase(exc.status_hint)
    detail = "".join(c if c.isprintable() else "?" for c in exc.reason)[:120]
    return f"{base} ({detail})"


_SALVAGE = {b"via": "Via", b"v": "Via", b"from": "From", b"f": "From", b"to": "To", b"t": "To",
            b"call-id": "Call-ID", b"i": "Call-ID", b"cseq": "CSeq"}


def salvage_response(data: bytes, status: int, reason: str, tag: str) -> bytes | None:
    """Best effort answer to a request we could not parse: RFC 3261 §8.2.6 needs Via, From,
    To, Call-ID and CSeq copied; if the start line is a request line and those can be found
    line by line, answer; otherwise nothing can be routed back and the caller drops it."""
    head = data.split(b"\r\n\r\n", 1)[0][:8192]
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    if not lines or lines[0].startswith(b"SIP/") or b" SIP/" not in lines[0]:
        return None
    found: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        canonical = _SALVAGE.get(name.strip().lower())
        if colon and canonical:
            text = value.strip().decode("utf-8", "replace")
            if not text or any(c in text for c in "\r\n\x00"):
                continue
            found.setdefault(canonical, []).append(text)
    if not all(k in found for k in ("Via", "From", "To", "Call-ID", "CSeq")):
        return None
    # The answer is only useful if the client can match it: Via and CSeq must be well formed.
    num, _, method = found["CSeq"][0].partition(" ")
    if not is_digits(num) or not method.strip().isalpha():
        return None
    try:
        parse_via(split_list(found["Via"][0])[0])
    except (RemoteProtocolError, IndexError):
        return None
    items: list[tuple[str, str]] = [("Via", v) for v in found["Via"]]
    to = found["To"][0]
    if "tag=" not in to:
        to = f"{to};tag={tag}"
    items += [("From", found["From"][0]), ("To", to), ("Call-ID", found["Call-ID"][0]),
              ("CSeq", found["CSeq"][0])]
    return Response(status, reason, Headers(items)).to_bytes()
