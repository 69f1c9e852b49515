"""End to end on real sockets: REGISTER, MESSAGE relay, OPTIONS capability answers, errors."""

from __future__ import annotations

import asyncio

import pytest

from fivegmc.node import Node

A = "+8613800000001"
B = "+8613800000002"
SMS_ONLY = "+8613900000001"
UNKNOWN = "+8613700000001"

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_register_and_message_between_two_ues(ue_factory, transport: str) -> None:
    a = await ue_factory(A, transport)
    b = await ue_factory(B, transport)
    r = await b.register()
    assert r.status == 200
    assert any(B in c for c in r.headers.get_all("Contact"))
    assert (await a.register()).status == 200
    resp = await a.message(B, "你好, 5G message")
    assert resp.status == 200
    assert len(b.received) == 1
    got = b.received[0]
    assert got.method == "MESSAGE"
    assert "你好, 5G message".encode() in got.body  # CPIM carried untouched
    assert got.headers.get("Content-Type") == "message/cpim"
    assert got.int_header("Max-Forwards") == 69
    assert len(got.vias()) == 2
    # the 200 that reached A has our Via stripped: only A's own Via left
    assert len(resp.vias()) == 1


async def test_message_to_offline_and_unknown(ue_factory) -> None:
    a = await ue_factory(A)
    assert (await a.message(B)).status == 202  # offline RCS subscriber: stored (issue 3)
    assert (await a.message(UNKNOWN)).status == 404
    # issue 5: P2P to an SMS-only subscriber falls back to SMS (tests/e2e/test_p2p_sms.py);
    # with messaging.sms_fallback = false it is 480 (test_p2p_sms.py checks that too)
    assert (await a.message(SMS_ONLY)).status == 202


async def test_options_four_capability_cases(ue_factory) -> None:
    a = await ue_factory(A)
    b = await ue_factory(B)
    await b.register()
    rcs = await a.options(B)
    assert rcs.status == 200
    contact = rcs.headers.get("Contact") or ""
    assert "oma.cpm.msg" in contact and "+g.3gpp.icsi-ref" in contact
    sms = await a.options(SMS_ONLY)
    assert sms.status == 200
    assert "icsi-ref" not in (sms.headers.get("Contact") or "")
    assert (await a.options("+8613800000003")).status == 480
    assert (await a.options(UNKNOWN)).status == 404


async def test_max_forwards_zero_is_483(ue_factory) -> None:
    a = await ue_factory(A)
    b = await ue_factory(B)
    await b.register()
    req = a.build("MESSAGE", f"sip:{B}@ims.mnc000.mcc460.3gppnetwork.org", f"<sip:{B}@x>",
                  headers=[("Content-Type", "text/plain")], body=b"hi")
    req.headers.set("Max-Forwards", "0")
    assert (await a.request(req)).status == 483


async def test_unregister(ue_factory, node: Node) -> None:
    b = await ue_factory(B)
    await b.register()
    assert node.sip.registrar.binding_count == 1
    assert (await b.register(expires=0)).status == 200
    assert node.sip.registrar.binding_count == 0


async def test_udp_retransmission_absorbed(ue_factory) -> None:
    a = await ue_factory(A)
    b = await ue_factory(B)
    await b.register()
    req = a.build("MESSAGE", f"sip:{B}@ims.mnc000.mcc460.3gppnetwork.org", f"<sip:{B}@x>",
                  headers=[("Content-Type", "text/plain")], body=b"once")
    first = await a.request(req)
    assert first.status == 200
    again = await a.request(req)  # same branch: a retransmission, answered from the txn
    assert again.status == 200
    await asyncio.sleep(0.05)
    assert len(b.received) == 1


async def test_registration_expires_over_time() -> None:
    from fivegmc.node import running

    from .conftest import make_profile
    from .ue import UE

    async with running(make_profile("registrar.min_expires=1")) as node:
        lst = node.listener("udp")
        a = await UE(A, (lst.host, lst.port)).start()
        b = await UE(B, (lst.host, lst.port)).start()
        try:
            ok = await b.register(expires=1)
            assert ok.status == 200
            assert "expires=1" in (ok.headers.get("Contact") or "")
            assert node.registry.get_sample_value("fivegmc_sip_registrations") == 1
            assert (await a.message(B)).status == 200
            await asyncio.sleep(2.2)  # the node's housekeeping runs every second
            assert node.sip.registrar.binding_count == 0
            assert node.registry.get_sample_value("fivegmc_sip_registrations") == 0
            assert (await a.message(B)).status == 202  # offline now: stored, not relayed
        finally:
            a.close()
            b.close()


