"""Our ESME against the SMSC stub on real sockets: submits with receipts, MO reassembly, held
messages across an SMSC outage and restart (none lost, none twice), the full node's admin
API (MO injection, inbox), metrics and the ``fivegmc smsc`` CLI."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from fivegmc.cli import main as cli_main
from fivegmc.config import SmppAccount, SmscConfig
from fivegmc.node import running
from fivegmc.obs.logging import make_logger
from fivegmc.smpp.constants import MessageState
from fivegmc.smpp.receipt import DeliveryReceipt
from fivegmc.smsc.esme import Esme, MoMessage
from fivegmc.smsc.metrics import SmscMetrics
from fivegmc.smsc.server import SmscNode

from .conftest import make_profile

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

A, B = "+8613800000001", "+8613900000001"
ACCOUNT = SmppAccount(system_id="fivegmc", password="lab-smpp", window=10)


class Running:
    def __init__(self, port: int = 0, **kw: Any) -> None:
        cfg: dict[str, Any] = {"port": port, "accounts": (ACCOUNT,),
                               "receipt_delay_max_s": 0.02}
        cfg.update(kw)
        self.node = SmscNode(SmscConfig(**cfg), SmscMetrics(CollectorRegistry()),
                             make_logger("ERROR", "console"))
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SmscNode:
        await self.node.start()
        self.task = asyncio.get_running_loop().create_task(self.node.run())
        return self.node

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.node.close()


def esme(port: int, **kw: Any) -> Esme:
    args: dict[str, Any] = {"reconnect_initial_s": 0.05, "reconnect_max_s": 0.2,
                            "enquire_link_s": 0.2, "response_timeout_s": 2.0}
    args.update(kw)
    return Esme("127.0.0.1", port, "fivegmc", args.pop("password", "lab-smpp"), **args)


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_submit_receipts_and_mo() -> None:
    receipts: list[DeliveryReceipt] = []
    mos: list[MoMessage] = []
    async with Running() as smsc:
        assert smsc.address is not None
        async with esme(smsc.address[1], on_receipt=receipts.append, on_mo=mos.append) as e:
            ids = await e.submit(A, B, "你好" * 50)  # 100 UCS-2 chars: 2 segments
            assert len(ids) == 2
            single = await e.submit(A, B, "plain text", registered_delivery=True)
            none = await e.submit(A, B, "no receipt please", registered_delivery=False)
            await wait_for(lambda: len(receipts) == 3)
            assert {r.message_id for r in receipts} == {*ids, *single}
            assert all(r.state is MessageState.DELIVERED for r in receipts)
            assert all((r.source_addr, r.destination_addr) == (B, A) for r in receipts)
            assert none[0] not in {r.message_id for r in receipts}
            smsc.inject_mo(B, "1065900000001", "回复" * 60)  # 120 chars: 2 segments
            await wait_for(lambda: len(mos) == 1)
            assert mos[0].text == "回复" * 60 and mos[0].parts == 2
            assert mos[0].source_addr == B
            await asyncio.sleep(0.5)  # a few enquire_link round trips keep the bind up
            assert e.binds == 1 and e.bound.is_set()
        inbox = smsc.core.inbox_json(to=B)
        assert [m["text"] for m in inbox] == ["no receipt please", "plain text", "你好" * 50]


async def test_held_while_smsc_down_then_all_sent_once() -> None:
    probe = Running()
    async with probe as smsc:
        assert smsc.address is not None
        port = smsc.address[1]
    e = esme(port, max_held=100)
    e.start()
    try:
        texts = [f"held message {i} " + ("x" * (200 if i % 5 == 0 else 0)) for i in range(30)]
        futures = [e.submit_nowait(A, B, t) for t in texts]
        await asyncio.sleep(0.3)  # the SMSC is down: nothing can be sent
        assert e.held == 30 and not e.bound.is_set()
        async with Running(port) as smsc:
            results = await asyncio.wait_for(asyncio.gather(*futures), 10)
            assert e.held == 0
            assert all(len(ids) == (2 if i % 5 == 0 else 1) for i, ids in enumerate(results))
            inbox = smsc.core.inbox_json()
            assert sorted(m["text"] for m in inbox) == sorted(texts)  # none lost, none twice
            # sent in order
            assert [m["text"] for m in reversed(inbox)] == texts
    finally:
        await e.close()


async def test_smsc_restart_while_esme_holds_messages() -> None:
    receipts: list[DeliveryReceipt] = []
    async with Running() as first:
        assert first.address is not None
        port = first.address[1]
        e = esme(port, on_receipt=receipts.append)
        e.start()
        before = [await e.submit(A, B, f"before {i}") for i in range(5)]
    try:
        # SMSC gone: these are held in memory
        pending = [e.submit_nowait(A, B, f"after {i}") for i in range(20)]
        await asyncio.sleep(0.3)
        assert e.held == 20
        async with Running(port) as second:
            after = await asyncio.wait_for(asyncio.gather(*pending), 10)
            after_ids = {i for ids in after for i in ids}
            # the first SMSC's pending receipts died with it (the stub keeps no state)
            await wait_for(lambda: after_ids <= {r.message_id for r in receipts})
            texts = [m["text"] for m in reversed(second.core.inbox_json())]
            assert texts == [f"after {i}" for i in range(20)]
            assert e.binds == 2
        all_ids = [i for ids in before + after for i in ids]
        assert len(set(all_ids)) == 25
    finally:
        await e.close()


async def test_wrong_password_keeps_messages_held() -> None:
    async with Running() as smsc:
        assert smsc.address is not None
        e = esme(smsc.address[1], password="wrong")
        e.start()
        try:
            fut = e.submit_nowait(A, B, "waits")
            await asyncio.sleep(0.4)
            assert not fut.done() and e.held == 1
            assert "ESME_RINVPASWD" in e.last_error
            assert smsc.metrics.binds.get("transceiver", "ESME_RINVPASWD") >= 1
        finally:
            await e.close()
        assert fut.done() and fut.exception() is not None


async def test_node_admin_mo_inbox_metrics_and_cli() -> None:
    # only the test's own ESME is bound (no 5GMC or MaaP fallback binds)
    profile = make_profile("smsc.port=0", "messaging.sms_fallback=false", "maap.enabled=false")
    mos: list[MoMessage] = []
    async with running(profile) as node:
        assert node.smsc is not None and node.smsc.address is not None
        assert node.admin.address is not None
        admin = f"http://127.0.0.1:{node.admin.address[1]}"
        async with esme(node.smsc.address[1], on_mo=mos.append) as e, \
                aiohttp.ClientSession() as http:
            await e.bound.wait()
            async with http.post(f"{admin}/admin/v1/smsc/mo",
                                 json={"from": B, "to": "1065900000001", "text": "hi €"}) as r:
                assert r.status == 202 and (await r.json())["segments"] == 1
            await wait_for(lambda: len(mos) == 1)
            assert mos[0].text == "hi €"
            async with http.post(f"{admin}/admin/v1/smsc/mo", data=b"{not json") as r:
                assert r.status == 400 and "error" in await r.json()
            async with http.post(f"{admin}/admin/v1/smsc/mo",
                                 json={"from": B, "to": "x", "text": "t", "bogus": 1}) as r:
                assert r.status == 400
            ids = await e.submit("1065900000001", B, "验证码 123456")
            async with http.get(f"{admin}/admin/v1/smsc/messages", params={"to": B}) as r:
                body = await r.json()
            assert body["count"] == 1
            msg = body["messages"][0]
            assert msg["text"] == "验证码 123456" and msg["encoding"] == "ucs2"
            assert msg["message_ids"] == ids and msg["from"] == "1065900000001"
            async with http.get(f"{admin}/metrics") as r:
                metrics = await r.text()
            assert 'fivegmc_smsc_submits_total{status="ESME_ROK"} 1.0' in metrics
            assert "fivegmc_smsc_active_binds 1.0" in metrics

            def cli() -> Any:
                return CliRunner().invoke(cli_main, ["smsc", "mo", "--from", B, "--to", "10659",
                                                     "--admin", admin, "from the CLI"])

            result = await asyncio.to_thread(cli)
            assert result.exit_code == 0, result.output
            await wait_for(lambda: len(mos) == 2)
            assert mos[1].text == "from the CLI"
