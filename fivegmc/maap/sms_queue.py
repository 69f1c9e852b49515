"""The durable queue of fallback SMS (issue 5): every SMS the MaaP took over is committed here
before the core is told so, with the SMSC message ids once the SMSC accepts it and each
segment's receipt ``stat``, so a restart resends what the SMSC never accepted and still maps
later delivery receipts (DLRs) back to the chatbot's message.

SQLite (WAL) in its own file next to the MaaP's message states (``maap.data_dir/
fallback.db``). :meth:`SmsQueue.add` commits before it returns; the later changes (SMSC ids,
receipts, outcomes) are committed in batches by :meth:`SmsQueue.run` (DESIGN.md §4). A change
lost in a crash makes the job look one step earlier: an unaccepted job is sent again
(at-least-once), an unfinished one waits for its receipts again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sms_jobs (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_id TEXT NOT NULL, message_id TEXT NOT NULL, number TEXT NOT NULL,
    source TEXT NOT NULL, text TEXT NOT NULL, why TEXT NOT NULL, created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued', outcome TEXT NOT NULL DEFAULT '',
    done_at REAL, UNIQUE (bot_id, message_id, number));
CREATE TABLE IF NOT EXISTS sms_segments (
    smsc_id TEXT PRIMARY KEY, job_id INTEGER NOT NULL, seq INTEGER NOT NULL,
    stat TEXT NOT NULL DEFAULT '');
"""

#: Job states: waiting for the SMSC to accept it, waiting for receipts, finished.
QUEUED, SUBMITTED, DONE = "queued", "submitted", "done"


@dataclass(slots=True)
class SmsJob:
    job_id: int
    bot_id: str
    message_id: str
    number: str
    source: str
    text: str
    why: str
    created_at: float
    state: str = QUEUED
    #: SMSC message ids, one per segment, in order (empty until the SMSC accepted it)
    smsc_ids: tuple[str, ...] = ()
    #: receipt ``stat`` per SMSC id ("" until its receipt came)
    stats: dict[str, str] = field(default_factory=dict)


class SmsQueue:
    def __init__(self, path: str, *, flush_interval_s: float = 0.02) -> None:
        self.path = path
        self.flush_interval_s = flush_interval_s
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._writes: list[tuple[str, tuple[object, ...]]] = []
        self._wake = asyncio.Event()
        self._adds: list[tuple[tuple[object, ...], asyncio.Future[int | None]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def open(self) -> list[SmsJob]:
        """Open (creating) the database; returns the unfinished jobs in submission order."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = self._db = await aiosqlite.connect(self.path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.executescript(_SCHEMA)
        await db.commit()
        jobs: dict[int, SmsJob] = {}
        async with db.execute(
                "SELECT job_id, bot_id, message_id, number, source, text, why, created_at, "
                "state FROM sms_jobs WHERE state != ? ORDER BY job_id", (DONE,)) as cur:
            async for row in cur:
                job = SmsJob(int(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]),
                             str(row[5]), str(row[6]), float(row[7]), str(row[8]))
                jobs[job.job_id] = job
        async with db.execute("SELECT smsc_id, job_id, stat FROM sms_segments "
                              "ORDER BY job_id, seq") as cur:
            async for smsc_id, job_id, stat in cur:
                owner = jobs.get(int(job_id))
                if owner is not None:
                    owner.smsc_ids += (str(smsc_id),)
                    owner.stats[str(smsc_id)] = str(stat)
        for job in jobs.values():
            if job.state == SUBMITTED and not job.smsc_ids:
                job.state = QUEUED  # the ids never made it to disk: send it again
        return list(jobs.values())

    async def add(self, bot_id: str, message_id: str, number: str, source: str, text: str,
                  why: str, created_at: float) -> SmsJob | None:
        """Commit a new job; None when this recipient of this message already has one. Adds
        waiting at the same time share one commit (group commit)."""
        self._require()
        params = (bot_id, message_id, number, source, text, why, created_at)
        fut: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._adds.append((params, fut))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit_adds())
        job_id = await fut
        if job_id is None:
            return None
        return SmsJob(job_id, bot_id, message_id, number, source, text, why, created_at)

    async def _commit_adds(self) -> None:
        db = self._require()
        while self._adds:
            batch, self._adds = self._adds, []
            ids: list[int | None] = []
            try:
                async with self._lock:
                    for params, _ in batch:
                        cur = await db.execute(
                            "INSERT OR IGNORE INTO sms_jobs (bot_id, message_id, number, "
                            "source, text, why, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            params)
                        ids.append(cur.lastrowid if cur.rowcount == 1 else None)
                        await cur.close()
                    await db.commit()
            except Exception as exc:  # each waiting add learns it failed
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), job_id in zip(batch, ids, strict=True):
                if not fut.done():
                    fut.set_result(job_id)

    def submitted(self, job: SmsJob) -> None:
        """The SMSC accepted every segment: ``job.smsc_ids`` are set."""
        self._write("UPDATE sms_jobs SET state = ? WHERE job_id = ?", (SUBMITTED, job.job_id))
        for seq, smsc_id in enumerate(job.smsc_ids):
            self._write("INSERT OR REPLACE INTO sms_segments (smsc_id, job_id, seq, stat) "
                        "VALUES (?, ?, ?, ?)", (smsc_id, job.job_id, seq,
                                                job.stats.get(smsc_id, "")))

    def receipt(self, smsc_id: str, stat: str) -> None:
        self._write("UPDATE sms_segments SET stat = ? WHERE smsc_id = ?", (stat, smsc_id))

    def done(self, job: SmsJob, outcome: str, at: float) -> None:
        self._write("UPDATE sms_jobs SET state = ?, outcome = ?, done_at = ? WHERE job_id = ?",
                    (DONE, outcome, at, job.job_id))

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        self._writes.append((sql, params))
        self._wake.set()

    async def run(self) -> None:
        """Commit the queued changes in batches until cancelled."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_interval_s)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        if self._db is None or not self._writes:
            return
        async with self._lock:
            writes, self._writes = self._writes, []
            for sql, params in writes:
                await self._db.execute(sql, params)
            await self._db.commit()

    async def close(self) -> None:
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)
            self._committer = None
        if self._db is not None:
            await self.flush()
            await self._db.close()
            self._db = None

    def _require(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SmsQueue is not open")
        return self._db