async def test_interval_too_brief_and_clamped(ue_factory) -> None:
    b = await ue_factory(B)
    brief = await b.register(expires=10)
    assert brief.status == 423
    assert brief.headers.get("Min-Expires") == "60"
    long = await b.register(expires=999999)
    assert long.status == 200
    assert "expires=7200" in (long.headers.get("Contact") or "")


async def test_several_contacts_fork_first_2xx_wins(ue_factory) -> None:
    a = await ue_factory(A)
    b1 = await ue_factory(B)
    b2 = await ue_factory(B, answer=486)
    assert (await b1.register()).status == 200
    r = await b2.register()
    assert r.status == 200 and len(r.headers.get_all("Contact")) == 2
    resp = await a.message(B)
    assert resp.status == 200
    assert len(b1.received) == 1 and len(b2.received) == 1


async def test_no_fork_goes_to_the_most_recent_binding_only(ue_factory) -> None:
    """RFC 3841 §9.1: Request-Disposition: no-fork → a single target (highest q, then the
    most recently registered)."""
    a = await ue_factory(A)
    old = await ue_factory(B)
    new = await ue_factory(B)
    await old.register()
    await asyncio.sleep(0.01)
    await new.register()
    resp = await a.message(B, extra=[("Request-Disposition", "no-fork")])
    assert resp.status == 200
    assert len(new.received) == 1 and old.received == []


async def test_node_connects_out_over_tcp_to_a_contact_that_asks_for_it(
        node: Node, ue_factory) -> None:
    """A UE registered over UDP with Contact ;transport=tcp is reached by the node opening a
    TCP connection to that address (RFC 3261 §18.1.1); the 200 comes back over it."""
    from fivegmc.sip.message import make_response
    from fivegmc.sip.parser import StreamFramer, parse_message

    got: list[bytes] = []

    async def ue_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = StreamFramer()
        while data := await reader.read(65536):
            for raw in framer.feed(data):
                got.append(raw)
                req = parse_message(raw, stream=True)
                writer.write(make_response(req, 200, to_tag="tcpue").to_bytes())  # type: ignore[arg-type]

    server = await asyncio.start_server(ue_tcp, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        b = await ue_factory(B)
        b_contact = f"<sip:{B}@127.0.0.1:{port};transport=tcp>"
        req = b.build("REGISTER", "sip:ims.mnc000.mcc460.3gppnetwork.org",
                      f"<sip:{B}@ims.mnc000.mcc460.3gppnetwork.org>",
                      headers=[("Contact", b_contact), ("Expires", "600")])
        assert (await b.request(req)).status == 200
        a = await ue_factory(A)
        resp = await a.message(B, "over a connection the node opened")
        assert resp.status == 200
        assert len(got) == 1 and b"SIP/2.0/TCP" in got[0]
    finally:
        server.close()


async def test_capability_forward_mode_asks_the_ue_then_answers_from_the_cache() -> None:
    from fivegmc.node import running

    from .conftest import make_profile
    from .ue import UE

    async with running(make_profile("capability.mode=forward",
                                    "capability.cache_ttl_s=60")) as node:
        lst = node.listener("udp")
        a = await UE(A, (lst.host, lst.port)).start()
        b = await UE(B, (lst.host, lst.port)).start()
        try:
            await b.register(tags="")  # registered without tags: only the UE's answer has them
            first = await a.options(B)
            assert first.status == 200
            assert "oma.cpm.msg" in (first.headers.get("Contact") or "")  # the UE's own answer
            assert [m.method for m in b.received] == ["OPTIONS"]
            second = await a.options(B)
            assert second.status == 200 and "oma.cpm.msg" in (second.headers.get("Contact") or "")
            assert len(b.received) == 1  # answered from the cache
            await b.register(tags="")  # a new REGISTER drops the cached answer
            await a.options(B)
            assert len(b.received) == 2
            assert (await a.options("+8613800000009")).status == 480  # offline: registrar
        finally:
            a.close()
            b.close()
