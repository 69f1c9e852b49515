"""A recipient the SMS fallback took over keeps its fate on the SMS path across a MaaP restart
(issue 4 finishing item): no ``sent`` is reported or recorded for it, it is not sent again as a
5G message, no delivery deadline is armed for it again, and the SMS outcome is reported once.
The core runs with a fake SIP link (the 5GMC's answers are scripted) and a real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fivegmc.config import load_profile
from fivegmc.maap.core import MaapCore
from fivegmc.maap.files import FileStore
from fivegmc.maap.model import (
    TEXT,
    FailureCode,
    Outbound,
    Payload,
    SmsFallback,
    Status,
    StatusEvent,
)
from fivegmc.maap.sip_link import LinkError
from fivegmc.maap.state import MessageStates
from fivegmc.maap.tokens import TokenBook
from fivegmc.sip.headers import Headers
from fivegmc.sip.message import Response

SMS_ONLY = "+8613900000001"  # lab profile: an sms_only range (the 5GMC answers 480)
RCS = "+8613800000001"


class _Log:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


class FakeLink:
    """What the core uses of :class:`~fivegmc.maap.sip_link.SipLink`; ``answer(method, uri,
    body)`` scripts the 5GMC's final status (None: no answer, LinkError)."""

    def __init__(self, answer: Callable[[str, str, bytes], int | None],
                 delays: dict[str, float] | None = None) -> None:
        self.answer = answer
        #: numbers whose answers take this long
        self.delays = delays or {}
        self.sent: list[tuple[str, str, dict[str, str], bytes]] = []

    async def send(self, method: str, uri: str, *, from_uri: str, to_uri: str,
                   headers: Any = (), body: bytes = b"") -> asyncio.Future[Response]:
        self.sent.append((method, uri, dict(headers), body))
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Response] = loop.create_future()
        status = self.answer(method, uri, body)

        def answer() -> None:
            if fut.done():
                return
            if status is None:
                fut.set_exception(LinkError("no answer"))
            else:
                fut.set_result(Response(status, "Scripted", Headers()))
        delay = next((d for n, d in self.delays.items() if n in uri), 0.0)
        if delay:
            loop.call_later(delay, answer)
        else:
            answer()
        return fut

    async def request(self, method: str, uri: str, **kw: Any) -> Response:
        return await (await self.send(method, uri, **kw))

    def messages_to(self, number: str) -> list[bytes]:
        return [b for m, uri, h, b in self.sent
                if m == "MESSAGE" and number in uri and h.get("Content-Type") == "message/cpim"]


def core_for(states: MessageStates, link: FakeLink, tmp_path: Path, *overrides: str,
             concurrency: int | None = None) -> MaapCore:
    profile = load_profile(None, ("maap.port=0", "maap.sip_port=0", *overrides))
    return MaapCore(profile, link=link, states=states,  # type: ignore[arg-type]
                    tokens=TokenBook(60), files=FileStore(tmp_path / "files", "http://x", 10, 60),
                    log=_Log(), concurrency=concurrency)


@contextlib.asynccontextmanager
async def running(core: MaapCore) -> AsyncIterator[list[StatusEvent]]:
    """The core's run() in a task; yields the StatusEvents it reports; a clean stop after."""
    seen: list[StatusEvent] = []
    core.observers.append(lambda e: seen.append(e) if isinstance(e, StatusEvent) else None)
    task = asyncio.get_running_loop().create_task(core.run())
    try:
        yield seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await core.close()


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def fallback_out(mid: str, *numbers: str, **kw: Any) -> Outbound:
    return Outbound("labbot", numbers, Payload(TEXT, b"5G hello"), mid,
                    fallback=SmsFallback(True, "SMS hello"), **kw)


def statuses(seen: list[StatusEvent], number: str) -> list[Status]:
    return [e.status for e in seen if e.user == number]


