"""CDR files: framing, rotation, truncation, JSON view; generated code in step with the .proto."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import subprocess
import sys
import warnings
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]

from fivegmc.obs.cdr import (
    CdrFileError,
    CdrTruncatedError,
    CdrTruncatedWarning,
    CdrWriter,
    MessageCdr,
    MessageKind,
    Outcome,
    cdr_to_json,
    decode_varint,
    dump,
    encode_varint,
    read_cdrs,
)

REPO = Path(__file__).resolve().parents[2]
GEN_SCRIPT = REPO / "scripts" / "gen_proto.sh"
FIXED_NOW = datetime(2026, 11, 21, 9, 30, 5, tzinfo=UTC)


def fixed_clock() -> datetime:
    return FIXED_NOW


def make_record(i: int) -> MessageCdr:
    rec = MessageCdr(
        record_id=f"rec-{i:06d}",
        node="5gmc-a",
        operator="cmcc-lab",
        message_id=f"trace-{i}",
        imdn_message_id=f"imdn-{i}",
        sender="+8613800000001",
        recipient=f"+86138000{i % 100000:05d}",
        kind=MessageKind.MESSAGE_KIND_P2P,
        content_type="text/plain",
        body_size=100 + i,
        outcome=Outcome.OUTCOME_DELIVERED,
        sip_final_status=200,
        delivery_attempts=1,
        recipients_count=1,
        extra={"i": str(i)},
    )
    rec.received_time.FromMicroseconds(1_795_000_000_000_000 + i)
    rec.final_time.FromMicroseconds(1_795_000_000_500_000 + i)
    return rec


def read_all(paths: list[Path]) -> list[MessageCdr]:
    return [rec for path in paths for rec in read_cdrs(path)]


# -- varint framing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [0, 1, 127, 128, 255, 300, 16383, 16384, 2**21, 2**28 - 1, 2**32, 2**63, 2**64 - 1]
)
def test_varint_matches_protobuf_encoder(value: int) -> None:
    assert encode_varint(value) == _VarintBytes(value)
    assert decode_varint(encode_varint(value)) == (value, len(encode_varint(value)))


def test_varint_hand_computed() -> None:
    assert encode_varint(300) == b"\xac\x02"
    assert decode_varint(b"\xac") is None  # cut short
    with pytest.raises(ValueError):
        decode_varint(b"\xff" * 11)
    with pytest.raises(ValueError):
        encode_varint(-1)


def test_small_record_file_bytes(tmp_path: Path) -> None:
    # field 1 (record_id), wire type 2 -> tag 0x0a, length 2, "r1"; framed with length 4.
    with CdrWriter(tmp_path, clock=fixed_clock) as w:
        w.write(MessageCdr(record_id="r1"))
        w.write(MessageCdr(record_id="r2", sip_final_status=200))
    (path,) = w.paths
    assert path.read_bytes() == b"\x04\x0a\x02r1" + b"\x07\x0a\x02r2\x70\xc8\x01"


def test_framing_matches_writedelimited_for_every_record(tmp_path: Path) -> None:
    records = [make_record(i) for i in range(50)]
    with CdrWriter(tmp_path, clock=fixed_clock) as w:
        for rec in records:
            w.write(rec)
    expected = b"".join(
        _VarintBytes(len(rec.SerializeToString())) + rec.SerializeToString() for rec in records
    )
    assert w.paths[0].read_bytes() == expected


# -- writer / reader ------------------------------------------------------------------------


def test_round_trip_many_records(tmp_path: Path) -> None:
    records = [make_record(i) for i in range(5000)]
    with CdrWriter(tmp_path, clock=fixed_clock) as w:
        for rec in records:
            w.write(rec)
    assert w.records_written == 5000
    assert len(w.paths) == 1
    assert w.paths[0].name == "cdr-20261121T093005Z-000000.pb"
    assert read_all(w.paths) == records


def test_lazy_file_creation_and_closed_writer(tmp_path: Path) -> None:
    w = CdrWriter(tmp_path / "sub", clock=fixed_clock)
    assert w.current_path is None
    w.close()
    assert not (tmp_path / "sub").exists()
    w.close()  # idempotent
    with pytest.raises(ValueError):
        w.write(make_record(0))


def test_writes_are_batched_until_flush(tmp_path: Path) -> None:
    w = CdrWriter(tmp_path, clock=fixed_clock, batch_bytes=1 << 20)
    for i in range(10):
        w.write(make_record(i))
    path = w.current_path
    assert path is not None
    assert path.stat().st_size == 0
    w.flush()
    assert list(read_cdrs(path)) == [make_record(i) for i in range(10)]
    w.close()


def test_batch_threshold_drains_without_flush(tmp_path: Path) -> None:
    w = CdrWriter(tmp_path, clock=fixed_clock, batch_bytes=500)
    for i in range(20):
        w.write(make_record(i))
    path = w.current_path
    assert path is not None
    assert path.stat().st_size > 0
    w.close()


def test_rotation_by_size(tmp_path: Path) -> None:
    records = [make_record(i) for i in range(300)]
    max_bytes = 4096
    with CdrWriter(tmp_path, prefix="cdr-a", max_bytes=max_bytes, clock=fixed_clock) as w:
        for rec in records:
            w.write(rec)
    assert len(w.paths) > 3
    assert sorted(tmp_path.iterdir()) == w.paths  # names sort in write order
    for i, path in enumerate(w.paths):
        assert path.name == f"cdr-a-20261121T093005Z-{i:06d}.pb"
        size = path.stat().st_size
        assert 0 < size <= max_bytes
        assert list(read_cdrs(path))  # each file fully readable on its own
    assert read_all(w.paths) == records


def test_oversized_record_goes_alone_in_its_own_file(tmp_path: Path) -> None:
    big = make_record(1)
    big.extra["blob"] = "x" * 1000
    with CdrWriter(tmp_path, max_bytes=300, clock=fixed_clock) as w:
        w.write(make_record(0))
        w.write(big)
        w.write(make_record(2))
    assert [list(read_cdrs(p)) for p in w.paths] == [[make_record(0)], [big], [make_record(2)]]


def test_max_files_prunes_oldest(tmp_path: Path) -> None:
    (tmp_path / "other.txt").write_text("not ours")
    (tmp_path / "cdrx-20200101T000000Z-000000.pb").write_bytes(b"")  # another prefix
    with CdrWriter(tmp_path, max_bytes=1000, max_files=3, clock=fixed_clock) as w:
        for i in range(100):
            w.write(make_record(i))
    ours = sorted(p for p in tmp_path.iterdir() if p.name.startswith("cdr-"))
    assert len(w.paths) > 3
    assert ours == w.paths[-3:]
    assert (tmp_path / "other.txt").exists()
    assert (tmp_path / "cdrx-20200101T000000Z-000000.pb").exists()
    assert read_all(ours)[-1] == make_record(99)


def test_name_collision_takes_next_seq(tmp_path: Path) -> None:
    with CdrWriter(tmp_path, clock=fixed_clock) as w1:
        w1.write(make_record(0))
    with CdrWriter(tmp_path, clock=fixed_clock) as w2:
        w2.write(make_record(1))
    assert w1.paths[0].name.endswith("-000000.pb")
    assert w2.paths[0].name.endswith("-000001.pb")
    assert read_all(sorted(tmp_path.iterdir())) == [make_record(0), make_record(1)]


def test_fsync_mode(tmp_path: Path) -> None:
    with CdrWriter(tmp_path, fsync=True, clock=fixed_clock) as w:
        w.write(make_record(0))
        w.flush()
    assert read_all(w.paths) == [make_record(0)]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        CdrWriter(tmp_path, max_bytes=0)
    with pytest.raises(ValueError):
        CdrWriter(tmp_path, max_files=0)
    with pytest.raises(ValueError):
        CdrWriter(tmp_path, prefix="a/b")


# -- truncation and corruption --------------------------------------------------------------


def write_file(tmp_path: Path, records: list[MessageCdr]) -> Path:
    with CdrWriter(tmp_path, clock=fixed_clock) as w:
        for rec in records:
            w.write(rec)
    return w.paths[0]


def test_truncated_last_record_raises_after_complete_ones(tmp_path: Path) -> None:
    records = [make_record(i) for i in range(10)]
    path = write_file(tmp_path, records)
    data = path.read_bytes()
    path.write_bytes(data[:-5])
    got: list[MessageCdr] = []
    with pytest.raises(CdrTruncatedError) as info:
        for rec in read_cdrs(path):
            got.append(rec)
    assert got == records[:9]
    last_len = len(records[9].SerializeToString())
    assert info.value.offset == len(data) - last_len - len(encode_varint(last_len))
    assert "truncated" in str(info.value)


def test_truncated_inside_length_prefix(tmp_path: Path) -> None:
    big = make_record(1)
    big.extra["blob"] = "y" * 200  # > 127 bytes: a two-byte length prefix
    path = write_file(tmp_path, [make_record(0), big])
    data = path.read_bytes()
    first = len(encode_varint(len(make_record(0).SerializeToString()))) + len(
        make_record(0).SerializeToString()
    )
    path.write_bytes(data[: first + 1])
    with pytest.raises(CdrTruncatedError, match="length prefix"):
        list(read_cdrs(path))


def test_truncated_warn_mode_stops_quietly(tmp_path: Path) -> None:
    records = [make_record(i) for i in range(4)]
    path = write_file(tmp_path, records)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.warns(CdrTruncatedWarning):
        assert list(read_cdrs(path, on_truncated="warn")) == records[:3]


def test_complete_file_gives_no_warning(tmp_path: Path) -> None:
    path = write_file(tmp_path, [make_record(0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(read_cdrs(path, on_truncated="warn")) == [make_record(0)]


def test_empty_file_has_no_records(tmp_path: Path) -> None:
    path = tmp_path / "empty.pb"
    path.write_bytes(b"")
    assert list(read_cdrs(path)) == []


def test_corrupt_record_is_an_error_in_both_modes(tmp_path: Path) -> None:
    path = tmp_path / "bad.pb"
    path.write_bytes(b"\x02\xff\xff")  # a 2-byte record that is not a valid message
    for mode in ("raise", "warn"):
        with pytest.raises(CdrFileError, match="does not parse"):
            list(read_cdrs(path, on_truncated=mode))
    path.write_bytes(b"\xff\xff\xff\xff\x7f")  # length prefix far beyond any CDR
    with pytest.raises(CdrFileError, match="exceeds"):
        list(read_cdrs(path))


# -- JSON -----------------------------------------------------------------------------------

GOLDEN_JSON = {
    "record_id": "rec-000007",
    "node": "5gmc-a",
    "operator": "cmcc-lab",
    "message_id": "trace-7",
    "imdn_message_id": "imdn-7",
    "sender": "+8613800000001",
    "recipient": "+8613800000007",
    "kind": "MESSAGE_KIND_P2P",
    "content_type": "text/plain",
    "body_size": "107",
    "received_time": "2026-11-18T11:06:40.000007Z",
    "final_time": "2026-11-18T11:06:40.500007Z",
    "outcome": "OUTCOME_DELIVERED",
    "sip_final_status": 200,
    "delivery_attempts": 1,
    "recipients_count": 1,
    "extra": {"i": "7"},
}

GOLDEN_EMPTY_JSON = {
    "record_id": "",
    "node": "",
    "operator": "",
    "message_id": "",
    "imdn_message_id": "",
    "sender": "",
    "recipient": "",
    "kind": "MESSAGE_KIND_UNSPECIFIED",
    "content_type": "",
    "body_size": "0",
    "outcome": "OUTCOME_UNSPECIFIED",
    "sip_final_status": 0,
    "delivery_attempts": 0,
    "recipients_count": 0,
    "extra": {},
}


def test_json_golden() -> None:
    assert cdr_to_json(make_record(7)) == GOLDEN_JSON
    assert cdr_to_json(MessageCdr()) == GOLDEN_EMPTY_JSON


def test_dump_json_lines(tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    pa = write_file(a, [make_record(7), make_record(8)])
    pb = write_file(b, [MessageCdr()])
    out = io.StringIO()
    assert dump([pa, pb], out) == 3
    lines = out.getvalue().splitlines()
    assert json.loads(lines[0]) == GOLDEN_JSON
    assert json.loads(lines[1]) == cdr_to_json(make_record(8))
    assert json.loads(lines[2]) == GOLDEN_EMPTY_JSON
    assert lines[0] == json.dumps(GOLDEN_JSON, sort_keys=True, ensure_ascii=False)


def test_dump_truncated_warn(tmp_path: Path) -> None:
    path = write_file(tmp_path, [make_record(1), make_record(2)])
    path.write_bytes(path.read_bytes()[:-3])
    out = io.StringIO()
    with pytest.raises(CdrTruncatedError):
        dump([path], out)
    out = io.StringIO()
    with pytest.warns(CdrTruncatedWarning):
        assert dump([path], out, on_truncated="warn") == 1


# -- schema stability and generated code ----------------------------------------------------

STABLE_FIELD_NUMBERS = {
    "record_id": 1,
    "node": 2,
    "operator": 3,
    "message_id": 4,
    "imdn_message_id": 5,
    "sender": 6,
    "recipient": 7,
    "kind": 8,
    "content_type": 9,
    "body_size": 10,
    "received_time": 11,
    "final_time": 12,
    "outcome": 13,
    "sip_final_status": 14,
    "delivery_attempts": 15,
    "recipients_count": 16,
    "extra": 17,
}


def test_field_numbers_and_enum_values_are_stable() -> None:
    desc = MessageCdr.DESCRIPTOR
    assert desc.full_name == "fivegmc.cdr.v1.MessageCdr"
    assert {f.name: f.number for f in desc.fields} == STABLE_FIELD_NUMBERS
    assert dict(MessageKind.items()) == {
        "MESSAGE_KIND_UNSPECIFIED": 0,
        "MESSAGE_KIND_P2P": 1,
        "MESSAGE_KIND_A2P": 2,
        "MESSAGE_KIND_P2A": 3,
        "MESSAGE_KIND_NNI_IN": 4,
        "MESSAGE_KIND_NNI_OUT": 5,
    }
    assert dict(Outcome.items()) == {
        "OUTCOME_UNSPECIFIED": 0,
        "OUTCOME_DELIVERED": 1,
        "OUTCOME_EXPIRED": 2,
        "OUTCOME_FAILED": 3,
        "OUTCOME_FALLBACK_SMS": 4,
        "OUTCOME_REJECTED": 5,
        "OUTCOME_DUPLICATE": 6,
        "OUTCOME_REVOKED": 7,
    }


def pinned_grpcio_tools() -> str:
    match = re.search(r"^GRPCIO_TOOLS_PIN=(\S+)$", GEN_SCRIPT.read_text(), re.MULTILINE)
    assert match is not None, "scripts/gen_proto.sh must set GRPCIO_TOOLS_PIN"
    return match.group(1)


def test_generated_code_matches_proto(tmp_path: Path) -> None:
    pin = pinned_grpcio_tools()
    if importlib.util.find_spec("grpc_tools") is None:
        pytest.skip(f"grpcio-tools not installed (pin: pip install grpcio-tools=={pin})")
    try:
        installed = version("grpcio-tools")
    except PackageNotFoundError:
        pytest.skip(f"grpcio-tools not installed (pin: pip install grpcio-tools=={pin})")
    if installed != pin:
        pytest.skip(f"grpcio-tools {installed} installed, generated code is pinned to {pin}")
    result = subprocess.run(
        ["bash", str(GEN_SCRIPT), str(tmp_path)],
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in ("cdr_pb2.py", "cdr_pb2.pyi"):
        generated = (tmp_path / "fivegmc" / "obs" / name).read_text()
        committed = (REPO / "fivegmc" / "obs" / name).read_text()
        assert generated == committed, f"{name} is stale: run scripts/gen_proto.sh"
