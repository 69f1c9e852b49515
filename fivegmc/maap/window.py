"""How many A2P MESSAGEs the MaaP keeps in flight toward the 5GMC: an AIMD window.

The fan-out pool has ``maap.fanout_concurrency`` workers, but the 5GMC says when that is too
many: it sheds load with ``503`` (RFC 3261 §21.5.4, DESIGN.md §3) or stops answering. Like TCP
congestion avoidance (RFC 5681 §3.1), the window grows by about one per window of answered
MESSAGEs and halves on overload — once per window: an overload answer to a MESSAGE sent
before the last cut does not cut again (RFC 6582 §3.2's "one reduction per window"), so the
503s of one overload episode halve it once whatever the round-trip time. A campaign then
settles just below what the 5GMC takes.
"""

from __future__ import annotations

import asyncio
from collections import deque


class AimdWindow:
    def __init__(self, maximum: int, *, minimum: int = 4) -> None:
        if maximum < 1 or minimum < 1:
            raise ValueError("window bounds must be at least 1")
        self.maximum = maximum
        self.minimum = min(minimum, maximum)
        self.limit = float(maximum)
        self.in_flight = 0
        self._sent = 0  # slots handed out so far: a slot's ticket is its number
        self._cut_at = 0  # tickets below this were handed out before the last cut
        self._waiters: deque[asyncio.Future[None]] = deque()
        #: times the window was halved (for metrics and tests)
        self.cuts = 0

    async def acquire(self) -> int:
        """Wait for room in the window, then take one slot (FIFO among waiters); the ticket
        goes back with :meth:`release`."""
        if self.in_flight < int(self.limit) and not self._waiters:
            self.in_flight += 1
            self._sent += 1
            return self._sent
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut  # resolved with the slot already taken for us
            self._sent += 1
            return self._sent
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._give_back()
            else:
                self._waiters.remove(fut)
            raise

    def release(self, ticket: int, *, overloaded: bool) -> None:
        """Give the slot back; ``overloaded``: the 5GMC answered 503 or not at all."""
        if overloaded:
            if ticket > self._cut_at:
                self._cut_at = self._sent
                self.limit = max(float(self.minimum), self.limit / 2)
                self.cuts += 1
        else:
            self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
        self._give_back()

    def _give_back(self) -> None:
        self.in_flight -= 1
        while self._waiters and self.in_flight < int(self.limit):
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)
