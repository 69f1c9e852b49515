"""The ``ctcu`` dialect's part of the OpenAPI 3.0.3 document (routes of
:mod:`fivegmc.maap.ctcu`; spec V1.0.4, protocols.md §10)."""

from __future__ import annotations

from typing import Any

from .ctcu_wire import CODES, IM_FORMATS, REPORTS, TRAFFIC_TYPES

_JSON = "application/json"
_REF = "#/components/schemas/"
_SECURITY: list[dict[str, list[str]]] = [{"ctcuAccessToken": []}]


def _str(description: str = "", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", **extra}
    if description:
        out["description"] = description
    return out


def _json(schema: str) -> dict[str, Any]:
    return {"content": {_JSON: {"schema": {"$ref": _REF + schema}}}}


def _err(description: str) -> dict[str, Any]:
    return {"description": description, **_json("CtcuError")}


_ERRORS: dict[str, Any] = {
    "400": _err("Unreadable body: 47001 JSON syntax, 20002 wrong shape (with the field "
                "path), 44002 empty body, 41002/41004 appId/appKey missing"),
    "401": _err("41001 missing accessToken, 40001 invalid accessToken (or appKey), 42001 "
                "accessToken expired"),
    "403": _err("48001 the accessToken belongs to another chatbot"),
    "404": _err("20002 unknown chatbot"),
    "413": _err("20002 body above maap.max_body_bytes or more than maap.max_destinations "
                "destinations; 40006 file above its limit"),
    "429": _err("30003 over the chatbot's per-second send limit; 45001 too many accessToken "
                "calls today"),
    "500": _err("-2 internal error"),
}

_CHATBOT = {"name": "chatbotId", "in": "path", "required": True,
            "schema": {"type": "string", "example": "106598858810000001"},
            "description": "Chatbot id, or its SIP URI raw or percent-encoded "
                           "(sip%3A106598858810000001%40botplatform.rcs.vnet.cn)"}
_DATE = {"name": "Date", "in": "header", "required": False,
         "schema": {"type": "string", "example": "Tue, 15 Nov 2019 08:12:31 GMT"},
         "description": "RFC 1123 GMT (accepted, not checked)"}
_URL = {"name": "url", "in": "header", "required": True, "schema": {"type": "string"},
        "description": "The media URL medias/upload returned"}

SCHEMAS: dict[str, Any] = {
    "CtcuError": {
        "type": "object", "required": ["errorCode"],
        "properties": {
            "errorCode": {"type": "integer", "enum": sorted(CODES),
                          "description": "; ".join(f"{k} {v}" for k, v in sorted(CODES.items()))},
            "errorMessage": _str("What is wrong (names the field)"),
        },
    },
    "CtcuTokenRequest": {
        "type": "object", "required": ["appId", "appKey"],
        "properties": {"appId": _str(), "appKey": _str()},
    },
    "CtcuTokenResponse": {
        "type": "object", "required": ["errorCode"],
        "properties": {
            "accessToken": _str("Use as 'Authorization: accessToken <token>'"),
            "expires": {"type": "integer", "description": "Lifetime in seconds"},
            "url": _str("Base URL of this chatbot's API"),
            "errorCode": {"type": "integer"}, "errorMessage": _str(),
        },
    },
    "CtcuContentItem": {
        "type": "object", "required": ["contentType", "contentText"],
        "properties": {
            "contentType": _str("text/plain, application/vnd.gsma.botmessage.v1.0+json, "
                                "application/vnd.gsma.botsuggestion.v1.0+json, "
                                "application/vnd.gsma.rcs-ft-http (contentText: "
                                "[{type: file|thumbnail, url, fileName?, contentType?, "
                                "fileSize?, until?}]), application/vnd.gsma.rcspushlocation+xml"),
            "contentEncoding": _str("utf8 (default) or base64", enum=["utf8", "base64"]),
            "contentText": {"description": "A string (text, base64, XML) or a JSON object / "
                                           "array (card, chip list, file list)"},
        },
    },
    "CtcuServiceCapability": {
        "type": "object",
        "properties": {"capabilityId": _str("ChatbotSA"),
                       "version": _str('+g.gsma.rcs.botversion="#=1"')},
    },
    "CtcuSendRequest": {
        "type": "object", "required": ["messageList", "destinationAddress"],
        "properties": {
            "messageId": _str("Generated (UUID) when absent; a repeated id is not sent again"),
            "messageList": {"type": "array", "items": {"$ref": _REF + "CtcuContentItem"},
                            "description": "One content entry, optionally plus one "
                                           "botsuggestion entry"},
            "destinationAddress": {"type": "array", "items": _str("tel:+86…"),
                                   "description": "Up to maap.max_destinations numbers"},
            "senderAddress": _str("The chatbot URI (30008 otherwise)"),
            "conversationId": _str(), "contributionId": _str(),
            "serviceCapability": {"type": "array",
                                  "items": {"$ref": _REF + "CtcuServiceCapability"}},
            "trafficType": _str(enum=list(TRAFFIC_TYPES)),
            "smsSupported": {"type": "boolean", "default": False},
            "smsContent": _str("Fallback SMS text; required when smsSupported"),
            "imFormat": _str(enum=list(IM_FORMATS)),
            "inReplyTo": _str("contributionId of the uplink message answered"),
            "reportRequest": {"type": "array", "items": _str(enum=list(REPORTS))},
            "storeSupported": {"type": "boolean", "default": True},
            "clientCorrelator": _str(),
        },
    },
    "CtcuSendResponse": {
        "type": "object", "required": ["errorCode"],
        "properties": {
            "errorCode": {"type": "integer"}, "errorMessage": _str(),
            "messageId": _str(), "conversationId": _str(), "contributionId": _str(),
            "clientCorrelator": _str(),
        },
    },
    "CtcuRevokeRequest": {
        "type": "object", "required": ["messageId", "status"],
        "properties": {
            "messageId": _str(), "status": _str(enum=["RevokeRequested"]),
            "destinationAddress": {"type": "array", "items": _str("tel:+86…")},
        },
    },
    "CtcuRevokeResponse": {
        "type": "object", "required": ["errorCode"],
        "properties": {
            "errorCode": {"type": "integer"}, "errorMessage": _str(), "messageId": _str(),
            "conversationId": {"description": "always null"},
            "contributionId": {"description": "always null"},
        },
    },
    "CtcuFileInfo": {
        "type": "object",
        "properties": {
            "url": _str(), "fileName": _str(), "contentType": _str(),
            "fileSize": {"type": "integer"}, "until": _str("temp files only", format="date-time"),
            "fileHashAlgorithm": _str(), "fileHashValue": _str(),
        },
    },
    "CtcuUploadResponse": {
        "type": "object", "required": ["errorCode"],
        "properties": {
            "fileInfo": {"type": "array", "items": {"$ref": _REF + "CtcuFileInfo"}},
            "fileCount": {"type": "integer"}, "totalCount": {"type": "integer"},
            "errorCode": {"type": "integer"}, "errorMessage": _str(),
        },
    },
    "CtcuDeleteResponse": {
        "type": "object", "required": ["errorCode"],
        "properties": {
            "deleteMode": _str(enum=["perm", "temp"]),
            "fileCount": {"type": "integer"}, "totalCount": {"type": "integer"},
            "errorCode": {"type": "integer"}, "errorMessage": _str(),
        },
    },
    "CtcuUpload": {
        "type": "object", "required": ["file"],
        "properties": {
            "file": _str("Image ≤ 2 MB JPG/PNG, audio ≤ 5 MB AMR/MP3/M4A, video ≤ 10 MB "
                         "MP4/WEBM", format="binary"),
            "thumbnail": _str("JPG/PNG ≤ 200 KB", format="binary"),
        },
    },
}


def _responses(ok: str, codes: tuple[str, ...], ok_text: str) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": ok_text, **_json(ok)}}
    out.update({c: _ERRORS[c] for c in codes})
    return out


def _op(op_id: str, summary: str, *, body: dict[str, Any] | None = None,
        responses: dict[str, Any], params: list[dict[str, Any]] | None = None,
        secure: bool = True) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "tags": ["ctcu"], "summary": summary,
                          "parameters": [_CHATBOT, _DATE, *(params or [])],
                          "responses": responses}
    if body is not None:
        op["requestBody"] = body
    if secure:
        op["security"] = _SECURITY
    return op


