"""Throughput of the MaaP's durable webhook queue: events enqueued (committed to SQLite) and
POSTed to a real aiohttp CSP server on 127.0.0.1, one lane per simulated user.

Prints the offered rate (enqueue attempts per second), the achieved rates (durable enqueues and
CSP receipts per second), errors, and the latency from enqueue to the CSP's receipt.

    .venv/bin/python bench/maap_webhooks_bench.py                      # 20k events, 2k users
    .venv/bin/python bench/maap_webhooks_bench.py --events 100000 --users 100000 --rate 20000
    .venv/bin/python bench/maap_webhooks_bench.py --memory             # no SQLite
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import tempfile
import time
from pathlib import Path

from aiohttp import web

from fivegmc.http import HttpClient
from fivegmc.maap.model import Notification
from fivegmc.maap.webhooks import WebhookQueue


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


async def main(args: argparse.Namespace) -> None:
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    received = 0
    done = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        nonlocal received
        body = json.loads(await request.read())
        latencies.append(time.perf_counter() - sent_at[body["n"]])
        received += 1
        if received >= args.events:
            done.set()
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/hook"

    with tempfile.TemporaryDirectory() as tmp:
        db = None if args.memory else Path(tmp) / "webhooks.db"

        def session() -> HttpClient:
            return HttpClient(max_connections_per_origin=args.concurrency)

        q = WebhookQueue(db, session, concurrency=args.concurrency)
        await q.open()
        runner_task = asyncio.create_task(q.run())
        errors = 0
        enqueued = 0

        async def one(n: int) -> None:
            nonlocal errors, enqueued
            sent_at[n] = time.perf_counter()
            note = Notification(url=url, body=json.dumps({"n": n, "event": "messageStatus",
                                                          "pad": "x" * 200}).encode(),
                                content_type="application/json",
                                ordering_key=f"+86138{n % args.users:08d}")
            try:
                await q.enqueue("bench", note)
                enqueued += 1
            except Exception:
                errors += 1

        start = time.perf_counter()
        tasks: set[asyncio.Task[None]] = set()
        interval = 1.0 / args.rate
        for n in range(args.events):
            due = start + n * interval
            delay = due - time.perf_counter()
            if delay > 0.001:
                await asyncio.sleep(delay)
            t = asyncio.create_task(one(n))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        offered_s = time.perf_counter() - start
        await asyncio.gather(*tasks)
        enqueue_s = time.perf_counter() - start
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), args.timeout)
        total_s = time.perf_counter() - start
        runner_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner_task
        await q.close()
    await runner.cleanup()

    print(f"machine: {platform.machine()} {platform.processor() or ''} python "
          f"{platform.python_version()}; store: {'memory' if args.memory else 'sqlite'}")
    print(f"events {args.events}, users {args.users}, concurrency {args.concurrency}")
    print(f"offered   {args.events / offered_s:10.0f} events/s")
    print(f"enqueued  {enqueued / enqueue_s:10.0f} events/s durable ({q.commits} commits)")
    print(f"delivered {received / total_s:10.0f} events/s ({received}/{args.events})")
    print(f"errors    {errors} enqueue, {q.failures} failed POSTs")
    print("enqueue→CSP latency ms: p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  max {:.1f}".format(
        *(pct(latencies, p) * 1000 for p in (50, 90, 99, 100))))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=10000.0, help="offered enqueues per second")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--memory", action="store_true", help="no SQLite (db_path=None)")
    asyncio.run(main(ap.parse_args()))
