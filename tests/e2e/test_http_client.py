"""fivegmc.http.HttpClient on real sockets (127.0.0.1, port 0): against an aiohttp web server
and against a raw asyncio TCP server that misbehaves on purpose."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from fivegmc.http import (
    ConnectError,
    ConnectionClosed,
    HttpClient,
    HttpError,
    ProtocolError,
    RequestTimeout,
)

from .certs import make_self_signed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    """What the server saw: client ports (one per connection), requests, concurrency."""

    peers: set[int] = field(default_factory=set)
    requests: list[web.Request] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


@asynccontextmanager
async def aiohttp_server(routes: dict[str, Handler], *, ssl_context: ssl.SSLContext | None = None,
                         host: str = "127.0.0.1", **runner_kw: object
                         ) -> AsyncIterator[tuple[str, Seen]]:
    seen = Seen()

    def wrap(handler: Handler) -> Handler:
        async def h(request: web.Request) -> web.StreamResponse:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            if peer:
                seen.peers.add(peer[1])
            seen.requests.append(request)
            seen.in_flight += 1
            seen.max_in_flight = max(seen.max_in_flight, seen.in_flight)
            try:
                return await handler(request)
            finally:
                seen.in_flight -= 1
        return h

    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", path, wrap(handler))
    runner = web.AppRunner(app, access_log=None, **runner_kw)  # type: ignore[arg-type]
    await runner.setup()
    site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    scheme = "https" if ssl_context else "http"
    name = f"[{host}]" if ":" in host else host
    try:
        yield f"{scheme}://{name}:{port}", seen
    finally:
        await runner.cleanup()


async def ok(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({})


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    c = HttpClient()
    yield c
    await c.close()


# -- against aiohttp -------------------------------------------------------------------------


async def test_post_round_trip(client: HttpClient) -> None:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=body[::-1], status=202, headers={
            "X-Got-Type": request.content_type, "X-Got-UA": request.headers["User-Agent"],
            "X-Got-Host": request.host, "X-Got-Target": request.raw_path})

    async with aiohttp_server({"/hook": echo}) as (base, _):
        body = b'{"event":"message","text":"' + "你好".encode() + b'"}'
        r = await client.post(f"{base}/hook?sig=a%2Fb", body,
                              [("Content-Type", "application/json")])
        assert r.status == 202 and r.reason == "Accepted"
        assert r.body == body[::-1]
        assert r.header("x-got-type") == "application/json"
        assert r.header("x-got-ua") == "fivegmc"
        assert r.header("x-got-host") == base.removeprefix("http://")
        assert r.header("x-got-target") == "/hook?sig=a%2Fb"  # kept as given
        assert r.keep_alive


async def test_keep_alive_reuses_one_connection(client: HttpClient) -> None:
    async with aiohttp_server({"/": ok}) as (base, seen):
        for _ in range(20):
            assert (await client.post(base + "/", b"{}")).status == 200
        assert len(seen.requests) == 20
        assert len(seen.peers) == 1
        assert client.connections() == 1


async def test_concurrency_cap_per_origin() -> None:
    gate = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        await gate.wait()
        return web.Response(text="ok")

    c = HttpClient(max_connections_per_origin=3)
    try:
        async with aiohttp_server({"/": held}) as (base, seen):
            calls = [asyncio.ensure_future(c.post(base + "/", b"x")) for _ in range(10)]
            for _ in range(100):
                if seen.in_flight == 3:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # nobody beyond the cap gets through meanwhile
            assert seen.in_flight == 3
            assert c.connections() == 3
            gate.set()
            results = await asyncio.gather(*calls)
            assert [r.status for r in results] == [200] * 10
            assert seen.max_in_flight == 3
            assert len(seen.peers) == 3
    finally:
        await c.close()


async def test_waiters_are_served_in_order() -> None:
    order: list[bytes] = []

    async def record(request: web.Request) -> web.Response:
        order.append(await request.read())
        await asyncio.sleep(0.01)
        return web.Response()

    c = HttpClient(max_connections_per_origin=1)
    try:
        async with aiohttp_server({"/": record}) as (base, seen):
            calls = []
            for i in range(8):
                calls.append(asyncio.ensure_future(c.post(base + "/", str(i).encode())))
                await asyncio.sleep(0)  # each one queues behind the previous
            await asyncio.gather(*calls)
            assert order == [str(i).encode() for i in range(8)]
            assert len(seen.peers) == 1
    finally:
        await c.close()


async def test_cancelled_requests_free_their_slots() -> None:
    gate = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        if request.path == "/held":
            await gate.wait()
        return web.Response(text="done")

    c = HttpClient(max_connections_per_origin=1)
    try:
        async with aiohttp_server({"/held": held, "/": held}) as (base, seen):
            in_flight = asyncio.ensure_future(c.post(base + "/held", b""))
            waiting = asyncio.ensure_future(c.post(base + "/", b""))
            while seen.in_flight < 1:
                await asyncio.sleep(0.01)
            waiting.cancel()
            in_flight.cancel()
            await asyncio.gather(in_flight, waiting, return_exceptions=True)
            await asyncio.sleep(0.01)
            assert c.connections() == 0  # the cancelled request's connection is dropped
            r = await c.post(base + "/", b"", timeout_s=1)
            assert r.body == b"done"
            gate.set()
    finally:
        await c.close()


async def test_server_closing_idle_connection_is_noticed(client: HttpClient) -> None:
    async with aiohttp_server({"/": ok}, keepalive_timeout=0.1) as (base, seen):
        assert (await client.post(base + "/", b"1")).status == 200
        await asyncio.sleep(0.4)  # the server closed it; connection_lost dropped it
        assert client.connections() == 0
        assert (await client.post(base + "/", b"2")).status == 200
        assert len(seen.peers) == 2


async def test_500_is_a_response(client: HttpClient) -> None:
    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    async with aiohttp_server({"/": fail}) as (base, seen):
        r = await client.post(base + "/", b"{}")
        assert (r.status, r.body) == (500, b"boom")
        assert (await client.post(base + "/", b"{}")).status == 500
        assert len(seen.peers) == 1  # still kept alive


async def test_slow_server_times_out_within_bound(client: HttpClient) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response()

    async with aiohttp_server({"/slow": slow, "/": ok}) as (base, seen):
        t0 = time.monotonic()
        with pytest.raises(RequestTimeout) as info:
            await client.post(base + "/slow", b"{}", timeout_s=0.3)
        elapsed = time.monotonic() - t0
        assert 0.25 <= elapsed < 1.0
        assert isinstance(info.value, TimeoutError)
        assert base.removeprefix("http://") in str(info.value)
        assert client.connections() == 0  # a timed-out connection is closed, never reused
        assert (await client.post(base + "/", b"{}")).status == 200
        assert len(seen.peers) == 2


async def test_waiting_for_a_connection_counts_toward_the_timeout() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.Response()

    c = HttpClient(max_connections_per_origin=1)
    try:
        async with aiohttp_server({"/": slow}) as (base, _):
            first = asyncio.ensure_future(c.post(base + "/", b"", timeout_s=5))
            await asyncio.sleep(0.05)
            t0 = time.monotonic()
            with pytest.raises(RequestTimeout, match="no free connection"):
                await c.post(base + "/", b"", timeout_s=0.2)
            assert time.monotonic() - t0 < 0.6
            assert (await first).status == 200
    finally:
        await c.close()


async def test_refused_port_is_connect_error(client: HttpClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
        await client.post(f"http://127.0.0.1:{port}/", b"{}")
    assert client.connections() == 0


async def test_unknown_host_is_connect_error(client: HttpClient) -> None:
    with pytest.raises(ConnectError, match=r"fivegmc-test\.invalid"):  # RFC 6761: never resolves
        await client.post("http://fivegmc-test.invalid/hook", b"{}", timeout_s=3)


async def test_chunked_response(client: HttpClient) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b"alpha ", b"beta ", b"gamma"):
            await resp.write(part)
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    async with aiohttp_server({"/": chunked}) as (base, seen):
        r = await client.request("GET", base + "/")
        assert r.header("transfer-encoding") == "chunked"
        assert (r.body, r.keep_alive) == (b"alpha beta gamma", True)
        assert (await client.request("GET", base + "/")).body == b"alpha beta gamma"
        assert len(seen.peers) == 1


async def test_connection_close_response_is_not_reused(client: HttpClient) -> None:
    async def closing(request: web.Request) -> web.Response:
        resp = web.Response(text="bye")
        resp.force_close()
        return resp

    async with aiohttp_server({"/": closing}) as (base, seen):
        r = await client.post(base + "/", b"{}")
        assert (r.body, r.keep_alive) == (b"bye", False)
        assert (await client.post(base + "/", b"{}")).body == b"bye"
        assert len(seen.peers) == 2


async def test_head_request(client: HttpClient) -> None:
    async with aiohttp_server({"/": ok}) as (base, seen):
        r = await client.request("HEAD", base + "/")
        assert r.status == 200 and r.body == b""
        assert (await client.request("GET", base + "/")).body == b"{}"
        assert len(seen.peers) == 1


async def test_idle_connections_closed_after_idle_timeout() -> None:
    c = HttpClient(idle_timeout_s=0.1)
    try:
        async with aiohttp_server({"/": ok}) as (base, _):
            await c.post(base + "/", b"")
            assert c.connections() == 1
            await asyncio.sleep(0.3)
            assert c.connections() == 0
    finally:
        await c.close()


async def test_close_fails_waiters_and_requests_in_flight() -> None:
    gate = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        await gate.wait()
        return web.Response()

    c = HttpClient(max_connections_per_origin=1)
    async with aiohttp_server({"/": held}) as (base, seen):
        calls = [asyncio.ensure_future(c.post(base + "/", b"")) for _ in range(3)]
        while seen.in_flight < 1:
            await asyncio.sleep(0.01)
        await c.close()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, ConnectionClosed) for r in results), results
        assert c.connections() == 0
        with pytest.raises(ConnectionClosed):
            await c.post(base + "/", b"")
        gate.set()


async def test_https_with_self_signed_cert(tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    async with aiohttp_server({"/": ok}, ssl_context=server_ctx) as (base, seen):
        trusting = HttpClient(ssl_context=ssl.create_default_context(cafile=str(cert)))
        try:
            for _ in range(3):
                r = await trusting.post(base + "/", b"{}")
                assert (r.status, r.body) == (200, b"{}")
            assert len(seen.peers) == 1
        finally:
            await trusting.close()
        default = HttpClient()  # the system trust store does not know this certificate
        try:
            with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await default.post(base + "/", b"{}")
        finally:
            await default.close()


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback")
async def test_ipv6_literal(client: HttpClient) -> None:
    async def host(request: web.Request) -> web.Response:
        return web.Response(text=request.host)

    async with aiohttp_server({"/": host}, host="::1") as (base, _):
        r = await client.request("GET", base + "/")
        assert r.body.decode() == base.removeprefix("http://")


async def test_bad_urls_are_value_errors(client: HttpClient) -> None:
    for url in ("ftp://h/", "http:///x", "http://u:p@h/", "http://h/a b", "http://h/\r\nX: 1",
                "http://h:99999/"):
        with pytest.raises(ValueError):
            await client.post(url, b"")


# -- against a raw TCP server ----------------------------------------------------------------

#: (connection number, request number on it, raw request) -> (bytes to send, close afterwards)
Script = Callable[[int, int, bytes], tuple[bytes, bool]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Raw:
    url: str
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def raw_server(script: Script) -> AsyncIterator[Raw]:
    writers: list[asyncio.StreamWriter] = []
    raw = Raw("")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        raw.connections += 1
        conn_no = raw.connections
        try:
            for req_no in range(1, 1000):
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                raw.requests.append(request)
                data, close = script(conn_no, req_no, request)
                writer.write(data)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    raw.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    try:
        yield raw
    finally:
        server.close()
        for w in writers:
            w.close()
        await server.wait_closed()


async def test_retry_once_when_server_closed_kept_alive_connection(client: HttpClient) -> None:
    def script(conn: int, req: int, request: bytes) -> tuple[bytes, bool]:
        if conn == 1 and req == 2:
            return b"", True  # as if its keep-alive timer fired just as the request came
        return OK, False

    async with raw_server(script) as raw:
        assert (await client.post(raw.url, b"first")).body == b"ok"
        r = await client.post(raw.url, b"second")
        assert r.body == b"ok"
        assert raw.connections == 2
        assert [q.endswith(b"second") for q in raw.requests] == [False, True, True]


async def test_no_retry_on_a_fresh_connection(client: HttpClient) -> None:
    async with raw_server(lambda c, r, q: (b"", True)) as raw:
        with pytest.raises(ConnectionClosed, match="before any response byte"):
            await client.post(raw.url, b"x")
        assert raw.connections == 1


async def test_no_retry_after_response_bytes(client: HttpClient) -> None:
    def script(conn: int, req: int, request: bytes) -> tuple[bytes, bool]:
        if req == 2:
            return b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", True
        return OK, False

    async with raw_server(script) as raw:
        await client.post(raw.url, b"1")
        with pytest.raises(ConnectionClosed, match="Content-Length body bytes missing"):
            await client.post(raw.url, b"2")
        assert raw.connections == 1


async def test_close_delimited_body(client: HttpClient) -> None:
    def script(conn: int, req: int, request: bytes) -> tuple[bytes, bool]:
        return b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", True

    async with raw_server(script) as raw:
        r = await client.post(raw.url, b"")
        assert (r.body, r.keep_alive) == (b"until the end", False)
        await client.post(raw.url, b"")
        assert raw.connections == 2


@pytest.mark.parametrize(("answer", "message"), [
    (b"SPAM SPAM SPAM\r\n\r\n", "malformed status line"),
    (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", "max_header_bytes"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"b" * 5000, "max_body_bytes"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"400\r\n" + b"c" * 1024
     + b"\r\n0\r\n\r\n", "max_body_bytes"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "Content-Length"),
    (OK + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "unsolicited"),
])
async def test_hostile_server_gets_protocol_error_and_no_reuse(answer: bytes,
                                                               message: str) -> None:
    def script(conn: int, req: int, request: bytes) -> tuple[bytes, bool]:
        return (answer if conn == 1 else OK), False

    c = HttpClient(max_body_bytes=1000)
    try:
        async with raw_server(script) as raw:
            with pytest.raises(ProtocolError, match=message) as info:
                await c.post(raw.url, b"{}")
            assert raw.url.removeprefix("http://").rstrip("/") in str(info.value)
            assert isinstance(info.value, HttpError)
            assert (await c.post(raw.url, b"{}")).body == b"ok"
            assert raw.connections == 2
    finally:
        await c.close()


# -- the same scenarios on uvloop (what the nodes run on when it is importable) ---------------

Scenario = Callable[[HttpClient, Path], Awaitable[None]]


def _client_only(f: Callable[[HttpClient], Awaitable[None]]) -> Scenario:
    return lambda c, p: f(c)


_ON_UVLOOP: dict[str, Scenario] = {
    f.__name__: _client_only(f) for f in (
        test_post_round_trip, test_keep_alive_reuses_one_connection,
        test_server_closing_idle_connection_is_noticed, test_slow_server_times_out_within_bound,
        test_refused_port_is_connect_error, test_chunked_response,
        test_connection_close_response_is_not_reused, test_head_request,
        test_retry_once_when_server_closed_kept_alive_connection,
        test_no_retry_on_a_fresh_connection, test_no_retry_after_response_bytes,
        test_close_delimited_body)
} | {
    "test_concurrency_cap_per_origin": lambda c, p: test_concurrency_cap_per_origin(),
    "test_close_fails_waiters": lambda c, p: test_close_fails_waiters_and_requests_in_flight(),
    "test_https_with_self_signed_cert": lambda c, p: test_https_with_self_signed_cert(p),
    "test_hostile_server": lambda c, p: test_hostile_server_gets_protocol_error_and_no_reuse(
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", "max_header_bytes"),
}


@pytest.mark.parametrize("name", sorted(_ON_UVLOOP))
def test_on_uvloop(name: str, tmp_path: Path) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def run() -> None:
        c = HttpClient()
        try:
            await _ON_UVLOOP[name](c, tmp_path)
        finally:
            await c.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())
