"""The China Telecom / Unicom dialect over HTTP (aiohttp test server with only its routes) and
against a recording fake of the MaaP core (real TokenBook and FileStore)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fivegmc.config import ChatbotConfig, load_profile
from fivegmc.maap import content, model
from fivegmc.maap.ctcu import CtcuDialect
from fivegmc.maap.files import FileStore
from fivegmc.maap.model import (
    FailureCode,
    MessageRecord,
    Outbound,
    RecipientState,
    SendResult,
    Status,
)
from fivegmc.maap.tokens import TokenBook

PROFILE = load_profile(Path(__file__).parents[2] / "profiles" / "lab.toml")
BOTS = {b.id: b for b in PROFILE.maap.chatbots}
CT = BOTS["106598858810000001"]
CU = BOTS["106500000000003"]
GSMA = BOTS["labbot"]
USER = "+8613800000001"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 200


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeApi:
    """The MaapApi contract, recording sends and revokes."""

    config: Any
    tokens: TokenBook
    files: FileStore
    sent: list[Outbound] = field(default_factory=list)
    revoked: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    denied: set[str] = field(default_factory=set)

    def bot(self, bot_id: str) -> ChatbotConfig | None:
        return BOTS.get(bot_id)

    def bot_by_uri(self, uri: str) -> ChatbotConfig | None:
        return next((b for b in BOTS.values() if b.uri.lower() == uri.lower()), None)

    def bots(self) -> tuple[ChatbotConfig, ...]:
        return PROFILE.maap.chatbots

    def allow(self, bot_id: str) -> bool:
        return bot_id not in self.denied

    async def send(self, out: Outbound) -> SendResult:
        self.sent.append(out)
        return SendResult(out.message_id, tuple((n, Status.ACCEPTED, None)
                                                for n in out.recipients))

    async def revoke(self, bot_id: str, message_id: str,
                     recipients: tuple[str, ...] = ()) -> dict[str, Status]:
        self.revoked.append((bot_id, message_id, recipients))
        return {n: Status.REVOKED for n in recipients}

    def record(self, bot_id: str, message_id: str) -> MessageRecord | None:
        if not any(o.bot_id == bot_id and o.message_id == message_id for o in self.sent):
            return None
        return MessageRecord(bot_id, message_id, 0.0, (RecipientState(USER, Status.SENT, None,
                                                                      0.0),))


@dataclass
class Env:
    api: FakeApi
    dialect: CtcuDialect
    client: TestClient[web.Request, web.Application]
    clock: Clock

    async def token(self, bot: ChatbotConfig = CT) -> str:
        r = await self.client.post(f"/bot/v1/{bot.id}/accessToken",
                                   json={"appId": bot.app_id, "appKey": bot.secret})
        assert r.status == 200, await r.text()
        return str((await r.json())["accessToken"])

    async def call(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                   bot: ChatbotConfig = CT, headers: dict[str, str] | None = None,
                   raw: bytes | None = None) -> tuple[int, Any]:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"accessToken {token}"
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        r = await self.client.request(method, f"/bot/v1/{bot.id}/{path}", data=data,
                                      headers=h)
        text = await r.read()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text

    async def send(self, body: dict[str, Any], bot: ChatbotConfig = CT) -> tuple[int, Any]:
        return await self.call("POST", "messages", body, token=await self.token(bot), bot=bot)

    async def upload(self, token: str, data: bytes = PNG, name: str = "a.png",
                     ctype: str = "image/png", mode: str = "perm",
                     thumb: bytes | None = None) -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("file", data, filename=name, content_type=ctype)
        if thumb is not None:
            form.add_field("thumbnail", thumb, filename="t.png", content_type="image/png")
        r = await self.client.post(f"/bot/v1/{CT.id}/medias/upload", data=form,
                                   headers={"Authorization": f"accessToken {token}",
                                            "uploadMode": mode})
        return r.status, await r.json()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    clock = Clock()
    fs = FileStore(tmp_path, "http://127.0.0.1:8080", PROFILE.maap.max_file_bytes, 86400.0,
                   clock)
    api = FakeApi(PROFILE.maap, TokenBook(7200, clock), fs)
    dialect = CtcuDialect(api, clock=clock, temp_ttl_s=3600)
    app = web.Application()
    dialect.add_routes(app)
    async with TestClient(TestServer(app)) as client:
        yield Env(api, dialect, client, clock)


def text_body(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messageId": "m-1",
        "messageList": [{"contentType": "text/plain", "contentEncoding": "utf8",
                         "contentText": "hello world"}],
        "destinationAddress": [f"tel:{USER}"],
        "senderAddress": CT.uri,
        "serviceCapability": [{"capabilityId": "ChatbotSA",
                               "version": '+g.gsma.rcs.botversion="#=1"'}],
        "conversationId": "conv-1", "contributionId": "contrib-1",
        "smsSupported": False, "storeSupported": True,
    }
    body.update(extra)
    return body


CHIPS = {"suggestions": [
    {"reply": {"displayText": "Yes", "postback": {"data": "yes"}}},
    {"action": {"urlAction": {"openUrl": {"url": "https://www.10010.com"}},
                "displayText": "Open", "postback": {"data": "open"}}},
]}


# -- accessToken ----------------------------------------------------------------------------


async def test_token_shape_and_replacement(env: Env) -> None:
    r = await env.client.post(f"/bot/v1/{CT.id}/accessToken",
                              json={"appId": CT.app_id, "appKey": CT.secret})
    body = await r.json()
    assert r.status == 200
    assert body["errorCode"] == 0 and body["errorMessage"] == "success"
    assert body["expires"] == PROFILE.maap.token_ttl_s
    assert body["url"].endswith("/bot/v1/" + quote(CT.uri, safe=""))
    first = body["accessToken"]
    second = await env.token()
    status, err = await env.call("POST", "messages", text_body(), token=first)
    assert (status, err["errorCode"]) == (401, 40001)
    status, ok = await env.call("POST", "messages", text_body(), token=second)
    assert (status, ok["errorCode"]) == (200, 0)


async def test_token_bad_credentials(env: Env) -> None:
    status, body = await env.call("POST", "accessToken", {"appId": CT.app_id, "appKey": "x"})
    assert (status, body["errorCode"]) == (401, 40001)
    status, body = await env.call("POST", "accessToken", {"appId": CT.app_id})
    assert (status, body["errorCode"]) == (400, 41004)
    status, body = await env.call("POST", "accessToken", {"appKey": CT.secret})
    assert (status, body["errorCode"]) == (400, 41002)
    # another chatbot's credentials on this chatbot's path
    status, body = await env.call("POST", "accessToken",
                                  {"appId": CU.app_id, "appKey": CU.secret})
    assert (status, body["errorCode"]) == (401, 40001)


async def test_token_daily_limit(env: Env) -> None:
    env.dialect.token_calls_per_day = 2
    await env.token()
    await env.token()
    status, body = await env.call("POST", "accessToken",
                                  {"appId": CT.app_id, "appKey": CT.secret})
    assert (status, body["errorCode"]) == (429, 45001)
    env.clock.now += 86400
    await env.token()


@pytest.mark.parametrize("segment", [
    CT.id, CT.uri, quote(CT.uri, safe=""), CT.uri.removeprefix("sip:"),
    CT.uri.upper().replace("SIP:", "sip:"),
])
async def test_chatbot_path_forms(env: Env, segment: str) -> None:
    token = await env.token()
    r = await env.client.post(f"/bot/v1/{segment}/messages", json=text_body(),
                              headers={"Authorization": token})  # bare token accepted too
    assert r.status == 200, await r.text()
    assert (await r.json())["errorCode"] == 0
    assert env.api.sent[-1].bot_id == CT.id


async def test_unknown_and_foreign_chatbots(env: Env) -> None:
    for seg in ("nosuchbot", GSMA.id, quote(GSMA.uri, safe="")):
        r = await env.client.post(f"/bot/v1/{seg}/accessToken", json={"appId": "a",
                                                                         "appKey": "b"})
        assert r.status == 404
        assert (await r.json())["errorCode"] == 20002
    # the shared messages path only matches CT/CU chatbots (GSMA routes handle the rest)
    r = await env.client.post(f"/bot/v1/{GSMA.id}/messages", json=text_body())
    assert r.status == 404


async def test_messages_paths_win_over_a_generic_template(tmp_path: Path) -> None:
    """A catch-all {botId} route added first (as the GSMA dialect does) does not take the
    CT/CU chatbots' sends away."""
    fs = FileStore(tmp_path, "http://127.0.0.1:8080", 1000, 60)
    api = FakeApi(PROFILE.maap, TokenBook(60), fs)
    app = web.Application()

    async def gsma(request: web.Request) -> web.Response:
        return web.json_response({"gsma": True}, status=418)

    app.router.add_post("/bot/v1/{botId}/messages", gsma)
    CtcuDialect(api).add_routes(app)
    token, _ = api.tokens.issue(CT.id)
    async with TestClient(TestServer(app)) as client:
        for seg in (CT.id, CT.uri, quote(CT.uri, safe="")):
            r = await client.post(f"/bot/v1/{seg}/messages", json=text_body(),
                                  headers={"Authorization": token})
            assert r.status == 200, seg
        r = await client.post(f"/bot/v1/{GSMA.id}/messages", json={})
        assert r.status == 418


