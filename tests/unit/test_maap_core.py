"""MaaP core units: the per-recipient state machine, idempotent message ids across a restart,
mapping of 5GMC answers, capability parsing, and the SIP link's transaction core."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fivegmc.config import load_profile
from fivegmc.core.subscribers import SubscriberKind
from fivegmc.maap.core import MaapCore, capabilities_from, failure_for, revoke_body
from fivegmc.maap.files import FileStore
from fivegmc.maap.model import FailureCode, RecipientState, Status, StatusEvent
from fivegmc.maap.sip_link import (
    GarbageReceived,
    RequestReceived,
    ResponseReceived,
    SipLink,
    SipLinkCore,
)
from fivegmc.maap.state import MessageStates
from fivegmc.maap.tokens import TokenBook
from fivegmc.sip.headers import Headers
from fivegmc.sip.message import Response
from fivegmc.sip.parser import parse_message


class _Log:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


async def _core(tmp_path: Path, db: str = ":memory:") -> MaapCore:
    profile = load_profile(None, ("maap.port=0", "maap.sip_port=0"))
    states = MessageStates(db)
    await states.open()
    link = SipLink(on_request=lambda r: Response(200, "OK", Headers()), log=_Log())
    files = FileStore(tmp_path / "files", "http://x", 1000, 60)
    return MaapCore(profile, link=link, states=states, tokens=TokenBook(60), files=files,
                    log=_Log())


async def _message(core: MaapCore, mid: str, *numbers: str) -> None:
    await core.states.add_message(
        "labbot", mid, created_at=1.0, client_correlator="cc", conversation_id="",
        contribution_id="",
        recipients=[RecipientState(n, Status.ACCEPTED, None, 1.0) for n in numbers])


def _seen(core: MaapCore) -> list[StatusEvent]:
    seen: list[StatusEvent] = []
    core.observers.append(lambda e: seen.append(e) if isinstance(e, StatusEvent) else None)
    return seen


async def test_states_only_move_forward_and_skipped_steps_are_reported(tmp_path: Path) -> None:
    core = await _core(tmp_path)
    await _message(core, "m", "+8613800000001")
    seen = _seen(core)
    assert core._advance("labbot", "m", "+8613800000001", Status.DISPLAYED)
    assert [e.status for e in seen] == [Status.SENT, Status.DELIVERED, Status.DISPLAYED]
    assert all(e.client_correlator == "cc" for e in seen)
    for late in (Status.SENT, Status.DELIVERED, Status.FAILED, Status.REVOKED):
        assert not core._advance("labbot", "m", "+8613800000001", late)
    assert len(seen) == 3
    assert not core._advance("labbot", "m", "+8613800000099", Status.SENT)  # not a recipient
    assert not core._advance("labbot", "other", "+8613800000001", Status.SENT)
    await core.states.close()


async def test_delivered_ends_revoke_and_failure(tmp_path: Path) -> None:
    core = await _core(tmp_path)
    await _message(core, "m", "+1", "+2", "+3")
    assert core._advance("labbot", "m", "+1", Status.DELIVERED)
    assert not core._advance("labbot", "m", "+1", Status.REVOKED)
    assert not core._advance("labbot", "m", "+1", Status.FAILED, FailureCode.EXPIRED)
    assert core._advance("labbot", "m", "+1", Status.DISPLAYED)
    assert core._advance("labbot", "m", "+2", Status.SENT)
    assert core._advance("labbot", "m", "+2", Status.REVOKED)
    assert not core._advance("labbot", "m", "+2", Status.DELIVERED)
    assert core._advance("labbot", "m", "+3", Status.FAILED, FailureCode.EXPIRED)
    rec = core.record("labbot", "m")
    assert rec is not None
    assert [(r.status, r.failure) for r in rec.recipients] == [
        (Status.DISPLAYED, None), (Status.REVOKED, None), (Status.FAILED, FailureCode.EXPIRED)]
    assert core.states.open_count("labbot", "m") == 0
    await core.states.close()


async def test_revoke_of_unknown_or_final_recipients_fails_without_sip(tmp_path: Path) -> None:
    core = await _core(tmp_path)
    await _message(core, "m", "+1", "+2")
    core._advance("labbot", "m", "+1", Status.DELIVERED)
    seen = _seen(core)
    # +2 is still ACCEPTED (in our own queue): withdrawn locally, no SIP needed
    assert await core.revoke("labbot", "m") == {"+1": Status.REVOKE_FAILED,
                                                 "+2": Status.REVOKED}
    assert await core.revoke("labbot", "m", ("+9",)) == {"+9": Status.REVOKE_FAILED}
    assert await core.revoke("nobot", "m", ("+1",)) == {"+1": Status.REVOKE_FAILED}
    assert [e.status for e in seen] == [Status.REVOKED, Status.REVOKE_FAILED,
                                        Status.REVOKE_FAILED]
    rec = core.record("labbot", "m")
    assert rec is not None and rec.recipients[0].status is Status.DELIVERED
    await core.states.close()


async def test_message_ids_and_states_survive_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "m.db")
    core = await _core(tmp_path, db)
    await _message(core, "m1", "+1", "+2")
    core._advance("labbot", "m1", "+1", Status.DELIVERED)
    assert core.states.note_user("labbot", "+1", 5.0)
    core.states.note_inbound("labbot", "+1", "p2a", "2026-01-01T00:00:00Z", 5.0)
    await core.states.close()
    again = MessageStates(db)
    await again.open()
    assert again.has_message("labbot", "m1")
    assert not await again.add_message("labbot", "m1", created_at=2.0, client_correlator="",
                                       conversation_id="", contribution_id="", recipients=[])
    r1 = again.recipient("labbot", "m1", "+1")
    assert r1 is not None and r1.status is Status.DELIVERED
    assert again.open_count("labbot", "m1") == 1
    assert not again.note_user("labbot", "+1", 6.0)
    assert again.inbound_datetime("labbot", "+1", "p2a") == "2026-01-01T00:00:00Z"
    await again.close()


async def test_bot_lookup(tmp_path: Path) -> None:
    core = await _core(tmp_path)
    ct = core.bot_by_uri("106598858810000001@BotPlatform.rcs.vnet.cn")
    assert ct is not None and ct.dialect == "ctcu"
    assert core.bot_by_uri("sip:labbot@botplatform.ims.mnc000.mcc460.3gppnetwork.org")
    assert core.bot_by_uri("sip:nobody@x") is None and core.bot_by_uri("") is None
    assert core.allow("labbot") and not core.allow("nobot")
    await core.states.close()


def test_failure_codes_from_5gmc_answers() -> None:
    rcs, sms = SubscriberKind.RCS, SubscriberKind.SMS_ONLY
    assert failure_for(404, rcs, True) is FailureCode.TERMINAL_NOT_FOUND
    assert failure_for(480, sms, True) is FailureCode.NOT_5G_MESSAGE_TERMINAL
    assert failure_for(480, rcs, False) is FailureCode.OFFLINE_NOT_STORED
    assert failure_for(603, rcs, True) is FailureCode.TERMINAL_REFUSED
    assert failure_for(415, rcs, True) is FailureCode.BAD_CONTENT
    assert failure_for(502, rcs, True) is None


def _response(status: int, contact: str | None = None) -> Response:
    headers = Headers([("Contact", contact)] if contact else [])
    return Response(status, "x", headers)


def test_capabilities_from_options_answers() -> None:
    tags = ('<sip:+1@x>;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg";'
            '+g.gsma.rcs.botversion="#=1"')
    caps = capabilities_from("+1", _response(200, tags))
    assert caps.rcs and caps.registered and caps.chatbot and len(caps.feature_tags) == 2
    caps = capabilities_from("+1", _response(200, "<sip:+1@x>"))
    assert caps.known and not caps.rcs
    caps = capabilities_from("+1", _response(480))
    assert caps.known and caps.rcs and not caps.registered
    assert not capabilities_from("+1", _response(404)).known
    assert not capabilities_from("+1", None).known
    assert not capabilities_from("+1", _response(200, "<<garbage")).rcs


def test_revoke_body_escapes() -> None:
    assert b"<Message-ID>a&lt;b</Message-ID>" in revoke_body("a<b")


# -- the SIP link's transaction core ---------------------------------------------------------


def _answer(data: bytes, status: int) -> bytes:
    req = parse_message(data, stream=True)
    headers = Headers([(n, v) for n, v in req.headers if n in ("Via", "From", "To", "Call-ID",
                                                               "CSeq")])
    return Response(status, "OK", headers).to_bytes()


def test_link_core_matches_responses_and_times_out() -> None:
    core = SipLinkCore(via_host="127.0.0.1", via_port=5070, timeout_s=2.0)
    b1, d1 = core.build_request("MESSAGE", "sip:+1@h", from_uri="sip:bot@b", to_uri="sip:+1@h",
                                headers=[("Content-Type", "text/plain")], body=b"x", now=10.0)
    b2, d2 = core.build_request("OPTIONS", "sip:+2@h", from_uri="sip:bot@b", to_uri="sip:+2@h",
                                now=11.0)
    assert b1 != b2 and core.pending == 2 and core.next_deadline() == 12.0
    got = core.receive(_answer(d1, 200))
    assert isinstance(got, ResponseReceived) and got.branch == b1 and got.response.status == 200
    assert core.receive(_answer(d1, 200)) is None  # a retransmission: no transaction left
    assert core.receive(_answer(d2, 100)) is None  # provisional
    assert core.handle_timer(12.5) == []
    assert core.handle_timer(13.0) == [b2]
    assert core.pending == 0 and core.next_deadline() is None


def test_link_core_requests_and_garbage() -> None:
    core = SipLinkCore(via_host="127.0.0.1", via_port=5070, timeout_s=2.0)
    other = SipLinkCore(via_host="127.0.0.1", via_port=5071, timeout_s=2.0)
    _, data = other.build_request("MESSAGE", "sip:bot@b", from_uri="sip:+1@h",
                                  to_uri="sip:bot@b", now=0.0)
    assert isinstance(core.receive(data), RequestReceived)
    bad = data.replace(b"From: <sip:+1@h>", b"From: <<sip:+1@h")
    got = core.receive(bad)
    assert isinstance(got, GarbageReceived) and got.answer is not None
    assert got.answer.startswith(b"SIP/2.0 400")
    assert core.receive(b"\r\n\r\n") is None


@given(st.binary(max_size=600))
def test_link_core_never_raises_on_garbage(data: bytes) -> None:
    core = SipLinkCore(via_host="127.0.0.1", via_port=5070, timeout_s=2.0)
    got = core.receive(data)
    assert got is None or isinstance(got, GarbageReceived | RequestReceived | ResponseReceived)


@pytest.mark.parametrize("n", [1, 50])
def test_link_core_many_in_flight(n: int) -> None:
    core = SipLinkCore(via_host="127.0.0.1", via_port=5070, timeout_s=1.0)
    sent = [core.build_request("MESSAGE", "sip:+1@h", from_uri="sip:b@b", to_uri="sip:+1@h",
                               now=float(i)) for i in range(n)]
    for branch, data in reversed(sent):
        got = core.receive(_answer(data, 202))
        assert isinstance(got, ResponseReceived) and got.branch == branch
    assert core.pending == 0


async def test_message_states_stay_bounded_in_memory_and_read_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Closed messages beyond max_cached leave memory but stay queryable (status, late
    displayed, reused ids); open ones always stay."""
    from fivegmc.maap.model import RecipientState, Status
    from fivegmc.maap.state import MessageStates

    states = MessageStates(str(tmp_path / "m.db"), max_cached=10)
    await states.open()
    runner = asyncio.create_task(states.run())
    try:
        for i in range(50):
            mid = f"m{i}"
            assert await states.add_message("bot", mid, created_at=float(i),
                                            client_correlator="", conversation_id="",
                                            contribution_id="", recipients=[
                                                RecipientState("+8613800000001",
                                                               Status.ACCEPTED, None, 0.0)])
            if i != 3:  # m3 stays on the way
                states.set_state("bot", mid, RecipientState("+8613800000001",
                                                            Status.DELIVERED, None, 1.0))
            await states.flush()
        assert states.message_count() <= 12
        assert states.open_count("bot", "m3") == 1  # never dropped while open
        old = states.record("bot", "m0")  # read back from SQLite
        assert old is not None and old.recipients[0].status is Status.DELIVERED
        assert not await states.add_message("bot", "m1", created_at=99.0, client_correlator="",
                                            conversation_id="", contribution_id="",
                                            recipients=[])  # a reused id is still recognised
        states.set_state("bot", "m2", RecipientState("+8613800000001", Status.DISPLAYED,
                                                     None, 2.0))  # a late IMDN
        await states.flush()
        assert states.recipient("bot", "m2", "+8613800000001").status is Status.DISPLAYED
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await states.close()
