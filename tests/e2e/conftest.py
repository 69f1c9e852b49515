"""Fixtures: a 5GMC node started in-process on 127.0.0.1 with ephemeral ports and short timers."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable

import pytest

from fivegmc.config import Profile, load_profile
from fivegmc.node import Node, running

from .ue import UE

#: The MaaP's files (webhook queue, states, media) for tests that do not choose their own.
_MAAP_DATA = tempfile.mkdtemp(prefix="fivegmc-test-maap-")
atexit.register(shutil.rmtree, _MAAP_DATA, True)

#: Short RFC 3261 timers so timeout paths take well under a second (T1 50 ms → F = 3.2 s).
FAST = ("sip.udp_port=0", "sip.tcp_port=0", "admin.port=0", "sip.t1_ms=50", "sip.t2_ms=400",
        "sip.t4_ms=500", "log.level=WARNING", "store.kind=memory",
        "messaging.retry_initial_s=0.2", "messaging.retry_max_s=1", "cdr.enabled=false",
        "maap.port=0", "maap.sip_port=0", f'maap.data_dir="{_MAAP_DATA}"', "smsc.port=0")


def make_profile(*extra: str, path: str | None = None) -> Profile:
    return load_profile(path, (*FAST, *extra))


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    async with running(make_profile()) as n:
        yield n


@pytest.fixture
async def ue_factory(node: Node) -> AsyncIterator[Callable[..., object]]:
    made: list[UE] = []

    async def make(number: str, transport: str = "udp", **kw: object) -> UE:
        lst = node.listener(transport)
        ue = await UE(number, (lst.host, lst.port), transport, **kw).start()  # type: ignore[arg-type]
        made.append(ue)
        return ue

    yield make
    for ue in made:
        ue.close()
