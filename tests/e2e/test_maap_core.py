"""The MaaP core end to end, dialect-free: the test calls the MaapCore API directly, and real
UEs (SIP over TCP) registered at the 5GMC receive, answer and report (RFC 5438 IMDNs)."""

from __future__ import annotations

import asyncio
import time
import uuid

from fivegmc.cpim import parse_imdn
from fivegmc.maap.core import MaapCore
from fivegmc.maap.model import (
    Event,
    FailureCode,
    InboundEvent,
    NewUserEvent,
    Outbound,
    Payload,
    SmsFallback,
    Status,
    StatusEvent,
    TypingEvent,
)
from fivegmc.sip.headers import Headers
from fivegmc.sip.message import Request

from .maap_net import BotUE, MaapNet, maap_network

BOT = "labbot"
BOT_URI = "sip:labbot@botplatform.ims.mnc000.mcc460.3gppnetwork.org"
TEXT = Payload("text/plain;charset=UTF-8", b"hello from the bot")


def core_of(net: MaapNet) -> MaapCore:
    assert net.node.maap is not None
    return net.node.maap.core


def watch(core: MaapCore) -> list[Event]:
    seen: list[Event] = []
    core.observers.append(seen.append)
    return seen


def out(*numbers: str, mid: str | None = None, **kw: object) -> Outbound:
    return Outbound(BOT, numbers, TEXT, mid or uuid.uuid4().hex, **kw)  # type: ignore[arg-type]


async def state_of(core: MaapCore, mid: str, number: str, want: Status,
                   timeout: float = 5.0) -> FailureCode | None:
    deadline = time.monotonic() + timeout
    while True:
        rec = core.record(BOT, mid)
        states = {r.number: r for r in rec.recipients} if rec else {}
        got = states.get(number)
        if got is not None and got.status is want:
            return got.failure
        if time.monotonic() > deadline:
            raise AssertionError(f"{number}: {got} is not {want}")
        await asyncio.sleep(0.02)


def statuses(events: list[Event], mid: str, number: str) -> list[Status]:
    return [e.status for e in events
            if isinstance(e, StatusEvent) and e.message_id == mid and e.user == number]


async def test_send_delivered_displayed() -> None:
    async with maap_network() as net:
        core = core_of(net)
        events = watch(core)
        ue = await net.ue("+8613800000001")
        sent = out(ue.number, traffic_type="advertisement", conversation_id="conv-1")
        result = await core.send(sent)
        assert result.recipients == ((ue.number, Status.ACCEPTED, None),)
        req, cpim = await ue.next_message()
        assert cpim.message_id == sent.message_id
        assert cpim.content == TEXT.body and cpim.content_type == TEXT.content_type
        assert cpim.ns_header("http://www.gsma.com/rcs/maap/", "Traffic-Type") == "advertisement"
        assert req.headers.get("Conversation-ID") == "conv-1"
        assert "labbot@botplatform" in (req.headers.get("From") or "")
        await state_of(core, sent.message_id, ue.number, Status.SENT)
        assert (await ue.imdn(BOT_URI, sent.message_id, "delivered")).status == 200
        await state_of(core, sent.message_id, ue.number, Status.DELIVERED)
        assert (await ue.imdn(BOT_URI, sent.message_id, "displayed")).status == 200
        await state_of(core, sent.message_id, ue.number, Status.DISPLAYED)
        assert statuses(events, sent.message_id, ue.number) == [
            Status.SENT, Status.DELIVERED, Status.DISPLAYED]
        # the gsma dialect (when present) renders them to the CSP's webhook, in order
        if "gsma" in net.node.maap.dialects:  # type: ignore[union-attr]
            got = await net.csp.wait(lambda r: sent.message_id.encode() in r.body, count=3)
            for request, word in zip(got, (b'"sent"', b'"delivered"', b'"displayed"'),
                                     strict=True):
                assert word in request.body


async def test_offline_user_stored_then_delivered_on_register() -> None:
    async with maap_network() as net:
        core = core_of(net)
        number = "+8613800000002"
        sent = out(number)
        await core.send(sent)
        await state_of(core, sent.message_id, number, Status.SENT)  # 202: stored by the 5GMC
        ue = await net.ue(number)
        _, cpim = await ue.next_message()
        assert cpim.message_id == sent.message_id
        await ue.imdn(BOT_URI, sent.message_id, "delivered")
        await state_of(core, sent.message_id, number, Status.DELIVERED)


async def test_no_store_offline_fails_and_sms_only_fails() -> None:
    async with maap_network() as net:
        core = core_of(net)
        events = watch(core)
        offline, sms_only, unknown = "+8613800000003", "+8613900000001", "+8612000000001"
        a = out(offline, store=False)
        b = out(sms_only)
        c = out(unknown, "not-a-number")
        await core.send(a)
        await core.send(b)
        result = await core.send(c)
        assert result.recipients[1] == ("not-a-number", Status.FAILED,
                                        FailureCode.TERMINAL_NOT_FOUND)
        assert await state_of(core, a.message_id, offline, Status.FAILED) \
            == FailureCode.OFFLINE_NOT_STORED
        assert await state_of(core, b.message_id, sms_only, Status.FAILED) \
            == FailureCode.NOT_5G_MESSAGE_TERMINAL
        assert await state_of(core, c.message_id, unknown, Status.FAILED) \
            == FailureCode.TERMINAL_NOT_FOUND
        assert statuses(events, a.message_id, offline) == [Status.FAILED]


