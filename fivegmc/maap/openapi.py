"""The MaaP's OpenAPI 3.0.3 document (issue 4 item 10), served at ``GET /openapi.json``.

:func:`build_openapi` merges the parts each piece of the node contributes (the dialects'
``Dialect.openapi()``, ``files.openapi_part``, ``directory.openapi_part``) and adds the
``/openapi.json`` operation itself. Two parts documenting the same operation, or the same
component name differently, are an error: the document is built once, at start-up.

Shared paths: the GSMA (``/bot/v1/{botId}/messages``) and CT/CU (``/bot/v1/{chatbotId}/
messages``) dialects route the same hierarchy under different template names, which OpenAPI
3.0.3 §4.7.9.2 forbids ("Templated paths with the same hierarchy but different templated names
MUST NOT exist as they are identical"). Such paths are documented once (the template name that
sorts first) and their operations merged (:func:`merge_operations`): one path parameter
describing each dialect's meaning, the request and response bodies as ``oneOf`` the dialects'
schemas, either dialect's security, every dialect's status codes. The chatbot named in the
path picks the dialect at run time.

:func:`app_operations` and :func:`doc_operations` list ``(METHOD, /path/{param})`` pairs of an
aiohttp app and of a document, so a test can keep the two in sync (:func:`out_of_sync` compares
them with template names ignored, :func:`template_key`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

OPENAPI_PATH = "/openapi.json"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_COMPONENT_SECTIONS = ("schemas", "responses", "parameters", "examples", "requestBodies",
                       "headers", "securitySchemes", "links", "callbacks")
_TEMPLATE = re.compile(r"\{([^{}/]*)\}")


def template_key(path: str) -> str:
    """``path`` with every template expression as ``{}``: two paths with the same key are
    "identical" for OpenAPI (§4.7.9.2), whatever their template names."""
    return _TEMPLATE.sub("{}", path)


def template_names(path: str) -> list[str]:
    return _TEMPLATE.findall(path)


def own_part() -> dict[str, Any]:
    """The ``/openapi.json`` operation."""
    return {"paths": {OPENAPI_PATH: {"get": {
        "operationId": "getOpenApi", "tags": ["meta"],
        "summary": "This OpenAPI document",
        "responses": {"200": {"description": "The OpenAPI 3.0.3 document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    }}}}


def build_openapi(parts: Iterable[dict[str, Any]], *, title: str = "fivegmc MaaP",
                  version: str = "1.0.0", description: str = "") -> dict[str, Any]:
    """One OpenAPI 3.0.3 document from ``parts`` (each ``{"paths": …, "components": …}``)."""
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, dict[str, Any]] = {}
    tags: dict[str, None] = {}
    for part in [*parts, own_part()]:
        unknown = set(part) - {"paths", "components", "tags"}
        if unknown:
            raise ValueError(f"an OpenAPI part may only hold paths and components, "
                             f"not {sorted(unknown)}")
        for path, item in part.get("paths", {}).items():
            if not path.startswith("/"):
                raise ValueError(f"OpenAPI path must start with '/': {path!r}")
            merged = paths.setdefault(path, {})
            for key, value in item.items():
                if key in merged and merged[key] != value:
                    what = f"{key.upper()} {path}" if key in METHODS else f"{path} {key}"
                    raise ValueError(f"{what} is documented twice")
                merged[key] = copy.deepcopy(value)
                if key in METHODS:
                    for tag in value.get("tags", ()):
                        tags[tag] = None
        for section, entries in part.get("components", {}).items():
            if section not in _COMPONENT_SECTIONS:
                raise ValueError(f"unknown OpenAPI components section {section!r}")
            merged_section = components.setdefault(section, {})
            for name, value in entries.items():
                if name in merged_section and merged_section[name] != value:
                    raise ValueError(f"components.{section}.{name} is defined twice, "
                                     f"differently")
                merged_section[name] = copy.deepcopy(value)
        for tag in part.get("tags", ()):
            tags[tag["name"] if isinstance(tag, dict) else str(tag)] = None
    shared = merge_shared_paths(paths)
    text = description or ("Chatbot APIs of the fivegmc MaaP: GSMA MaaP (bot/v1 + OAuth2), "
                           "China Telecom/Unicom JSON, China Mobile OMA NetAPI XML; files; "
                           "directory.")
    if shared:
        text += (" Paths two dialects share (OpenAPI 3.0 allows one templated path per "
                 "hierarchy) are documented once, each operation covering both dialects: "
                 + ", ".join(f"{m.upper()} {p}" for p, m in shared)
                 + ". The chatbot named in the path picks the dialect; bodies are oneOf "
                 "the dialects' schemas.")
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version, "description": text},
        "paths": dict(sorted(paths.items())),
        "tags": [{"name": t} for t in sorted(tags)],
    }
    if components:
        doc["components"] = {k: dict(sorted(v.items())) for k, v in sorted(components.items())}
    return doc


def merge_shared_paths(paths: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """Merge, in place, paths identical but for their template names (see the module
    docstring) into the one whose name sorts first; returns the ``(path, method)`` pairs whose
    operations were merged."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(template_key(path), []).append(path)
    merged: list[tuple[str, str]] = []
    for group in groups.values():
        if len(group) < 2:
            continue
        keep, *others = sorted(group)
        names = template_names(keep)
        target = paths[keep]
        for other in others:
            rename = dict(zip(template_names(other), names, strict=True))
            for key, value in paths.pop(other).items():
                value = _renamed(value, rename) if key in METHODS or key == "parameters" \
                    else value
                if key not in target:
                    target[key] = value
                elif key in METHODS:
                    target[key] = merge_operations(target[key], value, rename)
                    merged.append((keep, key))
                elif key == "parameters":
                    target[key] = _merge_parameters(target[key], value, "", "", rename)
                elif target[key] != value:
                    raise ValueError(f"{keep} {key} is documented twice")
    return merged


