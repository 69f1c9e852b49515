"""The SMS fallback policy (pure) and helpers, and the fallback service's durable queue across
a restart and an SMSC outage (real SMSC stub on 127.0.0.1, real SQLite file)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from fivegmc.config import ChatbotConfig, MaapSmsConfig, SmppAccount, SmscConfig
from fivegmc.maap.fallback import (
    Decision,
    SmsFallbackService,
    bot_for_port,
    decide,
    msisdn,
    receipt_outcome,
    sms_source,
)
from fivegmc.maap.model import (
    TEXT,
    FailureCode,
    InboundEvent,
    Outbound,
    Payload,
    SmsFallback,
)
from fivegmc.maap.sms_queue import DONE, QUEUED, SUBMITTED, SmsQueue
from fivegmc.obs.logging import make_logger
from fivegmc.smpp.receipt import DeliveryReceipt
from fivegmc.smsc.metrics import SmscMetrics
from fivegmc.smsc.server import SmscNode

BOT = ChatbotConfig(id="bot1", uri="sip:bot1@botplatform.example", dialect="ctcu",
                    app_id="a", secret="s", sms_port="10659001")
CM = ChatbotConfig(id="cm1", uri="sip:cm1@botplatform.rcs.chinamobile.com", dialect="cmcc",
                   app_id="a", secret="s", sms_port="1065900",
                   fallback_text="Read it at http://lab/h5/{messageId}")
ON = MaapSmsConfig(enabled=True)


def out(allowed: bool = True, text: str = "sms text", bot: str = "bot1",
        mid: str = "m1") -> Outbound:
    return Outbound(bot_id=bot, recipients=("+8613900000001",), payload=Payload(TEXT, b"x"),
                    message_id=mid, fallback=SmsFallback(allowed, text))


# -- policy ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("why", "reason"), [
    (FailureCode.NOT_5G_MESSAGE_TERMINAL, "sms-only"),
    (FailureCode.OFFLINE_NOT_STORED, "offline-not-stored"),
    (FailureCode.EXPIRED, "not-delivered-in-time"),
])
def test_fallback_cases(why: FailureCode, reason: str) -> None:
    assert decide(out(), BOT, why, ON) == Decision(True, reason, "sms text")


@pytest.mark.parametrize("why", [FailureCode.TERMINAL_NOT_FOUND, FailureCode.BAD_CONTENT,
                                 FailureCode.TERMINAL_REFUSED, None])
def test_no_fallback_for_other_failures(why: FailureCode | None) -> None:
    assert not decide(out(), BOT, why, ON).send


def test_csp_forbids_or_profile_disables_or_no_text() -> None:
    why = FailureCode.NOT_5G_MESSAGE_TERMINAL
    forbidden = decide(out(allowed=False), BOT, why, ON)
    assert not forbidden.send and "CSP" in forbidden.reason
    assert not decide(out(), BOT, why, MaapSmsConfig(enabled=False)).send
    assert not decide(out(text="  "), BOT, why, ON).send


def test_chatbot_fallback_text_fills_message_id() -> None:
    d = decide(out(text="", bot="cm1", mid="abc"), CM, FailureCode.EXPIRED, ON)
    assert d.send and d.text == "Read it at http://lab/h5/abc"


@given(allowed=st.booleans(), text=st.text(max_size=30), enabled=st.booleans(),
       why=st.sampled_from([*FailureCode, None]))
def test_policy_never_sends_what_is_not_allowed(allowed: bool, text: str, enabled: bool,
                                                why: FailureCode | None) -> None:
    d = decide(out(allowed, text), BOT, why, MaapSmsConfig(enabled=enabled))
    assert d.reason
    if d.send:
        assert enabled and allowed and text.strip() and d.text == text
        assert why in (FailureCode.NOT_5G_MESSAGE_TERMINAL, FailureCode.OFFLINE_NOT_STORED,
                       FailureCode.EXPIRED)


def test_source_address() -> None:
    assert sms_source(BOT, ON) == "10659001"
    assert sms_source(BOT, MaapSmsConfig(source="10658888")) == "10658888"
    bare = ChatbotConfig(id="b" * 30, uri="sip:b@x", dialect="gsma", app_id="a", secret="s")
    assert sms_source(bare, ON) == "b" * 20


def test_receipt_outcome() -> None:
    assert receipt_outcome(["DELIVRD", "DELIVRD"]) is True
    assert receipt_outcome(["DELIVRD", ""]) is None
    assert receipt_outcome(["", "UNDELIV"]) is False
    assert receipt_outcome(["ACCEPTD"]) is True
    assert receipt_outcome(["ENROUTE"]) is None
    assert receipt_outcome([]) is None
    for stat in ("UNDELIV", "EXPIRED", "REJECTD", "DELETED", "UNKNOWN"):
        assert receipt_outcome(["DELIVRD", stat]) is False


def test_msisdn_and_ports() -> None:
    assert msisdn("+8613900000001") == "+8613900000001"
    assert msisdn("8613900000001") == "+8613900000001"
    assert msisdn("13900000001") == "+8613900000001"
    assert msisdn("008613900000001") == "+8613900000001"
    assert msisdn("alpha") == "alpha"
    assert bot_for_port([BOT, CM], "10659001") is BOT
    assert bot_for_port([BOT, CM], "1065900177") is BOT  # extension digits: longest port
    assert bot_for_port([BOT, CM], "10659002") is CM
    assert bot_for_port([BOT, CM], "10658") is None


@given(st.text(max_size=25))
def test_hostile_addresses_never_raise(addr: str) -> None:
    assert isinstance(msisdn(addr), str)
    assert bot_for_port([BOT, CM], addr) in (None, BOT, CM)


# -- the durable queue -------------------------------------------------------------------------


async def test_queue_states_survive_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "fallback.db")
    q = SmsQueue(path)
    assert await q.open() == []
    a = await q.add("bot1", "m1", "+8613900000001", "10659001", "a", "sms-only", 1.0)
    b = await q.add("bot1", "m2", "+8613900000002", "10659001", "b", "sms-only", 2.0)
    c = await q.add("bot1", "m3", "+8613900000003", "10659001", "c", "sms-only", 3.0)
    assert a and b and c
    assert await q.add("bot1", "m1", "+8613900000001", "x", "x", "x", 4.0) is None  # repeat
    b.smsc_ids = ("s1", "s2")
    b.stats["s1"] = "DELIVRD"
    q.submitted(b)
    c.smsc_ids = ("s3",)
    q.submitted(c)
    q.done(c, "delivered", 5.0)
    await q.close()
    q2 = SmsQueue(path)
    jobs = {j.message_id: j for j in await q2.open()}
    await q2.close()
    assert set(jobs) == {"m1", "m2"}
    assert jobs["m1"].state == QUEUED and jobs["m1"].text == "a"
    assert jobs["m2"].state == SUBMITTED and jobs["m2"].smsc_ids == ("s1", "s2")
    assert jobs["m2"].stats == {"s1": "DELIVRD", "s2": ""}
    assert DONE == "done"


# -- the service across an SMSC outage and a restart ------------------------------------------


class FakeCore:
    """What the service uses of MaapCore."""

    def __init__(self) -> None:
        self.results: list[tuple[str, str, str, bool, str]] = []
        self.inbound: list[InboundEvent] = []

    def bot(self, bot_id: str) -> ChatbotConfig | None:
        return {"bot1": BOT, "cm1": CM}.get(bot_id)

    def bots(self) -> tuple[ChatbotConfig, ...]:
        return (BOT, CM)

    def sms_result(self, bot_id: str, message_id: str, number: str, *, delivered: bool,
                   sms_message_id: str = "") -> None:
        self.results.append((bot_id, message_id, number, delivered, sms_message_id))

    def inbound_sms(self, event: InboundEvent) -> None:
        self.inbound.append(event)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


FAST = MaapSmsConfig(enabled=True, reconnect_initial_s=0.05, reconnect_max_s=0.1,
                     enquire_link_s=0.5, response_timeout_s=2.0)


async def test_restart_while_smsc_down_sends_each_once(tmp_path: Path) -> None:
    port = _free_port()
    path = str(tmp_path / "fallback.db")
    notes: list[tuple[str, str, str]] = []
    core = FakeCore()
    first = SmsFallbackService(core, FAST, path,  # type: ignore[arg-type]
                               note_event=lambda *a: notes.append(a))
    await first.open()
    run = asyncio.get_running_loop().create_task(first.run(("127.0.0.1", port)))
    numbers = [f"+86139000000{i:02d}" for i in range(5)]
    for i, n in enumerate(numbers):
        took = await first.hook(out(text=f"msg {i}", mid=f"m{i}"), n,
                                FailureCode.NOT_5G_MESSAGE_TERMINAL)
        assert took
    assert not await first.hook(out(allowed=False, mid="nope"), numbers[0],
                                FailureCode.NOT_5G_MESSAGE_TERMINAL)
    await asyncio.sleep(0.3)  # the SMSC is down: nothing accepted
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    await first.close()  # "the node stops"
    assert core.results == []
    assert [n[1] for n in notes].count("fallback-sms") == 5
    assert notes[5][:2] == ("nope", "fallback-refused")

    smsc = SmscNode(SmscConfig(port=port, accounts=(SmppAccount(system_id="maap",
                                                                password="lab-maap"),),
                               receipt_delay_max_s=0.01),
                    SmscMetrics(CollectorRegistry()), make_logger("ERROR", "console"))
    await smsc.start()
    smsc_task = asyncio.get_running_loop().create_task(smsc.run())
    second = SmsFallbackService(core, FAST, path)  # type: ignore[arg-type]
    await second.open()
    run = asyncio.get_running_loop().create_task(second.run(("127.0.0.1", port)))
    try:
        await wait_for(lambda: len(core.results) == 5)
        assert sorted(r[1] for r in core.results) == [f"m{i}" for i in range(5)]
        assert all(r[3] for r in core.results)
        texts = sorted(e["text"] for e in smsc.core.inbox_json())
        assert texts == [f"msg {i}" for i in range(5)]  # each exactly once
        # a repeat of a taken-over recipient does not send again
        assert await second.hook(out(text="msg 0", mid="m0"), numbers[0],
                                 FailureCode.NOT_5G_MESSAGE_TERMINAL)
        await asyncio.sleep(0.2)
        assert len(smsc.core.inbox_json()) == 5
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await second.close()
        smsc_task.cancel()
        await asyncio.gather(smsc_task, return_exceptions=True)
        await smsc.close()
    third = SmsFallbackService(core, FAST, path)  # type: ignore[arg-type]
    await third.open()
    assert third.pending == 0  # all done on disk
    await third.close()


async def test_receipts_pending_at_restart_still_map_back(tmp_path: Path) -> None:
    path = str(tmp_path / "fallback.db")
    q = SmsQueue(path)
    await q.open()
    job = await q.add("bot1", "m9", "+8613900000009", "10659001", "t", "sms-only", 1.0)
    assert job is not None
    job.smsc_ids = ("x1", "x2")
    job.stats["x1"] = "DELIVRD"
    q.submitted(job)
    await q.close()
    core = FakeCore()
    svc = SmsFallbackService(core, FAST, path)  # type: ignore[arg-type]
    await svc.open()

    svc._on_receipt(DeliveryReceipt("x2", "DELIVRD"))
    assert core.results == [("bot1", "m9", "+8613900000009", True, "x1,x2")]
    svc._on_receipt(DeliveryReceipt("x2", "DELIVRD"))  # a repeated receipt changes nothing
    assert len(core.results) == 1
    await svc.close()


@pytest.mark.parametrize(("override", "key"), [
    ('maap.sms.password="longer-than-8"', "maap.sms.password"),
    ('maap.sms.system_id=""', "maap.sms.system_id"),
    ("maap.sms.port=70000", "maap.sms.port"),
    ("maap.sms.window=0", "maap.sms.window"),
])
def test_maap_sms_settings_checked(override: str, key: str) -> None:
    from fivegmc.config import ProfileError, load_profile

    with pytest.raises(ProfileError) as info:
        load_profile(None, [override])
    assert key in str(info.value)


def test_lab_profile_binds_the_maap_account() -> None:
    from fivegmc.config import load_profile

    profile = load_profile()
    sms = profile.maap.sms
    assert sms.enabled and (sms.host, sms.port) == ("", 0)
    assert any(a.system_id == sms.system_id and a.password == sms.password
               for a in profile.smsc.accounts)
