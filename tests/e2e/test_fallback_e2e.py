"""SMS fallback of chatbot messages end to end (issue 5): a CSP calls the MaaP over HTTP in
each dialect, the 5GMC cannot deliver (SMS-only user, offline RCS user with no store, or no
delivery in time), the MaaP's own ESME sends the SMS through the node's SMSC stub, the
receipt comes back as the dialect's deliveredToNetwork / failed status, and the 5GMC's trace of
the message id shows the chain. Also MO SMS to a chatbot's SMS port, and an SMSC that is
down for a while."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from fivegmc.config import SmppAccount, SmscConfig
from fivegmc.maap.cmcc_wire import NS, authorization
from fivegmc.obs.logging import make_logger
from fivegmc.smsc.metrics import SmscMetrics
from fivegmc.smsc.server import SmscNode

from .maap_net import CspRequest, MaapNet, maap_network

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(40)]

CT = "106598858810000001"
CT_URI = "sip:106598858810000001@botplatform.rcs.vnet.cn"
CT_PORT = "1065900000002"
GSMA_BOT, GSMA_PORT = "labbot", "1065900000001"
CM_ENC = "sip%3A125200401100001%40botplatform.rcs.chinamobile.com"
CM_PORT = "1065900000004"
SMS_ONLY = "+8613900000001"
ON = ("maap.sms.enabled=true", "maap.sms.reconnect_initial_s=0.05",
      "maap.sms.reconnect_max_s=0.2", "maap.sms.enquire_link_s=1.0",
      "smsc.receipt_delay_max_s=0.05")
LONG_ZH = "您好，这是一条来自电信实验室聊天机器人的短信回落测试消息，" * 4  # > 67: concatenated


async def ct_token(net: MaapNet) -> str:
    async with net.http.post(f"{net.base}/bot/v1/{CT}/accessToken",
                             json={"appId": "ct-lab-app", "appKey": "lab-appkey-ct"}) as r:
        body = await r.json()
        assert body["errorCode"] == 0, body
        return str(body["accessToken"])


async def ct_send(net: MaapNet, tok: str, number: str, **extra: Any) -> str:
    body = {"messageId": str(uuid.uuid4()), "destinationAddress": [f"tel:{number}"],
            "senderAddress": CT_URI,
            "messageList": [{"contentType": "text/plain", "contentText": "5G hello"}],
            "smsSupported": True, "smsContent": "SMS hello", "storeSupported": True}
    body.update(extra)
    async with net.http.post(f"{net.base}/bot/v1/{CT}/messages", json=body,
                             headers={"Authorization": f"accessToken {tok}"}) as r:
        reply = await r.json()
        assert r.status == 200 and reply["errorCode"] == 0, reply
        return str(reply["messageId"])


def ct_status(message_id: str, status: str) -> Any:
    def pred(r: CspRequest) -> bool:
        if "/deliveryNotification/" not in r.path:
            return False
        info = json.loads(r.body)["deliveryInfoList"][0]
        return bool(info["messageId"] == message_id and info["status"] == status)
    return pred


def ct_statuses(net: MaapNet, message_id: str) -> list[dict[str, Any]]:
    out = []
    for r in net.csp.requests:
        if "/deliveryNotification/" in r.path:
            info = json.loads(r.body)["deliveryInfoList"][0]
            if info["messageId"] == message_id:
                out.append(info)
    return out


async def inbox(net: MaapNet, to: str) -> list[dict[str, Any]]:
    async with net.http.get(f"{net.admin}/admin/v1/smsc/messages", params={"to": to}) as r:
        body = await r.json()
        return list(body["messages"])


async def trace(net: MaapNet, message_id: str) -> list[dict[str, Any]]:
    async with net.http.get(f"{net.admin}/admin/v1/messages/{message_id}") as r:
        assert r.status == 200, await r.text()
        body = await r.json()
        return list(body["trace"])


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_ctcu_sms_only_user_falls_back_with_ucs2_segments_and_trace() -> None:
    async with maap_network(*ON) as net:
        tok = await ct_token(net)
        mid = await ct_send(net, tok, SMS_ONLY, smsContent=LONG_ZH)
        await net.csp.wait(ct_status(mid, "deliveredToNetwork"))
        assert [s["status"] for s in ct_statuses(net, mid)] == ["deliveredToNetwork"]
        msgs = await inbox(net, SMS_ONLY)
        assert len(msgs) == 1
        sms = msgs[0]
        parts = -(-len(LONG_ZH) // 67)
        assert sms["text"] == LONG_ZH and sms["encoding"] == "ucs2"
        assert sms["parts"] == parts and len(sms["message_ids"]) == parts
        assert sms["from"] == CT_PORT
        events = await trace(net, mid)
        names = [e["event"] for e in events]
        assert "fallback-sms" in names and "submit_sm" in names
        await wait_for(lambda: net.node.maap is not None and net.node.maap.sms is not None
                       and net.node.maap.sms.delivered == 1)
        events = await trace(net, mid)
        details = " ".join(e["detail"] for e in events)
        assert [e["event"] for e in events].count("dlr") == parts
        assert "sms-only" in details and "stat:DELIVRD" in details
        assert all(i in details for i in sms["message_ids"])
        # the recipient's state at the MaaP
        assert net.node.maap is not None
        record = net.node.maap.core.record(CT, mid)
        assert record is not None and record.recipients[0].status.value == \
            "delivered_to_network"


async def test_csp_forbids_fallback_fails_without_sms() -> None:
    async with maap_network(*ON) as net:
        tok = await ct_token(net)
        mid = await ct_send(net, tok, SMS_ONLY, smsSupported=False, smsContent="")
        [note] = await net.csp.wait(ct_status(mid, "failed"))
        info = json.loads(note.body)["deliveryInfoList"][0]
        assert info["errorCode"] == 2
        await asyncio.sleep(0.3)
        assert await inbox(net, SMS_ONLY) == []


async def test_offline_rcs_user_revoked_then_sms_after_the_timer() -> None:
    user = "+8613800000042"
    async with maap_network(*ON, "maap.delivery_timeout_s=0.6") as net:
        tok = await ct_token(net)
        mid = await ct_send(net, tok, user)  # offline: the 5GMC stores it (202 → sent)
        await net.csp.wait(ct_status(mid, "sent"))
        await net.csp.wait(ct_status(mid, "deliveredToNetwork"), timeout=6.0)
        assert [s["status"] for s in ct_statuses(net, mid)] == ["sent", "deliveredToNetwork"]
        [sms] = await inbox(net, user)
        assert sms["text"] == "SMS hello" and sms["encoding"] == "gsm7"
        names = [e["event"] for e in await trace(net, mid)]
        # stored → revoked (the 5GMC's own events) → fallback-sms → submit_sm → dlr
        assert names == ["stored", "revoked", "fallback-sms", "submit_sm", "dlr"], names
        # the user comes online: the revoked 5G message is not delivered after the SMS
        ue = await net.ue(user)
        with pytest.raises(TimeoutError):
            await ue.next_message(timeout=0.8)


async def test_registered_rcs_user_who_never_answers_is_revoked_then_sms() -> None:
    """issue 5: an RCS user who never answers falls back after the timer, with a revoke first.
    The UE is registered but silent: the 5GMC stores the message after its answer timeout
    (202 → sent); the MaaP's timer then revokes the stored copy and sends the SMS."""
    user = "+8613800000044"
    async with maap_network(*ON, "messaging.answer_timeout_s=0.4",
                            "maap.delivery_timeout_s=1.2") as net:
        ue = await net.ue(user, answer=None)
        tok = await ct_token(net)
        mid = await ct_send(net, tok, user)
        await net.csp.wait(ct_status(mid, "sent"), timeout=3.0)
        await net.csp.wait(ct_status(mid, "deliveredToNetwork"), timeout=6.0)
        assert [s["status"] for s in ct_statuses(net, mid)] == ["sent", "deliveredToNetwork"]
        [sms] = await inbox(net, user)
        assert sms["text"] == "SMS hello"
        names = [e["event"] for e in await trace(net, mid)]
        assert names.index("revoked") < names.index("fallback-sms") < names.index("dlr"), names
        # the silent UE saw the original (it just never answered); once it answers again, the
        # revoked copy is not delivered a second time
        seen = len(ue.received)
        ue.answer = 200
        await asyncio.sleep(1.5)
        assert len(ue.received) == seen or all(
            m.method != "MESSAGE" for m in ue.received[seen:])


