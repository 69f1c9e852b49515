"""Event loop choice: uvloop when it is importable (DESIGN.md §4), else asyncio's default."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable


def loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    try:
        import uvloop
    except ImportError:
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def tune_gc() -> None:
    """Make the collector fit a proxy's heap: every UDP transaction lives for Timer J/K
    (32 s / 5 s), so hundreds of thousands of objects stay alive at load and the default
    gen-0 threshold (700) would rescan them constantly (measured: ~2x CPU per MESSAGE).
    Objects created at start-up are frozen out of collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
