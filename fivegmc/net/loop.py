"""Event loop choice: uvloop when it is importable (DESIGN.md §4), else asyncio's default."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    try:
        import uvloop
    except ImportError:
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"