async def test_store_disabled_and_offline_falls_back_at_once() -> None:
    user = "+8613800000043"
    async with maap_network(*ON) as net:
        tok = await ct_token(net)
        mid = await ct_send(net, tok, user, storeSupported=False)
        await net.csp.wait(ct_status(mid, "deliveredToNetwork"))
        [sms] = await inbox(net, user)
        assert sms["text"] == "SMS hello"
        details = " ".join(e["detail"] for e in await trace(net, mid))
        assert "offline-not-stored" in details


async def test_undeliverable_sms_reports_failed() -> None:
    async with maap_network(*ON, "smsc.outcomes.DELIVRD=0.0",
                            "smsc.outcomes.UNDELIV=1.0") as net:
        tok = await ct_token(net)
        mid = await ct_send(net, tok, SMS_ONLY)
        await net.csp.wait(ct_status(mid, "failed"))
        assert [s["status"] for s in ct_statuses(net, mid)] == ["failed"]
        assert len(await inbox(net, SMS_ONLY)) == 1  # sent, but the SMSC says undeliverable
        details = " ".join(e["detail"] for e in await trace(net, mid))
        assert "stat:UNDELIV" in details


async def test_gsma_fallback_text_and_messagestatus_delivered_via_sms() -> None:
    text = 'maap.chatbots[0].fallback_text="Lab: you have a 5G message {messageId}"'
    async with maap_network(*ON, text) as net:
        basic = base64.b64encode(b"labbot-client:lab-secret-labbot").decode()
        async with net.http.post(f"{net.base}/oauth2/v1/token",
                                 data={"grant_type": "client_credentials",
                                       "scope": "botmessage"},
                                 headers={"Authorization": f"Basic {basic}"}) as r:
            tok = (await r.json())["access_token"]
        mid = uuid.uuid4().hex
        async with net.http.post(f"{net.base}/bot/v1/{GSMA_BOT}/messages", json={
                "RCSMessage": {"msgId": mid, "textMessage": "hello"},
                "messageContact": {"userContact": SMS_ONLY}},
                headers={"Authorization": f"Bearer {tok}"}) as r:
            assert r.status == 202, await r.text()

        def delivered(r: CspRequest) -> bool:
            if not r.path.startswith(f"/gsma/{GSMA_BOT}"):
                return False
            e = json.loads(r.body)
            return bool(e.get("event") == "messageStatus"
                        and e["RCSMessage"]["msgId"] == mid)
        [note] = await net.csp.wait(delivered)
        rcs = json.loads(note.body)["RCSMessage"]
        assert rcs["status"] == "delivered" and rcs["deliveredVia"] == "sms"
        [sms] = await inbox(net, SMS_ONLY)
        assert sms["text"] == f"Lab: you have a 5G message {mid}"
        assert sms["from"] == GSMA_PORT


