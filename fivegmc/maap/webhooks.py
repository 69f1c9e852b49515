"""The durable webhook queue: every event for a CSP is POSTed until the CSP answers 2xx
(issue 4 item 7; protocols.md §11: "anything else is retried with backoff growing to minutes").

- **Durable before it returns**: :meth:`WebhookQueue.enqueue` resolves only after the event is
  committed to SQLite. Writes are group-committed: while one batch is being written the next
  one gathers, so one transaction carries many events under load.
- **Ordered per key**: events with the same ``(bot_id, ordering_key)`` (one user of one
  chatbot) form a *lane*; only the head of a lane is ever in flight, and a lane whose head
  keeps failing holds its later events back without blocking any other lane.
- **Bounded concurrency**: ``concurrency`` workers take ready lanes from one queue (a lane is
  at any time in exactly one place: the ready queue, the retry timer heap, or a worker).
- **Retry**: a non-2xx answer, a timeout or a connection error schedules the head again after
  ``retry_initial_s · 2^(attempts-1)`` capped at ``retry_max_s``, with ±10 % jitter.
- **Batching** (opt-in per notification, ``Notification.batch``): events whose JSON bodies are one
  list (CT/CU ``deliveryInfoList[]``) and that go to the same URL are merged into one POST of up
  to ``batch_max`` entries — the heads of every such lane ready at that moment, each lane's
  consecutive batchable events in order. A batch succeeds or is retried as a whole, so each
  lane's order holds. Nothing waits to fill a batch: under light load a POST carries one entry.
- **Restart**: undelivered events are loaded from the file on :meth:`open` and resent at
  once, in order.

Delivered events stay visible (:meth:`events`, for ``GET /admin/v1/chatbots/{id}/events``)
until ``keep_delivered`` newer ones push them out.

POSTs go through :class:`fivegmc.http.HttpClient` (keep-alive pool per CSP origin; ≈ a third of
aiohttp's client CPU per POST, bench/http_client_bench.py).

The SQLite file is driven through ``sqlite3`` in a worker thread (``asyncio.to_thread``): a
batch is one thread hop and one transaction, which aiosqlite's per-statement hops cannot give.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import random
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

import msgspec
import structlog

from ..http import HttpError, Response
from .model import Notification

State = Literal["queued", "retrying", "delivered"]

#: Characters of an event body shown by :meth:`WebhookQueue.events`.
BODY_PREVIEW = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    bot_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ordering_key TEXT NOT NULL,
    url TEXT NOT NULL,
    content_type TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT NOT NULL,
    next_attempt_at REAL NOT NULL,
    created_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS events_bot ON events (bot_id, id);
CREATE INDEX IF NOT EXISTS events_state ON events (state, id);
CREATE TABLE IF NOT EXISTS bot_seq (bot_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""
_COLS = ("id, bot_id, seq, ordering_key, url, content_type, headers, body, state, attempts, "
         "last_status, last_error, next_attempt_at, created_at, delivered_at")
_INSERT = f"INSERT INTO events ({_COLS}) VALUES ({', '.join('?' * 15)})"
_UPDATE = ("UPDATE events SET state = ?, attempts = ?, last_status = ?, last_error = ?, "
           "next_attempt_at = ?, delivered_at = ? WHERE id = ?")
_SEQ = ("INSERT INTO bot_seq (bot_id, seq) VALUES (?, ?) ON CONFLICT (bot_id) "
        "DO UPDATE SET seq = max(seq, excluded.seq)")


@dataclass(slots=True, eq=False)
class _Event:
    id: int
    seq: int
    bot_id: str
    n: Notification
    created_at: float
    state: State = "queued"
    attempts: int = 0
    last_status: int | None = None
    last_error: str = ""
    next_attempt_at: float = 0.0
    delivered_at: float | None = None

    def row(self) -> tuple[Any, ...]:
        return (self.id, self.bot_id, self.seq, self.n.ordering_key, self.n.url,
                self.n.content_type, json.dumps(self.n.headers), self.n.body, self.state,
                self.attempts, self.last_status, self.last_error, self.next_attempt_at,
                self.created_at, self.delivered_at)

    def update_row(self) -> tuple[Any, ...]:
        return (self.state, self.attempts, self.last_status, self.last_error,
                self.next_attempt_at, self.delivered_at, self.id)

    def as_dict(self) -> dict[str, Any]:
        body = self.n.body.decode("utf-8", "replace")
        return {
            "id": self.id, "seq": self.seq, "ordering_key": self.n.ordering_key,
            "url": self.n.url, "content_type": self.n.content_type, "state": self.state,
            "attempts": self.attempts, "last_status": self.last_status,
            "last_error": self.last_error,
            "next_attempt_at": None if self.state == "delivered" else self.next_attempt_at,
            "created_at": self.created_at, "delivered_at": self.delivered_at,
            "body": body[:BODY_PREVIEW], "body_truncated": len(body) > BODY_PREVIEW,
        }


def _from_row(row: tuple[Any, ...]) -> _Event:
    (id_, bot_id, seq, key, url, ctype, headers, body, state, attempts, last_status,
     last_error, next_at, created_at, delivered_at) = row
    n = Notification(url=url, body=bytes(body), content_type=ctype, ordering_key=key,
                     headers=tuple((str(k), str(v)) for k, v in json.loads(headers)))
    return _Event(id=id_, seq=seq, bot_id=bot_id, n=n, created_at=created_at, state=state,
                  attempts=attempts, last_status=last_status, last_error=last_error,
                  next_attempt_at=next_at, delivered_at=delivered_at)


@dataclass(slots=True)
class _Lane:
    """One ordering key's undelivered events, oldest first."""

    events: deque[_Event] = field(default_factory=deque)


