"""The MaaP core (:class:`MaapCore`, implementing :class:`fivegmc.maap.api.MaapApi`): chatbots,
sends with per-recipient delivery states, revokes, statuses, capabilities, and the P2A side.

A2P (protocols.md §4, maap_common): an accepted send is committed (:mod:`.state`), then fanned
out by a fixed pool of workers (bounded concurrency, one TCP connection to the 5GMC, many
requests in flight). Each recipient gets a pager MESSAGE From the chatbot URI with CPIM (imdn
Message-ID = the send's message id, ``NS: maap`` + ``maap.Traffic-Type``). The 5GMC's final
answer sets the first state: 200 (the UE took it) or 202 (stored) → SENT; 404 →
FAILED(TERMINAL_NOT_FOUND); 480 for an SMS-only number → FAILED(NOT_5G_MESSAGE_TERMINAL), for
a ``Request-Disposition: no-queue`` send (RFC 3841 §9.1) → FAILED(OFFLINE_NOT_STORED). IMDNs
(RFC 5438) move it on to DELIVERED / DISPLAYED, or FAILED(EXPIRED) when the 5GMC's stored copy
expired. States only move forward; a skipped step (an IMDN overtaking the SIP answer) is
reported too, so a CSP always sees sent → delivered → displayed in order.

Every change becomes a StatusEvent, rendered by the chatbot's dialect and queued durably for
the CSP's webhook (:mod:`.webhooks`).

P2A (protocols.md §3–4, :mod:`.inbound`): a user's MESSAGE to a chatbot URI is answered 200
once its event is queued durably for the CSP (500 when that fails: nothing is lost silently).
The MaaP is the chatbot's messaging client, so it sends the IMDNs (RFC 5438 §7): a
``delivered`` one, always, after the 200 of a user message that asks ``positive-delivery``
(never for IMDNs or isComposing), and a ``displayed`` one when the CSP marks the message
read (:meth:`MaapCore.displayed`). Both are pager MESSAGEs From the chatbot URI, sent by a
task of the core; a failed one is logged.

Restarts: each accepted send is committed with what is needed to send it again (the Outbound
without its recipient list, :mod:`.state`); at start :meth:`MaapCore.run` resumes every send
with recipients still ACCEPTED (queued again, same imdn.Message-ID) or SENT (awaiting IMDNs),
with their delivery-timeout deadlines counted from the original acceptance. Each recipient
is marked *dispatched* just before its MESSAGE goes to the 5GMC; a resumed recipient that was
dispatched but has no recorded answer is taken as SENT, never sent again (at most once: the
delivery timeout, when set, reports one the 5GMC never got). A recipient the SMS fallback
took over is marked too (``MessageStates.to_sms``): its fate is the SMS path's, so it is
neither sent again nor taken as SENT, gets no new deadline and cannot be revoked; only the
fallback's outcome (:meth:`MaapCore.sms_result`, from its own durable queue) moves it on.
On shutdown MESSAGEs out to the 5GMC get ``maap.shutdown_grace_s`` to be answered (a separate
5GMC keeps answering), so their real outcome is recorded (:meth:`MaapCore.close`). A clean
stop writes every mark, so nothing is sent twice. At-least-once window: after a crash, marks
and states newer than the last flush (``MessageStates.flush_interval_s``, 50 ms) are lost;
such a recipient is sent again with the same imdn.Message-ID: a stored copy is suppressed by
the 5GMC's duplicate check, a relayed one reaches the UE twice (clients drop the repeat by
imdn.Message-ID). A lost SMS mark makes a recipient the fallback took over in that window
look dispatched (taken as SENT; its SMS outcome still follows).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import os
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from ..config import ChatbotConfig, MaapConfig, Profile
from ..core.capability import is_rcs_tag
from ..core.subscribers import SubscriberDirectory, SubscriberKind
from ..cpim import ImdnKind, ImdnStatus, build_cpim, build_imdn_report_cpim
from ..sip.errors import LocalProtocolError, RemoteProtocolError
from ..sip.headers import split_list
from ..sip.message import Request, Response, make_response
from ..sip.uri import parse_name_addr
from . import model
from .api import Files, Tokens
from .inbound import ImdnReceived, Rejected, UserMessage, bot_key, classify
from .model import (
    Capabilities,
    Event,
    FailureCode,
    InboundEvent,
    MessageRecord,
    NewUserEvent,
    Notification,
    Outbound,
    RecipientState,
    SendResult,
    Status,
    StatusEvent,
    TypingEvent,
)
from .ratelimit import RateLimiter
from .sip_link import LinkError, SipLink
from .state import MessageStates
from .window import AimdWindow

E164 = re.compile(r"\+[0-9]{6,15}")
MAAP_NS = "http://www.gsma.com/rcs/maap/"
CPM_MSG = '*;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"'
#: Tags the MaaP answers an OPTIONS to a chatbot with (protocols.md §4).
BOT_TAGS = ('+g.3gpp.iari-ref="urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.chatbot.sa"'
            ';+g.gsma.rcs.isbot;+g.gsma.rcs.botversion="#=1,#=2"')

#: Forward order of the non-final states; FAILED/REVOKED/DELIVERED_TO_NETWORK end a recipient.
_RANK = {Status.ACCEPTED: 0, Status.SENT: 1, Status.DELIVERED: 2, Status.DISPLAYED: 3}
_ENDED = frozenset({Status.FAILED, Status.REVOKED, Status.DELIVERED_TO_NETWORK,
                    Status.DISPLAYED})
#: 5GMC answers worth trying again (overload, timeouts): after 0.2 s doubling up to 2 s, or
#: the 503's Retry-After (RFC 3261 §21.5.4), at most ``maap.center_attempts`` attempts.
_RETRY = frozenset({408, 500, 503, 504})

Render = Callable[[ChatbotConfig, Event], Notification | None]
Enqueue = Callable[[str, Notification], Awaitable[Any]]
#: Issue 5's seam: ``(outbound, number, why) -> took_over``. When it returns True the
#: recipient's fate is the SMS path's: it reports back through :meth:`MaapCore.sms_result`.
SmsFallbackHook = Callable[[Outbound, str, FailureCode], Awaitable[bool]]


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def now_iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def revoke_body(message_id: str) -> bytes:
    """The GSMA revoke document (``application/vnd.gsma.rcsrevoke+xml``)."""
    return ('<?xml version="1.0" encoding="UTF-8"?><revoke xmlns="urn:gsma:params:xml:ns:rcs:'
            f'rcs:revoke"><Message-ID>{_xml_escape(message_id)}</Message-ID></revoke>').encode()


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _retry_delay(response: Response | None, attempt: int) -> float:
    after = response.headers.get("Retry-After") if response is not None else None
    if after is not None and after.strip().isdigit():
        return min(float(after.strip()), 5.0)
    return float(min(0.2 * 2**attempt, 2.0))


def failure_for(status: int, kind: SubscriberKind, store: bool) -> FailureCode | None:
    """Why a recipient failed, from the 5GMC's final answer to the A2P MESSAGE."""
    if status in (404, 604):
        return FailureCode.TERMINAL_NOT_FOUND
    if status == 480:
        if kind is SubscriberKind.SMS_ONLY:
            return FailureCode.NOT_5G_MESSAGE_TERMINAL
        return FailureCode.OFFLINE_NOT_STORED
    if status in (403, 603, 486, 600):
        return FailureCode.TERMINAL_REFUSED
    if status in (400, 413, 415, 488, 513, 606):
        return FailureCode.BAD_CONTENT
    return None


