"""The MaaP's OpenAPI document: valid OpenAPI 3.0.3, and every route of the real aiohttp app
documented (and every documented operation routed)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema_rs
import msgspec
import pytest
from aiohttp import web

from fivegmc.config import load_profile
from fivegmc.maap import directory, files
from fivegmc.maap.openapi import (
    app_operations,
    build_openapi,
    doc_operations,
    openapi_routes,
    out_of_sync,
)
from fivegmc.maap.tokens import TokenBook
from fivegmc.obs.logging import make_logger

PROFILE = load_profile(Path(__file__).parents[2] / "profiles" / "lab.toml")
DIALECTS = {"gsma": "GsmaDialect", "ctcu": "CtcuDialect", "cmcc": "CmccDialect"}


def assert_valid_openapi(doc: dict[str, Any]) -> None:
    from schemathesis.specs.openapi.definitions import OPENAPI_30

    errors = [f"{e.instance_path}: {e.message}"[:300]
              for e in jsonschema_rs.Draft4Validator(OPENAPI_30).iter_errors(doc)]
    assert errors == []
    # every $ref resolves
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []
    for ref in refs(doc):
        target: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(target, dict) and part in target, f"dangling {ref}"
            target = target[part]


def core_app(tmp_path: Path, root: str = "") -> tuple[web.Application, dict[str, Any]]:
    fs = files.FileStore(tmp_path, "http://127.0.0.1:8080", 1000, 60, root=root)
    doc = build_openapi([files.openapi_part(fs), directory.openapi_part(root)])
    app = web.Application()
    app.add_routes(files.file_routes(fs))
    app.add_routes(directory.directory_routes(lambda: PROFILE.maap.chatbots, root))
    app.add_routes(openapi_routes(doc))
    return app, doc


@pytest.mark.parametrize("root", ["", "/rcs"])
def test_core_routes_documented(tmp_path: Path, root: str) -> None:
    app, doc = core_app(tmp_path, root)
    assert out_of_sync(app, doc) == (set(), set())
    assert ("GET", f"{root}/files/{{file_id}}") in doc_operations(doc)
    assert ("HEAD", f"{root}/files/{{file_id}}") in app_operations(app)
    assert doc["openapi"] == "3.0.3"
    assert_valid_openapi(doc)


def test_out_of_sync_reports_both_ways(tmp_path: Path) -> None:
    app, doc = core_app(tmp_path)

    async def h(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_post("/undocumented/{x}", h)
    doc["paths"]["/ghost"] = {"delete": {"responses": {"204": {"description": "x"}}}}
    assert out_of_sync(app, doc) == ({("POST", "/undocumented/{x}")}, {("DELETE", "/ghost")})


def test_merge_conflicts_are_errors() -> None:
    a = {"paths": {"/x": {"get": {"responses": {"200": {"description": "a"}}}}}}
    b = {"paths": {"/x": {"get": {"responses": {"200": {"description": "b"}}},
                          "post": {"responses": {"200": {"description": "b"}}}}}}
    with pytest.raises(ValueError, match="GET /x is documented twice"):
        build_openapi([a, b])
    s1 = {"components": {"schemas": {"E": {"type": "string"}}}}
    s2 = {"components": {"schemas": {"E": {"type": "integer"}}}}
    with pytest.raises(ValueError, match=r"schemas\.E"):
        build_openapi([s1, s2])
    assert build_openapi([s1, s1])["components"]["schemas"]["E"] == {"type": "string"}
    with pytest.raises(ValueError, match="only hold"):
        build_openapi([{"info": {}}])
    with pytest.raises(ValueError, match="start with"):
        build_openapi([{"paths": {"x": {}}}])
    merged = build_openapi([a, {"paths": {"/x": {"post": {"responses": {}}}}}])
    assert set(merged["paths"]["/x"]) == {"get", "post"}


def _fake_api(tmp_path: Path) -> Any:
    fs = files.FileStore(tmp_path, "http://127.0.0.1:8080", PROFILE.maap.max_file_bytes, 60,
                         root=PROFILE.maap.server_root)
    bots = {b.id: b for b in PROFILE.maap.chatbots}
    return SimpleNamespace(config=PROFILE.maap, tokens=TokenBook(60), files=fs,
                           bot=bots.get, bots=lambda: PROFILE.maap.chatbots,
                           bot_by_uri=lambda uri: next(
                               (b for b in bots.values() if b.uri.lower() == uri.lower()), None))


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_dialect_routes_documented(tmp_path: Path, name: str) -> None:
    """Each dialect alone: what add_routes registers is what openapi() documents."""
    try:
        module = importlib.import_module(f"fivegmc.maap.{name}")
    except ImportError:
        pytest.skip(f"fivegmc.maap.{name} not written yet")
    dialect = getattr(module, DIALECTS[name])(_fake_api(tmp_path))
    app = web.Application()
    dialect.add_routes(app)
    doc = build_openapi([dialect.openapi()])
    app.add_routes(openapi_routes(doc))
    missing, extra = out_of_sync(app, doc)
    assert missing == set(), f"routes {name} registers but does not document"
    assert extra == set(), f"operations {name} documents but does not route"
    assert_valid_openapi(doc)


async def test_real_maap_app_documented(tmp_path: Path) -> None:
    """The MaaP node's real aiohttp app against the document it serves."""
    try:
        server = importlib.import_module("fivegmc.maap.server")
    except ImportError:
        pytest.skip("fivegmc.maap.server not written yet")
    for root in ("", "/rcs"):
        maap = msgspec.structs.replace(PROFILE.maap, data_dir=str(tmp_path / root.strip("/")),
                                       server_root=root)
        profile = msgspec.structs.replace(PROFILE, maap=maap)
        node = server.MaapNode(profile, make_logger("WARNING", "json", "test"))
        doc = node.openapi()
        missing, extra = out_of_sync(node.app, doc)
        assert missing == set(), "routes the OpenAPI document lacks"
        assert extra == set(), "documented operations the app does not route"
        assert_valid_openapi(doc)
        served = {d for d in DIALECTS if d in node.dialects}
        assert any(p.startswith(f"{root}/bot/v1/") for p in doc["paths"]) or not served
