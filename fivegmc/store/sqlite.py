"""SQLite store (aiosqlite, WAL): the embedded, durable default backend.

Writes go through **group commit**: every write is queued, a single writer task takes what has
arrived within ``batch_window_s`` (or ``max_batch`` items, whichever comes first) and runs it in
one ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction; each caller awaits its own future, which is
resolved only after the COMMIT. Operations in one batch were all in flight together, so any order
among them is a valid serialization: puts are applied first (in arrival order, with one
duplicate lookup and one ``executemany`` per batch), then the other writes in arrival order.

Reads use a second connection, so they only ever see committed data (WAL lets them run while
the writer holds its transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import aiosqlite

from .protocol import (
    MessageState,
    PutResult,
    StoredBinding,
    StoredMessage,
    StoreError,
    StoreFull,
    StoreUnavailable,
    TraceEvent,
    binding_values,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    recipient TEXT NOT NULL,
    sender TEXT NOT NULL,
    imdn_message_id TEXT,
    received_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at REAL NOT NULL,
    finished_at REAL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS messages_recipient ON messages (recipient, state, seq);
CREATE UNIQUE INDEX IF NOT EXISTS messages_imdn ON messages (sender, imdn_message_id)
    WHERE imdn_message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_expiry ON messages (state, expires_at);
CREATE INDEX IF NOT EXISTS messages_due ON messages (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS bindings (
    aor TEXT NOT NULL,
    pos INTEGER NOT NULL,
    contact TEXT NOT NULL,
    contact_key TEXT NOT NULL,
    expires_at REAL NOT NULL,
    call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL,
    transport TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    q REAL NOT NULL,
    registered_at REAL NOT NULL,
    PRIMARY KEY (aor, pos)
);
CREATE INDEX IF NOT EXISTS bindings_expiry ON bindings (expires_at);
CREATE TABLE IF NOT EXISTS traces (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL,
    attrs TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_msg ON traces (msg_id, n);
"""

_MSG_COLS = (
    "seq, id, recipient, sender, imdn_message_id, received_at, expires_at, content_type, "
    "body, headers, state, attempts, next_attempt_at"
)
_INSERT_MSG = (
    "INSERT INTO messages (id, recipient, sender, imdn_message_id, received_at, expires_at, "
    "content_type, body, headers, state, attempts, next_attempt_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_BINDING_COLS = (
    "aor, contact, contact_key, expires_at, call_id, cseq, transport, host, port, q, registered_at"
)
_CHUNK = 400  # keys per lookup query (well under SQLite's bound-parameter limit)
_STORED = MessageState.STORED.value

_Kind = Literal["put", "attempt", "finish", "expire", "bindings", "trace"]


@dataclass(slots=True)
class _Op:
    kind: _Kind
    fut: asyncio.Future[Any]
    msg: StoredMessage | None = None
    msg_id: str = ""
    at: float = 0.0
    state: MessageState = MessageState.STORED
    reason: str = ""
    limit: int = 0
    aor: str = ""
    bindings: tuple[StoredBinding, ...] = ()
    event: TraceEvent | None = None


def _row_to_message(row: Iterable[Any]) -> StoredMessage:
    (
        seq,
        msg_id,
        recipient,
        sender,
        imdn,
        received_at,
        expires_at,
        content_type,
        body,
        headers,
        state,
        attempts,
        next_attempt_at,
    ) = row
    return StoredMessage(
        id=msg_id,
        recipient=recipient,
        sender=sender,
        imdn_message_id=imdn,
        received_at=received_at,
        expires_at=expires_at,
        content_type=content_type,
        body=bytes(body),
        headers=tuple((str(k), str(v)) for k, v in json.loads(headers)),
        state=MessageState(state),
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        seq=seq,
    )