# -- authorization ----------------------------------------------------------------------------


async def test_auth_errors(env: Env) -> None:
    status, body = await env.call("POST", "messages", text_body())
    assert (status, body["errorCode"]) == (401, 41001)
    status, body = await env.call("POST", "messages", text_body(), token="forged")
    assert (status, body["errorCode"]) == (401, 40001)
    cu_token = await env.token(CU)
    status, body = await env.call("POST", "messages", text_body(), token=cu_token)
    assert (status, body["errorCode"]) == (403, 48001)
    ct_token = await env.token()
    env.clock.now += 7201
    status, body = await env.call("POST", "revoke", {"messageId": "m", "status":
                                                     "RevokeRequested"}, token=ct_token)
    assert (status, body["errorCode"]) == (401, 42001)
    assert env.api.sent == []


# -- messages -------------------------------------------------------------------------------


async def test_text_send_builds_outbound(env: Env) -> None:
    status, body = await env.send(text_body(
        destinationAddress=[f"tel:{USER}", "+8613800000002", f"tel:{USER}"],
        trafficType="advertisement", smsSupported=True, smsContent="fallback",
        storeSupported=False, reportRequest=["sent", "delivered", "failed"],
        clientCorrelator="corr-9", inReplyTo="up-1", imFormat="PagerMode"))
    assert status == 200
    assert body == {"errorCode": 0, "errorMessage": "success", "messageId": "m-1",
                    "conversationId": "conv-1", "contributionId": "contrib-1",
                    "clientCorrelator": "corr-9"}
    out = env.api.sent[-1]
    assert out.recipients == (USER, "+8613800000002")
    assert content.media_type(out.payload.content_type) == "text/plain"
    assert out.payload.body == b"hello world"
    assert out.store is False
    assert out.fallback == model.SmsFallback(True, "fallback")
    assert out.dispositions == ("positive-delivery", "negative-delivery")
    assert (out.traffic_type, out.client_correlator, out.in_reply_to) == (
        "advertisement", "corr-9", "up-1")


