"""A UDP endpoint: datagrams in to a callback, datagrams out by address."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import cast

#: (data, the peer address as the transport gives it: (host, port[, flowinfo, scope_id]); the
#: same tuple each time, so the callee may use it as a dict key)
Address = tuple[str | int, ...]
OnDatagram = Callable[[bytes, Address], None]
UDP_BUFFER_BYTES = 8 * 1024 * 1024
# Linux <linux/sock_diag.h>: SO_MEMINFO returns u32[SK_MEMINFO_VARS].
_SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)
_MEMINFO_LEN = 9 * 4
_SK_MEMINFO_RMEM_ALLOC = 0
_SK_MEMINFO_DROPS = 8


class UdpEndpoint(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: OnDatagram, on_error: Callable[[Exception], None]) -> None:
        self._on_datagram = on_datagram
        self._on_error = on_error
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable) for earlier sends; the transaction timers cover them.
        self._on_error(exc)

    def send(self, data: bytes, host: str, port: int) -> None:
        if self.transport is not None:
            self.transport.sendto(data, (host, port))

    @property
    def local_address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def meminfo(self) -> tuple[int, int] | None:
        """(bytes of unread datagrams, datagrams the kernel dropped) for this socket, from
        Linux SO_MEMINFO; None where the platform does not provide it."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None:
            return None
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, _MEMINFO_LEN)
        except OSError:
            return None
        fields = struct.unpack(f"{_MEMINFO_LEN // 4}I", raw)
        return fields[_SK_MEMINFO_RMEM_ALLOC], fields[_SK_MEMINFO_DROPS]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_udp(host: str, port: int, on_datagram: OnDatagram,
                   on_error: Callable[[Exception], None]) -> UdpEndpoint:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: UdpEndpoint(on_datagram, on_error), local_addr=(host, port)
    )
    protocol.transport = transport  # uvloop may call connection_made only later
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Bursts of thousands of datagrams are normal load for a message center; the default
        # buffers (~200 KB) drop them. The kernel caps these at net.core.[rw]mem_max.
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, opt, UDP_BUFFER_BYTES)
    return protocol
