"""Build a :class:`~fivegmc.store.protocol.Store` backend by name (from the config)."""

from __future__ import annotations

from typing import Any

from .protocol import Store


def open_store(kind: str, *, path: str | None = None, url: str | None = None, **opts: Any) -> Store:
    """Return an unopened store of ``kind`` ("memory", "sqlite" or "redis").

    ``path`` is the SQLite file, ``url`` the Redis URL (``redis://host:port/db``); ``opts`` are
    passed to the backend's constructor (e.g. ``max_stored``, ``batch_window_s``). The caller
    awaits ``open()`` before use and ``close()`` at the end. The Redis backend (and the redis
    package) is imported only when asked for.
    """
    if kind == "memory":
        from .memory import MemoryStore

        return MemoryStore(**opts)
    if kind == "sqlite":
        if path is None:
            raise ValueError("the sqlite store needs a path")
        from .sqlite import SqliteStore

        return SqliteStore(path, **opts)
    if kind == "redis":
        if url is None:
            raise ValueError("the redis store needs a url")
        from .redis import RedisStore

        store: Store = RedisStore(url=url, **opts)
        return store
    raise ValueError(f"unknown store kind {kind!r} (memory, sqlite or redis)")
