"""Redis backend of the :class:`~fivegmc.store.protocol.Store` (DESIGN.md §8: scale-out).

Several fivegmc processes (or hosts) may share one Redis server through this backend: every
state change is one Lua script, so it is atomic on the server and exact under concurrency,
whichever process runs it.

Data model (every key starts with ``prefix``, default ``fivegmc:``):

``msg:{id}``
    hash, one per message: ``id recipient sender [imdn] received_at expires_at content_type
    body headers state attempts next_attempt_at seq [finished_at reason]``; ``body`` is the raw
    bytes, ``headers`` a JSON list of ``[name, value]`` pairs, floats are ``repr()`` strings.
``rcpt:{recipient}``
    sorted set of the recipient's STORED ids, scored by ``seq`` (:meth:`RedisStore.pending`).
``exp`` / ``due``
    sorted sets of every STORED message, scored by ``expires_at`` / ``next_attempt_at``; the
    member is the 16-digit ``seq`` followed by the id, so equal scores come back in the order
    stored.
``seq``
    counter (INCR) ordering all messages.
``count:{state}``
    number of messages in each state, kept by the scripts (:meth:`RedisStore.count` is O(1),
    ``max_stored`` is checked against ``count:stored`` inside the insert script).
``dedupe:{len(sender)}:{sender}:{imdn_message_id}``
    the id stored for that pair, set in the same script as the insert (the length prefix keeps
    senders containing ``:`` unambiguous).
``bind:{aor}`` / ``aors``
    hash ``contact_key`` → JSON binding per AoR, and the set of AoRs that have bindings.
``trace:{id}``
    list of JSON trace events.

Scripts build keys from the prefix at run time, so this backend targets a single Redis server
(or a primary with replicas), not Redis Cluster.

Durability: :meth:`RedisStore.put_message` returns once Redis has acknowledged the write,
i.e. once it is in the server's memory. Whether it survives a crash of the server is Redis's own
persistence configuration: run Redis with ``appendonly yes`` and ``appendfsync always`` for
"accepted means on disk" (``everysec`` loses up to a second; RDB snapshots only more).

Costs (DESIGN.md §8): concurrent ``put_message`` and ``add_trace`` calls are group-committed:
one task sends every queued call in a single pipeline (one round trip per batch, each call still
waits for its own reply). Reads and state changes are one round trip each (one script).

Errors: connection errors and timeouts (``socket_timeout``, default 5 s) become
:class:`StoreUnavailable`, as do server refusals to write (MISCONF, OOM, READONLY, LOADING).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

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

T = TypeVar("T")

_FULL = "FIVEGMC_FULL"
_UNAVAILABLE_REPLIES = ("MISCONF", "OOM", "READONLY", "LOADING", "NOREPLICAS", "MASTERDOWN")

# -- Lua scripts ------------------------------------------------------------------------------
# ARGV[1] is always the key prefix.

_LIB = """
local P = ARGV[1]
local function member(seq, id)
  return string.format('%016d', tonumber(seq)) .. id
end
local function finish(id, newstate, at, reason)
  local mkey = P .. 'msg:' .. id
  if redis.call('HGET', mkey, 'state') ~= 'stored' then return 0 end
  local h = redis.call('HMGET', mkey, 'seq', 'recipient')
  local m = member(h[1], id)
  redis.call('ZREM', P .. 'rcpt:' .. h[2], id)
  redis.call('ZREM', P .. 'exp', m)
  redis.call('ZREM', P .. 'due', m)
  redis.call('HSET', mkey, 'state', newstate, 'finished_at', at)
  if reason ~= '' then redis.call('HSET', mkey, 'reason', reason) end
  redis.call('DECR', P .. 'count:stored')
  redis.call('INCR', P .. 'count:' .. newstate)
  return 1