async def test_sms_fallback_seam_takes_over() -> None:
    async with maap_network() as net:
        core = core_of(net)
        taken: list[tuple[str, str, FailureCode]] = []

        async def fallback(o: Outbound, number: str, why: FailureCode) -> bool:
            taken.append((o.message_id, number, why))
            core.sms_result(o.bot_id, o.message_id, number, delivered=True,
                            sms_message_id="smsc-1")
            return True

        core.sms_fallback = fallback
        number = "+8613900000002"
        sent = out(number, fallback=SmsFallback(True, "hello by SMS"))
        await core.send(sent)
        await state_of(core, sent.message_id, number, Status.DELIVERED_TO_NETWORK)
        assert taken == [(sent.message_id, number, FailureCode.NOT_5G_MESSAGE_TERMINAL)]


async def test_revoke_stored_and_delivered() -> None:
    async with maap_network() as net:
        core = core_of(net)
        events = watch(core)
        stored_no = "+8613800000004"
        stored = out(stored_no)
        await core.send(stored)
        await state_of(core, stored.message_id, stored_no, Status.SENT)
        assert await core.revoke(BOT, stored.message_id) == {stored_no: Status.REVOKED}
        assert statuses(events, stored.message_id, stored_no)[-1] is Status.REVOKED
        late = await net.ue(stored_no)  # the withdrawn copy never reaches the UE
        ue = await net.ue("+8613800000005")
        delivered = out(ue.number)
        await core.send(delivered)
        await ue.next_message()
        await ue.imdn(BOT_URI, delivered.message_id, "delivered")
        await state_of(core, delivered.message_id, ue.number, Status.DELIVERED)
        assert await core.revoke(BOT, delivered.message_id) == {
            ue.number: Status.REVOKE_FAILED}
        await state_of(core, delivered.message_id, ue.number, Status.DELIVERED)
        assert statuses(events, delivered.message_id, ue.number)[-1] is Status.REVOKE_FAILED
        assert await core.revoke(BOT, "never-sent") == {}
        await asyncio.sleep(0.5)
        assert not [r for r in late.received if r.method == "MESSAGE"]


async def test_duplicate_message_id_sends_nothing_new() -> None:
    async with maap_network() as net:
        core = core_of(net)
        ue = await net.ue("+8613800000006")
        sent = out(ue.number)
        first = await core.send(sent)
        again = await core.send(sent)
        assert not first.duplicate and again.duplicate
        await ue.next_message()
        await asyncio.sleep(0.3)
        assert len([r for r in ue.received if r.method == "MESSAGE"]) == 1


async def test_p2a_message_typing_and_displayed() -> None:
    async with maap_network() as net:
        core = core_of(net)
        events = watch(core)
        ue = await net.ue("+8613800000007")
        resp = await ue.send_to_bot(BOT_URI, "text/plain", b"hi bot", mid="p2a-1",
                                    conversation_id="c-9")
        assert resp.status == 200
        await ue.send_to_bot(BOT_URI, "text/plain", b"again", mid="p2a-2")
        assert (await ue.typing(BOT_URI)).status == 200
        inbound = [e for e in events if isinstance(e, InboundEvent)]
        assert [e.message_id for e in inbound] == ["p2a-1", "p2a-2"]
        assert inbound[0].payload.body == b"hi bot" and inbound[0].conversation_id == "c-9"
        assert [e for e in events if isinstance(e, NewUserEvent)] == [
            NewUserEvent(BOT, ue.number, inbound[0].at)]
        assert any(isinstance(e, TypingEvent) and e.active for e in events)
        assert await core.displayed(BOT, ue.number, "p2a-1")
        assert not await core.displayed(BOT, ue.number, "unknown")
        # each message asked positive-delivery: the MaaP reported it delivered (RFC 5438 §7),
        # and p2a-1 displayed when the chatbot read it
        reports = [parse_imdn((await ue.next_message())[1].content) for _ in range(3)]
        assert sorted((r.message_id, r.status) for r in reports) == [
            ("p2a-1", "delivered"), ("p2a-1", "displayed"), ("p2a-2", "delivered")]


async def test_typing_and_capabilities() -> None:
    async with maap_network() as net:
        core = core_of(net)
        ue = await net.ue("+8613800000008")
        plain = await net.ue("+8613800000009", chatbot=False)
        await core.send(Outbound(BOT, (ue.number,), Payload("", b"active"), "t-1",
                                 is_typing=True))
        _, cpim = await ue.next_message()
        assert cpim.content_type == "application/im-iscomposing+xml"
        assert core.record(BOT, "t-1") is None  # typing is not tracked
        caps = await core.capabilities(BOT, ue.number)
        assert caps.known and caps.rcs and caps.registered and caps.chatbot
        caps = await core.capabilities(BOT, plain.number)
        assert caps.rcs and not caps.chatbot
        caps = await core.capabilities(BOT, "+8613800000010")
        assert caps.known and not caps.registered
        caps = await core.capabilities(BOT, "+8613900000003")
        assert caps.known and not caps.rcs
        caps = await core.capabilities(BOT, "+8612000000000")
        assert not caps.known


