"""The MaaP's SIP side: a user agent over TCP toward the 5GMC (the chatbot platform on the ISC
interface).

- :class:`SipLinkCore` is sans-IO: it builds out-of-dialog requests (RFC 3261 §8.1.1), keeps
  their client transactions keyed by Via branch (§17.1.3) with a Timer-F-like deadline (§17.1.2.2:
  no final response in time → a transport failure for the caller), and classifies what arrives
  into responses and requests. Time is passed in.
- :class:`SipLink` is the asyncio adapter: one listener the 5GMC connects to for P2A messages and
  IMDNs, and one persistent outgoing connection to the 5GMC (reconnected with backoff) that
  carries every A2P request, many in flight at once.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

from ..sip.errors import RemoteProtocolError
from ..sip.headers import Headers
from ..sip.message import Request, Response, make_response
from ..sip.parser import KEEPALIVE, StreamFramer, parse_message

TIMER_TICK = 0.01


class LinkError(Exception):
    """The request got no final response: the 5GMC is unreachable, the connection dropped, or
    the transaction timed out (Timer F)."""


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    branch: str
    response: Response


@dataclass(frozen=True, slots=True)
class RequestReceived:
    request: Request


@dataclass(frozen=True, slots=True)
class GarbageReceived:
    """Bytes that are not a SIP message we can use; ``answer`` is a 400 to send back when the
    request could be identified (RFC 3261 §8.2.6), else None."""

    reason: str
    answer: bytes | None


Received = ResponseReceived | RequestReceived | GarbageReceived | None


class SipLinkCore:
    """Client transactions of the link, sans-IO. Over TCP nothing is retransmitted (§17.1.2.2:
    Timer E only on unreliable transports); only the deadline matters."""

    def __init__(self, *, via_host: str, via_port: int, timeout_s: float,
                 user_agent: str = "fivegmc-maap", max_size: int = 1_048_576) -> None:
        self.via_host = via_host
        self.via_port = via_port
        self.timeout_s = timeout_s
        self.user_agent = user_agent
        self.max_size = max_size
        # branch -> deadline; one timeout for all, so insertion order is deadline order
        self._pending: OrderedDict[str, float] = OrderedDict()
        self._prefix = os.urandom(4).hex()
        self._seq = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def build_request(self, method: str, uri: str, *, from_uri: str, to_uri: str,
                      headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
                      body: bytes = b"", now: float) -> tuple[str, bytes]:
        """A new request and its client transaction; returns (branch, bytes to send)."""
        self._seq += 1
        branch = f"z9hG4bK{self._prefix}{self._seq:x}"
        items = [
            ("Via", f"SIP/2.0/TCP {self.via_host}:{self.via_port};branch={branch};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<{from_uri}>;tag={self._prefix}{self._seq:x}"),
            ("To", f"<{to_uri}>"),
            ("Call-ID", f"{branch}@{self.via_host}"),
            ("CSeq", f"1 {method}"),
            ("User-Agent", self.user_agent),
            *headers,
        ]
        self._pending[branch] = now + self.timeout_s
        return branch, Request(method, uri, Headers(items), body).to_bytes()

    def receive(self, data: bytes) -> Received:
        """One framed message from either connection. Responses to unknown branches (late,
        or duplicates) and provisional responses give None."""
        if data == KEEPALIVE:
            return None
        try:
            msg = parse_message(data, max_size=self.max_size, stream=True)
        except RemoteProtocolError as exc:
            return GarbageReceived(exc.reason, None)  # nothing identifies it: drop (§8.2.6)
        if isinstance(msg, Response):
            try:
                branch = msg.top_via().branch or ""
            except RemoteProtocolError as exc:
                return GarbageReceived(exc.reason, None)
            if msg.status < 200 or self._pending.pop(branch, None) is None:
                return None
            return ResponseReceived(branch, msg)
        try:
            msg.cseq()
            msg.call_id()
            msg.from_()
            msg.request_uri()
        except RemoteProtocolError as exc:
            reason = "".join(c if c.isprintable() else "?" for c in exc.reason)[:120]
            answer = make_response(msg, 400, f"Bad Request ({reason})", to_tag="maap")
            return GarbageReceived(exc.reason, answer.to_bytes())
        return RequestReceived(msg)

    def abandon(self, branch: str) -> None:
        self._pending.pop(branch, None)

    def abandon_all(self) -> list[str]:
        """The connection is gone: every open transaction fails (§18.4 transport error)."""
        branches = list(self._pending)
        self._pending.clear()
        return branches

    def next_deadline(self) -> float | None:
        for deadline in self._pending.values():
            return deadline
        return None

    def handle_timer(self, now: float) -> list[str]:
        """Branches whose Timer F fired."""
        expired: list[str] = []
        while self._pending:
            branch, deadline = next(iter(self._pending.items()))
            if deadline > now:
                break
            del self._pending[branch]
            expired.append(branch)
        return expired


RequestHandler = Callable[[Request], "Response | Awaitable[Response]"]
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class _Conn(asyncio.Protocol):
    def __init__(self, link: SipLink, outgoing: bool) -> None:
        self.link = link
        self.outgoing = outgoing
        self.framer = StreamFramer(link.core.max_size)
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        # Messages written in one event-loop iteration leave in one writev (fewer syscalls
        # here and fewer reads at the 5GMC under load); order is kept.
        self._out: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.link._conns.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.framer.feed(data)
        except RemoteProtocolError as exc:
            self.link.log.warning("maap sip: framing lost, closing connection", why=exc.reason)
            self.close()
            return
        for msg in messages:
            self.link._on_message(msg, self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link._conns.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)
        if self.outgoing:
            self.link._outgoing_lost(self)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if not self._out:
                self._loop.call_soon(self._flush)
            self._out.append(data)

    def _flush(self) -> None:
        chunks, self._out = self._out, []
        if chunks and self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(chunks)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._flush()
            self.transport.close()


class SipLink:
    """The asyncio side of the link. ``on_request`` answers requests from the 5GMC (it may
    return the response or an awaitable of it)."""

    def __init__(self, *, on_request: RequestHandler, log: Any, timeout_s: float = 32.0,
                 connect_timeout_s: float = 5.0, max_size: int = 1_048_576) -> None:
        self.on_request = on_request
        self.log = log
        self.connect_timeout_s = connect_timeout_s
        self.core = SipLinkCore(via_host="127.0.0.1", via_port=0, timeout_s=timeout_s,
                                max_size=max_size)
        self.center: tuple[str, int] | None = None
        self.address: tuple[str, int] | None = None
        self._server: asyncio.Server | None = None
        self._out: _Conn | None = None
        self._up = asyncio.Event()
        self._conns: set[_Conn] = set()
        self._futures: dict[str, asyncio.Future[Response]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._spawn: Spawn | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(lambda: _Conn(self, False), host, port,
                                                      reuse_address=True)
        sock = self._server.sockets[0].getsockname()
        self.address = (str(sock[0]), int(sock[1]))
        self.core.via_host, self.core.via_port = self.address
        return self.address

    async def run(self, center: tuple[str, int]) -> None:
        """Keep the outgoing connection to ``center`` up until cancelled; requests from the
        5GMC are answered in tasks of this group."""
        self.center = center
        self._loop = asyncio.get_running_loop()
        try:
            async with asyncio.TaskGroup() as tg:
                self._spawn = tg.create_task
                tg.create_task(self._keep_connected(center))
        finally:
            self._spawn = None

    async def _keep_connected(self, center: tuple[str, int]) -> None:
        assert self._loop is not None
        backoff = 0.05
        while True:
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                # that arrives as the connect completes, and the task would never end.
                async with asyncio.timeout(self.connect_timeout_s):
                    _, conn = await self._loop.create_connection(lambda: _Conn(self, True),
                                                                 *center)
            except (OSError, TimeoutError) as exc:
                self.log.warning("maap sip: cannot reach the 5GMC", center=f"{center[0]}:"
                                 f"{center[1]}", error=str(exc), retry_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            self._out = conn
            self._up.set()
            await conn.closed
            self._up.clear()
            self._out = None

    def _outgoing_lost(self, conn: _Conn) -> None:
        if self._out is conn:
            self._up.clear()
            self._out = None
        for branch in self.core.abandon_all():
            fut = self._futures.pop(branch, None)
            if fut is not None and not fut.done():
                fut.set_exception(LinkError("connection to the 5GMC lost"))

    async def request(self, method: str, uri: str, *, from_uri: str, to_uri: str,
                      headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
                      body: bytes = b"") -> Response:
        """Send a request to the 5GMC and wait for its final response (LinkError if none)."""
        fut = await self.send(method, uri, from_uri=from_uri, to_uri=to_uri, headers=headers,
                              body=body)
        try:
            return await fut
        finally:
            if not fut.done():
                fut.cancel()  # the caller gave up: end the transaction

    async def send(self, method: str, uri: str, *, from_uri: str, to_uri: str,
                   headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
                   body: bytes = b"") -> asyncio.Future[Response]:
        """Send a request to the 5GMC (waiting for the connection, LinkError if none) and
        return the future of its final response, which resolves (LinkError on Timer F or a
        lost connection) whether or not anyone awaits it: a caller cancelled after the request
        went out can still learn how it ended (the MaaP's shutdown drain)."""
        if not self._up.is_set():
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    await self._up.wait()
            except TimeoutError:
                raise LinkError("no connection to the 5GMC") from None
        conn = self._out
        assert conn is not None and self._loop is not None
        now = self._loop.time()
        branch, data = self.core.build_request(method, uri, from_uri=from_uri, to_uri=to_uri,
                                               headers=headers, body=body, now=now)
        fut: asyncio.Future[Response] = self._loop.create_future()
        self._futures[branch] = fut
        fut.add_done_callback(lambda _: self._ended(branch))
        conn.write(data)
        self._rearm()
        return fut

    def _ended(self, branch: str) -> None:
        self._futures.pop(branch, None)
        self.core.abandon(branch)

    # -- incoming ------------------------------------------------------------------------
    def _on_message(self, data: bytes, conn: _Conn) -> None:
        event = self.core.receive(data)
        match event:
            case ResponseReceived(branch, response):
                fut = self._futures.pop(branch, None)
                if fut is not None and not fut.done():
                    fut.set_result(response)
            case RequestReceived(request):
                self._answer(request, conn)
            case GarbageReceived(reason, answer):
                self.log.warning("maap sip: bad message from the 5GMC", why=reason)
                if answer is not None:
                    conn.write(answer)
            case None:
                if data == KEEPALIVE:
                    conn.write(b"\r\n")  # RFC 5626 §4.4.1 pong

    def _answer(self, request: Request, conn: _Conn) -> None:
        try:
            result = self.on_request(request)
        except Exception as exc:  # a bug must not kill the connection; answer 500
            self.log.error("maap sip: request handler failed", error=repr(exc))
            conn.write(make_response(request, 500, to_tag="maap").to_bytes())
            return
        if isinstance(result, Response):
            conn.write(result.to_bytes())
            return
        coro = self._finish(request, result, conn)
        spawn = self._spawn or asyncio.get_running_loop().create_task
        task = spawn(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, request: Request, pending: Awaitable[Response], conn: _Conn) -> None:
        try:
            response = await pending
        except Exception as exc:
            self.log.error("maap sip: request handler failed", error=repr(exc))
            response = make_response(request, 500, to_tag="maap")
        conn.write(response.to_bytes())

    # -- Timer F ---------------------------------------------------------------------------
    def _rearm(self) -> None:
        deadline = self.core.next_deadline()
        if deadline is None or self._loop is None:
            return
        deadline = math.ceil(deadline / TIMER_TICK) * TIMER_TICK
        if self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        assert self._loop is not None
        self._timer = None
        self._timer_at = None
        for branch in self.core.handle_timer(self._loop.time()):
            fut = self._futures.pop(branch, None)
            if fut is not None and not fut.done():
                fut.set_exception(LinkError("no final response from the 5GMC (Timer F)"))
        self._rearm()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