class SqliteStore:
    """The :class:`~fivegmc.store.protocol.Store` protocol on one SQLite file.

    ``commits`` counts the write transactions committed (group commit makes it much smaller
    than the number of writes under concurrency).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch_window_s: float = 0.002,
        max_batch: int = 512,
        max_stored: int | None = None,
        busy_timeout_ms: int = 5000,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._path = str(path)
        self._window = batch_window_s
        self._max_batch = max_batch
        self._max_stored = max_stored
        self._busy_timeout_ms = busy_timeout_ms
        self._wconn: aiosqlite.Connection | None = None
        self._rconn: aiosqlite.Connection | None = None
        self._writer: asyncio.Task[None] | None = None
        self._pending: list[_Op] = []
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._stored = 0  # STORED messages, for max_stored (kept by this process)
        self.commits = 0

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        if self._wconn is not None:
            raise RuntimeError("SqliteStore.open() called twice")
        try:
            # Fail here, in a plain thread, if the file cannot be opened at all: a failed
            # aiosqlite.connect() leaves its worker thread to finish after the caller moves on.
            await asyncio.to_thread(_probe, self._path)
            wconn = await aiosqlite.connect(self._path, isolation_level=None)
            try:
                await wconn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
                await wconn.execute("PRAGMA journal_mode = WAL")
                await wconn.execute("PRAGMA synchronous = NORMAL")
                await wconn.executescript(_SCHEMA)
                async with wconn.execute(
                    "SELECT COUNT(*) FROM messages WHERE state = ?", (_STORED,)
                ) as cur:
                    row = await cur.fetchone()
                rconn = await aiosqlite.connect(self._path, isolation_level=None)
                await rconn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            except BaseException:
                await wconn.close()
                raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self._path}: {exc}") from exc
        self._stored = int(row[0]) if row is not None else 0
        self._wconn, self._rconn = wconn, rconn
        self._closing = False
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._writer = asyncio.create_task(self._write_loop(), name=f"sqlite-writer:{self._path}")

    async def close(self) -> None:
        """Flush the queued writes (committing them), stop the writer, close the file."""
        if self._closing or self._wconn is None:
            return
        self._closing = True
        self._wake.set()
        self._full.set()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
            self._writer = None
        self._fail_pending(StoreUnavailable("store closed"))
        for conn in (self._rconn, self._wconn):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await conn.close()
        self._rconn = None
        self._wconn = None

    # -- the writer ----------------------------------------------------------------------------
    def _submit(self, op: _Op) -> asyncio.Future[Any]:
        if self._closing or self._wconn is None or self._writer is None or self._writer.done():
            raise StoreUnavailable("store is closed")
        self._pending.append(op)
        self._wake.set()
        if len(self._pending) >= self._max_batch:
            self._full.set()
        return op.fut

    def _new_op(self, kind: _Kind, **kw: Any) -> _Op:
        return _Op(kind, asyncio.get_running_loop().create_future(), **kw)

    def _fail_pending(self, exc: StoreError) -> None:
        pending, self._pending = self._pending, []
        for op in pending:
            if not op.fut.done():
                op.fut.set_exception(exc)

    async def _write_loop(self) -> None:
        try:
            while True:
                if not self._pending:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if len(self._pending) < self._max_batch and not self._closing:
                    self._full.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._window):
                            await self._full.wait()
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._run_batch(batch)
        finally:
            self._fail_pending(StoreUnavailable("store writer stopped"))

    async def _run_batch(self, batch: list[_Op]) -> None:
        conn = self._wconn
        assert conn is not None
        results: list[tuple[_Op, object]] = []
        delta = 0
        try:
            await conn.execute("BEGIN IMMEDIATE")
            puts = [op for op in batch if op.kind == "put"]
            if puts:
                delta += await self._apply_puts(conn, puts, results)
            traces = [op for op in batch if op.kind == "trace"]
            if traces:
                await conn.executemany(
                    "INSERT INTO traces (msg_id, at, event, detail, attrs) VALUES (?, ?, ?, ?, ?)",
                    [_trace_row(op) for op in traces],
                )
                results.extend((op, None) for op in traces)
            for op in batch:
                if op.kind in ("put", "trace"):
                    continue
                res, d = await self._apply_one(conn, op)
                delta += d
                results.append((op, res))
            await conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await conn.execute("ROLLBACK")
            err = StoreUnavailable(f"sqlite write failed: {exc}")
            for op in batch:
                if not op.fut.done():
                    op.fut.set_exception(err)
            return
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            for op in batch:
                if not op.fut.done():
                    op.fut.set_exception(StoreUnavailable("store writer stopped"))
            raise
        self.commits += 1
        self._stored += delta
        for op, res in results:
            if op.fut.done():
                continue
            if isinstance(res, BaseException):
                op.fut.set_exception(res)
            else:
                op.fut.set_result(res)

    async def _apply_puts(
        self, conn: aiosqlite.Connection, puts: list[_Op], results: list[tuple[_Op, object]]
    ) -> int:
        """Insert the batch's new messages; returns how many were stored."""
        # 1. duplicates inside the batch: the first put of a key decides for the others.
        first_of: dict[tuple[str, str], _Op] = {}
        followers: list[tuple[_Op, _Op]] = []
        leaders: list[_Op] = []
        for op in puts:
            m = op.msg
            assert m is not None
            if m.imdn_message_id is not None:
                key = (m.sender, m.imdn_message_id)
                first = first_of.get(key)
                if first is not None:
                    followers.append((op, first))
                    continue
                first_of[key] = op
            leaders.append(op)
        # 2. keys and ids already in the file (inside BEGIN IMMEDIATE: nobody else writes).
        existing = await _existing_keys(conn, list(first_of))
        taken_ids = await _existing_ids(conn, [op.msg.id for op in leaders if op.msg])
        # 3. decide each leader, insert the new ones in arrival order (seq follows it).
        outcome: dict[int, object] = {}
        rows: list[tuple[Any, ...]] = []
        for op in leaders:
            m = op.msg
            assert m is not None
            k = (m.sender, m.imdn_message_id) if m.imdn_message_id is not None else None
            res: object
            if k is not None and k in existing:
                res = PutResult(existing[k], True)
            elif m.id in taken_ids:
                res = ValueError(f"message id {m.id!r} already stored")
            elif self._max_stored is not None and self._stored + len(rows) >= self._max_stored:
                res = StoreFull(f"{self._max_stored} messages stored (max_stored)")
            else:
                taken_ids.add(m.id)
                rows.append(_message_row(m))
                res = PutResult(m.id, False)
            outcome[id(op)] = res
            results.append((op, res))
        for op, first in followers:
            res = outcome[id(first)]
            if isinstance(res, PutResult):
                res = PutResult(res.id, True)
            results.append((op, res))
        if rows:
            await conn.executemany(_INSERT_MSG, rows)
        return len(rows)

    async def _apply_one(self, conn: aiosqlite.Connection, op: _Op) -> tuple[object, int]:
        if op.kind == "attempt":
            async with conn.execute(
                "UPDATE messages SET attempts = attempts + 1, next_attempt_at = ? "
                "WHERE id = ? AND state = ?",
                (op.at, op.msg_id, _STORED),
            ) as cur:
                return cur.rowcount > 0, 0
        if op.kind == "finish":
            async with conn.execute(
                "UPDATE messages SET state = ?, finished_at = ?, reason = ? "
                "WHERE id = ? AND state = ?",
                (op.state.value, op.at, op.reason, op.msg_id, _STORED),
            ) as cur:
                changed = cur.rowcount > 0
            return changed, -1 if changed else 0
        if op.kind == "expire":
            async with conn.execute(
                f"UPDATE messages SET state = ?, finished_at = ? WHERE seq IN ("
                f"SELECT seq FROM messages WHERE state = ? AND expires_at <= ? "
                f"ORDER BY seq LIMIT ?) RETURNING {_MSG_COLS}",
                (MessageState.EXPIRED.value, op.at, _STORED, op.at, op.limit),
            ) as cur:
                rows = await cur.fetchall()
            expired = sorted((_row_to_message(r) for r in rows), key=lambda m: m.seq)
            return expired, -len(expired)
        if op.kind == "bindings":
            await conn.execute("DELETE FROM bindings WHERE aor = ?", (op.aor,))
            if op.bindings:
                await conn.executemany(
                    "INSERT INTO bindings (pos, aor, contact, contact_key, expires_at, call_id, "
                    "cseq, transport, host, port, q, registered_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(i, *_binding_row(b)) for i, b in enumerate(op.bindings)],
                )
            return None, 0
        raise AssertionError(f"unknown op {op.kind}")

    # -- reads ---------------------------------------------------------------------------------
    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        conn = self._rconn
        if conn is None or self._closing:
            raise StoreUnavailable("store is closed")
        try:
            async with conn.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except (sqlite3.Error, ValueError) as exc:
            raise StoreUnavailable(f"sqlite read failed: {exc}") from exc

    # -- store-and-forward ---------------------------------------------------------------------
    async def put_message(self, msg: StoredMessage) -> PutResult:
        return cast(PutResult, await self._submit(self._new_op("put", msg=msg)))

    async def get_message(self, msg_id: str) -> StoredMessage | None:
        rows = await self._fetch(f"SELECT {_MSG_COLS} FROM messages WHERE id = ?", (msg_id,))
        return _row_to_message(rows[0]) if rows else None

    async def pending(self, recipient: str, limit: int = 100) -> list[StoredMessage]:
        rows = await self._fetch(
            f"SELECT {_MSG_COLS} FROM messages WHERE recipient = ? AND state = ? "
            "ORDER BY seq LIMIT ?",
            (recipient, _STORED, limit),
        )
        return [_row_to_message(r) for r in rows]

    async def due(self, now: float, limit: int = 1000) -> list[StoredMessage]:
        rows = await self._fetch(
            f"SELECT {_MSG_COLS} FROM messages WHERE state = ? AND next_attempt_at <= ? "
            "ORDER BY seq LIMIT ?",
            (_STORED, now, limit),
        )
        return [_row_to_message(r) for r in rows]

    async def mark_attempt(self, msg_id: str, next_attempt_at: float) -> bool:
        op = self._new_op("attempt", msg_id=msg_id, at=next_attempt_at)
        return cast(bool, await self._submit(op))

    async def mark_delivered(self, msg_id: str, at: float) -> bool:
        op = self._new_op("finish", msg_id=msg_id, at=at, state=MessageState.DELIVERED)
        return cast(bool, await self._submit(op))

    async def mark_failed(self, msg_id: str, at: float, reason: str) -> bool:
        op = self._new_op("finish", msg_id=msg_id, at=at, state=MessageState.FAILED, reason=reason)
        return cast(bool, await self._submit(op))

    async def expire(self, now: float, limit: int = 1000) -> list[StoredMessage]:
        op = self._new_op("expire", at=now, limit=limit)
        return cast(list[StoredMessage], await self._submit(op))

    async def count(self, state: MessageState = MessageState.STORED) -> int:
        rows = await self._fetch("SELECT COUNT(*) FROM messages WHERE state = ?", (state.value,))
        return int(rows[0][0])

    # -- registrations -------------------------------------------------------------------------
    async def save_bindings(self, aor: str, bindings: Sequence[StoredBinding]) -> None:
        await self._submit(self._new_op("bindings", aor=aor, bindings=tuple(bindings)))

    async def watch_bindings(
        self, on_change: Callable[[str, list[StoredBinding]], None]
    ) -> None:
        """One process owns this store: nobody else changes bindings. Wait until cancelled."""
        await asyncio.Event().wait()

    async def iter_bindings(
        self, now: float, page: int = 10000
    ) -> AsyncIterator[list[StoredBinding]]:
        after: tuple[str, int] = ("", -1)
        while True:  # keyset pagination on the primary key (aor, pos)
            rows = await self._fetch(
                f"SELECT {_BINDING_COLS}, pos FROM bindings WHERE expires_at > ? "
                "AND (aor, pos) > (?, ?) ORDER BY aor, pos LIMIT ?",
                (now, after[0], after[1], page),
            )
            if not rows:
                return
            after = (rows[-1][0], rows[-1][-1])
            yield _bindings_of(rows)
            if len(rows) < page:
                return

    async def load_bindings(self, now: float) -> list[StoredBinding]:
        rows = await self._fetch(
            f"SELECT {_BINDING_COLS} FROM bindings WHERE expires_at > ? ORDER BY aor, pos",
            (now,),
        )
        return _bindings_of(rows)

    # -- traces --------------------------------------------------------------------------------
    async def add_trace(self, msg_id: str, event: TraceEvent) -> None:
        await self._submit(self._new_op("trace", msg_id=msg_id, event=event))

    async def trace(self, msg_id: str) -> list[TraceEvent]:
        rows = await self._fetch(
            "SELECT at, event, detail, attrs FROM traces WHERE msg_id = ? ORDER BY n", (msg_id,)
        )
        return [
            TraceEvent(
                at=r[0],
                event=r[1],
                detail=r[2],
                attrs=tuple((str(k), str(v)) for k, v in json.loads(r[3])),
            )
            for r in rows
        ]


