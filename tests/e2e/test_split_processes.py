"""The 5GMC and the MaaP as separate ``fivegmc run`` processes (``[node] elements``): process 1
runs the 5GMC + SMSC stub (profiles/split-center.toml), process 2 the MaaP alone
(profiles/split-maap.toml), wired by SIP over TCP (``maap.center`` one way, ``[[routes]]`` the
other) and SMPP (``[maap.sms]``). A CSP sends through the MaaP's HTTP API to a test UE
registered on the 5GMC and gets the delivered status and the UE's reply as webhooks."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fivegmc.config import ProfileError, load_profile

from .maap_net import BOT_TAGS, BotUE, CspRequest, CspServer
from .peers import REPO, SipNode, fivegmc_node, free_ports

pytestmark = pytest.mark.timeout(60)

CENTER_PROFILE = REPO / "profiles" / "split-center.toml"
MAAP_PROFILE = REPO / "profiles" / "split-maap.toml"
BOT_URI = "sip:labbot@botplatform.ims.mnc000.mcc460.3gppnetwork.org"
CT_BOT = "106598858810000001"
USER = "+8613800000211"


def chatbot_routes(maap_sip_port: int) -> str:
    """``--set routes=[...]``: every lab chatbot domain to the MaaP process's SIP port."""
    domains = load_profile(MAAP_PROFILE).maap.chatbots
    hop = f"sip:127.0.0.1:{maap_sip_port};transport=tcp"
    names = dict.fromkeys(b.uri.split("@", 1)[1] for b in domains)
    return "routes=[" + ", ".join(f'{{domain="{d}", next_hop="{hop}"}}' for d in names) + "]"


def admin_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return json.loads(resp.read())


def start_pair(tmp: Path, csp_url: str) -> tuple[SipNode, SipNode, dict[str, int]]:
    smsc, maap_sip, maap_http = free_ports(3)
    center = fivegmc_node(tmp / "center", profile=CENTER_PROFILE, extra_sets=[
        f"smsc.port={smsc}", chatbot_routes(maap_sip), "sip.t1_ms=50"])
    bots = load_profile(MAAP_PROFILE).maap.chatbots
    hooks = [f'maap.chatbots[{i}].webhook="{csp_url}/{b.dialect}/{b.id}"'
             for i, b in enumerate(bots)]
    maap = fivegmc_node(tmp / "maap", profile=MAAP_PROFILE, extra_sets=[
        f"maap.port={maap_http}", f"maap.sip_port={maap_sip}",
        f'maap.center="sip:127.0.0.1:{center.sip_port};transport=tcp"',
        f"maap.sms.port={smsc}", "maap.webhook_retry_initial_s=0.05",
        "maap.webhook_retry_max_s=0.4", f'maap.trace_url="http://127.0.0.1:{center.admin_port}"',
        *hooks])
    maap.name = "fivegmc-maap"
    center.start()
    try:
        maap.start()
    except BaseException:
        center.stop()
        raise
    return center, maap, {"smsc": smsc, "maap_sip": maap_sip, "maap_http": maap_http}


async def gsma_token(http: aiohttp.ClientSession, base: str) -> str:
    basic = base64.b64encode(b"labbot-client:lab-secret-labbot").decode()
    async with http.post(f"{base}/oauth2/v1/token",
                         data={"grant_type": "client_credentials", "scope": "botmessage"},
                         headers={"Authorization": f"Basic {basic}"}) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["access_token"])


def gsma_event(kind: str, status: str | None = None) -> Any:
    def pred(r: CspRequest) -> bool:
        if not r.path.startswith("/gsma/labbot"):
            return False
        event = json.loads(r.body)
        return bool(event.get("event") == kind and (
            status is None or event.get("RCSMessage", {}).get("status") == status))
    return pred


async def ct_token(http: aiohttp.ClientSession, base: str) -> str:
    async with http.post(f"{base}/bot/v1/106598858810000001/accessToken",
                         json={"appId": "ct-lab-app", "appKey": "lab-appkey-ct"}) as r:
        return str((await r.json())["accessToken"])


async def ct_send(http: aiohttp.ClientSession, base: str, tok: str, number: str) -> str:
    body = {"messageId": "split-sms-1", "destinationAddress": [f"tel:{number}"],
            "senderAddress": "sip:106598858810000001@botplatform.rcs.vnet.cn",
            "messageList": [{"contentType": "text/plain", "contentText": "5G hello"}],
            "smsSupported": True, "smsContent": "SMS hello"}
    async with http.post(f"{base}/bot/v1/106598858810000001/messages", json=body,
                         headers={"Authorization": f"accessToken {tok}"}) as r:
        answer = await r.json()
        assert answer["errorCode"] == 0, answer
        return str(answer["messageId"])


