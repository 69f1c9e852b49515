"""Durable MaaP message state: per (chatbot, message id, recipient) delivery states, the
message ids each chatbot used (idempotent sends, protocols.md §11), the users who wrote to each
chatbot (``newUser``) and the index of their messages (for ``displayed`` IMDNs back to them).
For sends still on the way also what a restart needs: the resend data, the recipients whose
MESSAGE went to the 5GMC (``dispatched``) and those the SMS fallback took over (``to_sms``).

Reads are served from memory; writes go to memory at once and to SQLite (WAL) in batches: a new
message is committed before :meth:`MessageStates.add_message` returns (so an accepted send
survives a restart), later state changes within ``flush_interval_s`` (DESIGN.md §4: batched
commits). ``path`` ":memory:" keeps everything in an in-memory database (tests).

Memory is bounded: at most ``max_cached`` messages are held; beyond that the oldest whose
recipients have all reached a final state are dropped from memory (they stay in SQLite) and
read back on demand — a status query, a late ``displayed`` IMDN, a reused message id — through
a read-only SQLite connection (an indexed lookup; rare). At start only the messages still on
the way and the newest closed ones are loaded.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite

from .model import FailureCode, MessageRecord, RecipientState, Status

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    bot_id TEXT NOT NULL, message_id TEXT NOT NULL, created_at REAL NOT NULL,
    client_correlator TEXT NOT NULL, conversation_id TEXT NOT NULL,
    contribution_id TEXT NOT NULL, PRIMARY KEY (bot_id, message_id));
CREATE TABLE IF NOT EXISTS recipients (
    bot_id TEXT NOT NULL, message_id TEXT NOT NULL, number TEXT NOT NULL,
    status TEXT NOT NULL, failure INTEGER, updated_at REAL NOT NULL,
    PRIMARY KEY (bot_id, message_id, number));
CREATE TABLE IF NOT EXISTS users (
    bot_id TEXT NOT NULL, user TEXT NOT NULL, first_at REAL NOT NULL,
    PRIMARY KEY (bot_id, user));
CREATE TABLE IF NOT EXISTS outbound (
    bot_id TEXT NOT NULL, message_id TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (bot_id, message_id));
CREATE TABLE IF NOT EXISTS dispatched (
    bot_id TEXT NOT NULL, message_id TEXT NOT NULL, number TEXT NOT NULL,
    PRIMARY KEY (bot_id, message_id, number));
CREATE TABLE IF NOT EXISTS sms_taken (
    bot_id TEXT NOT NULL, message_id TEXT NOT NULL, number TEXT NOT NULL,
    PRIMARY KEY (bot_id, message_id, number));
CREATE TABLE IF NOT EXISTS inbound (
    bot_id TEXT NOT NULL, user TEXT NOT NULL, message_id TEXT NOT NULL,
    datetime TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (bot_id, user, message_id));
"""


@dataclass(slots=True)
class _Message:
    created_at: float
    client_correlator: str
    conversation_id: str
    contribution_id: str
    recipients: dict[str, RecipientState] = field(default_factory=dict)
    #: recipients still on the way (ACCEPTED or SENT)
    open: int = 0


#: States in which a recipient is still on the way to the terminal.
OPEN = frozenset({Status.ACCEPTED, Status.SENT})


