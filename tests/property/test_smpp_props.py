"""Properties of the SMPP codec: round trips, framing under arbitrary slicing, hostile bytes,
GSM 7-bit over its alphabet, segmentation + reassembly of any text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fivegmc.smpp import gsm7
from fivegmc.smpp.constants import CommandId, CommandStatus, DataCoding
from fivegmc.smpp.errors import RemoteProtocolError
from fivegmc.smpp.framer import Framer
from fivegmc.smpp.pdu import (
    Bind,
    BindResp,
    CancelSm,
    Empty,
    MessageIdResp,
    Pdu,
    QuerySm,
    QuerySmResp,
    ShortMessage,
    decode_pdu,
    encode_pdu,
)
from fivegmc.smpp.segment import Reassembler, segment_text
from fivegmc.smpp.session import ConnectionBroken, Role, Session

_ascii = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def _cstr(max_len: int) -> st.SearchStrategy[str]:
    return st.text(_ascii, max_size=max_len - 1)


_octet = st.integers(0, 255)
_tlvs = st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=20)), max_size=3).map(tuple)
_sm = st.builds(
    ShortMessage, source_addr=_cstr(21), destination_addr=_cstr(21),
    short_message=st.binary(max_size=254), service_type=_cstr(6), source_addr_ton=_octet,
    source_addr_npi=_octet, dest_addr_ton=_octet, dest_addr_npi=_octet, esm_class=_octet,
    protocol_id=_octet, priority_flag=_octet, schedule_delivery_time=_cstr(17),
    validity_period=_cstr(17), registered_delivery=_octet, replace_if_present_flag=_octet,
    data_coding=_octet, sm_default_msg_id=_octet, tlvs=_tlvs)
_bind = st.builds(Bind, system_id=_cstr(16), password=_cstr(9), system_type=_cstr(13),
                  interface_version=_octet, addr_ton=_octet, addr_npi=_octet,
                  address_range=_cstr(41))
_seq = st.integers(1, 0x7FFFFFFF)

_pdus = st.one_of(
    st.builds(Pdu, st.sampled_from([CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER,
                                    CommandId.BIND_TRANSCEIVER]), _seq, _bind),
    st.builds(Pdu, st.sampled_from([CommandId.BIND_TRANSMITTER_RESP,
                                    CommandId.BIND_TRANSCEIVER_RESP]), _seq,
              st.builds(BindResp, _cstr(16), _tlvs)),
    st.builds(Pdu, st.sampled_from([CommandId.SUBMIT_SM, CommandId.DELIVER_SM]), _seq, _sm),
    st.builds(Pdu, st.sampled_from([CommandId.SUBMIT_SM_RESP, CommandId.DELIVER_SM_RESP]), _seq,
              st.builds(MessageIdResp, _cstr(65))),
    st.builds(Pdu, st.just(CommandId.QUERY_SM), _seq,
              st.builds(QuerySm, _cstr(65), _cstr(21), _octet, _octet)),
    st.builds(Pdu, st.just(CommandId.QUERY_SM_RESP), _seq,
              st.builds(QuerySmResp, _cstr(65), _cstr(17), _octet, _octet)),
    st.builds(Pdu, st.just(CommandId.CANCEL_SM), _seq,
              st.builds(CancelSm, _cstr(65), _cstr(21), _cstr(21), _cstr(6))),
    st.builds(Pdu, st.sampled_from([CommandId.ENQUIRE_LINK, CommandId.ENQUIRE_LINK_RESP,
                                    CommandId.UNBIND, CommandId.UNBIND_RESP,
                                    CommandId.CANCEL_SM_RESP]), _seq, st.just(Empty())),
    st.builds(Pdu, st.just(CommandId.GENERIC_NACK), _seq, st.just(Empty()),
              st.sampled_from(list(CommandStatus))),
)


@given(_pdus)
def test_pdu_round_trip(pdu: Pdu) -> None:
    assert decode_pdu(encode_pdu(pdu)) == pdu


@given(st.lists(_pdus, min_size=1, max_size=6), st.data())
def test_framing_under_arbitrary_slicing(pdus: list[Pdu], data: st.DataObject) -> None:
    stream = b"".join(encode_pdu(p) for p in pdus)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    framer = Framer()
    out = []
    last = 0
    for cut in [*cuts, len(stream)]:
        framer.feed(stream[last:cut])
        last = cut
        while (frame := framer.next_pdu()) is not None:
            out.append(decode_pdu(frame))
    assert out == pdus and framer.buffered == 0


@given(st.binary(max_size=400))
def test_arbitrary_bytes_decode_or_protocol_error(data: bytes) -> None:
    try:
        decode_pdu(data)
    except RemoteProtocolError as exc:
        assert exc.status in set(CommandStatus)


@given(st.binary(max_size=600), st.integers(1, 50))
def test_session_survives_arbitrary_bytes(data: bytes, step: int) -> None:
    for role in Role:
        session = Session(role)
        for i in range(0, len(data), step):
            for event in session.receive_data(data[i:i + step]):
                if isinstance(event, ConnectionBroken):
                    assert event.status == CommandStatus.ESME_RINVCMDLEN
        # whatever it answered is itself well-formed SMPP
        out = session.data_to_send()
        framer = Framer()
        framer.feed(out)
        while (frame := framer.next_pdu()) is not None:
            decode_pdu(frame)


_gsm_text = st.text(st.sampled_from([c for c in gsm7.BASIC if c != "\x1b"]
                                    + list(gsm7.EXTENSION.values())), max_size=400)


@given(_gsm_text)
def test_gsm7_round_trip(text: str) -> None:
    encoded = gsm7.encode(text)
    assert gsm7.decode(encoded) == text
    assert len(encoded) == gsm7.septet_count(text)
    assert gsm7.unpack(gsm7.pack(encoded), len(encoded)) == encoded


@given(st.binary(max_size=300))
def test_gsm7_decode_never_raises(data: bytes) -> None:
    gsm7.decode(data)


@given(st.one_of(_gsm_text, st.text(max_size=800)), st.integers(0, 0xFFFF),
       st.sampled_from(["udh8", "udh16", "sar"]), st.randoms(use_true_random=False))
def test_segment_reassemble_round_trip(text: str, ref: int, method: str, rnd: object) -> None:
    segments = segment_text(text, ref, method=method)  # type: ignore[arg-type]
    if len(segments) == 1:
        assert segments[0].esm_class == 0 and not segments[0].tlvs
    for seg in segments:
        assert len(seg.short_message) <= 140 + 20  # unpacked GSM-7: ≤ 160 octets
        if seg.data_coding == DataCoding.UCS2:
            assert len(seg.short_message) <= 140
    order = list(segments)
    rnd.shuffle(order)  # type: ignore[attr-defined]
    reassembler = Reassembler()
    results = [reassembler.feed(ShortMessage("src", "dst", s.short_message, esm_class=s.esm_class,
                                             data_coding=s.data_coding, tlvs=s.tlvs), 0.0)
               for s in order]
    done = [r for r in results if r is not None]
    assert len(done) == 1 and done[0].text == text and done[0].parts == len(segments)
