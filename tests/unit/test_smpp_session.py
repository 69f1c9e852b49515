"""The sans-IO SMPP session (bind-state table, auto answers, errors) and the SMSC core."""

from __future__ import annotations

import random

import pytest

from fivegmc.config import SmppAccount, SmscConfig
from fivegmc.smpp.constants import CommandId, CommandStatus, MessageState, Tag
from fivegmc.smpp.errors import LocalProtocolError
from fivegmc.smpp.pdu import (
    Bind,
    BindResp,
    CancelSm,
    MessageIdResp,
    Pdu,
    QuerySm,
    ShortMessage,
    decode_pdu,
    encode_pdu,
)
from fivegmc.smpp.receipt import receipt_from_sm
from fivegmc.smpp.session import (
    BindCompleted,
    ConnectionBroken,
    PduRejected,
    RequestReceived,
    ResponseReceived,
    Role,
    Session,
    SessionState,
    UnbindReceived,
)
from fivegmc.smpp.text import decode_text
from fivegmc.smsc.core import SmscCore
from fivegmc.smsc.throttle import TokenBucket


def _replies(session: Session) -> list[Pdu]:
    data = session.data_to_send()
    out = []
    while data:
        length = int.from_bytes(data[:4], "big")
        out.append(decode_pdu(data[:length]))
        data = data[length:]
    return out


def _bound(kind: CommandId = CommandId.BIND_TRANSCEIVER) -> Session:
    smsc = Session(Role.SMSC)
    events = smsc.receive_data(encode_pdu(Pdu(kind, 1, Bind("esme", "pw"))))
    assert isinstance(events[0], RequestReceived)
    smsc.answer(events[0].pdu, CommandStatus.ESME_ROK, BindResp("smsc"))
    smsc.data_to_send()
    return smsc


SUBMIT = Pdu(CommandId.SUBMIT_SM, 5, ShortMessage("1", "2", b"hi"))


def test_bind_then_submit_on_transceiver() -> None:
    smsc = _bound()
    assert smsc.state is SessionState.BOUND_TRX and smsc.system_id == "esme"
    events = smsc.receive_data(encode_pdu(SUBMIT))
    assert [type(e) for e in events] == [RequestReceived]
    assert smsc.pending_in == {5: CommandId.SUBMIT_SM}
    smsc.answer(SUBMIT, CommandStatus.ESME_ROK, MessageIdResp("m1"))
    assert smsc.pending_in == {}
    (resp,) = _replies(smsc)
    assert resp.command_id is CommandId.SUBMIT_SM_RESP and resp.body == MessageIdResp("m1")


@pytest.mark.parametrize("pdu", [SUBMIT, Pdu(CommandId.QUERY_SM, 5, QuerySm("x")),
                                 Pdu(CommandId.CANCEL_SM, 5, CancelSm("x")),
                                 Pdu(CommandId.UNBIND, 5)])
def test_anything_but_bind_before_bind_is_rinvbndsts(pdu: Pdu) -> None:
    smsc = Session(Role.SMSC)
    events = smsc.receive_data(encode_pdu(pdu))
    assert isinstance(events[0], PduRejected)
    (resp,) = _replies(smsc)
    assert resp.command_status == CommandStatus.ESME_RINVBNDSTS
    assert resp.sequence_number == 5
    assert smsc.state is SessionState.OPEN


def test_submit_on_receiver_bind_is_rinvbndsts() -> None:
    smsc = _bound(CommandId.BIND_RECEIVER)
    smsc.receive_data(encode_pdu(SUBMIT))
    (resp,) = _replies(smsc)
    assert resp.command_id is CommandId.SUBMIT_SM_RESP
    assert resp.command_status == CommandStatus.ESME_RINVBNDSTS
    with pytest.raises(LocalProtocolError):  # we may not send submit_sm as the SMSC
        smsc.request(CommandId.SUBMIT_SM, ShortMessage("1", "2"))


def test_second_bind_is_ralybnd_and_enquire_link_answered() -> None:
    smsc = _bound()
    smsc.receive_data(encode_pdu(Pdu(CommandId.BIND_TRANSMITTER, 2, Bind("x", "y"))) +
                      encode_pdu(Pdu(CommandId.ENQUIRE_LINK, 3)))
    nack, link = _replies(smsc)
    assert nack.command_status == CommandStatus.ESME_RALYBND
    assert link.command_id is CommandId.ENQUIRE_LINK_RESP and link.sequence_number == 3


