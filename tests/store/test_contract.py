"""The behavioural contract of :mod:`fivegmc.store.protocol`, run against every backend.

Plus, for SQLite: durability across close/reopen and group commit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fivegmc.store.protocol import (
    MessageState,
    PutResult,
    Store,
    StoredBinding,
    StoredMessage,
    StoreFull,
    StoreUnavailable,
    TraceEvent,
)
from fivegmc.store.sqlite import SqliteStore

from .builders import NOW, msg
from .conftest import MakeStore


def binding(aor: str, key: str, *, expires_at: float = NOW + 600, q: float = 1.0) -> StoredBinding:
    return StoredBinding(
        aor=aor,
        contact=f"<sip:{key}@192.0.2.1:5060;transport=tcp>;+g.3gpp.icsi-ref=x",
        contact_key=key,
        expires_at=expires_at,
        call_id=f"call-{key}",
        cseq=7,
        transport="tcp",
        host="192.0.2.1",
        port=5060,
        q=q,
        registered_at=NOW - 10,
    )


async def ids(coro: object) -> list[str]:
    assert asyncio.iscoroutine(coro)
    return [m.id for m in await coro]


# -- put / get ---------------------------------------------------------------------------------


async def test_put_get_round_trip(store: Store) -> None:
    body = bytes(range(256)) + b"\r\n\r\n\x00tail"
    headers = (
        ("To", "<tel:+8613800000001>"),
        ("From", "<tel:+8613900000001>"),
        ("Contribution-ID", "abc"),
        ("Accept-Contact", '*;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"'),
        ("From", "second from keeps its place"),
    )
    m = StoredMessage(
        id="rt-1",
        recipient="+8613800000001",
        sender="sip:+8613900000001@ims.example",
        imdn_message_id="imdn-1",
        received_at=NOW,
        expires_at=NOW + 3600.5,
        content_type="message/cpim",
        body=body,
        headers=headers,
        next_attempt_at=NOW + 1.25,
    )
    assert await store.put_message(m) == PutResult("rt-1", False)
    got = await store.get_message("rt-1")
    assert got is not None
    assert got.body == body and isinstance(got.body, bytes)
    assert got.headers == headers
    assert got.seq > 0
    assert got.state is MessageState.STORED
    assert got == StoredMessage(**{**_fields(m), "seq": got.seq})
    assert await store.get_message("nope") is None


def _fields(m: StoredMessage) -> dict[str, object]:
    return {f: getattr(m, f) for f in StoredMessage.__slots__}


async def test_seq_is_monotonic(store: Store) -> None:
    seqs = []
    for _ in range(5):
        m = msg()
        await store.put_message(m)
        got = await store.get_message(m.id)
        assert got is not None
        seqs.append(got.seq)
    assert seqs == sorted(seqs) and len(set(seqs)) == 5


async def test_empty_body_and_no_headers(store: Store) -> None:
    m = StoredMessage(
        id="empty",
        recipient="r",
        sender="s",
        imdn_message_id=None,
        received_at=NOW,
        expires_at=NOW + 1,
        content_type="text/plain",
        body=b"",
    )
    await store.put_message(m)
    got = await store.get_message("empty")
    assert got is not None and got.body == b"" and got.headers == ()


# -- duplicates --------------------------------------------------------------------------------


async def test_duplicate_sequential(store: Store) -> None:
    first = msg(imdn="x-1", sender="alice")
    assert await store.put_message(first) == PutResult(first.id, False)
    again = msg(imdn="x-1", sender="alice")
    assert await store.put_message(again) == PutResult(first.id, True)
    assert await store.get_message(again.id) is None
    # same Message-ID from another sender is another message
    other = msg(imdn="x-1", sender="bob")
    assert await store.put_message(other) == PutResult(other.id, False)
    # no imdn id: never a duplicate
    a, b = msg(sender="alice"), msg(sender="alice")
    assert (await store.put_message(a)).duplicate is False
    assert (await store.put_message(b)).duplicate is False
    assert await store.count() == 4


async def test_duplicate_in_any_state(store: Store) -> None:
    first = msg(imdn="y-1", sender="alice")
    await store.put_message(first)
    assert await store.mark_delivered(first.id, NOW)
    assert await store.put_message(msg(imdn="y-1", sender="alice")) == PutResult(first.id, True)
    expiring = msg(imdn="y-2", sender="alice", expires_at=NOW - 1)
    await store.put_message(expiring)
    assert [m.id for m in await store.expire(NOW)] == [expiring.id]
    assert await store.put_message(msg(imdn="y-2", sender="alice")) == PutResult(expiring.id, True)
    assert await store.count(MessageState.STORED) == 0


async def test_duplicate_concurrent_same_sender(store: Store) -> None:
    puts = [msg(imdn="c-1", sender="alice") for _ in range(20)]
    results = await asyncio.gather(*(store.put_message(m) for m in puts))
    fresh = [r for r in results if not r.duplicate]
    assert len(fresh) == 1
    assert {r.id for r in results} == {fresh[0].id}
    assert await store.count() == 1
    assert [m.id for m in await store.pending(puts[0].recipient)] == [fresh[0].id]


async def test_duplicate_concurrent_different_senders(store: Store) -> None:
    puts = [msg(imdn="c-2", sender=f"sender-{i}") for i in range(20)]
    results = await asyncio.gather(*(store.put_message(m) for m in puts))
    assert all(not r.duplicate for r in results)
    assert [r.id for r in results] == [m.id for m in puts]
    assert await store.count() == 20


async def test_duplicate_concurrent_mixed(store: Store) -> None:
    puts = [msg(imdn=f"k-{i % 5}", sender=f"s-{i % 2}") for i in range(40)]
    results = await asyncio.gather(*(store.put_message(m) for m in puts))
    assert sum(not r.duplicate for r in results) == 10
    by_key: dict[tuple[str, str | None], set[str]] = {}
    for m, r in zip(puts, results, strict=True):
        by_key.setdefault((m.sender, m.imdn_message_id), set()).add(r.id)
    assert all(len(v) == 1 for v in by_key.values())
    assert await store.count() == 10


# -- pending -----------------------------------------------------------------------------------


async def test_pending_order_and_isolation(store: Store) -> None:
    a, b = "+8613800000001", "+8613800000002"
    sent_a, sent_b = [], []
    for i in range(12):
        m = msg(a if i % 3 else b)
        (sent_a if i % 3 else sent_b).append(m.id)
        await store.put_message(m)
    assert await ids(store.pending(a)) == sent_a
    assert await ids(store.pending(b)) == sent_b
    assert await ids(store.pending(a, limit=3)) == sent_a[:3]
    assert await store.pending("+8613800000099") == []
    assert await store.mark_delivered(sent_a[1], NOW)
    assert await store.mark_failed(sent_a[2], NOW, "refused")
    assert await ids(store.pending(a)) == [sent_a[0], *sent_a[3:]]


async def test_pending_order_concurrent(store: Store) -> None:
    puts = [msg("+8613800000003") for _ in range(60)]
    await asyncio.gather(*(store.put_message(m) for m in puts))
    got = await store.pending("+8613800000003", limit=1000)
    assert {m.id for m in got} == {m.id for m in puts}
    seqs = [m.seq for m in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


# -- retry -------------------------------------------------------------------------------------


async def test_due_and_mark_attempt(store: Store) -> None:
    m1, m2, m3 = msg(), msg(next_attempt_at=NOW + 5), msg()
    for m in (m1, m2, m3):
        await store.put_message(m)
    assert await ids(store.due(NOW)) == [m1.id, m3.id]
    assert await ids(store.due(NOW + 5)) == [m1.id, m2.id, m3.id]
    assert await ids(store.due(NOW + 5, limit=2)) == [m1.id, m2.id]
    assert await store.mark_attempt(m1.id, NOW + 10)
    got = await store.get_message(m1.id)
    assert got is not None and got.attempts == 1 and got.next_attempt_at == NOW + 10
    assert await ids(store.due(NOW)) == [m3.id]
    assert await store.mark_attempt(m1.id, NOW + 30)
    got = await store.get_message(m1.id)
    assert got is not None and got.attempts == 2
    assert await ids(store.due(NOW + 10)) == [m2.id, m3.id]
    assert await ids(store.due(NOW + 30)) == [m1.id, m2.id, m3.id]
    # no longer STORED: no attempt counted, not due
    assert await store.mark_delivered(m3.id, NOW)
    assert not await store.mark_attempt(m3.id, NOW + 1)
    got = await store.get_message(m3.id)
    assert got is not None and got.attempts == 0
    assert await ids(store.due(NOW + 100)) == [m1.id, m2.id]
    assert not await store.mark_attempt("unknown", NOW)


# -- compare-and-set ---------------------------------------------------------------------------


async def test_mark_delivered_is_compare_and_set(store: Store) -> None:
    m = msg()
    await store.put_message(m)
    assert await store.mark_delivered(m.id, NOW + 1) is True
    assert await store.mark_delivered(m.id, NOW + 2) is False
    assert await store.mark_failed(m.id, NOW + 2, "late") is False
    got = await store.get_message(m.id)
    assert got is not None and got.state is MessageState.DELIVERED
    assert await store.mark_delivered("unknown", NOW) is False


async def test_mark_failed_is_compare_and_set(store: Store) -> None:
    m = msg()
    await store.put_message(m)
    assert await store.mark_failed(m.id, NOW, "recipient refused") is True
    assert await store.mark_failed(m.id, NOW, "again") is False
    assert await store.mark_delivered(m.id, NOW) is False
    got = await store.get_message(m.id)
    assert got is not None and got.state is MessageState.FAILED
    assert await store.mark_failed("unknown", NOW, "x") is False


async def test_deliver_after_expire_is_refused(store: Store) -> None:
    m = msg(expires_at=NOW)
    await store.put_message(m)
    expired = await store.expire(NOW)
    assert [e.id for e in expired] == [m.id]
    assert await store.mark_delivered(m.id, NOW + 1) is False
    got = await store.get_message(m.id)
    assert got is not None and got.state is MessageState.EXPIRED


async def test_delivery_and_expiry_race_settle_once(store: Store) -> None:
    ms = [msg(expires_at=NOW - 1) for _ in range(10)]
    for m in ms:
        await store.put_message(m)
    results = await asyncio.gather(
        *(store.mark_delivered(m.id, NOW) for m in ms[::2]), store.expire(NOW)
    )
    delivered = [m.id for m, ok in zip(ms[::2], results[:-1], strict=True) if ok]
    expired_list = results[-1]
    assert isinstance(expired_list, list)
    expired = [e.id for e in expired_list]
    assert not set(delivered) & set(expired)
    assert sorted(delivered + expired) == sorted(m.id for m in ms)
    assert await store.count(MessageState.DELIVERED) == len(delivered)
    assert await store.count(MessageState.EXPIRED) == len(expired)


async def test_concurrent_mark_delivered_only_one_wins(store: Store) -> None:
    m = msg()
    await store.put_message(m)
    results = await asyncio.gather(*(store.mark_delivered(m.id, NOW) for _ in range(10)))
    assert sorted(results) == [False] * 9 + [True]


# -- expiry and counts -------------------------------------------------------------------------


async def test_expire_returns_exactly_the_expired_once(store: Store) -> None:
    old1 = msg(expires_at=NOW - 10)
    fresh = msg(expires_at=NOW + 10)
    old2 = msg("+8613800000002", expires_at=NOW)
    delivered = msg(expires_at=NOW - 10)
    for m in (old1, fresh, old2, delivered):
        await store.put_message(m)
    assert await store.mark_delivered(delivered.id, NOW - 20)
    expired = await store.expire(NOW)
    assert [m.id for m in expired] == [old1.id, old2.id]
    assert all(m.state is MessageState.EXPIRED for m in expired)
    assert expired[0].body == old1.body and expired[0].headers == old1.headers
    assert await store.expire(NOW) == []
    assert await ids(store.pending(fresh.recipient)) == [fresh.id]
    assert [m.id for m in await store.expire(NOW + 10)] == [fresh.id]


async def test_expire_limit(store: Store) -> None:
    ms = [msg(expires_at=NOW - 1) for _ in range(5)]
    for m in ms:
        await store.put_message(m)
    assert [m.id for m in await store.expire(NOW, limit=2)] == [ms[0].id, ms[1].id]
    assert [m.id for m in await store.expire(NOW, limit=10)] == [m.id for m in ms[2:]]
    assert await store.expire(NOW) == []


async def test_count_per_state(store: Store) -> None:
    ms = [msg(expires_at=NOW - 1 if i < 2 else NOW + 100) for i in range(7)]
    for m in ms:
        await store.put_message(m)
    await store.expire(NOW)
    await store.mark_delivered(ms[2].id, NOW)
    await store.mark_delivered(ms[3].id, NOW)
    await store.mark_delivered(ms[4].id, NOW)
    await store.mark_failed(ms[5].id, NOW, "x")
    assert await store.count() == 1
    assert await store.count(MessageState.STORED) == 1
    assert await store.count(MessageState.EXPIRED) == 2
    assert await store.count(MessageState.DELIVERED) == 3
    assert await store.count(MessageState.FAILED) == 1


# -- bindings ----------------------------------------------------------------------------------


async def test_bindings_replace_remove_load(store: Store) -> None:
    a1, a2 = binding("aor-a", "k1", q=0.5), binding("aor-a", "k2")
    b1 = binding("aor-b", "k1")
    await store.save_bindings("aor-a", [a1, a2])
    await store.save_bindings("aor-b", [b1])
    loaded = await store.load_bindings(NOW)
    assert sorted(loaded, key=lambda b: (b.aor, b.contact_key)) == [a1, a2, b1]
    # replace: every binding of the AoR
    a3 = binding("aor-a", "k3")
    await store.save_bindings("aor-a", [a3])
    assert sorted(await store.load_bindings(NOW), key=lambda b: b.aor) == [a3, b1]
    # remove with an empty sequence
    await store.save_bindings("aor-b", [])
    assert await store.load_bindings(NOW) == [a3]
    await store.save_bindings("aor-unknown", [])
    assert await store.load_bindings(NOW) == [a3]


async def test_bindings_expired_not_loaded(store: Store) -> None:
    live = binding("aor-c", "live", expires_at=NOW + 1)
    dead = binding("aor-c", "dead", expires_at=NOW - 1)
    edge = binding("aor-d", "edge", expires_at=NOW)
    await store.save_bindings("aor-c", [live, dead])
    await store.save_bindings("aor-d", [edge])
    assert await store.load_bindings(NOW) == [live]
    assert await store.load_bindings(NOW + 5) == []
    assert sorted(await store.load_bindings(NOW - 5), key=lambda b: b.contact_key) == [
        dead,
        edge,
        live,
    ]


# -- traces ------------------------------------------------------------------------------------


async def test_traces_in_order(store: Store) -> None:
    events = [
        TraceEvent(NOW, "received", "from +86139", (("via", "udp"), ("size", "42"))),
        TraceEvent(NOW + 0.1, "stored"),
        TraceEvent(NOW + 0.2, "delivery-attempt", "", (("contact", "sip:x"),)),
        TraceEvent(NOW + 0.2, "delivered", "200 OK"),
    ]
    for ev in events:
        await store.add_trace("t-1", ev)
    await store.add_trace("t-2", TraceEvent(NOW, "received"))
    assert await store.trace("t-1") == events
    assert await store.trace("t-2") == [TraceEvent(NOW, "received")]
    assert await store.trace("unknown") == []


async def test_traces_concurrent_keep_submission_order(store: Store) -> None:
    events = [TraceEvent(NOW + i, f"e{i}") for i in range(30)]
    await asyncio.gather(*(store.add_trace("t-3", ev) for ev in events))
    assert await store.trace("t-3") == events


# -- errors ------------------------------------------------------------------------------------


async def test_put_after_close_is_unavailable(store: Store) -> None:
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.put_message(msg())


async def test_max_stored_is_store_full(make_store: MakeStore) -> None:
    store = await make_store(max_stored=3)
    ms = [msg(imdn=f"full-{i}", sender="alice") for i in range(3)]
    for m in ms:
        await store.put_message(m)
    with pytest.raises(StoreFull):
        await store.put_message(msg(imdn="full-3", sender="alice"))
    # a duplicate is still recognised when full
    assert await store.put_message(msg(imdn="full-0", sender="alice")) == PutResult(ms[0].id, True)
    # delivering one makes room again
    assert await store.mark_delivered(ms[0].id, NOW)
    assert (await store.put_message(msg())).duplicate is False
    with pytest.raises(StoreFull):
        await store.put_message(msg())
    assert await store.count() == 3


# -- SQLite only: durability and group commit --------------------------------------------------


async def test_sqlite_durable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    s1 = SqliteStore(path)
    await s1.open()
    rcpts = ["+8613800000001", "+8613800000002"]
    puts = [msg(rcpts[i % 2], imdn=f"d-{i}") for i in range(200)]
    await asyncio.gather(*(s1.put_message(m) for m in puts))
    before = {r: await s1.pending(r, limit=1000) for r in rcpts}
    await s1.add_trace(puts[0].id, TraceEvent(NOW, "stored"))
    await s1.save_bindings("aor-a", [binding("aor-a", "k1")])
    await s1.close()

    s2 = SqliteStore(path)
    await s2.open()
    try:
        assert await s2.count() == 200
        for r in rcpts:
            after = await s2.pending(r, limit=1000)
            assert after == before[r]
            assert {m.id for m in after} == {m.id for m in puts if m.recipient == r}
        assert await s2.trace(puts[0].id) == [TraceEvent(NOW, "stored")]
        assert await s2.load_bindings(NOW) == [binding("aor-a", "k1")]
        # duplicates are recognised across restarts, and seq keeps growing
        assert await s2.put_message(msg(rcpts[0], imdn="d-0")) == PutResult(puts[0].id, True)
        late = msg(rcpts[0])
        await s2.put_message(late)
        got = await s2.pending(rcpts[0], limit=1000)
        assert got[-1].id == late.id and got[-1].seq > got[-2].seq
    finally:
        await s2.close()


async def test_sqlite_close_flushes_queued_writes(tmp_path: Path) -> None:
    path = tmp_path / "flush.db"
    s1 = SqliteStore(path, batch_window_s=10.0)  # would wait 10 s without the flush
    await s1.open()
    puts = [msg() for _ in range(10)]
    tasks = [asyncio.create_task(s1.put_message(m)) for m in puts]
    await asyncio.sleep(0)  # let them enqueue
    await asyncio.wait_for(s1.close(), 2.0)
    assert [t.result() for t in tasks] == [PutResult(m.id, False) for m in puts]
    s2 = SqliteStore(path)
    await s2.open()
    try:
        assert await s2.count() == 10
    finally:
        await s2.close()


async def test_sqlite_group_commit_batches(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "batch.db")
    await s.open()
    try:
        commits0 = s.commits
        results = await asyncio.gather(*(s.put_message(msg(imdn=f"g-{i}")) for i in range(500)))
        assert all(not r.duplicate for r in results)
        assert await s.count() == 500
        assert s.commits - commits0 <= 10, s.commits - commits0
    finally:
        await s.close()


async def test_sqlite_max_batch_bounds_a_transaction(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "maxbatch.db", batch_window_s=10.0, max_batch=50)
    await s.open()
    try:
        # a full batch is committed at once, without waiting for the (long) window
        await asyncio.wait_for(asyncio.gather(*(s.put_message(msg()) for _ in range(200))), 2.0)
        assert s.commits == 4
    finally:
        await s.close()


async def test_sqlite_reads_after_close_are_unavailable(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "closed.db")
    await s.open()
    await s.close()
    with pytest.raises(StoreUnavailable):
        await s.get_message("x")
    with pytest.raises(StoreUnavailable):
        await s.mark_delivered("x", NOW)


async def test_sqlite_unwritable_path_is_unavailable(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "no-such-dir" / "x.db")
    with pytest.raises(StoreUnavailable):
        await s.open()


async def test_iter_bindings_pages_give_what_load_bindings_gives(store: Store) -> None:
    for i in range(25):
        await store.save_bindings(f"+86138000001{i:02d}",
                                  [binding(f"+86138000001{i:02d}", f"k{i}a"),
                                   binding(f"+86138000001{i:02d}", f"k{i}b")])
    await store.save_bindings("+8613800000199", [binding("+8613800000199", "old",
                                                         expires_at=NOW - 1)])
    pages = [page async for page in store.iter_bindings(NOW, page=7)]
    got = [b for page in pages for b in page]
    assert len(pages) >= 2
    assert sorted(got, key=lambda b: b.contact_key) == sorted(
        await store.load_bindings(NOW), key=lambda b: b.contact_key)
    assert len(got) == 50