def _probe(path: str) -> None:
    sqlite3.connect(path).close()


def _message_row(m: StoredMessage) -> tuple[Any, ...]:
    return (
        m.id,
        m.recipient,
        m.sender,
        m.imdn_message_id,
        m.received_at,
        m.expires_at,
        m.content_type,
        bytes(m.body),
        json.dumps([list(h) for h in m.headers]),
        _STORED,
        m.attempts,
        m.next_attempt_at,
    )


def _binding_row(b: StoredBinding) -> tuple[Any, ...]:
    return binding_values(b)


def _trace_row(op: _Op) -> tuple[Any, ...]:
    ev = op.event
    assert ev is not None
    return (op.msg_id, ev.at, ev.event, ev.detail, json.dumps([list(a) for a in ev.attrs]))


async def _existing_keys(
    conn: aiosqlite.Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        values = ", ".join(["(?, ?)"] * len(chunk))
        params = [p for key in chunk for p in key]
        async with conn.execute(
            "SELECT m.sender, m.imdn_message_id, m.id "
            f"FROM (VALUES {values}) AS k JOIN messages AS m "
            "ON m.sender = k.column1 AND m.imdn_message_id = k.column2 "
            "WHERE m.imdn_message_id IS NOT NULL",
            params,
        ) as cur:
            for sender, imdn, msg_id in await cur.fetchall():
                found[(sender, imdn)] = msg_id
    return found


async def _existing_ids(conn: aiosqlite.Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        marks = ", ".join(["?"] * len(chunk))
        async with conn.execute(f"SELECT id FROM messages WHERE id IN ({marks})", chunk) as cur:
            found.update(r[0] for r in await cur.fetchall())
    return found


def _bindings_of(rows: Sequence[Any]) -> list[StoredBinding]:
    return [
        StoredBinding(
            aor=r[0], contact=r[1], contact_key=r[2], expires_at=r[3], call_id=r[4],
            cseq=r[5], transport=r[6], host=r[7], port=r[8], q=r[9], registered_at=r[10],
        )
        for r in rows
    ]