async def test_ids_generated_when_absent(env: Env) -> None:
    body = text_body()
    for key in ("messageId", "conversationId", "contributionId", "senderAddress"):
        del body[key]
    status, resp = await env.send(body)
    assert status == 200 and resp["errorCode"] == 0
    out = env.api.sent[-1]
    assert resp["messageId"] == out.message_id and len(out.message_id) == 36
    assert resp["conversationId"] == out.conversation_id != ""
    assert out.dispositions == Outbound.__dataclass_fields__["dispositions"].default
    assert out.store is True


async def test_text_with_chips_is_multipart(env: Env) -> None:
    status, resp = await env.send(text_body(messageList=[
        {"contentType": "application/vnd.gsma.botsuggestion.v1.0+json", "contentText": CHIPS},
        {"contentType": "text/plain", "contentText": "pick one"},
    ]))
    assert (status, resp["errorCode"]) == (200, 0)
    payload = env.api.sent[-1].payload
    assert content.media_type(payload.content_type) == "multipart/mixed"
    parts = content.parse_multipart_mixed(payload)
    assert [content.media_type(p.content_type) for p in parts] == [
        "text/plain", model.BOTSUGGESTION]
    assert parts[0].body == b"pick one"
    assert msgspec.json.decode(parts[1].body) == CHIPS


