"""parse_cpim's one-pass readers (whole header block at once, one regex per line) decide
exactly as the line-by-line readers do: same headers, same bytes, same errors."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from fivegmc.cpim.message import _parse_cpim
from fivegmc.sip.errors import RemoteProtocolError
from tests.property.test_cpim_scan_props import PIECES, VALID

EXTRA = [b"\r\n ", b" \r\n", "\u00e9".encode(), b"\xff", b"a.b: v", b"x y: v", b"NS: p <u:x>",
         b"p.H: 1", b"Content-Length: 99", b"Content-Type: text/plain;\r\n charset=x"]


def _outcome(data: bytes, fast: bool) -> object:
    try:
        msg = _parse_cpim(data, fast)
    except RemoteProtocolError as exc:
        return ("error", str(exc), exc.status_hint)
    return (msg, msg.to_bytes(), msg.message_id, msg.content_type, msg.content,
            msg.disposition_notification, msg.from_, msg.to, msg.datetime)


def _same(data: bytes) -> None:
    assert _outcome(data, True) == _outcome(data, False)


@given(st.lists(st.sampled_from(PIECES + EXTRA) | st.binary(max_size=8), max_size=30))
@example([VALID])
@example([b"\r\nContent-Type: x\r\n\r\n"])
@example([b"From: <a>\r\nTo: <b>\r\n\r\n\r\nx"])
def test_fast_readers_agree_on_assembled_pieces(parts: list[bytes]) -> None:
    _same(b"".join(parts))


@given(st.integers(0, len(VALID) - 1), st.binary(min_size=0, max_size=4), st.integers(0, 4))
def test_fast_readers_agree_on_mutations(pos: int, insert: bytes, cut: int) -> None:
    _same(VALID[:pos] + insert + VALID[pos + cut:])
