"""RFC 3261 §17 / RFC 6026 transaction machines, time driven by hand."""

from __future__ import annotations

import pytest

from fivegmc.sip.transaction import (
    MAGIC_COOKIE,
    AckReceived,
    AckSent,
    Event,
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
    client_key,
    server_key,
)

CFG = TimerConfig()
BRANCH = MAGIC_COOKIE + "abc"
REQ = b"MESSAGE sip:b@x SIP/2.0\r\n\r\n"
INV = b"INVITE sip:b@x SIP/2.0\r\n\r\n"
TRYING = b"SIP/2.0 100 Trying\r\n\r\n"
RINGING = b"SIP/2.0 180 Ringing\r\n\r\n"
OK = b"SIP/2.0 200 OK\r\n\r\n"
BUSY = b"SIP/2.0 486 Busy Here\r\n\r\n"
ACK = b"ACK sip:b@x SIP/2.0\r\n\r\n"

_Tx = (
    NonInviteClientTransaction
    | InviteClientTransaction
    | NonInviteServerTransaction
    | InviteServerTransaction
)


def nict(reliable: bool = False) -> NonInviteClientTransaction:
    return NonInviteClientTransaction(BRANCH, REQ, reliable=reliable, timers=CFG)


class AckBuilder:
    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def __call__(self, response: bytes) -> bytes:
        self.calls.append(response)
        return ACK


def ict(reliable: bool = False, timers: TimerConfig = CFG) -> InviteClientTransaction:
    return InviteClientTransaction(
        BRANCH, INV, reliable=reliable, timers=timers, build_ack=AckBuilder()
    )


def nist(reliable: bool = False) -> NonInviteServerTransaction:
    return NonInviteServerTransaction(BRANCH, reliable=reliable, timers=CFG)


def ist(reliable: bool = False, auto_trying: bytes | None = None) -> InviteServerTransaction:
    return InviteServerTransaction(BRANCH, reliable=reliable, timers=CFG, auto_trying=auto_trying)


def state_of(tx: _Tx) -> State:
    """Read the state without letting mypy narrow it across calls."""
    return tx.state


def fire_all(tx: _Tx) -> list[tuple[float, Event]]:
    """Fire timers at their deadlines until none is armed; return (time, event) pairs."""
    out: list[tuple[float, Event]] = []
    while (at := tx.next_deadline()) is not None:
        out.extend((at, ev) for ev in tx.handle_timer(at))
    return out


# --- keys and config ------------------------------------------------------------------------------


def test_client_key_separates_cancel_from_invite() -> None:
    assert client_key(BRANCH, "MESSAGE") == (BRANCH, "MESSAGE")
    assert client_key(BRANCH, "INVITE") != client_key(BRANCH, "CANCEL")


def test_server_key_maps_ack_to_invite_and_needs_magic_cookie() -> None:
    assert MAGIC_COOKIE == "z9hG4bK"
    assert server_key(BRANCH, "10.0.0.1:5060", "ACK") == (BRANCH, "10.0.0.1:5060", "INVITE")
    assert server_key(BRANCH, "h", "INVITE") == server_key(BRANCH, "h", "ACK")
    assert server_key(BRANCH, "h", "CANCEL") != server_key(BRANCH, "h", "INVITE")
    assert server_key(BRANCH, "h", "MESSAGE") == (BRANCH, "h", "MESSAGE")
    assert server_key("1234", "h", "INVITE") is None  # RFC 2543 peer: caller matches


def test_timer_config_defaults_and_validation() -> None:
    assert (CFG.t1, CFG.t2, CFG.t4, CFG.timer_d) == (0.5, 4.0, 5.0, 32.0)
    for bad in ({"t1": 0.0}, {"t1": 5.0}, {"t4": -1.0}, {"timer_d": 0.0}):
        with pytest.raises(ValueError):
            TimerConfig(**bad)


# --- NICT (§17.1.2) -----------------------------------------------------------------------------


