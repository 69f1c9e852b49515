"""scan_cpim (the relay hot path's quick check) decides exactly as parse_cpim does and reads
the same imdn.Message-ID and content type."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fivegmc.cpim import parse_cpim
from fivegmc.cpim.scan import scan_cpim
from fivegmc.sip.errors import RemoteProtocolError

VALID = (
    b"From: <sip:a@x>\r\nTo: <sip:b@x>\r\nDateTime: 2026-05-16T12:00:00Z\r\n"
    b"NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: m1\r\n"
    b"imdn.Disposition-Notification: positive-delivery, display\r\n\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
)
PIECES = [b"\r\n", b"\r\n\r\n", b":", b" ", b"NS: ", b"imdn.", b"x.", b"<urn:ietf:params:imdn>",
          b"Message-ID: ", b"From: <a>", b"To: <b>", b"Content-Type: message/imdn+xml",
          b"Content-Length: 9", b"\t", b"\n", b"\r", "\u4e2d".encode(),
          b"NS: <urn:ietf:params:imdn>"]


def _same(data: bytes) -> None:
    try:
        full = parse_cpim(data)
    except RemoteProtocolError as exc:
        with pytest.raises(RemoteProtocolError) as quick:
            scan_cpim(data)
        assert quick.value.status_hint == exc.status_hint == 400
        return
    got = scan_cpim(data)
    assert got.message_id == full.message_id
    ctype = full.content_type
    assert got.content_type == ((ctype.split(";", 1)[0].strip().lower() or None) if ctype else None)


@given(st.lists(st.sampled_from(PIECES) | st.binary(max_size=8), max_size=30))
@example([VALID])
@example([b"From: <a>\r\nTo: <b>\r\n\r\n\r\nx"])
@example([b"From: <a>\r\nTo: <b>\r\nNS: <urn:ietf:params:imdn>\r\nMessage-ID: q\r\n\r\n\r\n"])
def test_scan_agrees_with_parse_on_assembled_pieces(parts: list[bytes]) -> None:
    _same(b"".join(parts))


@given(st.integers(0, len(VALID) - 1), st.binary(min_size=0, max_size=4),
       st.integers(0, 4))
def test_scan_agrees_with_parse_on_mutations(pos: int, insert: bytes, cut: int) -> None:
    _same(VALID[:pos] + insert + VALID[pos + cut:])
