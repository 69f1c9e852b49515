"""The MaaP file store: durable media by id with expiry, served over real HTTP."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from fivegmc.maap.files import FileStore, file_routes, parse_range
from fivegmc.maap.model import FileStatusEvent


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def store(path: Path, clock: Clock, **kw: object) -> FileStore:
    return FileStore(path, "http://127.0.0.1:8080", 1000, 3600, clock, **kw)  # type: ignore[arg-type]


async def test_put_get_read_delete(tmp_path: Path) -> None:
    clock = Clock()
    fs = store(tmp_path / "files", clock, root="/rcs")
    rec = await fs.put("bot", "cat.png", "image/png", b"\x89PNG...")
    assert rec.url == f"http://127.0.0.1:8080/rcs/files/{rec.file_id}"
    assert rec.size == 7 and rec.sha256 == hashlib.sha256(b"\x89PNG...").hexdigest()
    assert rec.until == clock.t + 3600 and rec.bot_id == "bot" and rec.name == "cat.png"
    assert fs.get(rec.file_id) == rec
    assert fs.by_url(rec.url) == rec
    assert fs.by_url(f"https://elsewhere.example/rcs/files/{rec.file_id}?x=1") == rec
    assert fs.by_url("http://127.0.0.1:8080/files/" + rec.file_id) is None
    assert fs.by_url("") is None
    assert await fs.read(rec.file_id) == b"\x89PNG..."
    assert fs.of_bot("bot") == [rec] and fs.of_bot("other") == []
    assert await fs.delete(rec.file_id)
    assert not await fs.delete(rec.file_id)
    assert fs.get(rec.file_id) is None
    with pytest.raises(KeyError):
        await fs.read(rec.file_id)
    assert list((tmp_path / "files").iterdir()) == []


async def test_limits_and_bad_input(tmp_path: Path) -> None:
    fs = store(tmp_path, Clock())
    with pytest.raises(ValueError, match="more than the 1000"):
        await fs.put("bot", "big", "image/png", b"x" * 1001)
    with pytest.raises(ValueError, match="media type"):
        await fs.put("bot", "x", "image/png\r\nX-Evil: 1", b"x")
    with pytest.raises(ValueError, match="future"):
        await fs.put("bot", "x", "image/png", b"x", ttl_s=0)
    with pytest.raises(ValueError, match="thumbnail_of"):
        await fs.put("bot", "x", "image/png", b"x", thumbnail_of="nope")
    rec = await fs.put("bot", "a\r\nb", "", b"")
    assert rec.content_type == "application/octet-stream" and "\n" not in rec.name


async def test_survives_restart_and_thumbnails_go_with_their_file(tmp_path: Path) -> None:
    clock = Clock()
    fs = store(tmp_path, clock)
    main = await fs.put("bot", "v.mp4", "video/mp4", b"video", ttl_s=100)
    thumb = await fs.put("bot", "t.jpg", "image/jpeg", b"thumb", thumbnail_of=main.file_id)
    (tmp_path / "orphan.bin").write_bytes(b"half an upload")
    (tmp_path / "junk.json").write_bytes(b"{not json")
    fs2 = FileStore(tmp_path, "http://10.0.0.1:9000", 1000, 3600, clock)
    got = fs2.get(main.file_id)
    assert got is not None and got.url == f"http://10.0.0.1:9000/files/{main.file_id}"
    assert got.until == main.until and got.sha256 == main.sha256
    assert await fs2.read(thumb.file_id) == b"thumb"
    assert not (tmp_path / "orphan.bin").exists()
    assert fs2.get("junk") is None
    assert await fs2.delete(main.file_id)
    assert fs2.get(thumb.file_id) is None


async def test_sweep_reports_expired_and_keeps_a_tombstone(tmp_path: Path) -> None:
    clock = Clock()
    seen: list[FileStatusEvent] = []

    async def on_expired(ev: FileStatusEvent) -> None:
        seen.append(ev)

    fs = store(tmp_path, clock, on_expired=on_expired, tombstone_s=50)
    short = await fs.put("bot", "a", "text/plain", b"a", ttl_s=10)
    long = await fs.put("bot", "b", "text/plain", b"b", ttl_s=1000)
    assert await fs.sweep() == []
    clock.t += 10
    assert [r.file_id for r in await fs.sweep()] == [short.file_id]
    assert seen == [FileStatusEvent("bot", short.file_id, "expired", clock.t)]
    assert fs.get(short.file_id) is not None  # tombstone: still answers 410
    with pytest.raises(KeyError):
        await fs.read(short.file_id)
    assert await fs.sweep() == []  # reported once
    # the tombstone survives a restart, then goes
    fs2 = store(tmp_path, clock, tombstone_s=50)
    assert fs2.get(short.file_id) is not None
    clock.t += 50
    await fs2.sweep()
    assert fs2.get(short.file_id) is None and fs2.get(long.file_id) is not None


@contextlib.asynccontextmanager
async def serving(fs: FileStore) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    app = web.Application()
    app.add_routes(file_routes(fs))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fs.public_base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            yield fs.public_base, http
    finally:
        await runner.cleanup()


async def test_http_get_head_range(tmp_path: Path) -> None:
    clock = Clock()
    fs = store(tmp_path, clock, root="/rcs")
    data = bytes(range(256)) * 3
    async with serving(fs) as (base, http):
        rec = await fs.put("bot", "名前.bin", "application/x-test; v=1", data, ttl_s=100)
        async with http.get(rec.url) as r:
            assert r.status == 200 and await r.read() == data
            assert r.headers["Content-Type"] == "application/x-test; v=1"
            assert r.headers["Content-Length"] == str(len(data))
            assert r.headers["Accept-Ranges"] == "bytes"
            assert "filename*=UTF-8''%E5%90%8D" in r.headers["Content-Disposition"]
        async with http.head(rec.url) as r:
            assert r.status == 200 and r.headers["Content-Length"] == str(len(data))
            assert r.headers["Content-Type"] == "application/x-test; v=1"
            assert await r.read() == b""
        for rng, want in [("bytes=0-9", data[:10]), ("bytes=700-", data[700:]),
                          ("bytes=-5", data[-5:]), ("bytes=760-9999", data[760:])]:
            async with http.get(rec.url, headers={"Range": rng}) as r:
                assert r.status == 206, rng
                assert await r.read() == want
                start = len(data) - len(want) if rng.startswith("bytes=-") else int(
                    rng[6:].split("-")[0])
                assert r.headers["Content-Range"] == \
                    f"bytes {start}-{start + len(want) - 1}/{len(data)}"
        async with http.get(rec.url, headers={"Range": "bytes=768-"}) as r:
            assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{len(data)}"
        async with http.get(rec.url, headers={"Range": "bytes=0-1,5-6"}) as r:
            assert r.status == 200 and await r.read() == data  # several ranges: whole file
        async with http.get(rec.url, headers={"Range": "bytes=0-1", "If-Range": '"old"'}) as r:
            assert r.status == 200
        async with http.get(f"{base}/rcs/files/nosuchfileatall") as r:
            assert r.status == 404 and "error" in await r.json()
        async with http.get(f"{base}/rcs/files/..%2F..%2Fetc") as r:
            assert r.status == 404
        clock.t += 100
        async with http.get(rec.url) as r:
            assert r.status == 410 and "expired" in (await r.json())["error"]
        await fs.sweep()
        async with http.head(rec.url) as r:
            assert r.status == 410


def _reference(header: str, size: int) -> tuple[int, int] | str | None:
    """An independent reading of RFC 9110 §14.1.2 for one bytes range."""
    if not header.startswith("bytes=") or "," in header:
        return None
    spec = header[6:]
    if spec.count("-") != 1:
        return None
    a, b = spec.split("-")
    if (a and not a.isdigit()) or (b and not b.isdigit()) or (not a and not b):
        return None
    if not a:
        n = int(b)
        return "416" if n == 0 or size == 0 else (max(0, size - n), size)
    if b and int(b) < int(a):
        return None
    if int(a) >= size:
        return "416"
    return int(a), min(size, int(b) + 1) if b else size


@given(st.one_of(
    st.builds(lambda a, b: f"bytes={a}-{b}",
              st.one_of(st.just(""), st.integers(0, 300).map(str)),
              st.one_of(st.just(""), st.integers(0, 300).map(str))),
    st.text(max_size=30)), st.integers(0, 200))
def test_parse_range_matches_reference(header: str, size: int) -> None:
    want = _reference(header, size)
    try:
        got: tuple[int, int] | str | None = parse_range(header, size)
    except ValueError:
        got = "416"
    if header.isascii():
        assert got == want
    if isinstance(got, tuple):
        assert 0 <= got[0] < got[1] <= size