def test_nict_udp_happy_path() -> None:
    tx = nict()
    assert state_of(tx) is State.TRYING
    assert tx.start(0.0) == [RequestSent(REQ)]
    assert tx.next_deadline() == 0.5  # Timer E = T1
    assert tx.receive_response(100, TRYING, 0.1) == [ResponseReceived(100, TRYING)]
    assert state_of(tx) is State.PROCEEDING
    assert tx.receive_response(200, OK, 0.2) == [ResponseReceived(200, OK)]
    assert state_of(tx) is State.COMPLETED
    assert tx.next_deadline() == pytest.approx(5.2)  # Timer K = T4
    assert tx.receive_response(200, OK, 0.3) == []  # retransmission absorbed
    assert tx.receive_response(180, RINGING, 0.3) == []
    assert tx.handle_timer(5.1) == []
    assert tx.handle_timer(5.2) == [TransactionTerminated()]
    assert tx.terminated and tx.next_deadline() is None
    assert tx.receive_response(200, OK, 6.0) == []  # stray response absorbed


def test_nict_tcp_happy_path_terminates_at_once() -> None:
    tx = nict(reliable=True)
    assert tx.start(0.0) == [RequestSent(REQ)]
    assert tx.next_deadline() == 32.0  # only Timer F, no E on reliable transports
    assert tx.receive_response(404, BUSY, 1.0) == [
        ResponseReceived(404, BUSY),
        TransactionTerminated(),
    ]
    assert tx.terminated and tx.next_deadline() is None


def test_nict_udp_retransmits_until_timer_f() -> None:
    tx = nict()
    tx.start(0.0)
    fired = fire_all(tx)
    sends = [t for t, ev in fired if isinstance(ev, RequestSent)]
    # E: T1, 2T1, 4T1, then T2 each time until F = 64*T1.
    assert sends == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert len(sends) == 10
    assert fired[-2:] == [(32.0, TransactionTimedOut("F")), (32.0, TransactionTerminated())]
    assert tx.terminated


def test_nict_timer_e_is_t2_in_proceeding() -> None:
    tx = nict()
    tx.start(0.0)
    assert tx.handle_timer(0.5) == [RequestSent(REQ)]
    assert tx.next_deadline() == 1.5
    tx.receive_response(100, TRYING, 0.6)
    assert tx.handle_timer(1.5) == [RequestSent(REQ)]
    assert tx.next_deadline() == 5.5  # T2, not 2*2*T1 = 2
    assert tx.handle_timer(5.5) == [RequestSent(REQ)]
    assert tx.next_deadline() == 9.5


def test_nict_tcp_timer_f_no_retransmissions() -> None:
    tx = nict(reliable=True)
    tx.start(10.0)
    assert fire_all(tx) == [(42.0, TransactionTimedOut("F")), (42.0, TransactionTerminated())]


def test_nict_late_timer_call_fires_due_timers_in_order() -> None:
    tx = nict()
    tx.start(0.0)
    assert tx.handle_timer(100.0) == [
        RequestSent(REQ),  # E (deadline 0.5) before F (32)
        TransactionTimedOut("F"),
        TransactionTerminated(),
    ]


def test_nict_transport_error() -> None:
    tx = nict()
    tx.start(0.0)
    assert tx.transport_error(0.1) == [TransportErrorOccurred(), TransactionTerminated()]
    assert tx.terminated and tx.next_deadline() is None
    assert tx.transport_error(0.2) == []
    done = nict()
    done.start(0.0)
    done.receive_response(200, OK, 0.1)
    assert done.transport_error(0.2) == []  # COMPLETED sends nothing
    assert state_of(done) is State.COMPLETED


def test_nict_misuse() -> None:
    tx = nict()
    with pytest.raises(LocalProtocolError):
        tx.receive_response(200, OK, 0.0)
    with pytest.raises(LocalProtocolError):
        tx.transport_error(0.0)
    tx.start(0.0)
    with pytest.raises(LocalProtocolError):
        tx.start(0.1)
    for status in (0, 99, 700):
        with pytest.raises(LocalProtocolError):
            tx.receive_response(status, OK, 0.1)


