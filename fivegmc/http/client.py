"""A lean asyncio HTTP/1.1 client over the sans-IO core in :mod:`fivegmc.http.h1`.

One :class:`asyncio.Protocol` per connection (no StreamReader/Writer), a keep-alive pool per
origin (scheme, host, port) capped at ``max_connections_per_origin`` with FIFO waiters, one
request at a time per connection (no pipelining, RFC 9112 §9.3.2). A request awaits one future
that the protocol resolves; its deadline is one ``call_at`` handle. No task is created per
request; the only timer the client owns is the idle-connection sweep, cancelled by :meth:`close`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from .h1 import HttpError, ProtocolError, Response, ResponseParser, build_request

__all__ = ["ConnectError", "ConnectionClosed", "HttpClient", "RequestTimeout"]


class ConnectError(HttpError):
    """No connection could be opened: refused, unreachable, DNS or TLS handshake failure."""


class RequestTimeout(HttpError, TimeoutError):
    """The request's total time (waiting for a connection included) ran out."""


class ConnectionClosed(HttpError):
    """The connection closed before the response was complete (or the client was closed)."""


#: Distinct URLs whose parse is kept (webhook URLs repeat; a bounded cache, oldest out first).
URL_CACHE_SIZE = 1024
#: Characters never valid in a URL given to the client (urlsplit would silently drop some).
_URL_BAD = re.compile(r"[\x00-\x20\x7f]")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class _Url:
    key: tuple[str, str, int]   # the origin (scheme, host, port), RFC 6454
    origin: str                 # the same, printable: for error messages
    host: str                   # to connect to (IPv6 without brackets)
    port: int
    tls: bool
    host_header: str            # RFC 9112 §3.2: host [":" port], port omitted when default
    target: str                 # origin-form: path ["?" query], as given (RFC 9112 §3.2.1)


def _parse_url(url: str) -> _Url:
    if _URL_BAD.search(url):
        raise ValueError(f"invalid URL {url!r}: whitespace or control character")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port is None:
        raise ValueError(f"unsupported URL scheme in {url!r} (http or https)")
    if "@" in parts.netloc:
        raise ValueError(f"userinfo in URLs is not supported: {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in URL {url!r}")
    port = parts.port or default_port  # .port raises ValueError when out of range
    named = f"[{host}]" if ":" in host else host
    host_header = named if port == default_port else f"{named}:{port}"
    target = parts.path or "/"
    if parts.query or url.endswith("?"):
        target = f"{target}?{parts.query}"
    return _Url((scheme, host, port), f"{scheme}://{named}:{port}", host, port,
                scheme == "https", host_header, target)