def capabilities_from(number: str, response: Response | None) -> Capabilities:
    """Capabilities from the 5GMC's answer to OPTIONS (protocols.md §4, TS 33.127 D.3)."""
    if response is None:
        return Capabilities(number, known=False, rcs=False, registered=False)
    if response.status == 200:
        tags: list[str] = []
        contact = response.headers.get("Contact")
        if contact:
            try:
                params = parse_name_addr(split_list(contact)[0]).params
            except (RemoteProtocolError, IndexError):
                params = ()
            tags = [name if value is None else f"{name}={value}"
                    for name, value in params if is_rcs_tag(name, value)]
        rcs = bool(tags)
        chatbot = any(t.lower().startswith(("+g.gsma.rcs.botversion", "+g.3gpp.iari-ref"))
                      and ("botversion" in t.lower() or "chatbot" in t.lower()) for t in tags)
        return Capabilities(number, known=True, rcs=rcs, registered=rcs, feature_tags=tuple(tags),
                            chatbot=chatbot)
    if response.status in (480, 408):
        return Capabilities(number, known=True, rcs=True, registered=False)
    return Capabilities(number, known=False, rcs=False, registered=False)


class MaapCore:
    """The MaaP core. Lifecycle: construct → (the server opens the stores) → ``run()`` under the
    node's TaskGroup until cancelled."""

    def __init__(self, profile: Profile, *, link: SipLink, states: MessageStates,
                 tokens: Tokens, files: Files, enqueue: Enqueue | None = None,
                 render: Render | None = None, log: Any = None,
                 clock: Callable[[], float] = time.time, concurrency: int | None = None,
                 capability_ttl_s: float | None = None) -> None:
        self.config: MaapConfig = profile.maap
        self.tokens = tokens
        self.files = files
        self.link = link
        self.states = states
        self.enqueue = enqueue
        #: undelivered webhook events of a chatbot (the server wires the queue's count in)
        self.pending_events: Callable[[str], int] | None = None
        self.render = render
        self.log = log
        self.clock = clock
        # To-tags of our answers: a random per-process prefix + a counter (cheaper than
        # a uuid4 per request)
        self._tag_prefix = os.urandom(4).hex()
        self._tag_seq = itertools.count(1)
        self.home_domain = profile.operator.home_domain
        self.directory = SubscriberDirectory(profile.operator.number_ranges)
        # [maap] settings; keyword arguments override them (tests)
        self.concurrency = self.config.fanout_concurrency if concurrency is None else concurrency
        self.capability_ttl_s = (self.config.capability_ttl_s if capability_ttl_s is None
                                 else capability_ttl_s)
        self.attempts = self.config.center_attempts
        #: MESSAGEs in flight to the 5GMC, shrunk while it sheds load (window.py)
        self.window = AimdWindow(max(1, self.concurrency))
        #: issue 5's SMS fallback (None: no fallback; the recipient simply fails). Recipients
        #: it took over are marked in the states (``to_sms``): from then on only the SMS
        #: path's outcome (:meth:`sms_result`) moves them, also after a restart.
        self.sms_fallback: SmsFallbackHook | None = None
        #: extra observers of every event (tests, metrics); called synchronously
        self.observers: list[Callable[[Event], None]] = []
        self._bots = {b.id: b for b in self.config.chatbots}
        self._by_uri: dict[str, ChatbotConfig] = {}
        for b in self.config.chatbots:
            key = bot_key(b.uri)
            if key is not None:
                self._by_uri[key] = b
        self._limits = RateLimiter()
        self._jobs: asyncio.Queue[tuple[Outbound, str]] = asyncio.Queue()
        # sends with recipients still on the way: (bot, message id) -> the send, for retries,
        # delivery timeouts and the SMS fallback (memory only: a restart forgets them)
        self._live: dict[tuple[str, str], Outbound] = {}
        self._deadlines: deque[tuple[float, str, str, str]] = deque()
        self._caps: dict[str, tuple[float, Capabilities]] = {}
        self._events: list[tuple[str, Event, asyncio.Future[None] | None]] = []
        self._events_ready = asyncio.Event()
        self._spawn: Callable[[Any], asyncio.Task[Any]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # MESSAGEs out to the 5GMC when their worker was cancelled (shutdown): close() waits
        # up to shutdown_grace_s for their answers
        self._inflight: list[tuple[Outbound, str, asyncio.Future[Response]]] = []

    # -- chatbots --------------------------------------------------------------------------
    def bot(self, bot_id: str) -> ChatbotConfig | None:
        return self._bots.get(bot_id)

    def bot_by_uri(self, uri: str) -> ChatbotConfig | None:
        key = bot_key(uri if uri.startswith(("sip:", "sips:", "<")) else f"sip:{uri}")
        return None if key is None else self._by_uri.get(key)

    def bots(self) -> tuple[ChatbotConfig, ...]:
        return self.config.chatbots

    def allow(self, bot_id: str) -> bool:
        bot = self._bots.get(bot_id)
        if bot is None:
            return False
        # DESIGN.md §3: a chatbot whose CSP does not take its events (webhook backlog over
        # maap.max_pending_events_per_bot) gets 429 for new sends instead of the queue growing
        # without bound; other chatbots are not affected.
        if (self.pending_events is not None
                and self.pending_events(bot_id) >= self.config.max_pending_events_per_bot):
            return False
        return self._limits.allow(bot_id, bot.rate_limit_per_s, time.monotonic())

    # -- running -----------------------------------------------------------------------------
    async def run(self) -> None:
        self.resume()
        async with asyncio.TaskGroup() as tg:
            self._spawn = tg.create_task
            tg.create_task(self._emitter())
            if self.config.delivery_timeout_s > 0:
                tg.create_task(self._timeouts())
            for _ in range(self.concurrency):
                tg.create_task(self._worker())

    def _background(self, coro: Any) -> None:
        spawn = self._spawn or asyncio.get_running_loop().create_task
        task = spawn(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def resume(self) -> int:
        """Take up the sends a previous run left with recipients on the way (see the module
        docstring); returns how many. Called by :meth:`run`; idempotent."""
        resumed = 0
        for bot_id, message_id, data, dispatched in self.states.take_resumable():
            record = self.states.record(bot_id, message_id)
            try:
                out = msgspec.msgpack.decode(data, type=Outbound)
            except msgspec.DecodeError as exc:
                self.log.error("maap: cannot resume a send", bot=bot_id, message_id=message_id,
                               error=str(exc))
                continue
            if record is None or bot_id not in self._bots:
                continue  # the chatbot is no longer provisioned: its sends stay as they are
            out = dataclasses.replace(out, recipients=tuple(r.number for r in record.recipients))
            self._live[(bot_id, message_id)] = out
            timeout = self.config.delivery_timeout_s
            left = record.created_at + timeout - self.clock()
            for r in record.recipients:
                if self.states.on_sms(bot_id, message_id, r.number):
                    continue  # the SMS fallback's: it reports through sms_result, nothing here
                if r.status is Status.ACCEPTED and r.number in dispatched:
                    # handed to the 5GMC, answer unknown: not sent twice (at most once here;
                    # the delivery timeout, when set, reports one that never arrives)
                    self._advance(bot_id, message_id, r.number, Status.SENT)
                elif r.status is Status.ACCEPTED:
                    self._jobs.put_nowait((out, r.number))
                if timeout > 0 and r.status in (Status.ACCEPTED, Status.SENT):
                    self._deadlines.append((time.monotonic() + max(0.0, left), bot_id,
                                            message_id, r.number))
            resumed += 1
        if resumed and self.log is not None:
            self.log.info("maap: resumed sends left on the way", sends=resumed)
        return resumed

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._drain()

    async def _drain(self) -> None:
        """Shutdown: record the outcome of MESSAGEs the 5GMC already has (so a restart does not
        send them again), then queue the events still waiting for the emitter."""
        inflight, self._inflight = self._inflight, []
        if inflight:
            await asyncio.wait([f for _, _, f in inflight],
                               timeout=self.config.shutdown_grace_s)
        for out, number, fut in inflight:
            if not fut.done() or fut.cancelled() or fut.exception() is not None:
                continue  # no answer: stays ACCEPTED and is sent again after a restart
            response = fut.result()
            if 200 <= response.status < 300 and not self._on_sms(out, number):
                self._sent(out, number, response)
            # other answers: left ACCEPTED; the resumed send meets them again
        await self._emit_pending()

    # -- events ----------------------------------------------------------------------------
    def _emit(self, bot_id: str, event: Event,
              durable: bool = False) -> asyncio.Future[None] | None:
        """Queue an event for the chatbot's webhook; with ``durable`` a future that resolves
        once it is committed to the webhook queue."""
        for observer in self.observers:
            observer(event)
        fut = asyncio.get_running_loop().create_future() if durable else None
        self._events.append((bot_id, event, fut))
        self._events_ready.set()
        return fut

    async def _emitter(self) -> None:
        """Render and enqueue events in the order they happened (one batch at a time; the
        webhook queue keeps the order per user)."""
        while True:
            await self._events_ready.wait()
            self._events_ready.clear()
            await self._emit_pending()

    async def _emit_pending(self) -> None:
        """Render and enqueue the events waiting now, in order."""
        batch, self._events = self._events, []
        pending: list[Awaitable[Any]] = []
        waiting: list[asyncio.Future[None] | None] = []  # the durable future of each pending
        for bot_id, event, durable in batch:
            bot = self._bots.get(bot_id)
            if bot is None or self.render is None or self.enqueue is None:
                continue
            try:
                note = self.render(bot, event)
            except Exception as exc:  # a dialect bug must not stop other events
                self.log.error("maap: rendering an event failed", bot=bot_id,
                               event=type(event).__name__, error=repr(exc))
                continue
            if note is not None:
                pending.append(self.enqueue(bot_id, note))
                waiting.append(durable)
        results = await asyncio.gather(*pending, return_exceptions=True)
        for result, durable in zip(results, waiting, strict=True):
            if isinstance(result, BaseException):
                self.log.error("maap: queueing a webhook event failed", error=repr(result))
                if durable is not None and not durable.done():
                    durable.set_exception(RuntimeError(
                        f"the event was not queued for the CSP: {result!r}"))
        for _, _, fut in batch:
            if fut is not None and not fut.done():
                fut.set_result(None)

    def _advance(self, bot_id: str, message_id: str, number: str, status: Status,
                 failure: FailureCode | None = None, sms_message_id: str = "") -> bool:
        """Move a recipient to ``status`` if that is forward; report every step. False when
        the change does not apply (unknown, already there or beyond, or ended)."""
        cur = self.states.recipient(bot_id, message_id, number)
        if cur is None or cur.status in _ENDED:
            return False
        if status in _RANK:
            if _RANK[status] <= _RANK[cur.status]:
                return False
            steps = [s for s in (Status.SENT, Status.DELIVERED)
                     if _RANK[cur.status] < _RANK[s] < _RANK[status]]
        elif cur.status is Status.DELIVERED:
            return False  # only DISPLAYED follows DELIVERED
        else:
            steps = []
        now = self.clock()
        corr = self.states.client_correlator(bot_id, message_id)
        for step in (*steps, status):
            fail = failure if step is status else None
            self.states.set_state(bot_id, message_id,
                                  RecipientState(number, step, fail, now))
            self._emit(bot_id, StatusEvent(bot_id, message_id, number, step, fail, now, corr,
                                           sms_message_id if step is status else ""))
        if status in _ENDED or status is Status.DELIVERED:
            self._settled(bot_id, message_id)
        return True

    def _settled(self, bot_id: str, message_id: str) -> None:
        """Forget the send (memory and its resend data) once no recipient is on the way."""
        if (self.states.open_count(bot_id, message_id) == 0
                and self._live.pop((bot_id, message_id), None) is not None):
            self.states.forget_outbound(bot_id, message_id)

    # -- A2P ---------------------------------------------------------------------------------
    async def send(self, out: Outbound) -> SendResult:
        bot = self._bots.get(out.bot_id)
        if bot is None:
            raise KeyError(f"unknown chatbot {out.bot_id!r}")
        if len(out.recipients) > self.config.max_destinations:
            raise ValueError(f"{len(out.recipients)} destinations, at most "
                             f"{self.config.max_destinations}")
        numbers = list(dict.fromkeys(out.recipients))
        verdicts: list[tuple[str, Status, FailureCode | None]] = [
            (n, Status.ACCEPTED, None) if E164.fullmatch(n)
            else (n, Status.FAILED, FailureCode.TERMINAL_NOT_FOUND) for n in numbers]
        if out.is_typing:
            for n, status, _ in verdicts:
                if status is Status.ACCEPTED:
                    self._background(self._send_typing(bot, out, n))
            return SendResult(out.message_id, tuple(verdicts))
        if self.states.has_message(out.bot_id, out.message_id):
            return self._duplicate(out)
        now = self.clock()
        live = any(status is Status.ACCEPTED for _, status, _ in verdicts)
        # what a restart needs to send it again (recipients come from their own table)
        resend = (msgspec.msgpack.encode(dataclasses.replace(out, recipients=()))
                  if live else b"")
        added = await self.states.add_message(
            out.bot_id, out.message_id, created_at=now, client_correlator=out.client_correlator,
            conversation_id=out.conversation_id, contribution_id=out.contribution_id,
            recipients=[RecipientState(n, s, f, now) for n, s, f in verdicts],
            outbound=resend)
        if not added:
            return self._duplicate(out)
        for n, status, failure in verdicts:
            if status is Status.FAILED:
                self._emit(out.bot_id, StatusEvent(out.bot_id, out.message_id, n, status,
                                                   failure, now, out.client_correlator))
                continue
            self._jobs.put_nowait((out, n))
            if self.config.delivery_timeout_s > 0:
                self._deadlines.append((time.monotonic() + self.config.delivery_timeout_s,
                                        out.bot_id, out.message_id, n))
        if live:
            self._live[(out.bot_id, out.message_id)] = out
        return SendResult(out.message_id, tuple(verdicts))

    def _duplicate(self, out: Outbound) -> SendResult:
        record = self.states.record(out.bot_id, out.message_id)
        states = () if record is None else tuple(
            (r.number, r.status, r.failure) for r in record.recipients)
        return SendResult(out.message_id, states, duplicate=True)

    async def _worker(self) -> None:
        while True:
            out, number = await self._jobs.get()
            try:
                await self._deliver(out, number)
            except Exception as exc:  # one recipient's bug must not stop the pool
                self.log.error("maap: delivery failed", bot=out.bot_id,
                               message_id=out.message_id, error=repr(exc))

    def _message_headers(self, out: Outbound) -> list[tuple[str, str]]:
        headers = [("Content-Type", "message/cpim"), ("Accept-Contact", CPM_MSG),
                   ("Contribution-ID", out.contribution_id or out.message_id),
                   ("Conversation-ID", out.conversation_id or out.message_id)]
        if out.in_reply_to:
            headers.append(("In-Reply-To-Contribution-ID", out.in_reply_to))
        if not out.store:
            headers.append(("Request-Disposition", "no-queue"))  # RFC 3841 §9.1
        return headers

    def _user_uri(self, number: str) -> str:
        return f"sip:{number}@{self.home_domain};user=phone"

    def cpim_for(self, bot: ChatbotConfig, out: Outbound, number: str) -> bytes:
        extra_ns: dict[str, str] = {}
        extra: list[tuple[str, str]] = []
        if out.traffic_type:
            extra_ns["maap"] = MAAP_NS
            extra.append(("maap.Traffic-Type", out.traffic_type))
        return build_cpim(
            from_=bot.uri, to=f"sip:{number}@{self.home_domain}",
            content_type=out.payload.content_type, content=out.payload.body,
            message_id=out.message_id, datetime=now_iso(self.clock()),
            disposition=out.dispositions, extra_ns=extra_ns, extra_headers=extra)

    def _on_sms(self, out: Outbound, number: str) -> bool:
        return self.states.on_sms(out.bot_id, out.message_id, number)

    async def _deliver(self, out: Outbound, number: str) -> None:
        cur = self.states.recipient(out.bot_id, out.message_id, number)
        if cur is None or cur.status is not Status.ACCEPTED or self._on_sms(out, number):
            return  # revoked, settled or gone to SMS (delivery timeout) while it waited
        bot = self._bots[out.bot_id]
        body = self.cpim_for(bot, out, number)
        headers = self._message_headers(out)
        uri = self._user_uri(number)
        response: Response | None = None
        self.states.dispatched(out.bot_id, out.message_id, number)
        attempt = 0
        # 503 overload answers are retried without counting while this lasts (the window
        # shrinks meanwhile); other failures count toward maap.center_attempts
        patience = time.monotonic() + self.config.center_overload_s
        while True:
            ticket = await self.window.acquire()
            response = None
            try:
                response = await self._message(out, number, bot, uri, headers, body)
            except LinkError as exc:
                if self.log is not None:
                    self.log.warning("maap: A2P MESSAGE not answered", number=number,
                                     error=str(exc), attempt=attempt + 1)
            finally:
                self.window.release(ticket,
                                    overloaded=response is None or response.status == 503)
            if response is not None and response.status not in _RETRY:
                break
            if response is None or response.status != 503 or time.monotonic() >= patience:
                attempt += 1
                if attempt >= self.attempts:
                    break
            await asyncio.sleep(_retry_delay(response, attempt))
            cur = self.states.recipient(out.bot_id, out.message_id, number)
            if cur is None or cur.status is not Status.ACCEPTED or self._on_sms(out, number):
                return
        if self._on_sms(out, number):
            return  # the delivery timeout handed it to SMS while the MESSAGE was out
        if response is None or response.status in _RETRY:
            self._advance(out.bot_id, out.message_id, number, Status.FAILED, None)
            return
        if 200 <= response.status < 300:
            self._sent(out, number, response)
            return
        failure = failure_for(response.status, self.directory.kind(number), out.store)
        await self._fail(out, number, failure)

    async def _message(self, out: Outbound, number: str, bot: ChatbotConfig, uri: str,
                       headers: list[tuple[str, str]], body: bytes) -> Response:
        """One A2P MESSAGE to the 5GMC. Cancelled after it went out (shutdown), its answer is
        still awaited by :meth:`close` (``_inflight``)."""
        fut = await self.link.send("MESSAGE", uri, from_uri=bot.uri, to_uri=uri,
                                   headers=headers, body=body)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            self._inflight.append((out, number, fut))
            fut.add_done_callback(_retrieve)  # a LinkError nobody awaits is not an error
            raise

    def _sent(self, out: Outbound, number: str, response: Response) -> None:
        """The 5GMC took the MESSAGE (2xx): SENT, or DELIVERED when the UE's 200 is all the
        delivery report asked for."""
        if response.status == 200 and "positive-delivery" not in out.dispositions:
            self._advance(out.bot_id, out.message_id, number, Status.DELIVERED)
        else:
            self._advance(out.bot_id, out.message_id, number, Status.SENT)

    async def _fail(self, out: Outbound, number: str, failure: FailureCode | None) -> None:
        """FAILED, unless the SMS fallback (issue 5) takes the recipient over."""
        if (failure in (FailureCode.NOT_5G_MESSAGE_TERMINAL, FailureCode.OFFLINE_NOT_STORED,
                        FailureCode.EXPIRED)
                and out.fallback.allowed and self.sms_fallback is not None):
            try:
                if await self.sms_fallback(out, number, failure):
                    self.states.to_sms(out.bot_id, out.message_id, number)
                    return
            except Exception as exc:
                self.log.error("maap: SMS fallback failed", error=repr(exc))
        self._advance(out.bot_id, out.message_id, number, Status.FAILED, failure)

    def sms_result(self, bot_id: str, message_id: str, number: str, *, delivered: bool,
                   sms_message_id: str = "") -> None:
        """The SMS fallback's outcome for a recipient it took over (issue 5): its one status
        after the hand-over (a repeat changes nothing: the state has ended)."""
        if delivered:
            self._advance(bot_id, message_id, number, Status.DELIVERED_TO_NETWORK,
                          sms_message_id=sms_message_id)
        else:
            self._advance(bot_id, message_id, number, Status.FAILED,
                          FailureCode.NOT_5G_MESSAGE_TERMINAL)

    async def _send_typing(self, bot: ChatbotConfig, out: Outbound, number: str) -> None:
        state = b"active" if out.payload.body in (b"", b"active") else out.payload.body
        doc = (b'<?xml version="1.0" encoding="UTF-8"?>\n<isComposing xmlns="urn:ietf:params:'
               b'xml:ns:im-iscomposing"><state>' + state + b'</state><contenttype>text/plain'
               b'</contenttype><refresh>60</refresh></isComposing>')
        body = build_cpim(from_=bot.uri, to=f"sip:{number}@{self.home_domain}",
                          content_type=model.IS_COMPOSING, content=doc,
                          message_id=uuid.uuid4().hex, datetime=now_iso(self.clock()))
        uri = self._user_uri(number)
        with contextlib.suppress(LinkError):  # a lost typing indicator is harmless
            await self.link.request("MESSAGE", uri, from_uri=bot.uri, to_uri=uri,
                                    headers=[("Content-Type", "message/cpim"),
                                             ("Request-Disposition", "no-queue")], body=body)

    # -- delivery timeout (issue 4 + the issue 5 seam) ---------------------------------------
    async def _timeouts(self) -> None:
        tick = min(0.1, self.config.delivery_timeout_s / 4)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            while self._deadlines and self._deadlines[0][0] <= now:
                _, bot_id, message_id, number = self._deadlines.popleft()
                cur = self.states.recipient(bot_id, message_id, number)
                if (cur is not None and cur.status in (Status.ACCEPTED, Status.SENT)
                        and not self.states.on_sms(bot_id, message_id, number)):
                    self._background(self._expire(bot_id, message_id, number))

    async def _expire(self, bot_id: str, message_id: str, number: str) -> None:
        """Not delivered in time: revoke the stored copy, then fall back or fail (EXPIRED)."""
        cur = self.states.recipient(bot_id, message_id, number)
        out = self._live.get((bot_id, message_id))
        if cur is None or self.states.on_sms(bot_id, message_id, number):
            return
        if cur.status is Status.SENT:
            status = await self._revoke_one(self._bots[bot_id], message_id, number)
            if not 200 <= status < 300:
                return  # the UE has it (or is taking it): no fallback, no failure
        cur = self.states.recipient(bot_id, message_id, number)
        if cur is None or cur.status not in (Status.ACCEPTED, Status.SENT):
            return
        if out is not None:
            await self._fail(out, number, FailureCode.EXPIRED)
        else:
            self._advance(bot_id, message_id, number, Status.FAILED, FailureCode.EXPIRED)

    # -- revoke ------------------------------------------------------------------------------
    async def _revoke_one(self, bot: ChatbotConfig, message_id: str, number: str) -> int:
        uri = self._user_uri(number)
        try:
            response = await self.link.request(
                "MESSAGE", uri, from_uri=bot.uri, to_uri=uri,
                headers=[("Content-Type", model.REVOKE)], body=revoke_body(message_id))
        except LinkError:
            return 0
        return response.status

    async def revoke(self, bot_id: str, message_id: str,
                     recipients: tuple[str, ...] = ()) -> dict[str, Status]:
        bot = self._bots.get(bot_id)
        record = self.states.record(bot_id, message_id) if bot is not None else None
        numbers = recipients or (tuple(r.number for r in record.recipients) if record else ())
        outcome: dict[str, Status] = {}
        waits: list[tuple[str, Awaitable[int]]] = []
        now = self.clock()
        for number in numbers:
            cur = self.states.recipient(bot_id, message_id, number)
            if (bot is None or cur is None or cur.status not in (Status.ACCEPTED, Status.SENT)
                    or self.states.on_sms(bot_id, message_id, number)):
                # ended, or gone to SMS (an SMS cannot be called back)
                outcome[number] = Status.REVOKE_FAILED
            elif cur.status is Status.ACCEPTED:
                # still in our own queue: withdraw it here; the worker will skip it
                self._advance(bot_id, message_id, number, Status.REVOKED)
                outcome[number] = Status.REVOKED
            else:
                waits.append((number, self._revoke_one(bot, message_id, number)))
        if waits:
            statuses = await asyncio.gather(*(w for _, w in waits))
            for (number, _), status in zip(waits, statuses, strict=True):
                ok = 200 <= status < 300 and self._advance(bot_id, message_id, number,
                                                            Status.REVOKED)
                outcome[number] = Status.REVOKED if ok else Status.REVOKE_FAILED
        corr = self.states.client_correlator(bot_id, message_id) if record else ""
        for number, result in outcome.items():
            if result is Status.REVOKE_FAILED and bot is not None:
                # reported, but the recipient's state is left as it was
                self._emit(bot_id, StatusEvent(bot_id, message_id, number,
                                               Status.REVOKE_FAILED, None, now, corr))
        return outcome

    def record(self, bot_id: str, message_id: str) -> MessageRecord | None:
        return self.states.record(bot_id, message_id)

    # -- displayed / capabilities ------------------------------------------------------------
    async def displayed(self, bot_id: str, user: str, message_id: str) -> bool:
        bot = self._bots.get(bot_id)
        original = self.states.inbound_datetime(bot_id, user, message_id) if bot else None
        if bot is None or original is None:
            return False
        await self._imdn_to_user(bot, user, message_id, original, "display", "displayed")
        return True

    async def _imdn_to_user(self, bot: ChatbotConfig, user: str, message_id: str,
                            original_datetime: str, kind: ImdnKind, status: ImdnStatus) -> None:
        """Report to ``user``, From the chatbot URI (the MaaP is the chatbot's client), the
        ``status`` of their message ``message_id``: RFC 5438 §7.1.1, a new imdn.Message-ID,
        no disposition asked, the original DateTime echoed (now when it had none). A refused
        or unanswered IMDN is logged: the user's message itself is not affected."""
        now = self.clock()
        try:
            body = build_imdn_report_cpim(
                from_=bot.uri, to=f"sip:{user}@{self.home_domain}", message_id=uuid.uuid4().hex,
                datetime=now_iso(now), original_message_id=message_id,
                original_datetime=original_datetime or now_iso(now), kind=kind, status=status)
        except LocalProtocolError as exc:  # an id or DateTime XML cannot carry
            self._warn(f"maap: {status} IMDN not built", user=user, error=str(exc))
            return
        uri = self._user_uri(user)
        try:
            response = await self.link.request("MESSAGE", uri, from_uri=bot.uri, to_uri=uri,
                                               headers=[("Content-Type", "message/cpim")],
                                               body=body)
        except LinkError as exc:
            self._warn(f"maap: {status} IMDN not answered", user=user, error=str(exc))
            return
        if not 200 <= response.status < 300:
            self._warn(f"maap: {status} IMDN refused", user=user, sip_status=response.status)

    def _report_delivered(self, bot: ChatbotConfig, user: str, message_id: str,
                          original_datetime: str) -> None:
        coro = self._delivered(bot, user, message_id, original_datetime)
        try:
            self._background(coro)
        except RuntimeError:  # the core's TaskGroup has ended (stopping): no new tasks
            coro.close()
            self._warn("maap: delivered IMDN not sent (stopping)", user=user)

    async def _delivered(self, bot: ChatbotConfig, user: str, message_id: str,
                         original_datetime: str) -> None:
        """The automatic ``delivered`` IMDN for a user's message (a background task of the
        core: it must not raise into the core's TaskGroup)."""
        try:
            await self._imdn_to_user(bot, user, message_id, original_datetime, "delivery",
                                     "delivered")
        except Exception as exc:
            self._warn("maap: delivered IMDN failed", user=user, error=repr(exc))

    def _warn(self, text: str, **fields: Any) -> None:
        if self.log is not None:
            self.log.warning(text, **fields)

    async def capabilities(self, bot_id: str, number: str) -> Capabilities:
        now = time.monotonic()
        cached = self._caps.get(number)
        if cached is not None and cached[0] > now:
            return cached[1]
        bot = self._bots.get(bot_id)
        if bot is None or not E164.fullmatch(number):
            return Capabilities(number, known=False, rcs=False, registered=False)
        uri = self._user_uri(number)
        try:
            response: Response | None = await self.link.request(
                "OPTIONS", uri, from_uri=bot.uri, to_uri=uri,
                headers=[("Contact", f"<{bot.uri}>;{BOT_TAGS}"), ("Accept", "application/sdp")])
        except LinkError:
            response = None
        caps = capabilities_from(number, response)
        if response is not None:
            if len(self._caps) > 100_000:
                self._caps.clear()
            self._caps[number] = (now + self.capability_ttl_s, caps)
        return caps

    # -- P2A: requests from the 5GMC -----------------------------------------------------------
    def handle_request(self, req: Request) -> Response | Awaitable[Response]:
        """Answer a request the 5GMC routed to a chatbot URI."""
        tag = f"{self._tag_prefix}{next(self._tag_seq):x}"  # RFC 3261 §19.3: unique
        try:
            key = bot_key(req.uri)
        except RemoteProtocolError:
            key = None
        bot = self._by_uri.get(key) if key is not None else None
        if req.method == "OPTIONS":
            if bot is None:
                return make_response(req, 404, "No such chatbot", to_tag=tag)
            return make_response(req, 200, to_tag=tag,
                                 extra=[("Contact", f"<{bot.uri}>;{BOT_TAGS}")])
        if req.method != "MESSAGE":
            return make_response(req, 405, to_tag=tag, extra=[("Allow", "MESSAGE, OPTIONS")])
        result = classify(req, bot.id if bot is not None else None, self.clock())
        match result:
            case Rejected(status, reason):
                return make_response(req, status, reason, to_tag=tag)
            case ImdnReceived(bot_id, user, message_id, status, failure):
                self._advance(bot_id, message_id, user, status, failure)
                return make_response(req, 200, to_tag=tag)
            case TypingEvent():
                self._emit(result.bot_id, result)
                return make_response(req, 200, to_tag=tag)
            case UserMessage(event, datetime, dispositions):
                if self.states.note_user(event.bot_id, event.user, event.at):
                    self._emit(event.bot_id, NewUserEvent(event.bot_id, event.user, event.at))
                self.states.note_inbound(event.bot_id, event.user, event.message_id,
                                         datetime, event.at)
                fut = self._emit(event.bot_id, event, durable=True)
                assert fut is not None
                then: Callable[[], None] | None = None
                if "positive-delivery" in dispositions:
                    # RFC 5438 §7 / protocols.md §3: the chatbot's client (the MaaP) reports
                    # delivery once the message is queued durably for the CSP; sent after the
                    # 200 by a task of the core, never holding the 200 back
                    then = functools.partial(self._report_delivered, self._bots[event.bot_id],
                                             event.user, event.message_id, datetime)
                return self._after(fut, make_response(req, 200, to_tag=tag), then)
        return make_response(req, 500, to_tag=tag)  # pragma: no cover - exhaustive match

    def inbound_sms(self, event: InboundEvent) -> asyncio.Future[None]:
        """An MO SMS to a chatbot's SMS port (issue 5), as a P2A event with ``via_sms``; the
        future resolves once it is queued durably for the CSP."""
        if self.states.note_user(event.bot_id, event.user, event.at):
            self._emit(event.bot_id, NewUserEvent(event.bot_id, event.user, event.at))
        fut = self._emit(event.bot_id, event, durable=True)
        assert fut is not None
        fut.add_done_callback(_retrieve)  # a failure is logged by the emitter already
        return fut

    @staticmethod
    async def _after(fut: asyncio.Future[None], response: Response,
                     then: Callable[[], None] | None = None) -> Response:
        """``response`` once the user's message is queued durably for the CSP (a failure to
        queue it raises: the SIP link answers 500, the sender may try again), then ``then``
        (it runs before the response is written, so what it starts runs after)."""
        await fut
        if then is not None:
            then()
        return response
