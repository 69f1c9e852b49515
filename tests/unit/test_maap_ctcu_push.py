"""CT/CU pushes to the CSP: deliveryNotification / messageNotification / rcsspam bodies, paths,
signatures, reportRequest filtering, and the notify-URL verification."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fivegmc.config import load_profile
from fivegmc.maap import content
from fivegmc.maap.ctcu import CtcuDialect
from fivegmc.maap.ctcu_wire import (
    PushOptions,
    china_time,
    render_event,
    signature,
    verification_ok,
    verification_request,
)
from fivegmc.maap.model import (
    BOTSUGGESTION,
    SPAM_REPORT,
    SUGGESTION_RESPONSE,
    FailureCode,
    FileStatusEvent,
    InboundEvent,
    NewUserEvent,
    Notification,
    Payload,
    Status,
    StatusEvent,
    TypingEvent,
)

PROFILE = load_profile(Path(__file__).parents[2] / "profiles" / "lab.toml")
CT = next(b for b in PROFILE.maap.chatbots if b.id == "106598858810000001")
USER = "+8613800000001"
NOW = 1_700_000_000.0


def render(event: Any, **kw: Any) -> Notification:
    n = render_event(CT, event, now=NOW, nonce="nonce-1", **kw)
    assert n is not None
    return n


def body(n: Notification) -> Any:
    return msgspec.json.decode(n.body)


def test_status_push() -> None:
    n = render(StatusEvent(CT.id, "m-1", USER, Status.DELIVERED, at=NOW,
                           client_correlator="c-1"))
    assert n.url == f"{CT.webhook}/deliveryNotification/{CT.id}/status"
    assert n.ordering_key == f"{CT.id}|{USER}"
    assert n.content_type == "application/json"
    assert body(n) == {"deliveryInfoList": [{
        "messageId": "m-1", "status": "delivered", "dateTime": china_time(NOW),
        "destinationAddress": CT.uri, "senderAddress": f"tel:{USER}",
        "clientCorrelator": "c-1"}]}
    headers = dict(n.headers)
    ts = str(int(NOW))
    assert headers["timestamp"] == ts and headers["nonce"] == "nonce-1"
    expect = hashlib.sha256("".join(sorted([CT.secret, ts, "nonce-1"])).encode()).hexdigest()
    assert headers["signature"] == expect == signature(CT.secret, ts, "nonce-1")


def test_china_time_format() -> None:
    assert china_time(1579243340.84) == "2020-01-17T14:42:20.840+08:00"


@pytest.mark.parametrize(("status", "token"), [
    (Status.SENT, "sent"), (Status.DISPLAYED, "displayed"), (Status.REVOKED, "revokeOk"),
    (Status.REVOKE_FAILED, "revokeFail"), (Status.DELIVERED_TO_NETWORK, "deliveredToNetwork"),
])
def test_status_tokens(status: Status, token: str) -> None:
    info = body(render(StatusEvent(CT.id, "m", USER, status)))["deliveryInfoList"][0]
    assert info["status"] == token and "errorCode" not in info


@pytest.mark.parametrize(("failure", "code"), [
    (FailureCode.TERMINAL_NOT_FOUND, 1), (FailureCode.NOT_5G_MESSAGE_TERMINAL, 2),
    (FailureCode.OFFLINE_NOT_STORED, 4), (FailureCode.EXPIRED, 4),
    (FailureCode.TERMINAL_REFUSED, 5), (None, 6),
])
def test_failed_codes(failure: FailureCode | None, code: int) -> None:
    info = body(render(StatusEvent(CT.id, "m", USER, Status.FAILED, failure)))[
        "deliveryInfoList"][0]
    assert (info["status"], info["errorCode"]) == ("failed", code)
    assert info["errorMessage"]


def test_accepted_and_others_not_pushed() -> None:
    for event in (StatusEvent(CT.id, "m", USER, Status.ACCEPTED),
                  TypingEvent(CT.id, USER, True), NewUserEvent(CT.id, USER),
                  FileStatusEvent(CT.id, "f", "expired")):
        assert render_event(CT, event, now=NOW, nonce="n") is None


def test_report_request_filter() -> None:
    wanted = frozenset({"failed"})
    for status, pushed in ((Status.SENT, False), (Status.DELIVERED, False),
                           (Status.FAILED, True), (Status.REVOKED, True),
                           (Status.REVOKE_FAILED, True)):
        n = render_event(CT, StatusEvent(CT.id, "m", USER, status), now=NOW, nonce="n",
                         wanted=wanted)
        assert (n is not None) == pushed, status


def test_dialect_remembers_report_request(tmp_path: Path) -> None:
    from types import SimpleNamespace

    dialect = CtcuDialect(SimpleNamespace(config=PROFILE.maap),  # type: ignore[arg-type]
                          clock=lambda: NOW, reports_remembered=1)
    dialect._remember_reports(CT.id, "m-1", frozenset({"displayed"}))
    assert dialect.render(CT, StatusEvent(CT.id, "m-1", USER, Status.DELIVERED)) is None
    assert dialect.render(CT, StatusEvent(CT.id, "m-1", USER, Status.DISPLAYED)) is not None
    dialect._remember_reports(CT.id, "m-2", frozenset())  # evicts m-1: back to "all"
    assert dialect.render(CT, StatusEvent(CT.id, "m-1", USER, Status.DELIVERED)) is not None
    a = dialect.render(CT, StatusEvent(CT.id, "m-1", USER, Status.DELIVERED))
    b = dialect.render(CT, StatusEvent(CT.id, "m-1", USER, Status.SENT))
    assert a is not None and b is not None
    assert dict(a.headers)["nonce"] != dict(b.headers)["nonce"]  # a fresh nonce per push


def test_inbound_text() -> None:
    n = render(InboundEvent(CT.id, USER, "up-1", content.text_payload("hi 你好"), at=NOW,
                            conversation_id="conv", contribution_id="contrib",
                            in_reply_to="down-1"))
    assert n.url == f"{CT.webhook}/messageNotification/{CT.id}/messages"
    b = body(n)
    assert b == {
        "messageId": "up-1",
        "messageList": [{"contentType": "text/plain", "contentEncoding": "utf8",
                         "contentText": "hi 你好"}],
        "dateTime": china_time(NOW), "dataTime": china_time(NOW),
        "destinationAddress": CT.uri, "senderAddress": f"tel:{USER}",
        "conversationId": "conv", "contributionId": "contrib", "inReplyTo": "down-1",
    }


def test_inbound_suggestion_response_is_an_object() -> None:
    tap = {"response": {"reply": {"displayText": "Yes", "postback": {"data": "yes"}}}}
    b = body(render(InboundEvent(CT.id, USER, "up", Payload(SUGGESTION_RESPONSE,
                                                            msgspec.json.encode(tap)))))
    assert b["messageList"] == [{"contentType": SUGGESTION_RESPONSE, "contentEncoding": "utf8",
                                 "contentText": tap}]
    assert "inReplyTo" not in b


def test_inbound_file_is_a_file_list() -> None:
    ft = content.ft_http_xml(
        content.FileInfo("http://fs/f.jpg", "image/jpeg", 1234, NOW + 60, "f.jpg"),
        content.FileInfo("http://fs/t.jpg", "image/jpeg", 99, NOW + 60))
    b = body(render(InboundEvent(CT.id, USER, "up", ft)))
    [entry] = b["messageList"]
    assert entry["contentType"] == "application/vnd.gsma.rcs-ft-http"
    assert [f["type"] for f in entry["contentText"]] == ["thumbnail", "file"]
    assert entry["contentText"][1] == {"type": "file", "fileSize": 1234,
                                       "contentType": "image/jpeg", "url": "http://fs/f.jpg",
                                       "fileName": "f.jpg", "until": "2023-11-14T22:14:20Z"}


def test_inbound_multipart_and_binary() -> None:
    mp = content.multipart_mixed([content.text_payload("a"),
                                  content.suggestions_payload({"suggestions": []})])
    b = body(render(InboundEvent(CT.id, USER, "up", mp)))
    assert [e["contentType"] for e in b["messageList"]] == ["text/plain", BOTSUGGESTION]
    b = body(render(InboundEvent(CT.id, USER, "up", Payload("application/x-bin",
                                                            b"\xff\xfe"))))
    assert b["messageList"][0]["contentEncoding"] == "base64"


def test_spam_report_notice() -> None:
    sr = (b'<SR xmlns="urn:gsma:params:xml:ns:rcs:rcs:spamreport"><Chatbot>' +
          CT.uri.encode() + b'</Chatbot><Message-ID>m-9</Message-ID>'
          b'<spam-type>fraud</spam-type><free-text>bad bot</free-text></SR>')
    n = render(InboundEvent(CT.id, USER, "up", Payload(SPAM_REPORT, sr)))
    assert n.url == f"{CT.webhook}/notifyInfoNotification/{CT.id}/notice/rcsspam"
    assert body(n) == {"messageId": ["m-9"], "spamType": "fraud", "freeText": "bad bot"}


def test_push_options() -> None:
    opts = PushOptions(sort_signature=False, content_type="multipart/form-data")
    n = render(StatusEvent(CT.id, "m", USER, Status.SENT), options=opts)
    assert n.content_type == "multipart/form-data"
    ts = str(int(NOW))
    assert dict(n.headers)["signature"] == hashlib.sha256(
        (CT.secret + ts + "nonce-1").encode()).hexdigest()


def test_no_notify_url_no_push() -> None:
    import msgspec as m

    bot = m.structs.replace(CT, webhook="")
    assert render_event(bot, StatusEvent(CT.id, "m", USER, Status.SENT), now=NOW,
                        nonce="n") is None


def test_verification() -> None:
    url, headers = verification_request(CT, NOW, "n-1", "echo-1")
    assert url == f"{CT.webhook}/notifyPath"
    assert headers["signature"] == signature(CT.secret, str(int(NOW)), "n-1")
    assert headers["chatbotId"] == CT.id and headers["echoStr"] == "echo-1"
    assert verification_ok(CT, "echo-1", 200, {"echoStr": "echo-1", "appId": CT.app_id})
    assert not verification_ok(CT, "echo-1", 200, {"echoStr": "x", "appId": CT.app_id})
    assert not verification_ok(CT, "echo-1", 500, {"echoStr": "echo-1", "appId": CT.app_id})
