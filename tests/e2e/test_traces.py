"""Every accepted message has a trace (issue 3, item 6), relayed ones included; IMDNs that pass
through are matched to the message they report on; malformed CPIM is refused on the relay path
too — end to end on real sockets."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest

from fivegmc.cpim import build_imdn_report_cpim
from fivegmc.node import Node

from .ue import DOMAIN, UE

pytestmark = pytest.mark.e2e
A = "+8613800000001"
B = "+8613800000002"


async def get_trace(node: Node, key: str) -> tuple[int, dict[str, Any]]:
    host, port = node.admin.address
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://{host}:{port}/admin/v1/messages/{key}") as resp:
        return resp.status, await resp.json()


async def send_imdn(frm: UE, to: str, original: str, status: str) -> int:
    body = build_imdn_report_cpim(
        from_=f"<sip:{frm.number}@{DOMAIN}>", to=f"<sip:{to}@{DOMAIN}>",
        message_id=uuid.uuid4().hex, datetime="2026-11-21T12:00:01Z",
        original_message_id=original, original_datetime="2026-11-21T12:00:00Z",
        kind="display" if status == "displayed" else "delivery", status=status,
    )
    uri = f"sip:{to}@{DOMAIN}"
    req = frm.build("MESSAGE", uri, f"<{uri}>", headers=[("Content-Type", "message/cpim")],
                    body=body)
    return (await frm.request(req)).status


async def wait_events(node: Node, key: str, event: str, count: int = 1) -> dict[str, Any]:
    for _ in range(100):
        status, doc = await get_trace(node, key)
        if status == 200 and sum(e["event"] == event for e in doc["trace"]) >= count:
            return doc
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {event} in the trace of {key}: {doc}")


async def test_relayed_message_is_traced_with_its_imdns(node: Node, ue_factory) -> None:
    a, b = await ue_factory(A), await ue_factory(B)
    await a.register()
    await b.register()
    mid = uuid.uuid4().hex
    assert (await a.message(B, "traced", mid=mid)).status == 200
    status, doc = await get_trace(node, mid)  # found by its imdn.Message-ID
    assert status == 200 and doc["stored"] is False and doc["state"] == "delivered"
    assert [e["event"] for e in doc["trace"]] == ["received", "relayed", "delivered"]
    assert doc["sender"] == A and doc["recipient"] == B
    # the same trace by the node's own id
    assert (await get_trace(node, doc["id"]))[1]["id"] == doc["id"]
    assert await send_imdn(b, A, mid, "delivered") == 200
    assert await send_imdn(b, A, mid, "displayed") == 200
    doc = await wait_events(node, mid, "imdn-seen", 2)
    seen = [e["detail"] for e in doc["trace"] if e["event"] == "imdn-seen"]
    assert seen == ["delivery delivered", "display displayed"]


async def test_stored_message_trace_gets_the_imdn_after_delivery(node: Node,
                                                                 ue_factory) -> None:
    a = await ue_factory(A)
    await a.register()
    mid = uuid.uuid4().hex
    assert (await a.message(B, "stored first", mid=mid)).status == 202
    b = await ue_factory(B)
    await b.register()
    doc = await wait_events(node, mid, "delivered")
    assert doc["stored"] is True
    assert await send_imdn(b, A, mid, "delivered") == 200
    doc = await wait_events(node, mid, "imdn-seen")
    assert [e["event"] for e in doc["trace"]][:2] == ["stored", "delivered"]


@pytest.mark.parametrize("body", [
    b"not cpim at all",
    b"From: <sip:a@x>\r\n\r\nContent-Type: text/plain\r\n\r\nno To header",
    b"From: <a>\r\nTo: <b>\r\nx.Message-ID: 1\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
    b"From: <a>\r\nTo: <b>\r\n\r\nContent-Length: 99\r\n\r\nshort",
])
async def test_malformed_cpim_to_an_online_ue_is_400_with_the_reason(
        node: Node, ue_factory, body: bytes) -> None:
    a, b = await ue_factory(A), await ue_factory(B)
    await a.register()
    await b.register()
    uri = f"sip:{B}@{DOMAIN}"
    req = a.build("MESSAGE", uri, f"<{uri}>", headers=[("Content-Type", "message/cpim")],
                  body=body)
    resp = await a.request(req)
    assert resp.status == 400 and resp.reason.startswith("Bad Request (CPIM:")
    await asyncio.sleep(0.1)
    assert b.received == []  # never passed on


async def test_unknown_trace_is_404(node: Node) -> None:
    status, doc = await get_trace(node, "no-such-id")
    assert status == 404 and "error" in doc


async def test_events_from_outside_the_sip_path_join_the_trace(node: Node, ue_factory) -> None:
    """The MaaP's revoke / SMS fallback steps are added with SipNode.note_event."""
    a, b = await ue_factory(A), await ue_factory(B)
    await a.register()
    await b.register()
    relayed = uuid.uuid4().hex
    assert (await a.message(B, "relayed", mid=relayed)).status == 200
    node.sip.note_event(relayed, "fallback-sms", "not delivered in time")
    doc = await wait_events(node, relayed, "fallback-sms")
    assert doc["stored"] is False

    stored = uuid.uuid4().hex
    assert (await a.message("+8613800000003", "stored", mid=stored)).status == 202
    await wait_events(node, stored, "stored")
    node.sip.note_event(stored, "revoked", "by the MaaP")
    doc = await wait_events(node, stored, "revoked")
    assert doc["stored"] is True

    node.sip.note_event("never-seen-by-sip", "submit_sm", "SMSC ids 1,2")
    node.sip.note_event("never-seen-by-sip", "dlr", "DELIVRD")
    status, doc = await get_trace(node, "never-seen-by-sip")
    assert status == 200 and doc["state"] == "dlr"
    assert [e["event"] for e in doc["trace"]] == ["submit_sm", "dlr"]


