"""The GSMA dialect's part of the OpenAPI 3 document (``GsmaDialect.openapi``): every route
``fivegmc.maap.gsma`` adds, with request/response schemas and the error statuses it answers."""

from __future__ import annotations

from typing import Any

# -- OpenAPI --------------------------------------------------------------------------------------


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Malformed request; reason.text names the JSON path",
            401: "Missing, invalid or expired bearer token", 403: "Token of another chatbot",
            404: "Unknown chatbot, message, file or user (not a 5G-message user)",
            409: "Message already reached the user (not cancellable)",
            410: "File expired", 413: "Body or file too large",
            429: "Chatbot over its rate limit"}
    return {str(c): _json(_ref("GsmaError"), text[c]) for c in codes}


def openapi_part(root: str = "", max_text: int = 3072) -> dict[str, Any]:
    """The GSMA dialect's paths and schemas (``Dialect.openapi``)."""
    base = f"{root}/bot/v1/{{botId}}"
    bot = {"name": "botId", "in": "path", "required": True, "schema": {"type": "string"}}
    msg = {"name": "msgId", "in": "path", "required": True, "schema": {"type": "string"}}
    fid = {"name": "fileId", "in": "path", "required": True, "schema": {"type": "string"}}
    sec: list[dict[str, list[str]]] = [{"gsmaBearer": []}]
    tags = ["gsma"]
    str_ = {"type": "string"}
    int_ = {"type": "integer", "minimum": 0}
    obj = {"type": "object"}
    contact = {"type": "object", "properties": {"userContact": str_, "chatId": str_}}
    file_msg = {"type": "object", "required": ["fileUrl"], "properties": {
        k: (int_ if k.endswith("Size") else str_) for k in (
            "fileUrl", "fileName", "fileMIMEType", "fileSize", "thumbnailUrl",
            "thumbnailFileName", "thumbnailMIMEType", "thumbnailFileSize")}}
    audio_msg = {"type": "object", "required": ["fileUrl"], "properties": {
        "fileUrl": str_, "fileName": str_, "fileMIMEType": str_, "fileSize": int_,
        "playingLength": int_}}
    geo = {"type": "object", "required": ["pos"], "properties": {
        "pos": {"type": "string", "description": "latitude longitude"}, "label": str_,
        "timestamp": {"type": "string", "format": "date-time"},
        "expiry": {"type": "string", "format": "date-time"},
        "timeOffset": {"type": "integer"}, "radius": {"type": "number"}}}
    rcs_message = {"type": "object", "description": "Exactly one content member "
                   "(textMessage, fileMessage, audioMessage, geolocationPushMessage, "
                   "richcardMessage, isTyping), optionally with suggestedChipList",
                   "properties": {
                       "msgId": str_, "textMessage": {"type": "string", "maxLength": max_text},
                       "fileMessage": file_msg, "audioMessage": audio_msg,
                       "geolocationPushMessage": geo,
                       "richcardMessage": {"type": "object", "description":
                                           "botmessage {message: {generalPurposeCard | "
                                           "generalPurposeCardCarousel}}"},
                       "suggestedChipList": {"type": "object", "properties": {
                           "suggestions": {"type": "array", "minItems": 1, "maxItems": 11,
                                           "items": obj}}},
                       "isTyping": {"type": "string", "enum": ["active", "idle"]},
                       "trafficType": str_, "conversationId": str_, "contributionId": str_,
                       "inReplyToContributionId": str_}}
    status_token = {"type": "string", "enum": ["pending", "sent", "delivered", "displayed",
                                               "failed", "cancelled"]}
    status_body = {"type": "object", "required": ["RCSMessage"], "properties": {
        "RCSMessage": {"type": "object", "required": ["msgId", "status"], "properties": {
            "msgId": str_, "status": status_token,
            "timestamp": {"type": "string", "format": "date-time"},
            "failureReason": {"type": "object", "properties": {"code": {"type": "integer"},
                                                               "text": str_}}}},
        "messageContact": contact}}
    file_info = {"type": "object", "required": ["fileId", "fileUrl"], "properties": {
        "fileId": str_, "fileUrl": str_, "fileName": str_, "fileMIMEType": str_,
        "fileSize": int_, "until": {"type": "string", "format": "date-time"},
        "thumbnailFileId": str_, "thumbnailUrl": str_, "thumbnailFileName": str_,
        "thumbnailMIMEType": str_, "thumbnailFileSize": int_}}
    token_ok = {"type": "object", "required": ["access_token", "token_type", "expires_in"],
                "properties": {"access_token": str_, "token_type": str_,
                               "expires_in": {"type": "integer"}, "scope": str_,
                               "refresh_token": str_}}
    oauth_error = {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string", "enum": ["invalid_request", "invalid_client",
                                             "invalid_grant", "unsupported_grant_type",
                                             "invalid_scope"]},
        "error_description": str_}}
    paths: dict[str, Any] = {
        f"{root}/oauth2/v1/token": {"post": {
            "operationId": "gsmaToken", "tags": tags,
            "summary": "OAuth2 client-credentials token (RFC 6749 §4.4)",
            "security": [{"gsmaClientBasic": []}, {}],
            "requestBody": {"required": True, "content": {
                "application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "required": ["grant_type"], "properties": {
                        "grant_type": {"type": "string",
                                       "enum": ["client_credentials", "refresh_token"]},
                        "scope": str_, "client_id": str_, "client_secret": str_,
                        "refresh_token": str_}}}}},
            "responses": {"200": _json(_ref("GsmaToken"), "Access token"),
                          "400": _json(_ref("GsmaOAuthError"), "RFC 6749 §5.2 error"),
                          "401": _json(_ref("GsmaOAuthError"), "invalid_client"),
                          "413": _json(_ref("GsmaError"), "Body too large")}}},
        f"{base}/messages": {"post": {
            "operationId": "gsmaSendMessage", "tags": tags, "security": sec,
            "summary": "Send an RCSMessage (or isTyping) to a user",
            "parameters": [bot],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref("GsmaSendRequest")}}},
            "responses": {"202": _json(status_body, "Accepted (also for a repeated msgId)"),
                          **_errors(400, 401, 403, 404, 410, 413, 429)}}},
        f"{base}/messages/{{msgId}}/status": {
            "get": {"operationId": "gsmaGetStatus", "tags": tags, "security": sec,
                    "summary": "A sent message's status", "parameters": [bot, msg],
                    "responses": {"200": _json(status_body, "Status"),
                                  **_errors(401, 403, 404)}},
            "put": {"operationId": "gsmaPutStatus", "tags": tags, "security": sec,
                    "summary": "cancelled: revoke an undelivered message; displayed: read "
                               "receipt for a user's message", "parameters": [bot, msg],
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"type": "object", "required": ["RCSMessage"],
                                   "properties": {"RCSMessage": {
                                       "type": "object", "required": ["status"],
                                       "properties": {"status": {
                                           "type": "string",
                                           "enum": ["cancelled", "displayed"]}}},
                                       "messageContact": contact}}}}},
                    "responses": {"200": _json(status_body, "Done"),
                                  **_errors(400, 401, 403, 404, 409, 413)}}},
        f"{base}/contactCapabilities": {"get": {
            "operationId": "gsmaContactCapabilities", "tags": tags, "security": sec,
            "summary": "A user's capabilities", "parameters": [
                bot, {"name": "userContact", "in": "query", "schema": str_},
                {"name": "chatId", "in": "query", "schema": str_}],
            "responses": {"200": _json({"type": "object", "properties": {
                "messageContact": contact, "online": {"type": "boolean"},
                "chatbotCommunication": {"type": "boolean"},
                "features": {"type": "array", "items": str_},
                "featureTags": {"type": "array", "items": str_}}}, "Capabilities"),
                **_errors(400, 401, 403, 404)}}},
        f"{base}/files": {"post": {
            "operationId": "gsmaUploadFile", "tags": tags, "security": sec,
            "summary": "Upload a file (and thumbnail)", "parameters": [bot],
            "requestBody": {"required": True, "content": {"multipart/form-data": {
                "schema": {"type": "object", "required": ["fileContent"], "properties": {
                    "fileContent": {"type": "string", "format": "binary"},
                    "thumbnail": {"type": "string", "format": "binary"},
                    "fileType": str_, "until": {"type": "string", "format": "date-time"}}}}}},
            "responses": {"201": _json(_ref("GsmaFile"), "Stored"),
                          **_errors(400, 401, 403, 404, 413)}}},
        f"{base}/files/{{fileId}}": {
            "get": {"operationId": "gsmaGetFile", "tags": tags, "security": sec,
                    "summary": "An uploaded file's info", "parameters": [bot, fid],
                    "responses": {"200": _json(_ref("GsmaFile"), "File info"),
                                  **_errors(401, 403, 404, 410)}},
            "delete": {"operationId": "gsmaDeleteFile", "tags": tags, "security": sec,
                       "summary": "Delete an uploaded file", "parameters": [bot, fid],
                       "responses": {"204": {"description": "Deleted"},
                                     **_errors(401, 403, 404)}}},
    }
    schemas = {
        "GsmaError": {"type": "object", "required": ["reason"], "properties": {
            "reason": {"type": "object", "required": ["text"], "properties": {"text": str_}}}},
        "GsmaOAuthError": oauth_error,
        "GsmaToken": token_ok,
        "GsmaFile": file_info,
        "GsmaSendRequest": {"type": "object", "required": ["RCSMessage", "messageContact"],
                            "properties": {
                                "RCSMessage": rcs_message, "messageContact": contact,
                                # extension: per-message SMS fallback, as in the China JSON API
                                "smsSupported": {"type": "boolean"},
                                "smsContent": {"type": "string", "maxLength": 2000}}},
    }
    security = {"gsmaBearer": {"type": "http", "scheme": "bearer"},
                "gsmaClientBasic": {"type": "http", "scheme": "basic"}}
    return {"paths": paths, "components": {"schemas": schemas, "securitySchemes": security}}
