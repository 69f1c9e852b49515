"""What only the Redis backend has to show: several processes on one server (two RedisStore
instances, each with its own connections, stand for two processes), a server that dies, and a
server that restarts with its append-only file. Always a real ``redis-server``."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

from fivegmc.store.protocol import (
    MessageState,
    StoredBinding,
    StoredMessage,
    StoreFull,
    StoreUnavailable,
    TraceEvent,
)
from fivegmc.store.redis import RedisStore

from .builders import NOW
from .builders import msg as make_msg
from .redis_server import redis_available, redis_server, redis_server_process

pytestmark = pytest.mark.skipif(
    not redis_available(), reason="redis-server is not on PATH (Debian package redis-server)"
)

def msg(n: int, **kw: Any) -> StoredMessage:
    """The contract suite's message, numbered, with a binary body (bytes must round-trip)."""
    return make_msg(msg_id=f"m{n}", body=b"\x00\xffbody " + str(n).encode(), **kw)


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with redis_server() as u:
        yield u


@pytest.fixture
async def pair(url: str) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    a, b = RedisStore(url, timeout=2.0), RedisStore(url, timeout=2.0)
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_round_trip_keeps_bytes_headers_and_order(
    pair: tuple[RedisStore, RedisStore],
) -> None:
    a, b = pair
    m = msg(1, imdn="i1")
    assert (await a.put_message(m)).duplicate is False
    got = await b.get_message("m1")
    assert got is not None
    assert got.body == m.body and got.headers == m.headers and got.imdn_message_id == "i1"
    assert got.seq > 0 and got.state is MessageState.STORED
    assert await b.get_message("nope") is None
    await a.add_trace("m1", TraceEvent(at=NOW, event="received", attrs=(("k", "v"),)))
    await b.add_trace("m1", TraceEvent(at=NOW + 1, event="stored", detail="x"))
    assert [e.event for e in await a.trace("m1")] == ["received", "stored"]
    assert (await a.trace("m1"))[0].attrs == (("k", "v"),)


async def test_concurrent_duplicates_across_instances_store_exactly_one(
    pair: tuple[RedisStore, RedisStore],
) -> None:
    a, b = pair
    puts = [
        (a if i % 2 else b).put_message(
            dataclasses.replace(msg(100 + i, imdn="same-imdn"), id=f"dup{i}")
        )
        for i in range(40)
    ]
    results = await asyncio.gather(*puts)
    fresh = [r for r in results if not r.duplicate]
    assert len(fresh) == 1
    assert {r.id for r in results} == {fresh[0].id}
    assert await a.count() == 1
    # the same imdn id from another sender is a different message
    other = await b.put_message(msg(999, imdn="same-imdn", sender="+8613900000002"))
    assert other.duplicate is False
    assert await a.count() == 2


async def test_deliver_vs_expire_race_across_instances(
    pair: tuple[RedisStore, RedisStore],
) -> None:
    a, b = pair
    n = 30
    for i in range(n):
        await a.put_message(msg(i, expires_at=NOW + 10))
    delivers = asyncio.gather(*[a.mark_delivered(f"m{i}", NOW + 11) for i in range(n)])
    expired, won = await asyncio.gather(b.expire(NOW + 11, limit=n), delivers)
    expired_ids = {m.id for m in expired}
    delivered_ids = {f"m{i}" for i, ok in enumerate(won) if ok}
    assert expired_ids.isdisjoint(delivered_ids)
    assert expired_ids | delivered_ids == {f"m{i}" for i in range(n)}
    assert all(m.state is MessageState.EXPIRED for m in expired)
    assert await a.count(MessageState.EXPIRED) == len(expired_ids)
    assert await b.count(MessageState.DELIVERED) == len(delivered_ids)
    assert await a.count() == 0
    # a second attempt of either kind changes nothing
    assert await b.mark_failed("m0", NOW + 12, "late") is False
    assert await b.expire(NOW + 100) == []


async def test_pending_order_preserved_across_instances(
    pair: tuple[RedisStore, RedisStore],
) -> None:
    a, b = pair
    for i in range(20):
        await (a if i % 3 else b).put_message(msg(i))
    await b.put_message(msg(50, recipient="+8613800000002"))
    assert [m.id for m in await a.pending("+8613800000001")] == [f"m{i}" for i in range(20)]
    assert [m.id for m in await b.pending("+8613800000001", limit=5)] == [f"m{i}" for i in range(5)]
    assert await b.mark_delivered("m3", NOW)
    assert "m3" not in [m.id for m in await a.pending("+8613800000001")]
    # due: after an attempt, the message waits for its next_attempt_at
    assert await a.mark_attempt("m0", NOW + 60)
    due = [m.id for m in await b.due(NOW)]
    assert "m0" not in due and due[0] == "m1"
    assert (await b.due(NOW + 60, limit=1))[0].id == "m0"  # stored first, due again
    got = await a.get_message("m0")
    assert got is not None and got.attempts == 1 and got.next_attempt_at == NOW + 60


async def test_max_stored_is_exact_across_instances(url: str) -> None:
    a, b = RedisStore(url, max_stored=5), RedisStore(url, max_stored=5)
    await a.open()
    await b.open()
    try:
        results = await asyncio.gather(
            *[(a if i % 2 else b).put_message(msg(i)) for i in range(12)], return_exceptions=True
        )
        assert sum(isinstance(r, StoreFull) for r in results) == 7
        assert await a.count() == 5
        stored = next(m.id for m in await a.pending("+8613800000001"))
        assert await b.mark_delivered(stored, NOW)
        assert (await a.put_message(msg(77))).duplicate is False
    finally:
        await a.close()
        await b.close()


