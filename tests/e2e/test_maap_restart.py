"""Restart-safe sends (issue 4 hardening): a mass send interrupted by stopping the node is taken
up by a new node on the same ``maap.data_dir``; every recipient reaches SENT and each UE gets
the message exactly once (a clean stop drains the MESSAGEs already out to the 5GMC)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from fivegmc.maap.model import Status

from .maap_net import BOT_TAGS, BotUE, MaapNet, maap_network
from .test_maap_ctcu import CT, send, send_body, token
from .ue import wait_for

N = 30
NUMBERS = [f"+86138000{7000 + i:05d}" for i in range(N)]


async def _register(net: MaapNet, *, answer_delay: float) -> list[BotUE]:
    lst = net.node.listener("tcp")
    ues = []
    for number in NUMBERS:
        ue = BotUE(number, (lst.host, lst.port), "tcp", answer_delay=answer_delay)
        await ue.start()
        net._ues.append(ue)
        resp = await ue.register(tags=BOT_TAGS)
        assert resp.status == 200
        ues.append(ue)
    return ues


def _copies(ues: list[BotUE], mid: str) -> dict[str, int]:
    """How many times each UE received the chatbot message ``mid``."""
    from fivegmc.cpim import parse_cpim

    got: dict[str, int] = {}
    for ue in ues:
        for req in ue.received:
            if req.method == "MESSAGE" and parse_cpim(req.body).message_id == mid:
                got[ue.number] = got.get(ue.number, 0) + 1
    return got


def _statuses(net: MaapNet, mid: str) -> dict[str, Status]:
    maap = net.node.maap
    assert maap is not None
    record = maap.core.record(CT, mid)
    assert record is not None
    return {r.number: r.status for r in record.recipients}


async def _interrupted(settings: tuple[str, ...], mass: bool
                       ) -> tuple[dict[str, int], list[str], list[BotUE]]:
    """Run 1: slow UEs, a small worker pool; stop once a few recipients are SENT. Returns the
    copies the UEs got, the message ids, and the UEs."""
    text = [{"contentType": "text/plain", "contentEncoding": "utf8", "contentText": "campaign"}]
    async with maap_network(*settings) as net:
        ues = await _register(net, answer_delay=0.05)
        tok = await token(net)
        if mass:
            mids = [await send(net, tok, send_body(NUMBERS, text))]
        else:
            mids = [await send(net, tok, send_body([n], text)) for n in NUMBERS]

        def sent() -> int:
            return sum(s is Status.SENT for m in mids for s in _statuses(net, m).values())
        await wait_for(lambda: sent() >= 6)
    got: dict[str, int] = {}
    for mid in mids:
        for number, n in _copies(ues, mid).items():
            got[number] = got.get(number, 0) + n
    assert 0 < len(got) < N, f"not stopped mid-fan-out: {len(got)} of {N} reached"
    assert all(n == 1 for n in got.values()), got
    return got, mids, ues


async def test_interrupted_sends_resume_once_per_ue() -> None:
    """Many sends (one recipient each, CT/CU phase 1) cut off by a stop: a new node on the
    same data_dir sends the rest, every recipient reaches SENT, each UE gets its one copy."""
    with tempfile.TemporaryDirectory(prefix="maap-restart-") as data_dir:
        settings = (f'maap.data_dir="{data_dir}"', "maap.fanout_concurrency=3")
        before, mids, _ = await _interrupted(settings, mass=False)
        assert Path(data_dir, "messages.db").exists()
        async with maap_network(*settings) as net:
            started = time.monotonic()
            second = await _register(net, answer_delay=0.0)

            def copies() -> dict[str, int]:
                got: dict[str, int] = {}
                for mid in mids:
                    for number, n in _copies(second, mid).items():
                        got[number] = got.get(number, 0) + n
                return got
            await wait_for(lambda: all(s is Status.SENT for m in mids
                                       for s in _statuses(net, m).values()), timeout=10.0)
            # resumed before the UEs registered: stored by the 5GMC, delivered on REGISTER
            await wait_for(lambda: set(before) | set(copies()) == set(NUMBERS), timeout=10.0)
            assert time.monotonic() - started < 10.0
            await asyncio.sleep(0.3)  # nothing more arrives late
            after = copies()
        total = {n: before.get(n, 0) + after.get(n, 0) for n in NUMBERS}
        assert total == dict.fromkeys(NUMBERS, 1), total


async def test_interrupted_mass_send_resumes() -> None:
    """One mass send cut off by a stop: after the restart every recipient reaches SENT and
    the recipients run 1 reached (or had handed to the 5GMC) are not sent again. (Receipt by
    the rest is not checked here: the 5GMC's store keys duplicates by (sender,
    imdn.Message-ID) without the recipient, so copies of one mass send stored for several
    offline users collapse into one — a 5GMC issue reported to the lead.)"""
    with tempfile.TemporaryDirectory(prefix="maap-restart-") as data_dir:
        settings = (f'maap.data_dir="{data_dir}"', "maap.fanout_concurrency=3")
        before, (mid,), _ = await _interrupted(settings, mass=True)
        async with maap_network(*settings) as net:
            second = await _register(net, answer_delay=0.0)
            await wait_for(lambda: all(s is Status.SENT
                                       for s in _statuses(net, mid).values()), timeout=10.0)
            await asyncio.sleep(0.3)
            assert not set(before) & set(_copies(second, mid))