class Poster(Protocol):
    """What the queue POSTs through (:class:`fivegmc.http.HttpClient`)."""

    async def post(self, url: str, body: bytes, headers: Sequence[tuple[str, str]] = (),
                   timeout_s: float = 5.0) -> Response: ...

    async def close(self) -> None: ...


class _Group(NamedTuple):
    """Lanes whose heads may share one POST (same chatbot, URL and batch list)."""

    bot_id: str
    url: str
    batch: str


LaneKey = tuple[str, str]


@dataclass(slots=True)
class _Op:
    event: _Event
    insert: bool
    fut: asyncio.Future[int] | None = None


class WebhookQueue:
    """Durable, ordered, retried webhook delivery (see the module docstring).

    ``client_factory`` (e.g. :class:`fivegmc.http.HttpClient`) is called once per :meth:`run`;
    the queue closes that client when ``run`` ends. Lifecycle: ``await open()`` → ``enqueue`` /
    ``run()`` (until cancelled) → ``await close()``.
    """

    def __init__(
        self,
        db_path: Path | None,
        client_factory: Callable[[], Poster],
        *,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 300.0,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        log: structlog.typing.FilteringBoundLogger | None = None,
        concurrency: int = 64,
        keep_delivered: int = 10000,
        max_batch: int = 2048,
        rng: random.Random | None = None,
    ) -> None:
        if retry_initial_s <= 0 or retry_max_s < retry_initial_s or timeout_s <= 0:
            raise ValueError("need 0 < retry_initial_s <= retry_max_s and timeout_s > 0")
        if concurrency < 1 or keep_delivered < 0 or max_batch < 1:
            raise ValueError("concurrency, max_batch >= 1 and keep_delivered >= 0")
        self._path = db_path
        self._client_factory = client_factory
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._timeout = timeout_s
        self._clock = clock
        self._log = log
        self._concurrency = concurrency
        self._keep_delivered = keep_delivered
        self._max_batch = max_batch
        self._rng = rng or random.Random()
        self._conn: sqlite3.Connection | None = None
        self._db_lock = asyncio.Lock()
        self._opened = False
        self._closed = False
        self._next_id = 1
        self._seq: dict[str, int] = {}
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._pending: dict[int, _Event] = {}
        self._pending_by_bot: dict[str, int] = {}
        self._delivered: dict[str, deque[_Event]] = {}  # per bot, newest last (memory view)
        self._ops: list[_Op] = []
        self._committer: asyncio.Task[None] | None = None
        self._ready: asyncio.Queue[LaneKey | _Group] = asyncio.Queue()
        #: lanes ready to go whose heads can be batched, per group (a group is in the ready
        #: queue exactly while it has an entry here)
        self._groups: dict[_Group, deque[LaneKey]] = {}
        self._timers: list[tuple[float, int, tuple[str, str]]] = []
        self._timer_n = 0
        self._wake = asyncio.Event()
        self._since_prune = 0
        #: counters (for metrics / tests)
        self.posted = 0
        self.delivered = 0
        self.failures = 0
        self.commits = 0

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        """Open (or create) the SQLite file and load every undelivered event."""
        if self._opened:
            raise RuntimeError("WebhookQueue.open() called twice")
        self._opened = True
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._conn, rows, seqs, max_id = await asyncio.to_thread(_open_db, self._path)
        self._next_id = max_id + 1
        self._seq.update(seqs)
        now = self._clock()
        for row in rows:
            ev = _from_row(row)
            ev.next_attempt_at = min(ev.next_attempt_at, now)  # resend at once after restart
            self._register(ev)

    async def close(self) -> None:
        """Let queued writes finish, then close the file (run() must be cancelled first)."""
        self._closed = True
        if self._committer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer
            self._committer = None
        if self._conn is not None:
            async with self._db_lock:
                conn, self._conn = self._conn, None
                await asyncio.to_thread(conn.close)

    # -- enqueue ---------------------------------------------------------------------------------
    def enqueue(self, bot_id: str, n: Notification) -> Awaitable[int]:
        """Queue ``n`` for ``bot_id`` now; the returned future gives the event id once it is
        durable (or fails, e.g. RuntimeError when the queue is not open). A plain future, not
        a coroutine: many enqueues awaited together (the core's event batches) cost no task
        each (DESIGN.md §6)."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if not self._opened or self._closed:
            fut.set_exception(RuntimeError("WebhookQueue is not open"))
            return fut
        seq = self._seq.get(bot_id, 0) + 1
        self._seq[bot_id] = seq
        now = self._clock()
        ev = _Event(id=self._next_id, seq=seq, bot_id=bot_id, n=n, created_at=now,
                     next_attempt_at=now)
        self._next_id += 1
        if self._conn is None:
            self._register(ev)
            fut.set_result(ev.id)
            return fut
        self._submit(_Op(ev, insert=True, fut=fut))
        return asyncio.shield(fut)

    def _submit(self, op: _Op) -> None:
        self._ops.append(op)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit_loop())

    async def _commit_loop(self) -> None:
        while self._ops and self._conn is not None:
            batch, self._ops = self._ops[:self._max_batch], self._ops[self._max_batch:]
            prune = 0
            self._since_prune += sum(1 for op in batch if op.event.state == "delivered")
            if self._keep_delivered and self._since_prune >= max(256, self._keep_delivered // 4):
                prune, self._since_prune = self._keep_delivered, 0
            seqs: dict[str, int] = {}
            for op in batch:
                if op.insert:
                    seqs[op.event.bot_id] = max(seqs.get(op.event.bot_id, 0), op.event.seq)
            inserts = [op.event.row() for op in batch if op.insert]
            updates = [op.event.update_row() for op in batch if not op.insert]
            try:
                async with self._db_lock:
                    await asyncio.to_thread(_write_batch, self._conn, inserts, updates,
                                            list(seqs.items()), prune)
            except Exception as exc:  # the disk failed: callers learn it, nothing is lost silently
                for op in batch:
                    if op.fut is not None and not op.fut.done():
                        op.fut.set_exception(exc)
                if self._log is not None:
                    self._log.error("webhook queue write failed", error=str(exc))
                continue
            self.commits += 1
            for op in batch:  # registered only once durable, in id order
                if op.insert:
                    self._register(op.event)
                if op.fut is not None and not op.fut.done():
                    op.fut.set_result(op.event.id)

    def _register(self, ev: _Event) -> None:
        key = (ev.bot_id, ev.n.ordering_key)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
            lane.events.append(ev)
            self._make_ready(key, ev.next_attempt_at)
        else:
            lane.events.append(ev)
        self._pending[ev.id] = ev
        self._pending_by_bot[ev.bot_id] = self._pending_by_bot.get(ev.bot_id, 0) + 1

    def _make_ready(self, key: LaneKey, at: float) -> None:
        if at <= self._clock():
            self._ready_now(key)
        else:
            self._timer_n += 1
            heapq.heappush(self._timers, (at, self._timer_n, key))
            self._wake.set()

    def _ready_now(self, key: LaneKey) -> None:
        lane = self._lanes.get(key)
        head = lane.events[0].n if lane is not None and lane.events else None
        if head is None or head.batch_max <= 1 or not head.batch:
            self._ready.put_nowait(key)
            return
        group = _Group(key[0], head.url, head.batch)
        waiting = self._groups.get(group)
        if waiting is None:
            waiting = self._groups[group] = deque()
            self._ready.put_nowait(group)
        waiting.append(key)

    # -- delivery --------------------------------------------------------------------------------
    async def run(self) -> None:
        """Deliver until cancelled."""
        if not self._opened:
            raise RuntimeError("WebhookQueue.open() first")
        # Rebuild the schedule: every lane is ready or waiting on its head's retry time.
        self._ready = asyncio.Queue()
        self._groups = {}
        self._timers = []
        for key, lane in self._lanes.items():
            self._make_ready(key, lane.events[0].next_attempt_at)
        client = self._client_factory()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._timer_loop())
                for _ in range(self._concurrency):
                    tg.create_task(self._worker(client))
        finally:
            await client.close()

    async def _timer_loop(self) -> None:
        while True:
            now = self._clock()
            while self._timers and self._timers[0][0] <= now:
                _, _, key = heapq.heappop(self._timers)
                self._ready_now(key)
            timeout = self._timers[0][0] - now if self._timers else None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _take(self, item: LaneKey | _Group) -> list[tuple[LaneKey, int]]:
        """The lanes (and how many of each one's head events) one POST carries."""
        if not isinstance(item, _Group):
            lane = self._lanes.get(item)
            return [(item, 1)] if lane is not None and lane.events else []
        waiting = self._groups.get(item)
        taken: list[tuple[LaneKey, int]] = []
        room = 0
        while waiting:
            key = waiting.popleft()
            lane = self._lanes.get(key)
            if lane is None or not lane.events:
                continue
            if not taken:
                room = max(1, lane.events[0].n.batch_max)
            n = 0
            for ev in lane.events:
                if n >= room or ev.n.url != item.url or ev.n.batch != item.batch:
                    break
                n += 1
            taken.append((key, n))
            room -= n
            if room <= 0:
                break
        if waiting:
            self._ready.put_nowait(item)  # more lanes left: another worker may take them
        else:
            self._groups.pop(item, None)
        return taken

    async def _worker(self, client: Poster) -> None:
        while True:
            taken = self._take(await self._ready.get())
            if not taken:
                continue
            events = [ev for key, n in taken
                      for ev in itertools.islice(self._lanes[key].events, n)]
            status, error = await self._post(client, events)
            now = self._clock()
            ok = status is not None and 200 <= status < 300
            for ev in events:
                ev.attempts += 1
                ev.last_status, ev.last_error = status, error
            if ok:
                for ev in events:
                    del self._pending[ev.id]
                    self._pending_by_bot[ev.bot_id] -= 1
                    ev.state, ev.delivered_at, ev.last_error = "delivered", now, ""
                    self.delivered += 1
                    self._remember_delivered(ev)
                for key, n in taken:
                    lane = self._lanes[key]
                    for _ in range(n):
                        lane.events.popleft()
                    if lane.events:
                        self._ready_now(key)
                    else:
                        del self._lanes[key]
            else:
                self.failures += 1
                for ev in events:
                    ev.state = "retrying"
                    ev.next_attempt_at = now + self._backoff(ev.attempts)
                head = events[0]
                if self._log is not None:
                    log = self._log.warning if head.attempts == 1 else self._log.debug
                    log("webhook POST failed, will retry", bot=head.bot_id, event_id=head.id,
                        events=len(events), url=head.n.url, attempts=head.attempts,
                        error=error, retry_in=round(head.next_attempt_at - now, 3))
                for key, _ in taken:
                    self._make_ready(key, self._lanes[key].events[0].next_attempt_at)
            if self._conn is not None:
                for ev in events:
                    self._submit(_Op(ev, insert=False))

    def _backoff(self, attempts: int) -> float:
        base = min(self._retry_max, self._retry_initial * 2.0 ** min(attempts - 1, 62))
        return min(self._retry_max, base * self._rng.uniform(0.9, 1.1))

    async def _post(self, client: Poster, events: list[_Event]) -> tuple[int | None, str]:
        self.posted += 1
        n = events[0].n
        body = n.body if len(events) == 1 else merge_bodies([ev.n.body for ev in events],
                                                            n.batch)
        headers = (("Content-Type", n.content_type), *n.headers)
        try:
            resp = await client.post(n.url, body, headers, self._timeout)
        except TimeoutError:
            return None, f"timeout after {self._timeout}s"
        except (HttpError, OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300]
        if 200 <= resp.status < 300:
            return resp.status, ""
        text = resp.body[:200].decode("utf-8", "replace").strip()
        return resp.status, f"HTTP {resp.status}: {text}" if text else f"HTTP {resp.status}"

    def _remember_delivered(self, ev: _Event) -> None:
        if self._keep_delivered == 0:
            return
        recent = self._delivered.get(ev.bot_id)
        if recent is None:
            recent = self._delivered[ev.bot_id] = deque(maxlen=min(self._keep_delivered, 1000))
        recent.append(ev)

    # -- admin view ------------------------------------------------------------------------------
    def pending(self, bot_id: str | None = None) -> int:
        """Undelivered events (of one chatbot, or all)."""
        if bot_id is None:
            return len(self._pending)
        return self._pending_by_bot.get(bot_id, 0)

    async def events(self, bot_id: str, limit: int = 100,
                     state: State | None = None) -> list[dict[str, Any]]:
        """The chatbot's newest ``limit`` events (optionally of one state), oldest first."""
        limit = max(0, min(limit, 10000))
        found: dict[int, _Event] = {}
        if self._conn is not None:
            async with self._db_lock:
                if self._conn is not None:
                    rows = await asyncio.to_thread(_read_events, self._conn, bot_id, limit,
                                                   state)
                    found = {r[0]: _from_row(r) for r in rows}
        for ev in self._delivered.get(bot_id, ()):
            found[ev.id] = ev
        for ev in self._pending.values():  # the live state beats a not yet written one
            if ev.bot_id == bot_id:
                found[ev.id] = ev
        chosen = [ev for ev in found.values() if state is None or ev.state == state]
        chosen.sort(key=lambda ev: ev.id)
        return [ev.as_dict() for ev in chosen[-limit:]] if limit else []


def merge_bodies(bodies: list[bytes], name: str) -> bytes:
    """One JSON body whose list ``name`` holds every body's entries, in order (the first
    body's other members are kept)."""
    first = msgspec.json.decode(bodies[0])
    items: list[Any] = []
    for body in bodies:
        items.extend(msgspec.json.decode(body)[name])
    first[name] = items
    return msgspec.json.encode(first)


# -- SQLite (runs in a worker thread) -------------------------------------------------------------


def _open_db(path: Path) -> tuple[sqlite3.Connection, list[tuple[Any, ...]], dict[str, int], int]:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.executescript(_SCHEMA)
        rows = conn.execute(
            f"SELECT {_COLS} FROM events WHERE state != 'delivered' ORDER BY id").fetchall()
        seqs = dict(conn.execute("SELECT bot_id, seq FROM bot_seq").fetchall())
        max_id = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    except BaseException:
        conn.close()
        raise
    return conn, rows, seqs, int(max_id)


def _write_batch(conn: sqlite3.Connection, inserts: list[tuple[Any, ...]],
                 updates: list[tuple[Any, ...]], seqs: list[tuple[str, int]],
                 prune_keep: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if inserts:
            conn.executemany(_INSERT, inserts)
        if updates:
            conn.executemany(_UPDATE, updates)
        if seqs:
            conn.executemany(_SEQ, seqs)
        if prune_keep:
            row = conn.execute("SELECT id FROM events WHERE state = 'delivered' "
                               "ORDER BY id DESC LIMIT 1 OFFSET ?", (prune_keep,)).fetchone()
            if row is not None:
                conn.execute("DELETE FROM events WHERE state = 'delivered' AND id <= ?",
                             (row[0],))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _read_events(conn: sqlite3.Connection, bot_id: str, limit: int,
                 state: str | None) -> list[tuple[Any, ...]]:
    if state is None:
        return conn.execute(f"SELECT {_COLS} FROM events WHERE bot_id = ? ORDER BY id DESC "
                            "LIMIT ?", (bot_id, limit)).fetchall()
    return conn.execute(f"SELECT {_COLS} FROM events WHERE bot_id = ? AND state = ? "
                        "ORDER BY id DESC LIMIT ?", (bot_id, state, limit)).fetchall()
