"""Store-and-forward end to end on real sockets (issue 3): offline → 202 stored → delivered in
order on register; duplicates once; expiry with a negative-delivery IMDN; restart safety."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from pathlib import Path

import pytest

from fivegmc.cpim import parse_cpim, parse_imdn
from fivegmc.node import running

from . import peers
from .conftest import make_profile
from .ue import UE, wait_for

pytestmark = pytest.mark.e2e
A = "+8613800000001"
B = "+8613800000002"


async def test_offline_messages_are_stored_then_delivered_in_order_on_register(
        ue_factory) -> None:
    a = await ue_factory(A)
    texts = [f"stored message {i}" for i in range(5)]
    for t in texts:
        assert (await a.message(B, t)).status == 202  # durable before the 202
    b = await ue_factory(B)
    assert (await b.register()).status == 200
    await wait_for(lambda: len(b.received) >= 5)
    await asyncio.sleep(0.3)
    got = [parse_cpim(m.body) for m in b.received]
    assert [c.content.decode() for c in got] == texts  # in order, CPIM untouched
    assert len(b.received) == 5  # each once
    assert b.received[0].headers.get("Content-Type") == "message/cpim"
    assert (b.received[0].headers.get("From") or "").startswith(f"<sip:{A}@")


async def test_duplicates_are_answered_202_and_delivered_once(ue_factory) -> None:
    a = await ue_factory(A)
    mid = uuid.uuid4().hex
    # the same imdn.Message-ID from the same sender twice, e.g. a resend after a lost 202
    assert (await a.message(B, "only once", mid=mid)).status == 202
    assert (await a.message(B, "only once", mid=mid)).status == 202
    b = await ue_factory(B)
    await b.register()
    await wait_for(lambda: len(b.received) >= 1)
    await asyncio.sleep(0.5)
    assert len(b.received) == 1


async def test_expired_message_gives_the_sender_a_negative_delivery_imdn() -> None:
    async with running(make_profile("messaging.validity_s=1")) as node:
        expired: list[str] = []
        assert node.sip.forwarding is not None
        node.sip.forwarding.expired_hooks.append(lambda m: expired.append(m.recipient))
        lst = node.listener("udp")
        a = await UE(A, (lst.host, lst.port)).start()
        try:
            await a.register()
            mid = uuid.uuid4().hex
            assert (await a.message(B, "never delivered", mid=mid,
                                    disposition="positive-delivery, negative-delivery")
                    ).status == 202
            await wait_for(lambda: any(b"imdn+xml" in m.body for m in a.received), 6.0)
            report = next(m for m in a.received if b"imdn+xml" in m.body)
            cpim = parse_cpim(report.body)
            imdn = parse_imdn(cpim.content)
            assert imdn.message_id == mid
            assert (imdn.kind, imdn.status) == ("delivery", "failed")
            assert expired == [B]  # the hook the SMS fallback will use
        finally:
            a.close()


async def test_store_unavailable_answers_503_never_silent(ue_factory, node) -> None:  # type: ignore[no-untyped-def]
    a = await ue_factory(A)
    await node.store.close()  # the backend goes away
    resp = await a.message(B, "while the store is down")
    assert resp.status == 503
    assert resp.headers.get("Retry-After")


@pytest.mark.peer
def test_restart_safety_sigkill_mid_stream(tmp_path: Path) -> None:
    """Messages to an offline subscriber stream in; the node is SIGKILLed mid-stream and
    restarted on the same SQLite file; every message it answered 202 is delivered exactly once,
    and nothing that was not sent is invented."""
    asyncio.run(_restart_safety(tmp_path))


async def _restart_safety(tmp_path: Path) -> None:
    node = peers.fivegmc_node(tmp_path, extra_sets=["store.kind=sqlite"])
    node.start()
    sent: dict[str, int | None] = {}
    try:
        a = await UE(A, ("127.0.0.1", node.sip_port)).start()
        try:
            async def send(i: int) -> None:
                mid = f"restart-{i}"
                sent[mid] = None
                with contextlib.suppress(TimeoutError):  # no answer: the node was killed
                    sent[mid] = (await a.message(B, mid, mid=mid, timeout=2.0)).status

            async def kill_mid_stream() -> None:
                await asyncio.sleep(0.5)
                assert node.proc is not None
                node.proc.send_signal(signal.SIGKILL)

            killer = asyncio.ensure_future(kill_mid_stream())
            tasks = []
            for i in range(1000):  # ~500 MESSAGE/s for 2 s; the kill comes at 0.5 s
                tasks.append(asyncio.ensure_future(send(i)))
                await asyncio.sleep(0.002)
            await asyncio.gather(killer, *tasks)
        finally:
            a.close()
        accepted = {mid for mid, st in sent.items() if st == 202}
        assert accepted, "nothing was accepted before the kill"
        assert len(accepted) < len(sent), "the kill came too late to be mid-stream"
        node.proc.wait(5)
        node = peers.fivegmc_node(tmp_path, extra_sets=["store.kind=sqlite"])
        node.start()
        b = await UE(B, ("127.0.0.1", node.sip_port)).start()
        try:
            assert (await b.register()).status == 200
            await wait_for(lambda: len(b.received) >= len(accepted), 20.0)
            await asyncio.sleep(1.0)
            delivered = [parse_cpim(m.body).message_id for m in b.received]
        finally:
            b.close()
        print(f"restart safety: sent {len(sent)}, answered 202 {len(accepted)}, "
              f"delivered after restart {len(delivered)}")
        assert len(delivered) == len(set(delivered)), "a message was delivered twice"
        assert accepted <= set(delivered), "a message answered 202 was lost"
        assert set(delivered) <= set(sent), "a message was invented"
    finally:
        node.stop()


async def test_admin_api_shows_registrations_capabilities_and_message_trace(
        ue_factory, node) -> None:  # type: ignore[no-untyped-def]
    import aiohttp

    host, port = node.admin.address
    base = f"http://{host}:{port}/admin/v1"
    a = await ue_factory(A)
    assert (await a.message(B, "trace me")).status == 202
    b = await ue_factory(B)
    await b.register()
    await wait_for(lambda: len(b.received) == 1)
    await asyncio.sleep(0.2)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/registrations/{B}") as r:
            assert r.status == 200
            reg = await r.json()
            assert reg["bindings"][0]["feature_tags"]["+g.3gpp.icsi-ref"].startswith('"urn')
        async with http.get(f"{base}/registrations") as r:
            assert (await r.json())["count"] == 1
        async with http.get(f"{base}/registrations/{A}") as r:
            assert r.status == 404 and "error" in await r.json()
        async with http.get(f"{base}/capabilities/{B}") as r:
            cap = await r.json()
            assert cap["rcs"] is True and cap["sip_status"] == 200
        async with http.get(f"{base}/capabilities/+8613900000001") as r:
            cap = await r.json()
            assert (cap["subscriber"], cap["rcs"], cap["sip_status"]) == ("sms_only", False, 200)
        async with http.get(f"{base}/capabilities/{A}") as r:
            assert (await r.json())["sip_status"] == 480  # RCS, not registered
        delivered = await node.store.count(__import__(
            "fivegmc.store.protocol", fromlist=["MessageState"]).MessageState.DELIVERED)
        assert delivered == 1
        msg_id = b.received[0].call_id().split("-")[0]  # the node's id leads the Call-ID
        async with http.get(f"{base}/messages/{msg_id}") as r:
            assert r.status == 200
            info = await r.json()
            assert info["state"] == "delivered"
            assert [e["event"] for e in info["trace"]] == ["stored", "delivered"]
        async with http.get(f"{base}/messages/nope") as r:
            assert r.status == 404


async def test_delivered_and_displayed_imdns_go_back_to_the_sender(ue_factory) -> None:
    """The recipient's IMDNs are ordinary pager MESSAGEs to the sender: relayed when it is
    online, stored and delivered when it is not (RFC 5438 §7.1.1 shape, CPIM untouched)."""
    from fivegmc.cpim import build_imdn_report_cpim

    a = await ue_factory(A)
    b = await ue_factory(B)
    await b.register()
    mid = uuid.uuid4().hex
    assert (await a.message(B, "please confirm", mid=mid)).status == 200  # B online: relayed
    assert len(b.received) == 1

    def report(status: str, kind: str) -> bytes:
        return build_imdn_report_cpim(
            from_=f"<sip:{B}@ims.mnc000.mcc460.3gppnetwork.org>",
            to=f"<sip:{A}@ims.mnc000.mcc460.3gppnetwork.org>", message_id=uuid.uuid4().hex,
            datetime="2026-11-21T12:00:01Z", original_message_id=mid,
            original_datetime="2026-11-21T12:00:00Z", kind=kind, status=status)  # type: ignore[arg-type]

    uri = f"sip:{A}@ims.mnc000.mcc460.3gppnetwork.org"
    delivered = b.build("MESSAGE", uri, f"<{uri}>", headers=[("Content-Type", "message/cpim")],
                        body=report("delivered", "delivery"))
    assert (await b.request(delivered)).status == 202  # A offline: stored
    await a.register()
    displayed = b.build("MESSAGE", uri, f"<{uri}>", headers=[("Content-Type", "message/cpim")],
                        body=report("displayed", "display"))
    assert (await b.request(displayed)).status == 200  # A online now: relayed
    await wait_for(lambda: len(a.received) >= 2)
    kinds = sorted(parse_imdn(parse_cpim(m.body).content).status for m in a.received)
    assert kinds == ["delivered", "displayed"]
    assert all(parse_imdn(parse_cpim(m.body).content).message_id == mid for m in a.received)


async def test_ue_that_does_not_answer_in_time_gets_it_later_from_the_store() -> None:
    """A registered UE that gives no final answer within messaging.answer_timeout_s: the sender
    gets 202 (stored), and the node delivers the stored copy once the UE answers again."""
    prof = make_profile("messaging.answer_timeout_s=1", "messaging.retry_initial_s=0.5")
    async with running(prof) as node:
        lst = node.listener("udp")
        a = await UE(A, (lst.host, lst.port)).start()
        b = await UE(B, (lst.host, lst.port), answer=None).start()  # asleep
        try:
            await b.register()
            t0 = asyncio.get_running_loop().time()
            resp = await a.message(B, "are you there?", timeout=5.0)
            assert resp.status == 202
            assert 0.9 < asyncio.get_running_loop().time() - t0 < 2.5
            b.answer = 200  # wakes up: answers retransmissions and the stored delivery
            from fivegmc.store.protocol import MessageState

            async def delivered() -> int:
                return await node.store.count(MessageState.DELIVERED)

            for _ in range(100):
                if await delivered() == 1:
                    break
                await asyncio.sleep(0.05)
            assert await delivered() == 1
            assert await node.store.count(MessageState.STORED) == 0
        finally:
            a.close()
            b.close()


async def test_late_answer_marks_the_stored_copy_delivered_no_second_copy() -> None:
    prof = make_profile("messaging.answer_timeout_s=1", "messaging.retry_initial_s=5",
                        "messaging.retry_max_s=10")
    async with running(prof) as node:
        lst = node.listener("udp")
        a = await UE(A, (lst.host, lst.port)).start()
        b = await UE(B, (lst.host, lst.port), answer_delay=1.6).start()  # answers late
        try:
            await b.register()
            assert (await a.message(B, "slow UE", timeout=5.0)).status == 202
            from fivegmc.store.protocol import MessageState

            for _ in range(60):
                if await node.store.count(MessageState.DELIVERED) == 1:
                    break
                await asyncio.sleep(0.05)
            assert await node.store.count(MessageState.DELIVERED) == 1  # the late 200 counted
            await asyncio.sleep(1.0)
            assert len({m.call_id() for m in b.received}) == 1  # never sent a second time
        finally:
            a.close()
            b.close()


async def test_one_to_many_to_mixed_online_and_offline_recipients(ue_factory) -> None:  # type: ignore[no-untyped-def]
    """RFC 5365: one MESSAGE with a recipient list → 202; each recipient gets its own copy
    (online ones now, offline ones when they register), unknown entries reported."""
    from fivegmc.sip.recipients import build_list_body

    from .ue import DOMAIN, cpim_body

    c_number = "+8613800000003"
    a = await ue_factory(A)
    b = await ue_factory(B)
    await b.register()
    uris = [f"sip:{B}@{DOMAIN}", f"sip:{c_number}@{DOMAIN}", f"sip:{B}@{DOMAIN}",
            "sip:+8613700000009@" + DOMAIN]
    mid = uuid.uuid4().hex
    body = build_list_body("list1", "message/cpim", cpim_body(A, B, "to all", mid), uris)
    service = f"sip:exploder@{DOMAIN}"
    req = a.build("MESSAGE", service, f"<{service}>", headers=[
        ("Content-Type", 'multipart/mixed; boundary="list1"'),
        ("Require", "recipient-list-message")], body=body)
    resp = await a.request(req)
    assert resp.status == 202
    assert "+8613700000009" in (resp.headers.get("Warning") or "")
    await wait_for(lambda: len(b.received) == 1)  # online: delivered now, once (no repeat)
    got = b.received[0]
    assert got.headers.get("Content-Type") == "message/cpim"
    assert parse_cpim(got.body).message_id == mid
    assert got.headers.get("Require") is None
    c = await ue_factory(c_number)
    await c.register()  # offline recipient: delivered on register
    await wait_for(lambda: len(c.received) == 1)
    assert parse_cpim(c.received[0].body).content == b"to all"
    await asyncio.sleep(0.3)
    assert len(b.received) == 1 and len(c.received) == 1


async def test_recipient_list_over_the_cap_is_413() -> None:
    from fivegmc.sip.recipients import build_list_body

    from .ue import DOMAIN

    async with running(make_profile("messaging.max_recipients=3")) as node:
        lst = node.listener("udp")
        a = await UE(A, (lst.host, lst.port)).start()
        try:
            uris = [f"sip:+861380000001{i}@{DOMAIN}" for i in range(4)]
            service = f"sip:exploder@{DOMAIN}"
            req = a.build("MESSAGE", service, f"<{service}>", headers=[
                ("Content-Type", 'multipart/mixed; boundary="x"'),
                ("Require", "recipient-list-message")],
                body=build_list_body("x", "text/plain", b"hi", uris))
            resp = await a.request(req)
            assert resp.status == 413
            assert "Too many recipients" in resp.reason
        finally:
            a.close()


async def test_cdrs_one_record_per_message_outcome(tmp_path: Path) -> None:
    """A relayed MESSAGE, a stored-then-delivered one and a duplicate each leave one CDR;
    `fivegmc cdr dump` reads them."""
    import json
    import subprocess
    import sys

    from fivegmc.obs.cdr import read_cdrs

    cdr_dir = tmp_path / "cdr"
    async with running(make_profile("cdr.enabled=true", f"cdr.dir={cdr_dir}")) as node:
        lst = node.listener("udp")
        a = await UE(A, (lst.host, lst.port)).start()
        b = await UE(B, (lst.host, lst.port)).start()
        c_number = "+8613800000003"
        c = await UE(c_number, (lst.host, lst.port)).start()
        try:
            await b.register()
            assert (await a.message(B, "relayed")).status == 200
            mid = uuid.uuid4().hex
            assert (await a.message(c_number, "stored", mid=mid)).status == 202
            assert (await a.message(c_number, "stored", mid=mid)).status == 202  # duplicate
            await c.register()
            await wait_for(lambda: len(c.received) == 1)
            await asyncio.sleep(0.3)
        finally:
            a.close()
            b.close()
            c.close()
    files = sorted(cdr_dir.glob("*.pb"))
    records = [r for f in files for r in read_cdrs(f)]
    from fivegmc.obs import cdr_pb2

    outcomes = sorted((r.recipient, cdr_pb2.Outcome.Name(r.outcome), r.sip_final_status)
                      for r in records)
    assert outcomes == [(B, "OUTCOME_DELIVERED", 200),
                        (c_number, "OUTCOME_DELIVERED", 200),
                        (c_number, "OUTCOME_DUPLICATE", 202)]
    assert all(r.sender == A for r in records)
    out = subprocess.run([sys.executable, "-m", "fivegmc", "cdr", "dump", *map(str, files)],
                         capture_output=True, text=True, check=True).stdout
    assert len([json.loads(line) for line in out.splitlines()]) == 3


async def test_registrations_survive_a_restart_in_the_store(tmp_path: Path) -> None:
    """Bindings are saved to the store; a restarted node reaches the UE without a new
    REGISTER (SQLite file kept across the restart)."""
    prof = make_profile("store.kind=sqlite", f"store.path={tmp_path / 'store.db'}")
    async with running(prof) as node:
        lst = node.listener("udp")
        b = await UE(B, (lst.host, lst.port)).start()
        assert (await b.register()).status == 200
        await asyncio.sleep(0.2)  # the save is written after the 200
    async with running(prof) as node:  # a new process in all but name: empty memory
        assert node.sip.registrar.binding_count == 1
        lst = node.listener("udp")
        b.node = (lst.host, lst.port)  # the test UE answers to its node, a real one to the Via
        a = await UE(A, (lst.host, lst.port)).start()
        try:
            assert (await a.message(B, "after a restart")).status == 200
            assert len(b.received) == 1
        finally:
            a.close()
            b.close()


async def test_same_message_id_to_several_offline_recipients_is_delivered_to_each(
        ue_factory) -> None:
    """A chatbot platform fans out one message id in one MESSAGE per recipient: duplicate
    suppression is per recipient, so none of the copies is lost."""
    a = await ue_factory(A)
    mid = uuid.uuid4().hex
    c_number = "+8613800000003"
    assert (await a.message(B, "to each", mid=mid)).status == 202
    assert (await a.message(c_number, "to each", mid=mid)).status == 202
    assert (await a.message(B, "to each", mid=mid)).status == 202  # a retransmission to B
    b, c = await ue_factory(B), await ue_factory(c_number)
    await b.register()
    await c.register()
    await wait_for(lambda: len(b.received) >= 1 and len(c.received) >= 1)
    await asyncio.sleep(0.3)
    assert len(b.received) == 1 and len(c.received) == 1


async def test_stored_delivery_lost_on_udp_is_retransmitted_with_no_other_traffic(
        ue_factory) -> None:  # type: ignore[no-untyped-def]
    """A stored message's delivery is a MESSAGE the node originates: its Timer E (RFC 3261
    §17.1.2.2) must run even when nothing else arrives to wake the node's timer."""
    a = await ue_factory(A)
    assert (await a.message(B, "first datagram lost")).status == 202
    b = await ue_factory(B)
    dropped: list[bytes] = []
    deliver = b._on_data

    def lossy(data: bytes, source: tuple[str, int] | None = None) -> None:
        if data.startswith(b"MESSAGE") and not dropped:
            dropped.append(data)  # the network lost it: no answer
            return
        deliver(data, source)

    b._on_data = lossy  # type: ignore[method-assign]
    assert (await b.register()).status == 200
    await wait_for(lambda: dropped and len(b.received) >= 1, timeout=3.0)
    assert parse_cpim(b.received[0].body).content == b"first datagram lost"