def test_enquire_link_allowed_before_bind_and_bind_refusal_keeps_open() -> None:
    smsc = Session(Role.SMSC)
    assert smsc.receive_data(encode_pdu(Pdu(CommandId.ENQUIRE_LINK, 9))) == []
    events = smsc.receive_data(encode_pdu(Pdu(CommandId.BIND_TRANSMITTER, 1, Bind("a", "b"))))
    assert isinstance(events[0], RequestReceived)
    smsc.answer(events[0].pdu, CommandStatus.ESME_RINVPASWD)
    assert smsc.state is SessionState.OPEN
    _link, refused = _replies(smsc)
    assert refused.command_status == CommandStatus.ESME_RINVPASWD


def test_unbind_answers_and_moves_to_unbound() -> None:
    smsc = _bound()
    events = smsc.receive_data(encode_pdu(Pdu(CommandId.UNBIND, 7)))
    assert isinstance(events[0], UnbindReceived)
    assert smsc.state is SessionState.UNBOUND
    (resp,) = _replies(smsc)
    assert resp.command_id is CommandId.UNBIND_RESP


def test_unknown_command_and_garbled_body_keep_the_bind() -> None:
    smsc = _bound()
    unknown = bytes.fromhex("00000010000000ff0000000000000004")
    garbled = bytes.fromhex("0000001400000004000000000000000500010131")  # no NUL
    events = smsc.receive_data(unknown + garbled + encode_pdu(SUBMIT))
    assert [type(e) for e in events] == [PduRejected, PduRejected, RequestReceived]
    nack, bad, = _replies(smsc)
    assert nack.command_id is CommandId.GENERIC_NACK
    assert nack.command_status == CommandStatus.ESME_RINVCMDID
    assert bad.command_id is CommandId.GENERIC_NACK
    assert bad.command_status == CommandStatus.ESME_RINVCMDLEN
    assert smsc.state is SessionState.BOUND_TRX


def test_field_error_answers_in_the_commands_resp() -> None:
    smsc = _bound()
    too_long = bytes.fromhex("00000037000000040000000000000002"
                             "000101" + "31" * 21 + "00" "00003200" + "00" * 11)
    smsc.receive_data(too_long)
    (resp,) = _replies(smsc)
    assert resp.command_id is CommandId.SUBMIT_SM_RESP
    assert resp.command_status == CommandStatus.ESME_RINVSRCADR


def test_unframeable_length_closes() -> None:
    smsc = _bound()
    events = smsc.receive_data(bytes.fromhex("00000004000000040000000000000001"))
    assert isinstance(events[0], ConnectionBroken)
    assert smsc.state is SessionState.CLOSED
    (nack,) = _replies(smsc)
    assert nack.command_status == CommandStatus.ESME_RINVCMDLEN
    assert smsc.receive_data(encode_pdu(SUBMIT)) == []


def test_esme_side_bind_and_responses() -> None:
    esme = Session(Role.ESME)
    bind = esme.request(CommandId.BIND_TRANSCEIVER, Bind("esme", "pw"))
    assert bind.sequence_number == 1
    with pytest.raises(LocalProtocolError):
        esme.request(CommandId.SUBMIT_SM, ShortMessage("1", "2"))
    events = esme.receive_data(encode_pdu(Pdu(CommandId.BIND_TRANSCEIVER_RESP, 1,
                                              BindResp("smsc"))))
    assert isinstance(events[0], ResponseReceived)
    assert events[0].request is CommandId.BIND_TRANSCEIVER
    assert events[1] == BindCompleted(SessionState.BOUND_TRX, "smsc")
    sub = esme.request(CommandId.SUBMIT_SM, ShortMessage("1", "2"))
    assert esme.outstanding == {sub.sequence_number: CommandId.SUBMIT_SM}
    events = esme.receive_data(encode_pdu(Pdu(CommandId.DELIVER_SM, 77, ShortMessage("2", "1"))))
    assert isinstance(events[0], RequestReceived)


