"""The chatbot directory UE clients search, over real HTTP."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web

from fivegmc.config import ChatbotConfig, load_profile
from fivegmc.maap.directory import directory_routes, search

BOTS = (
    ChatbotConfig(id="labbot", uri="sip:labbot@botplatform.example", dialect="gsma",
                  app_id="a", secret="s", name="Lab Bot", description="Weather and news",
                  category="Tools", sms_port="1065900000001", webhook="http://x/secret"),
    ChatbotConfig(id="106500000000003", uri="sip:106500000000003@botplatform.rcs.chinaunicom.cn",
                  dialect="ctcu", app_id="b", secret="t", name="联通营业厅",
                  description="话费查询", category="Telecom"),
)


def test_search() -> None:
    assert [b.id for b in search(BOTS, "WEATHER")] == ["labbot"]
    assert [b.id for b in search(BOTS, "话费")] == ["106500000000003"]
    assert [b.id for b in search(BOTS, "chinaunicom")] == ["106500000000003"]
    assert [b.id for b in search(BOTS, category="tools")] == ["labbot"]
    assert search(BOTS, "weather", "telecom") == []
    assert len(search(BOTS)) == 2 and len(search(BOTS, limit=1)) == 1


async def test_http(tmp_path: Path) -> None:
    app = web.Application()
    app.add_routes(directory_routes(lambda: BOTS, "/rcs"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}/rcs/directory/v1/chatbots"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base, params={"q": "lab"}) as r:
                body = await r.json()
                assert r.status == 200 and body["count"] == 1
                assert body["chatbots"][0] == {
                    "id": "labbot", "name": "Lab Bot", "description": "Weather and news",
                    "category": "Tools", "uri": "sip:labbot@botplatform.example",
                    "sms_port": "1065900000001"}
            async with http.get(base) as r:
                assert (await r.json())["count"] == 2
            async with http.get(base + "/106500000000003") as r:
                body = await r.json()
                assert body["name"] == "联通营业厅"
                assert "secret" not in body and "dialect" not in body and "webhook" not in body
            async with http.get(base + "/sip:labbot@botplatform.example") as r:
                assert (await r.json())["id"] == "labbot"
            async with http.get(base + "/nope") as r:
                assert r.status == 404 and "nope" in (await r.json())["error"]
            for bad in ({"limit": "0"}, {"limit": "x"}, {"limit": "١"}, {"q": "x" * 201}):
                async with http.get(base, params=bad) as r:
                    assert r.status == 400 and "error" in await r.json()
    finally:
        await runner.cleanup()


def test_lab_profile_bots_are_listed() -> None:
    profile = load_profile(Path(__file__).parents[2] / "profiles" / "lab.toml")
    bots = profile.maap.chatbots
    assert len(search(bots)) == len(bots) >= 4