# --- ICT (§17.1.1, RFC 6026) --------------------------------------------------------------------


def test_ict_udp_timer_a_doubles_uncapped_until_b() -> None:
    tx = ict()
    assert tx.start(0.0) == [RequestSent(INV)]
    fired = fire_all(tx)
    sends = [t for t, ev in fired if isinstance(ev, RequestSent)]
    assert sends == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # 7 transmissions in all (§17.1.1.2)
    assert fired[-2:] == [(32.0, TransactionTimedOut("B")), (32.0, TransactionTerminated())]


def test_ict_tcp_timer_b() -> None:
    tx = ict(reliable=True)
    tx.start(0.0)
    assert fire_all(tx) == [(32.0, TransactionTimedOut("B")), (32.0, TransactionTerminated())]


def test_ict_udp_failure_acked_and_ack_resent() -> None:
    tx = ict()
    builder = tx._build_ack
    assert isinstance(builder, AckBuilder)
    tx.start(0.0)
    assert tx.receive_response(180, RINGING, 0.2) == [ResponseReceived(180, RINGING)]
    assert state_of(tx) is State.PROCEEDING
    assert tx.next_deadline() is None  # no A or B in PROCEEDING (TU's Timer C bounds it)
    assert tx.receive_response(180, RINGING, 0.3) == [ResponseReceived(180, RINGING)]
    assert tx.receive_response(486, BUSY, 1.0) == [AckSent(ACK), ResponseReceived(486, BUSY)]
    assert builder.calls == [BUSY]
    assert state_of(tx) is State.COMPLETED
    assert tx.next_deadline() == 33.0  # Timer D = 32 s
    assert tx.receive_response(486, BUSY, 2.0) == [AckSent(ACK)]  # not passed up again
    assert tx.receive_response(200, OK, 2.0) == []
    assert builder.calls == [BUSY]
    assert fire_all(tx) == [(33.0, TransactionTerminated())]


def test_ict_timer_d_follows_config() -> None:
    tx = ict(timers=TimerConfig(t1=0.05, t2=0.4, t4=0.5, timer_d=3.2))
    tx.start(0.0)
    tx.receive_response(503, BUSY, 0.01)
    assert tx.next_deadline() == pytest.approx(3.21)


def test_ict_tcp_failure_terminates_at_once() -> None:
    tx = ict(reliable=True)
    tx.start(0.0)
    assert tx.receive_response(603, BUSY, 0.5) == [
        AckSent(ACK),
        ResponseReceived(603, BUSY),
        TransactionTerminated(),
    ]


@pytest.mark.parametrize("reliable", [False, True])
def test_ict_rfc6026_accepted(reliable: bool) -> None:
    tx = ict(reliable=reliable)
    tx.start(0.0)
    assert tx.receive_response(200, OK, 1.0) == [ResponseReceived(200, OK)]
    assert state_of(tx) is State.ACCEPTED
    assert tx.next_deadline() == 33.0  # Timer M = 64*T1, any transport
    other = b"SIP/2.0 200 OK\r\nTo: <sip:b@x>;tag=fork2\r\n\r\n"
    assert tx.receive_response(200, OK, 2.0) == [ResponseReceived(200, OK)]
    assert tx.receive_response(202, other, 2.5) == [ResponseReceived(202, other)]
    assert tx.receive_response(180, RINGING, 3.0) == []
    assert tx.receive_response(486, BUSY, 3.0) == []
    assert tx.transport_error(3.0) == []
    assert fire_all(tx) == [(33.0, TransactionTerminated())]


def test_ict_transport_error() -> None:
    tx = ict()
    tx.start(0.0)
    assert tx.transport_error(0.0) == [TransportErrorOccurred(), TransactionTerminated()]
    done = ict()
    done.start(0.0)
    done.receive_response(486, BUSY, 0.1)
    assert done.transport_error(0.2) == [TransportErrorOccurred(), TransactionTerminated()]


