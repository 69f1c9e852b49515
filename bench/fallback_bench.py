"""SMS fallback benchmark: chatbot message → 5GMC 480 (SMS-only user) → the MaaP's fallback
(durable queue) → submit_sm through the MaaP's ESME → the node's SMSC stub → delivery receipt
→ the recipient's ``deliveredToNetwork`` status event.

One process runs a lab Node (5GMC + MaaP + SMSC stub, memory store, no CDRs, the MaaP's
``[maap.sms]`` enabled) and offers ``MaapCore.send`` calls (one SMS-only recipient each, CT/CU
style ``smsSupported`` + ``smsContent``) at ``--rate`` for ``--duration`` seconds. The status
event is observed in the core (no CSP webhook POSTs: the webhook queue has its own bench).
Prints offered and achieved rate (final statuses per second), errors (failed / missing
statuses) and the latency from the send's acceptance to the DELIVERED_TO_NETWORK event.

    .venv/bin/python bench/fallback_bench.py --rate 500 --duration 5

Bounded: stops offering after ``--duration`` and waits at most ``--drain`` seconds more.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fivegmc.config import load_profile
from fivegmc.maap.model import TEXT, Event, Outbound, Payload, SmsFallback, Status, StatusEvent
from fivegmc.node import running

FIRST = 8613900000000  # lab SMS-only numbers: +8613900000000 … +8613900009999


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


async def bench(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="fallback-bench-") as data:
        profile = load_profile(None, (
            "sip.udp_port=0", "sip.tcp_port=0", "admin.port=0", "maap.port=0",
            "maap.sip_port=0", "smsc.port=0", "store.kind=memory", "cdr.enabled=false",
            "log.level=ERROR", f'maap.data_dir="{data}"', "maap.sms.enabled=true",
            f"maap.sms.window={args.window}", "smsc.receipt_delay_min_s=0.0",
            f"smsc.receipt_delay_max_s={args.receipt_delay}",
            "smsc.inbox_size=1000",
            # no CSP webhooks: the status event is observed in the core (bench/maap_webhooks_
            # bench.py measures the webhook queue)
            *(f'maap.chatbots[{i}].webhook=""' for i in range(4)),
        ))
        async with running(profile) as node:
            maap = node.maap
            assert maap is not None and maap.sms is not None
            core, sms = maap.core, maap.sms
            for bot in core.bots():
                if bot.dialect == "ctcu":
                    bot_id = bot.id
                    break
            accepted: dict[str, float] = {}
            latencies: list[float] = []
            failed = 0

            def observe(event: Event) -> None:
                nonlocal failed
                if not isinstance(event, StatusEvent):
                    return
                start = accepted.pop(event.message_id, None)
                if start is None:
                    return
                if event.status is Status.DELIVERED_TO_NETWORK:
                    latencies.append(time.perf_counter() - start)
                elif event.status is Status.FAILED:
                    failed += 1
                else:
                    accepted[event.message_id] = start  # not final yet

            core.observers.append(observe)
            deadline = time.monotonic() + 5
            while (sms.esme is None or not sms.esme.bound.is_set()) and \
                    time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            payload = Payload(TEXT, b"5G message")
            total = int(args.rate * args.duration)
            interval = 1.0 / args.rate
            # like concurrent API requests: at most --concurrency sends awaiting acceptance
            slots = asyncio.Semaphore(args.concurrency)

            async def one(i: int) -> None:
                try:
                    mid = uuid.uuid4().hex
                    accepted[mid] = time.perf_counter()
                    await core.send(Outbound(
                        bot_id=bot_id, recipients=(f"+{FIRST + i % 10000}",),
                        payload=payload, message_id=mid,
                        fallback=SmsFallback(True, f"SMS fallback {i}")))
                finally:
                    slots.release()

            t0 = time.perf_counter()
            async with asyncio.TaskGroup() as tg:
                for i in range(total):
                    delay = t0 + i * interval - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await slots.acquire()
                    tg.create_task(one(i))
            offered_s = time.perf_counter() - t0
            end = time.monotonic() + args.drain
            while accepted and time.monotonic() < end:
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - t0
            done = len(latencies)
            missing = len(accepted)
        print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python "
              f"{platform.python_version()}; ESME window {args.window}, receipt delay "
              f"0-{args.receipt_delay}s")
        print(f"offered   {total} fallback sends at {total / offered_s:,.0f}/s "
              f"(target {args.rate:,.0f}/s)")
        print(f"achieved  {done} deliveredToNetwork in {elapsed:.2f}s = "
              f"{done / elapsed:,.0f}/s")
        print(f"errors    failed {failed}, missing {missing}")
        print("latency accept→deliveredToNetwork ms: "
              f"p50 {pct(latencies, 50) * 1e3:.1f}  p90 {pct(latencies, 90) * 1e3:.1f}  "
              f"p99 {pct(latencies, 99) * 1e3:.1f}  max {max(latencies or [0]) * 1e3:.1f}")
        return 0 if failed == 0 and missing == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=500.0, help="fallback sends offered per s")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds of offered load")
    ap.add_argument("--drain", type=float, default=15.0, help="seconds to wait for the rest")
    ap.add_argument("--window", type=int, default=50, help="ESME submit_sm window")
    ap.add_argument("--concurrency", type=int, default=200,
                    help="sends awaiting acceptance at once")
    ap.add_argument("--receipt-delay", type=float, default=0.0,
                    help="SMSC receipt delay upper bound (s)")
    return asyncio.run(bench(ap.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