def document(paths: dict[str, str], fixed_messages: list[str]) -> dict[str, Any]:
    """``paths``: the route templates (:meth:`fivegmc.maap.ctcu.CtcuDialect.paths`);
    ``fixed_messages``: the per-chatbot plain ``…/messages`` paths."""
    all_errors = ("400", "401", "403", "404", "413", "500")
    def body(schema: str) -> dict[str, Any]:
        return {"required": True, "content": {_JSON: {"schema": {"$ref": _REF + schema}}}}

    ops: dict[str, Any] = {
        paths["accessToken"]: {"post": _op(
            "ctcuAccessToken", "Get an accessToken (invalidates the previous one)",
            body=body("CtcuTokenRequest"), secure=False,
            responses=_responses("CtcuTokenResponse", ("400", "401", "404", "413", "429",
                                                       "500"),
                                 "The token, or errorCode != 0"))},
        paths["messages"]: {"post": _op(
            "ctcuSendMessage", "Send a message to one or many users",
            body=body("CtcuSendRequest"),
            responses=_responses("CtcuSendResponse", (*all_errors, "429"),
                                 "Accepted (errorCode 0) or refused (errorCode != 0: 20002, "
                                 "30008, 40005-40008, 40016-40022, 40040, 48001)"))},
        paths["revoke"]: {"post": _op(
            "ctcuRevoke", "Revoke a message not yet delivered (outcome pushed as "
                          "revokeOk / revokeFail)",
            body=body("CtcuRevokeRequest"),
            responses=_responses("CtcuRevokeResponse", all_errors,
                                 "Revoke started (errorCode 0) or refused (20002)"))},
        paths["upload"]: {"post": _op(
            "ctcuUploadMedia", "Upload a media file (and its thumbnail)",
            body={"required": True, "content": {"multipart/form-data": {
                "schema": {"$ref": _REF + "CtcuUpload"}}}},
            params=[{"name": "uploadMode", "in": "header", "required": False,
                     "schema": {"type": "string", "enum": ["perm", "temp"]},
                     "description": "perm (default, lives maap.file_ttl_s) or temp"}],
            responses=_responses("CtcuUploadResponse", all_errors,
                                 "Stored (errorCode 0) or refused (40005 type, 44001 "
                                 "empty)"))},
        paths["download"]: {"get": _op(
            "ctcuDownloadMedia", "Download an uploaded media file",
            params=[_URL, {"name": "Range", "in": "header", "required": False,
                           "schema": {"type": "string", "example": "bytes=0-1023"}}],
            responses={
                "200": {"description": "The file",
                        "content": {"*/*": {"schema": {"type": "string",
                                                       "format": "binary"}}}},
                "206": {"description": "The requested range",
                        "content": {"*/*": {"schema": {"type": "string",
                                                       "format": "binary"}}}},
                "400": _err("41006 url header missing"),
                "401": _ERRORS["401"], "403": _ERRORS["403"],
                "404": _err("40007 no media of this chatbot at url; 20002 unknown chatbot"),
                "410": _err("40022 the file has expired"),
                "416": {"description": "Range not satisfiable"},
                "500": _ERRORS["500"],
            })},
        paths["delete"]: {"delete": _op(
            "ctcuDeleteMedia", "Delete an uploaded media file",
            params=[_URL],
            responses=_responses("CtcuDeleteResponse", ("400", "401", "403", "404", "500"),
                                 "Deleted (errorCode 0) or 40007 (no such media)"))},
    }
    send = ops[paths["messages"]]["post"]
    for i, path in enumerate(fixed_messages):
        op = {**send, "operationId": f"ctcuSendMessage{i + 1}",
              "parameters": [p for p in send["parameters"] if p["in"] != "path"],
              "summary": send["summary"] + " (this chatbot's plain path)"}
        op["responses"] = {k: v for k, v in send["responses"].items() if k != "404"}
        ops[path] = {"post": op}
    return {
        "paths": ops,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"ctcuAccessToken": {
                "type": "apiKey", "in": "header", "name": "Authorization",
                "description": "accessToken <token> (a bare <token> is accepted too)"}},
        },
    }
