"""The SMSC stub on a real socket, driven by smpplib (an independent SMPP client) in a thread:
transmitter / receiver / transceiver binds, GSM 7-bit, UCS-2 and concatenated submits, delivery
receipts, query_sm, enquire_link, unbind, and hostile input."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp
from prometheus_client import CollectorRegistry

from fivegmc.config import SmppAccount, SmscConfig
from fivegmc.obs.logging import make_logger
from fivegmc.smsc.metrics import SmscMetrics
from fivegmc.smsc.server import SmscNode

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

ACCOUNTS = (SmppAccount(system_id="esme1", password="pw1"),
            SmppAccount(system_id="slow", password="pw2", throttle_per_s=5.0, window=2))
A, B = "+8613800000001", "+8613900000001"


def smsc_config(**kw: Any) -> SmscConfig:
    base: dict[str, Any] = {"port": 0, "accounts": ACCOUNTS, "receipt_delay_max_s": 0.05,
                            "idle_timeout_s": 5.0}
    base.update(kw)
    return SmscConfig(**base)


async def start_smsc(**kw: Any) -> tuple[SmscNode, asyncio.Task[None]]:
    node = SmscNode(smsc_config(**kw), SmscMetrics(CollectorRegistry()),
                    make_logger("ERROR", "console"))
    await node.start()
    return node, asyncio.get_running_loop().create_task(node.run())


@pytest.fixture
async def smsc() -> AsyncIterator[SmscNode]:
    node, task = await start_smsc()
    try:
        yield node
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await node.close()


def client(port: int) -> smpplib.client.Client:
    c = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    c.connect()
    return c


def ack(c: smpplib.client.Client, pdu: Any) -> None:
    resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=c)
    resp.sequence = pdu.sequence
    c.send_pdu(resp)


def read_until(c: smpplib.client.Client, want: Callable[[list[Any]], bool]) -> list[Any]:
    got: list[Any] = []
    while not want(got):
        pdu = c.read_pdu()
        if pdu.command == "deliver_sm":
            ack(c, pdu)
        got.append(pdu)
    return got


def of(pdus: list[Any], command: str) -> list[Any]:
    return [p for p in pdus if p.command == command]


async def test_transceiver_gsm7_ucs2_concatenated_with_receipts(smsc: SmscNode) -> None:
    texts = ["Hello {lab} €5", "你好，5G消息回落短信", "long " * 60, "长消息" * 40]

    def work(port: int) -> tuple[list[Any], int]:
        c = client(port)
        c.bind_transceiver(system_id="esme1", password="pw1")
        segments = 0
        for text in texts:
            parts, coding, esm = smpplib.gsm.make_parts(text)
            for part in parts:
                c.send_message(source_addr_ton=1, source_addr=A, dest_addr_ton=1,
                               destination_addr=B, short_message=part, data_coding=coding,
                               esm_class=esm, registered_delivery=True)
                segments += 1
        got = read_until(c, lambda g: len(of(g, "deliver_sm")) >= segments
                         and len(of(g, "submit_sm_resp")) >= segments)
        c.unbind()
        c.disconnect()
        return got, segments

    got, segments = await asyncio.to_thread(work, smsc.address[1])  # type: ignore[index]
    resps = of(got, "submit_sm_resp")
    assert all(p.status == 0 for p in resps)
    ids = {p.message_id.decode() for p in resps}
    assert len(ids) == segments  # unique message ids
    receipts = of(got, "deliver_sm")
    assert {p.receipted_message_id.decode().rstrip("\0") for p in receipts} == ids
    for p in receipts:
        assert p.esm_class == 0x04  # SMSC delivery receipt
        assert p.source_addr.decode() == B and p.destination_addr.decode() == A
        assert int(p.message_state) == 2
        assert b"stat:DELIVRD" in p.short_message
    inbox = smsc.core.inbox_json(to=B)
    assert sorted(m["text"] for m in inbox) == sorted(texts)
    by_text = {m["text"]: m for m in inbox}
    assert by_text["长消息" * 40]["encoding"] == "ucs2" and by_text["长消息" * 40]["parts"] == 2
    assert by_text["long " * 60]["parts"] == 2


async def test_transmitter_and_receiver_binds_share_receipts(smsc: SmscNode) -> None:
    def work(port: int) -> tuple[Any, list[Any], Any]:
        rx = client(port)
        rx.bind_receiver(system_id="esme1", password="pw1")
        tx = client(port)
        tx.bind_transmitter(system_id="esme1", password="pw1")
        tx.send_message(source_addr=A, destination_addr=B, short_message=b"hi",
                        registered_delivery=True)
        resp = tx.read_pdu()
        # query_sm until the receipt time has passed
        receipts = read_until(rx, lambda g: len(g) >= 1)
        # smpplib's state table wrongly allows query_sm only on RX/TRX (v3.4 §2.3: TX or
        # TRX), so the PDU goes out raw
        qsm = smpplib.smpp.make_pdu("query_sm", client=tx, message_id=resp.message_id.decode(),
                                    source_addr_ton=0, source_addr_npi=0, source_addr=A)
        tx._socket.sendall(qsm.generate())
        query = tx.read_pdu()
        # a receiver bind may not submit: ESME_RINVBNDSTS
        rx.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=rx))
        link = rx.read_pdu()
        raw = smpplib.smpp.make_pdu("submit_sm", client=rx, source_addr=A, destination_addr=B,
                                    short_message=b"x")
        rx._socket.sendall(raw.generate())
        refused = rx.read_pdu()
        for c in (rx, tx):
            c.unbind()
            c.disconnect()
        return (resp, receipts, (query, link, refused))

    resp, receipts, (query, link, refused) = await asyncio.to_thread(work, smsc.address[1])  # type: ignore[index]
    assert resp.status == 0
    assert receipts[0].receipted_message_id.decode().rstrip("\0") == resp.message_id.decode()
    assert query.command == "query_sm_resp" and int(query.message_state) == 2
    assert link.command == "enquire_link_resp"
    assert refused.command == "submit_sm_resp"
    assert refused.status == smpplib.consts.SMPP_ESME_RINVBNDSTS


async def test_wrong_password_and_system_id(smsc: SmscNode) -> None:
    def work(port: int) -> list[int]:
        statuses = []
        for sid, pw in (("esme1", "nope"), ("who", "pw1")):
            c = client(port)
            with pytest.raises(smpplib.exceptions.PDUError) as info:
                c.bind_transmitter(system_id=sid, password=pw)
            statuses.append(info.value.args[1])
            c.disconnect()
        return statuses

    statuses = await asyncio.to_thread(work, smsc.address[1])  # type: ignore[index]
    assert statuses == [smpplib.consts.SMPP_ESME_RINVPASWD, smpplib.consts.SMPP_ESME_RINVSYSID]


def _raw_exchange(sock: socket.socket, data: bytes) -> tuple[int, int, int, int]:
    sock.sendall(data)
    header = b""
    while len(header) < 16:
        chunk = sock.recv(16 - len(header))
        assert chunk, "SMSC closed the connection"
        header += chunk
    length, cid, status, seq = struct.unpack(">IIII", header)
    rest = length - 16
    while rest:
        rest -= len(sock.recv(rest))
    return length, cid, status, seq


async def test_malformed_pdus_get_generic_nack_and_bind_survives(smsc: SmscNode) -> None:
    def work(port: int) -> list[tuple[int, int, int, int]]:
        c = client(port)
        c.bind_transceiver(system_id="esme1", password="pw1")
        sock = c._socket
        out = [
            _raw_exchange(sock, bytes.fromhex("00000010000000ff0000000000000064")),  # unknown id
            _raw_exchange(sock, bytes.fromhex("0000001400000004000000000000006500010131")),
        ]
        c.send_message(source_addr=A, destination_addr=B, short_message=b"still here")
        resp = c.read_pdu()
        out.append((0, 0x80000004, resp.status, resp.sequence))
        out.append(_raw_exchange(sock, bytes.fromhex("00000004000000150000000000000066")))
        closed = sock.recv(16) == b""
        out.append((0, 0, 0, int(closed)))
        c.disconnect()
        return out

    res = await asyncio.to_thread(work, smsc.address[1])  # type: ignore[index]
    assert res[0][1:] == (0x80000000, 0x03, 0x64)  # generic_nack ESME_RINVCMDID
    assert res[1][1:] == (0x80000000, 0x02, 0x65)  # generic_nack ESME_RINVCMDLEN
    assert res[2][1:3] == (0x80000004, 0)  # the bind survived
    assert res[3][1:3] == (0x80000000, 0x02)  # unframeable length: nack, then close
    assert res[4][3] == 1


async def test_throttle_above_rate() -> None:
    node, task = await start_smsc()
    try:
        def work(port: int) -> list[int]:
            c = client(port)
            c.bind_transmitter(system_id="slow", password="pw2")  # 5 submit_sm/s
            for _ in range(30):
                c.send_message(source_addr=A, destination_addr=B, short_message=b"flood")
            statuses = [c.read_pdu().status for _ in range(30)]
            c.unbind()
            c.disconnect()
            return statuses

        statuses = await asyncio.to_thread(work, node.address[1])  # type: ignore[index]
        assert statuses.count(0) <= 7
        assert statuses.count(smpplib.consts.SMPP_ESME_RTHROTTLED) >= 23
        assert node.metrics.submits.get("ESME_RTHROTTLED") >= 23
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await node.close()


async def test_pending_requests_above_max_get_rmsgqful() -> None:
    node, task = await start_smsc(submit_delay_s=0.3, max_pending=5)
    try:
        def work(port: int) -> list[int]:
            c = client(port)
            c.bind_transmitter(system_id="esme1", password="pw1")
            for _ in range(40):
                c.send_message(source_addr=A, destination_addr=B, short_message=b"flood")
            statuses = [c.read_pdu().status for _ in range(40)]
            c.unbind()
            c.disconnect()
            return statuses

        statuses = await asyncio.to_thread(work, node.address[1])  # type: ignore[index]
        assert 1 <= statuses.count(0) <= 10
        assert statuses.count(smpplib.consts.SMPP_ESME_RMSGQFUL) >= 30
        assert len(node.core.messages) == statuses.count(0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await node.close()


async def test_deliver_window_and_queue_while_unbound() -> None:
    node, task = await start_smsc()
    try:
        # MO queued while no receiver is bound, then delivered within the window (2)
        for i in range(6):
            node.inject_mo(f"+86139000000{i:02d}", "1065900000001", f"mo {i}", "slow")
        assert node.core.queued() == 6

        def work(port: int) -> tuple[list[int], list[Any]]:
            c = client(port)
            c.bind_receiver(system_id="slow", password="pw2")
            first = []
            # read without acknowledging: at most `window` arrive
            c._socket.settimeout(0.5)
            try:
                while True:
                    first.append(c.read_pdu())
            except TimeoutError:
                pass
            c._socket.settimeout(5)
            seen = [len(first)]
            for p in first:
                ack(c, p)
            rest = read_until(c, lambda g: len(g) >= 4)
            c.unbind()
            c.disconnect()
            return seen, first + rest

        seen, pdus = await asyncio.to_thread(work, node.address[1])  # type: ignore[index]
        assert seen == [2]
        assert [p.short_message for p in pdus] == [f"mo {i}".encode() for i in range(6)]
        assert node.core.queued() == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await node.close()


async def test_idle_bind_dropped() -> None:
    node, task = await start_smsc(idle_timeout_s=0.3)
    try:
        def work(port: int) -> bytes:
            c = client(port)
            c.bind_transmitter(system_id="esme1", password="pw1")
            data = c._socket.recv(16)  # blocks until the SMSC drops us
            c.disconnect()
            return data

        assert await asyncio.to_thread(work, node.address[1]) == b""  # type: ignore[index]
        assert node.metrics.closed.get("idle") == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await node.close()
