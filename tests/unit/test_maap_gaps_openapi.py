"""OpenAPI 3.0 validity of the served document: no two templated paths with the same hierarchy
(OpenAPI 3.0.3 §4.7.9.2), the GSMA and CT/CU ``…/bot/v1/{…}/messages`` documented once with
both dialects in one operation, and the route/document sync check ignoring template names."""

from __future__ import annotations

import importlib
import re
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from fivegmc.maap.openapi import build_openapi, merge_operations, out_of_sync
from fivegmc.obs.logging import make_logger

from .test_maap_openapi import PROFILE, assert_valid_openapi

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def identical_templated_paths(doc: dict[str, Any]) -> dict[str, list[str]]:
    """Paths that are one path for OpenAPI: the same once every ``{…}`` is ``{}``."""
    by_key: dict[str, list[str]] = {}
    for path in doc["paths"]:
        by_key.setdefault(re.sub(r"\{[^}]*\}", "{}", path), []).append(path)
    return {k: v for k, v in by_key.items() if len(v) > 1}


def operations_per_key(doc: dict[str, Any]) -> Counter[tuple[str, str]]:
    return Counter((m, re.sub(r"\{[^}]*\}", "{}", p)) for p, item in doc["paths"].items()
                   for m in item if m in METHODS)


def served(tmp_path: Path, root: str) -> tuple[Any, dict[str, Any]]:
    server = importlib.import_module("fivegmc.maap.server")
    maap = msgspec.structs.replace(PROFILE.maap, data_dir=str(tmp_path / (root.strip("/")
                                                                          or "plain")),
                                   server_root=root)
    node = server.MaapNode(msgspec.structs.replace(PROFILE, maap=maap),
                           make_logger("WARNING", "json", "test"))
    return node, node.openapi()


@pytest.mark.parametrize("root", ["", "/rcs"])
def test_served_document_has_no_identical_templated_paths(tmp_path: Path, root: str) -> None:
    node, doc = served(tmp_path, root)
    assert identical_templated_paths(doc) == {}
    assert max(operations_per_key(doc).values()) == 1  # so also one operation per method
    assert out_of_sync(node.app, doc) == (set(), set())
    assert_valid_openapi(doc)

    # the GSMA and CT/CU send: one operation documenting both dialects
    op = doc["paths"][f"{root}/bot/v1/{{botId}}/messages"]["post"]
    assert f"{root}/bot/v1/{{chatbotId}}/messages" not in doc["paths"]
    assert set(op["tags"]) == {"gsma", "ctcu"}
    (param,) = [p for p in op["parameters"] if p["in"] == "path"]
    assert param["name"] == "botId" and param["required"]
    assert "gsma" in param["description"] and "ctcu" in param["description"]
    assert "percent-encoded" in param["description"]
    body = op["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert body == [{"$ref": "#/components/schemas/GsmaSendRequest"},
                    {"$ref": "#/components/schemas/CtcuSendRequest"}]
    assert {"200", "202", "400", "401", "410", "500"} <= set(op["responses"])
    assert {"gsmaBearer": []} in op["security"] and {"ctcuAccessToken": []} in op["security"]
    assert "POST" in doc["info"]["description"] and "{botId}/messages" in doc["info"][
        "description"]
    # the other dialect operations keep their own, unshared paths
    assert f"{root}/bot/v1/{{chatbotId}}/revoke" in doc["paths"]
    assert f"{root}/bot/v1/{{botId}}/messages/{{msgId}}/status" in doc["paths"]


def _op(op_id: str, tag: str, names: list[str], **extra: Any) -> dict[str, Any]:
    return {"operationId": op_id, "tags": [tag], "summary": f"{tag} op",
            "parameters": [{"name": n, "in": "path", "required": True,
                            "schema": {"type": "string"}} for n in names],
            "responses": {"200": {"description": f"{tag} ok"}}, **extra}