async def test_gsma_without_fallback_text_still_404() -> None:
    async with maap_network(*ON) as net:
        basic = base64.b64encode(b"labbot-client:lab-secret-labbot").decode()
        async with net.http.post(f"{net.base}/oauth2/v1/token",
                                 data={"grant_type": "client_credentials",
                                       "scope": "botmessage"},
                                 headers={"Authorization": f"Basic {basic}"}) as r:
            tok = (await r.json())["access_token"]
        async with net.http.post(f"{net.base}/bot/v1/{GSMA_BOT}/messages", json={
                "RCSMessage": {"textMessage": "hello"},
                "messageContact": {"userContact": SMS_ONLY}},
                headers={"Authorization": f"Bearer {tok}"}) as r:
            assert r.status == 404
        await asyncio.sleep(0.2)
        assert await inbox(net, SMS_ONLY) == []


async def test_fallback_writes_a_fallback_sms_cdr(tmp_path: Path) -> None:
    """issue 5 item 5: the DLR maps back to the CDR (outcome FALLBACK_SMS, the message id)."""
    from fivegmc.obs import cdr_pb2
    from fivegmc.obs.cdr import read_cdrs

    cdr_dir = tmp_path / "cdr"
    async with maap_network(*ON, "cdr.enabled=true", f"cdr.dir={cdr_dir}") as net:
        tok = await ct_token(net)
        mid = await ct_send(net, tok, SMS_ONLY)
        await net.csp.wait(ct_status(mid, "deliveredToNetwork"))
    records = [r for f in sorted(cdr_dir.glob("*.pb")) for r in read_cdrs(f)]
    mine = [r for r in records if mid in (r.message_id, r.imdn_message_id)]
    assert [r.outcome for r in mine] == [cdr_pb2.OUTCOME_FALLBACK_SMS], mine
    assert mine[0].recipient == SMS_ONLY and mine[0].kind == cdr_pb2.MESSAGE_KIND_A2P


