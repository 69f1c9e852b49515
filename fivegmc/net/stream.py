"""SIP over stream transports (TCP, TLS): connections framed by Content-Length.

One :class:`StreamTransport` per listener keeps the open connections by peer address, so a
request for a UE registered over TCP goes back over the UE's own connection; when there is none
it connects out and queues what it has to send until the connection is up.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

from ..sip.errors import RemoteProtocolError
from ..sip.parser import StreamFramer

OnMessage = Callable[[bytes, str, str, int], None]  # data, transport, host, port
#: (transport, host, port, error, start of the buffered bytes) -> bytes to send before closing
OnFraming = Callable[[str, str, int, RemoteProtocolError, bytes], bytes | None]
OnFailed = Callable[[str, str, int], None]

#: A peer that does not read what we send is cut off beyond this much queued output.
MAX_WRITE_BUFFER = 4 * 1024 * 1024


class StreamConnection(asyncio.Protocol):
    def __init__(self, owner: StreamTransport) -> None:
        self.owner = owner
        self.framer = StreamFramer(owner.max_size)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.last_activity = time.monotonic()
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1]))
        self.owner._opened(self)

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        try:
            messages = self.framer.feed(data)
        except RemoteProtocolError as exc:
            # Framing is lost: nothing after this can be trusted. Close this connection only.
            head = bytes(self.framer.pending_head())
            answer = self.owner.on_framing_error(self.owner.name, self.peer[0], self.peer[1],
                                                 exc, head)
            if answer is not None and self.transport is not None:
                self.transport.write(answer)
            self.close()
            return
        for msg in messages:
            self.owner.on_message(msg, self.owner.name, self.peer[0], self.peer[1])

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._closed(self)

    def write(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if t.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.close()
            return
        self.last_activity = time.monotonic()
        t.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class StreamTransport:
    """A TCP or TLS listener plus its connections (accepted and outgoing)."""

    def __init__(
        self,
        name: str,
        *,
        on_message: OnMessage,
        on_framing_error: OnFraming,
        on_send_failed: OnFailed,
        on_count: Callable[[int], None],
        max_size: int,
        max_connections: int,
        idle_timeout: float,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.on_message = on_message
        self.on_framing_error = on_framing_error
        self.on_send_failed = on_send_failed
        self.on_count = on_count
        self.max_size = max_size
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.connections: dict[tuple[str, int], StreamConnection] = {}
        self._connecting: dict[tuple[str, int], StreamConnection] = {}
        self._server: asyncio.Server | None = None
        # Outgoing connects run as children of the node's TaskGroup once it runs (``spawn``);
        # before that (or without one) they are tracked here and cancelled on close.
        self.spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: StreamConnection(self), host, port, ssl=self.server_ssl, reuse_address=True,
        )
        sock = self._server.sockets[0].getsockname()
        return str(sock[0]), int(sock[1])

    def _opened(self, conn: StreamConnection) -> None:
        if len(self.connections) >= self.max_connections:
            conn.close()  # over the connection cap: refuse rather than grow without bound
            return
        self.connections[conn.peer] = conn
        self.on_count(1)

    def _closed(self, conn: StreamConnection) -> None:
        if self.connections.get(conn.peer) is conn:
            del self.connections[conn.peer]
            self.on_count(-1)

    def send(self, data: bytes, host: str, port: int) -> None:
        conn = self.connections.get((host, port))
        if conn is not None:
            conn.write(data)
            return
        pending = self._connecting.get((host, port))
        if pending is not None:
            pending.pending.append(data)
            return
        conn = StreamConnection(self)
        conn.pending.append(data)
        self._connecting[(host, port)] = conn
        coro = self._connect(conn, host, port)
        task = (self.spawn or asyncio.get_running_loop().create_task)(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: StreamConnection, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: conn, host, port, ssl=self.client_ssl),
                timeout=5.0,
            )
        except (OSError, TimeoutError, ssl.SSLError):
            self._connecting.pop((host, port), None)
            self.on_send_failed(self.name, host, port)
            return
        self._connecting.pop((host, port), None)
        for data in conn.pending:
            conn.write(data)
        conn.pending.clear()

    def sweep_idle(self, now: float) -> int:
        """Close connections idle longer than the timeout; returns how many."""
        idle = [c for c in self.connections.values()
                if now - c.last_activity > self.idle_timeout]
        for c in idle:
            c.close()
        return len(idle)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections.values()):
            conn.close()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
