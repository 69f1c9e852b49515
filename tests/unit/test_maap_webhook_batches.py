"""Batched webhook POSTs (CT/CU ``deliveryInfoList[]``): merged per URL, each user's order kept,
nothing lost or doubled when the CSP fails — against a real aiohttp CSP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fivegmc.maap.model import Notification
from fivegmc.maap.webhooks import merge_bodies

from .test_maap_webhooks import csp_server, queue, running, until


def status(url: str, user: str, n: int, batch_max: int = 20) -> Notification:
    body = json.dumps({"deliveryInfoList": [{"user": user, "n": n}]}).encode()
    return Notification(url=url, body=body, content_type="application/json",
                        ordering_key=user, headers=(("X-Test", f"{user}-{n}"),),
                        batch="deliveryInfoList", batch_max=batch_max)


def inbound(url: str, user: str, n: int) -> Notification:
    return Notification(url=url, body=json.dumps({"user": user, "n": n}).encode(),
                        content_type="application/json", ordering_key=user)


def entries(got: list[tuple[str, dict[str, object], dict[str, str]]]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for _, body, _ in got:
        items = body.get("deliveryInfoList", [body])
        assert isinstance(items, list)
        out += [(str(i["user"]), int(i["n"])) for i in items]
    return out


def test_merge_keeps_order_and_other_members() -> None:
    bodies = [json.dumps({"deliveryInfoList": [{"n": i}], "v": 1}).encode() for i in range(3)]
    assert json.loads(merge_bodies(bodies, "deliveryInfoList")) == {
        "deliveryInfoList": [{"n": 0}, {"n": 1}, {"n": 2}], "v": 1}


@pytest.mark.parametrize("durable", [True, False])
async def test_ready_statuses_share_posts_up_to_batch_max(tmp_path: Path, durable: bool) -> None:
    q = queue(tmp_path / "q.db" if durable else None, concurrency=2)
    async with csp_server() as csp:
        url = f"{csp.url}/deliveryNotification/bot/status"
        await q.open()
        # queued before delivery starts: all 50 lanes are ready at once
        for i in range(50):
            await q.enqueue("bot", status(url, f"u{i}", 0, batch_max=20))
        task = asyncio.create_task(q.run())
        try:
            await until(lambda: q.pending() == 0)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await q.close()
    got = entries(csp.got)
    assert sorted(got) == sorted((f"u{i}", 0) for i in range(50))
    assert len(csp.got) <= 5 and max(len(b["deliveryInfoList"]) for _, b, _ in csp.got) == 20
    assert q.delivered == 50


async def test_failed_batch_is_retried_whole_and_each_user_stays_in_order(tmp_path: Path) -> None:
    async with csp_server() as csp, running(queue(tmp_path / "q.db", concurrency=4)) as q:
        url = f"{csp.url}/deliveryNotification/bot/status"
        csp.fails["/deliveryNotification/bot/status"] = 3
        for n in range(6):
            for user in ("a", "b", "c"):
                await q.enqueue("bot", status(url, user, n, batch_max=4))
        await until(lambda: q.pending() == 0)
        got = entries(csp.got)
        assert sorted(got) == sorted((u, n) for n in range(6) for u in "abc")  # each once
        for user in "abc":
            assert [n for u, n in got if u == user] == list(range(6))
        events = await q.events("bot", limit=100)
        assert {e["state"] for e in events} == {"delivered"}
        assert max(e["attempts"] for e in events) >= 2


async def test_a_lane_mixing_statuses_and_messages_keeps_its_order(tmp_path: Path) -> None:
    async with csp_server() as csp, running(queue(tmp_path / "q.db")) as q:
        st_url = f"{csp.url}/deliveryNotification/bot/status"
        msg_url = f"{csp.url}/messageNotification/bot/messages"
        plan = [("s", 0), ("s", 1), ("m", 2), ("s", 3), ("m", 4), ("s", 5)]
        for user in ("a", "b"):
            for kind, n in plan:
                await q.enqueue("bot", status(st_url, user, n) if kind == "s"
                                else inbound(msg_url, user, n))
        await until(lambda: q.pending() == 0)
        got = entries(csp.got)
        for user in "ab":
            assert [n for u, n in got if u == user] == [n for _, n in plan]
        for path, body, _ in csp.got:  # messages never merged into status lists
            assert ("deliveryInfoList" in body) == path.endswith("/status")


@settings(max_examples=25)
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.booleans()), min_size=1, max_size=30),
       st.integers(0, 3), st.integers(1, 6), st.integers(1, 3))
def test_any_mix_and_failures_deliver_each_once_in_order(
        plan: list[tuple[str, bool]], fails: int, batch_max: int, concurrency: int) -> None:
    async def scenario() -> list[tuple[str, int]]:
        async with csp_server() as csp, running(queue(None, concurrency=concurrency,
                                                      retry_initial_s=0.002,
                                                      retry_max_s=0.01)) as q:
            csp.fails["/s"] = fails
            for n, (user, batchable) in enumerate(plan):
                await q.enqueue("bot", status(f"{csp.url}/s", user, n, batch_max)
                                if batchable else inbound(f"{csp.url}/m", user, n))
            await until(lambda: q.pending() == 0)
            return entries(csp.got)

    got = asyncio.run(scenario())
    assert sorted(n for _, n in got) == list(range(len(plan)))
    for user in "abcde":
        assert [n for u, n in got if u == user] == [n for n, (u, _) in enumerate(plan)
                                                    if u == user]
