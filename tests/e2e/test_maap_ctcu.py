"""The ctcu (China Telecom / Unicom JSON) dialect end to end: a CSP calls the MaaP over HTTP with
an accessToken, real UEs (SIP over TCP) registered at the 5GMC receive and answer, and the
test CSP server gets the signed JSON pushes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp

from fivegmc.maap import model
from fivegmc.maap.content import media_type, parse_ft_http_xml, parse_multipart_mixed

from .maap_net import CspRequest, MaapNet, maap_network

CT = "106598858810000001"
CT_URI = "sip:106598858810000001@botplatform.rcs.vnet.cn"
CT_APP, CT_KEY = "ct-lab-app", "lab-appkey-ct"
CU = "106500000000003"
CU_URI = "sip:106500000000003@botplatform.rcs.chinaunicom.cn"
CU_APP, CU_KEY = "cu-lab-app", "lab-appkey-cu"

CHIPS = {"suggestions": [
    {"reply": {"displayText": "Yes", "postback": {"data": "yes"}}},
    {"action": {"urlAction": {"openUrl": {"url": "https://www.189.cn"}},
                "displayText": "Open", "postback": {"data": "open"}}}]}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20


async def token(net: MaapNet, bot: str = CT, app: str = CT_APP, key: str = CT_KEY) -> str:
    async with net.http.post(f"{net.base}/bot/v1/{bot}/accessToken",
                             json={"appId": app, "appKey": key}) as resp:
        body = await resp.json()
        assert resp.status == 200 and body["errorCode"] == 0, body
        return str(body["accessToken"])


def send_body(numbers: list[str], items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "messageList": items,
            "destinationAddress": [f"tel:{n}" for n in numbers], "senderAddress": CT_URI,
            "conversationId": str(uuid.uuid4()), "contributionId": str(uuid.uuid4()),
            "serviceCapability": [{"capabilityId": "ChatbotSA",
                                   "version": '+g.gsma.rcs.botversion="#=1"'}],
            "smsSupported": False, "storeSupported": True, **extra}


async def post(net: MaapNet, tok: str, path: str, body: Any, *, bot: str = CT,
               raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    data = raw if raw is not None else json.dumps(body).encode()
    async with net.http.post(f"{net.base}/bot/v1/{bot}/{path}", data=data, headers={
            "Authorization": f"accessToken {tok}", "Content-Type": "application/json",
            "Date": "Tue, 15 Nov 2019 08:12:31 GMT"}) as resp:
        return resp.status, await resp.json()


async def send(net: MaapNet, tok: str, body: dict[str, Any]) -> str:
    status, resp = await post(net, tok, "messages", body, bot=quote(CT_URI, safe=""))
    assert (status, resp["errorCode"]) == (200, 0), resp
    assert resp["messageId"] == body["messageId"]
    return str(resp["messageId"])


def pushes(kind: str, bot: str = CT) -> Any:
    def pred(r: CspRequest) -> bool:
        return r.path.startswith(f"/ctcu/{bot}/{kind}/")
    return pred


def statuses(r: CspRequest) -> list[tuple[str, str]]:
    return [(i["messageId"], i["status"]) for i in json.loads(r.body)["deliveryInfoList"]]


def check_signature(r: CspRequest, key: str = CT_KEY) -> None:
    h = {k.lower(): v for k, v in r.headers.items()}
    expect = hashlib.sha256("".join(sorted([key, h["timestamp"], h["nonce"]])).encode())
    assert h["signature"] == expect.hexdigest()


async def test_ctcu_send_receive_statuses_files_revoke() -> None:
    async with maap_network() as net:
        ue = await net.ue("+8613800000201")
        tok = await token(net)

        # text, delivered + displayed reported on the notify URL
        mid = await send(net, tok, send_body([ue.number], [
            {"contentType": "text/plain", "contentEncoding": "utf8",
             "contentText": "hello from ctcu"}], trafficType="advertisement",
            reportRequest=["sent", "delivered", "displayed", "failed"]))
        req, cpim = await ue.next_message()
        assert cpim.message_id == mid and cpim.content == b"hello from ctcu"
        assert media_type(cpim.content_type or "") == model.TEXT
        assert CT_URI in (req.headers.get("From") or "")
        assert (await ue.imdn(CT_URI, mid, "delivered")).status == 200
        assert (await ue.imdn(CT_URI, mid, "displayed")).status == 200
        got = await net.csp.wait(pushes("deliveryNotification"), count=3)
        assert [s for r in got for s in statuses(r)] == [
            (mid, "sent"), (mid, "delivered"), (mid, "displayed")]
        info = json.loads(got[1].body)["deliveryInfoList"][0]
        assert info["senderAddress"] == f"tel:{ue.number}"
        assert info["destinationAddress"] == CT_URI
        assert got[0].path == f"/ctcu/{CT}/deliveryNotification/{CT}/status"
        check_signature(got[0])

        # text + chips → multipart/mixed
        await send(net, tok, send_body([ue.number], [
            {"contentType": "text/plain", "contentText": "pick one"},
            {"contentType": model.BOTSUGGESTION, "contentText": CHIPS}]))
        _, cpim = await ue.next_message()
        parts = parse_multipart_mixed(model.Payload(cpim.content_type or "", cpim.content))
        assert [media_type(p.content_type) for p in parts] == ["text/plain",
                                                               model.BOTSUGGESTION]
        assert json.loads(parts[1].body) == CHIPS

        # upload an image + thumbnail, send a card with it and a file message
        form = aiohttp.FormData()
        form.add_field("file", PNG, filename="lab.png", content_type="image/png")
        form.add_field("thumbnail", PNG[:300], filename="t.png", content_type="image/png")
        async with net.http.post(f"{net.base}/bot/v1/{CT}/medias/upload", data=form,
                                 headers={"Authorization": f"accessToken {tok}",
                                          "uploadMode": "temp"}) as resp:
            up = await resp.json()
            assert resp.status == 200 and up["errorCode"] == 0, up
        file_url, thumb_url = (i["url"] for i in up["fileInfo"])
        card = {"message": {"generalPurposeCard": {
            "layout": {"cardOrientation": "VERTICAL"},
            "content": {"media": {"mediaUrl": file_url, "mediaContentType": "image/png",
                                  "height": "MEDIUM_HEIGHT", "thumbnailUrl": thumb_url},
                        "title": "Lab offer", "description": "A card",
                        "suggestions": [{"reply": {"displayText": "Buy",
                                                   "postback": {"data": "buy"}}}]}}}}
        await send(net, tok, send_body([ue.number], [
            {"contentType": model.BOTMESSAGE, "contentText": card},
            {"contentType": model.BOTSUGGESTION, "contentText": CHIPS}]))
        _, cpim = await ue.next_message()
        parts = parse_multipart_mixed(model.Payload(cpim.content_type or "", cpim.content))
        assert parts[0].content_type == model.BOTMESSAGE and json.loads(parts[0].body) == card
        await send(net, tok, send_body([ue.number], [
            {"contentType": "application/vnd.gsma.rcs-ft-http", "contentText": [
                {"type": "thumbnail", "url": thumb_url},
                {"type": "file", "url": file_url, "fileName": "lab.png"}]}]))
        _, cpim = await ue.next_message()
        assert cpim.content_type == model.FT_HTTP
        ft = parse_ft_http_xml(cpim.content)
        assert ft.file.size == len(PNG) and ft.thumbnail is not None
        async with net.http.get(ft.file.url) as resp:
            assert resp.status == 200 and await resp.read() == PNG
        async with net.http.get(f"{net.base}/bot/v1/{CT}/medias/download",
                                headers={"Authorization": f"accessToken {tok}",
                                         "url": file_url}) as resp:
            assert resp.status == 200 and await resp.read() == PNG

        # the user writes, then taps a suggestion
        await ue.send_to_bot(CT_URI, "text/plain;charset=UTF-8", "你好 bot".encode(),
                             mid="up-1", conversation_id="conv-up", contribution_id="c-up")
        tap = {"response": {"reply": {"displayText": "Yes", "postback": {"data": "yes"}}}}
        await ue.send_to_bot(CT_URI, model.SUGGESTION_RESPONSE, json.dumps(tap).encode(),
                             mid="up-2")
        got = await net.csp.wait(pushes("messageNotification"), count=2)
        first, second = (json.loads(r.body) for r in got)
        assert got[0].path == f"/ctcu/{CT}/messageNotification/{CT}/messages"
        check_signature(got[0])
        assert first["messageId"] == "up-1"
        assert first["messageList"] == [{"contentType": "text/plain", "contentEncoding": "utf8",
                                         "contentText": "你好 bot"}]
        assert first["senderAddress"] == f"tel:{ue.number}"
        assert first["destinationAddress"] == CT_URI
        assert first["conversationId"] == "conv-up" and first["contributionId"] == "c-up"
        assert first["dateTime"] == first["dataTime"]
        assert second["messageList"][0]["contentType"] == model.SUGGESTION_RESPONSE
        assert second["messageList"][0]["contentText"] == tap

        # revoke a message the 5GMC stored for an offline user
        offline = "+8613800000202"
        stored = await send(net, tok, send_body([offline], [
            {"contentType": "text/plain", "contentText": "to be withdrawn"}]))
        await net.csp.wait(lambda r: pushes("deliveryNotification")(r)
                           and (stored, "sent") in statuses(r))
        status, resp = await post(net, tok, "revoke", {
            "messageId": stored, "status": "RevokeRequested",
            "destinationAddress": [f"tel:{offline}"]})
        assert status == 200 and resp == {"messageId": stored, "errorCode": 0,
                                          "errorMessage": "success",
                                          "conversationId": None, "contributionId": None}
        await net.csp.wait(lambda r: pushes("deliveryNotification")(r)
                           and (stored, "revokeOk") in statuses(r))
        # the offline user registers later: nothing arrives
        late = await net.ue(offline)
        try:
            await late.next_message(timeout=0.5)
            raise AssertionError("a revoked message was delivered")
        except TimeoutError:
            pass


async def test_ctcu_csp_failing_three_times_gets_events_once_in_order() -> None:
    async with maap_network() as net:
        ue = await net.ue("+8613800000203")
        net.csp.fail_next(3)
        for i in range(3):
            resp = await ue.send_to_bot(CU_URI, "text/plain", f"msg {i}".encode(),
                                        mid=f"ordered-{i}")
            assert resp.status == 200
        got = await net.csp.wait(pushes("messageNotification", CU), count=3)
        assert [json.loads(r.body)["messageId"] for r in got] == [
            "ordered-0", "ordered-1", "ordered-2"]
        check_signature(got[0], CU_KEY)
        assert len([r for r in net.csp.requests
                    if pushes("messageNotification", CU)(r)]) == 3


async def test_ctcu_security_over_the_wire() -> None:
    async with maap_network("maap.chatbots[1].rate_limit_per_s=2") as net:
        tok = await token(net)
        cu_tok = await token(net, CU, CU_APP, CU_KEY)
        body = send_body(["+8613800000204"], [{"contentType": "text/plain",
                                               "contentText": "hi"}])
        assert (await post(net, cu_tok, "messages", body))[0] == 403
        status, resp = await post(net, "forged", "messages", body)
        assert (status, resp["errorCode"]) == (401, 40001)
        async with net.http.post(f"{net.base}/bot/v1/{CT}/messages", json=body) as r:
            assert (r.status, (await r.json())["errorCode"]) == (401, 41001)
        status, resp = await post(net, tok, "messages", None, raw=b"{broken")
        assert (status, resp["errorCode"]) == (400, 47001)
        big = send_body(["+8613800000204"], [{"contentType": "text/plain",
                                              "contentText": "x" * 300_000}])
        assert (await post(net, tok, "messages", big))[0] == 413
        status, resp = await post(net, tok, "messages", body, bot="sip%3A1%40nowhere")
        assert status == 404
        status, resp = await post(net, tok, "accessToken", {"appId": "x"}, bot="nobot")
        assert (status, resp["errorCode"]) == (404, 20002)
        # rate limit 2/s on the Telecom bot; the Unicom bot is unaffected
        codes = []
        for i in range(5):
            codes.append((await post(net, tok, "messages", {**body, "messageId": f"r{i}"}))[0])
        assert codes[0] == 200 and 429 in codes
        cu_body = {**body, "senderAddress": CU_URI, "messageId": "cu-1"}
        status, resp = await post(net, cu_tok, "messages", cu_body, bot=CU)
        assert (status, resp["errorCode"]) == (200, 0)


async def test_ctcu_csp_not_taking_events_backpressures_only_its_chatbot() -> None:
    """DESIGN.md §3: when a CSP does not accept its webhook events, its chatbot's backlog is
    bounded (maap.max_pending_events_per_bot): new sends get 429, other chatbots go on, and
    once the CSP takes the events again the chatbot can send again."""
    async with maap_network("maap.max_pending_events_per_bot=3",
                            "maap.webhook_retry_initial_s=0.3",
                            "maap.webhook_retry_max_s=0.3") as net:
        await net.ue("+8613800000301")
        net.csp.fail_next(10_000)  # the CSP answers 500 to everything for now
        tok = await token(net)
        body = send_body(["+8613800000301"], [{"contentType": "text/plain",
                                               "contentText": "hi"}])
        codes = []
        for i in range(12):
            codes.append((await post(net, tok, "messages", {**body, "messageId": f"b{i}"}))[0])
            await asyncio.sleep(0.05)
        assert codes[0] == 200 and 429 in codes, codes
        cu_tok = await token(net, CU, CU_APP, CU_KEY)
        cu_body = {**body, "senderAddress": CU_URI, "messageId": "cu-b"}
        assert (await post(net, cu_tok, "messages", cu_body, bot=CU))[0] == 200
        net.csp.stop_failing()  # the CSP recovers: the backlog drains, sends are taken again
        for _ in range(100):
            if (await post(net, tok, "messages", {**body, "messageId": "after"}))[0] == 200:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the chatbot stayed refused after its backlog drained")


async def test_ctcu_notify_url_verification_gates_sends() -> None:
    """protocols.md §10: with verify_notify_url the token call triggers the notifyPath check;
    until a CSP passes it, sends get errorCode 30006."""
    async with maap_network("maap.chatbots[1].verify_notify_url=true") as net:
        body = send_body(["+8613800000302"], [{"contentType": "text/plain",
                                               "contentText": "hi"}])
        tok = await token(net)  # the CSP does not answer the check properly yet
        status, resp = await post(net, tok, "messages", {**body, "messageId": "v1"})
        assert (status, resp["errorCode"]) == (200, 30006), resp
        [check] = await net.csp.wait(lambda r: r.path.endswith("/notifyPath"))
        assert check.method == "GET" and check.headers.get("chatbotId") == CT
        assert {"signature", "timestamp", "nonce", "echoStr"} <= set(check.headers)
        net.csp.verify_app_id = CT_APP  # now the CSP answers it
        tok = await token(net)
        status, resp = await post(net, tok, "messages", {**body, "messageId": "v2"})
        assert (status, resp["errorCode"]) == (200, 0), resp


async def test_ctcu_status_batch_merges_reports_each_once_in_order_per_user() -> None:
    """``[maap.ctcu] status_batch``: reports for many users share deliveryInfoList pushes (the
    CSP failing three times first); each user's sent → delivered arrives once, in order."""
    async with maap_network("maap.ctcu.status_batch=50") as net:
        ues = [await net.ue(f"+86138000003{i:02d}") for i in range(20)]
        tok = await token(net)
        net.csp.fail_next(3)
        mid = await send(net, tok, send_body([ue.number for ue in ues], [
            {"contentType": "text/plain", "contentEncoding": "utf8", "contentText": "batch"}],
            reportRequest=["sent", "delivered"]))
        for ue in ues:
            _, cpim = await ue.next_message()
            assert cpim.message_id == mid
            assert (await ue.imdn(CT_URI, mid, "delivered")).status == 200
        want = 2 * len(ues)

        def count() -> int:
            return sum(len(statuses(r)) for r in net.csp.requests
                       if pushes("deliveryNotification")(r))

        async with asyncio.timeout(10):
            while count() < want:
                await asyncio.sleep(0.02)
        got = [r for r in net.csp.requests
               if pushes("deliveryNotification")(r)]
        per_user: dict[str, list[str]] = {}
        for r in got:
            check_signature(r)
            for info in json.loads(r.body)["deliveryInfoList"]:
                assert info["messageId"] == mid
                per_user.setdefault(info["senderAddress"], []).append(info["status"])
        assert per_user == {f"tel:{ue.number}": ["sent", "delivered"] for ue in ues}
        assert len(got) < want  # merged: fewer pushes than reports
