"""The durable webhook queue against a real aiohttp CSP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from fivegmc.http import HttpClient, Response
from fivegmc.maap.model import Notification
from fivegmc.maap.webhooks import WebhookQueue

FAST = {"retry_initial_s": 0.02, "retry_max_s": 0.1, "timeout_s": 1.0}


@dataclass
class Csp:
    """A test CSP: records every POST; answers from a script (default 200)."""

    url: str = ""
    got: list[tuple[str, dict[str, object], dict[str, str]]] = field(default_factory=list)
    fails: dict[str, int] = field(default_factory=dict)  # path -> 500s still to answer
    seen: int = 0
    delay_s: float = 0.0

    def bodies(self, path: str | None = None) -> list[dict[str, object]]:
        return [b for p, b, _ in self.got if path is None or p == path]

    async def wait(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.got) < count:
                await asyncio.sleep(0.01)


def _app(csp: Csp) -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        csp.seen += 1
        if csp.delay_s:
            await asyncio.sleep(csp.delay_s)
        if csp.fails.get(request.path, 0) > 0:
            csp.fails[request.path] -= 1
            return web.json_response({"error": "try later"}, status=500)
        csp.got.append((request.path, await request.json(), dict(request.headers)))
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    return app


@contextlib.asynccontextmanager
async def csp_server(port: int = 0) -> AsyncIterator[Csp]:
    csp = Csp()
    runner = web.AppRunner(_app(csp))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    sock = site._server.sockets[0]  # type: ignore[union-attr]
    csp.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield csp
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def running(q: WebhookQueue) -> AsyncIterator[WebhookQueue]:
    await q.open()
    task = asyncio.create_task(q.run())
    try:
        yield q
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await q.close()


def note(url: str, key: str, n: int, **extra: str) -> Notification:
    return Notification(url=url, body=json.dumps({"key": key, "n": n, **extra}).encode(),
                        content_type="application/json", ordering_key=key,
                        headers=(("X-Test", f"{key}-{n}"),))


def queue(db: Path | None, **kw: float | int) -> WebhookQueue:
    opts: dict[str, float | int] = {**FAST, **kw}
    return WebhookQueue(db, HttpClient, **opts)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("durable", [True, False])
async def test_500_three_times_then_200_each_once_in_order(tmp_path: Path, durable: bool) -> None:
    async with csp_server() as csp, running(queue(tmp_path / "q.db" if durable else None)) as q:
        csp.fails["/hook"] = 3
        ids = [await q.enqueue("bot", note(f"{csp.url}/hook", "+8613800000001", i))
               for i in range(5)]
        assert ids == sorted(ids)
        await csp.wait(5)
        await until(lambda: q.pending() == 0)
        assert [b["n"] for b in csp.bodies()] == [0, 1, 2, 3, 4]
        assert csp.seen == 8  # 3 failures of the head, then each event once
        assert csp.got[0][2]["X-Test"] == "+8613800000001-0"
        assert csp.got[0][2]["Content-Type"] == "application/json"
        events = await q.events("bot")
        assert [e["state"] for e in events] == ["delivered"] * 5
        assert events[0]["attempts"] == 4 and events[0]["last_status"] == 200
        assert [e["attempts"] for e in events[1:]] == [1, 1, 1, 1]
        assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
        assert json.loads(str(events[2]["body"]))["n"] == 2


async def test_failing_key_holds_back_only_its_own_lane(tmp_path: Path) -> None:
    async with csp_server() as csp, running(queue(tmp_path / "q.db", retry_initial_s=0.2,
                                                  retry_max_s=0.2)) as q:
        csp.fails["/a"] = 2
        for i in range(4):
            await q.enqueue("bot", note(f"{csp.url}/a", "A", i))
            await q.enqueue("bot", note(f"{csp.url}/b", "B", i))
        # B flows while A's head is retrying
        await until(lambda: len(csp.bodies("/b")) == 4, timeout=0.3)
        assert csp.bodies("/a") == []
        pending = await q.events("bot", state="retrying")
        assert len(pending) == 1 and pending[0]["ordering_key"] == "A"
        assert pending[0]["last_status"] == 500 and "HTTP 500" in str(pending[0]["last_error"])
        assert pending[0]["next_attempt_at"] is not None
        queued = await q.events("bot", state="queued")
        assert [json.loads(str(e["body"]))["n"] for e in queued] == [1, 2, 3]
        await until(lambda: len(csp.bodies("/a")) == 4)
        assert [b["n"] for b in csp.bodies("/a")] == [0, 1, 2, 3]


async def test_csp_down_then_up(tmp_path: Path) -> None:
    port = free_port()
    async with running(queue(tmp_path / "q.db")) as q:
        for i in range(3):
            await q.enqueue("bot", note(f"http://127.0.0.1:{port}/hook", "U", i))
        await until(lambda: q.failures >= 2)
        ev = (await q.events("bot"))[0]
        assert ev["state"] == "retrying" and ev["last_status"] is None
        assert "Connect" in str(ev["last_error"])
        async with csp_server(port) as csp:
            await csp.wait(3)
            assert [b["n"] for b in csp.bodies()] == [0, 1, 2]


async def test_timeout_is_retried(tmp_path: Path) -> None:
    async with csp_server() as csp, running(queue(None, timeout_s=0.1)) as q:
        csp.delay_s = 0.3
        await q.enqueue("bot", note(f"{csp.url}/hook", "U", 0))
        await until(lambda: q.failures >= 1)
        assert "timeout" in str((await q.events("bot"))[0]["last_error"])
        csp.delay_s = 0.0
        await csp.wait(1)


async def test_restart_resends_undelivered_in_order(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    port = free_port()
    async with running(queue(db)) as q:
        for i in range(4):
            await q.enqueue("bot", note(f"http://127.0.0.1:{port}/hook", "K", i))
        await q.enqueue("bot", note(f"http://127.0.0.1:{port}/hook", "L", 0))
        await until(lambda: q.failures >= 2)
    # a new queue on the same file, the CSP now up
    async with csp_server(port) as csp, running(queue(db)) as q2:
        assert q2.pending() == 5
        await csp.wait(5)
        await until(lambda: q2.pending() == 0)
        assert [b["n"] for b in csp.bodies() if b["key"] == "K"] == [0, 1, 2, 3]
        # seq goes on from where the file left it
        nid = await q2.enqueue("bot", note(f"{csp.url}/hook", "K", 4))
        await csp.wait(6)
        events = await q2.events("bot")
        assert events[-1]["id"] == nid and events[-1]["seq"] == 6
        assert [e["state"] for e in events] == ["delivered"] * 6
    # and delivered events are not sent again after another restart
    async with csp_server(port) as csp, running(queue(db)) as q3:
        assert q3.pending() == 0
        await asyncio.sleep(0.1)
        assert csp.got == []


async def test_enqueue_is_durable_before_it_returns(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    q = queue(db)
    await q.open()  # no run(): nothing is delivered
    ids = await asyncio.gather(*(q.enqueue("bot", note("http://127.0.0.1:9/x", f"k{i % 7}", i))
                                 for i in range(500)))
    assert sorted(ids) == list(range(1, 501))
    with sqlite3.connect(db) as conn:  # another reader sees them all, committed
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 500
    assert q.commits < 100  # group commit: many events per transaction
    await q.close()


async def test_many_keys_bounded_concurrency(tmp_path: Path) -> None:
    async with csp_server() as csp, running(queue(tmp_path / "q.db", concurrency=4)) as q:
        csp.delay_s = 0.005
        await asyncio.gather(*(q.enqueue("bot", note(f"{csp.url}/h", f"u{i % 20}", i))
                               for i in range(200)))
        await csp.wait(200, timeout=10)
        for k in range(20):
            ns = [b["n"] for b in csp.bodies() if b["key"] == f"u{k}"]
            assert ns == sorted(ns) and len(ns) == 10
        assert csp.seen == 200


async def test_bots_are_separate_and_delivered_are_pruned(tmp_path: Path) -> None:
    async with csp_server() as csp, running(queue(tmp_path / "q.db", keep_delivered=50)) as q:
        for i in range(300):
            await q.enqueue("one", note(f"{csp.url}/h", "k", i))
        await q.enqueue("two", note(f"{csp.url}/h", "k", 0))
        await csp.wait(301)
        await until(lambda: q.pending() == 0)
        assert len(await q.events("two")) == 1
        assert len(await q.events("one", limit=1000)) <= 300
    with sqlite3.connect(tmp_path / "q.db") as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] < 301


async def test_bad_url_is_kept_and_retried_not_lost() -> None:
    async with running(queue(None)) as q:
        await q.enqueue("bot", note("not a url", "k", 0))
        await until(lambda: q.failures >= 2)
        [ev] = await q.events("bot")
        assert ev["state"] == "retrying" and ev["attempts"] >= 2


def test_backoff_doubles_and_is_capped() -> None:
    q = WebhookQueue(None, HttpClient, retry_initial_s=1.0, retry_max_s=10.0)
    delays = [q._backoff(n) for n in range(1, 8)]
    for n, d in enumerate(delays[:4], start=1):
        assert 0.9 * 2 ** (n - 1) <= d <= 1.1 * 2 ** (n - 1)
    assert all(d <= 10.0 for d in delays) and delays[-1] >= 9.0
    with pytest.raises(ValueError):
        WebhookQueue(None, HttpClient, retry_initial_s=2.0, retry_max_s=1.0)


async def test_enqueue_after_close_is_refused(tmp_path: Path) -> None:
    q = queue(tmp_path / "q.db")
    with pytest.raises(RuntimeError):
        await q.enqueue("bot", note("http://127.0.0.1:9/", "k", 0))
    await q.open()
    await q.close()
    with pytest.raises(RuntimeError):
        await q.enqueue("bot", note("http://127.0.0.1:9/", "k", 0))


class _FakeSession:
    """Answers from a per-event script: how many failures before a 200 (no sockets, so
    hypothesis can run many schedules)."""

    def __init__(self, fails: dict[int, int], got: list[tuple[str, int]]) -> None:
        self.fails, self.got = fails, got

    async def post(self, url: str, body: bytes, headers: object = (),
                   timeout_s: float = 5.0) -> Response:
        doc = json.loads(body)
        n = doc["n"]
        if self.fails.get(n, 0) > 0:
            self.fails[n] -= 1
            return Response(503, "Service Unavailable", (), b"no", True)
        self.got.append((doc["key"], n))
        return Response(204, "No Content", (), b"", True)

    async def close(self) -> None:
        return None


@settings(max_examples=40)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 3)), min_size=1,
                max_size=25),
       st.integers(1, 4))
def test_any_failure_schedule_delivers_each_once_in_order_per_key(
        events: list[tuple[str, int]], concurrency: int) -> None:
    async def scenario() -> list[tuple[str, int]]:
        got: list[tuple[str, int]] = []
        fails = {n: f for n, (_, f) in enumerate(events)}
        q = WebhookQueue(None, lambda: _FakeSession(fails, got),
                         retry_initial_s=0.001, retry_max_s=0.004, concurrency=concurrency)
        async with running(q):
            for n, (key, _) in enumerate(events):
                await q.enqueue("bot", note("http://csp/", key, n))
            await until(lambda: q.pending() == 0)
        return got

    got = asyncio.run(scenario())
    assert sorted(n for _, n in got) == list(range(len(events)))  # each exactly once
    for key in "abcd":
        assert [n for k, n in got if k == key] == [n for n, (k, _) in enumerate(events)
                                                  if k == key]