def _renamed(node: Any, rename: dict[str, str]) -> Any:
    """An operation (or parameter list) with its path parameters renamed."""
    if isinstance(node, list):
        return [_rename_param(p, rename) for p in node]
    out = dict(node)
    if "parameters" in out:
        out["parameters"] = [_rename_param(p, rename) for p in out["parameters"]]
    return out


def _rename_param(param: dict[str, Any], rename: dict[str, str]) -> dict[str, Any]:
    if param.get("in") == "path" and param.get("name") in rename:
        return {**param, "name": rename[param["name"]],
                "description": param.get("description") or f"The {param['name']}"}
    return param


def _label(op: dict[str, Any]) -> str:
    return "/".join(op.get("tags", ())) or str(op.get("operationId", "?"))


def _one_of(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    if a == b:
        return a
    alternatives: list[dict[str, Any]] = []
    for schema in (a, b):
        for alt in schema["oneOf"] if set(schema) == {"oneOf"} else [schema]:
            if alt not in alternatives:
                alternatives.append(alt)
    return {"oneOf": alternatives}


def _merge_content(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for media, value in b.items():
        if media in out and "schema" in out[media] and "schema" in value:
            out[media] = {**out[media], "schema": _one_of(out[media]["schema"],
                                                          value["schema"])}
        else:
            out.setdefault(media, value)
    return out


def _merge_parameters(a: list[dict[str, Any]], b: list[dict[str, Any]], la: str, lb: str,
                      rename: dict[str, str]) -> list[dict[str, Any]]:
    """One list: a parameter of both stays (a path parameter's description says what each
    dialect means by it); one of a single dialect is optional and says whose it is."""
    by_key = {(p["in"], p["name"]): p for p in b}
    out: list[dict[str, Any]] = []
    for p in a:
        q = by_key.pop((p["in"], p["name"]), None)
        if q is None:
            out.append(_only(p, la))
        elif p == q:
            out.append(p)
        elif p["in"] == "path":
            text_a = p.get("description") or f"The {p['name']}"
            out.append({**p, "description": f"{la}: {text_a}; {lb}: {q.get('description')}"
                        if la else text_a})
        else:
            out.append({**p, "required": bool(p.get("required") and q.get("required"))})
    out.extend(_only(q, lb) for q in by_key.values())
    return out


def _only(param: dict[str, Any], label: str) -> dict[str, Any]:
    if not label or param.get("in") == "path":
        return param
    text = param.get("description", "")
    return {**param, "required": False,
            "description": f"({label} only) {text}".rstrip()}


def merge_operations(a: dict[str, Any], b: dict[str, Any],
                     rename: dict[str, str] | None = None) -> dict[str, Any]:
    """One operation documenting ``a`` and ``b`` (two dialects' operations on one path): bodies
    ``oneOf`` both, either's security, every status code (one dialect's marked as such)."""
    la, lb = _label(a), _label(b)
    op: dict[str, Any] = {
        "operationId": f"{a.get('operationId', 'op')}Or"
                       f"{str(b.get('operationId', 'Op'))[:1].upper()}"
                       f"{str(b.get('operationId', 'Op'))[1:]}",
        "tags": list(dict.fromkeys([*a.get("tags", ()), *b.get("tags", ())])),
        "summary": f"{la}: {a.get('summary', '')} | {lb}: {b.get('summary', '')}",
        "description": "One path, two dialects (OpenAPI 3.0 allows one templated path per "
                       "hierarchy): the chatbot named in the path picks the dialect, and its "
                       "request body, security and answers. "
                       f"{la}: {a.get('description') or a.get('summary', '')}. "
                       f"{lb}: {b.get('description') or b.get('summary', '')}.",
    }
    params = _merge_parameters(a.get("parameters", []), b.get("parameters", []), la, lb,
                               rename or {})
    if params:
        op["parameters"] = params
    if "requestBody" in a or "requestBody" in b:
        ra, rb = a.get("requestBody", {}), b.get("requestBody", {})
        op["requestBody"] = {
            "required": bool(ra.get("required") and rb.get("required")),
            "content": _merge_content(ra.get("content", {}), rb.get("content", {}))}
    responses: dict[str, Any] = {}
    ra_, rb_ = a.get("responses", {}), b.get("responses", {})
    for code in sorted({*ra_, *rb_}):
        x, y = ra_.get(code), rb_.get(code)
        if x is None or y is None:
            one, label = (x, la) if y is None else (y, lb)
            assert one is not None
            responses[code] = {**one, "description": f"({label}) {one.get('description', '')}"}
        elif x == y:
            responses[code] = x
        else:
            merged: dict[str, Any] = {"description": f"{la}: {x.get('description', '')} | {lb}: "
                                     f"{y.get('description', '')}"}
            if "content" in x or "content" in y:
                merged["content"] = _merge_content(x.get("content", {}), y.get("content", {}))
            if "headers" in x or "headers" in y:
                merged["headers"] = {**y.get("headers", {}), **x.get("headers", {})}
            responses[code] = merged
    op["responses"] = responses
    security = [*a.get("security", [{}])]
    security += [s for s in b.get("security", [{}]) if s not in security]
    op["security"] = security
    return op


def openapi_routes(doc: dict[str, Any] | Callable[[], dict[str, Any]]) -> list[web.RouteDef]:
    """``GET /openapi.json`` serving ``doc`` (or what ``doc()`` returns, built once)."""
    cache: list[dict[str, Any]] = []

    async def serve(request: web.Request) -> web.Response:
        if not cache:
            cache.append(doc() if callable(doc) else doc)
        return web.json_response(cache[0])

    return [web.get(OPENAPI_PATH, serve, allow_head=False)]


def app_operations(app: web.Application) -> set[tuple[str, str]]:
    """``(METHOD, path template)`` of every route in ``app`` (HEAD routes aiohttp adds beside
    a GET count only when the document has HEAD for that path: compare with
    :func:`doc_operations` after dropping them)."""
    ops: set[tuple[str, str]] = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None:
            continue
        ops.add((route.method.upper(), resource.canonical))
    return ops


def doc_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc.get("paths", {}).items()
            for method in item if method in METHODS}


def out_of_sync(app: web.Application, doc: dict[str, Any]) -> tuple[set[tuple[str, str]],
                                                                      set[tuple[str, str]]]:
    """(routes the document lacks, documented operations the app lacks), compared by
    :func:`template_key` (two dialects' routes on one hierarchy are one documented path).
    aiohttp's implicit HEAD beside a GET is not required in the document."""
    routes, documented = app_operations(app), doc_operations(doc)
    implicit_head = {("HEAD", template_key(p)) for m, p in routes if m == "GET"}
    doc_keys, route_keys = _keys(documented), _keys(routes)
    return ({(m, p) for m, p in routes
             if (m, template_key(p)) not in doc_keys | implicit_head},
            {(m, p) for m, p in documented if (m, template_key(p)) not in route_keys})


def _keys(ops: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(m, template_key(p)) for m, p in ops}