async def test_card_needs_uploaded_media(env: Env) -> None:
    token = await env.token()
    _, up = await env.upload(token)
    url = up["fileInfo"][0]["url"]
    card = {"message": {"generalPurposeCard": {
        "layout": {"cardOrientation": "VERTICAL", "titleFontStyle": ["bold"]},
        "content": {"media": {"mediaUrl": url, "mediaContentType": "image/png",
                              "height": "MEDIUM_HEIGHT"},
                    "title": "Hi", "description": "A card",
                    "suggestions": CHIPS["suggestions"]}}}}
    item = {"contentType": model.BOTMESSAGE, "contentText": card}
    status, resp = await env.call("POST", "messages", text_body(messageList=[item]),
                                  token=token)
    assert (status, resp["errorCode"]) == (200, 0)
    assert env.api.sent[-1].payload.content_type == model.BOTMESSAGE
    assert msgspec.json.decode(env.api.sent[-1].payload.body) == card
    card["message"]["generalPurposeCard"]["content"]["media"]["mediaUrl"] = "http://x/y.png"
    status, resp = await env.call("POST", "messages", text_body(messageList=[item]),
                                  token=token)
    assert (status, resp["errorCode"]) == (200, 40007)
    assert "mediaUrl" in resp["errorMessage"]


async def test_file_message_becomes_ft_http(env: Env) -> None:
    token = await env.token()
    _, up = await env.upload(token, data=b"\0" * 5000, name="clip.mp4", ctype="video/mp4",
                             thumb=PNG)
    file_url, thumb_url = (i["url"] for i in up["fileInfo"])
    files = [{"type": "thumbnail", "url": thumb_url},
             {"type": "file", "url": file_url, "fileName": "clip.mp4"}]
    status, resp = await env.call("POST", "messages", text_body(messageList=[
        {"contentType": "application/vnd.gsma.rcs-ft-http", "contentText": files}]),
        token=token)
    assert (status, resp["errorCode"]) == (200, 0)
    payload = env.api.sent[-1].payload
    assert payload.content_type == model.FT_HTTP
    ft = content.parse_ft_http_xml(payload.body)
    assert (ft.file.url, ft.file.content_type, ft.file.size, ft.file.name) == (
        file_url, "video/mp4", 5000, "clip.mp4")
    assert ft.thumbnail is not None and ft.thumbnail.url == thumb_url


@pytest.mark.parametrize(("change", "code"), [
    ({"messageList": [{"contentType": "text/plain", "contentText": "x" * 2001}]}, 40021),
    ({"messageList": [{"contentType": "text/plain", "contentText": ""}]}, 40021),
    ({"messageList": [{"contentType": "text/plain", "contentText": {"a": 1}}]}, 20002),
    ({"messageList": [{"contentType": "image/gif", "contentText": "x"}]}, 40008),
    ({"messageList": [{"contentType": model.BOTSUGGESTION, "contentText": CHIPS}]}, 40008),
    ({"messageList": []}, 20002),
    ({"messageList": [
        {"contentType": "text/plain", "contentText": "a"},
        {"contentType": model.BOTSUGGESTION,
         "contentText": {"suggestions": CHIPS["suggestions"] * 6}}]}, 40016),
    ({"messageList": [
        {"contentType": "text/plain", "contentText": "a"},
        {"contentType": model.BOTSUGGESTION, "contentText": {"suggestions": [
            {"reply": {"displayText": "x" * 26, "postback": {"data": "d"}}}]}}]}, 40018),
    ({"messageList": [{"contentType": "text/plain", "contentEncoding": "base64",
                       "contentText": "!!notbase64"}]}, 20002),
    ({"messageList": [{"contentType": "application/vnd.gsma.rcs-ft-http",
                       "contentText": [{"type": "file", "url": "http://elsewhere/x"}]}]},
     40007),
    ({"senderAddress": CU.uri}, 30008),
    ({"smsSupported": True, "smsContent": " "}, 20002),
    ({"trafficType": "spam"}, 20002),
    ({"imFormat": "Fax"}, 20002),
    ({"reportRequest": ["read"]}, 20002),
    ({"destinationAddress": ["tel:12345"]}, 20002),
    ({"destinationAddress": []}, 20002),
    ({"messageId": "has space"}, 20002),
])
async def test_application_errors(env: Env, change: dict[str, Any], code: int) -> None:
    status, resp = await env.send(text_body(**change))
    assert (status, resp["errorCode"]) == (200, code), resp
    assert resp["errorMessage"]
    assert env.api.sent == []