async def test_bad_p2a_requests_get_sip_errors() -> None:
    async with maap_network() as net:
        ue = await net.ue("+8613800000011")
        resp = await ue.send_to_bot("sip:nobody@botplatform.ims.mnc000.mcc460.3gppnetwork.org",
                                    "text/plain", b"x")
        assert resp.status == 404
        uri = BOT_URI
        req = ue.build("MESSAGE", uri, f"<{uri}>", headers=[("Content-Type", "message/cpim")],
                       body=b"From: <sip:a@b>\r\nno blank line")
        resp = await ue.request(req)
        assert resp.status == 400 and "CPIM" in resp.reason
        req = ue.build("MESSAGE", uri, f"<{uri}>", headers=[("Content-Type", "text/plain")],
                       body=b"plain")
        assert (await ue.request(req)).status == 415
        assert isinstance(req, Request) and isinstance(req.headers, Headers)


async def test_delivery_timeout_revokes_then_expires() -> None:
    async with maap_network("maap.delivery_timeout_s=0.5") as net:
        core = core_of(net)
        events = watch(core)
        number = "+8613800000012"
        sent = out(number)
        await core.send(sent)
        assert await state_of(core, sent.message_id, number, Status.FAILED) \
            == FailureCode.EXPIRED
        assert statuses(events, sent.message_id, number) == [Status.SENT, Status.FAILED]
        ue = await net.ue(number)  # revoked at the 5GMC: never delivered
        await asyncio.sleep(0.5)
        assert not [r for r in ue.received if r.method == "MESSAGE"]


async def test_mass_send_10000_recipients() -> None:
    async with maap_network() as net:
        core = core_of(net)
        ues: list[BotUE] = [await net.ue(f"+86138000{i:05d}") for i in range(20, 30)]
        numbers = tuple(f"+86138000{i:05d}" for i in range(20, 10020))
        sent = out(*numbers)
        started = time.monotonic()
        result = await core.send(sent)
        assert len(result.recipients) == 10000
        assert all(s is Status.ACCEPTED for _, s, _ in result.recipients)
        deadline = started + 60
        while True:
            rec = core.record(BOT, sent.message_id)
            assert rec is not None
            if all(r.status is Status.SENT for r in rec.recipients):
                break
            assert time.monotonic() < deadline, "10,000 recipients not all SENT in 60 s"
            await asyncio.sleep(0.2)
        for ue in ues:
            _, cpim = await ue.next_message()
            assert cpim.message_id == sent.message_id


async def test_admin_routes_and_http_limits() -> None:
    async with maap_network() as net:
        core = core_of(net)
        ue = await net.ue("+8613800000013")
        sent = out(ue.number, client_correlator="corr-1")
        await core.send(sent)
        await state_of(core, sent.message_id, ue.number, Status.SENT)
        async with net.http.get(f"{net.admin}/admin/v1/chatbots") as resp:
            bots = (await resp.json())["chatbots"]
        assert {b["id"] for b in bots} >= {"labbot", "125200401100001"}
        url = f"{net.admin}/admin/v1/chatbots/{BOT}/messages/{sent.message_id}"
        async with net.http.get(url) as resp:
            doc = await resp.json()
        assert doc["client_correlator"] == "corr-1"
        assert doc["recipients"][0]["number"] == ue.number
        assert doc["recipients"][0]["status"] == "sent"
        async with net.http.get(f"{net.admin}/admin/v1/chatbots/{BOT}/messages/nope") as resp:
            assert resp.status == 404
        async with net.http.get(f"{net.admin}/admin/v1/chatbots/nobot/events") as resp:
            assert resp.status == 404
        async with net.http.get(f"{net.admin}/admin/v1/chatbots/{BOT}/events?limit=x") as resp:
            assert resp.status == 400
        if "gsma" in net.node.maap.dialects:  # type: ignore[union-attr]
            await net.csp.wait(lambda r: sent.message_id.encode() in r.body)
            async with net.http.get(f"{net.admin}/admin/v1/chatbots/{BOT}/events") as resp:
                doc = await resp.json()
            assert doc["events"] and doc["chatbot"] == BOT
        async with net.http.get(f"{net.base}/openapi.json") as resp:
            assert resp.status == 200 and (await resp.json())["openapi"].startswith("3.")
        big = b"x" * (core.config.max_body_bytes + 10)
        async with net.http.post(f"{net.base}/bot/v1/{BOT}/messages", data=big,
                                 headers={"Content-Type": "application/json"}) as resp:
            assert resp.status in (401, 413)  # the dialect may check the token first
