"""The GSMA MaaP dialect end to end: a CSP calls the real node over HTTP (OAuth2 token, sends,
status, revoke, files, capabilities) and receives webhooks on a test CSP server; real UEs speak
SIP over TCP to the 5GMC, which routes to and from the MaaP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

import aiohttp

from fivegmc.maap.content import (
    FileInfo,
    GeoPush,
    ft_http_xml,
    parse_ft_http_xml,
    parse_multipart_mixed,
    parse_push_location,
    push_location_xml,
)
from fivegmc.maap.model import (
    BOTMESSAGE,
    BOTSUGGESTION,
    FT_HTTP,
    IS_COMPOSING,
    PUSH_LOCATION,
    SUGGESTION_RESPONSE,
    Payload,
)

from .maap_net import CspRequest, MaapNet, maap_network

BOT = "labbot"
BOT_URI = "sip:labbot@botplatform.ims.mnc000.mcc460.3gppnetwork.org"
CLIENT_ID, CLIENT_SECRET, WEBHOOK_SECRET = "labbot-client", "lab-secret-labbot", \
    "lab-webhook-labbot"

CARD = {"message": {"generalPurposeCard": {
    "layout": {"cardOrientation": "VERTICAL"},
    "content": {"title": "Lab offer", "description": "Tap a chip",
                "suggestions": [{"reply": {"displayText": "Details",
                                           "postback": {"data": "details"}}}]}}}}
CHIPS = {"suggestions": [
    {"reply": {"displayText": "Yes", "postback": {"data": "yes"}}},
    {"action": {"dialerAction": {"dialPhoneNumber": {"phoneNumber": "+8610000"}},
                "displayText": "Call us", "postback": {"data": "call"}}}]}


async def token(net: MaapNet) -> str:
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    async with net.http.post(f"{net.base}/oauth2/v1/token",
                             data={"grant_type": "client_credentials", "scope": "botmessage"},
                             headers={"Authorization": f"Basic {basic}"}) as r:
        body = await r.json()
        assert r.status == 200, body
        assert body["token_type"] == "Bearer" and body["expires_in"] > 0
        return str(body["access_token"])


async def call(net: MaapNet, method: str, path: str, tok: str | None, *,
               json_body: Any = None, data: Any = None, params: Any = None
               ) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    async with net.http.request(method, f"{net.base}/bot/v1/{BOT}/{path}", json=json_body,
                                data=data, params=params, headers=headers) as r:
        text = await r.read()
        return r.status, json.loads(text) if text else None


async def send(net: MaapNet, tok: str, user: str, rcs: dict[str, Any]) -> tuple[int, Any]:
    return await call(net, "POST", "messages", tok,
                      json_body={"RCSMessage": rcs, "messageContact": {"userContact": user}})


def event(r: CspRequest) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(r.body)
    return body


def gsma(kind: str, **match: str) -> Any:
    def pred(r: CspRequest) -> bool:
        if not r.path.startswith(f"/gsma/{BOT}"):
            return False
        e = event(r)
        if e.get("event") != kind:
            return False
        rcs = e.get("RCSMessage", {})
        return all(rcs.get(k) == v for k, v in match.items())
    return pred


def assert_signed(r: CspRequest) -> None:
    mac = hmac.new(WEBHOOK_SECRET.encode(), r.body, hashlib.sha256).hexdigest()
    assert r.headers["X-MaaP-Signature"] == f"sha256={mac}"


async def test_text_card_file_statuses_and_replies() -> None:
    async with maap_network() as net:
        ue = await net.ue("+8613800000101")
        tok = await token(net)

        # text → the UE gets CPIM text/plain with imdn.Message-ID = msgId
        status, body = await send(net, tok, ue.number, {"msgId": "gsma-t1",
                                                        "textMessage": "Hello 5G"})
        assert status == 202 and body["RCSMessage"] == {"msgId": "gsma-t1",
                                                        "status": "pending"}
        req, cpim = await ue.next_message()
        assert cpim.message_id == "gsma-t1"
        assert (cpim.content_type or "").startswith("text/plain") and cpim.content == b"Hello 5G"
        assert "labbot@botplatform" in (req.headers.get("From") or "")
        # the same msgId again: same answer, nothing resent
        assert await send(net, tok, ue.number, {"msgId": "gsma-t1", "textMessage": "x"}) \
            == (202, body)
        await ue.imdn(BOT_URI, "gsma-t1", "delivered")
        await ue.imdn(BOT_URI, "gsma-t1", "displayed")
        got = await net.csp.wait(gsma("messageStatus", msgId="gsma-t1"), count=3)
        assert [event(r)["RCSMessage"]["status"] for r in got] == [
            "sent", "delivered", "displayed"]
        for r in got:
            assert_signed(r)
            assert event(r)["messageContact"]["userContact"] == ue.number
        assert (await call(net, "GET", "messages/gsma-t1/status", tok))[1]["RCSMessage"][
            "status"] == "displayed"

        # rich card + chip list → multipart/mixed of botmessage + botsuggestion
        status, body = await send(net, tok, ue.number, {"richcardMessage": CARD,
                                                        "suggestedChipList": CHIPS})
        assert status == 202, body
        _, cpim = await ue.next_message()
        assert (cpim.content_type or "").startswith("multipart/mixed")
        parts = parse_multipart_mixed(Payload(cpim.content_type or "", cpim.content))
        assert [p.content_type for p in parts] == [BOTMESSAGE, BOTSUGGESTION]
        assert json.loads(parts[0].body) == CARD and json.loads(parts[1].body) == CHIPS
        assert cpim.message_id == body["RCSMessage"]["msgId"]

        # file: upload, then send it → FT-over-HTTP XML whose URL serves the bytes
        form = aiohttp.FormData()
        form.add_field("fileContent", b"\x89PNG-lab-image", filename="lab.png",
                       content_type="image/png")
        status, info = await call(net, "POST", "files", tok, data=form)
        assert status == 201, info
        status, body = await send(net, tok, ue.number, {"fileMessage": {
            "fileUrl": info["fileUrl"]}})
        assert status == 202, body
        _, cpim = await ue.next_message()
        assert (cpim.content_type or "").startswith(FT_HTTP)
        ft = parse_ft_http_xml(cpim.content)
        assert ft.file.url == info["fileUrl"] and ft.file.size == 14
        async with net.http.get(ft.file.url) as fr:
            assert fr.status == 200 and await fr.read() == b"\x89PNG-lab-image"
        status, _ = await call(net, "GET", f"files/{info['fileId']}", tok)
        assert status == 200

        # typing goes out as isComposing
        assert (await send(net, tok, ue.number, {"isTyping": "active"}))[0] == 202
        _, cpim = await ue.next_message()
        assert (cpim.content_type or "").startswith(IS_COMPOSING)

        # the user answers: newUser, message, a suggestion tap (response), typing
        resp = await ue.send_to_bot(BOT_URI, "text/plain;charset=UTF-8", "我要".encode(),
                                    mid="ue-1", conversation_id="conv-7")
        assert resp.status == 200
        tap = {"response": {"reply": {"displayText": "Yes", "postback": {"data": "yes"}}}}
        resp = await ue.send_to_bot(BOT_URI, SUGGESTION_RESPONSE, json.dumps(tap).encode(),
                                    mid="ue-2")
        assert resp.status == 200
        assert (await ue.typing(BOT_URI)).status == 200
        new_user = (await net.csp.wait(gsma("newUser")))[0]
        assert event(new_user)["messageContact"]["userContact"] == ue.number
        msg = (await net.csp.wait(gsma("message", msgId="ue-1")))[0]
        assert event(msg)["RCSMessage"]["textMessage"] == "我要"
        assert event(msg)["conversationId"] == "conv-7"
        assert_signed(msg)
        response = (await net.csp.wait(gsma("response", msgId="ue-2")))[0]
        assert event(response)["RCSMessage"]["suggestedResponse"] == tap
        typing = (await net.csp.wait(gsma("isTyping")))[0]
        assert event(typing)["RCSMessage"] == {"isTyping": "active"}
        # user events arrive in the order the user produced them
        order = [event(r)["event"] for r in net.csp.requests
                 if event(r).get("event") in ("newUser", "message", "response", "isTyping")]
        assert order == ["newUser", "message", "response", "isTyping"]

        # the chatbot reads the user's message → the UE gets a displayed IMDN
        before = len(ue.received)
        status, body = await call(net, "PUT", "messages/ue-1/status", tok,
                                  json_body={"RCSMessage": {"status": "displayed"}})
        assert status == 200, body
        # (ue-1 and ue-2 asked positive-delivery: the MaaP's delivered IMDNs came first)
        imdns = [(await ue.next_message())[1] for _ in range(3)]
        assert all((c.content_type or "").startswith("message/imdn+xml") for c in imdns)
        assert [b"ue-1" in c.content for c in imdns if b"displayed" in c.content] == [True]
        assert len(ue.received) > before

        # capabilities
        status, caps = await call(net, "GET", "contactCapabilities", tok,
                                  params={"userContact": ue.number})
        assert status == 200 and caps["online"] is True and caps["chatbotCommunication"]


async def test_revoke_offline_and_not_5g_users() -> None:
    async with maap_network() as net:
        tok = await token(net)
        offline = "+8613800000102"  # an RCS subscriber, not registered: the 5GMC stores it
        status, body = await send(net, tok, offline, {"msgId": "gsma-r1",
                                                      "textMessage": "later"})
        assert status == 202, body
        await net.csp.wait(gsma("messageStatus", msgId="gsma-r1", status="sent"))
        status, body = await call(net, "PUT", "messages/gsma-r1/status", tok,
                                  json_body={"RCSMessage": {"status": "cancelled"}})
        assert status == 200 and body["RCSMessage"]["status"] == "cancelled"
        await net.csp.wait(gsma("messageStatus", msgId="gsma-r1", status="cancelled"))
        status, body = await call(net, "GET", "messages/gsma-r1/status", tok)
        assert body["RCSMessage"]["status"] == "cancelled"
        ue = await net.ue(offline)  # the withdrawn copy never arrives
        await asyncio.sleep(0.4)
        assert not [r for r in ue.received if r.method == "MESSAGE"]

        # a delivered message cannot be cancelled
        await send(net, tok, ue.number, {"msgId": "gsma-r2", "textMessage": "now"})
        await ue.next_message()
        await ue.imdn(BOT_URI, "gsma-r2", "delivered")
        await net.csp.wait(gsma("messageStatus", msgId="gsma-r2", status="delivered"))
        status, body = await call(net, "PUT", "messages/gsma-r2/status", tok,
                                  json_body={"RCSMessage": {"status": "cancelled"}})
        assert status == 409, body

        # SMS-only and unknown numbers are not 5G-message users → 404
        for number in ("+8613900000101", "+8612000000001"):
            status, body = await send(net, tok, number, {"textMessage": "x"})
            assert status == 404 and "not a 5G-message user" in body["reason"]["text"]


async def test_csp_failing_three_times_gets_events_once_in_order() -> None:
    async with maap_network() as net:
        ue = await net.ue("+8613800000103")
        await token(net)
        net.csp.fail_next(3)
        for i in range(3):
            resp = await ue.send_to_bot(BOT_URI, "text/plain", f"m{i}".encode(),
                                        mid=f"ord-{i}")
            assert resp.status == 200
        got = await net.csp.wait(gsma("message"), count=3, timeout=10)
        assert [event(r)["RCSMessage"]["textMessage"] for r in got] == ["m0", "m1", "m2"]
        await asyncio.sleep(0.5)
        ids = [event(r)["RCSMessage"]["msgId"] for r in net.csp.requests
               if event(r).get("event") == "message"]
        assert ids == ["ord-0", "ord-1", "ord-2"]  # once each
        event_ids = [event(r)["eventId"] for r in net.csp.requests]
        assert len(event_ids) == len(set(event_ids))


async def test_security_over_the_wire() -> None:
    async with maap_network("maap.chatbots[0].rate_limit_per_s=2") as net:
        await net.ue("+8613800000104")
        tok = await token(net)
        text = {"textMessage": "hi"}
        # a token of another chatbot (the CT/CU lab bot) on labbot's path → 403
        maap = net.node.maap
        assert maap is not None
        ct_token, _ = maap.tokens.issue("106598858810000001")
        status, body = await send(net, ct_token, "+8613800000104", text)
        assert status == 403 and "reason" in body
        # no token, a bad token, bad client credentials → 401
        assert (await send(net, "", "+8613800000104", text))[0] == 401
        assert (await send(net, "forged", "+8613800000104", text))[0] == 401
        async with net.http.post(f"{net.base}/oauth2/v1/token", data={
                "grant_type": "client_credentials", "client_id": CLIENT_ID,
                "client_secret": "wrong"}) as r:
            assert r.status == 401 and (await r.json())["error"] == "invalid_client"
        # unknown chatbot → 404
        async with net.http.post(f"{net.base}/bot/v1/nobot/messages", json={},
                                 headers={"Authorization": f"Bearer {tok}"}) as r:
            assert r.status == 404 and "reason" in await r.json()
        # malformed JSON and bad fields → 400 naming the path
        async with net.http.post(f"{net.base}/bot/v1/{BOT}/messages", data=b"{nope",
                                 headers={"Authorization": f"Bearer {tok}",
                                          "Content-Type": "application/json"}) as r:
            assert r.status == 400 and "malformed JSON" in (await r.json())["reason"]["text"]
        bad_card = {"message": {"generalPurposeCard": {
            "layout": {"cardOrientation": "VERTICAL"}, "content": {"title": "t" * 201}}}}
        status, body = await send(net, tok, "+8613800000104", {"richcardMessage": bad_card})
        assert status == 400
        assert body["reason"]["text"] == ("RCSMessage.richcardMessage.message."
                                          "generalPurposeCard.content.title: longer than 200")
        # too large → 413
        status, body = await send(net, tok, "+8613800000104", {"textMessage": "x" * 300_000})
        assert status == 413
        # rate limit: 2/s for labbot → some 429s with Retry-After
        codes = []
        for _ in range(6):
            codes.append((await send(net, tok, "+8613800000104",
                                     {"textMessage": uuid.uuid4().hex}))[0])
        assert 429 in codes and codes[0] == 202


async def test_location_audio_and_user_file_and_location() -> None:
    async with maap_network() as net:
        ue = await net.ue("+8613800000105")
        tok = await token(net)
        status, _ = await send(net, tok, ue.number, {"geolocationPushMessage": {
            "pos": "39.9042 116.4074", "label": "Lab", "radius": 20,
            "timestamp": "2026-01-01T08:00:00Z"}})
        assert status == 202
        _, cpim = await ue.next_message()
        assert (cpim.content_type or "").startswith(PUSH_LOCATION)
        geo = parse_push_location(cpim.content)
        assert (geo.latitude, geo.longitude, geo.label, geo.radius) == (39.9042, 116.4074,
                                                                        "Lab", 20.0)
        status, _ = await send(net, tok, ue.number, {"audioMessage": {
            "fileUrl": "https://cdn.example/v.amr", "fileMIMEType": "audio/amr",
            "fileSize": 3000, "playingLength": 4}})
        assert status == 202
        _, cpim = await ue.next_message()
        assert parse_ft_http_xml(cpim.content).file.playing_length == 4

        # the user sends a file and a location; an action tap
        ft = ft_http_xml(FileInfo("https://ue.example/p.jpg", "image/jpeg", 77, 1.9e9,
                                  "p.jpg"))
        assert (await ue.send_to_bot(BOT_URI, ft.content_type, ft.body, mid="uf")).status == 200
        loc = push_location_xml(GeoPush(31.23, 121.47, "Home"), f"sip:{ue.number}")
        assert (await ue.send_to_bot(BOT_URI, loc.content_type, loc.body, mid="ul")).status \
            == 200
        tap = {"response": {"action": {"urlAction": {"openUrl": {"url": "https://x.example"}},
                                       "displayText": "Open", "postback": {"data": "o"}}}}
        assert (await ue.send_to_bot(BOT_URI, SUGGESTION_RESPONSE, json.dumps(tap).encode(),
                                     mid="ua")).status == 200
        got = event((await net.csp.wait(gsma("message", msgId="uf")))[0])
        assert got["RCSMessage"]["fileMessage"] == {
            "fileUrl": "https://ue.example/p.jpg", "fileName": "p.jpg",
            "fileMIMEType": "image/jpeg", "fileSize": 77}
        got = event((await net.csp.wait(gsma("message", msgId="ul")))[0])
        assert got["RCSMessage"]["geolocationPushMessage"] == {"pos": "31.23 121.47",
                                                               "label": "Home"}
        got = event((await net.csp.wait(gsma("response", msgId="ua")))[0])
        assert got["RCSMessage"]["suggestedResponse"] == tap