# --- IST (§17.2.1, RFC 6026) --------------------------------------------------------------------


def test_ist_udp_failure_g_then_ack_confirmed_then_i() -> None:
    tx = ist(auto_trying=TRYING)
    assert state_of(tx) is State.PROCEEDING
    assert tx.start(0.0) == [ResponseSent(TRYING)]
    assert tx.next_deadline() is None
    assert tx.receive_request(0.1) == [ResponseSent(TRYING), RequestRetransmissionAbsorbed()]
    assert tx.receive_ack(0.1) == []  # stray ACK before any final
    assert tx.send_response(180, RINGING, 0.2) == [ResponseSent(RINGING)]
    assert tx.receive_request(0.3) == [ResponseSent(RINGING), RequestRetransmissionAbsorbed()]
    assert tx.send_response(486, BUSY, 1.0) == [ResponseSent(BUSY)]
    assert state_of(tx) is State.COMPLETED
    assert tx.receive_request(1.1) == [ResponseSent(BUSY), RequestRetransmissionAbsorbed()]
    resent = []
    while (at := tx.next_deadline()) is not None and at < 9.0:
        assert tx.handle_timer(at) == [ResponseSent(BUSY)]
        resent.append(at)
    assert resent == [1.5, 2.5, 4.5, 8.5]  # G: T1, 2T1, 4T1, T2 (capped)
    assert tx.receive_ack(9.0) == []
    assert state_of(tx) is State.CONFIRMED
    assert tx.next_deadline() == 14.0  # Timer I = T4
    assert tx.receive_ack(9.5) == []  # ACK retransmissions absorbed
    assert tx.receive_request(9.5) == [RequestRetransmissionAbsorbed()]
    assert fire_all(tx) == [(14.0, TransactionTerminated())]


def test_ist_udp_timer_h_without_ack() -> None:
    tx = ist()
    assert tx.start(0.0) == []
    tx.send_response(404, BUSY, 0.0)
    fired = fire_all(tx)
    resent = [t for t, ev in fired if isinstance(ev, ResponseSent)]
    assert resent == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert fired[-2:] == [(32.0, TransactionTimedOut("H")), (32.0, TransactionTerminated())]


def test_ist_tcp_failure() -> None:
    tx = ist(reliable=True)
    tx.send_response(486, BUSY, 0.0)
    assert tx.next_deadline() == 32.0  # H only, no G
    assert tx.receive_ack(1.0) == [TransactionTerminated()]  # I = 0
    tx2 = ist(reliable=True)
    tx2.send_response(486, BUSY, 0.0)
    assert fire_all(tx2) == [(32.0, TransactionTimedOut("H")), (32.0, TransactionTerminated())]


@pytest.mark.parametrize("reliable", [False, True])
def test_ist_rfc6026_accepted(reliable: bool) -> None:
    tx = ist(reliable=reliable, auto_trying=TRYING)
    tx.start(0.0)
    assert tx.send_response(200, OK, 1.0) == [ResponseSent(OK)]
    assert state_of(tx) is State.ACCEPTED
    assert tx.next_deadline() == 33.0  # Timer L = 64*T1, any transport
    assert tx.receive_request(1.5) == [RequestRetransmissionAbsorbed()]  # no 2xx resend
    assert tx.send_response(200, OK, 2.0) == [ResponseSent(OK)]  # TU's 2xx retransmission
    assert tx.receive_ack(2.1) == [AckReceived()]  # to the TU, not absorbed
    assert tx.transport_error(2.2) == [TransportErrorOccurred()]
    assert state_of(tx) is State.ACCEPTED
    with pytest.raises(LocalProtocolError):
        tx.send_response(486, BUSY, 2.3)
    with pytest.raises(LocalProtocolError):
        tx.send_response(180, RINGING, 2.3)
    assert fire_all(tx) == [(33.0, TransactionTerminated())]