async def test_base64_text(env: Env) -> None:
    import base64

    status, resp = await env.send(text_body(messageList=[{
        "contentType": "text/plain", "contentEncoding": "base64",
        "contentText": base64.b64encode("你好".encode()).decode()}]))
    assert (status, resp["errorCode"]) == (200, 0)
    assert env.api.sent[-1].payload.body == "你好".encode()


async def test_bad_bodies(env: Env) -> None:
    token = await env.token()
    status, resp = await env.call("POST", "messages", raw=b"{not json", token=token)
    assert (status, resp["errorCode"]) == (400, 47001)
    status, resp = await env.call("POST", "messages", text_body(destinationAddress="tel:+86"),
                                  token=token)
    assert (status, resp["errorCode"]) == (400, 20002)
    assert "$.destinationAddress" in resp["errorMessage"]
    status, resp = await env.call("POST", "messages", raw=b"", token=token)
    assert (status, resp["errorCode"]) == (400, 44002)
    big = text_body(messageList=[{"contentType": "text/plain",
                                  "contentText": "x" * PROFILE.maap.max_body_bytes}])
    status, resp = await env.call("POST", "messages", big, token=token)
    assert (status, resp["errorCode"]) == (413, 20002)
    many = text_body(destinationAddress=[f"tel:+86138{i:08d}" for i in range(
        PROFILE.maap.max_destinations + 1)])
    status, resp = await env.call("POST", "messages", many, token=token)
    assert (status, resp["errorCode"]) == (413, 20002)
    assert env.api.sent == []


async def test_rate_limit_is_per_chatbot(env: Env) -> None:
    env.api.denied.add(CT.id)
    status, resp = await env.send(text_body())
    assert (status, resp["errorCode"]) == (429, 30003)
    status, resp = await env.send(text_body(senderAddress=CU.uri), bot=CU)
    assert (status, resp["errorCode"]) == (200, 0)


# -- revoke ---------------------------------------------------------------------------------


async def test_revoke(env: Env) -> None:
    token = await env.token()
    await env.call("POST", "messages", text_body(), token=token)
    req = {"messageId": "m-1", "status": "RevokeRequested",
           "destinationAddress": [f"tel:{USER}"]}
    status, resp = await env.call("POST", "revoke", req, token=token)
    assert status == 200
    assert resp == {"messageId": "m-1", "errorCode": 0, "errorMessage": "success",
                    "conversationId": None, "contributionId": None}
    assert env.api.revoked == [(CT.id, "m-1", (USER,))]
    status, resp = await env.call("POST", "revoke", {**req, "messageId": "nope"}, token=token)
    assert (status, resp["errorCode"]) == (200, 20002)
    status, resp = await env.call("POST", "revoke", {**req, "status": "Cancel"}, token=token)
    assert (status, resp["errorCode"]) == (200, 20002)
    status, resp = await env.call("POST", "revoke", {"status": "RevokeRequested"},
                                  token=token)
    assert (status, resp["errorCode"]) == (400, 20002)
    assert len(env.api.revoked) == 1


# -- media ----------------------------------------------------------------------------------