async def test_gsma_per_message_sms_supported_overrides_the_chatbot_default() -> None:
    """issue 5: the CSP decides per message (smsSupported + smsContent, accepted by the GSMA
    dialect as an extension); without them the chatbot's fallback_text decides."""
    text = 'maap.chatbots[0].fallback_text="default text"'
    async with maap_network(*ON, text) as net:
        basic = base64.b64encode(b"labbot-client:lab-secret-labbot").decode()
        async with net.http.post(f"{net.base}/oauth2/v1/token",
                                 data={"grant_type": "client_credentials",
                                       "scope": "botmessage"},
                                 headers={"Authorization": f"Basic {basic}"}) as r:
            tok = (await r.json())["access_token"]
        auth = {"Authorization": f"Bearer {tok}"}
        async with net.http.post(f"{net.base}/bot/v1/{GSMA_BOT}/messages", json={
                "RCSMessage": {"textMessage": "hello"}, "smsSupported": True,
                "smsContent": "this message's own SMS text",
                "messageContact": {"userContact": SMS_ONLY}}, headers=auth) as r:
            assert r.status == 202, await r.text()
        for _ in range(100):
            if await inbox(net, SMS_ONLY):
                break
            await asyncio.sleep(0.05)
        [sms] = await inbox(net, SMS_ONLY)
        assert sms["text"] == "this message's own SMS text"
        async with net.http.post(f"{net.base}/bot/v1/{GSMA_BOT}/messages", json={
                "RCSMessage": {"textMessage": "no SMS for this one"}, "smsSupported": False,
                "messageContact": {"userContact": "+8613900000002"}}, headers=auth) as r:
            assert r.status == 404  # the CSP forbids fallback: not reachable
        async with net.http.post(f"{net.base}/bot/v1/{GSMA_BOT}/messages", json={
                "RCSMessage": {"textMessage": "x"}, "smsSupported": True, "smsContent": " ",
                "messageContact": {"userContact": SMS_ONLY}}, headers=auth) as r:
            assert r.status == 400 and "smsContent" in (await r.json())["reason"]["text"]


