"""The ``cmcc`` dialect's part of the OpenAPI 3 document (routes of :mod:`fivegmc.maap.cmcc`).

XML bodies carry OpenAPI ``xml`` hints: root elements are ``msg:``-prefixed in
``urn:oma:xml:rest:netapi:messaging:1``, children unqualified (the shape CSP code sends).
"""

from __future__ import annotations

from typing import Any

from .cmcc_wire import NS

_XML = "application/xml"
_REF = "#/components/schemas/"


def _root(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": NS, "prefix": "msg"}


def _str(description: str = "", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", **extra}
    if description:
        out["description"] = description
    return out


def _list(item: dict[str, Any], name: str) -> dict[str, Any]:
    return {"type": "array", "items": item, "xml": {"name": name, "wrapped": False}}


def _xml_body(schema: str) -> dict[str, Any]:
    return {"content": {_XML: {"schema": {"$ref": _REF + schema}}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **_xml_body("CmccRequestError")}


_ERRORS = {
    "400": _error("Malformed XML or invalid input: SVC0001 / SVC0002 / SVC0004 / POL0003 / "
                  "POL0001 (every recipient failed at once) / POL0011 (media type)"),
    "401": _error("Date missing or skewed, or Authorization wrong (POL1002)"),
    "403": _error("The appId is another chatbot's (POL1003)"),
    "404": _error("Unknown chatbot, message or file (SVC0002)"),
    "413": _error("Body or file larger than the limit (POL1004)"),
}

_AUTH_HEADERS = [
    {"name": "Date", "in": "header", "required": True,
     "schema": {"type": "string", "example": "Tue, 29 Dec 2020 16:43:50 GMT"},
     "description": "RFC 1123 GMT; at most maap.date_skew_s from the server clock"},
]
_CHATBOT = {"name": "chatbotURI", "in": "path", "required": True,
            "schema": {"type": "string",
                       "example": "sip%3A125200401100001%40botplatform.rcs.chinamobile.com"},
            "description": "Chatbot URI, percent-encoded or raw"}
_MESSAGE = {"name": "messageId", "in": "path", "required": True, "schema": {"type": "string"}}
_SECURITY: list[dict[str, list[str]]] = [{"cmccBasic": []}]


SCHEMAS: dict[str, Any] = {
    "CmccServiceCapability": {
        "type": "object",
        "properties": {"capabilityId": _str("ChatbotSA"),
                       "version": _str('+g.gsma.rcs.botversion="#=1"')},
    },
    "CmccOutboundIMMessage": {
        "type": "object",
        "required": ["contentType", "bodyText"],
        "properties": {
            "contentType": _str("text/plain, application/vnd.gsma.botmessage.v1.0+json, "
                                "application/vnd.gsma.rcs-ft-http+xml, "
                                "application/vnd.gsma.rcspushlocation+xml, multipart/mixed; "
                                "boundary=…; template sends also template / "
                                "dynamic-template"),
            "conversationID": _str(),
            "contributionID": _str(),
            "inReplyToContributionID": _str("ours: the uplink contributionID answered"),
            "trafficType": _str("ours: CPIM maap.Traffic-Type"),
            "templateID": _str("template sends only (required there)"),
            "serviceCapability": {"$ref": _REF + "CmccServiceCapability"},
            "bodyText": _str("text, or CDATA card JSON / FT XML / multipart"),
            "reportRequest": _list(_str(enum=["Delivered", "Displayed", "Failed"]),
                                   "reportRequest"),
        },
    },
    "CmccOutboundMessageRequest": {
        "type": "object",
        "required": ["senderAddress", "outboundIMMessage"],
        "xml": _root("outboundMessageRequest"),
        "properties": {
            "address": _list(_str("tel:+86…"), "address"),
            "destinationAddress": _list(_str("tel:+86…"), "destinationAddress"),
            "senderAddress": _str("the chatbot URI of the path"),
            "outboundIMMessage": {"$ref": _REF + "CmccOutboundIMMessage"},
            "clientCorrelator": _str("echoed; a repeated correlator repeats the same message"),
            "storeSupported": {"type": "boolean", "default": True},
        },
    },
    "CmccException": {
        "type": "object",
        "properties": {"messageId": _str("SVC/POL code"), "exceptionId": _str("same code"),
                       "text": _str(), "variables": _list(_str(), "variables")},
    },
    "CmccRequestError": {
        "type": "object",
        "xml": _root("requestError"),
        "properties": {"serviceException": {"$ref": _REF + "CmccException"},
                       "policyException": {"$ref": _REF + "CmccException"}},
    },
    "CmccDeliveryInfo": {
        "type": "object",
        "properties": {
            "address": _str(), "messageId": _str(),
            "deliveryStatus": _str(enum=["DeliveredToNetwork", "DeliveredToTerminal",
                                         "DisplayedToTerminal", "DeliveryImpossible",
                                         "MessageWaiting"]),
            "description": _str(),
            "policyException": {"$ref": _REF + "CmccException"},
            "serviceException": {"$ref": _REF + "CmccException"},
        },
    },
    "CmccSendResponse": {
        "type": "object",
        "xml": _root("outboundMessageRequest"),
        "properties": {
            "resourceReference": {"type": "object",
                                  "properties": {"resourceURL": _str(format="uri")}},
            "messageId": _str(), "clientCorrelator": _str(),
            "deliveryInfoList": {"type": "object", "properties": {
                "deliveryInfo": _list({"$ref": _REF + "CmccDeliveryInfo"}, "deliveryInfo")}},
        },
    },
    "CmccStatusUpdate": {
        "type": "object",
        "required": ["status"],
        "xml": _root("messageStatusReport"),
        "properties": {"status": _str(enum=["RevokeRequested", "Revoked"]),
                       "address": _list(_str("tel:+86…; none = every recipient"), "address")},
    },
    "CmccStatusResponse": {
        "type": "object",
        "xml": _root("messageStatusReport"),
        "properties": {"messageId": _str(), "status": _str(), "resourceURL": _str()},
    },
    "CmccDeliveryInfoList": {
        "type": "object",
        "xml": _root("deliveryInfoList"),
        "properties": {"deliveryInfo": _list({"$ref": _REF + "CmccDeliveryInfo"},
                                             "deliveryInfo"),
                       "resourceURL": _str()},
    },
    "CmccUpload": {
        "type": "object",
        "required": ["File"],
        "properties": {
            "File": {"type": "string", "format": "binary",
                     "description": "image jpg/png ≤ 2 MB, audio amr/mp3/m4a ≤ 5 MB, video "
                                    "mp4/webm ≤ 10 MB"},
            "Thumbnail": {"type": "string", "format": "binary",
                          "description": "jpg/png ≤ 200 KB"},
        },
    },
}


def _send(summary: str) -> dict[str, Any]:
    return {"post": {
        "summary": summary,
        "tags": ["cmcc"],
        "security": _SECURITY,
        "parameters": [_CHATBOT, *_AUTH_HEADERS],
        "requestBody": {"required": True, **_xml_body("CmccOutboundMessageRequest")},
        "responses": {"201": {"description": "Accepted (deliveryInfoList lists recipients "
                                             "that failed at once)",
                              **_xml_body("CmccSendResponse")},
                      **_ERRORS,
                      "429": _error("Chatbot over its rate limit (POL1001)")},
    }}


def document(paths: dict[str, str]) -> dict[str, Any]:
    """``{"paths", "components"}`` for the cmcc routes at ``paths`` (CmccDialect.paths())."""
    content_headers = [
        *_AUTH_HEADERS,
        {"name": "X-3GPP-Intended-Identity", "in": "header", "required": False,
         "schema": {"type": "string"},
         "description": "chatbot URI; absent: the chatbot whose appId signed the request"},
    ]
    return {
        "paths": {
            paths["group"]: _send("CMCC group / broadcast send"),
            paths["interaction"]: _send("CMCC interactive reply (one destination)"),
            paths["template"]: _send("CMCC template send (templateID; bodyText is the "
                                     "rendered text)"),
            paths["status"]: {"put": {
                "summary": "CMCC revoke an undelivered message",
                "tags": ["cmcc"], "security": _SECURITY,
                "parameters": [_CHATBOT, _MESSAGE, *_AUTH_HEADERS],
                "requestBody": {"required": True, **_xml_body("CmccStatusUpdate")},
                "responses": {"200": {"description": "Revoke requested; the outcome follows "
                                                     "as MessageStatusNotification",
                                      **_xml_body("CmccStatusResponse")}, **_ERRORS},
            }},
            paths["deliveryInfos"]: {"get": {
                "summary": "CMCC per-recipient delivery states",
                "tags": ["cmcc"], "security": _SECURITY,
                "parameters": [_CHATBOT, _MESSAGE, *_AUTH_HEADERS],
                "responses": {"200": {"description": "States",
                                      **_xml_body("CmccDeliveryInfoList")},
                              **{k: v for k, v in _ERRORS.items() if k != "413"}},
            }},
            paths["content"]: {
                "post": {
                    "summary": "CMCC media upload",
                    "tags": ["cmcc"], "security": _SECURITY,
                    "parameters": content_headers,
                    "requestBody": {"required": True, "content": {"multipart/form-data": {
                        "schema": {"$ref": _REF + "CmccUpload"}}}},
                    "responses": {"200": {"description": "FT-over-HTTP descriptor",
                                          "content": {
                                              "application/vnd.gsma.rcs-ft-http+xml": {
                                                  "schema": {"type": "string"}}}},
                                  **_ERRORS},
                },
                "delete": {
                    "summary": "CMCC media delete",
                    "tags": ["cmcc"], "security": _SECURITY,
                    "parameters": [*content_headers,
                                   {"name": "url", "in": "query", "required": False,
                                    "schema": {"type": "string"},
                                    "description": "file URL (or header 'url')"}],
                    "responses": {"204": {"description": "Deleted"},
                                  **{k: v for k, v in _ERRORS.items() if k != "413"}},
                },
            },
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"cmccBasic": {
                "type": "http", "scheme": "basic",
                "description": "Basic base64(appId:sha256hex(sha256hex(password) + Date))"}},
        },
    }