async def test_sms_taken_recipient_resumes_without_sent(tmp_path: Path) -> None:
    """480 for an SMS-only user → the SMS path takes it; after a restart it is not reported
    (or recorded) as sent, and the SMS outcome is the one status it gets."""
    db = str(tmp_path / "messages.db")
    link = FakeLink(lambda m, uri, b: 480 if SMS_ONLY in uri else 200)
    taken: list[tuple[str, str, FailureCode]] = []

    async def hook(out: Outbound, number: str, why: FailureCode) -> bool:
        taken.append((out.message_id, number, why))
        return True

    states = MessageStates(db)
    await states.open()
    first = core_for(states, link, tmp_path)
    first.sms_fallback = hook
    async with running(first) as seen:
        # the RCS user's 200 is its delivery report (no positive-delivery asked)
        await first.send(fallback_out("m1", SMS_ONLY, RCS, dispositions=("display",)))
        await until(lambda: bool(taken) and Status.DELIVERED in statuses(seen, RCS))
    assert taken == [("m1", SMS_ONLY, FailureCode.NOT_5G_MESSAGE_TERMINAL)]
    assert statuses(seen, SMS_ONLY) == []
    await states.close()

    states = MessageStates(db)
    await states.open()
    second = core_for(states, link, tmp_path, "maap.delivery_timeout_s=0.2")
    second.sms_fallback = hook
    async with running(second) as seen:
        await asyncio.sleep(0.4)  # past the delivery timeout: nothing may happen to it
        assert statuses(seen, SMS_ONLY) == []
        state = states.recipient("labbot", "m1", SMS_ONLY)
        assert state is not None and state.status is Status.ACCEPTED
        assert len(link.messages_to(SMS_ONLY)) == 1  # not sent again as a 5G message
        assert len(taken) == 1
        second.sms_result("labbot", "m1", SMS_ONLY, delivered=True, sms_message_id="s1")
        second.sms_result("labbot", "m1", SMS_ONLY, delivered=True, sms_message_id="s1")
        assert statuses(seen, SMS_ONLY) == [Status.DELIVERED_TO_NETWORK]
    assert not [e for e in seen if e.user == RCS]  # settled before the restart
    await states.close()

    # settled: nothing left to resume, and the SMS marks are gone with the resend data
    states = MessageStates(db)
    await states.open()
    assert states.take_resumable() == []
    assert not states.on_sms("labbot", "m1", SMS_ONLY)
    await states.close()


async def test_expired_then_sms_resumes_without_a_second_revoke(tmp_path: Path) -> None:
    """Stored by the 5GMC (202, SENT), not delivered in time → revoked → SMS. After a restart
    no deadline is armed for it again (no second revoke, no second hand-over)."""
    db = str(tmp_path / "messages.db")
    link = FakeLink(lambda m, uri, b: 200 if b"<revoke" in b else 202)
    taken: list[str] = []

    async def hook(out: Outbound, number: str, why: FailureCode) -> bool:
        taken.append(number)
        return why is FailureCode.EXPIRED

    states = MessageStates(db)
    await states.open()
    first = core_for(states, link, tmp_path, "maap.delivery_timeout_s=0.2")
    first.sms_fallback = hook
    async with running(first) as seen:
        await first.send(fallback_out("m2", RCS))
        await until(lambda: taken == [RCS])
    assert statuses(seen, RCS) == [Status.SENT]
    await states.close()
    revokes = sum(b"<revoke" in b for _, _, _, b in link.sent)
    assert revokes == 1

    states = MessageStates(db)
    await states.open()
    second = core_for(states, link, tmp_path, "maap.delivery_timeout_s=0.2")
    second.sms_fallback = hook
    async with running(second) as seen:
        await asyncio.sleep(0.5)
        assert sum(b"<revoke" in b for _, _, _, b in link.sent) == revokes
        assert taken == [RCS] and seen == []
        second.sms_result("labbot", "m2", RCS, delivered=False)
        assert statuses(seen, RCS) == [Status.FAILED]
    await states.close()


async def test_expired_in_queue_then_sms_is_not_sent_as_5g_too(tmp_path: Path) -> None:
    """A recipient still waiting in the core's queue when its delivery timeout ends goes to
    SMS; the worker that reaches it later must not send the 5G message as well."""
    slow = "+8613800000002"
    link = FakeLink(lambda m, uri, b: 200, delays={slow: 0.4})
    taken: list[str] = []

    async def hook(out: Outbound, number: str, why: FailureCode) -> bool:
        taken.append(number)
        return number == RCS

    states = MessageStates(":memory:")
    await states.open()
    core = core_for(states, link, tmp_path, "maap.delivery_timeout_s=0.15", concurrency=1)
    core.sms_fallback = hook
    async with running(core) as seen:
        await core.send(fallback_out("busy", slow))  # the one worker waits 0.4 s for this
        await core.send(fallback_out("m3", RCS))
        await until(lambda: RCS in taken)
        await until(lambda: bool(link.messages_to(slow)) and core._jobs.empty())
        await asyncio.sleep(0.5)
        assert link.messages_to(RCS) == []
        assert statuses(seen, RCS) == []
        # the SMS path's recipient cannot be revoked any more
        assert await core.revoke("labbot", "m3") == {RCS: Status.REVOKE_FAILED}
        core.sms_result("labbot", "m3", RCS, delivered=True)
        assert statuses(seen, RCS) == [Status.REVOKE_FAILED, Status.DELIVERED_TO_NETWORK]
    await states.close()
