"""P2P SMS fallback (issue 5; protocols.md §6): a MESSAGE to an SMS-only subscriber goes out
as an SMS through the node's own SMSC stub; the receipt comes back as a delivery IMDN, the
trace and a CDR. Real sockets: SIP UEs, the SMPP stub, the admin API."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from fivegmc.cpim import parse_cpim, parse_imdn
from fivegmc.node import Node, running

from .conftest import make_profile
from .ue import DOMAIN, UE, wait_for

pytestmark = pytest.mark.e2e
A = "+8613800000001"
SMS_ONLY = "+8613900000001"
CHINESE = ("你好，这是一条很长的中文短信，用来检查长短信按照UCS-2编码分段，"
           "每段六十七个字符，收到以后应当重新组合成完整的一条消息。") * 2


async def admin_get(node: Node, path: str) -> Any:
    host, port = node.admin.address
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://{host}:{port}{path}") as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def inbox(node: Node) -> list[dict[str, Any]]:
    doc = await admin_get(node, "/admin/v1/smsc/messages")
    return [m for m in doc["messages"] if m["to"].lstrip("+") == SMS_ONLY.lstrip("+")]


async def test_p2p_to_sms_only_goes_out_as_sms_with_a_delivery_imdn(node: Node,
                                                                     ue_factory) -> None:
    a: UE = await ue_factory(A)
    await a.register()
    mid = uuid.uuid4().hex
    resp = await a.message(SMS_ONLY, CHINESE, mid=mid,
                           disposition="positive-delivery, negative-delivery")
    assert resp.status == 202
    await wait_for(lambda: any(m.method == "MESSAGE" for m in a.received), timeout=8)
    report = parse_imdn(parse_cpim(a.received[-1].body).content)
    assert report.message_id == mid and report.status == "delivered"
    got = [m for m in await inbox(node) if m["text"] == CHINESE]
    assert len(got) == 1, "the SMS is not in the SMSC inbox (once)"
    # protocols.md §6: Chinese goes out as UCS-2, 67 characters per concatenated part
    assert got[0]["encoding"].lower().startswith("ucs")
    assert got[0]["parts"] == -(-len(CHINESE) // 67)
    assert got[0]["from"].lstrip("+") == A.lstrip("+")
    host, port = node.admin.address
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://{host}:{port}/admin/v1/messages/{mid}") as r:
        trace = [e["event"] for e in (await r.json())["trace"]]
    assert trace[0] == "sms-fallback" and "submit_sm" in trace and "dlr" in trace


async def test_retry_of_the_same_message_sends_one_sms(node: Node, ue_factory) -> None:
    a = await ue_factory(A)
    await a.register()
    mid = uuid.uuid4().hex
    text = f"only once {mid}"
    assert (await a.message(SMS_ONLY, text, mid=mid)).status == 202
    assert (await a.message(SMS_ONLY, text, mid=mid)).status == 202  # a retransmission
    await wait_for(lambda: any(m.method == "MESSAGE" for m in a.received) or True)
    got = [m for m in await inbox(node) if m["text"] == text]
    assert len(got) == 1


async def test_sms_fallback_off_answers_480() -> None:
    async with running(make_profile("messaging.sms_fallback=false")) as node:
        lst = node.listener("udp")
        a = await UE(A, (lst.host, lst.port), "udp").start()
        try:
            resp = await a.message(SMS_ONLY, "no fallback")
            assert resp.status == 480 and "no 5G Message client" in resp.reason
        finally:
            a.close()


async def test_p2p_with_no_text_part_is_480(node: Node, ue_factory) -> None:
    a = await ue_factory(A)
    uri = f"sip:{SMS_ONLY}@{DOMAIN}"
    body = (b"From: <sip:a@x>\r\nTo: <sip:b@x>\r\nNS: imdn <urn:ietf:params:imdn>\r\n"
            b"imdn.Message-ID: f1\r\n\r\nContent-Type: application/vnd.gsma.rcs-ft-http+xml\r\n"
            b"\r\n<file/>")
    req = a.build("MESSAGE", uri, f"<{uri}>", headers=[("Content-Type", "message/cpim")],
                  body=body)
    assert (await a.request(req)).status == 480
