"""The cmcc (China Mobile OMA-NetAPI XML) dialect end to end: a CSP calls the MaaP over HTTP
with the Basic sha256 digest, real UEs (SIP over TCP) registered at the 5GMC receive and
answer, and the test CSP server gets the XML notifications."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import unquote

import aiohttp

from fivegmc.maap import model
from fivegmc.maap.cmcc_wire import NS, authorization
from fivegmc.maap.content import parse_ft_http_xml, parse_multipart_mixed

from .maap_net import CspRequest, MaapNet, maap_network

BOT = "125200401100001"
BOT_URI = "sip:125200401100001@botplatform.rcs.chinamobile.com"
BOT_ENC = "sip%3A125200401100001%40botplatform.rcs.chinamobile.com"
APP_ID, PASSWORD = "cm-lab-app", "lab-password-cm"
# A second cmcc chatbot for cross-chatbot checks: the lab's Unicom bot (index 2) turned cmcc.
OTHER_URI = "sip:125200401100002@botplatform.rcs.chinamobile.com"
OTHER = ("maap.chatbots[2].dialect=\"cmcc\"", f'maap.chatbots[2].uri="{OTHER_URI}"',
         'maap.chatbots[2].app_id="cm-other-app"', 'maap.chatbots[2].secret="other-pw"')

CARD = {"message": {"generalPurposeCard": {
    "layout": {"cardOrientation": "VERTICAL"},
    "content": {"title": "Lab offer", "description": "A rich card",
                "suggestions": [{"reply": {"displayText": "Yes",
                                           "postback": {"data": "card-yes"}}}]}}}}
CHIPS = {"suggestions": [{"reply": {"displayText": "Menu", "postback": {"data": "menu"}}},
                         {"action": {"displayText": "Site", "postback": {"data": "site"},
                                     "urlAction": {"openUrl": {
                                         "url": "https://example.com"}}}}]}


def signed(app_id: str = APP_ID, password: str = PASSWORD, **extra: str) -> dict[str, str]:
    date = email.utils.formatdate(time.time(), usegmt=True)
    return {"Date": date, "Authorization": authorization(app_id, password, date),
            "Content-Type": "application/xml", **extra}


def send_xml(numbers: list[str], content_type: str, body: str, *, sender: str = BOT_URI,
             correlator: str = "", store: bool = True) -> bytes:
    addrs = "".join(f"<destinationAddress>tel:{n}</destinationAddress>" for n in numbers)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<msg:outboundMessageRequest xmlns:msg="{NS}">{addrs}'
        f"<senderAddress>{sender}</senderAddress><outboundIMMessage>"
        f"<contentType>{content_type}</contentType>"
        f"<conversationID>{uuid.uuid4()}</conversationID>"
        f"<contributionID>{uuid.uuid4()}</contributionID>"
        "<serviceCapability><capabilityId>ChatbotSA</capabilityId>"
        '<version>+g.gsma.rcs.botversion="#=1"</version></serviceCapability>'
        f"<bodyText><![CDATA[{body}]]></bodyText>"
        "<reportRequest>Delivered</reportRequest><reportRequest>Displayed</reportRequest>"
        "<reportRequest>Failed</reportRequest></outboundIMMessage>"
        f"<clientCorrelator>{correlator or uuid.uuid4().hex}</clientCorrelator>"
        f"<storeSupported>{'true' if store else 'false'}</storeSupported>"
        "</msg:outboundMessageRequest>"
    ).encode()


async def send(net: MaapNet, numbers: list[str], content_type: str, body: str, *,
               mode: str = "group") -> str:
    url = f"{net.base}/messaging/{mode}/v1/outbound/{BOT_ENC}/requests"
    async with net.http.post(url, data=send_xml(numbers, content_type, body),
                             headers=signed()) as resp:
        text = await resp.read()
        assert resp.status == 201, text
        root = ET.fromstring(text)
        return root.findtext("messageId") or ""


def notes(kind: str) -> Callable[[CspRequest], bool]:
    def pred(r: CspRequest) -> bool:
        return f"/cmcc/{BOT}/{kind}/" in r.path
    return pred


def xml(r: CspRequest) -> ET.Element:
    assert r.headers.get("Content-Type", "").startswith("application/xml")
    return ET.fromstring(r.body)


async def test_cmcc_send_receive_statuses_files_revoke() -> None:
    async with maap_network() as net:
        ue = await net.ue("+8613800000101")
        # text, interaction mode
        mid = await send(net, [ue.number], "text/plain", "hello from cmcc", mode="interaction")
        req, cpim = await ue.next_message()
        assert cpim.message_id == mid and cpim.content == b"hello from cmcc"
        assert model.TEXT in (cpim.content_type or "")
        assert BOT_URI in (req.headers.get("From") or "")
        assert (await ue.imdn(BOT_URI, mid, "delivered")).status == 200
        assert (await ue.imdn(BOT_URI, mid, "displayed")).status == 200
        got = await net.csp.wait(notes("DeliveryInfoNotification"), count=2)
        assert unquote(got[0].path.rsplit("/", 1)[-1]) == BOT_URI
        infos = [xml(r) for r in got]
        assert [i.tag for i in infos] == [f"{{{NS}}}deliveryInfoNotification"] * 2
        assert [i.findtext("deliveryInfo/deliveryStatus") for i in infos] == [
            "DeliveredToTerminal", "DisplayedToTerminal"]
        assert {i.findtext("deliveryInfo/messageId") for i in infos} == {mid}
        assert infos[0].findtext("deliveryInfo/address") == f"tel:{ue.number}"

        # a card (group mode) and text + chips as multipart
        card_mid = await send(net, [ue.number], model.BOTMESSAGE, json.dumps(CARD))
        _, cpim = await ue.next_message()
        assert cpim.message_id == card_mid and cpim.content_type == model.BOTMESSAGE
        assert json.loads(cpim.content) == CARD
        multipart = ("--next\r\nContent-Type: text/plain\r\n\r\nPick one\r\n--next\r\n"
                     f"Content-Type: {model.BOTSUGGESTION}\r\n\r\n{json.dumps(CHIPS)}\r\n"
                     "--next--")
        await send(net, [ue.number], 'multipart/mixed; boundary="next"', multipart)
        _, cpim = await ue.next_message()
        parts = parse_multipart_mixed(model.Payload(cpim.content_type or "", cpim.content))
        assert [p.content_type for p in parts] == ["text/plain", model.BOTSUGGESTION]
        assert json.loads(parts[1].body) == CHIPS

        # a file: upload, send the FT-over-HTTP descriptor, the UE downloads it
        image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20
        form = aiohttp.FormData()
        form.add_field("File", image, filename="lab.png", content_type="image/png")
        form.add_field("Thumbnail", b"\xff\xd8\xff" + b"\0" * 500, filename="t.jpg",
                       content_type="image/jpeg")
        headers = signed(**{"X-3GPP-Intended-Identity": BOT_URI, "User-Agent": f"SP/{BOT_URI}",
                            "Terminal-type": "Chatbot"})
        del headers["Content-Type"]
        async with net.http.post(f"{net.base}/Content", data=form, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            descriptor = await resp.read()
        ft = parse_ft_http_xml(descriptor)
        assert ft.file.size == len(image) and ft.thumbnail is not None
        await send(net, [ue.number], model.FT_HTTP, descriptor.decode())
        _, cpim = await ue.next_message()
        assert cpim.content_type == model.FT_HTTP
        async with net.http.get(parse_ft_http_xml(cpim.content).file.url) as resp:
            assert resp.status == 200 and await resp.read() == image

        # the UE writes to the chatbot, then taps a suggestion
        await ue.send_to_bot(BOT_URI, "text/plain;charset=UTF-8", "你好 bot".encode(),
                             mid="up-1", conversation_id="conv-up")
        tap = json.dumps({"response": {"reply": {"displayText": "Menu",
                                                 "postback": {"data": "menu"}}}}).encode()
        await ue.send_to_bot(BOT_URI, model.SUGGESTION_RESPONSE, tap, mid="up-2")
        got = await net.csp.wait(notes("InboundMessageNotification"), count=2)
        first, second = (xml(r).find("inboundMessage") for r in got)
        assert first is not None and second is not None
        assert first.findtext("messageId") == "up-1"
        assert base64.b64decode(first.findtext("bodyText") or "").decode() == "你好 bot"
        assert first.findtext("senderAddress") == f"tel:{ue.number}"
        assert first.findtext("destinationAddress") == BOT_URI
        assert first.findtext("conversationID") == "conv-up"
        assert second.findtext("contentType") == model.SUGGESTION_RESPONSE
        assert base64.b64decode(second.findtext("bodyText") or "") == tap

        # revoke a message stored for an offline user
        offline = "+8613800000102"
        stored = await send(net, [offline], "text/plain", "to be withdrawn")
        status_url = f"{net.base}/messaging/v1/outbound/{BOT_ENC}/requests/{stored}/status"
        revoke = (f'<msg:messageStatusReport xmlns:msg="{NS}"><status>RevokeRequested'
                  "</status></msg:messageStatusReport>").encode()
        for _ in range(50):  # until the 5GMC has stored it (SENT)
            async with net.http.get(status_url.replace("/status", "/deliveryInfos"),
                                    headers=signed()) as resp:
                assert resp.status == 200
                if b"MessageWaiting" in await resp.read():
                    break
        async with net.http.put(status_url, data=revoke, headers=signed()) as resp:
            assert resp.status == 200, await resp.text()
        (note,) = await net.csp.wait(notes("MessageStatusNotification"))
        root = xml(note)
        assert root.findtext("status") == "Revoked" and root.findtext("messageId") == stored
        assert root.findtext("address") == f"tel:{offline}"
        link = root.find("link")
        assert link is not None and link.get("rel") == "OutboundMessageRequest"


async def test_cmcc_csp_failing_three_times_gets_events_once_in_order() -> None:
    async with maap_network() as net:
        ue = await net.ue("+8613800000103")
        net.csp.fail_next(3)
        for i in range(3):
            resp = await ue.send_to_bot(BOT_URI, "text/plain", f"msg {i}".encode(),
                                        mid=f"ordered-{i}")
            assert resp.status == 200
        got = await net.csp.wait(notes("InboundMessageNotification"), count=3)
        ids = [xml(r).findtext("inboundMessage/messageId") for r in got]
        assert ids == ["ordered-0", "ordered-1", "ordered-2"]
        await asyncio.sleep(0.3)  # no late duplicates
        assert len([r for r in net.csp.requests
                    if f"/cmcc/{BOT}/InboundMessageNotification/" in r.path]) == 3


async def test_cmcc_security_over_the_wire() -> None:
    async with maap_network(*OTHER, "maap.chatbots[3].rate_limit_per_s=2") as net:
        url = f"{net.base}/messaging/group/v1/outbound/{BOT_ENC}/requests"
        body = send_xml(["+8613800000104"], "text/plain", "hi")

        async def post(data: bytes, headers: dict[str, str],
                       target: str = url) -> tuple[int, str]:
            async with net.http.post(target, data=data, headers=headers) as resp:
                text = await resp.read()
                if resp.status >= 400:
                    root = ET.fromstring(text)
                    assert root.tag == f"{{{NS}}}requestError"
                    return resp.status, root[0].findtext("messageId") or ""
                return resp.status, ""

        assert await post(body, signed("cm-other-app", "other-pw")) == (403, "POL1003")
        assert await post(body, signed(password="wrong")) == (401, "POL1002")
        stale = signed()
        stale["Date"] = email.utils.formatdate(time.time() - 3600, usegmt=True)
        stale["Authorization"] = authorization(APP_ID, PASSWORD, stale["Date"])
        assert await post(body, stale) == (401, "POL1002")
        assert await post(body, {}) == (401, "POL1002")
        assert await post(b"<broken", signed()) == (400, "SVC0001")
        big = send_xml(["+8613800000104"], "text/plain", "x" * 300_000)
        assert await post(big, signed()) == (413, "POL1004")
        missing = f"{net.base}/messaging/group/v1/outbound/sip%3A1%40nowhere/requests"
        assert await post(body, signed(), missing) == (404, "SVC0002")
        # rate limit: 2/s for this chatbot; the other cmcc chatbot is unaffected
        codes = [(await post(send_xml(["+8613800000104"], "text/plain", f"n{i}"),
                             signed()))[0] for i in range(5)]
        assert 429 in codes and codes[0] == 201
        other_url = (f"{net.base}/messaging/group/v1/outbound/"
                     "sip%3A125200401100002%40botplatform.rcs.chinamobile.com/requests")
        other_body = send_xml(["+8613800000104"], "text/plain", "hi", sender=OTHER_URI)
        assert await post(other_body, signed("cm-other-app", "other-pw"),
                          other_url) == (201, "")
