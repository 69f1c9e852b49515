"""A recording fake of the MaaP core contract (fivegmc.maap.api.MaapApi) for the cmcc dialect's
unit tests, and helpers to sign CMCC requests."""

from __future__ import annotations

import email.utils
import uuid
from typing import cast

import msgspec
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fivegmc.config import ChatbotConfig, MaapConfig, load_profile
from fivegmc.maap.api import MaapApi, TokenCheck
from fivegmc.maap.cmcc import CmccDialect
from fivegmc.maap.cmcc_wire import authorization
from fivegmc.maap.model import (
    Capabilities,
    FailureCode,
    FileRecord,
    MessageRecord,
    Outbound,
    RecipientState,
    SendResult,
    Status,
)

BOT_URI = "sip:125200401100001@botplatform.rcs.chinamobile.com"
BOT_ENC = "sip%3A125200401100001%40botplatform.rcs.chinamobile.com"
OTHER_URI = "sip:125200401100002@botplatform.rcs.chinamobile.com"
OTHER_ENC = "sip%3A125200401100002%40botplatform.rcs.chinamobile.com"
NOW = 1_700_000_000.0


def config(**changes: object) -> MaapConfig:
    lab = load_profile(None).maap
    cm = next(b for b in lab.chatbots if b.dialect == "cmcc")
    other = msgspec.structs.replace(cm, id="125200401100002", uri=OTHER_URI,
                                    app_id="cm-other-app", secret="other-password",
                                    webhook="http://csp.test/other")
    cm = msgspec.structs.replace(cm, webhook="http://csp.test/notify")
    gsma = next(b for b in lab.chatbots if b.dialect == "gsma")
    return msgspec.structs.replace(lab, chatbots=(gsma, cm, other),
                                   public_url="http://maap.test", **changes)


class FakeTokens:
    def issue(self, bot_id: str, *, replace: bool = False) -> tuple[str, float]:
        return "t", NOW + 7200

    def check(self, token: str | None) -> TokenCheck:
        return TokenCheck(None, "invalid")


class FakeFiles:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.records: dict[str, FileRecord] = {}
        self.data: dict[str, bytes] = {}

    async def put(self, bot_id: str, name: str, content_type: str, data: bytes, *,
                  ttl_s: float | None = None, thumbnail_of: str = "") -> FileRecord:
        if len(data) > self.max_bytes:
            raise ValueError(f"file larger than {self.max_bytes} bytes")
        fid = uuid.uuid4().hex
        rec = FileRecord(fid, bot_id, f"http://maap.test/files/{fid}", name, content_type,
                         len(data), NOW + 3600, thumbnail_of=thumbnail_of)
        self.records[fid] = rec
        self.data[fid] = data
        return rec

    def get(self, file_id: str) -> FileRecord | None:
        return self.records.get(file_id)

    def by_url(self, url: str) -> FileRecord | None:
        return next((r for r in self.records.values() if r.url == url), None)

    async def read(self, file_id: str) -> bytes:
        return self.data[file_id]

    async def delete(self, file_id: str) -> bool:
        self.data.pop(file_id, None)
        return self.records.pop(file_id, None) is not None


class FakeApi:
    """Records sends and revokes; numbers in ``fail`` fail at once (TERMINAL_NOT_FOUND)."""

    def __init__(self, cfg: MaapConfig | None = None) -> None:
        self.config = cfg or config()
        self.tokens = FakeTokens()
        self.files = FakeFiles(self.config.max_file_bytes)
        self.sent: list[Outbound] = []
        self.revoked: list[tuple[str, str, tuple[str, ...]]] = []
        self.records: dict[tuple[str, str], MessageRecord] = {}
        self.fail: set[str] = set()
        self.blocked: set[str] = set()

    def bot(self, bot_id: str) -> ChatbotConfig | None:
        return next((b for b in self.config.chatbots if b.id == bot_id), None)

    def bot_by_uri(self, uri: str) -> ChatbotConfig | None:
        return next((b for b in self.config.chatbots if b.uri.lower() == uri.lower()), None)

    def bots(self) -> tuple[ChatbotConfig, ...]:
        return self.config.chatbots

    def allow(self, bot_id: str) -> bool:
        return bot_id not in self.blocked

    async def send(self, out: Outbound) -> SendResult:
        key = (out.bot_id, out.message_id)
        if key in self.records:
            rec = self.records[key]
            return SendResult(out.message_id, tuple((r.number, r.status, r.failure)
                                                    for r in rec.recipients), duplicate=True)
        self.sent.append(out)
        states = tuple(
            RecipientState(n, Status.FAILED, FailureCode.TERMINAL_NOT_FOUND, NOW)
            if n in self.fail else RecipientState(n, Status.ACCEPTED, None, NOW)
            for n in out.recipients)
        self.records[key] = MessageRecord(out.bot_id, out.message_id, NOW, states,
                                          out.client_correlator)
        return SendResult(out.message_id, tuple((r.number, r.status, r.failure)
                                                for r in states))

    async def revoke(self, bot_id: str, message_id: str,
                     recipients: tuple[str, ...] = ()) -> dict[str, Status]:
        self.revoked.append((bot_id, message_id, recipients))
        rec = self.records[(bot_id, message_id)]
        return {r.number: Status.REVOKED for r in rec.recipients
                if not recipients or r.number in recipients}

    def record(self, bot_id: str, message_id: str) -> MessageRecord | None:
        return self.records.get((bot_id, message_id))

    async def displayed(self, bot_id: str, user: str, message_id: str) -> bool:
        return False

    async def capabilities(self, bot_id: str, number: str) -> Capabilities:
        return Capabilities(number, True, True, True)


def signed(app_id: str = "cm-lab-app", password: str = "lab-password-cm",
           at: float = NOW, **extra: str) -> dict[str, str]:
    date = email.utils.formatdate(at, usegmt=True)
    return {"Date": date, "Authorization": authorization(app_id, password, date),
            "Content-Type": "application/xml", **extra}


async def make_client(api: FakeApi) -> tuple[TestClient[web.Request, web.Application],
                                             CmccDialect]:
    dialect = CmccDialect(as_api(api), clock=lambda: NOW)
    app = web.Application()
    dialect.add_routes(app)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    return client, dialect


def as_api(api: FakeApi) -> MaapApi:
    """The fake as the protocol (its attributes are narrower types than the protocol's)."""
    return cast(MaapApi, api)
