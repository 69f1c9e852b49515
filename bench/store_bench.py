"""Store-and-forward storage throughput: messages stored per second, then delivered per second.

For each backend (SQLite file with group commit; a real redis-server started on loopback):
put N pager messages for R recipients with ``concurrency`` puts in flight (each put returns only
once durable for that backend), then, recipient by recipient as if each UE registered, read its
pending messages and mark each delivered. Bounded: N messages, then it stops.

    .venv/bin/python bench/store_bench.py                    # 50,000 messages, 1,000 recipients
    .venv/bin/python bench/store_bench.py --messages 200000 --backends sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from fivegmc.store.factory import open_store
from fivegmc.store.protocol import Store, StoredMessage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.store.redis_server import redis_available, redis_server

BODY = (b"From: <sip:+8613800000000@ims.mnc000.mcc460.3gppnetwork.org>\r\n"
        b"To: <sip:+8613800000001@ims.mnc000.mcc460.3gppnetwork.org>\r\n"
        b"NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: x\r\n\r\n"
        b"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 12\r\n\r\nHello world!")


def message(i: int, recipients: int, now: float) -> StoredMessage:
    return StoredMessage(
        id=f"m{i}", recipient=f"+86138{i % recipients:08d}", sender="+8613900000000",
        imdn_message_id=f"imdn-{i}", received_at=now, expires_at=now + 7 * 86400,
        content_type="message/cpim", body=BODY,
        headers=(("Contribution-ID", f"c{i}"), ("Conversation-ID", "conv")),
    )


async def measure(store: Store, n: int, recipients: int, concurrency: int) -> dict[str, float]:
    now = time.time()
    sem = asyncio.Semaphore(concurrency)

    async def put(i: int) -> None:
        async with sem:
            await store.put_message(message(i, recipients, now))

    t0 = time.perf_counter()
    await asyncio.gather(*(put(i) for i in range(n)))
    stored_s = time.perf_counter() - t0

    delivered = 0
    t0 = time.perf_counter()
    for r in range(recipients):
        recipient = f"+86138{r:08d}"
        while batch := await store.pending(recipient, limit=500):
            results = await asyncio.gather(*(store.mark_delivered(m.id, now) for m in batch))
            delivered += sum(results)
    delivered_s = time.perf_counter() - t0
    return {"stored_per_s": n / stored_s, "delivered_per_s": delivered / delivered_s,
            "delivered": delivered}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--recipients", type=int, default=1_000)
    ap.add_argument("--concurrency", type=int, default=2_000, help="puts in flight")
    ap.add_argument("--backends", default="sqlite,redis")
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python "
          f"{platform.python_version()}; {args.messages} messages to {args.recipients} "
          f"recipients, {args.concurrency} puts in flight")
    for kind in args.backends.split(","):
        async with AsyncExitStack() as stack:
            if kind == "sqlite":
                tmp = stack.enter_context(tempfile.TemporaryDirectory())
                store = open_store("sqlite", path=str(Path(tmp) / "bench.db"))
            elif kind == "redis":
                if not redis_available():
                    print("redis: skipped (redis-server not installed)")
                    continue
                url = await stack.enter_async_context(redis_server())
                store = open_store("redis", url=url)
            else:
                store = open_store(kind)
            await store.open()
            try:
                r = await measure(store, args.messages, args.recipients, args.concurrency)
            finally:
                await store.close()
        print(f"{kind:7s} stored {r['stored_per_s']:9.0f}/s (durable before each put returns)"
              f"   delivered {r['delivered_per_s']:9.0f}/s ({r['delivered']:.0f} marked)")


if __name__ == "__main__":
    asyncio.run(main())
