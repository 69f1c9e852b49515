"""The cmcc (China Mobile OMA-NetAPI XML) dialect over HTTP, against a recording fake core."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from fivegmc.maap import model
from fivegmc.maap.cmcc import CmccDialect
from fivegmc.maap.cmcc_wire import NS

from .cmcc_fake import (
    BOT_ENC,
    BOT_URI,
    NOW,
    OTHER_ENC,
    FakeApi,
    as_api,
    config,
    make_client,
    signed,
)

Client = TestClient[web.Request, web.Application]
GROUP = f"/messaging/group/v1/outbound/{BOT_ENC}/requests"
INTERACTION = f"/messaging/interaction/v1/outbound/{BOT_ENC}/requests"
TEMPLATE = f"/messaging/group/template/outbound/{BOT_ENC}/requests"

CARD = ('{"message":{"generalPurposeCard":{"layout":{"cardOrientation":"VERTICAL"},'
        '"content":{"title":"Hi","description":"A card","suggestions":[{"reply":'
        '{"displayText":"Yes","postback":{"data":"yes"}}}]}}}}')


def send_xml(addresses: list[str] | None = None, *, content_type: str = "text/plain",
             body: str = "hello", sender: str = BOT_URI, extra_im: str = "",
             extra: str = "", tag: str = "destinationAddress") -> bytes:
    addrs = "".join(f"<{tag}>{a}</{tag}>" for a in (addresses or ["tel:+8613800000001"]))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<msg:outboundMessageRequest xmlns:msg="{NS}">{addrs}'
        f"<senderAddress>{sender}</senderAddress>"
        "<outboundIMMessage>"
        f"<contentType>{content_type}</contentType>"
        "<conversationID>conv-1</conversationID><contributionID>contrib-1</contributionID>"
        "<serviceCapability><capabilityId>ChatbotSA</capabilityId>"
        '<version>+g.gsma.rcs.botversion="#=1"</version></serviceCapability>'
        f"<bodyText><![CDATA[{body}]]></bodyText>"
        "<reportRequest>Delivered</reportRequest><reportRequest>Displayed</reportRequest>"
        f"{extra_im}</outboundIMMessage>{extra}"
        "</msg:outboundMessageRequest>"
    ).encode()


def child(root: ET.Element, path: str) -> str:
    el = root.find(path)
    assert el is not None, f"no {path} in {ET.tostring(root)!r}"
    return el.text or ""


def error_of(body: bytes) -> tuple[str, list[str]]:
    root = ET.fromstring(body)
    assert root.tag == f"{{{NS}}}requestError"
    exc = root[0]
    assert exc.tag in ("serviceException", "policyException")
    return child(exc, "messageId"), [v.text or "" for v in exc.findall("variables")]


@pytest.fixture
async def api_client() -> AsyncIterator[tuple[FakeApi, Client, CmccDialect]]:
    api = FakeApi()
    client, dialect = await make_client(api)
    try:
        yield api, client, dialect
    finally:
        await client.close()


async def test_group_send_text(api_client: tuple[FakeApi, Client, CmccDialect]) -> None:
    api, client, _ = api_client
    body = send_xml(["tel:+8613800000001", "tel:+8613800000002", "tel:+8613800000001"],
                    extra="<clientCorrelator>c-1</clientCorrelator>")
    resp = await client.post(GROUP, data=body, headers=signed())
    assert resp.status == 201, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(await resp.read())
    assert root.tag == f"{{{NS}}}outboundMessageRequest"
    mid = child(root, "messageId")
    assert child(root, "clientCorrelator") == "c-1"
    assert resp.headers["Location"].endswith(f"/messaging/v1/outbound/{BOT_ENC}/requests/{mid}")
    (out,) = api.sent
    assert out.recipients == ("+8613800000001", "+8613800000002")
    assert out.payload == model.Payload("text/plain", b"hello")
    assert out.bot_id == "125200401100001" and out.message_id == mid
    assert out.conversation_id == "conv-1" and out.contribution_id == "contrib-1"
    assert out.dispositions == ("positive-delivery", "display")
    assert out.store is True and out.client_correlator == "c-1"
    assert out.fallback.allowed and mid in out.fallback.text
    # the same clientCorrelator repeats the same message (idempotent)
    again = await client.post(GROUP, data=body, headers=signed())
    assert again.status == 201
    assert child(ET.fromstring(await again.read()), "messageId") == mid
    assert len(api.sent) == 1


async def test_raw_uri_path_and_address_forms(
        api_client: tuple[FakeApi, Client, CmccDialect]) -> None:
    api, client, _ = api_client
    body = send_xml(["13800000003"], tag="address",
                    extra="<storeSupported>false</storeSupported>")
    resp = await client.post(f"/messaging/interaction/v1/outbound/{BOT_URI}/requests",
                             data=body, headers=signed())
    assert resp.status == 201, await resp.text()
    assert api.sent[0].recipients == ("+8613800000003",)
    assert api.sent[0].store is False


async def test_interaction_needs_exactly_one(
        api_client: tuple[FakeApi, Client, CmccDialect]) -> None:
    _, client, _ = api_client
    resp = await client.post(INTERACTION, data=send_xml(["tel:+8613800000001",
                                                         "tel:+8613800000002"]),
                             headers=signed())
    assert resp.status == 400
    assert error_of(await resp.read())[0] == "POL0003"
    body = send_xml().replace(b"<destinationAddress>tel:+8613800000001</destinationAddress>", b"")
    resp = await client.post(INTERACTION, data=body, headers=signed())
    assert resp.status == 400
    code, variables = error_of(await resp.read())
    assert code == "SVC0001" and variables[0] == "outboundMessageRequest/destinationAddress"


async def test_card_multipart_and_file(api_client: tuple[FakeApi, Client, CmccDialect]) -> None:
    api, client, _ = api_client
    resp = await client.post(GROUP, data=send_xml(content_type=model.BOTMESSAGE, body=CARD),
                             headers=signed())
    assert resp.status == 201, await resp.text()
    assert api.sent[-1].payload.content_type == model.BOTMESSAGE
    ft = ('<?xml version="1.0" encoding="UTF-8"?>'
          '<file xmlns="urn:gsma:params:xml:ns:rcs:rcs:fthttp"><file-info type="file">'
          '<file-size>3</file-size><content-type>image/png</content-type>'
          '<data url="http://maap.test/files/x" until="2030-01-01T00:00:00Z"/>'
          '</file-info></file>')
    resp = await client.post(GROUP, data=send_xml(content_type=model.FT_HTTP, body=ft),
                             headers=signed())
    assert resp.status == 201, await resp.text()
    assert api.sent[-1].payload.body == ft.encode()
    chips = '{"suggestions":[{"reply":{"displayText":"OK","postback":{"data":"ok"}}}]}'
    multipart = ("--next\nContent-Type: text/plain\n\nPick one\n--next\n"
                 f"Content-Type: {model.BOTSUGGESTION}\n\n{chips}\n--next--")
    resp = await client.post(GROUP, data=send_xml(
        content_type='multipart/mixed; boundary="next"', body=multipart), headers=signed())
    assert resp.status == 201, await resp.text()
    payload = api.sent[-1].payload
    assert payload.content_type == 'multipart/mixed; boundary="next"'
    assert b"\r\n--next\r\nContent-Type: application/vnd.gsma.botsuggestion" in payload.body
    assert b"\n" not in payload.body.replace(b"\r\n", b"")


@pytest.mark.parametrize(("content_type", "body", "where"), [
    (model.BOTMESSAGE, '{"message":{"generalPurposeCard":{"content":{"title":"' + "x" * 201
     + '"}}}}', "title"),
    (model.BOTMESSAGE, "{not json", "JSON"),
    (model.FT_HTTP, "<file/>", "file"),
    ("multipart/mixed", "--next\r\n\r\nx\r\n--next--", "boundary"),
    ('multipart/mixed; boundary="b"', "--b\nContent-Type: image/gif\n\nx\n--b--", "image/gif"),
    ("application/pdf", "x", "application/pdf"),
    ("text/plain", "   ", "empty"),
])
async def test_bad_content_names_the_field(
        api_client: tuple[FakeApi, Client, CmccDialect], content_type: str, body: str,
        where: str) -> None:
    api, client, _ = api_client
    resp = await client.post(GROUP, data=send_xml(content_type=content_type, body=body),
                             headers=signed())
    assert resp.status == 400
    code, variables = error_of(await resp.read())
    assert code in ("SVC0001", "SVC0002")
    assert variables[0].startswith("outboundMessageRequest/outboundIMMessage/")
    assert where in " ".join(variables)
    assert not api.sent


async def test_template_send(api_client: tuple[FakeApi, Client, CmccDialect]) -> None:
    api, client, _ = api_client
    resp = await client.post(TEMPLATE, data=send_xml(content_type="template", body="Hi Li"),
                             headers=signed())
    assert resp.status == 400
    assert error_of(await resp.read())[1][0].endswith("/templateID")
    resp = await client.post(TEMPLATE, data=send_xml(
        content_type="template", body="Hi Li", extra_im="<templateID>tpl-7</templateID>"),
        headers=signed())
    assert resp.status == 201, await resp.text()
    assert api.sent[-1].payload == model.Payload("text/plain;charset=UTF-8", b"Hi Li")


async def test_sender_must_be_the_chatbot(
        api_client: tuple[FakeApi, Client, CmccDialect]) -> None:
    _, client, _ = api_client
    resp = await client.post(GROUP, data=send_xml(sender="sip:999@botplatform.rcs"),
                             headers=signed())
    assert resp.status == 400
    assert error_of(await resp.read())[1][0] == "outboundMessageRequest/senderAddress"


@pytest.mark.parametrize(("headers", "status", "code"), [
    ({}, 401, "POL1002"),
    ({"Date": "yesterday"}, 401, "POL1002"),
    (signed(at=NOW - 3600), 401, "POL1002"),
    (signed(password="wrong"), 401, "POL1002"),
    (signed(app_id="nobody"), 401, "POL1002"),
    ({**signed(), "Authorization": "Basic !!!"}, 401, "POL1002"),
    ({**signed(), "Authorization": "Bearer abc"}, 401, "POL1002"),
    ({**signed(), "Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}, 401,
     "POL1002"),
    (signed("cm-other-app", "other-password"), 403, "POL1003"),
])
async def test_auth(api_client: tuple[FakeApi, Client, CmccDialect], headers: dict[str, str],
                    status: int, code: str) -> None:
    api, client, _ = api_client
    resp = await client.post(GROUP, data=send_xml(), headers=headers)
    assert resp.status == status
    assert error_of(await resp.read())[0] == code
    assert not api.sent


async def test_other_bot_with_its_own_credentials(
        api_client: tuple[FakeApi, Client, CmccDialect]) -> None:
    api, client, _ = api_client
    other = "sip:125200401100002@botplatform.rcs.chinamobile.com"
    resp = await client.post(f"/messaging/group/v1/outbound/{OTHER_ENC}/requests",
                             data=send_xml(sender=other),
                             headers=signed("cm-other-app", "other-password"))
    assert resp.status == 201, await resp.text()
    assert api.sent[0].bot_id == "125200401100002"


async def test_unknown_or_foreign_chatbot_is_404(
        api_client: tuple[FakeApi, Client, CmccDialect]) -> None:
    _, client, _ = api_client
    for uri in ("sip%3A1%40nowhere", "labbot",
                "sip%3Alabbot%40botplatform.ims.mnc000.mcc460.3gppnetwork.org"):
        resp = await client.post(f"/messaging/group/v1/outbound/{uri}/requests",
                                 data=send_xml(), headers=signed())
        assert resp.status == 404, uri
        assert error_of(await resp.read())[1][0] == "chatbotURI"


async def test_rate_limit_is_per_chatbot(
        api_client: tuple[FakeApi, Client, CmccDialect]) -> None:
    api, client, _ = api_client
    api.blocked.add("125200401100001")
    resp = await client.post(GROUP, data=send_xml(), headers=signed())
    assert resp.status == 429
    assert error_of(await resp.read())[0] == "POL1001"
    other = "sip:125200401100002@botplatform.rcs.chinamobile.com"
    resp = await client.post(f"/messaging/group/v1/outbound/{OTHER_ENC}/requests",
                             data=send_xml(sender=other),
                             headers=signed("cm-other-app", "other-password"))
    assert resp.status == 201


async def test_body_limit_413() -> None:
    api = FakeApi(config(max_body_bytes=2000))
    client, _ = await make_client(api)
    try:
        resp = await client.post(GROUP, data=send_xml(body="x" * 3000), headers=signed())
        assert resp.status == 413
        assert error_of(await resp.read())[0] == "POL1004"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
            for _ in range(10):
                yield b"<" * 500
        resp = await client.post(GROUP, data=chunks(), headers=signed())
        assert resp.status == 413
    finally:
        await client.close()


@pytest.mark.parametrize(("body", "code", "path"), [
    (b"<not xml", "SVC0001", "outboundMessageRequest"),
    (b"\xff\xfe", "SVC0001", "outboundMessageRequest"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "SVC0001",
     "outboundMessageRequest"),
    (f'<msg:other xmlns:msg="{NS}"/>'.encode(), "SVC0001", "outboundMessageRequest"),
    (f'<msg:outboundMessageRequest xmlns:msg="{NS}"><address>tel:+8613800000001</address>'
     "</msg:outboundMessageRequest>".encode(), "SVC0001",
     "outboundMessageRequest/senderAddress"),
    (send_xml(extra_im="<reportRequest>Sometimes</reportRequest>"), "SVC0002",
     "outboundMessageRequest/outboundIMMessage/reportRequest"),
    (send_xml(extra="<storeSupported>maybe</storeSupported>"), "SVC0002",
     "outboundMessageRequest/storeSupported"),
    (send_xml(extra_im="<contentType>text/plain</contentType>"), "SVC0002",
     "outboundMessageRequest/outboundIMMessage/contentType"),
    (send_xml(["mailto:x@y"]), "SVC0004", "outboundMessageRequest/destinationAddress"),
    (send_xml(extra_im="<trafficType>gambling</trafficType>"), "SVC0002",
     "outboundMessageRequest/outboundIMMessage/trafficType"),
])
async def test_malformed_is_400_naming_the_path(
        api_client: tuple[FakeApi, Client, CmccDialect], body: bytes, code: str,
        path: str) -> None:
    _, client, _ = api_client
    resp = await client.post(GROUP, data=body, headers=signed())
    assert resp.status == 400
    got_code, variables = error_of(await resp.read())
    assert (got_code, variables[0]) == (code, path)


async def test_partial_and_full_group_failure(
        api_client: tuple[FakeApi, Client, CmccDialect]) -> None:
    api, client, _ = api_client
    api.fail.add("+8613800000009")
    resp = await client.post(GROUP, data=send_xml(
        ["tel:+8613800000001", "tel:+8613800000009", "tel:not-a-number"]), headers=signed())
    assert resp.status == 201
    root = ET.fromstring(await resp.read())
    infos = root.findall("deliveryInfoList/deliveryInfo")
    assert [child(i, "address") for i in infos] == ["tel:not-a-number", "tel:+8613800000009"]
    assert {child(i, "deliveryStatus") for i in infos} == {"DeliveryImpossible"}
    assert child(infos[1], "policyException/messageId") == "POL0001"
    assert child(infos[1], "policyException/variables") == "TERMINAL_NOT_FOUND"
    assert child(infos[0], "serviceException/messageId") == "SVC0002"
    assert api.sent[-1].recipients == ("+8613800000001", "+8613800000009")
    resp = await client.post(GROUP, data=send_xml(["tel:+8613800000009"]), headers=signed())
    assert resp.status == 400
    code, variables = error_of(await resp.read())
    assert code == "POL0001" and variables == ["TERMINAL_NOT_FOUND", "tel:+8613800000009"]


async def test_revoke_and_delivery_infos(
        api_client: tuple[FakeApi, Client, CmccDialect]) -> None:
    api, client, _ = api_client
    resp = await client.post(GROUP, data=send_xml(["tel:+8613800000001"]), headers=signed())
    mid = child(ET.fromstring(await resp.read()), "messageId")
    status_url = f"/messaging/v1/outbound/{BOT_ENC}/requests/{mid}/status"
    revoke = (f'<msg:messageStatusReport xmlns:msg="{NS}"><status>RevokeRequested</status>'
              "<address>tel:+8613800000001</address></msg:messageStatusReport>").encode()
    resp = await client.put(status_url, data=revoke, headers=signed())
    assert resp.status == 200, await resp.text()
    root = ET.fromstring(await resp.read())
    assert child(root, "status") == "RevokeRequested" and child(root, "messageId") == mid
    assert api.revoked == [("125200401100001", mid, ("+8613800000001",))]
    resp = await client.put(f"/messaging/v1/outbound/{BOT_ENC}/requests/nope/status",
                            data=revoke, headers=signed())
    assert resp.status == 404
    bad = revoke.replace(b"RevokeRequested", b"Delivered")
    resp = await client.put(status_url, data=bad, headers=signed())
    assert resp.status == 400
    assert error_of(await resp.read())[1][0] == "messageStatusReport/status"
    resp = await client.put(status_url, data=revoke,
                            headers=signed("cm-other-app", "other-password"))
    assert resp.status == 403
    resp = await client.get(f"/messaging/v1/outbound/{BOT_ENC}/requests/{mid}/deliveryInfos",
                            headers=signed())
    assert resp.status == 200
    root = ET.fromstring(await resp.read())
    assert root.tag == f"{{{NS}}}deliveryInfoList"
    assert child(root, "deliveryInfo/deliveryStatus") == "MessageWaiting"


def png(size: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\0" * max(0, size - 8)


def upload_form(file: bytes | None, ctype: str = "image/png", name: str = "a.png",
                thumb: bytes | None = None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    if file is not None:
        form.add_field("File", file, filename=name, content_type=ctype)
    if thumb is not None:
        form.add_field("Thumbnail", thumb, filename="t.jpg", content_type="image/jpeg")
    return form


def content_headers(app_id: str = "cm-lab-app", password: str = "lab-password-cm",
                    ) -> dict[str, str]:
    headers = signed(app_id, password)
    del headers["Content-Type"]
    return {**headers, "X-3GPP-Intended-Identity": BOT_URI, "User-Agent": f"SP/{BOT_URI}",
            "Terminal-type": "Chatbot"}


async def test_upload_and_delete(api_client: tuple[FakeApi, Client, CmccDialect]) -> None:
    api, client, _ = api_client
    resp = await client.post("/Content", data=upload_form(png(1000), thumb=b"\xff\xd8" * 100),
                             headers=content_headers())
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == model.FT_HTTP
    root = ET.fromstring(await resp.read())
    ns = "{urn:gsma:params:xml:ns:rcs:rcs:fthttp}"
    infos = {i.get("type"): i for i in root.findall(f"{ns}file-info")}
    assert set(infos) == {"file", "thumbnail"}
    data = infos["file"].find(f"{ns}data")
    assert data is not None and data.get("until")
    url = data.get("url") or ""
    rec = api.files.by_url(url)
    assert rec is not None and rec.size == 1000 and rec.content_type == "image/png"
    assert rec.bot_id == "125200401100001"
    thumb_data = infos["thumbnail"].find(f"{ns}data")
    assert thumb_data is not None
    thumb = api.files.by_url(thumb_data.get("url") or "")
    assert thumb is not None and thumb.thumbnail_of == rec.file_id
    # another chatbot cannot delete it
    other = {**signed("cm-other-app", "other-password"),
             "X-3GPP-Intended-Identity": "sip:125200401100002@botplatform.rcs.chinamobile.com"}
    del other["Content-Type"]
    resp = await client.delete("/Content", params={"url": url}, headers=other)
    assert resp.status == 403
    resp = await client.delete("/Content", headers={**content_headers(), "url": url})
    assert resp.status == 204
    assert api.files.by_url(url) is None
    resp = await client.delete("/Content", params={"url": url}, headers=content_headers())
    assert resp.status == 404
    resp = await client.delete("/Content", headers=content_headers())
    assert resp.status == 400


@pytest.mark.parametrize(("form", "status", "code"), [
    (upload_form(png(2 * 1024 * 1024 + 1)), 413, "POL1004"),
    (upload_form(png(100), thumb=b"\xff" * (200 * 1024 + 1)), 413, "POL1004"),
    (upload_form(b"GIF89a", "image/gif", "a.gif"), 400, "POL0011"),
    (upload_form(b"x", "application/octet-stream", "a.exe"), 400, "POL0011"),
    (upload_form(None, thumb=b"\xff\xd8"), 400, "SVC0001"),
])
async def test_upload_limits(api_client: tuple[FakeApi, Client, CmccDialect],
                             form: aiohttp.FormData, status: int, code: str) -> None:
    api, client, _ = api_client
    resp = await client.post("/Content", data=form, headers=content_headers())
    assert resp.status == status
    assert error_of(await resp.read())[0] == code
    assert not api.files.records


async def test_upload_by_extension_and_auth(
        api_client: tuple[FakeApi, Client, CmccDialect]) -> None:
    api, client, _ = api_client
    resp = await client.post("/Content", data=upload_form(b"#!AMR\n", "", "v.amr"),
                             headers=content_headers())
    assert resp.status == 200, await resp.text()
    (rec,) = api.files.records.values()
    assert rec.content_type == "audio/amr"
    resp = await client.post("/Content", data=upload_form(png(10)),
                             headers=content_headers(password="bad"))
    assert resp.status == 401
    # another chatbot's credentials for this chatbot's identity
    resp = await client.post("/Content", data=upload_form(png(10)),
                             headers=content_headers(app_id="cm-other-app",
                                                     password="other-password"))
    assert resp.status == 403
    resp = await client.post("/Content", data=b"plain", headers=content_headers())
    assert resp.status == 400
    resp = await client.post("/Content", data=b"--x\r\ngarbage",
                             headers={**content_headers(),
                                      "Content-Type": "multipart/form-data; boundary=x"})
    assert resp.status == 400


def test_openapi_covers_every_route() -> None:
    api = FakeApi(config(server_root="/cm"))
    dialect = CmccDialect(as_api(api))
    app = web.Application()
    dialect.add_routes(app)
    doc = dialect.openapi()
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.method != "HEAD"}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented
    for p in doc["paths"]:
        assert p.startswith("/cm/")
    refs = {v for v in _walk(doc) if isinstance(v, str) and v.startswith("#/components/")}
    for ref in refs:
        assert ref.rsplit("/", 1)[-1] in doc["components"]["schemas"], ref


def _walk(value: object) -> list[object]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _walk(v)]
    if isinstance(value, list):
        return [x for v in value for x in _walk(v)]
    return [value]