def test_esme_transmitter_refuses_deliver_sm() -> None:
    esme = Session(Role.ESME)
    esme.request(CommandId.BIND_TRANSMITTER, Bind("esme", "pw"))
    esme.receive_data(encode_pdu(Pdu(CommandId.BIND_TRANSMITTER_RESP, 1, BindResp("s"))))
    esme.data_to_send()
    esme.receive_data(encode_pdu(Pdu(CommandId.DELIVER_SM, 9, ShortMessage("2", "1"))))
    (resp,) = _replies(esme)
    assert resp.command_status == CommandStatus.ESME_RINVBNDSTS


def test_sequence_wraps() -> None:
    s = Session(Role.ESME)
    s._sequence = 0x7FFFFFFF
    assert s.next_sequence() == 1


# -- SMSC core --------------------------------------------------------------------------------


def _core(**kw: object) -> SmscCore:
    cfg = SmscConfig(accounts=(SmppAccount(system_id="esme", password="pw"),), **kw)  # type: ignore[arg-type]
    return SmscCore(cfg, random.Random(1), id_prefix="t")


def test_core_bind_checks() -> None:
    core = _core()
    assert core.check_bind("esme", "pw") == CommandStatus.ESME_ROK
    assert core.check_bind("esme", "no") == CommandStatus.ESME_RINVPASWD
    assert core.check_bind("who", "pw") == CommandStatus.ESME_RINVSYSID


def test_core_receipt_after_delay_with_swapped_addresses() -> None:
    core = _core(receipt_delay_min_s=1.0, receipt_delay_max_s=1.0)
    mid = core.submit("esme", ShortMessage("+8613800000001", "+8613900000001", b"hello",
                                           registered_delivery=1), now=100.0)
    assert core.next_deadline() == 101.0
    assert core.handle_timer(100.5) == []
    assert core.handle_timer(101.0) == ["DELIVRD"]
    sm = core.queues["esme"].popleft()
    assert sm.esm_class == 0x04
    assert (sm.source_addr, sm.destination_addr) == ("+8613900000001", "+8613800000001")
    receipt = receipt_from_sm(sm)
    assert receipt.message_id == mid and receipt.state is MessageState.DELIVERED
    assert "text:hello" in decode_text(sm.short_message, 0)
    assert sm.tlv(Tag.RECEIPTED_MESSAGE_ID) == mid.encode() + b"\0"
    q = core.query("esme", mid)
    assert q is not None and q.message_state == MessageState.DELIVERED and q.final_date
    assert core.query("other", mid) is None
    inbox = core.inbox_json(to="+8613900000001")
    assert inbox[0]["text"] == "hello" and inbox[0]["state"] == "DELIVERED"


def test_core_failure_only_receipts_and_weights() -> None:
    core = _core(outcomes={"DELIVRD": 1.0, "UNDELIV": 1.0}, receipt_delay_max_s=0.0)
    for _ in range(200):
        core.submit("esme", ShortMessage("a", "b", b"x", registered_delivery=2), now=0.0)
    stats = core.handle_timer(1.0)
    assert stats and set(stats) == {"UNDELIV"}  # bit 1: receipts on failure only
    assert 60 < len(stats) < 140


def test_core_cancel_and_query() -> None:
    core = _core(receipt_delay_min_s=10.0, receipt_delay_max_s=10.0)
    mid = core.submit("esme", ShortMessage("a", "b", b"x", registered_delivery=1), now=0.0)
    assert core.cancel("esme", mid, "", "", 1.0) == CommandStatus.ESME_ROK
    assert core.cancel("esme", mid, "", "", 1.0) == CommandStatus.ESME_RCANCELFAIL
    assert core.handle_timer(20.0) == []  # a cancelled message sends no receipt
    q = core.query("esme", mid)
    assert q is not None and q.message_state == MessageState.DELETED


def test_core_queues_are_bounded() -> None:
    core = _core(max_queued=3)
    for i in range(5):
        core.mo(f"+86139000000{i:02d}", "10659", "hi")
    assert core.queued() == 3 and core.queue_dropped == 2


def test_core_mo_segments_chinese() -> None:
    core = _core()
    assert core.mo("+8613900000001", "1065900000001", "你好" * 40) == 2
    first = core.queues["*"][0]
    assert first.data_coding == 8 and first.esm_class == 0x40


def test_token_bucket() -> None:
    bucket = TokenBucket(10, 10, now=0.0)
    assert sum(bucket.take(0.0) for _ in range(20)) == 10
    assert bucket.take(0.05) is False
    assert bucket.take(0.1) is True