async def test_upload_download_delete(env: Env) -> None:
    token = await env.token()
    status, up = await env.upload(token, mode="temp", thumb=PNG[:100])
    assert (status, up["errorCode"], up["fileCount"]) == (200, 0, 2)
    info = up["fileInfo"][0]
    assert (info["fileName"], info["contentType"], info["fileSize"]) == ("a.png", "image/png",
                                                                          len(PNG))
    assert info["until"].endswith("Z") and info["fileHashAlgorithm"] == "sha256"
    url = info["url"]
    r = await env.client.get(f"/bot/v1/{CT.id}/medias/download",
                             headers={"Authorization": f"accessToken {token}", "url": url})
    assert r.status == 200 and await r.read() == PNG
    assert r.headers["Content-Type"] == "image/png"
    r = await env.client.get(f"/bot/v1/{CT.id}/medias/download",
                             headers={"Authorization": f"accessToken {token}", "url": url,
                                      "Range": "bytes=0-3"})
    assert r.status == 206 and await r.read() == PNG[:4]
    assert r.headers["Content-Range"] == f"bytes 0-3/{len(PNG)}"
    # another chatbot cannot fetch or delete it
    cu = await env.token(CU)
    status, resp = await env.call("DELETE", "medias/delete", token=cu, bot=CU,
                                  headers={"url": url})
    assert (status, resp["errorCode"]) == (200, 40007)
    status, resp = await env.call("DELETE", "medias/delete", token=token, headers={"url": url})
    assert (status, resp["errorCode"], resp["deleteMode"]) == (200, 0, "temp")
    status, resp = await env.call("GET", "medias/download", token=token, headers={"url": url})
    assert (status, resp["errorCode"]) == (404, 40007)
    status, resp = await env.call("GET", "medias/download", token=token)
    assert (status, resp["errorCode"]) == (400, 41006)


async def test_temp_file_expires(env: Env) -> None:
    token = await env.token()
    _, up = await env.upload(token, mode="temp")
    url = up["fileInfo"][0]["url"]
    env.clock.now += 3601
    token = await env.token()
    status, resp = await env.call("GET", "medias/download", token=token, headers={"url": url})
    assert (status, resp["errorCode"]) == (410, 40022)
    status, resp = await env.send(text_body(messageList=[
        {"contentType": "application/vnd.gsma.rcs-ft-http",
         "contentText": [{"type": "file", "url": url}]}]))
    assert (status, resp["errorCode"]) == (200, 40022)


@pytest.mark.parametrize(("name", "ctype", "size", "status", "code"), [
    ("a.gif", "image/gif", 10, 200, 40005),
    ("a.exe", "application/octet-stream", 10, 200, 40005),
    ("a.png", "image/png", 2 * 1024 * 1024 + 1, 413, 40006),
    ("a.png", "image/png", 0, 200, 44001),
    ("a.mp3", "application/octet-stream", 10, 200, 0),  # type from the extension
])
async def test_upload_limits(env: Env, name: str, ctype: str, size: int, status: int,
                             code: int) -> None:
    token = await env.token()
    got, resp = await env.upload(token, data=b"\1" * size, name=name, ctype=ctype)
    assert (got, resp["errorCode"]) == (status, code)


async def test_upload_bad_requests(env: Env) -> None:
    token = await env.token()
    status, resp = await env.call("POST", "medias/upload", {"x": 1}, token=token)
    assert (status, resp["errorCode"]) == (400, 20002)
    form = aiohttp.FormData()
    form.add_field("other", b"zz", filename="z.png", content_type="image/png")
    r = await env.client.post(f"/bot/v1/{CT.id}/medias/upload", data=form,
                              headers={"Authorization": token})
    assert (r.status, (await r.json())["errorCode"]) == (400, 41005)
    status, resp = await env.upload(token, thumb=b"\0" * (200 * 1024 + 1))
    assert (status, resp["errorCode"]) == (413, 40006)
    status, resp = await env.call(
        "POST", "medias/upload", raw=b"--b\r\ngarbage", token=token,
        headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert status == 400 and resp["errorCode"] == 20002


# -- OpenAPI ----------------------------------------------------------------------------------


def test_openapi_lists_every_route(tmp_path: Path) -> None:
    fs = FileStore(tmp_path, "http://127.0.0.1:8080", 1000, 60)
    dialect = CtcuDialect(FakeApi(PROFILE.maap, TokenBook(60), fs))
    doc = dialect.openapi()
    assert set(doc["paths"]) == {*dialect.paths().values(), *dialect.fixed_message_paths()}
    assert len(dialect.fixed_message_paths()) == 4
    app = web.Application()
    dialect.add_routes(app)
    canon = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert canon == set(doc["paths"])


def test_failure_code_mapping_covers_model() -> None:
    from fivegmc.maap.ctcu_wire import FAILURE_CODES, STATUS_TOKENS

    assert set(FAILURE_CODES) == set(FailureCode)
    assert set(STATUS_TOKENS) == set(Status) - {Status.ACCEPTED}
