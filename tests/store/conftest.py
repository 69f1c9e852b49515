"""Fixtures for the store contract suite: one behavioural suite, every backend.

``make_store(**opts)`` opens a store of the parametrized backend (closed at teardown); ``store``
is one opened with the defaults. The Redis param needs a real ``redis-server`` (started by
``tests.store.redis_server``); without it the param is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fivegmc.store.factory import open_store
from fivegmc.store.protocol import Store

MakeStore = Callable[..., Awaitable[Store]]

BACKENDS = ["memory", "sqlite", "redis"]


@contextlib.asynccontextmanager
async def _redis_url() -> AsyncIterator[str]:
    try:
        mod = importlib.import_module("tests.store.redis_server")
    except ImportError as exc:
        pytest.skip(f"redis backend: tests/store/redis_server.py not importable ({exc})")
    if not mod.redis_available():
        pytest.skip("redis backend: redis-server (or the redis package) is not available")
    async with mod.redis_server() as url:
        yield str(url)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_store(backend: str, tmp_path: Path) -> AsyncIterator[MakeStore]:
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(_redis_url()) if backend == "redis" else None
        opened: list[Store] = []
        counter = 0

        async def make(**opts: Any) -> Store:
            nonlocal counter
            counter += 1
            if backend == "sqlite":
                opts.setdefault("path", str(tmp_path / f"store{counter}.db"))
            elif backend == "redis":
                opts.setdefault("url", url)
            store = open_store(backend, **opts)
            await store.open()
            opened.append(store)
            return store

        try:
            yield make
        finally:
            for store in reversed(opened):
                await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    return await make_store()