def test_ist_transport_error() -> None:
    tx = ist()
    assert tx.transport_error(0.0) == [TransportErrorOccurred(), TransactionTerminated()]
    tx2 = ist()
    tx2.send_response(500, BUSY, 0.0)
    assert tx2.transport_error(0.1) == [TransportErrorOccurred(), TransactionTerminated()]
    tx3 = ist()
    tx3.send_response(500, BUSY, 0.0)
    tx3.receive_ack(0.1)
    assert tx3.transport_error(0.2) == []


def test_ist_misuse() -> None:
    tx = ist()
    tx.start(0.0)
    with pytest.raises(LocalProtocolError):
        tx.start(0.0)
    for status in (99, 700):
        with pytest.raises(LocalProtocolError):
            tx.send_response(status, OK, 0.0)
    tx.send_response(486, BUSY, 0.0)
    for status in (180, 200, 486):  # final already sent
        with pytest.raises(LocalProtocolError):
            tx.send_response(status, BUSY, 0.1)
    tx.receive_ack(0.2)
    with pytest.raises(LocalProtocolError):
        tx.send_response(486, BUSY, 0.3)
    fire_all(tx)
    with pytest.raises(LocalProtocolError):
        tx.send_response(486, BUSY, 10.0)
    assert tx.receive_request(10.0) == []
    assert tx.receive_ack(10.0) == []


# --- NIST (§17.2.2) -----------------------------------------------------------------------------


def test_nist_udp_happy_path() -> None:
    tx = nist()
    assert state_of(tx) is State.TRYING
    assert tx.start(0.0) == []
    assert tx.receive_request(0.1) == [RequestRetransmissionAbsorbed()]  # nothing to resend
    assert tx.transport_error(0.1) == []  # nothing sent yet
    assert tx.send_response(100, TRYING, 0.2) == [ResponseSent(TRYING)]
    assert state_of(tx) is State.PROCEEDING
    assert tx.receive_request(0.3) == [ResponseSent(TRYING), RequestRetransmissionAbsorbed()]
    assert tx.send_response(200, OK, 1.0) == [ResponseSent(OK)]
    assert state_of(tx) is State.COMPLETED
    assert tx.next_deadline() == 33.0  # Timer J = 64*T1
    assert tx.receive_request(2.0) == [ResponseSent(OK), RequestRetransmissionAbsorbed()]
    assert fire_all(tx) == [(33.0, TransactionTerminated())]
    assert tx.receive_request(40.0) == []


def test_nist_tcp_terminates_at_once() -> None:
    tx = nist(reliable=True)
    assert tx.send_response(202, OK, 0.0) == [ResponseSent(OK), TransactionTerminated()]
    assert tx.terminated and tx.next_deadline() is None


def test_nist_transport_error() -> None:
    tx = nist()
    tx.send_response(180, RINGING, 0.0)
    assert tx.transport_error(0.1) == [TransportErrorOccurred(), TransactionTerminated()]
    tx2 = nist()
    tx2.send_response(404, BUSY, 0.0)
    assert tx2.transport_error(0.1) == [TransportErrorOccurred(), TransactionTerminated()]


def test_nist_misuse() -> None:
    tx = nist()
    tx.send_response(200, OK, 0.0)
    for status in (100, 200, 404):
        with pytest.raises(LocalProtocolError):
            tx.send_response(status, OK, 0.1)
    with pytest.raises(LocalProtocolError):
        nist().send_response(42, OK, 0.0)


# --- tables ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls",
    [
        NonInviteClientTransaction,
        InviteClientTransaction,
        NonInviteServerTransaction,
        InviteServerTransaction,
    ],
)
def test_tables_only_use_declared_states(cls: type[_Tx]) -> None:
    assert {state for state, _ in cls.TRANSITIONS} == cls.STATES
    with pytest.raises(TypeError):
        cls.TRANSITIONS[(State.TERMINATED, next(iter(cls.TRANSITIONS))[1])] = None  # type: ignore[index]


def test_events_are_frozen() -> None:
    ev = RequestSent(REQ)
    with pytest.raises(AttributeError):
        ev.data = b""  # type: ignore[misc]