class MessageStates:
    def __init__(self, path: str, *, flush_interval_s: float = 0.05,
                 max_inbound: int = 1_000_000, max_cached: int = 200_000) -> None:
        self.path = path
        self.flush_interval_s = flush_interval_s
        self.max_inbound = max_inbound
        self.max_cached = max(1, max_cached)
        self._ro: sqlite3.Connection | None = None  # read-back of messages dropped from memory
        self._db: aiosqlite.Connection | None = None
        self._messages: dict[tuple[str, str], _Message] = {}
        self._users: set[tuple[str, str]] = set()
        self._inbound: dict[tuple[str, str, str], str] = {}
        self._dirty: dict[tuple[str, str, str], RecipientState] = {}
        self._new_users: list[tuple[str, str, float]] = []
        self._new_inbound: list[tuple[str, str, str, str, float]] = []
        self._lock = asyncio.Lock()
        self._batch: list[tuple[tuple[object, ...], list[tuple[object, ...]],
                                tuple[object, ...] | None, asyncio.Future[None]]] = []
        #: sends to resume after a restart: (bot, message id) -> the dialect's encoded send
        self._resumable: dict[tuple[str, str], bytes] = {}
        self._forget: list[tuple[str, str]] = []
        #: recipients whose MESSAGE was handed to the 5GMC (written at the next flush; read
        #: back at open for the sends being resumed)
        self._new_dispatched: list[tuple[str, str, str]] = []
        self._dispatched: dict[tuple[str, str], set[str]] = {}
        #: recipients of sends still on the way whose fate is the SMS fallback's (kept until
        #: the send settles, :meth:`forget_outbound`)
        self._sms: dict[tuple[str, str], set[str]] = {}
        self._new_sms: list[tuple[str, str, str]] = []
        self._committer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = self._db = await aiosqlite.connect(self.path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.executescript(_SCHEMA)
        await db.commit()
        # the messages still on the way, and the newest closed ones, oldest first
        open_values = ",".join(f"'{st.value}'" for st in OPEN)
        async with db.execute(
                "SELECT bot_id, message_id, created_at, client_correlator, conversation_id, "
                "contribution_id FROM messages WHERE rowid IN ("
                f"SELECT rowid FROM messages ORDER BY created_at DESC LIMIT {self.max_cached}) "
                "OR (bot_id, message_id) IN (SELECT bot_id, message_id FROM recipients "
                f"WHERE status IN ({open_values})) ORDER BY created_at") as cur:
            async for bot, mid, created, corr, conv, contrib in cur:
                self._messages[(bot, mid)] = _Message(created, corr, conv, contrib)
        async with db.execute("SELECT bot_id, message_id, number, status, failure, updated_at "
                              "FROM recipients") as cur:
            async for bot, mid, number, status, failure, updated in cur:
                msg = self._messages.get((bot, mid))
                if msg is not None:
                    state = RecipientState(number, Status(status),
                                           FailureCode(failure) if failure is not None else None,
                                           updated)
                    msg.recipients[number] = state
                    msg.open += state.status in OPEN
        async with db.execute("SELECT bot_id, message_id, data FROM outbound") as cur:
            async for bot, mid, data in cur:
                msg = self._messages.get((bot, mid))
                if msg is not None and msg.open > 0:
                    self._resumable[(bot, mid)] = bytes(data)
                else:
                    self._forget.append((bot, mid))
        async with db.execute("SELECT bot_id, message_id, number FROM dispatched") as cur:
            async for bot, mid, number in cur:
                if (bot, mid) in self._resumable:
                    self._dispatched.setdefault((bot, mid), set()).add(number)
        async with db.execute("SELECT bot_id, message_id, number FROM sms_taken") as cur:
            async for bot, mid, number in cur:
                if (bot, mid) in self._resumable:
                    self._sms.setdefault((bot, mid), set()).add(number)
        async with db.execute("SELECT bot_id, user FROM users") as cur:
            async for bot, user in cur:
                self._users.add((bot, user))
        async with db.execute("SELECT bot_id, user, message_id, datetime FROM inbound") as cur:
            async for bot, user, mid, dt in cur:
                self._inbound[(bot, user, mid)] = dt
        if self.path != ":memory:":
            self._ro = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                       check_same_thread=False)

    async def run(self) -> None:
        """Flush state changes in batches until cancelled."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_interval_s)
            self._wake.clear()
            await self.flush()

    async def close(self) -> None:
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)
            self._committer = None
        if self._db is not None:
            await self.flush()
            await self._db.close()
            self._db = None
        if self._ro is not None:
            self._ro.close()
            self._ro = None

    # -- A2P messages ----------------------------------------------------------------------
    def has_message(self, bot_id: str, message_id: str) -> bool:
        return self._get(bot_id, message_id) is not None

    def _get(self, bot_id: str, message_id: str) -> _Message | None:
        """A message from memory, or read back from SQLite when it was dropped from memory."""
        msg = self._messages.get((bot_id, message_id))
        if msg is not None or self._ro is None:
            return msg
        row = self._ro.execute(
            "SELECT created_at, client_correlator, conversation_id, contribution_id "
            "FROM messages WHERE bot_id = ? AND message_id = ?", (bot_id, message_id)).fetchone()
        if row is None:
            return None
        msg = _Message(*row)
        for number, status, failure, updated in self._ro.execute(
                "SELECT number, status, failure, updated_at FROM recipients "
                "WHERE bot_id = ? AND message_id = ?", (bot_id, message_id)):
            msg.recipients[number] = RecipientState(
                number, Status(status), FailureCode(failure) if failure is not None else None,
                updated)
            msg.open += Status(status) in OPEN
        for (bot, mid, number), state in self._dirty.items():  # not yet flushed
            if (bot, mid) == (bot_id, message_id):
                msg.recipients[number] = state
        self._messages[(bot_id, message_id)] = msg
        self._trim()
        return msg

    def _trim(self) -> None:
        """Drop the oldest closed messages from memory beyond ``max_cached`` (they are in
        SQLite); messages still on the way always stay."""
        excess = len(self._messages) - self.max_cached
        if excess <= 0 or self._ro is None:
            return
        drop = []
        unflushed = {k[:2] for k in self._dirty}
        for key, msg in self._messages.items():
            if msg.open == 0 and key not in unflushed:
                drop.append(key)
                if len(drop) >= excess:
                    break
        for key in drop:
            del self._messages[key]

    async def add_message(self, bot_id: str, message_id: str, *, created_at: float,
                          client_correlator: str, conversation_id: str, contribution_id: str,
                          recipients: list[RecipientState], outbound: bytes = b"") -> bool:
        """Record a new message with its recipients, committed before returning. False (and
        nothing changed) when the chatbot already used this message id. ``outbound``: what is
        needed to send it again after a restart (kept until :meth:`forget_outbound`)."""
        key = (bot_id, message_id)
        if key in self._messages:
            return False
        if self._get(bot_id, message_id) is not None:
            return False  # used before, and dropped from memory since
        msg = _Message(created_at, client_correlator, conversation_id, contribution_id,
                       {r.number: r for r in recipients},
                       sum(1 for r in recipients if r.status in OPEN))
        self._messages[key] = msg
        if len(self._messages) > self.max_cached + self.max_cached // 10:
            self._trim()  # amortised: every ~10 % over the bound
        if self._db is None:
            return True
        # Group commit: sends arriving while a batch is being written share the next one.
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._batch.append(((bot_id, message_id, created_at, client_correlator,
                             conversation_id, contribution_id),
                            [(bot_id, message_id, r.number, r.status.value,
                              int(r.failure) if r.failure is not None else None, r.updated_at)
                             for r in recipients],
                            (bot_id, message_id, outbound) if outbound else None, fut))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit_loop())
        await asyncio.shield(fut)
        return True

    async def _commit_loop(self) -> None:
        while self._batch and self._db is not None:
            batch, self._batch = self._batch, []
            try:
                async with self._lock:
                    await self._db.executemany(
                        "INSERT OR IGNORE INTO messages VALUES (?,?,?,?,?,?)",
                        [row for row, _, _, _ in batch])
                    await self._db.executemany(
                        "INSERT OR REPLACE INTO recipients VALUES (?,?,?,?,?,?)",
                        [r for _, rows, _, _ in batch for r in rows])
                    await self._db.executemany(
                        "INSERT OR REPLACE INTO outbound VALUES (?,?,?)",
                        [o for _, _, o, _ in batch if o is not None])
                    await self._db.commit()
            except Exception as exc:
                for _, _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for _, _, _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    def recipient(self, bot_id: str, message_id: str, number: str) -> RecipientState | None:
        msg = self._get(bot_id, message_id)
        return None if msg is None else msg.recipients.get(number)

    def set_state(self, bot_id: str, message_id: str, state: RecipientState) -> None:
        """Change a recipient's state (in memory now, on disk within the flush interval)."""
        msg = self._get(bot_id, message_id)
        if msg is None:
            return
        old = msg.recipients.get(state.number)
        msg.open += (state.status in OPEN) - (old is not None and old.status in OPEN)
        msg.recipients[state.number] = state
        self._dirty[(bot_id, message_id, state.number)] = state
        self._wake.set()

    def record(self, bot_id: str, message_id: str) -> MessageRecord | None:
        msg = self._get(bot_id, message_id)
        if msg is None:
            return None
        return MessageRecord(bot_id, message_id, msg.created_at, tuple(msg.recipients.values()),
                             msg.client_correlator, msg.conversation_id, msg.contribution_id)

    def client_correlator(self, bot_id: str, message_id: str) -> str:
        msg = self._get(bot_id, message_id)
        return "" if msg is None else msg.client_correlator

    def open_count(self, bot_id: str, message_id: str) -> int:
        """Recipients of the message still on the way (ACCEPTED or SENT)."""
        msg = self._get(bot_id, message_id)
        return 0 if msg is None else msg.open

    def take_resumable(self) -> list[tuple[str, str, bytes, frozenset[str]]]:
        """Sends found at open with recipients still on the way (ACCEPTED or SENT): bot,
        message id, the data given to :meth:`add_message`, and the recipients marked
        :meth:`dispatched` before the stop. Each is handed out once."""
        out = [(bot, mid, data, frozenset(self._dispatched.get((bot, mid), ())))
               for (bot, mid), data in self._resumable.items()]
        self._resumable.clear()
        self._dispatched.clear()
        return out

    def dispatched(self, bot_id: str, message_id: str, number: str) -> None:
        """The recipient's MESSAGE is about to go to the 5GMC (on disk at the next flush, and
        at close): a resumed send does not send it again."""
        self._new_dispatched.append((bot_id, message_id, number))
        self._wake.set()

    def to_sms(self, bot_id: str, message_id: str, number: str) -> None:
        """The SMS fallback took the recipient over (on disk at the next flush, and at close):
        its fate is the SMS path's, also after a restart (:meth:`on_sms`)."""
        self._sms.setdefault((bot_id, message_id), set()).add(number)
        self._new_sms.append((bot_id, message_id, number))
        self._wake.set()

    def on_sms(self, bot_id: str, message_id: str, number: str) -> bool:
        """The recipient is on the SMS fallback path (:meth:`to_sms`; the send is still on
        the way)."""
        numbers = self._sms.get((bot_id, message_id))
        return numbers is not None and number in numbers

    def forget_outbound(self, bot_id: str, message_id: str) -> None:
        """The send has no recipient on the way any more: drop its resend data and SMS marks
        (on disk within the flush interval)."""
        self._forget.append((bot_id, message_id))
        self._sms.pop((bot_id, message_id), None)
        self._wake.set()

    def message_count(self) -> int:
        return len(self._messages)

    # -- P2A: users and their messages -------------------------------------------------------
    def note_user(self, bot_id: str, user: str, at: float) -> bool:
        """Remember that ``user`` wrote to ``bot_id``; True the first time ever."""
        key = (bot_id, user)
        if key in self._users:
            return False
        self._users.add(key)
        self._new_users.append((bot_id, user, at))
        self._wake.set()
        return True

    def note_inbound(self, bot_id: str, user: str, message_id: str, datetime: str,
                     at: float) -> None:
        if len(self._inbound) >= self.max_inbound:
            self._inbound.pop(next(iter(self._inbound)))  # oldest first; bounded memory
        self._inbound[(bot_id, user, message_id)] = datetime
        self._new_inbound.append((bot_id, user, message_id, datetime, at))
        self._wake.set()

    def inbound_datetime(self, bot_id: str, user: str, message_id: str) -> str | None:
        """The CPIM DateTime of a user's message to the chatbot, None if never received."""
        return self._inbound.get((bot_id, user, message_id))

    # -- persistence -----------------------------------------------------------------------
    async def flush(self) -> None:
        db = self._db
        if db is None or not (self._dirty or self._new_users or self._new_inbound
                              or self._forget or self._new_dispatched or self._new_sms):
            return
        forget, self._forget = self._forget, []
        dispatched, self._new_dispatched = self._new_dispatched, []
        sms, self._new_sms = self._new_sms, []
        dirty, self._dirty = self._dirty, {}
        users, self._new_users = self._new_users, []
        inbound, self._new_inbound = self._new_inbound, []
        async with self._lock:
            if dirty:
                await db.executemany(
                    "UPDATE recipients SET status=?, failure=?, updated_at=? "
                    "WHERE bot_id=? AND message_id=? AND number=?",
                    [(s.status.value, int(s.failure) if s.failure is not None else None,
                      s.updated_at, bot, mid, number)
                     for (bot, mid, number), s in dirty.items()])
            if dispatched:
                await db.executemany("INSERT OR IGNORE INTO dispatched VALUES (?,?,?)",
                                     dispatched)
            if sms:
                await db.executemany("INSERT OR IGNORE INTO sms_taken VALUES (?,?,?)", sms)
            if forget:
                await db.executemany("DELETE FROM outbound WHERE bot_id=? AND message_id=?",
                                     forget)
                await db.executemany("DELETE FROM dispatched WHERE bot_id=? AND message_id=?",
                                     forget)
                await db.executemany("DELETE FROM sms_taken WHERE bot_id=? AND message_id=?",
                                     forget)
            if users:
                await db.executemany("INSERT OR IGNORE INTO users VALUES (?,?,?)", users)
            if inbound:
                await db.executemany("INSERT OR REPLACE INTO inbound VALUES (?,?,?,?,?)",
                                     inbound)
            await db.commit()
