"""Trace events of a MaaP that runs apart from its 5GMC (``[node] elements``): the revoke and SMS
fallback steps (``fallback-sms``, ``submit_sm``, ``dlr`` …) are POSTed to the 5GMC's admin API
(``POST {maap.trace_url}/admin/v1/messages/{id}/events``) so that
``GET /admin/v1/messages/{id}`` there still shows the whole chain (issue 5: one id ties the
request, the 5G attempt, the revoke, the submit_sm and the DLR).

Best effort and bounded: a trace line must never hold up or lose a message, so events wait in
a bounded queue (the oldest are dropped and counted beyond it) and a failed POST is logged and
dropped. Runs under the MaaP node's TaskGroup (:meth:`TraceSink.run`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any
from urllib.parse import quote

import aiohttp


class TraceSink:
    def __init__(self, base_url: str, *, log: Any = None, max_queued: int = 10_000,
                 timeout_s: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.log = log
        self.max_queued = max_queued
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._queue: deque[tuple[str, str, str]] = deque()
        self._wake = asyncio.Event()
        self.sent = self.dropped = self.failed = 0

    def note_event(self, message_id: str, event: str, detail: str = "") -> None:
        """The ``SipNode.note_event`` signature, for the MaaP's fallback and revoke steps."""
        if len(self._queue) >= self.max_queued:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((message_id, event, detail))
        self._wake.set()

    async def run(self) -> None:
        async with aiohttp.ClientSession(timeout=self.timeout) as http:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    message_id, event, detail = self._queue.popleft()
                    url = f"{self.base_url}/admin/v1/messages/{quote(message_id, safe='')}/events"
                    try:
                        async with http.post(url, json={"event": event,
                                                        "detail": detail}) as resp:
                            ok = resp.status < 300
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        ok = False
                        if self.log is not None:
                            self.log.warning("maap: trace event not delivered", url=url,
                                             error=str(exc))
                    if ok:
                        self.sent += 1
                    else:
                        self.failed += 1
