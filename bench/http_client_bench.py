"""Webhook-style POST load through two HTTP clients, side by side in the same run:
(a) aiohttp.ClientSession and (b) fivegmc.http.HttpClient.

The server is an aiohttp app on 127.0.0.1 answering 200 ``{}``, in a child process so the
client's CPU (``time.process_time`` of this process) is the client's alone. Each client sends
``--requests`` POSTs of a ≈1 KB JSON body with ``--concurrency`` in flight (closed loop: the
offered rate is whatever the in-flight window allows), after a short warm-up.

Prints per client: achieved requests/s, errors, latency p50/p90/p99 and client CPU µs/request.

    .venv/bin/python bench/http_client_bench.py                        # 20k POSTs, 64 in flight
    .venv/bin/python bench/http_client_bench.py --requests 50000 --concurrency 16 --rounds 2
    .venv/bin/python bench/http_client_bench.py --loop asyncio         # not uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

import aiohttp
from aiohttp import web

from fivegmc.http import HttpClient
from fivegmc.net.loop import loop_factory

Post = Callable[[], Awaitable[int]]


def serve(conn: Connection, use_uvloop: bool) -> None:
    """Child process: the webhook receiver, until the parent closes the pipe."""

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"{}", content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        conn.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv_bytes)  # EOFError when the parent goes
        await runner.cleanup()

    factory = loop_factory()[0] if use_uvloop else None
    with asyncio.Runner(loop_factory=factory) as r, contextlib.suppress(EOFError):
        r.run(main())


@dataclass
class Result:
    name: str
    n: int
    errors: int
    wall_s: float
    cpu_s: float
    latencies: list[float]

    def line(self) -> str:
        lat = sorted(self.latencies) or [float("nan")]

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000

        return (f"{self.name:<22} {self.n / self.wall_s:9.0f} req/s  errors {self.errors:<5} "
                f"p50 {pct(50):6.2f} ms  p90 {pct(90):6.2f} ms  p99 {pct(99):6.2f} ms  "
                f"client CPU {self.cpu_s / self.n * 1e6:6.1f} µs/req")


async def drive(name: str, post: Post, n: int, concurrency: int) -> Result:
    latencies: list[float] = []
    errors = 0
    left = n

    async def worker() -> None:
        nonlocal left, errors
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            try:
                status = await post()
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors += 1

    cpu0, t0 = time.process_time(), time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(concurrency):
            tg.create_task(worker())
    return Result(name, n, errors, time.perf_counter() - t0, time.process_time() - cpu0,
                  latencies)


def _aiohttp_post(session: aiohttp.ClientSession, url: str, body: bytes,
                  headers: dict[str, str]) -> Post:
    timeout = aiohttp.ClientTimeout(total=5)

    async def post() -> int:
        async with session.post(url, data=body, headers=headers, timeout=timeout,
                                allow_redirects=False) as resp:
            await resp.read()
            return resp.status

    return post


def _fivegmc_post(client: HttpClient, url: str, body: bytes,
                  headers: list[tuple[str, str]]) -> Post:
    async def post() -> int:
        return (await client.post(url, body, headers, timeout_s=5.0)).status

    return post


async def run(args: argparse.Namespace, port: int) -> None:
    url = f"http://127.0.0.1:{port}/hook"
    body = json.dumps({"event": "message", "messageId": "0" * 36, "senderAddress":
                       "tel:+8613800000001", "text": "x" * 900}).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench-token"}
    header_list = list(headers.items())
    warm = min(1000, args.requests)

    results: list[Result] = []
    for _ in range(args.rounds):
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit_per_host=args.concurrency))
        try:
            post = _aiohttp_post(session, url, body, headers)
            await drive("warm-up", post, warm, args.concurrency)
            results.append(await drive("aiohttp.ClientSession", post, args.requests,
                                       args.concurrency))
        finally:
            await session.close()
        client = HttpClient(max_connections_per_origin=args.concurrency)
        try:
            post = _fivegmc_post(client, url, body, header_list)
            await drive("warm-up", post, warm, args.concurrency)
            results.append(await drive("fivegmc HttpClient", post, args.requests,
                                       args.concurrency))
        finally:
            await client.close()
    for r in results:
        print(r.line())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=1, help="alternate the two clients N times")
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                    help="event loop of both client and server (uvloop when importable)")
    args = ap.parse_args()
    use_uvloop = args.loop == "uvloop" and loop_factory()[0] is not None

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(child, use_uvloop), daemon=True)
    server.start()
    try:
        if not parent.poll(30):
            raise SystemExit("the server process did not start")
        port = parent.recv()
        print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, python "
              f"{platform.python_version()}, aiohttp {aiohttp.__version__}, loop "
              f"{'uvloop' if use_uvloop else 'asyncio'}; server: aiohttp in a child process")
        print(f"{args.requests} POSTs of {1000}≈B JSON per client, {args.concurrency} in flight "
              "(closed loop), keep-alive")
        factory = loop_factory()[0] if use_uvloop else None
        with asyncio.Runner(loop_factory=factory) as r:
            r.run(run(args, port))
    finally:
        parent.close()
        server.join(10)
        if server.is_alive():
            server.terminate()
            server.join()


if __name__ == "__main__":
    main()
