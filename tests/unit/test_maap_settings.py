"""The MaaP's [U] choices as profile settings (issue 4 hardening): GSMA webhook signature
header/algorithm, CT/CU [maap.ctcu], CMCC [maap.cmcc] notify signing, core fan-out /
capability TTL / 5GMC attempts; traffic types enforced per chatbot in CT/CU and CMCC; the
resend data kept for restart-safe sends."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from fivegmc.config import ProfileError, load_profile
from fivegmc.maap import ctcu_wire
from fivegmc.maap.cmcc import CmccDialect
from fivegmc.maap.ctcu import CtcuDialect
from fivegmc.maap.ctcu_wire import CtcuError, SendRequest
from fivegmc.maap.gsma import GsmaDialect
from fivegmc.maap.model import (
    Outbound,
    Payload,
    RecipientState,
    SmsFallback,
    Status,
    StatusEvent,
)
from fivegmc.maap.state import MessageStates

from .cmcc_fake import FakeApi, config, make_client, signed
from .test_maap_cmcc import send_xml

USER = "+8613800000001"
NOW = 1_700_000_000.0


def _bot(profile: Any, dialect: str) -> Any:
    return next(b for b in profile.maap.chatbots if b.dialect == dialect)


def test_defaults_and_overrides() -> None:
    lab = load_profile(None)
    assert (lab.maap.capability_ttl_s, lab.maap.fanout_concurrency,
            lab.maap.center_attempts) == (10.0, 256, 8)
    assert lab.maap.ctcu.signature_order == "sorted"
    assert lab.maap.cmcc.signature_order == "unsorted" and not lab.maap.cmcc.notify_signing
    gsma = _bot(lab, "gsma")
    assert (gsma.webhook_signature_header, gsma.webhook_signature_algorithm) == \
        ("X-MaaP-Signature", "sha256")
    p = load_profile(None, ('maap.ctcu.signature_order="unsorted"', "maap.ctcu.temp_media_days=1",
                            "maap.cmcc.notify_signing=true", "maap.fanout_concurrency=8",
                            'maap.chatbots[0].webhook_signature_header="X-Sig"'))
    assert p.maap.ctcu.signature_order == "unsorted" and p.maap.ctcu.temp_media_days == 1
    assert p.maap.cmcc.notify_signing and p.maap.fanout_concurrency == 8
    assert p.maap.chatbots[0].webhook_signature_header == "X-Sig"


@pytest.mark.parametrize("override, key", [
    ("maap.fanout_concurrency=0", "maap.fanout_concurrency"),
    ("maap.center_attempts=0", "maap.center_attempts"),
    ("maap.ctcu.token_calls_per_day=0", "maap.ctcu.token_calls_per_day"),
    ('maap.ctcu.signature_order="random"', "maap.ctcu.signature_order"),
    ('maap.chatbots[0].webhook_signature_header="X Sig"',
     "maap.chatbots[0].webhook_signature_header"),
    ('maap.chatbots[0].webhook_signature_algorithm="md5"',
     "maap.chatbots[0].webhook_signature_algorithm"),
    ("maap.shutdown_grace_s=-1", "maap.shutdown_grace_s"),
])
def test_bad_settings_are_named(override: str, key: str) -> None:
    with pytest.raises(ProfileError) as info:
        load_profile(None, (override,))
    assert key in str(info.value)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512", "sha1"])
def test_gsma_signature_header_and_algorithm(algorithm: str) -> None:
    lab = load_profile(None, ('maap.chatbots[0].webhook_signature_header="X-Hub-Signature"',
                              f'maap.chatbots[0].webhook_signature_algorithm="{algorithm}"'))
    bot = _bot(lab, "gsma")
    dialect = GsmaDialect(SimpleNamespace(config=lab.maap), lambda: NOW)  # type: ignore[arg-type]
    note = dialect.render(bot, StatusEvent(bot.id, "m-1", USER, Status.DELIVERED, at=NOW))
    assert note is not None
    headers = dict(note.headers)
    mac = hmac.new(bot.webhook_secret.encode(), note.body, getattr(hashlib, algorithm))
    assert headers == {"X-Hub-Signature": f"{algorithm}={mac.hexdigest()}"}


def test_ctcu_settings_from_profile() -> None:
    lab = load_profile(None, ('maap.ctcu.signature_order="unsorted"',
                              'maap.ctcu.push_content_type="multipart/form-data"',
                              "maap.ctcu.temp_media_days=0.5", "maap.ctcu.token_calls_per_day=7",
                              "maap.ctcu.require_uploaded_media=false"))
    bot = _bot(lab, "ctcu")
    dialect = CtcuDialect(SimpleNamespace(config=lab.maap),  # type: ignore[arg-type]
                          clock=lambda: NOW)
    assert dialect.temp_ttl_s == 43200.0 and dialect.token_calls_per_day == 7
    assert dialect.require_uploaded_media is False
    note = dialect.render(bot, StatusEvent(bot.id, "m-1", USER, Status.DELIVERED, at=NOW))
    assert note is not None and note.content_type == "multipart/form-data"
    h = dict(note.headers)
    expect = hashlib.sha256((bot.secret + h["timestamp"] + h["nonce"]).encode()).hexdigest()
    assert h["signature"] == expect
    # keyword arguments still override the profile
    assert CtcuDialect(SimpleNamespace(config=lab.maap),  # type: ignore[arg-type]
                       temp_ttl_s=60).temp_ttl_s == 60


def test_ctcu_traffic_type_not_allowed_is_20002() -> None:
    lab = load_profile(None, ('maap.chatbots[1].traffic_types=["token"]',))
    bot = lab.maap.chatbots[1]
    assert bot.dialect == "ctcu"
    dialect = CtcuDialect(SimpleNamespace(config=lab.maap),  # type: ignore[arg-type]
                          clock=lambda: NOW)
    text = [{"contentType": "text/plain", "contentEncoding": "utf8", "contentText": "hi"}]

    def req(traffic: str) -> SendRequest:
        return msgspec.convert({"messageList": text, "destinationAddress": [f"tel:{USER}"],
                                "senderAddress": bot.uri, "trafficType": traffic},
                               SendRequest)
    with pytest.raises(CtcuError) as info:
        dialect._outbound(bot, req("advertisement"))
    assert info.value.code == ctcu_wire.PARAMETER and "not allowed" in str(info.value)
    assert dialect._outbound(bot, req("token")).traffic_type == "token"


async def test_cmcc_traffic_type_not_allowed_is_policy() -> None:
    cfg = config()
    bots = tuple(msgspec.structs.replace(b, traffic_types=("token",))
                 if b.dialect == "cmcc" else b for b in cfg.chatbots)
    api = FakeApi(msgspec.structs.replace(cfg, chatbots=bots))
    client, _ = await make_client(api)
    try:
        path = "/messaging/group/v1/outbound/sip%3A125200401100001%40botplatform.rcs." \
               "chinamobile.com/requests"
        resp = await client.post(path, data=send_xml(
            extra_im="<trafficType>advertisement</trafficType>"), headers=signed())
        text = await resp.text()
        assert resp.status == 403 and "POL0010" in text, text
        assert not api.sent
    finally:
        await client.close()


@pytest.mark.parametrize("order", ["unsorted", "sorted"])
def test_cmcc_notify_signing(order: str) -> None:
    cfg = config(cmcc=msgspec.structs.replace(config().cmcc, notify_signing=True,
                                              signature_order=order))
    bot = next(b for b in cfg.chatbots if b.dialect == "cmcc")
    api = SimpleNamespace(config=cfg, files=SimpleNamespace(public_base="http://maap.test"))
    dialect = CmccDialect(api, clock=lambda: NOW)  # type: ignore[arg-type]
    note = dialect.render(bot, StatusEvent(bot.id, "m-1", USER, Status.DELIVERED, at=NOW))
    assert note is not None
    h = dict(note.headers)
    token = hashlib.sha256(bot.secret.encode()).hexdigest()
    parts = [token, h["timestamp"], h["nonce"]]
    parts = sorted(parts) if order == "sorted" else parts
    assert h["signature"] == hashlib.sha256("".join(parts).encode()).hexdigest()
    assert h["timestamp"] == str(int(NOW))
    plain = CmccDialect(SimpleNamespace(config=config(), files=api.files),  # type: ignore[arg-type]
                        clock=lambda: NOW)
    unsigned = plain.render(bot, StatusEvent(bot.id, "m-1", USER, Status.DELIVERED, at=NOW))
    assert unsigned is not None and unsigned.headers == ()


class _Log:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def _core(tmp_path: Path, states: MessageStates, *overrides: str, clock: Any = None) -> Any:
    from fivegmc.maap.core import MaapCore
    from fivegmc.maap.files import FileStore
    from fivegmc.maap.sip_link import SipLink
    from fivegmc.maap.tokens import TokenBook
    from fivegmc.sip.headers import Headers
    from fivegmc.sip.message import Response

    profile = load_profile(None, ("maap.port=0", "maap.sip_port=0", *overrides))
    link = SipLink(on_request=lambda r: Response(200, "OK", Headers()), log=_Log())
    files = FileStore(tmp_path / "files", "http://x", 1000, 60)
    return MaapCore(profile, link=link, states=states, tokens=TokenBook(60), files=files,
                    log=_Log(), clock=clock or (lambda: NOW))


async def test_core_settings_from_profile(tmp_path: Path) -> None:
    core = _core(tmp_path, MessageStates(":memory:"), "maap.fanout_concurrency=5",
                 "maap.capability_ttl_s=2.5", "maap.center_attempts=3")
    assert (core.concurrency, core.capability_ttl_s, core.attempts) == (5, 2.5, 3)


async def test_resume_requeues_and_keeps_deadlines(tmp_path: Path) -> None:
    """After a restart: ACCEPTED recipients are queued again, dispatched ones taken as SENT
    (not resent), SENT ones wait for IMDNs; delivery deadlines count from acceptance."""
    path = str(tmp_path / "m.db")
    first = MessageStates(path)
    await first.open()
    numbers = ("+8613800000001", "+8613800000002", "+8613800000003")
    out = Outbound("labbot", numbers, Payload("text/plain", b"hi"), "m-1")
    await first.add_message("labbot", "m-1", created_at=NOW - 4, client_correlator="",
                            conversation_id="", contribution_id="",
                            recipients=[RecipientState(n, Status.ACCEPTED, None, NOW - 4)
                                        for n in numbers],
                            outbound=msgspec.msgpack.encode(
                                Outbound("labbot", (), out.payload, "m-1")))
    first.set_state("labbot", "m-1", RecipientState(numbers[2], Status.SENT, None, NOW - 3))
    first.dispatched("labbot", "m-1", numbers[1])
    await first.close()

    states = MessageStates(path)
    await states.open()
    core = _core(tmp_path, states, "maap.delivery_timeout_s=10")
    assert core.resume() == 1 and core.resume() == 0
    assert core._jobs.qsize() == 1
    job, number = core._jobs.get_nowait()
    assert number == numbers[0] and job.payload == out.payload
    assert set(job.recipients) == set(numbers)
    assert states.recipient("labbot", "m-1", numbers[1]).status is Status.SENT
    assert len(core._deadlines) == 3  # each on the way: 6 s left of the 10
    await states.close()


async def test_resend_data_survives_reopen(tmp_path: Path) -> None:
    """What a restart needs is kept with the message, with the dispatched marks, until the
    send settles."""
    path = str(tmp_path / "m.db")
    out = Outbound("bot", (), Payload("text/plain", b"\xffhi"), "m-1", store=False,
                   dispositions=("display",), fallback=SmsFallback(True, "sms"))
    states = MessageStates(path)
    await states.open()
    await states.add_message("bot", "m-1", created_at=NOW, client_correlator="", conversation_id="",
                             contribution_id="",
                             recipients=[RecipientState(n, Status.ACCEPTED, None, NOW)
                                         for n in ("+8613800000001", "+8613800000002")],
                             outbound=msgspec.msgpack.encode(out))
    states.dispatched("bot", "m-1", "+8613800000001")
    await states.close()

    again = MessageStates(path)
    await again.open()
    ((bot, mid, data, dispatched),) = again.take_resumable()
    assert (bot, mid, dispatched) == ("bot", "m-1", frozenset({"+8613800000001"}))
    assert msgspec.msgpack.decode(data, type=Outbound) == out
    assert again.take_resumable() == []
    for n in ("+8613800000001", "+8613800000002"):
        again.set_state("bot", "m-1", RecipientState(n, Status.DELIVERED, None, NOW))
    again.forget_outbound("bot", "m-1")
    await again.close()

    third = MessageStates(path)
    await third.open()
    assert third.take_resumable() == []
    await third.close()