class _Conn(asyncio.Protocol):
    """One connection: feeds received bytes to its parser and resolves the pending request."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.parser = ResponseParser(max_body_bytes=pool.max_body)
        self.transport: asyncio.Transport | None = None
        self.fut: asyncio.Future[Response] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.method = ""
        self.started = False   # a byte of the current response has arrived
        self.usable = True     # open, and nothing left over that would confuse the next request
        self.idle_since = 0.0
        self.closed: asyncio.Future[None] = pool.loop.create_future()

    # -- driven by the request --------------------------------------------------------------

    def send(self, data: bytes, method: str, deadline: float, timeout_s: float
             ) -> asyncio.Future[Response]:
        loop = self.pool.loop
        fut: asyncio.Future[Response] = loop.create_future()
        self.fut = fut
        self.started = False
        self.method = method
        transport = self.transport
        if transport is None or transport.is_closing() or not self.usable:
            self.fut = None
            fut.set_exception(ConnectionClosed(f"{self.pool.origin}: connection already closed"))
            return fut
        self.parser.expect(method)
        self.timer = loop.call_at(deadline, self._timed_out, timeout_s)
        transport.write(data)
        return fut

    def reusable(self) -> bool:
        """May go back to the pool: open, and the server read the whole request and sent no
        extra bytes (RFC 9112 §9.3: one response per request on a persistent connection)."""
        t = self.transport
        return (self.usable and t is not None and not t.is_closing()
                and not self.parser.in_progress and t.get_write_buffer_size() == 0)

    def abort(self) -> None:
        self.usable = False
        self._settle()
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.usable = False
        if self.transport is not None:
            self.transport.close()

    def fail(self, exc: HttpError) -> None:
        """Fail the pending request with ``exc`` and drop the connection."""
        fut = self.fut
        self.abort()
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    def _settle(self) -> None:
        self.fut = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timed_out(self, timeout_s: float) -> None:
        self.timer = None
        self.fail(RequestTimeout(f"{self.method} {self.pool.origin}: no complete response "
                                 f"within {timeout_s:g}s"))

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.pool.conns.add(self)

    def data_received(self, data: bytes) -> None:
        self.started = True
        try:
            responses = self.parser.feed(data)
        except ProtocolError as exc:
            self.fail(ProtocolError(f"{self.pool.origin}: {exc}"))
            return
        if not responses:
            return
        fut = self.fut
        if fut is None or len(responses) > 1:
            # RFC 9112 §9.3.2 / §9.6: a response nobody asked for; the stream is out of step.
            self.fail(ProtocolError(f"{self.pool.origin}: unsolicited response "
                                    f"({responses[-1].status})"))
            return
        self._settle()
        if not fut.done():
            fut.set_result(responses[0])

    def eof_received(self) -> bool | None:
        self.usable = False
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        pool = self.pool
        pool.conns.discard(self)
        fut = self.fut
        if fut is not None:
            self._settle()
            if not fut.done():
                try:
                    responses = self.parser.feed_eof()
                except ProtocolError as perr:
                    why: str = str(perr)
                else:
                    if responses:  # a close-delimited body (RFC 9112 §6.3 rule 8)
                        fut.set_result(responses[0])
                        why = ""
                    else:
                        why = "connection closed before any response byte"
                if why:
                    cause = f" ({exc})" if exc is not None else ""
                    fut.set_exception(
                        ConnectionClosed(f"{self.method} {pool.origin}: {why}{cause}"))
        else:
            pool.lost_idle(self)
        if not self.closed.done():
            self.closed.set_result(None)


class _Pool:
    """Connections to one origin. ``open`` counts slots: connections open or being opened,
    idle ones included. A slot belongs to a request from acquisition until it gives the
    connection back (or frees the slot); idle connections' slots belong to the pool."""

    def __init__(self, url: _Url, limit: int, max_body: int,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.origin = url.origin
        self.limit = limit
        self.max_body = max_body
        self.loop = loop
        self.open = 0
        self.idle: dict[_Conn, None] = {}   # insertion-ordered: popitem() takes the newest
        self.conns: set[_Conn] = set()
        self.waiters: deque[asyncio.Future[_Conn | None]] = deque()

    def make_conn(self) -> _Conn:
        return _Conn(self)

    def pop_idle(self) -> _Conn | None:
        """The most recently used idle connection (LIFO lets the others age out)."""
        idle = self.idle
        while idle:
            conn = idle.popitem()[0]
            if conn.usable:
                return conn
            conn.abort()
            self.free_slot()
        return None

    def release(self, conn: _Conn) -> None:
        """A complete keep-alive exchange: hand the connection to the first waiter, or idle."""
        waiters = self.waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(conn)
                return
        conn.idle_since = self.loop.time()
        self.idle[conn] = None

    def free_slot(self) -> None:
        """A slot's connection is gone: the first waiter may open one in it."""
        waiters = self.waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
                return
        self.open -= 1

    def lost_idle(self, conn: _Conn) -> None:
        if conn in self.idle:
            del self.idle[conn]
            self.free_slot()

    def give_back(self, fut: asyncio.Future[_Conn | None]) -> None:
        """A waiter gave up (timeout or cancellation): pass on whatever it had been given."""
        if not fut.done():
            fut.cancel()
            return
        if fut.cancelled() or fut.exception() is not None:
            return
        conn = fut.result()
        if conn is None:
            self.free_slot()
        elif conn.reusable():
            self.release(conn)
        else:
            conn.abort()
            self.free_slot()


class HttpClient:
    """HTTP/1.1 client with per-origin keep-alive pools. Errors are :class:`HttpError`
    subclasses; any complete response, 5xx included, is returned as a :class:`Response`."""

    def __init__(self, *, max_connections_per_origin: int = 64, connect_timeout_s: float = 5.0,
                 idle_timeout_s: float = 30.0, ssl_context: ssl.SSLContext | None = None,
                 max_body_bytes: int = 1 << 20, user_agent: str = "fivegmc") -> None:
        if max_connections_per_origin < 1:
            raise ValueError("max_connections_per_origin must be at least 1")
        self._limit = max_connections_per_origin
        self._connect_timeout = connect_timeout_s
        self._idle_timeout = idle_timeout_s
        self._ssl = ssl_context
        self._max_body = max_body_bytes
        self._user_agent = user_agent
        self._urls: dict[str, _Url] = {}
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    def connections(self) -> int:
        """Connections open now (idle and in use), all origins."""
        return sum(len(p.conns) for p in self._pools.values())

    async def post(self, url: str, body: bytes, headers: Sequence[tuple[str, str]] = (),
                   timeout_s: float = 5.0) -> Response:
        return await self.request("POST", url, body=body, headers=headers, timeout_s=timeout_s)

    async def request(self, method: str, url: str, *, body: bytes = b"",
                      headers: Sequence[tuple[str, str]] = (), timeout_s: float = 5.0
                      ) -> Response:
        """Send one request and return its response. Raises ValueError for a bad URL or
        header, else only :class:`HttpError` subclasses."""
        if self._closed:
            raise ConnectionClosed("HttpClient is closed")
        u = self._urls.get(url)
        if u is None:
            u = self._remember(url)
        for name, _ in headers:
            if name.lower() == "user-agent":
                break
        else:
            headers = (("User-Agent", self._user_agent), *headers)
        data = build_request(method, u.target, u.host_header, headers, body)
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pool = self._pools.get(u.key)
        if pool is None:
            pool = self._pools[u.key] = _Pool(u, self._limit, self._max_body, loop)
        conn = pool.pop_idle()
        reused = conn is not None
        if conn is None:
            conn, reused = await self._acquire(pool, u, deadline, timeout_s)
        while True:
            try:
                resp = await conn.send(data, method, deadline, timeout_s)
            except ConnectionClosed:
                conn.abort()
                if reused and not conn.started and not self._closed:
                    # The server closed a kept-alive connection before answering (RFC 9112
                    # §9.3.1): once, on a fresh connection in the same slot.
                    conn = await self._open(pool, u, deadline, timeout_s)
                    reused = False
                    continue
                pool.free_slot()
                raise
            except BaseException:
                conn.abort()
                pool.free_slot()
                raise
            if resp.keep_alive and conn.reusable():
                pool.release(conn)
                if self._sweep is None and pool.idle:
                    self._sweep = loop.call_later(self._sweep_interval(), self._run_sweep)
            else:
                conn.close()
                pool.free_slot()
            return resp

    async def close(self) -> None:
        """Close every connection, fail waiting and in-flight requests with ConnectionClosed."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        closing: list[asyncio.Future[None]] = []
        for pool in self._pools.values():
            while pool.waiters:
                w = pool.waiters.popleft()
                if not w.done():
                    w.set_exception(ConnectionClosed(f"{pool.origin}: HttpClient closed"))
            pool.idle.clear()
            for conn in list(pool.conns):
                conn.fail(ConnectionClosed(f"{pool.origin}: HttpClient closed"))
                closing.append(conn.closed)
        self._pools.clear()
        if closing:
            await asyncio.wait(closing, timeout=5.0)

    # -- internals --------------------------------------------------------------------------

    def _remember(self, url: str) -> _Url:
        u = _parse_url(url)
        urls = self._urls
        if len(urls) >= URL_CACHE_SIZE:
            del urls[next(iter(urls))]
        urls[url] = u
        return u

    async def _acquire(self, pool: _Pool, u: _Url, deadline: float, timeout_s: float
                       ) -> tuple[_Conn, bool]:
        """A connection when no idle one was free: open one in a free slot, or wait (FIFO)."""
        if pool.open < pool.limit:
            pool.open += 1
            return await self._open(pool, u, deadline, timeout_s), False
        fut: asyncio.Future[_Conn | None] = pool.loop.create_future()
        pool.waiters.append(fut)
        try:
            async with asyncio.timeout_at(deadline):
                conn = await fut
        except TimeoutError:
            pool.give_back(fut)
            raise RequestTimeout(f"{u.origin}: no free connection within {timeout_s:g}s "
                                 f"(max_connections_per_origin={pool.limit})") from None
        except BaseException:
            pool.give_back(fut)
            raise
        if conn is not None and conn.reusable():
            return conn, True
        if conn is not None:  # closed while handed over: its slot is ours
            conn.abort()
        return await self._open(pool, u, deadline, timeout_s), False

    async def _open(self, pool: _Pool, u: _Url, deadline: float, timeout_s: float) -> _Conn:
        """Open a connection in a slot the caller holds; the slot is freed if this fails."""
        loop = pool.loop
        limit = min(deadline, loop.time() + self._connect_timeout)
        try:
            if self._closed:
                raise ConnectionClosed(f"{u.origin}: HttpClient closed")
            async with asyncio.timeout_at(limit):
                if u.tls:
                    ctx = self._ssl
                    if ctx is None:
                        ctx = self._ssl = ssl.create_default_context()
                    _, conn = await loop.create_connection(
                        pool.make_conn, u.host, u.port, ssl=ctx, server_hostname=u.host)
                else:
                    _, conn = await loop.create_connection(pool.make_conn, u.host, u.port)
        except TimeoutError:  # (before OSError: TimeoutError is one)
            pool.free_slot()
            if loop.time() >= deadline:
                raise RequestTimeout(f"{u.origin}: not connected within {timeout_s:g}s"
                                     ) from None
            raise ConnectError(f"{u.origin}: connect timed out after "
                               f"{self._connect_timeout:g}s") from None
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            pool.free_slot()
            raise ConnectError(f"{u.origin}: cannot connect: {exc}") from exc
        except BaseException:
            pool.free_slot()
            raise
        if self._closed:
            conn.abort()
            pool.free_slot()
            raise ConnectionClosed(f"{u.origin}: HttpClient closed")
        return conn

    def _sweep_interval(self) -> float:
        return max(self._idle_timeout / 4, 0.01)

    def _run_sweep(self) -> None:
        """Close connections idle for idle_timeout_s (so within 1.25× of it)."""
        self._sweep = None
        loop = self._loop
        assert loop is not None
        expired = loop.time() - self._idle_timeout
        left = False
        for key, pool in list(self._pools.items()):
            for conn in [c for c in pool.idle if c.idle_since <= expired]:
                del pool.idle[conn]
                conn.close()
                pool.free_slot()
            left = left or bool(pool.idle)
            if pool.open == 0 and not pool.waiters and not pool.conns:
                del self._pools[key]
        if left:
            self._sweep = loop.call_later(self._sweep_interval(), self._run_sweep)
