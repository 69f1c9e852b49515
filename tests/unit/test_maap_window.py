"""The A2P fan-out's AIMD window (fivegmc/maap/window.py), alone and in the core against a
5GMC that sheds load with 503 above a fixed number of MESSAGEs in flight."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fivegmc.maap.model import Outbound, Payload, Status
from fivegmc.maap.window import AimdWindow
from fivegmc.sip.headers import Headers
from fivegmc.sip.message import Response

from .test_maap_core import _core


async def test_grows_by_about_one_per_window_and_halves_once_per_window() -> None:
    w = AimdWindow(64, minimum=4)
    tickets = [await w.acquire() for _ in range(10)]
    for t in tickets:
        w.release(t, overloaded=True)  # one overload episode (all sent before the cut): one cut
    assert (w.limit, w.cuts, w.in_flight) == (32.0, 1, 0)
    w.release(await w.acquire(), overloaded=True)  # sent after the cut: cuts again
    assert w.limit == 16.0
    for _ in range(16):
        w.release(await w.acquire(), overloaded=False)
    assert 16.9 < w.limit < 17.1
    for _ in range(5):
        w.release(await w.acquire(), overloaded=True)
    assert w.limit == 4.0  # never below the minimum


async def test_waiters_are_served_in_order_and_cancelled_ones_leave_no_trace() -> None:
    w = AimdWindow(2, minimum=1)
    first = [await w.acquire(), await w.acquire()]
    order: list[int] = []
    held: list[int] = []

    async def take(i: int) -> None:
        held.append(await w.acquire())
        order.append(i)

    tasks = [asyncio.create_task(take(i)) for i in range(4)]
    await asyncio.sleep(0)
    tasks[1].cancel()
    await asyncio.sleep(0)
    for t in first:
        w.release(t, overloaded=False)
    await asyncio.sleep(0)
    assert order == [0, 2] and w.in_flight == 2
    for t in held[:2]:
        w.release(t, overloaded=False)
    await asyncio.sleep(0)
    assert order == [0, 2, 3] and w.in_flight == 1
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=80),
       st.integers(1, 16))
def test_in_flight_never_exceeds_the_limit_and_every_taker_gets_a_slot(
        plan: list[tuple[int, bool]], maximum: int) -> None:
    async def scenario() -> None:
        w = AimdWindow(maximum, minimum=1)
        peak = 0

        async def one(delay: int, overloaded: bool) -> None:
            nonlocal peak
            ticket = await w.acquire()
            peak = max(peak, w.in_flight)
            for _ in range(delay):
                await asyncio.sleep(0)
            w.release(ticket, overloaded=overloaded)

        await asyncio.wait_for(asyncio.gather(*(one(d, o) for d, o in plan)), 5)
        assert w.in_flight == 0 and not w._waiters and peak <= maximum

    asyncio.run(scenario())


async def test_campaign_against_a_shedding_5gmc_loses_no_recipient(tmp_path: Path) -> None:
    """The 5GMC takes 40 MESSAGEs at a time and answers 503 (Retry-After 0) beyond; the core
    has 256 workers and 3 attempts each, but 503s do not count while maap.center_overload_s
    lasts: the window shrinks and every recipient gets SENT."""
    core = await _core(tmp_path)
    core.attempts = 3
    in_flight = 0
    shed = 0

    async def five_gmc(*args: Any) -> Response:
        nonlocal in_flight, shed
        if in_flight >= 40:
            shed += 1
            return Response(503, "Overloaded", Headers([("Retry-After", "0")]))
        in_flight += 1
        try:
            await asyncio.sleep(0.002)
            return Response(200, "OK", Headers())
        finally:
            in_flight -= 1

    core._message = five_gmc  # type: ignore[method-assign]
    numbers = tuple(f"+86138000{i:05d}" for i in range(1500))
    task = asyncio.create_task(core.run())
    try:
        await core.send(Outbound("labbot", numbers, Payload("text/plain", b"hi"), "camp"))
        async with asyncio.timeout(20):
            while True:
                rec = core.record("labbot", "camp")
                assert rec is not None
                if all(r.status is not Status.ACCEPTED for r in rec.recipients):
                    break
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert {r.status for r in rec.recipients} == {Status.SENT}
    assert shed > 0 and core.window.cuts >= 1 and core.window.limit < 256
    await core.close()
    await core.states.close()
