"""A real, throw-away ``redis-server`` for tests (never a fake Redis).

``redis_server()`` (async) and ``redis_server_sync()`` start one on a free 127.0.0.1 port with
its own temporary directory, wait until it answers PING, yield its URL and always kill it and
remove the directory. :class:`RedisServer` gives tests the process itself (kill, restart on the
same port and directory, for durability tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

START_TIMEOUT = 5.0


def redis_available() -> bool:
    """Whether ``redis-server`` is on PATH."""
    return shutil.which("redis-server") is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process bound to 127.0.0.1 on a fixed port and directory.

    ``appendonly=True`` runs it with ``--appendonly yes --appendfsync always``, so what it
    acknowledged survives :meth:`kill` and :meth:`start` again.
    """

    def __init__(self, directory: Path, *, appendonly: bool = False, port: int = 0) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.port = port or _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait (at most START_TIMEOUT) until it answers PING."""
        args = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--loglevel", "warning",
        ]  # fmt: skip
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            if _ping(self.port):
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT} s")

    def kill(self) -> None:
        """SIGKILL the server (no shutdown save) and reap it."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@contextlib.contextmanager
def redis_server_process(*, appendonly: bool = False) -> Iterator[RedisServer]:
    """A started :class:`RedisServer`; killed and its directory removed on exit."""
    directory = Path(tempfile.mkdtemp(prefix="fivegmc-redis-"))
    server = RedisServer(directory, appendonly=appendonly)
    try:
        for attempt in range(3):  # the free port may be taken between probe and bind
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                server.port = _free_port()
        yield server
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def redis_server_sync(*, appendonly: bool = False) -> Iterator[str]:
    """Start a throw-away server and yield its ``redis://127.0.0.1:N/0`` URL."""
    with redis_server_process(appendonly=appendonly) as server:
        yield server.url


@contextlib.asynccontextmanager
async def redis_server(*, appendonly: bool = False) -> AsyncIterator[str]:
    """Async variant of :func:`redis_server_sync` (startup waits off the event loop)."""
    cm = redis_server_process(appendonly=appendonly)
    url = (await asyncio.to_thread(cm.__enter__)).url
    try:
        yield url
    finally:
        await asyncio.to_thread(cm.__exit__, None, None, None)
