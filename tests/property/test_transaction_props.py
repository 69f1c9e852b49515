"""Properties of the RFC 3261 §17 transaction tables and machines."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fivegmc.sip.transaction import (
    AckReceived,
    AckSent,
    Event,
    Input,
    InviteClientTransaction,
    InviteServerTransaction,
    LocalProtocolError,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    RequestRetransmissionAbsorbed,
    RequestSent,
    ResponseReceived,
    ResponseSent,
    State,
    TimerConfig,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)

Tx = (
    NonInviteClientTransaction
    | InviteClientTransaction
    | NonInviteServerTransaction
    | InviteServerTransaction
)
CLASSES: list[type[Tx]] = [
    NonInviteClientTransaction,
    InviteClientTransaction,
    NonInviteServerTransaction,
    InviteServerTransaction,
]


def _ack(response: bytes) -> bytes:
    return b"ACK " + response


def make(cls: type[Tx], reliable: bool, timers: TimerConfig) -> Tx:
    if cls is InviteClientTransaction:
        return InviteClientTransaction(
            "z9hG4bK1", b"INVITE", reliable=reliable, timers=timers, build_ack=_ack
        )
    if cls is NonInviteClientTransaction:
        return NonInviteClientTransaction("z9hG4bK1", b"MESSAGE", reliable=reliable, timers=timers)
    if cls is InviteServerTransaction:
        return InviteServerTransaction(
            "z9hG4bK1", reliable=reliable, timers=timers, auto_trying=b"100"
        )
    return NonInviteServerTransaction("z9hG4bK1", reliable=reliable, timers=timers)


# What each class can be told, by source (the public methods produce exactly these inputs).
_RESPONSES = {Input.RESPONSE_1XX, Input.RESPONSE_2XX, Input.RESPONSE_3XX_6XX}
PEER_INPUTS: dict[type[Tx], set[Input]] = {
    NonInviteClientTransaction: _RESPONSES | {Input.TRANSPORT_ERROR},
    InviteClientTransaction: _RESPONSES | {Input.TRANSPORT_ERROR},
    NonInviteServerTransaction: {Input.REQUEST_RETRANSMITTED, Input.TRANSPORT_ERROR},
    InviteServerTransaction: {
        Input.REQUEST_RETRANSMITTED,
        Input.ACK_RECEIVED,
        Input.TRANSPORT_ERROR,
    },
}
TU_INPUTS: dict[type[Tx], set[Input]] = {
    NonInviteClientTransaction: set(),
    InviteClientTransaction: set(),
    NonInviteServerTransaction: {Input.TU_1XX, Input.TU_2XX, Input.TU_3XX_6XX},
    InviteServerTransaction: {Input.TU_1XX, Input.TU_2XX, Input.TU_3XX_6XX},
}
TIMERS: dict[type[Tx], set[Input]] = {
    NonInviteClientTransaction: {Input.TIMER_E, Input.TIMER_F, Input.TIMER_K},
    InviteClientTransaction: {Input.TIMER_A, Input.TIMER_B, Input.TIMER_D, Input.TIMER_M},
    NonInviteServerTransaction: {Input.TIMER_J},
    InviteServerTransaction: {Input.TIMER_G, Input.TIMER_H, Input.TIMER_I, Input.TIMER_L},
}
_STATUS_OF = {
    Input.RESPONSE_1XX: 180,
    Input.RESPONSE_2XX: 200,
    Input.RESPONSE_3XX_6XX: 486,
    Input.TU_1XX: 180,
    Input.TU_2XX: 200,
    Input.TU_3XX_6XX: 486,
}

# Public calls that bring a fresh, unreliable machine into each of its states.
_PATHS: dict[type[Tx], dict[State, list[tuple[str, int]]]] = {
    NonInviteClientTransaction: {
        State.TRYING: [("start", 0)],
        State.PROCEEDING: [("start", 0), ("response", 100)],
        State.COMPLETED: [("start", 0), ("response", 200)],
        State.TERMINATED: [("start", 0), ("transport_error", 0)],
    },
    InviteClientTransaction: {
        State.CALLING: [("start", 0)],
        State.PROCEEDING: [("start", 0), ("response", 180)],
        State.COMPLETED: [("start", 0), ("response", 486)],
        State.ACCEPTED: [("start", 0), ("response", 200)],
        State.TERMINATED: [("start", 0), ("transport_error", 0)],
    },
    NonInviteServerTransaction: {
        State.TRYING: [],
        State.PROCEEDING: [("tu", 100)],
        State.COMPLETED: [("tu", 200)],
        State.TERMINATED: [("tu", 100), ("transport_error", 0)],
    },
    InviteServerTransaction: {
        State.PROCEEDING: [("start", 0)],
        State.COMPLETED: [("tu", 486)],
        State.CONFIRMED: [("tu", 486), ("ack", 0)],
        State.ACCEPTED: [("tu", 200)],
        State.TERMINATED: [("transport_error", 0)],
    },
}


def call(tx: Tx, action: str, status: int, now: float) -> list[Event]:
    """Drive ``tx`` through its public API."""
    if action == "start":
        return tx.start(now)
    if action == "timer":
        return tx.handle_timer(now)
    if action == "transport_error":
        return tx.transport_error(now)
    if action == "response":
        assert isinstance(tx, NonInviteClientTransaction | InviteClientTransaction)
        return tx.receive_response(status, b"r%d" % status, now)
    if action == "tu":
        assert isinstance(tx, NonInviteServerTransaction | InviteServerTransaction)
        return tx.send_response(status, b"r%d" % status, now)
    if action == "request":
        assert isinstance(tx, NonInviteServerTransaction | InviteServerTransaction)
        return tx.receive_request(now)
    if action == "ack":
        assert isinstance(tx, InviteServerTransaction)
        return tx.receive_ack(now)
    raise AssertionError(action)


# --- the tables cover every (state, input) pair ---------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "state", "inp"),
    [(cls, state, inp) for cls in CLASSES for state in sorted(cls.STATES) for inp in Input],
)
def test_every_state_input_pair_is_in_the_table_or_refused(
    cls: type[Tx], state: State, inp: Input
) -> None:
    tx = make(cls, False, TimerConfig())
    for action, status in _PATHS[cls][state]:
        call(tx, action, status, 0.0)
    assert tx.state is state
    if (state, inp) in cls.TRANSITIONS:
        if inp in PEER_INPUTS[cls] or inp in TU_INPUTS[cls]:
            tx._feed(inp, 0.1, _STATUS_OF.get(inp, 0), b"x")  # handled: does not raise
        return
    # Not in the table, by design: peer input never is (it is absorbed instead), so this is
    # either TU misuse, a timer that cannot be armed in this state (checked by the random walk
    # below), or an input this kind of transaction never receives.
    assert inp not in PEER_INPUTS[cls]
    assert inp in TU_INPUTS[cls] or inp in TIMERS[cls] or inp not in _inputs(cls)
    with pytest.raises(LocalProtocolError):
        tx._feed(inp, 0.1, _STATUS_OF.get(inp, 0), b"x")


def _inputs(cls: type[Tx]) -> set[Input]:
    return PEER_INPUTS[cls] | TU_INPUTS[cls] | TIMERS[cls]


@pytest.mark.parametrize("cls", CLASSES)
def test_tables_name_only_own_inputs(cls: type[Tx]) -> None:
    assert {inp for _, inp in cls.TRANSITIONS} == _inputs(cls)
    for state in cls.STATES:
        for inp in PEER_INPUTS[cls]:
            assert (state, inp) in cls.TRANSITIONS, (state, inp)


# --- random walks ---------------------------------------------------------------------------------

_STATUSES = st.sampled_from([100, 180, 183, 199, 200, 202, 299, 300, 404, 486, 500, 603, 699])
_ACTIONS: dict[type[Tx], list[str]] = {
    NonInviteClientTransaction: ["response", "transport_error", "timer", "start"],
    InviteClientTransaction: ["response", "transport_error", "timer", "start"],
    NonInviteServerTransaction: ["tu", "request", "transport_error", "timer", "start"],
    InviteServerTransaction: ["tu", "request", "ack", "transport_error", "timer", "start"],
}
# Calls whose LocalProtocolError is TU misuse (start twice, a response the state forbids).
_TU_ACTIONS = {"tu", "start"}
# States that wait on the TU (servers) or on a final response (ICT; the TU's Timer C bounds it).
_WAITING = {
    NonInviteClientTransaction: set(),
    InviteClientTransaction: {State.PROCEEDING},
    NonInviteServerTransaction: {State.TRYING, State.PROCEEDING},
    InviteServerTransaction: {State.PROCEEDING},
}
_SENT_BY_CLIENTS = (RequestSent, AckSent, ResponseReceived)
_SENT_BY_SERVERS = (ResponseSent, RequestRetransmissionAbsorbed, AckReceived)
_COMMON = (TransactionTimedOut, TransportErrorOccurred, TransactionTerminated)


@st.composite
def timer_configs(draw: st.DrawFn) -> TimerConfig:
    if draw(st.booleans()):
        return TimerConfig()
    t1 = draw(st.floats(0.001, 2.0))
    return TimerConfig(
        t1=t1,
        t2=t1 * draw(st.floats(1.0, 16.0)),
        t4=draw(st.floats(0.001, 10.0)),
        timer_d=draw(st.floats(0.001, 64.0)),
    )


@dataclass
class Walk:
    cls: type[Tx]
    reliable: bool
    timers: TimerConfig
    steps: list[tuple[float, str, int]]
    closing_status: int


@st.composite
def walks(draw: st.DrawFn) -> Walk:
    cls = draw(st.sampled_from(CLASSES))
    step = st.tuples(
        st.one_of(st.just(0.0), st.floats(0.0, 70.0), st.floats(0.0, 2.0)),
        st.sampled_from(_ACTIONS[cls]),
        _STATUSES,
    )
    return Walk(
        cls=cls,
        reliable=draw(st.booleans()),
        timers=draw(timer_configs()),
        steps=draw(st.lists(step, max_size=40)),
        closing_status=draw(st.sampled_from([200, 202, 404, 486, 603])),
    )


def _check_step(
    tx: Tx, cls: type[Tx], before: dict[Input, float], now: float, events: list[Event]
) -> None:
    assert tx.state in cls.STATES
    is_client = cls in (NonInviteClientTransaction, InviteClientTransaction)
    allowed = _SENT_BY_CLIENTS if is_client else _SENT_BY_SERVERS
    assert all(isinstance(ev, allowed + _COMMON) for ev in events), events
    # Every armed timer has a table entry in the current state (no timer fires into a hole).
    for timer in tx._timers:
        assert (tx.state, timer) in cls.TRANSITIONS, (tx.state, timer)
    # Timers never go backwards: whatever was (re)armed by this call lies at or after now.
    for timer, deadline in tx._timers.items():
        if before.get(timer) != deadline:
            assert deadline >= now, (timer, deadline, now)
    if tx.terminated:
        assert tx.next_deadline() is None
    if TransactionTerminated() in events:
        assert tx.terminated and events[-1] == TransactionTerminated()


@settings(max_examples=400, deadline=None)
@given(walks())
def test_random_walks(walk: Walk) -> None:
    cls = walk.cls
    tx = make(cls, walk.reliable, walk.timers)
    now = 0.0
    terminations = 0

    def step(action: str, status: int, at: float) -> list[Event]:
        nonlocal terminations
        before = dict(tx._timers)
        state = tx.state
        nd_before = tx.next_deadline()
        try:
            events = call(tx, action, status, at)
        except LocalProtocolError:
            # Only TU misuse may raise, and only where the table says so; nothing changes.
            assert action in _TU_ACTIONS
            assert tx.state is state and tx._timers == before
            if action == "tu":
                assert (state, _tu_input(status)) not in cls.TRANSITIONS
            return []
        if action == "tu":
            assert (state, _tu_input(status)) in cls.TRANSITIONS
        _check_step(tx, cls, before, at, events)
        nd_after = tx.next_deadline()
        if nd_after is not None:
            floor = at if nd_before is None else min(nd_before, at)
            assert nd_after >= floor
        if action == "timer":
            assert nd_after is None or nd_after > at  # nothing due is left behind
        terminations += events.count(TransactionTerminated())
        return events

    is_client = cls in (NonInviteClientTransaction, InviteClientTransaction)
    if is_client:
        step("start", 0, now)
    for dt, action, status in walk.steps:
        now += dt
        step(action, status, now)

    # Close what waits on someone else: the TU's final answer, or the ICT's final response.
    if tx.state in _WAITING[cls]:
        step("response" if is_client else "tu", walk.closing_status, now)
    last_input = now
    t = walk.timers
    bound = last_input + 64 * t.t1 + max(t.t4, t.timer_d)
    for _ in range(10_000):
        deadline = tx.next_deadline()
        if deadline is None:
            break
        now = max(now, deadline)
        step("timer", 0, now)
    assert tx.terminated, tx.state
    assert now <= bound + 1e-9
    assert terminations == 1


def _tu_input(status: int) -> Input:
    if status < 200:
        return Input.TU_1XX
    return Input.TU_2XX if status < 300 else Input.TU_3XX_6XX


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([NonInviteClientTransaction, InviteClientTransaction]),
    timer_configs(),
)
def test_client_retransmission_schedule(cls: type[Tx], timers: TimerConfig) -> None:
    """Unanswered over UDP: E caps at T2, A never caps; both stop at 64*T1 (B/F)."""
    tx = make(cls, False, timers)
    sends = [0.0 for ev in tx.start(0.0) if isinstance(ev, RequestSent)]
    last: list[Event] = []
    while (at := tx.next_deadline()) is not None:
        last = tx.handle_timer(at)
        sends += [at for ev in last if isinstance(ev, RequestSent)]
    expected = [0.0]
    interval = timers.t1
    t = timers.t1
    while t < 64 * timers.t1:
        expected.append(t)
        interval = 2 * interval if cls is InviteClientTransaction else min(2 * interval, timers.t2)
        t += interval
    assert sends == pytest.approx(expected)
    assert last[-2].timer == ("B" if cls is InviteClientTransaction else "F")  # type: ignore[union-attr]
