"""SMPP codec: wire vectors, GSM 7-bit, UDH, segmentation, receipts; smpplib as a parse oracle."""

from __future__ import annotations

import pathlib

import pytest
import smpplib.client
import smpplib.smpp

from fivegmc.smpp import gsm7
from fivegmc.smpp.constants import CommandId, CommandStatus, DataCoding, MessageState, Tag
from fivegmc.smpp.errors import LocalProtocolError, RemoteProtocolError
from fivegmc.smpp.framer import Framer
from fivegmc.smpp.pdu import (
    Bind,
    MessageIdResp,
    Pdu,
    ShortMessage,
    decode_pdu,
    default_response,
    encode_pdu,
)
from fivegmc.smpp.receipt import (
    DeliveryReceipt,
    ReceiptError,
    format_receipt,
    parse_receipt,
    receipt_from_sm,
)
from fivegmc.smpp.segment import Reassembler, segment_text, split_text
from fivegmc.smpp.text import choose_coding, decode_text, encode_text
from fivegmc.smpp.udh import Concat, build_udh, split_udh

VECTORS = pathlib.Path(__file__).parent.parent / "vectors" / "smpp"


def _load(path: pathlib.Path) -> bytes:
    text = "\n".join(line.split("#")[0] for line in path.read_text().splitlines())
    return bytes.fromhex("".join(text.split()))


def _decode_stream(data: bytes) -> Pdu:
    framer = Framer()
    framer.feed(data)
    frame = framer.next_pdu()
    assert frame is not None
    return decode_pdu(frame)


@pytest.mark.parametrize("path", sorted((VECTORS / "valid").glob("*.hex")), ids=lambda p: p.stem)
def test_valid_vector_round_trips(path: pathlib.Path) -> None:
    data = _load(path)
    pdu = _decode_stream(data)
    assert encode_pdu(pdu) == data


@pytest.mark.parametrize("path", sorted((VECTORS / "invalid").glob("*.hex")),
                         ids=lambda p: p.stem)
