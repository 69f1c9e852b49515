"""In-memory store: plain dicts, same semantics as the durable backends (for unit tests).

Nothing here survives the process; ``put_message`` is "durable" as soon as it returns.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence

from .protocol import (
    MessageState,
    PutResult,
    StoredBinding,
    StoredMessage,
    StoreFull,
    StoreUnavailable,
    TraceEvent,
)


class MemoryStore:
    """The :class:`~fivegmc.store.protocol.Store` protocol on dicts."""

    def __init__(self, *, max_stored: int | None = None) -> None:
        self._max_stored = max_stored
        self._messages: dict[str, StoredMessage] = {}  # insertion order == seq order
        self._by_key: dict[tuple[str, str], str] = {}
        self._bindings: dict[str, tuple[StoredBinding, ...]] = {}
        self._traces: dict[str, list[TraceEvent]] = {}
        self._stored = 0
        self._seq = 0
        self._open = False

    def _check(self) -> None:
        if not self._open:
            raise StoreUnavailable("memory store is not open")

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    # -- store-and-forward ---------------------------------------------------------------------
    async def put_message(self, msg: StoredMessage) -> PutResult:
        self._check()
        if msg.imdn_message_id is not None:
            existing = self._by_key.get((msg.sender, msg.imdn_message_id))
            if existing is not None:
                return PutResult(existing, True)
        if msg.id in self._messages:
            raise ValueError(f"message id {msg.id!r} already stored")
        if self._max_stored is not None and self._stored >= self._max_stored:
            raise StoreFull(f"{self._stored} messages stored (max_stored={self._max_stored})")
        self._seq += 1
        stored = dataclasses.replace(msg, state=MessageState.STORED, seq=self._seq)
        self._messages[msg.id] = stored
        if msg.imdn_message_id is not None:
            self._by_key[(msg.sender, msg.imdn_message_id)] = msg.id
        self._stored += 1
        return PutResult(msg.id, False)

    async def get_message(self, msg_id: str) -> StoredMessage | None:
        self._check()
        return self._messages.get(msg_id)

    async def pending(self, recipient: str, limit: int = 100) -> list[StoredMessage]:
        self._check()
        out: list[StoredMessage] = []
        for m in self._messages.values():
            if len(out) >= limit:
                break
            if m.recipient == recipient and m.state is MessageState.STORED:
                out.append(m)
        return out

    async def due(self, now: float, limit: int = 1000) -> list[StoredMessage]:
        self._check()
        out: list[StoredMessage] = []
        for m in self._messages.values():
            if len(out) >= limit:
                break
            if m.state is MessageState.STORED and m.next_attempt_at <= now:
                out.append(m)
        return out

    def _stored_msg(self, msg_id: str) -> StoredMessage | None:
        m = self._messages.get(msg_id)
        return m if m is not None and m.state is MessageState.STORED else None

    async def mark_attempt(self, msg_id: str, next_attempt_at: float) -> bool:
        self._check()
        m = self._stored_msg(msg_id)
        if m is None:
            return False
        self._messages[msg_id] = dataclasses.replace(
            m, attempts=m.attempts + 1, next_attempt_at=next_attempt_at
        )
        return True

    def _finish(self, msg_id: str, state: MessageState) -> StoredMessage | None:
        m = self._stored_msg(msg_id)
        if m is None:
            return None
        new = dataclasses.replace(m, state=state)
        self._messages[msg_id] = new
        self._stored -= 1
        return new

    async def mark_delivered(self, msg_id: str, at: float) -> bool:
        self._check()
        return self._finish(msg_id, MessageState.DELIVERED) is not None

    async def mark_failed(self, msg_id: str, at: float, reason: str) -> bool:
        self._check()
        return self._finish(msg_id, MessageState.FAILED) is not None

    async def expire(self, now: float, limit: int = 1000) -> list[StoredMessage]:
        self._check()
        ids = [
            m.id
            for m in self._messages.values()
            if m.state is MessageState.STORED and m.expires_at <= now
        ][:limit]
        out: list[StoredMessage] = []
        for msg_id in ids:
            new = self._finish(msg_id, MessageState.EXPIRED)
            if new is not None:
                out.append(new)
        return out

    async def count(self, state: MessageState = MessageState.STORED) -> int:
        self._check()
        if state is MessageState.STORED:
            return self._stored
        return sum(1 for m in self._messages.values() if m.state is state)

    # -- registrations -------------------------------------------------------------------------
    async def save_bindings(self, aor: str, bindings: Sequence[StoredBinding]) -> None:
        self._check()
        if bindings:
            self._bindings[aor] = tuple(bindings)
        else:
            self._bindings.pop(aor, None)

    async def watch_bindings(
        self, on_change: Callable[[str, list[StoredBinding]], None]
    ) -> None:
        """One process owns this store: nobody else changes bindings. Wait until cancelled."""
        await asyncio.Event().wait()

    async def iter_bindings(
        self, now: float, page: int = 10000
    ) -> AsyncIterator[list[StoredBinding]]:
        every = await self.load_bindings(now)
        for start in range(0, len(every), page):
            yield every[start:start + page]

    async def load_bindings(self, now: float) -> list[StoredBinding]:
        self._check()
        return [b for bs in self._bindings.values() for b in bs if b.expires_at > now]

    # -- traces --------------------------------------------------------------------------------
    async def add_trace(self, msg_id: str, event: TraceEvent) -> None:
        self._check()
        self._traces.setdefault(msg_id, []).append(event)

    async def trace(self, msg_id: str) -> list[TraceEvent]:
        self._check()
        return list(self._traces.get(msg_id, ()))
