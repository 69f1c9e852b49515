"""Schemathesis against the live MaaP node's ``/openapi.json`` (issue 4 item 10).

The node runs in this test's event loop (``maap_network``); the schemathesis CLI runs as a
separate process (its HTTP client is synchronous), bounded to ``MAX_EXAMPLES`` cases per
operation. The test signs in as each dialect's lab chatbot first (GSMA OAuth2 token, CT/CU
accessToken, CMCC Basic digest), uploads a file and sends a message, and hands schemathesis
those credentials and ids per operation, so the generated requests reach past the auth and
lookup checks into the handlers.

Checks: no 5xx; every status code and content type is one the document declares.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import sys
import time
import uuid
from email.utils import formatdate
from pathlib import Path

import pytest

from fivegmc.config import ChatbotConfig

from .maap_net import MaapNet, maap_network

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 30
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance"
USER = "+8613800000077"


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def _operation(path_regex: str, headers: dict[str, str], params: dict[str, str]) -> str:
    lines = ["[[operations]]", f"include-path-regex = {_toml_str(path_regex)}"]
    if headers:
        lines.append("headers = { " + ", ".join(f"{_toml_str(k)} = {_toml_str(v)}"
                                                for k, v in headers.items()) + " }")
    if params:
        lines.append("parameters = { " + ", ".join(f"{_toml_str(k)} = {_toml_str(v)}"
                                                   for k, v in params.items()) + " }")
    return "\n".join(lines) + "\n"


def _bot(net: MaapNet, dialect: str) -> ChatbotConfig:
    maap = net.node.maap
    assert maap is not None
    return next(b for b in maap.config.chatbots if b.dialect == dialect)


async def _gsma(net: MaapNet, root: str) -> str:
    bot = _bot(net, "gsma")
    basic = base64.b64encode(f"{bot.app_id}:{bot.secret}".encode()).decode()
    async with net.http.post(f"{net.base}{root}/oauth2/v1/token",
                             data={"grant_type": "client_credentials", "scope": "botmessage"},
                             headers={"Authorization": f"Basic {basic}"}) as r:
        assert r.status == 200, await r.text()
        token = (await r.json())["access_token"]
    msg_id = uuid.uuid4().hex
    async with net.http.post(f"{net.base}{root}/bot/v1/{bot.id}/messages",
                             json={"RCSMessage": {"msgId": msg_id, "textMessage": "hello"},
                                   "messageContact": {"userContact": USER}},
                             headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status < 300, await r.text()
    maap = net.node.maap
    assert maap is not None
    rec = await maap.files.put(bot.id, "a.png", "image/png", b"\x89PNG" + os.urandom(64))
    auth = {"Authorization": f"Bearer {token}"}
    params = {"path.botId": bot.id, "path.msgId": msg_id, "path.fileId": rec.file_id,
              "query.userContact": USER}
    return (_operation(rf"^{root}/oauth2/", {"Authorization": f"Basic {basic}"}, {})
            + _operation(rf"^{root}/bot/v1/\{{botId\}}/", auth, params)
            + _operation(r"/files/\{file_id\}$", {}, {"path.file_id": rec.file_id}))


async def _ctcu(net: MaapNet, root: str) -> str:
    bot = _bot(net, "ctcu")
    async with net.http.post(f"{net.base}{root}/bot/v1/{bot.id}/accessToken",
                             json={"appId": bot.app_id, "appKey": bot.secret}) as r:
        body = await r.json()
        assert body.get("errorCode") == 0, body
    auth = {"Authorization": f"accessToken {body['accessToken']}"}
    # its send is also documented under the GSMA dialect's shared {botId} template (one path
    # per hierarchy, OpenAPI 3.0): its own plain paths get its credentials here
    own = "|".join(re.escape(seg) for seg in (bot.id, bot.uri))
    return (_operation(rf"^{root}/bot/v1/\{{chatbotId\}}/(?!accessToken)", auth,
                       {"path.chatbotId": bot.id})
            + _operation(rf"^{root}/bot/v1/({own})/messages$", auth, {}))


def _cmcc(net: MaapNet, root: str) -> str:
    bot = _bot(net, "cmcc")
    date = formatdate(time.time(), usegmt=True)
    token = hashlib.sha256(bot.secret.encode()).hexdigest()
    digest = hashlib.sha256((token + date).encode()).hexdigest()
    basic = base64.b64encode(f"{bot.app_id}:{digest}".encode()).decode()
    headers = {"Date": date, "Authorization": f"Basic {basic}"}
    return (_operation(rf"^{root}/messaging/", headers, {"path.chatbotURI": bot.uri})
            + _operation(rf"^{root}/Content$", {**headers, "X-3GPP-Intended-Identity": bot.uri,
                                                "User-Agent": f"SP/{bot.uri}",
                                                "Terminal-type": "Chatbot"}, {}))


async def _config(net: MaapNet, tmp_path: Path) -> Path:
    maap = net.node.maap
    assert maap is not None
    root = maap.config.server_root
    parts = ["[generation]\n", f"max-examples = {MAX_EXAMPLES}\n", "database = \"none\"\n"]
    if "gsma" in maap.dialects:
        parts.append(await _gsma(net, root))
    if "ctcu" in maap.dialects:
        parts.append(await _ctcu(net, root))
    if "cmcc" in maap.dialects:
        parts.append(_cmcc(net, root))
    path = tmp_path / "schemathesis.toml"
    # [generation] must come before any [[operations]] table
    path.write_text(parts[0] + parts[1] + parts[2] + "\n" + "".join(parts[3:]))
    return path


async def _schemathesis(net: MaapNet, config: Path, tmp_path: Path,
                        *extra: str) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
           "run", f"{net.base}/openapi.json", "--checks", CHECKS, "--seed", "20240",
           "--phases", "examples,coverage,fuzzing", "--max-failures", "50",
           "--request-timeout", "10", "--workers", "1", *extra]
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"})
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 150)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


def _digest(out: str) -> str:
    """The failures and errors sections (without schemathesis' long tracebacks) + summary."""
    start = min((i for i in (out.find("= FAILURES ="), out.find("= ERRORS =")) if i >= 0),
                default=max(0, len(out) - 4000))
    lines = [ln for ln in out[start:].splitlines() if "│" not in ln and len(ln) < 400]
    return "\n".join(lines[:300])


@pytest.mark.timeout(240)
@pytest.mark.parametrize("root", ["", "/rcs"])
async def test_schemathesis_against_live_node(tmp_path: Path, root: str) -> None:
    overrides = (f'maap.server_root="{root}"',) if root else ()
    async with maap_network(*overrides) as net:
        await net.ue(USER)
        config = await _config(net, tmp_path)
        code, out = await _schemathesis(net, config, tmp_path)
        assert code == 0, f"schemathesis failed:\n{_digest(out)}\nconfig:\n{config.read_text()}"
        summary = out[out.find("SUMMARY"):]
        assert "Tested:" in summary and " passed" in summary