async def test_api_to_ue_and_back_across_two_processes(tmp_path: Path) -> None:
    csp = await CspServer().start()
    try:
        center, maap, ports = await asyncio.to_thread(start_pair, tmp_path, csp.url)
        try:
            assert "listening maap/http" not in " ".join(center.listening)
            assert not any(ln.startswith("listening sip/") for ln in maap.listening)
            base = f"http://127.0.0.1:{ports['maap_http']}"
            ue = BotUE(USER, ("127.0.0.1", center.sip_port), "tcp")
            await ue.start()
            try:
                assert (await ue.register(tags=BOT_TAGS)).status == 200
                async with aiohttp.ClientSession() as http:
                    tok = await gsma_token(http, base)
                    # A2P: API → MaaP process → SIP/TCP → 5GMC process → UE
                    body = {"RCSMessage": {"msgId": "split-1", "textMessage": "Hello apart"},
                            "messageContact": {"userContact": USER}}
                    async with http.post(f"{base}/bot/v1/labbot/messages", json=body,
                                         headers={"Authorization": f"Bearer {tok}"}) as r:
                        assert r.status == 202, await r.text()
                    req, cpim = await ue.next_message(timeout=5)
                    assert cpim.message_id == "split-1" and cpim.content == b"Hello apart"
                    assert "labbot@botplatform" in (req.headers.get("From") or "")
                    # IMDN back: UE → 5GMC → [[routes]] → MaaP → messageStatus webhook
                    assert (await ue.imdn(BOT_URI, "split-1", "delivered")).status == 200
                    [sent] = await csp.wait(gsma_event("messageStatus", "sent"), timeout=5)
                    [note] = await csp.wait(gsma_event("messageStatus", "delivered"), timeout=5)
                    assert json.loads(note.body)["RCSMessage"]["msgId"] == "split-1"
                    assert csp.requests.index(sent) < csp.requests.index(note)
                    # P2A: the UE's reply reaches the CSP as a message event
                    reply = await ue.send_to_bot(BOT_URI, "text/plain", b"thanks")
                    assert reply.status in (200, 202)
                    [msg] = await csp.wait(gsma_event("message"), timeout=5)
                    assert json.loads(msg.body)["RCSMessage"]["textMessage"] == "thanks"
            finally:
                ue.close()
            # each process has its own admin API, with only its own element's routes
            assert admin_json(maap.admin_port or 0, "/healthz")["elements"] == ["maap"]
            assert admin_json(center.admin_port or 0, "/healthz")["elements"] == \
                ["center", "smsc"]
            state = admin_json(maap.admin_port or 0,
                               "/admin/v1/chatbots/labbot/messages/split-1")
            assert state["recipients"][0]["status"] == "delivered"
            # SMS fallback across the processes: the MaaP's steps join the 5GMC's trace
            async with aiohttp.ClientSession() as http:
                ct_tok = await ct_token(http, base)
                mid = await ct_send(http, base, ct_tok, "+8613900000005")
            trace: Any = {}
            names: list[str] = []
            for _ in range(100):
                try:
                    trace = admin_json(center.admin_port or 0, f"/admin/v1/messages/{mid}")
                except urllib.error.HTTPError:  # 404 until the first step arrives
                    trace = {}
                names = [e["event"] for e in trace.get("trace", [])]
                if "dlr" in names:
                    break
                await asyncio.sleep(0.1)
            assert names[:2] == ["fallback-sms", "submit_sm"] and "dlr" in names, trace
            assert maap.alive() and center.alive()
        finally:
            rc_maap, rc_center = maap.stop(), center.stop()
        assert (rc_maap, rc_center) == (0, 0), maap.logs() + center.logs()
    finally:
        await csp.close()


def test_maap_alone_needs_a_center_and_an_smsc() -> None:
    with pytest.raises(ProfileError) as err:
        load_profile(MAAP_PROFILE, ['maap.center=""'])
    assert "maap.center: required when this process runs the MaaP without the 5GMC" \
        in str(err.value)
    with pytest.raises(ProfileError) as err:
        load_profile(MAAP_PROFILE, ["maap.sms.port=0"])
    assert "maap.sms.port: required" in str(err.value)
    with pytest.raises(ProfileError, match=r"maap\.center: expected host:port"):
        load_profile(MAAP_PROFILE, ['maap.center="nowhere"'])
    with pytest.raises(ProfileError, match=r"node.elements\[1\]: maap listed twice"):
        load_profile(None, ['node.elements=["maap", "maap"]', 'maap.center="127.0.0.1:5060"',
                            "maap.sms.port=2775"])
    # the default profile still runs all three in one process
    assert load_profile(None).node.elements == ("center", "maap", "smsc")
    # the center alone: no maap requirements, SIP listeners checked as before
    assert load_profile(CENTER_PROFILE).runs("center")
    assert not load_profile(CENTER_PROFILE).runs("maap")
