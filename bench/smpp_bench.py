"""SMPP throughput: our ESME submitting to the SMSC stub (in its own process) over loopback.

Prints, per window size: offered and achieved submit_sm/s, errors, submit latency
p50/p90/p99 (submit call → submit_sm_resp), and the delivery-receipt rate beside the MT rate.

    .venv/bin/python bench/smpp_bench.py --duration 10 --windows 10,50
    .venv/bin/python bench/smpp_bench.py --rate 5000      # open loop at 5000/s

The SMSC runs with receipts requested for every message (registered_delivery=1), delay 0–0.2 s,
throttle_per_s high enough not to interfere. uvloop is used when importable (both sides).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import socket
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fivegmc.config import SmppAccount, SmscConfig
from fivegmc.net.loop import loop_factory
from fivegmc.smpp.receipt import DeliveryReceipt
from fivegmc.smsc.esme import Esme

ACCOUNT = SmppAccount(system_id="bench", password="bench", throttle_per_s=1e9, window=200)


def _serve(port: int, ready: Any) -> None:
    from prometheus_client import CollectorRegistry

    from fivegmc.obs.logging import make_logger
    from fivegmc.smsc.metrics import SmscMetrics
    from fivegmc.smsc.server import SmscNode

    async def main() -> None:
        cfg = SmscConfig(port=port, accounts=(ACCOUNT,), receipt_delay_min_s=0.0,
                         receipt_delay_max_s=0.2, max_pending=100_000, inbox_size=10_000,
                         max_queued=1_000_000)
        node = SmscNode(cfg, SmscMetrics(CollectorRegistry()), make_logger("ERROR", "json"))
        await node.start()
        ready.set()
        try:
            await node.run()
        finally:
            await node.close()

    factory, _ = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def run_window(port: int, window: int, duration: float, rate: float) -> dict[str, Any]:
    receipts = 0
    first_receipt = last_receipt = 0.0

    def on_receipt(r: DeliveryReceipt) -> None:
        nonlocal receipts, first_receipt, last_receipt
        now = time.perf_counter()
        if not receipts:
            first_receipt = now
        last_receipt = now
        receipts += 1

    esme = Esme("127.0.0.1", port, ACCOUNT.system_id, ACCOUNT.password, window=window,
                max_held=window * 4 + 10_000, on_receipt=on_receipt, response_timeout_s=30)
    esme.start()
    try:
        await asyncio.wait_for(esme.bound.wait(), 5)
    except TimeoutError:
        raise SystemExit(f"ESME did not bind: {esme.last_error}") from None
    latencies: list[float] = []
    errors = 0
    done = 0
    offered = 0

    def finished(started: float, fut: asyncio.Future[list[str]]) -> None:
        nonlocal errors, done
        if fut.cancelled() or fut.exception() is not None:
            errors += 1
        else:
            done += 1
            latencies.append(time.perf_counter() - started)

    start = time.perf_counter()
    end = start + duration
    loop_slack = max(window * 2, 100)
    while (now := time.perf_counter()) < end:
        due = int((now - start) * rate) - offered if rate > 0 else loop_slack - esme.held
        for _ in range(max(due, 0)):
            t0 = time.perf_counter()
            fut = esme.submit_nowait("1065900000001", "+8613900000001", "bench message")
            fut.add_done_callback(lambda f, t0=t0: finished(t0, f))
            offered += 1
        await asyncio.sleep(0.001 if rate > 0 else 0)
    sent_window = time.perf_counter() - start
    drain_deadline = time.perf_counter() + 10
    while esme.held and time.perf_counter() < drain_deadline:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    # receipts arrive up to 0.2 s after their submit
    receipt_deadline = time.perf_counter() + 3
    while receipts < done and time.perf_counter() < receipt_deadline:
        await asyncio.sleep(0.01)
    await esme.close()
    receipt_span = max(last_receipt - first_receipt, 1e-9)
    return {
        "window": window, "offered_per_s": offered / sent_window, "achieved_per_s": done / elapsed,
        "errors": errors + (offered - done - errors), "p50_ms": _pct(latencies, 0.5) * 1e3,
        "p90_ms": _pct(latencies, 0.9) * 1e3, "p99_ms": _pct(latencies, 0.99) * 1e3,
        "receipts": receipts, "dlr_per_s": receipts / receipt_span, "submitted": done,
    }


def cpu_cost(count: int = 50_000) -> None:
    """Server-side CPU per submit_sm without sockets: session decode + SMSC core + response +
    receipt deliver_sm encode + its deliver_sm_resp, in one process (µs per message)."""
    import random

    from fivegmc.smpp.constants import CommandId, CommandStatus
    from fivegmc.smpp.pdu import Bind, MessageIdResp, Pdu, ShortMessage, encode_pdu
    from fivegmc.smpp.session import RequestReceived, Role, Session
    from fivegmc.smsc.core import SmscCore

    core = SmscCore(SmscConfig(accounts=(ACCOUNT,), receipt_delay_max_s=0.0,
                               max_queued=count + 1), random.Random(1))
    smsc = Session(Role.SMSC)
    (ev,) = smsc.receive_data(encode_pdu(Pdu(CommandId.BIND_TRANSCEIVER, 1,
                                             Bind("bench", "bench"))))
    assert isinstance(ev, RequestReceived)
    smsc.answer(ev.pdu)
    smsc.data_to_send()
    sm = ShortMessage("1065900000001", "+8613900000001", b"bench message",
                      registered_delivery=1)
    wire = b"".join(encode_pdu(Pdu(CommandId.SUBMIT_SM, i + 2, sm)) for i in range(count))
    start = time.perf_counter()
    for i in range(0, len(wire), 4096):
        for event in smsc.receive_data(wire[i:i + 4096]):
            assert isinstance(event, RequestReceived)
            body = event.pdu.body
            assert isinstance(body, ShortMessage)
            mid = core.submit("bench", body, 0.0)
            smsc.answer(event.pdu, CommandStatus.ESME_ROK, MessageIdResp(mid))
        smsc.data_to_send()
    core.handle_timer(1.0)
    queue = core.queues["bench"]
    acks = []
    while queue:
        pdu = Pdu(CommandId.DELIVER_SM, smsc.next_sequence(), queue.popleft())
        smsc.send(pdu)
        acks.append(encode_pdu(Pdu(CommandId.DELIVER_SM_RESP, pdu.sequence_number,
                                   MessageIdResp(""))))
    smsc.data_to_send()
    smsc.receive_data(b"".join(acks))
    elapsed = time.perf_counter() - start
    print(f"SMSC CPU per submit_sm incl. its receipt: {elapsed / count * 1e6:.1f} µs "
          f"→ {count / elapsed:.0f} submit_sm/s per core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--windows", default="10,50")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="open-loop offered rate (submit_sm/s); 0 = as fast as the window")
    parser.add_argument("--cpu", action="store_true",
                        help="only measure the SMSC's CPU per submit_sm (no sockets)")
    args = parser.parse_args()
    if args.cpu:
        cpu_cost()
        return
    port = _free_port()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    server = ctx.Process(target=_serve, args=(port, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(10):
            raise SystemExit("SMSC did not start")
        factory, loop_name = loop_factory()
        print(f"machine: {platform.machine()} {os.cpu_count()} cpu, python "
              f"{platform.python_version()}, loop {loop_name}; SMSC stub in its own process; "
              f"ESME: fivegmc.smsc.esme; duration {args.duration}s")
        print(f"{'window':>6} {'offered/s':>10} {'achieved/s':>10} {'errors':>6} "
              f"{'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'DLR/s':>8} {'DLRs':>8} {'MT':>8}")
        for window in (int(w) for w in args.windows.split(",")):
            with asyncio.Runner(loop_factory=factory) as runner:
                r = runner.run(run_window(port, window, args.duration, args.rate))
            print(f"{r['window']:>6} {r['offered_per_s']:>10.0f} {r['achieved_per_s']:>10.0f} "
                  f"{r['errors']:>6} {r['p50_ms']:>7.2f} {r['p90_ms']:>7.2f} {r['p99_ms']:>7.2f} "
                  f"{r['dlr_per_s']:>8.0f} {r['receipts']:>8} {r['submitted']:>8}")
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
