"""SIP transaction state machines: RFC 3261 §17, with the RFC 6026 "Accepted" states.

Sans-IO: the machines never parse, send or sleep. The caller classifies messages (status code,
retransmission, ACK), hands over already-serialized bytes, passes the current time as ``now``
(seconds, any monotonic origin) and acts on the returned events. Timers are deadlines: the
caller arms one loop timer at ``next_deadline()`` and calls ``handle_timer(now)`` when it fires.

Each class has a transition table ``TRANSITIONS: Mapping[tuple[State, Input], handler]``. Peer
and transport inputs (responses, request retransmissions, ACKs, transport errors) are listed for
every state, handled or explicitly absorbed, so peer input never raises. Timer inputs are listed
where the timer can be armed (timers are cancelled on leaving those states). A TU input missing
from the table is TU misuse and raises ``LocalProtocolError``.

Timer values (RFC 3261 Table 4, with L and M from RFC 6026 §8): A=E=G=T1 at first, on
unreliable transports only; B=F=H=L=M=64*T1; D=32 s (``TimerConfig.timer_d``) unreliable / 0
reliable; I=K=T4 unreliable / 0 reliable; J=64*T1 unreliable / 0 reliable. A zero timer is not
armed: the machine goes straight to TERMINATED. A re-armed retransmission timer counts from the
``now`` it fired at, so a late loop never causes a burst of retransmissions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum, auto
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias, TypeVar

__all__ = [
    "MAGIC_COOKIE",
    "AckReceived",
    "AckSent",
    "Event",
    "Input",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "LocalProtocolError",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "RequestRetransmissionAbsorbed",
    "RequestSent",
    "ResponseReceived",
    "ResponseSent",
    "State",
    "TimerConfig",
    "TransactionTerminated",
    "TransactionTimedOut",
    "TransportErrorOccurred",
    "client_key",
    "server_key",
]

# RFC 3261 §8.1.1.7: branches of RFC 3261 elements start with this.
MAGIC_COOKIE = "z9hG4bK"


class LocalProtocolError(Exception):
    """The transaction user asked for something the state machine forbids in its state."""


# --- keys (§17.1.3, §17.2.3) ----------------------------------------------------------------


def client_key(branch: str, cseq_method: str) -> tuple[str, str]:
    """Key matching a response to its client transaction (RFC 3261 §17.1.3).

    ``branch`` is the top Via branch of the response, ``cseq_method`` the CSeq method (needed
    because a CANCEL shares the INVITE's branch). Both are compared exactly: the response echoes
    our Via verbatim, and method names are case-sensitive (§7.1).
    """
    return (branch, cseq_method)


def server_key(branch: str, sent_by: str, method: str) -> tuple[str, str, str] | None:
    """Key matching a request to its server transaction (RFC 3261 §17.2.3).

    ACK maps to INVITE (an ACK for a non-2xx final belongs to the INVITE server transaction);
    CANCEL keeps its own key. Returns None when the top Via branch lacks ``MAGIC_COOKIE``: the
    sender predates RFC 3261 and the caller must match the RFC 2543 way (§17.2.3: Request-URI,
    To tag, From tag, Call-ID, CSeq and top Via compared with the transaction's request).
    Values are compared as received: retransmissions copy the Via byte for byte.
    """
    if not branch.startswith(MAGIC_COOKIE):
        return None
    return (branch, sent_by, "INVITE" if method == "ACK" else method)


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 Table 4 base values, in seconds.

    ``timer_d`` is Timer D on unreliable transports ("> 32 s"); lower it with the others when a
    lab scales timers down.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0

    def __post_init__(self) -> None:
        if not (0 < self.t1 <= self.t2) or self.t4 <= 0 or self.timer_d <= 0:
            raise ValueError(f"invalid SIP timer values: {self!r}")


# --- states and inputs --------------------------------------------------------------------------


class State(IntEnum):
    """Transaction states, named as in RFC 3261 §17 (ACCEPTED: RFC 6026 §7.1, §7.2)."""

    CALLING = auto()
    TRYING = auto()
    PROCEEDING = auto()
    COMPLETED = auto()
    CONFIRMED = auto()
    ACCEPTED = auto()
    TERMINATED = auto()


class Input(IntEnum):
    """Everything a transaction can be told: from the peer, the transport, the TU or a timer."""

    RESPONSE_1XX = auto()
    RESPONSE_2XX = auto()
    RESPONSE_3XX_6XX = auto()
    REQUEST_RETRANSMITTED = auto()
    ACK_RECEIVED = auto()
    TU_1XX = auto()
    TU_2XX = auto()
    TU_3XX_6XX = auto()
    TRANSPORT_ERROR = auto()
    TIMER_A = auto()
    TIMER_B = auto()
    TIMER_D = auto()
    TIMER_E = auto()
    TIMER_F = auto()
    TIMER_G = auto()
    TIMER_H = auto()
    TIMER_I = auto()
    TIMER_J = auto()
    TIMER_K = auto()
    TIMER_L = auto()
    TIMER_M = auto()


# Indexed by status // 100 (status already range-checked to 100..699).
_RESPONSE_INPUTS = (
    Input.RESPONSE_1XX,  # unused slot 0
    Input.RESPONSE_1XX,
    Input.RESPONSE_2XX,
    Input.RESPONSE_3XX_6XX,
    Input.RESPONSE_3XX_6XX,
    Input.RESPONSE_3XX_6XX,
    Input.RESPONSE_3XX_6XX,
)
_TU_INPUTS = (
    Input.TU_1XX,  # unused slot 0
    Input.TU_1XX,
    Input.TU_2XX,
    Input.TU_3XX_6XX,
    Input.TU_3XX_6XX,
    Input.TU_3XX_6XX,
    Input.TU_3XX_6XX,
)

# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestSent:
    """Client: pass the request to the transport (first send or retransmission)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ResponseSent:
    """Server: pass this response to the transport (first send or resend)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class AckSent:
    """INVITE client: pass the ACK for a 3xx-6xx to the transport (§17.1.1.3)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """Client: pass this response up to the TU."""

    status: int
    data: bytes


@dataclass(frozen=True, slots=True)
class AckReceived:
    """INVITE server in ACCEPTED: pass the ACK up to the TU, not absorbed (RFC 6026 §7.1)."""


@dataclass(frozen=True, slots=True)
class RequestRetransmissionAbsorbed:
    """Server: a request retransmission was absorbed (any resend precedes this event)."""


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """Timer B, F or H fired: the TU should act as on a 408 / give up (§8.1.3.1, §17.2.1)."""

    timer: str


@dataclass(frozen=True, slots=True)
class TransportErrorOccurred:
    """The transport failed this transaction; the TU is informed (§17.1.4, §17.2.4)."""


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """The transaction reached TERMINATED; the caller drops it."""


Event: TypeAlias = (
    RequestSent
    | ResponseSent
    | AckSent
    | ResponseReceived
    | AckReceived
    | RequestRetransmissionAbsorbed
    | TransactionTimedOut
    | TransportErrorOccurred
    | TransactionTerminated
)

# Immutable, field-less (or constant) events: shared values, not state.
_ACK_RECEIVED = AckReceived()
_ABSORBED = RequestRetransmissionAbsorbed()
_TRANSPORT_ERROR = TransportErrorOccurred()
_TERMINATED = TransactionTerminated()
_TIMED_OUT_B = TransactionTimedOut("B")
_TIMED_OUT_F = TransactionTimedOut("F")
_TIMED_OUT_H = TransactionTimedOut("H")

# --- machinery ----------------------------------------------------------------------------------

_T = TypeVar("_T", bound="_Transaction")
# handler(transaction, now, status, data) -> events; status/data are 0/b"" where meaningless.
_Handler: TypeAlias = Callable[[_T, float, int, bytes], list[Event]]
# Dispatch rows: [state][input] -> handler or None (IntEnum values index the tuples).
_Rows: TypeAlias = tuple[tuple[_Handler[_T] | None, ...], ...]


def _rows(table: Mapping[tuple[State, Input], _Handler[_T]]) -> _Rows[_T]:
    """Flatten a transition table into tuples indexed by [state][input] for dispatch."""
    rows: list[list[_Handler[_T] | None]] = [
        [None] * (max(Input) + 1) for _ in range(max(State) + 1)
    ]
    for (state, inp), handler in table.items():
        rows[state][inp] = handler
    return tuple(tuple(row) for row in rows)


def _ignore(self: _Transaction, now: float, status: int, data: bytes) -> list[Event]:
    """Absorb the input: no action, no state change."""
    return []


class _Transaction:
    """Shared state and dispatch. Subclasses provide TRANSITIONS (and _ROWS built from it)."""

    # Constructors live in the concrete classes (no super() chain: construction is hot).
    __slots__ = ("_cfg", "_interval", "_timers", "branch", "reliable", "state")

    TRANSITIONS: ClassVar[Mapping[tuple[State, Input], _Handler[Any]]]
    _ROWS: ClassVar[_Rows[Any]]
    STATES: ClassVar[frozenset[State]]

    branch: str
    state: State
    reliable: bool
    _cfg: TimerConfig
    _interval: float  # current Timer A/E/G interval, set when the timer is first armed
    # Armed timers: input -> deadline. At most two entries; on equal deadlines the one
    # inserted first fires first.
    _timers: dict[Input, float]

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def next_deadline(self) -> float | None:
        """Earliest armed timer deadline, or None when no timer is armed."""
        timers = self._timers
        return min(timers.values()) if timers else None

    def handle_timer(self, now: float) -> list[Event]:
        """Fire every timer whose deadline is <= now, earliest first."""
        timers = self._timers
        events: list[Event] = []
        while timers:
            due: Input | None = None
            at = now
            for inp, deadline in timers.items():
                if deadline <= at and (due is None or deadline < at):
                    due, at = inp, deadline
            if due is None:
                break
            del timers[due]
            events += self._feed(due, now, 0, b"")
        return events

    def _feed(self, inp: Input, now: float, status: int, data: bytes) -> list[Event]:
        """Dispatch one input through the transition table."""
        handler = self._ROWS[self.state][inp]
        if handler is None:
            raise LocalProtocolError(f"{inp.name} is not allowed in state {self.state.name}")
        return handler(self, now, status, data)

    def _terminate(self) -> TransactionTerminated:
        self.state = State.TERMINATED
        self._timers.clear()
        return _TERMINATED

    def _transport_failed(self, now: float, status: int, data: bytes) -> list[Event]:
        """§17.1.4 / §17.2.4: inform the TU and terminate."""
        return [_TRANSPORT_ERROR, self._terminate()]


# --- client transactions (§17.1) ----------------------------------------------------------------


class _ClientTransaction(_Transaction):
    __slots__ = ("_started", "request")

    request: bytes
    _started: bool

    def receive_response(self, status: int, data: bytes, now: float) -> list[Event]:
        """A response matching this transaction (see ``client_key``) arrived."""
        if not self._started:
            raise LocalProtocolError("receive_response() before start()")
        if not 100 <= status <= 699:
            raise LocalProtocolError(f"status {status} out of range 100-699")
        inp = _RESPONSE_INPUTS[status // 100]
        handler = self._ROWS[self.state][inp]  # _feed, inlined: this is the hot path
        if handler is None:
            raise LocalProtocolError(f"{inp.name} is not allowed in state {self.state.name}")
        return handler(self, now, status, data)

    def transport_error(self, now: float) -> list[Event]:
        """The transport failed to send this transaction's request (§17.1.4)."""
        if not self._started:
            raise LocalProtocolError("transport_error() before start()")
        return self._feed(Input.TRANSPORT_ERROR, now, 0, b"")

    def _begin(self, now: float, retransmit: Input, timeout: Input) -> list[Event]:
        if self._started:
            raise LocalProtocolError("start() called twice")
        self._started = True
        t1 = self._cfg.t1
        # Timeout first: on equal deadlines it wins over a pointless retransmission.
        self._timers[timeout] = now + 64 * t1
        if not self.reliable:
            self._interval = t1
            self._timers[retransmit] = now + t1
        return [RequestSent(self.request)]


class NonInviteClientTransaction(_ClientTransaction):
    """Non-INVITE client transaction, RFC 3261 §17.1.2 (Figure 6)."""

    __slots__ = ()

    STATES: ClassVar[frozenset[State]] = frozenset(
        {State.TRYING, State.PROCEEDING, State.COMPLETED, State.TERMINATED}
    )

    def __init__(self, branch: str, request: bytes, *, reliable: bool, timers: TimerConfig) -> None:
        self.branch = branch
        self.request = request
        self.state = State.TRYING
        self.reliable = reliable
        self._cfg = timers
        self._timers = {}
        self._started = False

    def start(self, now: float) -> list[Event]:
        """Send the request; arm Timer F (64*T1) and, if unreliable, Timer E (T1)."""
        return self._begin(now, Input.TIMER_E, Input.TIMER_F)

    def _provisional(self, now: float, status: int, data: bytes) -> list[Event]:
        self.state = State.PROCEEDING
        return [ResponseReceived(status, data)]

    def _final(self, now: float, status: int, data: bytes) -> list[Event]:
        # §17.1.2.2: to COMPLETED, Timer K = T4 (unreliable) or 0 (reliable).
        timers = self._timers
        timers.clear()
        if self.reliable:
            return [ResponseReceived(status, data), self._terminate()]
        self.state = State.COMPLETED
        timers[Input.TIMER_K] = now + self._cfg.t4
        return [ResponseReceived(status, data)]

    def _timer_e(self, now: float, status: int, data: bytes) -> list[Event]:
        # §17.1.2.2: E doubles up to T2 in TRYING, is T2 in PROCEEDING.
        if self.state is State.TRYING:
            self._interval = min(2 * self._interval, self._cfg.t2)
        else:
            self._interval = self._cfg.t2
        self._timers[Input.TIMER_E] = now + self._interval
        return [RequestSent(self.request)]

    def _timer_f(self, now: float, status: int, data: bytes) -> list[Event]:
        return [_TIMED_OUT_F, self._terminate()]

    def _timer_k(self, now: float, status: int, data: bytes) -> list[Event]:
        return [self._terminate()]

    TRANSITIONS: ClassVar[Mapping[tuple[State, Input], _Handler[NonInviteClientTransaction]]]
    TRANSITIONS = MappingProxyType(
        {
            (State.TRYING, Input.RESPONSE_1XX): _provisional,
            (State.TRYING, Input.RESPONSE_2XX): _final,
            (State.TRYING, Input.RESPONSE_3XX_6XX): _final,
            (State.TRYING, Input.TIMER_E): _timer_e,
            (State.TRYING, Input.TIMER_F): _timer_f,
            (State.TRYING, Input.TRANSPORT_ERROR): _Transaction._transport_failed,
            (State.PROCEEDING, Input.RESPONSE_1XX): _provisional,
            (State.PROCEEDING, Input.RESPONSE_2XX): _final,
            (State.PROCEEDING, Input.RESPONSE_3XX_6XX): _final,
            (State.PROCEEDING, Input.TIMER_E): _timer_e,
            (State.PROCEEDING, Input.TIMER_F): _timer_f,
            (State.PROCEEDING, Input.TRANSPORT_ERROR): _Transaction._transport_failed,
            # §17.1.2.2: COMPLETED absorbs response retransmissions; nothing is sent there.
            (State.COMPLETED, Input.RESPONSE_1XX): _ignore,
            (State.COMPLETED, Input.RESPONSE_2XX): _ignore,
            (State.COMPLETED, Input.RESPONSE_3XX_6XX): _ignore,
            (State.COMPLETED, Input.TIMER_K): _timer_k,
            (State.COMPLETED, Input.TRANSPORT_ERROR): _ignore,
            (State.TERMINATED, Input.RESPONSE_1XX): _ignore,
            (State.TERMINATED, Input.RESPONSE_2XX): _ignore,
            (State.TERMINATED, Input.RESPONSE_3XX_6XX): _ignore,
            (State.TERMINATED, Input.TRANSPORT_ERROR): _ignore,
        }
    )
    _ROWS: ClassVar[_Rows[NonInviteClientTransaction]] = _rows(TRANSITIONS)


class InviteClientTransaction(_ClientTransaction):
    """INVITE client transaction, RFC 3261 §17.1.1 (Figure 5) as amended by RFC 6026 §7.2.

    In PROCEEDING no timer runs: bounding the wait for a final response is the TU's Timer C
    (§16.6 step 11) followed by CANCEL.
    """

    __slots__ = ("_ack", "_build_ack")

    STATES: ClassVar[frozenset[State]] = frozenset(
        {State.CALLING, State.PROCEEDING, State.COMPLETED, State.ACCEPTED, State.TERMINATED}
    )

    def __init__(
        self,
        branch: str,
        request: bytes,
        *,
        reliable: bool,
        timers: TimerConfig,
        build_ack: Callable[[bytes], bytes],
    ) -> None:
        self.branch = branch
        self.request = request
        self.state = State.CALLING
        self.reliable = reliable
        self._cfg = timers
        self._timers = {}
        self._started = False
        self._build_ack = build_ack
        self._ack = b""

    def start(self, now: float) -> list[Event]:
        """Send the INVITE; arm Timer B (64*T1) and, if unreliable, Timer A (T1)."""
        return self._begin(now, Input.TIMER_A, Input.TIMER_B)

    def _provisional(self, now: float, status: int, data: bytes) -> list[Event]:
        # §17.1.1.2: no retransmissions in PROCEEDING; Timer B only matters in CALLING.
        self._timers.clear()
        self.state = State.PROCEEDING
        return [ResponseReceived(status, data)]

    def _provisional_again(self, now: float, status: int, data: bytes) -> list[Event]:
        return [ResponseReceived(status, data)]

    def _success(self, now: float, status: int, data: bytes) -> list[Event]:
        # RFC 6026 §7.2: 2xx to TU, ACCEPTED, Timer M = 64*T1 (the TU ACKs 2xx itself).
        timers = self._timers
        timers.clear()
        self.state = State.ACCEPTED
        timers[Input.TIMER_M] = now + 64 * self._cfg.t1
        return [ResponseReceived(status, data)]

    def _success_again(self, now: float, status: int, data: bytes) -> list[Event]:
        # RFC 6026 §7.2: further 2xx (retransmitted or forked) go up to the TU.
        return [ResponseReceived(status, data)]

    def _failure(self, now: float, status: int, data: bytes) -> list[Event]:
        # §17.1.1.2/§17.1.1.3: ACK the 3xx-6xx, response to TU, COMPLETED with Timer D.
        timers = self._timers
        timers.clear()
        self._ack = ack = self._build_ack(data)
        if self.reliable:
            return [AckSent(ack), ResponseReceived(status, data), self._terminate()]
        self.state = State.COMPLETED
        timers[Input.TIMER_D] = now + self._cfg.timer_d
        return [AckSent(ack), ResponseReceived(status, data)]

    def _failure_again(self, now: float, status: int, data: bytes) -> list[Event]:
        # §17.1.1.2: a retransmitted final re-sends the ACK and is not passed up.
        return [AckSent(self._ack)]

    def _timer_a(self, now: float, status: int, data: bytes) -> list[Event]:
        # §17.1.1.2: A doubles each time, with no T2 cap.
        self._interval *= 2
        self._timers[Input.TIMER_A] = now + self._interval
        return [RequestSent(self.request)]

    def _timer_b(self, now: float, status: int, data: bytes) -> list[Event]:
        return [_TIMED_OUT_B, self._terminate()]

    def _timer_d_or_m(self, now: float, status: int, data: bytes) -> list[Event]:
        return [self._terminate()]

    TRANSITIONS: ClassVar[Mapping[tuple[State, Input], _Handler[InviteClientTransaction]]]
    TRANSITIONS = MappingProxyType(
        {
            (State.CALLING, Input.RESPONSE_1XX): _provisional,
            (State.CALLING, Input.RESPONSE_2XX): _success,
            (State.CALLING, Input.RESPONSE_3XX_6XX): _failure,
            (State.CALLING, Input.TIMER_A): _timer_a,
            (State.CALLING, Input.TIMER_B): _timer_b,
            (State.CALLING, Input.TRANSPORT_ERROR): _Transaction._transport_failed,
            (State.PROCEEDING, Input.RESPONSE_1XX): _provisional_again,
            (State.PROCEEDING, Input.RESPONSE_2XX): _success,
            (State.PROCEEDING, Input.RESPONSE_3XX_6XX): _failure,
            # Not in Figure 5 (nothing is sent here), but e.g. a lost TCP connection means no
            # final can arrive: tell the TU rather than wait for its Timer C.
            (State.PROCEEDING, Input.TRANSPORT_ERROR): _Transaction._transport_failed,
            (State.COMPLETED, Input.RESPONSE_1XX): _ignore,
            (State.COMPLETED, Input.RESPONSE_2XX): _ignore,
            (State.COMPLETED, Input.RESPONSE_3XX_6XX): _failure_again,
            (State.COMPLETED, Input.TIMER_D): _timer_d_or_m,
            (State.COMPLETED, Input.TRANSPORT_ERROR): _Transaction._transport_failed,
            (State.ACCEPTED, Input.RESPONSE_1XX): _ignore,
            (State.ACCEPTED, Input.RESPONSE_2XX): _success_again,
            (State.ACCEPTED, Input.RESPONSE_3XX_6XX): _ignore,
            (State.ACCEPTED, Input.TIMER_M): _timer_d_or_m,
            (State.ACCEPTED, Input.TRANSPORT_ERROR): _ignore,
            (State.TERMINATED, Input.RESPONSE_1XX): _ignore,
            (State.TERMINATED, Input.RESPONSE_2XX): _ignore,
            (State.TERMINATED, Input.RESPONSE_3XX_6XX): _ignore,
            (State.TERMINATED, Input.TRANSPORT_ERROR): _ignore,
        }
    )
    _ROWS: ClassVar[_Rows[InviteClientTransaction]] = _rows(TRANSITIONS)


# --- server transactions (§17.2) ----------------------------------------------------------------


class _ServerTransaction(_Transaction):
    __slots__ = ("_last_response",)

    _last_response: bytes | None  # resent on request retransmissions

    def receive_request(self, now: float) -> list[Event]:
        """A retransmission of the request that created this transaction arrived."""
        return self._feed(Input.REQUEST_RETRANSMITTED, now, 0, b"")

    def send_response(self, status: int, data: bytes, now: float) -> list[Event]:
        """The TU sends a response with this status (``data`` already serialized)."""
        if not 100 <= status <= 699:
            raise LocalProtocolError(f"status {status} out of range 100-699")
        inp = _TU_INPUTS[status // 100]
        handler = self._ROWS[self.state][inp]  # _feed, inlined: this is the hot path
        if handler is None:
            raise LocalProtocolError(f"{inp.name} is not allowed in state {self.state.name}")
        return handler(self, now, status, data)

    def transport_error(self, now: float) -> list[Event]:
        """The transport failed to send this transaction's response (§17.2.4)."""
        return self._feed(Input.TRANSPORT_ERROR, now, 0, b"")

    def _resend(self, now: float, status: int, data: bytes) -> list[Event]:
        """Absorb a request retransmission, re-sending the last response if any."""
        last = self._last_response
        if last is None:
            return [_ABSORBED]
        return [ResponseSent(last), _ABSORBED]

    def _absorb(self, now: float, status: int, data: bytes) -> list[Event]:
        return [_ABSORBED]

    def _send_provisional(self, now: float, status: int, data: bytes) -> list[Event]:
        self.state = State.PROCEEDING
        self._last_response = data
        return [ResponseSent(data)]

    def _timer_end(self, now: float, status: int, data: bytes) -> list[Event]:
        return [self._terminate()]


class NonInviteServerTransaction(_ServerTransaction):
    """Non-INVITE server transaction, RFC 3261 §17.2.2 (Figure 8)."""

    __slots__ = ()

    STATES: ClassVar[frozenset[State]] = frozenset(
        {State.TRYING, State.PROCEEDING, State.COMPLETED, State.TERMINATED}
    )

    def __init__(self, branch: str, *, reliable: bool, timers: TimerConfig) -> None:
        self.branch = branch
        self.state = State.TRYING
        self.reliable = reliable
        self._cfg = timers
        self._timers = {}
        self._last_response = None

    def start(self, now: float) -> list[Event]:
        """Optional, for symmetry with the other machines: a NIST sends nothing by itself."""
        return []

    def _send_final(self, now: float, status: int, data: bytes) -> list[Event]:
        # §17.2.2: to COMPLETED, Timer J = 64*T1 (unreliable) or 0 (reliable).
        if self.reliable:
            return [ResponseSent(data), self._terminate()]
        self.state = State.COMPLETED
        self._last_response = data
        self._timers[Input.TIMER_J] = now + 64 * self._cfg.t1
        return [ResponseSent(data)]

    TRANSITIONS: ClassVar[Mapping[tuple[State, Input], _Handler[NonInviteServerTransaction]]]
    TRANSITIONS = MappingProxyType(
        {
            # §17.2.2: retransmissions in TRYING are discarded; nothing sent yet can fail.
            (State.TRYING, Input.REQUEST_RETRANSMITTED): _ServerTransaction._absorb,
            (State.TRYING, Input.TU_1XX): _ServerTransaction._send_provisional,
            (State.TRYING, Input.TU_2XX): _send_final,
            (State.TRYING, Input.TU_3XX_6XX): _send_final,
            (State.TRYING, Input.TRANSPORT_ERROR): _ignore,
            (State.PROCEEDING, Input.REQUEST_RETRANSMITTED): _ServerTransaction._resend,
            (State.PROCEEDING, Input.TU_1XX): _ServerTransaction._send_provisional,
            (State.PROCEEDING, Input.TU_2XX): _send_final,
            (State.PROCEEDING, Input.TU_3XX_6XX): _send_final,
            (State.PROCEEDING, Input.TRANSPORT_ERROR): _Transaction._transport_failed,
            (State.COMPLETED, Input.REQUEST_RETRANSMITTED): _ServerTransaction._resend,
            (State.COMPLETED, Input.TIMER_J): _ServerTransaction._timer_end,
            (State.COMPLETED, Input.TRANSPORT_ERROR): _Transaction._transport_failed,
            (State.TERMINATED, Input.REQUEST_RETRANSMITTED): _ignore,
            (State.TERMINATED, Input.TRANSPORT_ERROR): _ignore,
        }
    )
    _ROWS: ClassVar[_Rows[NonInviteServerTransaction]] = _rows(TRANSITIONS)


class InviteServerTransaction(_ServerTransaction):
    """INVITE server transaction, RFC 3261 §17.2.1 (Figure 7) as amended by RFC 6026 §7.1.

    ``auto_trying``: the serialized 100 (Trying) the transaction sends on the TU's behalf
    (§17.2.1). Simplification: it is sent at once, by ``start(now)``, rather than after 200 ms
    of TU silence, and counts as the last provisional for INVITE retransmissions.
    """

    __slots__ = ("_auto_trying", "_started")

    STATES: ClassVar[frozenset[State]] = frozenset(
        {State.PROCEEDING, State.COMPLETED, State.CONFIRMED, State.ACCEPTED, State.TERMINATED}
    )

    def __init__(
        self,
        branch: str,
        *,
        reliable: bool,
        timers: TimerConfig,
        auto_trying: bytes | None = None,
    ) -> None:
        self.branch = branch
        self.state = State.PROCEEDING
        self.reliable = reliable
        self._cfg = timers
        self._timers = {}
        self._last_response = auto_trying
        self._auto_trying = auto_trying
        self._started = False

    def start(self, now: float) -> list[Event]:
        """Return ``[ResponseSent(auto_trying)]`` if one was given, else ``[]``.

        Optional; if used, call it once, before the TU sends any response.
        """
        if (
            self._started
            or self.state is not State.PROCEEDING
            or self._last_response is not self._auto_trying
        ):
            raise LocalProtocolError("start() must come once, before any response")
        self._started = True
        trying = self._auto_trying
        return [] if trying is None else [ResponseSent(trying)]

    def receive_ack(self, now: float) -> list[Event]:
        """An ACK matching this transaction (``server_key`` maps ACK to INVITE) arrived."""
        return self._feed(Input.ACK_RECEIVED, now, 0, b"")

    def _send_success(self, now: float, status: int, data: bytes) -> list[Event]:
        # RFC 6026 §7.1: 2xx sent, ACCEPTED, Timer L = 64*T1 (2xx resends are the TU's).
        self.state = State.ACCEPTED
        self._timers[Input.TIMER_L] = now + 64 * self._cfg.t1
        return [ResponseSent(data)]

    def _send_success_again(self, now: float, status: int, data: bytes) -> list[Event]:
        return [ResponseSent(data)]

    def _send_failure(self, now: float, status: int, data: bytes) -> list[Event]:
        # §17.2.1: COMPLETED, Timer H = 64*T1, Timer G = T1 if unreliable.
        self.state = State.COMPLETED
        self._last_response = data
        timers = self._timers
        timers[Input.TIMER_H] = now + 64 * self._cfg.t1
        if not self.reliable:
            self._interval = t1 = self._cfg.t1
            timers[Input.TIMER_G] = now + t1
        return [ResponseSent(data)]

    def _confirm(self, now: float, status: int, data: bytes) -> list[Event]:
        # §17.2.1: ACK -> CONFIRMED, Timer I = T4 (unreliable) or 0 (reliable).
        timers = self._timers
        timers.clear()
        if self.reliable:
            return [self._terminate()]
        self.state = State.CONFIRMED
        timers[Input.TIMER_I] = now + self._cfg.t4
        return []

    def _pass_ack(self, now: float, status: int, data: bytes) -> list[Event]:
        return [_ACK_RECEIVED]

    def _report_transport_error(self, now: float, status: int, data: bytes) -> list[Event]:
        # The TU's 2xx failed to go out; the transaction stays to absorb INVITEs.
        return [_TRANSPORT_ERROR]

    def _timer_g(self, now: float, status: int, data: bytes) -> list[Event]:
        # §17.2.1: resend the final, G doubles up to T2.
        self._interval = min(2 * self._interval, self._cfg.t2)
        self._timers[Input.TIMER_G] = now + self._interval
        last = self._last_response
        assert last is not None  # set on entering COMPLETED
        return [ResponseSent(last)]

    def _timer_h(self, now: float, status: int, data: bytes) -> list[Event]:
        return [_TIMED_OUT_H, self._terminate()]

    TRANSITIONS: ClassVar[Mapping[tuple[State, Input], _Handler[InviteServerTransaction]]]
    TRANSITIONS = MappingProxyType(
        {
            (State.PROCEEDING, Input.REQUEST_RETRANSMITTED): _ServerTransaction._resend,
            (State.PROCEEDING, Input.ACK_RECEIVED): _ignore,  # no final sent: stray ACK
            (State.PROCEEDING, Input.TU_1XX): _ServerTransaction._send_provisional,
            (State.PROCEEDING, Input.TU_2XX): _send_success,
            (State.PROCEEDING, Input.TU_3XX_6XX): _send_failure,
            (State.PROCEEDING, Input.TRANSPORT_ERROR): _Transaction._transport_failed,
            (State.COMPLETED, Input.REQUEST_RETRANSMITTED): _ServerTransaction._resend,
            (State.COMPLETED, Input.ACK_RECEIVED): _confirm,
            (State.COMPLETED, Input.TIMER_G): _timer_g,
            (State.COMPLETED, Input.TIMER_H): _timer_h,
            (State.COMPLETED, Input.TRANSPORT_ERROR): _Transaction._transport_failed,
            # §17.2.1: CONFIRMED absorbs ACKs (and late INVITEs) until Timer I.
            (State.CONFIRMED, Input.REQUEST_RETRANSMITTED): _ServerTransaction._absorb,
            (State.CONFIRMED, Input.ACK_RECEIVED): _ignore,
            (State.CONFIRMED, Input.TIMER_I): _ServerTransaction._timer_end,
            (State.CONFIRMED, Input.TRANSPORT_ERROR): _ignore,
            # RFC 6026 §7.1: absorb INVITEs, ACKs go to the TU, the TU resends 2xx.
            (State.ACCEPTED, Input.REQUEST_RETRANSMITTED): _ServerTransaction._absorb,
            (State.ACCEPTED, Input.ACK_RECEIVED): _pass_ack,
            (State.ACCEPTED, Input.TU_2XX): _send_success_again,
            (State.ACCEPTED, Input.TIMER_L): _ServerTransaction._timer_end,
            (State.ACCEPTED, Input.TRANSPORT_ERROR): _report_transport_error,
            (State.TERMINATED, Input.REQUEST_RETRANSMITTED): _ignore,
            (State.TERMINATED, Input.ACK_RECEIVED): _ignore,
            (State.TERMINATED, Input.TRANSPORT_ERROR): _ignore,
        }
    )
    _ROWS: ClassVar[_Rows[InviteServerTransaction]] = _rows(TRANSITIONS)