async def test_bindings_shared(pair: tuple[RedisStore, RedisStore]) -> None:
    a, b = pair

    def bind(key: str, expires_at: float) -> StoredBinding:
        return StoredBinding(
            aor="+8613800000001", contact=f"<sip:{key}@10.0.0.1>", contact_key=key,
            expires_at=expires_at, call_id="c", cseq=1, transport="udp", host="10.0.0.1",
            port=5060, q=0.5, registered_at=NOW,
        )  # fmt: skip

    await a.save_bindings("+8613800000001", [bind("k1", NOW + 60), bind("k2", NOW - 1)])
    assert [x.contact_key for x in await b.load_bindings(NOW)] == ["k1"]
    assert (await b.load_bindings(NOW))[0] == bind("k1", NOW + 60)
    await b.save_bindings("+8613800000001", [])
    assert await a.load_bindings(NOW) == []


async def test_killed_server_raises_store_unavailable_without_hanging() -> None:
    with redis_server_process() as server:
        store = RedisStore(server.url, timeout=1.0)
        await store.open()
        try:
            await store.put_message(msg(1))
            server.kill()
            start = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await store.put_message(msg(2))
            with pytest.raises(StoreUnavailable):
                await store.get_message("m1")
            with pytest.raises(StoreUnavailable):
                await store.mark_delivered("m1", NOW)
            with pytest.raises(StoreUnavailable):
                await store.add_trace("m1", TraceEvent(at=NOW, event="x"))
            with pytest.raises(StoreUnavailable):
                await store.load_bindings(NOW)
            assert time.monotonic() - start < 10
        finally:
            await store.close()
    with pytest.raises(StoreUnavailable):  # nothing listening at open
        await RedisStore(server.url, timeout=1.0).open()


async def test_restart_with_appendonly_keeps_data_and_recovers() -> None:
    with redis_server_process(appendonly=True) as server:
        store = RedisStore(server.url, timeout=1.0)
        await store.open()
        try:
            for i in range(5):
                await store.put_message(msg(i, imdn=f"i{i}"))
            await store.add_trace("m0", TraceEvent(at=NOW, event="stored"))
            assert await store.mark_delivered("m4", NOW)
            server.kill()  # SIGKILL: only what the append-only file holds survives
            await asyncio.to_thread(server.start)
            # the same store reconnects (and reloads its scripts: the server lost them)
            assert [m.id for m in await store.pending("+8613800000001")] == [
                f"m{i}" for i in range(4)
            ]
            assert (await store.put_message(msg(10, imdn="i0"))).duplicate is True
            assert (await store.put_message(msg(5))).duplicate is False
            assert await store.count() == 5
            assert await store.count(MessageState.DELIVERED) == 1
            assert [e.event for e in await store.trace("m0")] == ["stored"]
            got = await store.get_message("m1")
            assert got is not None and got.body == msg(1).body
        finally:
            await store.close()


async def test_lost_scripts_are_reloaded_for_batched_puts(url: str) -> None:
    store = RedisStore(url)
    await store.open()
    raw = redis.asyncio.Redis.from_url(url)
    try:
        await raw.script_flush()
        results = await asyncio.gather(*[store.put_message(msg(i)) for i in range(20)])
        assert not any(r.duplicate for r in results)
        await raw.script_flush()
        assert await store.mark_delivered("m0", NOW)
        assert await store.count() == 19
    finally:
        await raw.aclose()
        await store.close()


async def test_concurrent_puts_are_group_committed(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisStore(url)
    await store.open()
    sizes: list[int] = []
    send = store._pipeline

    async def counting(batch: list[Any]) -> list[Any]:
        sizes.append(len(batch))
        return await send(batch)

    monkeypatch.setattr(store, "_pipeline", counting)
    try:
        results = await asyncio.gather(
            *[store.put_message(msg(i, imdn=f"i{i}")) for i in range(2000)]
        )
        assert [r.id for r in results] == [f"m{i}" for i in range(2000)]
        assert await store.count() == 2000
        # one pipeline per batch, not a round trip per message (≈200 µs each on loopback)
        assert sum(sizes) == 2000 and len(sizes) <= 20, sizes
    finally:
        await store.close()


async def test_watch_bindings_tells_other_processes_of_each_change(pair) -> None:
    """DESIGN.md §8: a process keeps a local copy of the registrations others make."""
    a, b = pair

    def bind(key: str) -> StoredBinding:
        return StoredBinding(
            aor="+8613800000009", contact=f"<sip:{key}@10.0.0.9>", contact_key=key,
            expires_at=NOW + 600, call_id="c", cseq=1, transport="udp", host="10.0.0.9",
            port=5060, registered_at=NOW,
        )  # fmt: skip

    seen_by_b: list[tuple[str, list[StoredBinding]]] = []
    seen_by_a: list[tuple[str, list[StoredBinding]]] = []
    watch_b = asyncio.create_task(b.watch_bindings(lambda aor, bs: seen_by_b.append((aor, bs))))
    watch_a = asyncio.create_task(a.watch_bindings(lambda aor, bs: seen_by_a.append((aor, bs))))
    try:
        await asyncio.sleep(0.2)  # subscribed
        await a.save_bindings("+8613800000009", [bind("k1")])
        await a.save_bindings("+8613800000009", [])
        for _ in range(100):
            if len(seen_by_b) >= 2:
                break
            await asyncio.sleep(0.02)
        assert seen_by_b[0][0] == "+8613800000009"
        assert [x.contact_key for x in seen_by_b[0][1]] in (["k1"], [])  # re-read when told
        assert seen_by_b[-1] == ("+8613800000009", [])
        assert seen_by_a == []  # its own changes are not echoed back
    finally:
        watch_a.cancel()
        watch_b.cancel()
        await asyncio.gather(watch_a, watch_b, return_exceptions=True)
