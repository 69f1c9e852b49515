"""The GSMA dialect over HTTP (aiohttp test server with only its routes) against a small
recording implementation of the MaapApi contract; real TokenBook, RateLimiter and FileStore."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fivegmc.config import ChatbotConfig, MaapConfig
from fivegmc.maap.api import Files, Tokens
from fivegmc.maap.content import parse_ft_http_xml, parse_multipart_mixed, parse_push_location
from fivegmc.maap.files import FileStore
from fivegmc.maap.gsma import GsmaDialect, GsmaError, MessageContact, inbound_rcs, parse_send
from fivegmc.maap.model import (
    BOTMESSAGE,
    BOTSUGGESTION,
    FT_HTTP,
    IS_COMPOSING,
    PUSH_LOCATION,
    SUGGESTION_RESPONSE,
    Capabilities,
    FailureCode,
    FileStatusEvent,
    InboundEvent,
    MessageRecord,
    NewUserEvent,
    Outbound,
    Payload,
    RecipientState,
    SendResult,
    Status,
    StatusEvent,
    TypingEvent,
)
from fivegmc.maap.openapi import build_openapi, out_of_sync
from fivegmc.maap.ratelimit import RateLimiter
from fivegmc.maap.tokens import TokenBook

BOTS = (
    ChatbotConfig(id="labbot", uri="sip:labbot@botplatform.example", dialect="gsma",
                  app_id="labbot-client", secret="s3cret", webhook="http://csp.example/hook",
                  webhook_secret="whsec", rate_limit_per_s=3),
    ChatbotConfig(id="other", uri="sip:other@botplatform.example", dialect="gsma",
                  app_id="other-client", secret="other-secret", webhook="http://csp/o"),
    ChatbotConfig(id="ctbot", uri="sip:ct@botplatform.rcs.vnet.cn", dialect="ctcu",
                  app_id="ct", secret="ct"),
)
USER = "+8613800000001"
OFFLINE = "+8613800000002"
SMS_ONLY = "+8613900000001"


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeApi:
    """The MaapApi contract, recording what the dialect asks for."""

    config: MaapConfig
    tokens: Tokens
    files: Files
    clock: Clock
    sent: list[Outbound] = field(default_factory=list)
    records: dict[tuple[str, str], MessageRecord] = field(default_factory=dict)
    revoked: list[tuple[str, str]] = field(default_factory=list)
    delivered: set[str] = field(default_factory=set)
    displayed_calls: list[tuple[str, str, str]] = field(default_factory=list)
    inbound: set[tuple[str, str, str]] = field(default_factory=set)
    limiter: RateLimiter = field(default_factory=RateLimiter)

    def bot(self, bot_id: str) -> ChatbotConfig | None:
        return next((b for b in self.config.chatbots if b.id == bot_id), None)

    def bot_by_uri(self, uri: str) -> ChatbotConfig | None:
        return next((b for b in self.config.chatbots if b.uri == uri), None)

    def bots(self) -> tuple[ChatbotConfig, ...]:
        return self.config.chatbots

    def allow(self, bot_id: str) -> bool:
        bot = self.bot(bot_id)
        assert bot is not None
        return self.limiter.allow(bot_id, bot.rate_limit_per_s, self.clock())

    async def send(self, out: Outbound) -> SendResult:
        key = (out.bot_id, out.message_id)
        if key in self.records:
            rec = self.records[key]
            return SendResult(out.message_id, tuple((r.number, r.status, r.failure)
                                                    for r in rec.recipients), duplicate=True)
        self.sent.append(out)
        if not out.is_typing:
            self.records[key] = MessageRecord(out.bot_id, out.message_id, self.clock(), tuple(
                RecipientState(n, Status.ACCEPTED, None, self.clock())
                for n in out.recipients))
        return SendResult(out.message_id, tuple((n, Status.ACCEPTED, None)
                                                for n in out.recipients))

    async def revoke(self, bot_id: str, message_id: str,
                     recipients: tuple[str, ...] = ()) -> dict[str, Status]:
        self.revoked.append((bot_id, message_id))
        rec = self.records[(bot_id, message_id)]
        return {r.number: Status.REVOKE_FAILED if message_id in self.delivered
                else Status.REVOKED for r in rec.recipients}

    def record(self, bot_id: str, message_id: str) -> MessageRecord | None:
        return self.records.get((bot_id, message_id))

    async def displayed(self, bot_id: str, user: str, message_id: str) -> bool:
        self.displayed_calls.append((bot_id, user, message_id))
        return (bot_id, user, message_id) in self.inbound

    async def capabilities(self, bot_id: str, number: str) -> Capabilities:
        if number == OFFLINE:
            return Capabilities(number, known=True, rcs=True, registered=False)
        if number.startswith("+86138"):
            return Capabilities(number, True, True, True,
                                ('+g.3gpp.iari-ref="urn%3Aurn-7%3A3gpp-application.ims.iari.'
                                 'rcs.fthttp"', "+g.gsma.rcs.botversion"), chatbot=True)
        if number.startswith("+86139"):
            return Capabilities(number, known=True, rcs=False, registered=True)
        return Capabilities(number, known=False, rcs=False, registered=False)


@dataclass
class Env:
    client: TestClient[web.Request, web.Application]
    api: FakeApi
    dialect: GsmaDialect
    clock: Clock

    async def token(self, client_id: str = "labbot-client", secret: str = "s3cret") -> str:
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        r = await self.client.post("/rcs/oauth2/v1/token",
                                   data="grant_type=client_credentials&scope=botmessage",
                                   headers={"Authorization": f"Basic {basic}",
                                            "Content-Type":
                                            "application/x-www-form-urlencoded"})
        assert r.status == 200, await r.text()
        return str((await r.json())["access_token"])

    async def send(self, rcs: dict[str, Any], token: str, user: str = USER,
                   bot: str = "labbot") -> aiohttp.ClientResponse:
        return await self.client.post(
            f"/rcs/bot/v1/{bot}/messages", headers={"Authorization": f"Bearer {token}"},
            json={"RCSMessage": rcs, "messageContact": {"userContact": user}})


def make_app(tmp: Path, clock: Clock) -> tuple[web.Application, FakeApi, GsmaDialect]:
    config = MaapConfig(server_root="/rcs", chatbots=BOTS, max_body_bytes=20000,
                        max_file_bytes=50000)
    files = FileStore(tmp, "http://maap.example", 50000, 3600, clock, root="/rcs")
    api = FakeApi(config, TokenBook(600, clock), files, clock)
    dialect = GsmaDialect(api, clock)
    app = web.Application(client_max_size=200000)
    dialect.add_routes(app)
    return app, api, dialect


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    clock = Clock()
    app, api, dialect = make_app(tmp_path, clock)
    async with TestClient(TestServer(app)) as client:
        yield Env(client, api, dialect, clock)


def reason(body: Any) -> str:
    assert set(body) == {"reason"}, body
    return str(body["reason"]["text"])


# -- OAuth2 ----------------------------------------------------------------------------------


async def test_token_basic_and_form_credentials(env: Env) -> None:
    token = await env.token()
    assert env.api.tokens.check(token).bot_id == "labbot"
    r = await env.client.post("/rcs/oauth2/v1/token", data={
        "grant_type": "client_credentials", "client_id": "other-client",
        "client_secret": "other-secret"})
    body = await r.json()
    assert r.status == 200
    assert body["token_type"] == "Bearer" and body["scope"] == "botmessage"
    assert body["expires_in"] == 600
    assert r.headers["Cache-Control"] == "no-store"
    # refresh (RFC 6749 §6), rotated
    r2 = await env.client.post("/rcs/oauth2/v1/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"],
        "client_id": "other-client", "client_secret": "other-secret"})
    assert r2.status == 200
    r3 = await env.client.post("/rcs/oauth2/v1/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"],
        "client_id": "other-client", "client_secret": "other-secret"})
    assert r3.status == 400 and (await r3.json())["error"] == "invalid_grant"


@pytest.mark.parametrize(("headers", "data", "status", "error"), [
    ({}, "grant_type=client_credentials", 401, "invalid_client"),
    ({"Authorization": "Basic !!!"}, "grant_type=client_credentials", 401, "invalid_client"),
    ({"Authorization": "Basic " + base64.b64encode(b"labbot-client:wrong").decode()},
     "grant_type=client_credentials", 401, "invalid_client"),
    ({"Authorization": "Basic " + base64.b64encode(b"ct:ct").decode()},
     "grant_type=client_credentials", 401, "invalid_client"),
    ({"Authorization": "Basic " + base64.b64encode(b"labbot-client:s3cret").decode()},
     "grant_type=password", 400, "unsupported_grant_type"),
    ({"Authorization": "Basic " + base64.b64encode(b"labbot-client:s3cret").decode()},
     "scope=botmessage", 400, "invalid_request"),
    ({"Authorization": "Basic " + base64.b64encode(b"labbot-client:s3cret").decode()},
     "grant_type=client_credentials&scope=admin", 400, "invalid_scope"),
])
async def test_token_errors(env: Env, headers: dict[str, str], data: str, status: int,
                            error: str) -> None:
    r = await env.client.post("/rcs/oauth2/v1/token", data=data, headers={
        "Content-Type": "application/x-www-form-urlencoded", **headers})
    assert r.status == status
    body = await r.json()
    assert body["error"] == error and body["error_description"]
    if status == 401 and headers:
        assert r.headers["WWW-Authenticate"].startswith("Basic")


# -- security --------------------------------------------------------------------------------


async def test_bearer_checks(env: Env) -> None:
    mine = await env.token()
    theirs = await env.token("other-client", "other-secret")
    r = await env.send({"textMessage": "hi"}, theirs)
    assert r.status == 403 and "labbot" in reason(await r.json())
    r = await env.client.post("/rcs/bot/v1/labbot/messages", json={})
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    r = await env.send({"textMessage": "hi"}, "not-a-token")
    assert r.status == 401 and "invalid" in reason(await r.json())
    r = await env.send({"textMessage": "hi"}, mine, bot="nobot")
    assert r.status == 404
    r = await env.send({"textMessage": "hi"}, mine, bot="ctbot")  # another dialect's bot
    assert r.status == 404
    env.clock.now += 601
    r = await env.send({"textMessage": "hi"}, mine)
    assert r.status == 401 and "expired" in reason(await r.json())
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert env.api.sent == []


async def test_rate_limit_per_bot(env: Env) -> None:
    mine = await env.token()
    theirs = await env.token("other-client", "other-secret")
    codes = [(await env.send({"textMessage": f"m{i}"}, mine)).status for i in range(5)]
    assert codes == [202, 202, 202, 429, 429]
    r = await env.send({"textMessage": "x"}, mine)
    assert r.status == 429 and r.headers["Retry-After"] == "1"
    assert "rate limit" in reason(await r.json())
    r = await env.send({"textMessage": "fine"}, theirs, bot="other")
    assert r.status == 202
    env.clock.now += 1
    assert (await env.send({"textMessage": "later"}, mine)).status == 202


async def test_body_too_large(env: Env) -> None:
    mine = await env.token()
    r = await env.send({"textMessage": "x" * 30000}, mine)
    assert r.status == 413 and "larger than 20000" in reason(await r.json())


@pytest.mark.parametrize(("body", "fragment"), [
    (b"{", "malformed JSON"),
    (b"", "empty body"),
    (b"[]", "$: expected object, got array"),
    (b'{"RCSMessage": {"textMessage": 5}, "messageContact": {"userContact": "+8613800000001"}}',
     "RCSMessage.textMessage: expected str | null, got int"),
    (b'{"RCSMessage": {"textMessage": "a"}}', "messageContact: required"),
    (b'{"RCSMessage": {"fileMessage": {}}, "messageContact": {}}',
     "RCSMessage.fileMessage.fileUrl: required"),
    (b'{"RCSMessage": {}, "messageContact": {"userContact": "+8613800000001"}}',
     "RCSMessage: exactly one of"),
    (b'{"RCSMessage": {"textMessage": "a", "isTyping": "active"}, "messageContact": {}}',
     "RCSMessage: exactly one of"),
    (b'{"RCSMessage": {"textMessage": "a"}, "messageContact": {}}',
     "messageContact: userContact or chatId required"),
    (b'{"RCSMessage": {"textMessage": "a"}, "messageContact": {"userContact": "bob"}}',
     "messageContact.userContact: not an E.164 number"),
    (b'{"RCSMessage": {"textMessage": "a", "msgId": "a b"}, "messageContact": {}}',
     "RCSMessage.msgId"),
    (b'{"RCSMessage": {"isTyping": "maybe"}, "messageContact": {}}',
     "RCSMessage.isTyping: Invalid enum value"),
    (b'{"RCSMessage": {"textMessage": ""}, "messageContact": {}}',
     "RCSMessage.textMessage: empty"),
    (json.dumps({"RCSMessage": {"textMessage": "x" * 3073}, "messageContact": {}}).encode(),
     "RCSMessage.textMessage: longer than 3072"),
    (b'{"RCSMessage": {"richcardMessage": {"message": {"generalPurposeCardCarousel": '
     b'{"layout": {"cardWidth": "MEDIUM_WIDTH"}, "content": [{"title": "a"}]}}}}, '
     b'"messageContact": {"userContact": "+8613800000001"}}',
     "RCSMessage.richcardMessage.message.generalPurposeCardCarousel.content: fewer than 2"),
    (b'{"RCSMessage": {"textMessage": "a", "suggestedChipList": {"suggestions": '
     b'[{"reply": {"displayText": "12345678901234567890123456", "postback": {"data": ""}}}]}},'
     b' "messageContact": {"userContact": "+8613800000001"}}',
     "RCSMessage.suggestedChipList.suggestions[0].reply.displayText: longer than 25"),
    (b'{"RCSMessage": {"geolocationPushMessage": {"pos": "north"}}, '
     b'"messageContact": {"userContact": "+8613800000001"}}',
     "RCSMessage.geolocationPushMessage.pos"),
    (b'{"RCSMessage": {"fileMessage": {"fileUrl": "ftp://x/y"}}, '
     b'"messageContact": {"userContact": "+8613800000001"}}',
     "RCSMessage.fileMessage.fileUrl: not an http(s) URL"),
    (b'{"RCSMessage": {"fileMessage": {"fileUrl": "http://x/y"}}, '
     b'"messageContact": {"userContact": "+8613800000001"}}',
     "needs MIMEType and FileSize"),
    (b'{"RCSMessage": {"fileMessage": {"fileUrl": "http://x/y", "fileMIMEType": "a/b", '
     b'"fileSize": 1, "fileName": "bad\\u0001name"}}, '
     b'"messageContact": {"userContact": "+8613800000001"}}',
     "file name has characters XML cannot carry"),
    (b'{"RCSMessage": {"geolocationPushMessage": {"pos": [1e999, 0]}}, '
     b'"messageContact": {"userContact": "+8613800000001"}}',
     "RCSMessage.geolocationPushMessage.pos"),
])
async def test_bad_send_bodies_are_400_with_path(env: Env, body: bytes, fragment: str) -> None:
    mine = await env.token()
    r = await env.client.post("/rcs/bot/v1/labbot/messages", data=body, headers={
        "Authorization": f"Bearer {mine}", "Content-Type": "application/json"})
    assert r.status == 400
    assert fragment in reason(await r.json())
    assert env.api.sent == []


# -- sends -----------------------------------------------------------------------------------


async def test_text_send_and_idempotent_msg_id(env: Env) -> None:
    mine = await env.token()
    r = await env.send({"msgId": "m-1", "textMessage": "Hello 你好",
                        "trafficType": "advertisement"}, mine, user="tel:+8613800000001")
    assert r.status == 202
    body = await r.json()
    assert body == {"RCSMessage": {"msgId": "m-1", "status": "pending"},
                    "messageContact": {"userContact": USER}}
    out = env.api.sent[0]
    assert out.recipients == (USER,) and out.message_id == "m-1"
    assert out.payload == Payload("text/plain;charset=UTF-8", "Hello 你好".encode())
    assert out.traffic_type == "advertisement"
    again = await env.send({"msgId": "m-1", "textMessage": "different"}, mine)
    assert again.status == 202 and await again.json() == body
    assert len(env.api.sent) == 1
    r = await env.send({"textMessage": "no id"}, mine)
    generated = (await r.json())["RCSMessage"]["msgId"]
    assert len(generated) == 32 and env.api.sent[-1].message_id == generated


async def test_traffic_type_not_allowed(env: Env) -> None:
    mine = await env.token()
    r = await env.send({"textMessage": "x", "trafficType": "gambling"}, mine)
    assert r.status == 403 and "trafficType" in reason(await r.json())


async def test_not_5g_user_is_404_offline_accepted(env: Env) -> None:
    mine = await env.token()
    r = await env.send({"textMessage": "x"}, mine, user=SMS_ONLY)
    assert r.status == 404 and "not a 5G-message user" in reason(await r.json())
    r = await env.send({"textMessage": "x"}, mine, user="+4930123456")
    assert r.status == 404
    r = await env.send({"textMessage": "x"}, mine, user=OFFLINE)
    assert r.status == 202
    assert [o.recipients for o in env.api.sent] == [(OFFLINE,)]


async def test_card_with_suggestions_is_multipart(env: Env) -> None:
    mine = await env.token()
    card = {"message": {"generalPurposeCard": {
        "layout": {"cardOrientation": "VERTICAL"},
        "content": {"title": "Deal", "description": "50% off",
                    "suggestions": [{"reply": {"displayText": "Buy",
                                               "postback": {"data": "buy"}}}]}}}}
    chips = {"suggestions": [
        {"reply": {"displayText": "Yes", "postback": {"data": "y"}}},
        {"action": {"urlAction": {"openUrl": {"url": "https://example.com"}},
                    "displayText": "Open", "postback": {"data": "open"}}}]}
    r = await env.send({"richcardMessage": card, "suggestedChipList": chips}, mine)
    assert r.status == 202, await r.text()
    payload = env.api.sent[0].payload
    assert payload.content_type.startswith("multipart/mixed; boundary=")
    parts = parse_multipart_mixed(payload)
    assert [p.content_type for p in parts] == [BOTMESSAGE, BOTSUGGESTION]
    assert json.loads(parts[0].body) == card
    assert json.loads(parts[1].body) == chips


async def test_file_audio_geo_typing_payloads(env: Env) -> None:
    mine = await env.token()
    env.api.limiter.allow = lambda *a: True  # type: ignore[method-assign]
    rec = await env.api.files.put("labbot", "cat.jpg", "image/jpeg", b"\xff" * 100)
    r = await env.send({"fileMessage": {"fileUrl": rec.url}}, mine)
    assert r.status == 202
    ft = parse_ft_http_xml(env.api.sent[-1].payload.body)
    assert env.api.sent[-1].payload.content_type == FT_HTTP
    assert (ft.file.url, ft.file.size, ft.file.content_type, ft.file.name) == (
        rec.url, 100, "image/jpeg", "cat.jpg")
    assert ft.file.until == rec.until
    r = await env.send({"fileMessage": {
        "fileUrl": "https://cdn.example/v.mp4", "fileMIMEType": "video/mp4", "fileSize": 9,
        "thumbnailUrl": "https://cdn.example/t.png", "thumbnailMIMEType": "image/png",
        "thumbnailFileSize": 3}}, mine)
    assert r.status == 202
    ft = parse_ft_http_xml(env.api.sent[-1].payload.body)
    assert ft.thumbnail is not None and ft.thumbnail.url == "https://cdn.example/t.png"
    r = await env.send({"audioMessage": {"fileUrl": rec.url, "playingLength": 7}}, mine)
    assert parse_ft_http_xml(env.api.sent[-1].payload.body).file.playing_length == 7
    r = await env.send({"geolocationPushMessage": {
        "pos": "39.9 116.4", "label": "Here", "radius": 5,
        "timestamp": "2026-01-01T00:00:00Z"}}, mine)
    assert r.status == 202
    p = env.api.sent[-1].payload
    assert p.content_type == PUSH_LOCATION
    assert parse_push_location(p.body).label == "Here"
    r = await env.send({"isTyping": "active", "msgId": "ignored"}, mine)
    assert r.status == 202
    out = env.api.sent[-1]
    assert out.is_typing and out.payload.content_type == IS_COMPOSING
    assert out.message_id != "ignored" and out.dispositions == ()
    env.clock.now = rec.until + 1
    r = await env.send({"fileMessage": {"fileUrl": rec.url}}, await env.token())
    assert r.status == 410


# -- status, capabilities --------------------------------------------------------------------


async def test_status_get_and_revoke(env: Env) -> None:
    mine = await env.token()
    theirs = await env.token("other-client", "other-secret")
    await env.send({"msgId": "m-2", "textMessage": "x"}, mine)
    await env.send({"msgId": "m-3", "textMessage": "y"}, mine)
    auth = {"Authorization": f"Bearer {mine}"}
    r = await env.client.get("/rcs/bot/v1/labbot/messages/m-2/status", headers=auth)
    body = await r.json()
    assert r.status == 200 and body["RCSMessage"]["status"] == "pending"
    assert body["messageContact"] == {"userContact": USER}
    r = await env.client.get("/rcs/bot/v1/labbot/messages/nope/status", headers=auth)
    assert r.status == 404
    r = await env.client.get("/rcs/bot/v1/other/messages/m-2/status",
                             headers={"Authorization": f"Bearer {theirs}"})
    assert r.status == 404  # another bot's message id is unknown to it
    r = await env.client.put("/rcs/bot/v1/labbot/messages/m-2/status", headers=auth,
                             json={"RCSMessage": {"status": "cancelled"}})
    assert r.status == 200
    assert await r.json() == {"RCSMessage": {"msgId": "m-2", "status": "cancelled"}}
    env.api.delivered.add("m-3")
    r = await env.client.put("/rcs/bot/v1/labbot/messages/m-3/status", headers=auth,
                             json={"RCSMessage": {"status": "cancelled"}})
    assert r.status == 409 and "already reached" in reason(await r.json())
    r = await env.client.put("/rcs/bot/v1/labbot/messages/m-3/status", headers=auth,
                             json={"RCSMessage": {"status": "sent"}})
    assert r.status == 400 and "RCSMessage.status" in reason(await r.json())
    r = await env.client.put("/rcs/bot/v1/labbot/messages/m-3/status", headers=auth,
                             data=b"<xml/>")
    assert r.status == 400


async def test_put_displayed(env: Env) -> None:
    mine = await env.token()
    auth = {"Authorization": f"Bearer {mine}"}
    env.api.inbound.add(("labbot", USER, "p2a-1"))
    r = await env.client.put("/rcs/bot/v1/labbot/messages/p2a-1/status", headers=auth,
                             json={"RCSMessage": {"status": "displayed"},
                                   "messageContact": {"userContact": USER}})
    assert r.status == 200
    # without messageContact: the user is remembered from the rendered inbound event
    bot = env.api.bot("labbot")
    assert bot is not None
    env.dialect.render(bot, InboundEvent("labbot", USER, "p2a-1",
                                         Payload("text/plain", b"hi")))
    r = await env.client.put("/rcs/bot/v1/labbot/messages/p2a-1/status", headers=auth,
                             json={"RCSMessage": {"status": "displayed"}})
    assert r.status == 200
    r = await env.client.put("/rcs/bot/v1/labbot/messages/zzz/status", headers=auth,
                             json={"RCSMessage": {"status": "displayed"}})
    assert r.status == 404
    assert env.api.displayed_calls == [("labbot", USER, "p2a-1")] * 2


async def test_contact_capabilities(env: Env) -> None:
    mine = await env.token()
    auth = {"Authorization": f"Bearer {mine}"}
    r = await env.client.get("/rcs/bot/v1/labbot/contactCapabilities",
                             params={"userContact": USER}, headers=auth)
    body = await r.json()
    assert r.status == 200
    assert body["online"] is True and body["chatbotCommunication"] is True
    assert "RICHCARD_CAROUSEL" in body["features"] and "FILE_TRANSFER" in body["features"]
    r = await env.client.get("/rcs/bot/v1/labbot/contactCapabilities",
                             params={"userContact": OFFLINE}, headers=auth)
    assert r.status == 200 and (await r.json())["online"] is False
    for who, status in ((SMS_ONLY, 404), ("+999", 400), ("+4930123456", 404)):
        r = await env.client.get("/rcs/bot/v1/labbot/contactCapabilities",
                                 params={"userContact": who}, headers=auth)
        assert r.status == status
    r = await env.client.get("/rcs/bot/v1/labbot/contactCapabilities", headers=auth)
    assert r.status == 400
    r = await env.client.get("/rcs/bot/v1/labbot/contactCapabilities",
                             params={"chatId": "unknown"}, headers=auth)
    assert r.status == 404


# -- files -----------------------------------------------------------------------------------


async def test_files_upload_info_delete(env: Env) -> None:
    mine = await env.token()
    theirs = await env.token("other-client", "other-secret")
    auth = {"Authorization": f"Bearer {mine}"}
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("fileType", "image/png")
    form.add_field("until", "2028-01-15T08:00:00Z")
    form.add_field("fileContent", b"\x89PNG" + b"0" * 500, filename="pic.png",
                   content_type="application/octet-stream")
    form.add_field("thumbnail", b"tiny", filename="t.jpg", content_type="image/jpeg")
    r = await env.client.post("/rcs/bot/v1/labbot/files", data=form, headers=auth)
    assert r.status == 201, await r.text()
    info = await r.json()
    assert info["fileMIMEType"] == "image/png" and info["fileSize"] == 504
    assert info["fileName"] == "pic.png" and info["until"] == "2028-01-15T08:00:00Z"
    assert info["thumbnailMIMEType"] == "image/jpeg" and info["thumbnailFileSize"] == 4
    assert r.headers["Location"] == info["fileUrl"]
    fid = info["fileId"]
    r = await env.client.get(f"/rcs/bot/v1/labbot/files/{fid}", headers=auth)
    assert r.status == 200 and (await r.json())["fileUrl"] == info["fileUrl"]
    r = await env.client.get(f"/rcs/bot/v1/other/files/{fid}",
                             headers={"Authorization": f"Bearer {theirs}"})
    assert r.status == 404
    r = await env.client.delete(f"/rcs/bot/v1/labbot/files/{fid}", headers=auth)
    assert r.status == 204
    r = await env.client.get(f"/rcs/bot/v1/labbot/files/{fid}", headers=auth)
    assert r.status == 404


async def test_file_expired_and_upload_errors(env: Env) -> None:
    mine = await env.token()
    auth = {"Authorization": f"Bearer {mine}"}
    rec = await env.api.files.put("labbot", "a", "text/plain", b"a", ttl_s=10)
    env.clock.now += 11
    r = await env.client.get(f"/rcs/bot/v1/labbot/files/{rec.file_id}", headers=auth)
    assert r.status == 410
    r = await env.client.post("/rcs/bot/v1/labbot/files", json={"x": 1}, headers=auth)
    assert r.status == 400 and "multipart" in reason(await r.json())
    big = aiohttp.FormData()
    big.add_field("fileContent", b"0" * 60000, filename="big.bin")
    r = await env.client.post("/rcs/bot/v1/labbot/files", data=big, headers=auth)
    assert r.status == 413
    for fields, fragment in (({"fileUrl": "http://x/y"}, "fileUrl"),
                             ({"until": "soon"}, "until"),
                             ({"until": "2000-01-01T00:00:00Z"}, "until"),
                             ({}, "fileContent: required")):
        form = aiohttp.FormData(default_to_multipart=True)
        for k, v in fields.items():
            form.add_field(k, v)
        if fragment != "fileContent: required":
            form.add_field("fileContent", b"abc", filename="a.txt")
        else:
            form.add_field("other", "x")
        r = await env.client.post("/rcs/bot/v1/labbot/files", data=form, headers=auth)
        assert r.status == 400 and fragment in reason(await r.json()), fields
    r = await env.client.post("/rcs/bot/v1/labbot/files", data=b"--x\r\ngarbage", headers={
        **auth, "Content-Type": "multipart/form-data; boundary=x"})
    assert r.status == 400


# -- webhooks ----------------------------------------------------------------------------------


def test_render_events(tmp_path: Path) -> None:
    clock = Clock()
    _, api, dialect = make_app(tmp_path, clock)
    bot = api.bot("labbot")
    assert bot is not None
    n = dialect.render(bot, StatusEvent("labbot", "m-1", USER, Status.DELIVERED, at=clock.now))
    assert n is not None
    body = json.loads(n.body)
    assert body["event"] == "messageStatus" and body["RCSMessage"] == {
        "msgId": "m-1", "status": "delivered"}
    assert body["messageContact"]["userContact"] == USER and body["eventId"]
    assert n.url == "http://csp.example/hook" and n.ordering_key == f"labbot|{USER}"
    mac = hmac.new(b"whsec", n.body, hashlib.sha256).hexdigest()
    assert dict(n.headers)["X-MaaP-Signature"] == f"sha256={mac}"
    failed = dialect.render(bot, StatusEvent("labbot", "m", USER, Status.FAILED,
                                             FailureCode.EXPIRED))
    assert failed is not None
    assert json.loads(failed.body)["RCSMessage"]["failureReason"] == {
        "code": 7, "text": "EXPIRED"}
    revoked = dialect.render(bot, StatusEvent("labbot", "m", USER, Status.REVOKED))
    assert revoked is not None
    assert json.loads(revoked.body)["RCSMessage"]["status"] == "cancelled"
    assert dialect.render(bot, StatusEvent("labbot", "m", USER, Status.REVOKE_FAILED)) is None
    assert dialect.render(bot, StatusEvent("labbot", "m", USER, Status.ACCEPTED)) is None
    typing = dialect.render(bot, TypingEvent("labbot", USER, True))
    assert typing is not None and json.loads(typing.body)["RCSMessage"] == {"isTyping": "active"}
    new = dialect.render(bot, NewUserEvent("labbot", USER))
    assert new is not None and json.loads(new.body)["event"] == "newUser"
    fs = dialect.render(bot, FileStatusEvent("labbot", "f1", "expired"))
    assert fs is not None
    assert json.loads(fs.body)["fileId"] == "f1" and fs.ordering_key == "labbot|"
    other = api.bot("other")
    assert other is not None
    unsigned = dialect.render(other, NewUserEvent("other", USER))
    assert unsigned is not None and unsigned.headers == ()
    # the chatId shown can be used to address the user
    chat_id = json.loads(new.body)["messageContact"]["chatId"]
    assert dialect._contact(bot, MessageContact(chatId=chat_id), "m") == USER


def test_render_inbound_kinds(tmp_path: Path) -> None:
    clock = Clock()
    _, api, dialect = make_app(tmp_path, clock)
    bot = api.bot("labbot")
    assert bot is not None
    tap = {"response": {"reply": {"displayText": "Yes", "postback": {"data": "y"}}}}
    n = dialect.render(bot, InboundEvent("labbot", USER, "u1", Payload(
        SUGGESTION_RESPONSE, json.dumps(tap).encode()), conversation_id="c1"))
    assert n is not None
    body = json.loads(n.body)
    assert body["event"] == "response" and body["conversationId"] == "c1"
    assert body["RCSMessage"] == {"msgId": "u1", "suggestedResponse": tap}
    assert inbound_rcs(Payload("text/plain;charset=UTF-8", "你好".encode())) == (
        "message", {"textMessage": "你好"})
    kind, rcs = inbound_rcs(Payload(FT_HTTP, (
        b'<file xmlns="urn:gsma:params:xml:ns:rcs:rcs:fthttp"><file-info type="file">'
        b"<file-size>10</file-size><file-name>a.jpg</file-name>"
        b"<content-type>image/jpeg</content-type>"
        b'<data url="http://x/a" until="2026-01-01T00:00:00Z"/></file-info></file>')))
    assert kind == "message" and rcs["fileMessage"]["fileUrl"] == "http://x/a"
    assert inbound_rcs(Payload("image/gif", b"GIF"))[1] == {
        "unsupportedContent": {"contentType": "image/gif", "size": 3}}
    kind, rcs = inbound_rcs(Payload(FT_HTTP, b"<not xml"))
    assert kind == "message" and "unreadableContent" in rcs


@given(st.sampled_from(["text/plain", SUGGESTION_RESPONSE, FT_HTTP, PUSH_LOCATION,
                        "multipart/mixed; boundary=b", IS_COMPOSING,
                        "application/vnd.gsma.botsharedclientdata.v1.0+json", "x/y"]),
       st.binary(max_size=200))
def test_inbound_rendering_never_crashes(ctype: str, body: bytes) -> None:
    kind, rcs = inbound_rcs(Payload(ctype, body))
    assert kind in ("message", "response", "isTyping") and isinstance(rcs, dict)


JSON_BODIES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["RCSMessage", "messageContact", "userContact", "textMessage",
                         "fileMessage", "fileUrl", "fileName", "fileMIMEType", "fileSize",
                         "richcardMessage", "suggestedChipList", "suggestions", "message",
                         "isTyping", "msgId", "geolocationPushMessage", "pos", "radius",
                         "audioMessage", "playingLength", "label"]),
        inner, max_size=4),
    max_leaves=25)


@given(JSON_BODIES)
def test_parse_send_only_raises_gsma_errors(obj: Any) -> None:
    try:
        body = json.dumps(obj).encode()
    except ValueError:
        return
    try:
        parse_send(body)
    except GsmaError as exc:
        assert exc.status == 400 and exc.text


# -- hostile bodies over HTTP, and the OpenAPI part ---------------------------------------------


@pytest.fixture(scope="module")
def hostile_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Env, str]]:
    loop = asyncio.new_event_loop()
    clock = Clock()
    app, api, dialect = make_app(tmp_path_factory.mktemp("files"), clock)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app), loop=loop)
    loop.run_until_complete(client.start_server())
    env = Env(client, api, dialect, clock)
    api.limiter.allow = lambda *a: True  # type: ignore[method-assign]
    token = loop.run_until_complete(env.token())
    yield loop, env, token
    loop.run_until_complete(client.close())
    loop.close()


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["RCSMessage", "messageContact", "userContact", "textMessage",
                         "fileMessage", "fileUrl", "richcardMessage", "suggestedChipList",
                         "suggestions", "message", "isTyping", "msgId", "status", "chatId",
                         "geolocationPushMessage", "pos", "audioMessage", "z"]),
        inner, max_size=4),
    max_leaves=20)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=300), JSONISH.map(lambda o: json.dumps(o).encode())),
       st.sampled_from(["POST messages", "PUT messages/m/status", "POST files",
                        "POST token"]))
def test_hostile_bodies_never_5xx(hostile_env: tuple[Any, Env, str], body: bytes,
                                  op: str) -> None:
    loop, env, token = hostile_env
    method, path = op.split(" ")
    url = "/rcs/oauth2/v1/token" if path == "token" else f"/rcs/bot/v1/labbot/{path}"
    ctype = "multipart/form-data; boundary=zz" if path == "files" else "application/json"

    async def go() -> tuple[int, Any]:
        r = await env.client.request(method, url, data=body, headers={
            "Authorization": f"Bearer {token}", "Content-Type": ctype})
        return r.status, await r.json()

    status, reply = loop.run_until_complete(go())
    assert status < 500
    if status >= 400:
        assert ("reason" in reply) or ("error" in reply)


def test_openapi_covers_every_route(tmp_path: Path) -> None:
    app, _, dialect = make_app(tmp_path, Clock())
    doc = build_openapi([dialect.openapi()])
    missing, extra = out_of_sync(app, doc)
    assert missing == set()
    assert extra == {("GET", "/openapi.json")}