def test_merge_keeps_each_dialects_meaning() -> None:
    body = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    a = _op("aSend", "a", ["botId"], requestBody=body, security=[{"aAuth": []}])
    a["parameters"][0]["description"] = "A bot id"
    a["responses"]["404"] = {"description": "no bot",
                             "content": {"application/json": {"schema": {"$ref": "#/x/A"}}}}
    b = _op("bSend", "b", ["chatbotURI"], security=[{"bAuth": []}])
    b["parameters"].append({"name": "Date", "in": "header", "required": True,
                            "schema": {"type": "string"}, "description": "RFC 1123"})
    b["responses"]["404"] = {"description": "unknown",
                             "content": {"application/json": {"schema": {"$ref": "#/x/B"}}}}
    b["responses"]["201"] = {"description": "made"}
    doc = build_openapi([{"paths": {"/v1/{botId}/send": {"post": a}}},
                         {"paths": {"/v1/{chatbotURI}/send": {"post": b},
                                    "/v1/{chatbotURI}/only-b": {"get": _op("bGet", "b",
                                                                            ["chatbotURI"])}}}])
    assert set(doc["paths"]) == {"/v1/{botId}/send", "/v1/{chatbotURI}/only-b",
                                 "/openapi.json"}
    op = doc["paths"]["/v1/{botId}/send"]["post"]
    assert op["operationId"] == "aSendOrBSend" and op["tags"] == ["a", "b"]
    path, date = op["parameters"]
    assert path["name"] == "botId" and path["description"] == \
        "a: A bot id; b: The chatbotURI"
    assert date == {"name": "Date", "in": "header", "required": False,
                    "schema": {"type": "string"}, "description": "(b only) RFC 1123"}
    # a body only one dialect has cannot be required of the other
    assert op["requestBody"]["required"] is False
    assert op["responses"]["404"]["content"]["application/json"]["schema"] == {
        "oneOf": [{"$ref": "#/x/A"}, {"$ref": "#/x/B"}]}
    assert op["responses"]["201"]["description"] == "(b) made"
    assert op["responses"]["200"]["description"] == "a: a ok | b: b ok"
    assert op["security"] == [{"aAuth": []}, {"bAuth": []}]
    # a third dialect on the same hierarchy joins the same operation, oneOf stays flat
    c = _op("cSend", "c", ["x"], security=[{"aAuth": []}])
    c["responses"]["404"] = {"description": "gone",
                             "content": {"application/json": {"schema": {"$ref": "#/x/C"}}}}
    three = merge_operations(op, c)
    assert three["responses"]["404"]["content"]["application/json"]["schema"]["oneOf"] == [
        {"$ref": "#/x/A"}, {"$ref": "#/x/B"}, {"$ref": "#/x/C"}]
    assert three["security"] == [{"aAuth": []}, {"bAuth": []}]


def test_sync_check_ignores_template_names_but_reports_real_gaps() -> None:
    async def h(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_post("/v1/{botId}/send", h)
    app.router.add_post("/v1/{chatbotURI:[0-9]+}/send", h)
    app.router.add_get("/v1/{botId}/undocumented", h)
    doc = build_openapi([{"paths": {
        "/v1/{botId}/send": {"post": _op("s", "a", ["botId"])},
        "/v1/{x}/ghost": {"delete": _op("g", "a", ["x"])}}}])
    app.router.add_get("/openapi.json", h, allow_head=False)
    # both send routes are the one documented path; the gaps keep their own spelling
    assert out_of_sync(app, doc) == ({("GET", "/v1/{botId}/undocumented")},
                                     {("DELETE", "/v1/{x}/ghost")})


_SEGMENTS = st.sampled_from(["a", "b", "x", "{t}", "{u}", "{v}"])


@given(st.lists(st.tuples(st.lists(_SEGMENTS, min_size=1, max_size=3),
                          st.sampled_from(["get", "post"])),
                min_size=1, max_size=8))
def test_any_parts_give_one_path_per_hierarchy(specs: list[tuple[list[str], str]]) -> None:
    """Whatever paths the parts bring, the document has one path per hierarchy, each
    operation's path parameters are exactly its path's templates, and it is valid OpenAPI;
    the same exact path and method documented twice differently is still an error."""
    parts = []
    seen: set[tuple[str, str]] = set()
    for i, (segments, method) in enumerate(specs):
        # template names unique within a path: t0, u1, …
        segs = [f"{{{s[1]}{n}}}" if s.startswith("{") else s for n, s in enumerate(segments)]
        path = "/" + "/".join(segs)
        names = [s[1:-1] for s in segs if s.startswith("{")]
        parts.append({"paths": {path: {method: _op(f"op{i}", f"t{i}", names)}}})
        seen.add((path, method))
    if len(seen) < len(specs):
        with pytest.raises(ValueError, match="documented twice"):
            build_openapi(parts)
        return
    doc = build_openapi(parts)
    assert identical_templated_paths(doc) == {}
    for path, item in doc["paths"].items():
        names = re.findall(r"\{([^}]*)\}", path)
        for method, op in item.items():
            assert sorted(p["name"] for p in op.get("parameters", ())
                          if p["in"] == "path") == sorted(names), (path, method)
    assert_valid_openapi(doc)