async def test_cmcc_fallback_h5_link_and_delivered_to_network() -> None:
    async with maap_network(*ON) as net:
        date = email.utils.formatdate(time.time(), usegmt=True)
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><msg:outboundMessageRequest '
               f'xmlns:msg="{NS}"><destinationAddress>tel:{SMS_ONLY}</destinationAddress>'
               "<senderAddress>sip:125200401100001@botplatform.rcs.chinamobile.com"
               "</senderAddress><outboundIMMessage><contentType>text/plain</contentType>"
               "<bodyText>hello</bodyText><reportRequest>Delivered</reportRequest>"
               "</outboundIMMessage><clientCorrelator>c1</clientCorrelator>"
               "</msg:outboundMessageRequest>").encode()
        async with net.http.post(
                f"{net.base}/messaging/group/v1/outbound/{CM_ENC}/requests", data=xml,
                headers={"Date": date, "Content-Type": "application/xml",
                         "Authorization": authorization("cm-lab-app", "lab-password-cm",
                                                        date)}) as r:
            text = await r.text()
            assert r.status == 201, text
        [note] = await net.csp.wait(
            lambda r: "/DeliveryInfoNotification/" in r.path
            and b"DeliveredToNetwork" in r.body)
        [sms] = await inbox(net, SMS_ONLY)
        assert sms["from"] == CM_PORT and "/h5/" in sms["text"]
        mid = sms["text"].rsplit("/", 1)[1]
        assert mid.encode() in note.body


@pytest.mark.parametrize("targeted", [True, False])
async def test_mo_sms_to_chatbot_ports_reaches_the_chatbots(targeted: bool) -> None:
    async with maap_network(*ON) as net:
        assert net.node.maap is not None and net.node.maap.sms is not None
        sms = net.node.maap.sms
        await wait_for(lambda: sms.esme is not None and sms.esme.bound.is_set())
        # the 5GMC's own ESME (P2P fallback) is bound too: untargeted MO must still reach the
        # MaaP, routed by the address_range of its bind (SMPP 3.4 §5.2.7)
        five = net.node.esme
        assert five is not None
        await wait_for(lambda: five.bound.is_set())
        extra = {"system_id": "maap"} if targeted else {}
        for to, text in ((CT_PORT, "退订"), (GSMA_PORT, "hello bot"), ("1065999", "nobody")):
            async with net.http.post(f"{net.admin}/admin/v1/smsc/mo",
                                     json={"from": "8613900000007", "to": to,
                                           "text": text, **extra}) as r:
                assert r.status == 202
        [ct] = await net.csp.wait(lambda r: "/messageNotification/" in r.path)
        body = json.loads(ct.body)
        assert body["senderAddress"] == "tel:+8613900000007"
        assert body["messageList"][0]["contentText"] == "退订"
        [gs] = await net.csp.wait(lambda r: r.path.startswith(f"/gsma/{GSMA_BOT}")
                                  and json.loads(r.body).get("event") == "message")
        event = json.loads(gs.body)
        assert event["viaSms"] is True and event["RCSMessage"]["textMessage"] == "hello bot"
        assert event["messageContact"]["userContact"] == "+8613900000007"
        await wait_for(lambda: sms.mo == 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_smsc_down_then_back_nothing_lost_nothing_twice() -> None:
    port = _free_port()
    async with maap_network(*ON, f"maap.sms.port={port}") as net:
        tok = await ct_token(net)
        users = [f"+86139000001{i:02d}" for i in range(8)]
        mids = [await ct_send(net, tok, u, smsContent=f"held {i}") for i, u in enumerate(users)]
        assert net.node.maap is not None and net.node.maap.sms is not None
        sms = net.node.maap.sms
        await wait_for(lambda: sms.taken == len(users))
        await asyncio.sleep(0.3)
        assert sms.delivered == 0 and sms.pending == len(users)
        config = SmscConfig(port=port, accounts=(SmppAccount(system_id="maap",
                                                             password="lab-maap"),),
                            receipt_delay_max_s=0.02)
        stub = SmscNode(config, SmscMetrics(CollectorRegistry()), make_logger("ERROR",
                                                                              "console"))
        await stub.start()
        task = asyncio.get_running_loop().create_task(stub.run())
        try:
            for mid in mids:
                await net.csp.wait(ct_status(mid, "deliveredToNetwork"), timeout=8.0)
            texts = sorted(e["text"] for e in stub.core.inbox_json())
            assert texts == sorted(f"held {i}" for i in range(len(users)))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await stub.close()
