"""Bad input on real sockets: the node answers with the right status when it can, drops and
counts when it cannot, closes only the offending TCP connection, and keeps serving."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from fivegmc.node import Node
from fivegmc.sip.parser import parse_message

from .ue import DOMAIN, UE

pytestmark = pytest.mark.e2e
A = "+8613800000001"
B = "+8613800000002"


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return value or 0.0


async def udp_exchange(node: Node, data: bytes, timeout: float = 0.5) -> bytes | None:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class P(asyncio.DatagramProtocol):
        def datagram_received(self, d: bytes, addr: object) -> None:
            if not got.done():
                got.set_result(d)

    lst = node.listener("udp")
    transport, _ = await loop.create_datagram_endpoint(P, remote_addr=(lst.host, lst.port))
    try:
        transport.sendto(data)
        return await asyncio.wait_for(got, timeout)
    except TimeoutError:
        return None
    finally:
        transport.close()


def request(method: str = "MESSAGE", extra: str = "", body: bytes = b"hi",
            ruri: str = f"sip:{B}@{DOMAIN}", ctype: str = "text/plain") -> bytes:
    head = (
        f"{method} {ruri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbad1\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{A}@{DOMAIN}>;tag=a\r\n"
        f"To: <sip:{B}@{DOMAIN}>\r\n"
        "Call-ID: bad-input-1\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Content-Type: {ctype}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (request().replace(b"Content-Length: 2", b"Content-Length: 99"), 400),
        (request().replace(b"CSeq: 1 MESSAGE", b"CSeq: 1 OPTIONS"), 400),
        (request().replace(b"SIP/2.0\r\nVia", b"SIP/7.0\r\nVia"), 505),
        (request().replace(b"From: <sip:", b"From: <bad"), 400),
        (request(method="INVITE"), 405),
        (request(method="FROBNICATE"), 501),
        (request(ctype="application/x-unknown"), 415),
        (request(extra="Proxy-Require: foo\r\n"), 420),
        (request(ruri="mailto:someone@example.com"), 416),
    ],
    ids=["short-body", "cseq-mismatch", "version", "bad-from",
         "invite-405", "unknown-501", "415", "proxy-require-420", "416"],
)
async def test_bad_requests_get_proper_status(node: Node, data: bytes, status: int) -> None:
    answer = await udp_exchange(node, data)
    assert answer is not None, "no answer"
    resp = parse_message(answer)
    assert resp.status == status  # type: ignore[union-attr]
    if status == 405 or status == 501:
        assert "MESSAGE" in (resp.headers.get("Allow") or "")
    if status == 400:
        assert "(" in resp.reason  # type: ignore[union-attr]  # the reason says why


async def test_garbage_datagrams_are_dropped_and_counted(node: Node) -> None:
    before = metric(node.registry, "fivegmc_sip_parse_errors_total", transport="udp",
                    kind="malformed")
    bad_cseq = request(extra="CSeq: x\r\n").replace(b"CSeq: 1 MESSAGE\r\n", b"")
    for junk in (b"\x00\x01\x02", b"hello world", b"SIP/2.0 200 OK\r\n\r\n", bad_cseq):
        assert await udp_exchange(node, junk, timeout=0.1) is None
    after = metric(node.registry, "fivegmc_sip_parse_errors_total", transport="udp",
                   kind="malformed")
    assert after - before >= 3
    # still serving
    a = await UE(A, (node.listener("udp").host, node.listener("udp").port)).start()
    try:
        assert (await a.options(B)).status == 480
    finally:
        a.close()


async def test_tcp_garbage_closes_only_that_connection(node: Node, ue_factory) -> None:
    good = await ue_factory(B, "tcp")
    assert (await good.register()).status == 200
    lst = node.listener("tcp")
    reader, writer = await asyncio.open_connection(lst.host, lst.port)
    writer.write(b"MESSAGE sip:x SIP/2.0\r\nContent-Length: banana\r\n\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 2.0) == b""  # closed by the node
    writer.close()
    # the other TCP UE still works over its own connection
    a = await ue_factory(A)
    assert (await a.message(B)).status == 200
    assert metric(node.registry, "fivegmc_sip_parse_errors_total", transport="tcp",
                  kind="framing") == 1


async def test_tcp_bad_message_with_good_framing_gets_400_and_stays_open(ue_factory) -> None:
    ue = await ue_factory(A, "tcp")
    req = ue.build("MESSAGE", f"sip:{B}@{DOMAIN}", f"<sip:{B}@{DOMAIN}>",
                   headers=[("Content-Type", "text/plain")], body=b"x")
    req.headers.set("From", "<broken")
    assert (await ue.request(req)).status == 400
    assert (await ue.options(B)).status == 480  # connection still usable


async def test_tcp_keepalive_ping_gets_pong(node: Node) -> None:
    lst = node.listener("tcp")
    reader, writer = await asyncio.open_connection(lst.host, lst.port)
    writer.write(b"\r\n\r\n")
    assert await asyncio.wait_for(reader.readexactly(2), 2.0) == b"\r\n"
    writer.close()


async def test_ue_that_never_answers_no_408_and_state_drains(node: Node, ue_factory) -> None:
    """RFC 4320 §4.1: no 408 to a non-INVITE request; the node retransmits to the UE (Timer
    E), gives up at Timer F, and all transaction state is released."""
    a = await ue_factory(A)
    b = await ue_factory(B, answer=None)
    await b.register()
    with pytest.raises(TimeoutError):
        await a.message(B, timeout=3.0)  # T1=50 ms: the node's Timer F fires at 3.2 s
    assert len(b.received) >= 5  # Timer E retransmissions reached the UE
    await asyncio.sleep(1.0)
    assert not [r for r in a.raw_log if r.startswith(b"SIP/2.0 408")]
    assert node.sip.core.transaction_counts == (0, 0)


async def test_flood_of_requests_all_answered(node: Node, ue_factory) -> None:
    """A burst of 1,000 MESSAGEs at once over UDP: every one gets a final answer — 200, or
    503 + Retry-After while the node sheds load — and every 200 was delivered exactly once."""
    a = await ue_factory(A)
    b = await ue_factory(B)
    await b.register()
    results = await asyncio.gather(*(a.message(B, f"m{i}") for i in range(1000)))
    statuses = [r.status for r in results]
    assert set(statuses) <= {200, 503}
    assert all(r.headers.get("Retry-After") for r in results if r.status == 503)
    delivered = {r.call_id() for r in results if r.status == 200}
    # Over UDP the node may retransmit (Timer E) while B's answers queue; B sees each once
    # per Call-ID after de-duplication, as a UE would; nothing shed reached B.
    assert {m.call_id() for m in b.received} == delivered
    assert statuses.count(200) > 0


async def test_oversize_gets_513_over_udp_and_tcp() -> None:
    from fivegmc.node import running

    from .conftest import make_profile

    async with running(make_profile("sip.max_message_size=4096")) as n:
        answer = await udp_exchange(n, request(body=b"x" * 5000))
        assert answer is not None
        assert parse_message(answer).status == 513  # type: ignore[union-attr]
        lst = n.listener("tcp")
        reader, writer = await asyncio.open_connection(lst.host, lst.port)
        writer.write(request(body=b"y" * 5000))
        data = await asyncio.wait_for(reader.read(), 2.0)  # answered, then closed
        assert parse_message(data.split(b"\r\n\r\n")[0] + b"\r\n\r\n").status == 513  # type: ignore[union-attr]
        writer.close()


async def test_overload_sheds_new_requests_with_503_and_recovers() -> None:
    """Beyond max_pending_relays, new requests get 503 + Retry-After; relays in progress
    still complete, and the node serves again once they are done (DESIGN.md §3)."""
    from fivegmc.node import running

    from .conftest import make_profile

    async with running(make_profile("sip.max_pending_relays=2",
                                    "sip.overload_retry_after_s=3")) as n:
        lst = n.listener("udp")
        a = await UE(A, (lst.host, lst.port)).start()
        slow = await UE(B, (lst.host, lst.port), answer=None).start()
        try:
            await slow.register()
            pending = [asyncio.ensure_future(a.message(B, f"p{i}", timeout=2.0))
                       for i in range(2)]
            await asyncio.sleep(0.2)
            shed = await a.message(B, "third")
            assert shed.status == 503
            assert shed.headers.get("Retry-After") == "3"
            assert n.registry.get_sample_value(
                "fivegmc_sip_dropped_total", {"reason": "overload 503"}) == 1
            # answer the two pending relays: the node takes new work again
            slow.answer = 200
            for req in list(slow.received):
                slow.send_raw(__import__("fivegmc.sip.message", fromlist=["make_response"])
                              .make_response(req, 200, to_tag="late").to_bytes())
            results = await asyncio.gather(*pending, return_exceptions=True)
            assert all(not isinstance(r, BaseException) and r.status == 200 for r in results)
            assert (await a.message(B, "after")).status == 200
        finally:
            a.close()
            slow.close()
