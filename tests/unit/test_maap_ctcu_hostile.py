"""Hostile bodies on every CT/CU endpoint: never a 5xx, always the dialect's JSON error body
(``errorCode`` int + ``errorMessage``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fivegmc.maap.ctcu import CtcuDialect
from fivegmc.maap.files import FileStore
from fivegmc.maap.tokens import TokenBook

from .test_maap_ctcu import CT, PROFILE, FakeApi, text_body

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=4),
    max_leaves=12,
)
SEND_KEYS = [*text_body(), "messageList", "reportRequest", "trafficType", "imFormat",
             "smsContent", "clientCorrelator", "inReplyTo"]
item = st.fixed_dictionaries({}, optional={
    "contentType": st.sampled_from(["text/plain", "application/vnd.gsma.botmessage.v1.0+json",
                                    "application/vnd.gsma.botsuggestion.v1.0+json",
                                    "application/vnd.gsma.rcs-ft-http",
                                    "application/vnd.gsma.rcs-ft-http+xml",
                                    "application/vnd.gsma.rcspushlocation+xml"]) | st.text(),
    "contentEncoding": st.sampled_from(["utf8", "base64", "utf-8"]) | st.text(max_size=5),
    "contentText": json_values,
})
send_like = st.builds(
    lambda base, changes, items: {**base, **changes, "messageList": items},
    st.just(text_body()),
    st.dictionaries(st.sampled_from(SEND_KEYS), json_values, max_size=4),
    st.lists(item, max_size=3) | json_values,
)
bodies = (st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
          | send_like.map(lambda v: json.dumps(v).encode()))


class Live:
    def __init__(self, tmp: Path) -> None:
        self.runner = asyncio.Runner()
        fs = FileStore(tmp, "http://127.0.0.1:8080", PROFILE.maap.max_file_bytes, 3600)
        self.api = FakeApi(PROFILE.maap, TokenBook(7200), fs)
        app = web.Application()
        CtcuDialect(self.api).add_routes(app)

        async def start() -> TestClient[web.Request, web.Application]:
            client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
            await client.start_server()
            return client

        self.client = self.runner.run(start())
        self.token, _ = self.api.tokens.issue(CT.id)

    def call(self, method: str, path: str, data: bytes,
             headers: dict[str, str]) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            r = await self.client.request(method, f"/bot/v1/{CT.id}/{path}", data=data,
                                          headers={"Authorization": self.token, **headers})
            raw = await r.read()
            return r.status, raw
        return self.runner.run(go())

    def close(self) -> None:
        self.runner.run(self.client.close())
        self.runner.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    lv = Live(tmp_path_factory.mktemp("ctcu"))
    yield lv
    lv.close()


def _check(status: int, raw: bytes) -> dict[str, Any]:
    assert status < 500, raw[:300]
    doc = json.loads(raw)
    assert isinstance(doc["errorCode"], int)
    assert isinstance(doc.get("errorMessage", ""), str)
    return doc  # type: ignore[no-any-return]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, path=st.sampled_from(["messages", "revoke", "accessToken"]))
def test_hostile_json_bodies(live: Live, body: bytes, path: str) -> None:
    status, raw = live.call("POST", path, body, {"Content-Type": "application/json"})
    doc = _check(status, raw)
    if status != 200:
        assert doc["errorCode"] != 0


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=400), boundary=st.sampled_from(["b", "xyz", ""]),
       mode=st.sampled_from(["perm", "temp", "junk"]))
def test_hostile_uploads(live: Live, body: bytes, boundary: str, mode: str) -> None:
    ctype = f"multipart/form-data; boundary={boundary}" if boundary else "multipart/form-data"
    status, raw = live.call("POST", "medias/upload", b"--b\r\n" + body,
                            {"Content-Type": ctype, "uploadMode": mode})
    _check(status, raw)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(url=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=80),
       rng=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e),
                   max_size=20))
def test_hostile_media_headers(live: Live, url: str, rng: str) -> None:
    headers = {"url": url, "Range": rng}
    status, raw = live.call("GET", "medias/download", b"", headers)
    _check(status, raw)
    status, raw = live.call("DELETE", "medias/delete", b"", headers)
    _check(status, raw)
