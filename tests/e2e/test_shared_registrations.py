"""Two 5GMC processes' worth of nodes sharing one real Redis (DESIGN.md §8): a UE registered on
one is reached through the other, its de-registration is seen there too, and a message stored
by one is delivered by the other when the UE comes back."""

from __future__ import annotations

import pytest

from fivegmc.cpim import parse_cpim
from fivegmc.node import Node, running
from tests.store.redis_server import redis_available, redis_server

from .conftest import make_profile
from .ue import UE, wait_for

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not redis_available(), reason="redis-server not installed")]
A = "+8613800000001"
B = "+8613800000002"


async def ue_on(node: Node, number: str) -> UE:
    lst = node.listener("udp")
    return await UE(number, (lst.host, lst.port), "udp").start()


async def test_registration_on_one_node_is_used_by_the_other() -> None:
    async with redis_server() as url:
        shared = ("store.kind=redis", f'store.url="{url}"', "maap.enabled=false")
        async with running(make_profile(*shared)) as one, \
                running(make_profile(*shared)) as two:
            b = await ue_on(one, B)
            a = await ue_on(two, A)
            try:
                assert (await b.register()).status == 200
                await wait_for(lambda: bool(two.sip.registrar.lookup(B, two.sip.now())))
                assert (await a.message(B, "via the other node")).status == 200
                assert parse_cpim(b.received[-1].body).content == b"via the other node"

                assert (await b.register(expires=0)).status == 200  # gone, on node one
                await wait_for(lambda: not two.sip.registrar.lookup(B, two.sip.now()))
                assert (await a.message(B, "kept for later")).status == 202  # stored in Redis
                before = len(b.received)
                assert (await b.register()).status == 200  # back, on node one
                await wait_for(lambda: len(b.received) > before)
                assert parse_cpim(b.received[-1].body).content == b"kept for later"
            finally:
                a.close()
                b.close()
