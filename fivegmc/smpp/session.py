"""A sans-IO SMPP session: one TCP connection's state, seen from the SMSC or the ESME side.

``receive_data(data)`` → events; ``send(pdu)`` queues octets; ``data_to_send()`` drains them.
Bind states follow SMPP v3.4 §2.2–2.3 (OPEN → BOUND_TX / BOUND_RX / BOUND_TRX → UNBOUND →
CLOSED) and the allowed-operations table §2.3 / §4:

- before a successful bind only bind_*, enquire_link and generic_nack are accepted; anything
  else is answered ESME_RINVBNDSTS (protocols.md §6);
- a bind while bound → ESME_RALYBND;
- submit_sm / query_sm / cancel_sm need a TX or TRX bind, deliver_sm an RX or TRX bind;
  otherwise ESME_RINVBNDSTS.

The session answers by itself what needs no decision: enquire_link, unbind (→ UNBOUND),
requests refused by the table, malformed PDUs (generic_nack with ESME_RINVCMDLEN or
ESME_RINVCMDID, or the request's ``_resp`` with the field's status). It reports each refusal as
a ``PduRejected`` event. A command_length that cannot be framed closes the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .constants import (
    BIND_COMMANDS,
    MAX_SEQUENCE,
    CommandId,
    CommandStatus,
    status_name,
)
from .errors import LocalProtocolError, RemoteProtocolError
from .framer import DEFAULT_MAX_PDU, Framer
from .pdu import Body, Empty, Pdu, decode_pdu, default_response, encode_pdu


class Role(Enum):
    SMSC = "smsc"
    ESME = "esme"


class SessionState(Enum):
    OPEN = "OPEN"
    BOUND_TX = "BOUND_TX"
    BOUND_RX = "BOUND_RX"
    BOUND_TRX = "BOUND_TRX"
    UNBOUND = "UNBOUND"
    CLOSED = "CLOSED"

    @property
    def bound(self) -> bool:
        return self in (SessionState.BOUND_TX, SessionState.BOUND_RX, SessionState.BOUND_TRX)


BIND_STATE = {
    CommandId.BIND_TRANSMITTER: SessionState.BOUND_TX,
    CommandId.BIND_RECEIVER: SessionState.BOUND_RX,
    CommandId.BIND_TRANSCEIVER: SessionState.BOUND_TRX,
    CommandId.BIND_TRANSMITTER_RESP: SessionState.BOUND_TX,
    CommandId.BIND_RECEIVER_RESP: SessionState.BOUND_RX,
    CommandId.BIND_TRANSCEIVER_RESP: SessionState.BOUND_TRX,
}

_C = CommandId
_S = SessionState
_ANY = frozenset({_C.ENQUIRE_LINK, _C.GENERIC_NACK})
_BOUND = _ANY | {_C.UNBIND}
_ESME_OPS = frozenset({_C.SUBMIT_SM, _C.QUERY_SM, _C.CANCEL_SM})
# (role, state) → requests the peer may send us (SMPP v3.4 §2.3 and Table 2-1 … 2-3).
_ACCEPTS: dict[tuple[Role, SessionState], frozenset[CommandId]] = {
    (Role.SMSC, _S.OPEN): _ANY | BIND_COMMANDS,
    (Role.SMSC, _S.BOUND_TX): _BOUND | _ESME_OPS,
    (Role.SMSC, _S.BOUND_RX): _BOUND,
    (Role.SMSC, _S.BOUND_TRX): _BOUND | _ESME_OPS,
    (Role.ESME, _S.OPEN): _ANY,
    (Role.ESME, _S.BOUND_TX): _BOUND,
    (Role.ESME, _S.BOUND_RX): _BOUND | {_C.DELIVER_SM},
    (Role.ESME, _S.BOUND_TRX): _BOUND | {_C.DELIVER_SM},
    (Role.SMSC, _S.UNBOUND): _ANY,
    (Role.ESME, _S.UNBOUND): _ANY,
}
# (role, state) → requests we may send.
_SENDS: dict[tuple[Role, SessionState], frozenset[CommandId]] = {
    (Role.ESME, _S.OPEN): _ANY | BIND_COMMANDS,
    (Role.ESME, _S.BOUND_TX): _BOUND | _ESME_OPS,
    (Role.ESME, _S.BOUND_RX): _BOUND,
    (Role.ESME, _S.BOUND_TRX): _BOUND | _ESME_OPS,
    (Role.SMSC, _S.OPEN): _ANY,
    (Role.SMSC, _S.BOUND_TX): _BOUND,
    (Role.SMSC, _S.BOUND_RX): _BOUND | {_C.DELIVER_SM},
    (Role.SMSC, _S.BOUND_TRX): _BOUND | {_C.DELIVER_SM},
    (Role.SMSC, _S.UNBOUND): _ANY,
    (Role.ESME, _S.UNBOUND): _ANY,
}


# ------------------------------------------------------------------------------------------------
# Events (frozen, past tense)


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A request the state allows and the caller must answer (bind_*, submit_sm, deliver_sm,
    query_sm, cancel_sm)."""

    pdu: Pdu


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response (or generic_nack); ``request`` is the command it answers, None when its
    sequence_number matches nothing outstanding."""

    pdu: Pdu
    request: CommandId | None


@dataclass(frozen=True, slots=True)
class BindCompleted:
    """ESME side: the bind_resp said ESME_ROK; SMSC side: we accepted a bind."""

    state: SessionState
    system_id: str


@dataclass(frozen=True, slots=True)
class UnbindReceived:
    """The peer unbound (unbind_resp already queued); close once the data is sent."""


@dataclass(frozen=True, slots=True)
class UnbindCompleted:
    """Our unbind was answered; close now."""


@dataclass(frozen=True, slots=True)
class PduRejected:
    """We answered a PDU with an error status (already queued)."""

    command_id: int | None
    sequence_number: int
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionBroken:
    """The stream cannot be framed; the generic_nack is queued; close after sending it."""

    status: int
    reason: str


Event = (RequestReceived | ResponseReceived | BindCompleted | UnbindReceived | UnbindCompleted
         | PduRejected | ConnectionBroken)


class Session:
    def __init__(self, role: Role, max_pdu: int = DEFAULT_MAX_PDU) -> None:
        self.role = role
        self.state = SessionState.OPEN
        self.system_id = ""
        self._framer = Framer(max_pdu)
        self._out: list[bytes] = []
        self._sequence = 0
        #: Requests we sent awaiting their response: sequence_number → command_id.
        self.outstanding: dict[int, CommandId] = {}
        #: Requests we received that the caller has not answered yet.
        self.pending_in: dict[int, CommandId] = {}
        self._bind_system_id: dict[int, str] = {}

    # -- sending -----------------------------------------------------------------------------

    def next_sequence(self) -> int:
        self._sequence = self._sequence % MAX_SEQUENCE + 1
        return self._sequence

    def request(self, command_id: CommandId, body: Body | None = None) -> Pdu:
        """Build, queue and return a request with the next sequence_number."""
        pdu = Pdu(command_id, self.next_sequence(), Empty() if body is None else body)
        self.send(pdu)
        return pdu

    def send(self, pdu: Pdu) -> None:
        """Queue ``pdu``; LocalProtocolError if this state does not allow it."""
        if self.state is SessionState.CLOSED:
            raise LocalProtocolError("session is closed")
        cid = pdu.command_id
        if pdu.is_response:
            if cid is not CommandId.GENERIC_NACK:
                self.pending_in.pop(pdu.sequence_number, None)
            if self.role is Role.SMSC and cid in BIND_STATE:
                system_id = self._bind_system_id.pop(pdu.sequence_number, "")
                if pdu.command_status == CommandStatus.ESME_ROK:
                    if self.state is not SessionState.OPEN:
                        raise LocalProtocolError(f"cannot accept a bind in {self.state.name}")
                    self.state = BIND_STATE[cid]
                    self.system_id = system_id
        else:
            if cid not in _SENDS[(self.role, self.state)]:
                raise LocalProtocolError(f"cannot send {cid.name} in {self.state.name}")
            self.outstanding[pdu.sequence_number] = cid
        self._out.append(encode_pdu(pdu))

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def outstanding_count(self, command_id: CommandId) -> int:
        return sum(1 for c in self.outstanding.values() if c is command_id)

    # -- receiving ---------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        if self.state is SessionState.CLOSED:
            return events
        framer = self._framer
        framer.feed(data)
        while True:
            try:
                frame = framer.next_pdu()
            except RemoteProtocolError as exc:
                self._out.append(encode_pdu(Pdu(CommandId.GENERIC_NACK, exc.sequence_number,
                                                Empty(), exc.status)))
                self.state = SessionState.CLOSED
                events.append(ConnectionBroken(exc.status, str(exc)))
                return events
            if frame is None:
                return events
            try:
                pdu = decode_pdu(frame)
            except RemoteProtocolError as exc:
                self._reject(events, exc.command_id, exc.sequence_number, exc.status, str(exc))
                continue
            self._dispatch(pdu, events)

    def _dispatch(self, pdu: Pdu, events: list[Event]) -> None:
        cid = pdu.command_id
        if pdu.is_response:
            request = self.outstanding.pop(pdu.sequence_number, None)
            events.append(ResponseReceived(pdu, request))
            if request in BIND_COMMANDS and self.role is Role.ESME and \
                    cid in BIND_STATE and pdu.command_status == CommandStatus.ESME_ROK:
                self.state = BIND_STATE[cid]
                body = pdu.body
                self.system_id = getattr(body, "system_id", "")
                events.append(BindCompleted(self.state, self.system_id))
            elif request is CommandId.UNBIND:
                self.state = SessionState.UNBOUND
                events.append(UnbindCompleted())
            return
        if cid not in _ACCEPTS[(self.role, self.state)]:
            if cid in BIND_COMMANDS and self.state.bound:
                status = CommandStatus.ESME_RALYBND
            else:
                status = CommandStatus.ESME_RINVBNDSTS
            self._reject(events, cid, pdu.sequence_number, status,
                         f"{cid.name} not allowed in {self.state.name}")
            return
        if cid is CommandId.ENQUIRE_LINK:
            self._out.append(encode_pdu(Pdu(CommandId.ENQUIRE_LINK_RESP, pdu.sequence_number)))
        elif cid is CommandId.UNBIND:
            self._out.append(encode_pdu(Pdu(CommandId.UNBIND_RESP, pdu.sequence_number)))
            self.state = SessionState.UNBOUND
            events.append(UnbindReceived())
        else:
            if cid in BIND_COMMANDS:
                if self._bind_system_id:  # a second bind before the first was answered
                    self._reject(events, cid, pdu.sequence_number,
                                 CommandStatus.ESME_RALYBND, "bind already in progress")
                    return
                self._bind_system_id[pdu.sequence_number] = getattr(pdu.body, "system_id", "")
            self.pending_in[pdu.sequence_number] = cid
            events.append(RequestReceived(pdu))

    def _reject(self, events: list[Event], command_id: int | None, sequence: int,
                status: int, reason: str) -> None:
        """Answer with the request's _resp (body-level problems) or a generic_nack."""
        resp: CommandId | None = None
        if command_id is not None and not command_id & 0x80000000 and status not in (
                CommandStatus.ESME_RINVCMDLEN, CommandStatus.ESME_RINVCMDID):
            resp = CommandId(command_id | 0x80000000)
        if resp is None:
            resp = CommandId.GENERIC_NACK
        self._out.append(encode_pdu(Pdu(resp, sequence, Empty(), status)))
        events.append(PduRejected(command_id, sequence, status,
                                  f"{reason} → {status_name(status)}"))

    def answer(self, request: Pdu, status: int = CommandStatus.ESME_ROK,
               body: Body | None = None) -> Pdu:
        """Queue the response to ``request`` (an empty body for an error status)."""
        resp = default_response(request, status)
        if body is not None and status == CommandStatus.ESME_ROK:
            resp = Pdu(resp.command_id, resp.sequence_number, body, status)
        self.send(resp)
        return resp

    def close(self) -> None:
        self.state = SessionState.CLOSED
