"""The cmcc dialect's pure parts: XML codec, auth digest, notification rendering, and hostile
input (hypothesis) over the codec and over HTTP (never a 5xx, always an OMA requestError)."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import xml.etree.ElementTree as ET
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fivegmc.maap import cmcc_wire as w
from fivegmc.maap.cmcc import CmccDialect
from fivegmc.maap.model import (
    FailureCode,
    FileStatusEvent,
    InboundEvent,
    NewUserEvent,
    Payload,
    Status,
    StatusEvent,
    TypingEvent,
)

from .cmcc_fake import BOT_ENC, BOT_URI, NOW, FakeApi, as_api, make_client, signed
from .test_maap_cmcc import send_xml

NSQ = f"{{{w.NS}}}"


def test_authorization_matches_the_cmt_recipe() -> None:
    date = "Tue, 29 Dec 2020 16:43:50 GMT"
    token = hashlib.sha256(b"pw").hexdigest()
    digest = hashlib.sha256((token + date).encode()).hexdigest()
    expected = "Basic " + base64.b64encode(f"app:{digest}".encode()).decode()
    assert w.authorization("app", "pw", date) == expected
    assert w.parse_authorization(expected) == ("app", digest)
    assert w.check_digest("pw", date, digest.upper())
    assert not w.check_digest("pw", date + " ", digest)
    assert w.parse_date(date) == 1609260230.0


@pytest.mark.parametrize(("address", "number"), [
    ("tel:+8613800000001", "+8613800000001"),
    (" tel:+8613800000001;phone-context=x ", "+8613800000001"),
    ("sip:+8613800000001@ims.example;user=phone", "+8613800000001"),
    ("+8613800000001", "+8613800000001"),
    ("13800000001", "+8613800000001"),
    ("tel:13800000001", "+8613800000001"),
    ("tel:abc", None), ("", None), ("mailto:a@b", None), ("tel:+0123456", None),
])
def test_normalize_address(address: str, number: str | None) -> None:
    assert w.normalize_address(address) == number


def test_same_uri() -> None:
    assert w.same_uri(BOT_URI, "<SIP:125200401100001@BotPlatform.rcs.chinamobile.com>")
    assert not w.same_uri(BOT_URI, "sip:125200401100002@botplatform.rcs.chinamobile.com")


def test_parse_unprefixed_and_qualified_children() -> None:
    body = (f'<outboundMessageRequest xmlns="{w.NS}"><destinationAddress>tel:+8613800000001'
            f"</destinationAddress><senderAddress>{BOT_URI}</senderAddress>"
            "<outboundIMMessage><contentType>text/plain</contentType>"
            "<bodyText>hi</bodyText></outboundIMMessage></outboundMessageRequest>").encode()
    req = w.parse_outbound_request(body)
    assert req.addresses == ("tel:+8613800000001",)
    assert req.message.body_text == "hi" and req.store_supported
    assert w.dispositions(()) == ("positive-delivery", "display")
    assert w.dispositions(("failed", "delivered")) == ("negative-delivery", "positive-delivery")


def test_error_body_shape() -> None:
    err = w.invalid("a/b<c>", "bad & worse\x00")
    root = ET.fromstring(w.build_error(err))
    assert root.tag == f"{NSQ}requestError"
    exc = root.find("serviceException")
    assert exc is not None
    assert [e.text for e in exc.findall("variables")] == ["a/b<c>", "bad & worse\ufffd"]
    assert exc.findtext("messageId") == exc.findtext("exceptionId") == "SVC0002"
    pol = ET.fromstring(w.build_error(w.rate_limited("x")))
    assert pol.find("policyException/messageId") is not None


# -- render -------------------------------------------------------------------------------------

@pytest.fixture
def dialect() -> CmccDialect:
    return CmccDialect(as_api(FakeApi()), clock=lambda: NOW)


def bot(d: CmccDialect) -> object:
    found = d.api.bot("125200401100001")
    assert found is not None
    return found


def test_render_inbound(dialect: CmccDialect) -> None:
    b = dialect.api.bot("125200401100001")
    assert b is not None
    event = InboundEvent("125200401100001", "+8613800000001", "m-1",
                         Payload("text/plain;charset=UTF-8", "你好".encode()), at=NOW,
                         conversation_id="c", contribution_id="k")
    note = dialect.render(b, event)
    assert note is not None
    assert note.url == f"http://csp.test/notify/InboundMessageNotification/{BOT_ENC}"
    assert unquote(note.url.rsplit("/", 1)[-1]) == BOT_URI
    assert note.content_type == "application/xml"
    assert note.ordering_key == "125200401100001|+8613800000001"
    root = ET.fromstring(note.body)
    assert root.tag == f"{NSQ}inboundMessageNotification"
    msg = root.find("inboundMessage")
    assert msg is not None
    assert msg.findtext("destinationAddress") == BOT_URI
    assert msg.findtext("senderAddress") == msg.findtext("origUser") == "tel:+8613800000001"
    assert base64.b64decode(msg.findtext("bodyText") or "").decode() == "你好"
    assert msg.findtext("contentType") == "text/plain;charset=UTF-8"
    assert msg.findtext("messageId") == "m-1"
    assert msg.findtext("conversationID") == "c" and msg.findtext("contributionID") == "k"
    assert msg.findtext("serviceCapability/capabilityId") == "ChatbotSA"
    assert msg.findtext("dateTime") == "2023-11-14T22:13:20Z"
    link = msg.find("link")
    assert link is not None and link.get("rel") and link.get("href")


@pytest.mark.parametrize(("status", "failure", "token", "description"), [
    (Status.DELIVERED, None, "DeliveredToTerminal", "SVC1000"),
    (Status.DISPLAYED, None, "DisplayedToTerminal", "SVC1000"),
    (Status.FAILED, FailureCode.NOT_5G_MESSAGE_TERMINAL, "DeliveryImpossible", "SVC1002"),
    (Status.FAILED, FailureCode.EXPIRED, "DeliveryImpossible", "SVC1007"),
    (Status.DELIVERED_TO_NETWORK, None, "DeliveredToNetwork", "SVC1000"),
])
def test_render_delivery_info(dialect: CmccDialect, status: Status,
                              failure: FailureCode | None, token: str,
                              description: str) -> None:
    b = dialect.api.bot("125200401100001")
    assert b is not None
    note = dialect.render(b, StatusEvent("125200401100001", "m-2", "+8613800000002", status,
                                         failure, at=NOW))
    assert note is not None
    assert note.url == f"http://csp.test/notify/DeliveryInfoNotification/{BOT_ENC}"
    assert note.ordering_key == "125200401100001|+8613800000002"
    root = ET.fromstring(note.body)
    assert root.tag == f"{NSQ}deliveryInfoNotification"
    assert root.findtext("deliveryInfo/address") == "tel:+8613800000002"
    assert root.findtext("deliveryInfo/messageId") == "m-2"
    assert root.findtext("deliveryInfo/deliveryStatus") == token
    assert root.findtext("deliveryInfo/description") == description
    link = root.find("link")
    assert link is not None and link.get("rel") == "OutboundMessageRequest"
    assert link.get("href") == (f"http://maap.test/messaging/v1/outbound/{BOT_ENC}"
                                "/requests/m-2")


@pytest.mark.parametrize(("status", "token"), [(Status.REVOKED, "Revoked"),
                                               (Status.REVOKE_FAILED, "RevokeFailed")])
def test_render_revoke_outcome(dialect: CmccDialect, status: Status, token: str) -> None:
    b = dialect.api.bot("125200401100001")
    assert b is not None
    note = dialect.render(b, StatusEvent("125200401100001", "m-3", "+8613800000003", status))
    assert note is not None
    assert note.url == f"http://csp.test/notify/MessageStatusNotification/{BOT_ENC}"
    root = ET.fromstring(note.body)
    assert root.tag == f"{NSQ}messageStatusNotification"
    assert root.findtext("status") == token and root.findtext("messageId") == "m-3"
    assert root.findtext("address") == "tel:+8613800000003"
    link = root.find("link")
    assert link is not None and link.get("rel") == "OutboundMessageRequest"


def test_render_skips_what_cmcc_does_not_push(dialect: CmccDialect) -> None:
    b = dialect.api.bot("125200401100001")
    assert b is not None
    bid = "125200401100001"
    for event in (StatusEvent(bid, "m", "+8613800000001", Status.SENT),
                  StatusEvent(bid, "m", "+8613800000001", Status.ACCEPTED),
                  TypingEvent(bid, "+8613800000001", True),
                  NewUserEvent(bid, "+8613800000001"),
                  FileStatusEvent(bid, "f", "expired")):
        assert dialect.render(b, event) is None


# -- hostile input ------------------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
_FRAGMENTS = st.sampled_from([
    "<address>", "</address>", "<destinationAddress>tel:+8613800000001</destinationAddress>",
    f"<senderAddress>{BOT_URI}</senderAddress>", "<outboundIMMessage>", "</outboundIMMessage>",
    "<contentType>text/plain</contentType>", "<contentType>multipart/mixed; boundary=b",
    "</contentType>", "<bodyText><![CDATA[", "]]></bodyText>", "<bodyText>", "</bodyText>",
    "--b\r\nContent-Type: text/plain\r\n\r\n", "--b--", '{"message":', "}",
    "<reportRequest>Delivered</reportRequest>", "<storeSupported>", "</storeSupported>",
    "<![CDATA[", "&amp;", "&#0;", "&#x1F600;", "<!-- c -->", "<?pi x?>", "\x00", "\ud800",
])


@st.composite
def xmlish(draw: st.DrawFn) -> bytes:
    inner = "".join(draw(st.lists(st.one_of(_FRAGMENTS, _TEXT), max_size=25)))
    root = draw(st.sampled_from(["msg:outboundMessageRequest", "msg:messageStatusReport",
                                 "outboundMessageRequest", "x"]))
    text = f'<{root} xmlns:msg="{w.NS}">{inner}</{root}>'
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=400)
@given(body=st.one_of(st.binary(max_size=300), xmlish()))
def test_codec_raises_only_cmcc_errors(body: bytes) -> None:
    for parse in (w.parse_outbound_request, w.parse_status_update):
        try:
            result = parse(body)
        except w.CmccError as err:
            assert 400 <= err.status < 500
            ET.fromstring(w.build_error(err))  # always a well-formed error body
            continue
        if isinstance(result, w.OutboundRequest):
            try:
                w.build_payload(result.message)
                w.build_payload(result.message, template=True)
            except w.CmccError as err:
                assert err.status == 400


@settings(max_examples=200)
@given(value=st.text(max_size=80), date=st.text(max_size=40))
def test_auth_parsing_raises_only_cmcc_errors(value: str, date: str) -> None:
    for call in (lambda: w.parse_authorization(value), lambda: w.parse_date(date)):
        try:
            call()
        except w.CmccError as err:
            assert err.status == 401


def test_http_hostile_bodies_never_5xx() -> None:
    loop = asyncio.new_event_loop()
    api = FakeApi()
    client, _ = loop.run_until_complete(make_client(api))
    paths = [f"/messaging/group/v1/outbound/{BOT_ENC}/requests",
             f"/messaging/interaction/v1/outbound/{BOT_ENC}/requests",
             f"/messaging/group/template/outbound/{BOT_ENC}/requests"]

    async def post(method: str, path: str, body: bytes,
                   content_type: str = "application/xml") -> tuple[int, bytes]:
        date = email.utils.formatdate(NOW, usegmt=True)
        headers = {**signed(), "Date": date, "Content-Type": content_type}
        async with client.request(method, path, data=body, headers=headers) as resp:
            return resp.status, await resp.read()

    @settings(max_examples=150)
    @given(body=st.one_of(st.binary(max_size=300), xmlish(),
                          st.builds(lambda t: send_xml(body=t), st.text(max_size=60)),
                          st.builds(lambda t: send_xml(content_type=t, body="x"),
                                    st.text(st.characters(codec="ascii",
                                                          exclude_characters="<&]"),
                                            max_size=40))),
           which=st.integers(0, 5))
    def run(body: bytes, which: int) -> None:
        seen.append(which)
        if which < 3:
            status, reply = loop.run_until_complete(post("POST", paths[which], body))
        elif which == 3:
            status, reply = loop.run_until_complete(post(
                "PUT", f"/messaging/v1/outbound/{BOT_ENC}/requests/x/status", body))
        elif which == 4:
            status, reply = loop.run_until_complete(post("POST", "/Content", body))
        else:
            form = (b'--b\r\nContent-Disposition: form-data; name="File"; filename="a.png"'
                    b"\r\nContent-Type: image/png\r\n\r\n" + body)
            status, reply = loop.run_until_complete(post(
                "POST", "/Content", form, "multipart/form-data; boundary=b"))
        assert status < 500
        if status >= 400:
            assert ET.fromstring(reply).tag == f"{NSQ}requestError"

    seen: list[int] = []
    try:
        run()
        assert len(seen) >= 100 and set(seen) == {0, 1, 2, 3, 4, 5}
    finally:
        loop.run_until_complete(client.close())
        loop.close()
