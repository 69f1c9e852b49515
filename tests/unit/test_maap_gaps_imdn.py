"""The MaaP's automatic ``delivered`` IMDN for P2A (RFC 5438 §7, protocols.md §3–4): a user's
message to a chatbot that asks ``positive-delivery`` gets one from the chatbot URI, after its
200 and only once its event is queued durably for the CSP; none for IMDNs, isComposing or
messages that do not ask; a refused or unanswered IMDN is logged and changes nothing else.
The core runs with a fake SIP link (scripted 5GMC answers)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fivegmc.config import ChatbotConfig
from fivegmc.cpim import build_cpim, build_imdn_report_cpim, parse_cpim, parse_imdn
from fivegmc.maap import model
from fivegmc.maap.core import MaapCore
from fivegmc.maap.model import Event, InboundEvent, Notification
from fivegmc.maap.state import MessageStates
from fivegmc.sip.headers import Headers
from fivegmc.sip.message import Request, Response

from .test_maap_gaps_fallback import FakeLink, core_for, running, until

USER = "+8613800000001"
USER_URI = f"sip:{USER}@ims.mnc000.mcc460.3gppnetwork.org"
SENT_AT = "2026-01-02T03:04:05Z"


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda text, **kw: self.lines.append((level, text, kw))


def request(bot_uri: str, body: bytes, content_type: str = "message/cpim") -> Request:
    return Request("MESSAGE", bot_uri, Headers([
        ("Via", "SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKx"), ("From", f"<{USER_URI}>;tag=a"),
        ("To", f"<{bot_uri}>"), ("Call-ID", "c"), ("CSeq", "1 MESSAGE"),
        ("Content-Type", content_type)]), body)


def user_cpim(bot_uri: str, content_type: str, content: bytes, mid: str,
              disposition: tuple[str, ...] = ("positive-delivery", "display"),
              datetime: str = SENT_AT) -> bytes:
    return build_cpim(from_=USER_URI, to=bot_uri, content_type=content_type, content=content,
                      message_id=mid, datetime=datetime, disposition=disposition)


async def answer(core: MaapCore, req: Request) -> Response:
    got = core.handle_request(req)
    return got if isinstance(got, Response) else await got


def imdns(link: FakeLink) -> list[tuple[str, bytes]]:
    """(Request-URI, CPIM body) of the IMDNs the core sent."""
    return [(uri, body) for method, uri, _, body in link.sent
            if method == "MESSAGE" and b"message/imdn+xml" in body]


async def make(tmp_path: Path, link: FakeLink, log: Any = None) -> tuple[MaapCore, ChatbotConfig]:
    states = MessageStates(":memory:")
    await states.open()
    core = core_for(states, link, tmp_path)
    if log is not None:
        core.log = log
    bot = core.bot("labbot")
    assert bot is not None
    return core, bot


async def test_positive_delivery_gets_one_delivered_imdn_from_the_chatbot(tmp_path: Path) -> None:
    link = FakeLink(lambda m, uri, b: 200)
    core, bot = await make(tmp_path, link)
    suggestion = b'{"response":{"reply":{"displayText":"Yes","postback":{"data":"y"}}}}'
    ft = (b'<?xml version="1.0"?><file xmlns="urn:gsma:params:xml:ns:rcs:rcs:fthttp">'
          b'<file-info type="file"><file-size>3</file-size><content-type>image/png'
          b'</content-type><data url="http://x/f" until="2030-01-01T00:00:00Z"/></file-info>'
          b'</file>')
    async with running(core):
        for mid, ct, content in (("u-text", "text/plain;charset=UTF-8", "你好".encode()),
                                 ("u-tap", model.SUGGESTION_RESPONSE, suggestion),
                                 ("u-file", model.FT_HTTP, ft)):
            resp = await answer(core, request(bot.uri, user_cpim(bot.uri, ct, content, mid)))
            assert resp.status == 200
        await until(lambda: len(imdns(link)) == 3)
        await asyncio.sleep(0.05)
        assert len(imdns(link)) == 3  # one each
    reported = []
    for uri, body in imdns(link):
        assert uri == f"sip:{USER}@{core.home_domain};user=phone"
        cpim = parse_cpim(body)
        assert bot.uri in cpim.from_ and USER in cpim.to
        assert cpim.message_id not in (None, "u-text", "u-tap", "u-file")  # its own id
        assert not cpim.disposition_notification  # RFC 5438 §7.1.1: no IMDN about an IMDN
        report = parse_imdn(cpim.content)
        assert (report.kind, report.status, report.datetime) == ("delivery", "delivered",
                                                                 SENT_AT)
        reported.append(report.message_id)
    assert sorted(reported) == ["u-file", "u-tap", "u-text"]
    await core.states.close()


async def test_no_delivered_imdn_unless_asked_nor_for_imdns_or_typing(tmp_path: Path) -> None:
    link = FakeLink(lambda m, uri, b: 200)
    core, bot = await make(tmp_path, link)
    typing = (b'<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">'
              b'<state>active</state></isComposing>')
    report = build_imdn_report_cpim(from_=USER_URI, to=bot.uri, message_id="r1",
                                    datetime=SENT_AT, original_message_id="a2p-1",
                                    original_datetime=SENT_AT, kind="delivery",
                                    status="delivered")
    # an IMDN that asks for one (it must not) is still not answered with one
    asking = report.replace(b"imdn.Message-ID: r1\r\n",
                            b"imdn.Message-ID: r1\r\nimdn.Disposition-Notification: "
                            b"positive-delivery\r\n")
    bodies = [user_cpim(bot.uri, "text/plain", b"display only", "d1", ("display",)),
              user_cpim(bot.uri, "text/plain", b"nothing asked", "d2", ()),
              user_cpim(bot.uri, "text/plain", b"negative only", "d3", ("negative-delivery",)),
              user_cpim(bot.uri, model.IS_COMPOSING, typing, "t1"), report, asking]
    async with running(core):
        for body in bodies:
            assert (await answer(core, request(bot.uri, body))).status == 200
        await asyncio.sleep(0.1)
    assert imdns(link) == []
    await core.states.close()


async def test_delivered_waits_for_the_durable_queue_and_follows_the_200(tmp_path: Path) -> None:
    link = FakeLink(lambda m, uri, b: 200)
    core, bot = await make(tmp_path, link)
    release = asyncio.Event()
    queued: list[Notification] = []

    async def enqueue(bot_id: str, note: Notification) -> None:
        await release.wait()  # a slow SQLite commit
        queued.append(note)

    def render(bot: ChatbotConfig, event: Event) -> Notification | None:
        return Notification("http://csp", b"x", "text/plain", "k") \
            if isinstance(event, InboundEvent) else None

    core.enqueue, core.render = enqueue, render
    written: list[tuple[int, int]] = []  # (status, IMDNs sent) when the answer is written

    async def link_answers(req: Request) -> None:
        # as SipLink._finish: the response is written as soon as the handler returns it
        resp = await answer(core, req)
        written.append((resp.status, len(imdns(link))))

    async with running(core):
        pending = asyncio.ensure_future(link_answers(
            request(bot.uri, user_cpim(bot.uri, "text/plain", b"hi", "slow-1"))))
        await asyncio.sleep(0.1)
        assert not pending.done() and imdns(link) == []  # neither the 200 nor the IMDN yet
        release.set()
        await pending
        assert written == [(200, 0)] and len(queued) == 1  # the 200 before the IMDN
        await until(lambda: len(imdns(link)) == 1)
    await core.states.close()


async def test_not_queued_means_500_and_no_imdn(tmp_path: Path) -> None:
    link = FakeLink(lambda m, uri, b: 200)
    core, bot = await make(tmp_path, link, Log())

    async def enqueue(bot_id: str, note: Notification) -> None:
        raise OSError("disk full")

    core.enqueue = enqueue
    core.render = lambda bot, event: Notification("http://csp", b"x", "text/plain", "k")
    async with running(core):
        got = core.handle_request(request(bot.uri, user_cpim(bot.uri, "text/plain", b"hi",
                                                             "lost-1")))
        assert not isinstance(got, Response)
        try:
            await got
        except RuntimeError as exc:  # the SIP link answers 500 to a handler that raises
            assert "not queued" in str(exc)
        else:
            raise AssertionError("a message that was not queued was answered 200")
        await asyncio.sleep(0.1)
        assert imdns(link) == []
    await core.states.close()


async def test_failed_imdn_is_logged_and_the_core_keeps_running(tmp_path: Path) -> None:
    log = Log()
    answers = iter([None, 480])  # no answer (LinkError), then the 5GMC refuses

    def script(method: str, uri: str, body: bytes) -> int | None:
        return next(answers, 200) if b"message/imdn+xml" in body else 200

    link = FakeLink(script)
    core, bot = await make(tmp_path, link, log)
    task = asyncio.get_running_loop().create_task(core.run())
    try:
        for mid in ("f1", "f2"):
            assert (await answer(core, request(
                bot.uri, user_cpim(bot.uri, "text/plain", b"hi", mid)))).status == 200
        await until(lambda: len(imdns(link)) == 2)
        await until(lambda: len([w for w in log.lines if w[0] == "warning"]) == 2)
        assert not task.done()
        # the displayed IMDN goes the same way (one helper): the original DateTime echoed
        assert await core.displayed("labbot", USER, "f1")
        assert not await core.displayed("labbot", USER, "never-sent")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await core.close()
    warnings = [text for level, text, _ in log.lines if level == "warning"]
    assert warnings == ["maap: delivered IMDN not answered", "maap: delivered IMDN refused"]
    report = parse_imdn(parse_cpim(imdns(link)[-1][1]).content)
    assert (report.message_id, report.status, report.datetime) == ("f1", "displayed", SENT_AT)
    await core.states.close()


_IDS = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF), min_size=1, max_size=30)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mid=_IDS, datetime=_IDS)
async def test_hostile_ids_and_datetimes_never_break_the_core(tmp_path: Path, mid: str,
                                                              datetime: str) -> None:
    """Whatever id and DateTime a user's CPIM carries, the answer is a SIP status, and any
    IMDN sent is well-formed and about that id (one XML cannot carry is logged, not sent)."""
    link = FakeLink(lambda m, uri, b: 200)
    core, bot = await make(tmp_path, link, Log())
    head = (f"From: <{USER_URI}>\r\nTo: <{bot.uri}>\r\nDateTime: {datetime}\r\n"
            f"NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: {mid}\r\n"
            f"imdn.Disposition-Notification: positive-delivery\r\n\r\n"
            f"Content-Type: text/plain\r\n\r\nhi").encode()
    async with running(core):
        resp = await answer(core, request(bot.uri, head))
        assert resp.status in (200, 400, 415)
        await asyncio.sleep(0.02)
    for _, body in imdns(link):
        report = parse_imdn(parse_cpim(body).content)
        assert report.status == "delivered" and report.message_id.strip() == report.message_id
    await core.states.close()


async def test_a_message_answered_while_stopping_gets_its_200(tmp_path: Path) -> None:
    """A user message still waiting for the queue when the core stops is answered 200 by the
    shutdown drain; its IMDN is not started on the ended TaskGroup (logged instead)."""
    log = Log()
    link = FakeLink(lambda m, uri, b: 200)
    core, bot = await make(tmp_path, link, log)
    task = asyncio.get_running_loop().create_task(core.run())
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    pending = asyncio.ensure_future(answer(
        core, request(bot.uri, user_cpim(bot.uri, "text/plain", b"late", "late-1"))))
    await asyncio.sleep(0.05)
    assert not pending.done()  # the emitter has stopped: the drain answers it
    await core.close()
    assert (await pending).status == 200
    assert imdns(link) == []
    assert ("warning", "maap: delivered IMDN not sent (stopping)") in [
        (level, text) for level, text, _ in log.lines]
    await core.states.close()