def test_invalid_vector_gives_status(path: pathlib.Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# status: ")
    expected = CommandStatus[first.removeprefix("# status: ").strip()]
    with pytest.raises(RemoteProtocolError) as info:
        _decode_stream(_load(path))
    assert info.value.status == expected


def test_vectors_exist() -> None:
    assert len(list((VECTORS / "valid").glob("*.hex"))) >= 15
    assert len(list((VECTORS / "invalid").glob("*.hex"))) >= 8


def _smpplib_client() -> smpplib.client.Client:
    return smpplib.client.Client("127.0.0.1", 1, allow_unknown_opt_params=True)


@pytest.mark.parametrize("path", [p for p in sorted((VECTORS / "valid").glob("*.hex"))
                                  if not p.stem.startswith("cancel_sm")],  # smpplib lacks it
                         ids=lambda p: p.stem)
def test_smpplib_parses_our_vectors(path: pathlib.Path) -> None:
    """An independent decoder agrees on command, status and sequence."""
    data = _load(path)
    ours = _decode_stream(data)
    theirs = smpplib.smpp.parse_pdu(data, client=_smpplib_client(),
                                    allow_unknown_opt_params=True)
    assert theirs.command == ours.command_id.name.lower()
    assert theirs.status == ours.command_status
    assert theirs.sequence == ours.sequence_number


def test_smpplib_submit_decodes() -> None:
    client = _smpplib_client()
    pdu = smpplib.smpp.make_pdu(
        "submit_sm", client=client, source_addr="1065900000001", destination_addr="+8613900000001",
        short_message="你好".encode("utf-16-be"), data_coding=8, registered_delivery=True,
        sar_msg_ref_num=7, sar_total_segments=2, sar_segment_seqnum=1)
    ours = decode_pdu(pdu.generate())
    body = ours.body
    assert isinstance(body, ShortMessage)
    assert body.destination_addr == "+8613900000001"
    assert decode_text(body.short_message, body.data_coding) == "你好"
    assert body.tlv(Tag.SAR_MSG_REF_NUM) == b"\x00\x07"
    assert body.tlv(Tag.SAR_SEGMENT_SEQNUM) == b"\x01"


def test_encode_rejects_oversize_fields() -> None:
    with pytest.raises(LocalProtocolError):
        encode_pdu(Pdu(CommandId.BIND_TRANSMITTER, 1, Bind("x" * 16)))
    with pytest.raises(LocalProtocolError):
        encode_pdu(Pdu(CommandId.SUBMIT_SM, 1, ShortMessage("1", "2", b"x" * 255)))
    with pytest.raises(LocalProtocolError):
        encode_pdu(Pdu(CommandId.SUBMIT_SM, 1, MessageIdResp("x")))


def test_default_response_and_error_body() -> None:
    req = Pdu(CommandId.SUBMIT_SM, 42, ShortMessage("1", "2", b"hi"))
    resp = default_response(req, CommandStatus.ESME_RTHROTTLED)
    assert resp.command_id is CommandId.SUBMIT_SM_RESP and resp.sequence_number == 42
    assert len(encode_pdu(resp)) == 16
    nack = default_response(Pdu(CommandId.SUBMIT_SM_RESP, 3), CommandStatus.ESME_RINVCMDID)
    assert nack.command_id is CommandId.GENERIC_NACK


# -- GSM 7-bit --------------------------------------------------------------------------------


def test_gsm7_basic_and_extension() -> None:
    assert gsm7.encode("@A") == b"\x00\x41"
    assert gsm7.encode("€[") == b"\x1b\x65\x1b\x3c"
    assert gsm7.septet_count("a{b}") == 6
    assert gsm7.decode(gsm7.encode("Hello {world} ~ €5 ^_^ |\\")) == "Hello {world} ~ €5 ^_^ |\\"
    assert gsm7.decode(b"\x1b") == " "
    assert not gsm7.is_gsm7("你好")
    with pytest.raises(gsm7.Gsm7Error):
        gsm7.encode("你")


def test_gsm7_pack_unpack() -> None:
    septets = gsm7.encode("hellohello")
    packed = gsm7.pack(septets)
    assert packed.hex() == "e8329bfd4697d9ec37"  # TS 23.038 worked example
    assert gsm7.unpack(packed, len(septets)) == septets


def test_choose_coding() -> None:
    assert choose_coding("Hello €") is DataCoding.DEFAULT
    assert choose_coding("你好") is DataCoding.UCS2
    assert choose_coding("emoji 😀") is DataCoding.UCS2
    assert decode_text(encode_text("Ünïcödé", DataCoding.LATIN1), DataCoding.LATIN1) == "Ünïcödé"
    assert decode_text(b"\x00A\x00", DataCoding.UCS2) == "A"  # odd octet dropped


# -- UDH and segmentation ---------------------------------------------------------------------


def test_udh_8_and_16_bit() -> None:
    assert build_udh(Concat(0x2A, 3, 1)) == bytes.fromhex("0500032a0301")
    assert build_udh(Concat(0x1234, 3, 2, 16)) == bytes.fromhex("060804123403 02".replace(" ", ""))
    concat, payload = split_udh(bytes.fromhex("060804123403 02 4142".replace(" ", "")))
    assert concat == Concat(0x1234, 3, 2, 16) and payload == b"AB"
    assert split_udh(b"\x09ab") == (None, b"\x09ab")  # UDHL overruns: no UDH


def test_gsm7_sizes() -> None:
    assert len(segment_text("a" * 160, 1)) == 1
    parts = segment_text("a" * 161, 1)
    assert len(parts) == 2 and len(parts[0].short_message) == 6 + 153
    assert parts[0].esm_class == 0x40
    # escapes count two septets: 80 euro signs = 160 septets fit in one segment
    assert len(segment_text("€" * 80, 1)) == 1
    # never split between escape and character: 152 'a' then '€' → '€' moves to part 2
    chunks = split_text("a" * 152 + "€" + "b" * 10, DataCoding.DEFAULT)
    assert chunks[0] == "a" * 152 and chunks[1].startswith("€")


def test_ucs2_sizes_and_surrogates() -> None:
    assert len(segment_text("你" * 70, 1)) == 1
    parts = segment_text("你" * 71, 1)
    assert len(parts) == 2 and parts[0].data_coding == DataCoding.UCS2
    assert len(parts[0].short_message) == 6 + 134
    text = "你" * 66 + "😀" + "好" * 5
    chunks = split_text(text, DataCoding.UCS2)
    assert chunks[0] == "你" * 66 and chunks[1].startswith("😀")


def test_sar_and_16_bit_segments_reassemble() -> None:
    text = "中文短信测试" * 30
    for method in ("udh8", "udh16", "sar"):
        segments = segment_text(text, 300, method=method)  # type: ignore[arg-type]
        assert len(segments) > 1
        r = Reassembler()
        results = []
        for seg in reversed(segments):
            sm = ShortMessage("a", "b", seg.short_message, esm_class=seg.esm_class,
                              data_coding=seg.data_coding, tlvs=seg.tlvs)
            results.append(r.feed(sm, 0.0))
        assert results[:-1] == [None] * (len(segments) - 1)
        whole = results[-1]
        assert whole is not None and whole.text == text and whole.parts == len(segments)
        assert len(r) == 0


def test_reassembler_bounded_and_expires() -> None:
    r = Reassembler(max_partial=2, timeout_s=10)
    segs = segment_text("x" * 200, 1)
    for i in range(3):
        sm = ShortMessage(f"s{i}", "d", segs[0].short_message, esm_class=0x40)
        assert r.feed(sm, float(i)) is None
    assert len(r) == 2 and r.dropped == 1
    assert r.expire(100.0) == 2 and len(r) == 0


def test_reassembler_passes_single_and_invalid_concat() -> None:
    r = Reassembler()
    bad = ShortMessage("a", "b", bytes.fromhex("050003010305") + b"hi", esm_class=0x40)
    out = r.feed(bad, 0.0)  # seq 5 > total 3: delivered as it is
    assert out is not None and out.text == "hi"


# -- receipts -------------------------------------------------------------------------------


def test_receipt_build_and_parse() -> None:
    r = DeliveryReceipt("abc", "DELIVRD", "000", "001", "001", "2401011200", "2401011201",
                        "Hello there, this is long")
    text = format_receipt(r)
    assert text == ("id:abc sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 "
                    "stat:DELIVRD err:000 text:Hello there, this is")
    back = parse_receipt(text)
    assert back.message_id == "abc" and back.state is MessageState.DELIVERED
    assert back.text == "Hello there, this is"
    lower = parse_receipt("id:7 sub:001 dlvrd:000 submit date:2401011200 "
                          "done date:2401011201 stat:UNDELIV err:001 Text:x")
    assert lower.state is MessageState.UNDELIVERABLE and lower.err == "001"
    with pytest.raises(ReceiptError):
        parse_receipt("hello")


def test_receipt_from_sm_prefers_tlvs() -> None:
    sm = ShortMessage("b", "a", b"id:1 sub:001 dlvrd:001 submit date:1 done date:2 stat:DELIVRD "
                      b"err:000 text:", esm_class=4,
                      tlvs=((Tag.RECEIPTED_MESSAGE_ID, b"XYZ\0"), (Tag.MESSAGE_STATE, b"\x05")))
    r = receipt_from_sm(sm)
    assert r.message_id == "XYZ" and r.state is MessageState.UNDELIVERABLE
    assert r.source_addr == "b"