@pytest.mark.parametrize("online", [True, False])
async def test_malformed_imdn_xml_is_400_relayed_or_stored(node: Node, ue_factory,
                                                           online: bool) -> None:
    a, b = await ue_factory(A), await ue_factory(B)
    await a.register()
    if online:
        await b.register()
    xml = b'<?xml version="1.0"?><imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>'
    body = (b"From: <sip:a@x>\r\nTo: <sip:b@x>\r\nNS: imdn <urn:ietf:params:imdn>\r\n"
            b"imdn.Message-ID: r1\r\n\r\nContent-Type: message/imdn+xml\r\n\r\n" + xml)
    uri = f"sip:{B}@{DOMAIN}"
    req = a.build("MESSAGE", uri, f"<{uri}>", headers=[("Content-Type", "message/cpim")],
                  body=body)
    resp = await a.request(req)
    assert resp.status == 400 and resp.reason.startswith("Bad Request (IMDN:")
    await asyncio.sleep(0.1)
    assert b.received == []


async def test_admin_accepts_trace_events_from_a_maap_apart(node: Node) -> None:
    """POST /admin/v1/messages/{id}/events: how a MaaP in another process adds its steps."""
    host, port = node.admin.address
    url = f"http://{host}:{port}/admin/v1/messages/from-apart/events"
    async with aiohttp.ClientSession() as http:
        for bad in (b"not json", b'{"event": ""}', b'{"event": 5}', b"[1]",
                    b'{"event": "x", "detail": ' + b'"' + b"d" * 1001 + b'"}'):
            async with http.post(url, data=bad,
                                 headers={"Content-Type": "application/json"}) as r:
                assert r.status == 400 and "error" in await r.json()
        async with http.post(url, json={"event": "fallback-sms", "detail": "SMS-only"}) as r:
            assert r.status == 204
    status, doc = await get_trace(node, "from-apart")
    assert status == 200 and [e["event"] for e in doc["trace"]] == ["fallback-sms"]