end
-- the `limit` members of an index with score <= now that were stored first (lowest seq: the
-- member starts with the zero-padded seq, so string order is seq order)
local function oldest(key, now, limit)
  local ms = redis.call('ZRANGEBYSCORE', key, '-inf', now)
  table.sort(ms)
  local out = {}
  for i = 1, math.min(#ms, tonumber(limit)) do out[i] = ms[i] end
  return out
end
local function fetch_members(members)
  local out = {}
  for i, m in ipairs(members) do
    out[i] = redis.call('HGETALL', P .. 'msg:' .. string.sub(m, 17))
  end
  return out
end
"""

# ARGV: prefix, max_stored (-1: none), id, recipient, sender, imdn, has_imdn (0/1),
#       received_at, expires_at, content_type, body, headers, state, attempts, next_attempt_at
_PUT = (
    _LIB
    + """
local id = ARGV[3]
local mkey = P .. 'msg:' .. id
local dkey = false
if ARGV[7] == '1' then
  dkey = P .. 'dedupe:' .. string.len(ARGV[5]) .. ':' .. ARGV[5] .. ':' .. ARGV[6]
  local existing = redis.call('GET', dkey)
  if existing then return {existing, 1, 0} end
end
if redis.call('EXISTS', mkey) == 1 then return {id, 1, 0} end
local state = ARGV[13]
if state == 'stored' then
  local maxs = tonumber(ARGV[2])
  if maxs >= 0 and tonumber(redis.call('GET', P .. 'count:stored') or '0') >= maxs then
    return redis.error_reply('FIVEGMC_FULL messages stored: limit reached')
  end
end
local seq = redis.call('INCR', P .. 'seq')
redis.call('HSET', mkey, 'id', id, 'recipient', ARGV[4], 'sender', ARGV[5],
  'received_at', ARGV[8], 'expires_at', ARGV[9], 'content_type', ARGV[10], 'body', ARGV[11],
  'headers', ARGV[12], 'state', state, 'attempts', ARGV[14], 'next_attempt_at', ARGV[15],
  'seq', seq)
if dkey then
  redis.call('HSET', mkey, 'imdn', ARGV[6])
  redis.call('SET', dkey, id)
end
redis.call('INCR', P .. 'count:' .. state)
if state == 'stored' then
  local m = member(seq, id)
  redis.call('ZADD', P .. 'rcpt:' .. ARGV[4], seq, id)
  redis.call('ZADD', P .. 'exp', ARGV[9], m)
  redis.call('ZADD', P .. 'due', ARGV[15], m)
end
return {id, 0, seq}
"""
)

# ARGV: prefix, id, new state, at, reason
_FINISH = _LIB + "return finish(ARGV[2], ARGV[3], ARGV[4], ARGV[5])\n"

# ARGV: prefix, id, next_attempt_at
_ATTEMPT = (
    _LIB
    + """
local id = ARGV[2]
local mkey = P .. 'msg:' .. id
if redis.call('HGET', mkey, 'state') ~= 'stored' then return 0 end
redis.call('HINCRBY', mkey, 'attempts', 1)
redis.call('HSET', mkey, 'next_attempt_at', ARGV[3])
redis.call('ZADD', P .. 'due', ARGV[3], member(redis.call('HGET', mkey, 'seq'), id))
return 1
"""
)

# ARGV: prefix, now, limit
_EXPIRE = (
    _LIB
    + """
local members = oldest(P .. 'exp', ARGV[2], ARGV[3])
for _, m in ipairs(members) do finish(string.sub(m, 17), 'expired', ARGV[2], '') end
return fetch_members(members)
"""
)

# ARGV: prefix, now, limit
_DUE = (
    _LIB
    + """
return fetch_members(oldest(P .. 'due', ARGV[2], ARGV[3]))
"""
)

# ARGV: prefix, recipient, limit
_PENDING = (
    _LIB
    + """
local ids = redis.call('ZRANGE', P .. 'rcpt:' .. ARGV[2], 0, tonumber(ARGV[3]) - 1)
local out = {}
for i, id in ipairs(ids) do out[i] = redis.call('HGETALL', P .. 'msg:' .. id) end
return out
"""
)


# -- encoding ---------------------------------------------------------------------------------


def _f(x: float) -> str:
    return repr(float(x))


def _s(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _hash(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def _decode_message(h: dict[bytes, bytes]) -> StoredMessage:
    imdn = h.get(b"imdn")
    return StoredMessage(
        id=_s(h[b"id"]),
        recipient=_s(h[b"recipient"]),
        sender=_s(h[b"sender"]),
        imdn_message_id=None if imdn is None else _s(imdn),
        received_at=float(h[b"received_at"]),
        expires_at=float(h[b"expires_at"]),
        content_type=_s(h[b"content_type"]),
        body=h[b"body"],
        headers=tuple((str(k), str(v)) for k, v in json.loads(h[b"headers"])),
        state=MessageState(_s(h[b"state"])),
        attempts=int(h[b"attempts"]),
        next_attempt_at=float(h[b"next_attempt_at"]),
        seq=int(h[b"seq"]),
    )


def _decode_messages(rows: Any) -> list[StoredMessage]:
    return [_decode_message(_hash(row)) for row in rows if row]


def _encode_binding(b: StoredBinding) -> str:
    return json.dumps(list(binding_values(b)))


def _decode_binding(raw: bytes) -> StoredBinding:
    aor, contact, key, expires_at, call_id, cseq, transport, host, port, q, reg = json.loads(raw)
    return StoredBinding(
        aor=aor,
        contact=contact,
        contact_key=key,
        expires_at=float(expires_at),
        call_id=call_id,
        cseq=int(cseq),
        transport=transport,
        host=host,
        port=int(port),
        q=float(q),
        registered_at=float(reg),
    )


def _map_error(exc: BaseException) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError)):
        return StoreUnavailable(f"redis unavailable: {exc}")
    if isinstance(exc, ResponseError):
        text = str(exc)
        if text.startswith(_FULL):
            return StoreFull(text.removeprefix(_FULL).strip())
        if text.startswith(_UNAVAILABLE_REPLIES):
            return StoreUnavailable(f"redis refused the write: {text}")
    return StoreError(f"redis error: {exc}")


_Op = Callable[[Pipeline], None]


class RedisStore:
    """:class:`~fivegmc.store.protocol.Store` on a Redis server (see the module docstring).

    ``url`` is a redis-py URL (``redis://127.0.0.1:6379/0``); ``max_stored`` bounds the
    messages in state STORED (:class:`StoreFull` beyond); ``prefix`` namespaces every key, so
    several independent networks can share one server; ``timeout`` bounds connecting and each
    reply (seconds); ``batch_max`` bounds the calls sent in one group-commit pipeline.
    """

    def __init__(
        self,
        url: str,
        *,
        max_stored: int | None = None,
        prefix: str = "fivegmc:",
        timeout: float = 5.0,
        batch_max: int = 512,
    ) -> None:
        self._url = url
        self._max_stored = -1 if max_stored is None else max_stored
        self._prefix = prefix
        self._timeout = timeout
        self._batch_max = batch_max
        self._redis: aioredis.Redis | None = None
        self._queue: asyncio.Queue[tuple[_Op, asyncio.Future[Any]] | None] = asyncio.Queue()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self._sha: dict[str, str] = {}
        self._node_id = os.urandom(6).hex()  # tells our own pub/sub messages apart

    # -- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        self._redis = aioredis.Redis.from_url(
            self._url,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            decode_responses=False,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        )
        try:
            await self._load_scripts()
        except BaseException:
            await self._redis.aclose()
            self._redis = None
            raise
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            self._queue.put_nowait(None)  # everything queued before it is still sent
            try:
                await self._flusher
            finally:
                self._flusher = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _load_scripts(self) -> None:
        r = self._client
        scripts = {
            "put": _PUT,
            "finish": _FINISH,
            "attempt": _ATTEMPT,
            "expire": _EXPIRE,
            "due": _DUE,
            "pending": _PENDING,
        }
        try:
            pipe = r.pipeline(transaction=False)
            for text in scripts.values():
                pipe.script_load(text)
            shas = await pipe.execute()
        except RedisError as exc:
            raise _map_error(exc) from exc
        self._sha = {
            name: _s(sha) if isinstance(sha, bytes) else str(sha)
            for name, sha in zip(scripts, shas, strict=True)
        }

    @property
    def _client(self) -> aioredis.Redis:
        if self._redis is None or self._closed:
            raise StoreUnavailable("redis store is not open")
        return self._redis

    async def _run(self, aw: Awaitable[T]) -> T:
        try:
            return await aw
        except RedisError as exc:
            raise _map_error(exc) from exc
        except OSError as exc:
            raise _map_error(exc) from exc

    async def _script(self, name: str, *args: Any) -> Any:
        """EVALSHA one script (args after the prefix); reload the scripts once on NOSCRIPT."""
        r = self._client
        try:
            return await self._run(r.evalsha(self._sha[name], 0, self._prefix, *args))
        except StoreError as exc:
            if not isinstance(exc.__cause__, NoScriptError):
                raise
        await self._load_scripts()
        return await self._run(r.evalsha(self._sha[name], 0, self._prefix, *args))

    # -- group commit ---------------------------------------------------------------------
    async def _submit(self, op: _Op) -> Any:
        """Queue one pipelined command for the flusher and wait for its own reply."""
        if self._closed or self._flusher is None:
            raise StoreUnavailable("redis store is not open")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, fut))
        return await fut

    async def _flush_loop(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self._batch_max and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            await self._flush(batch)
            if stop:
                return

    async def _flush(self, batch: list[tuple[_Op, asyncio.Future[Any]]]) -> None:
        try:
            results = await self._pipeline(batch)
            retry = [i for i, res in enumerate(results) if isinstance(res, NoScriptError)]
            if retry:  # the server lost its scripts (restart, SCRIPT FLUSH): nothing ran
                await self._load_scripts()
                again = await self._pipeline([batch[i] for i in retry])
                for i, res in zip(retry, again, strict=True):
                    results[i] = res
        except Exception as exc:
            err = _map_error(exc)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(err)
            return
        for (_, fut), res in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(res, Exception):
                fut.set_exception(_map_error(res))
            else:
                fut.set_result(res)

    async def _pipeline(self, batch: list[tuple[_Op, asyncio.Future[Any]]]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for op, _ in batch:
            op(pipe)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    # -- store-and-forward ----------------------------------------------------------------
    async def put_message(self, msg: StoredMessage) -> PutResult:
        args = (
            self._prefix,
            self._max_stored,
            msg.id,
            msg.recipient,
            msg.sender,
            msg.imdn_message_id or "",
            "0" if msg.imdn_message_id is None else "1",
            _f(msg.received_at),
            _f(msg.expires_at),
            msg.content_type,
            msg.body,
            json.dumps([list(h) for h in msg.headers]),
            msg.state.value,
            msg.attempts,
            _f(msg.next_attempt_at),
        )
        sha = self._sha["put"]

        def op(pipe: Pipeline) -> None:
            pipe.evalsha(sha, 0, *args)

        reply = await self._submit(op)
        return PutResult(id=_s(reply[0]), duplicate=bool(int(reply[1])))

    async def get_message(self, msg_id: str) -> StoredMessage | None:
        raw: dict[Any, Any] = await self._run(self._client.hgetall(f"{self._prefix}msg:{msg_id}"))
        return _decode_message(raw) if raw else None

    async def pending(self, recipient: str, limit: int = 100) -> list[StoredMessage]:
        if limit <= 0:
            return []
        return _decode_messages(await self._script("pending", recipient, limit))

    async def due(self, now: float, limit: int = 1000) -> list[StoredMessage]:
        if limit <= 0:
            return []
        return _decode_messages(await self._script("due", _f(now), limit))

    async def mark_attempt(self, msg_id: str, next_attempt_at: float) -> bool:
        return bool(await self._script("attempt", msg_id, _f(next_attempt_at)))

    async def mark_delivered(self, msg_id: str, at: float) -> bool:
        return bool(await self._script("finish", msg_id, MessageState.DELIVERED.value, _f(at), ""))

    async def mark_failed(self, msg_id: str, at: float, reason: str) -> bool:
        return bool(await self._script("finish", msg_id, MessageState.FAILED.value, _f(at), reason))

    async def expire(self, now: float, limit: int = 1000) -> list[StoredMessage]:
        if limit <= 0:
            return []
        return _decode_messages(await self._script("expire", _f(now), limit))

    async def count(self, state: MessageState = MessageState.STORED) -> int:
        raw = await self._run(self._client.get(f"{self._prefix}count:{state.value}"))
        return int(raw) if raw else 0

    # -- registrations --------------------------------------------------------------------
    async def save_bindings(self, aor: str, bindings: Sequence[StoredBinding]) -> None:
        key = f"{self._prefix}bind:{aor}"
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(key)
        if bindings:
            pipe.hset(key, mapping={b.contact_key: _encode_binding(b) for b in bindings})
            pipe.sadd(f"{self._prefix}aors", aor)
        else:
            pipe.srem(f"{self._prefix}aors", aor)
        # DESIGN.md §8: the other processes keep a local copy; tell them this AoR changed.
        pipe.publish(f"{self._prefix}bindings", f"{self._node_id} {aor}")
        await self._run(pipe.execute())

    async def watch_bindings(
        self, on_change: Callable[[str, list[StoredBinding]], None]
    ) -> None:
        """Follow other processes' binding changes (pub/sub), re-reading each changed AoR.
        Reconnects after a lost connection; changes made while disconnected are caught up by
        re-reading every AoR once the subscription is back."""
        channel = f"{self._prefix}bindings"
        backoff = 0.1
        resync = False
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                backoff = 0.1
                if resync:
                    await self._resync(on_change)
                resync = True
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is None:
                        continue
                    node, _, aor = _s(msg["data"]).partition(" ")
                    if node == self._node_id or not aor:
                        continue
                    rows = await self._run(self._client.hvals(f"{self._prefix}bind:{aor}"))
                    on_change(aor, [_decode_binding(cast(bytes, raw)) for raw in rows])
            except (RedisError, OSError, StoreError):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _resync(self, on_change: Callable[[str, list[StoredBinding]], None]) -> None:
        by_aor: dict[str, list[StoredBinding]] = {}
        for b in await self.load_bindings(0.0):
            by_aor.setdefault(b.aor, []).append(b)
        for aor, bindings in by_aor.items():
            on_change(aor, bindings)

    async def iter_bindings(
        self, now: float, page: int = 10000
    ) -> AsyncIterator[list[StoredBinding]]:
        r = self._client
        cursor: int = 0
        while True:  # SSCAN pages of AoRs, then their bindings in one pipeline
            cursor, aors = await self._run(r.sscan(f"{self._prefix}aors", cursor, count=page))
            if aors:
                pipe = r.pipeline(transaction=False)
                for aor in aors:
                    pipe.hvals(self._prefix.encode() + b"bind:" + cast(bytes, aor))
                rows: list[list[bytes]] = await self._run(pipe.execute())
                out = [_decode_binding(raw) for row in rows for raw in row]
                yield [b for b in out if b.expires_at > now]
            if cursor == 0:
                return

    async def load_bindings(self, now: float) -> list[StoredBinding]:
        r = self._client
        aors: set[Any] = await self._run(r.smembers(f"{self._prefix}aors"))
        if not aors:
            return []
        pipe = r.pipeline(transaction=False)
        for aor in sorted(aors):
            pipe.hvals(self._prefix.encode() + b"bind:" + aor)
        rows: list[list[bytes]] = await self._run(pipe.execute())
        out = [_decode_binding(raw) for row in rows for raw in row]
        return [b for b in out if b.expires_at > now]

    # -- traces ---------------------------------------------------------------------------
    async def add_trace(self, msg_id: str, event: TraceEvent) -> None:
        key = f"{self._prefix}trace:{msg_id}"
        raw = json.dumps([event.at, event.event, event.detail, [list(a) for a in event.attrs]])

        def op(pipe: Pipeline) -> None:
            pipe.rpush(key, raw)

        await self._submit(op)

    async def trace(self, msg_id: str) -> list[TraceEvent]:
        rows: list[Any] = await self._run(
            self._client.lrange(f"{self._prefix}trace:{msg_id}", 0, -1)
        )
        out = []
        for raw in rows:
            at, event, detail, attrs = json.loads(raw)
            out.append(
                TraceEvent(
                    at=float(at),
                    event=event,
                    detail=detail,
                    attrs=tuple((str(k), str(v)) for k, v in attrs),
                )
            )
        return out
