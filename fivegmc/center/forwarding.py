"""Store-and-forward for the 5GMC (issue 3): nothing accepted is lost.

A pager MESSAGE for a provisioned 5G-message subscriber who is offline is stored durably and
only then answered 202 Accepted. When the subscriber registers, its messages are delivered in
the order they were stored, one at a time, each as a new MESSAGE from the node to the UE's best
binding; a failed attempt is retried with doubling backoff (and stops the queue, so order is
kept). A message that outlives its validity expires, and the sender gets a negative-delivery
IMDN (RFC 5438) when it asked for one. Duplicates (same sender and ``imdn.Message-ID``) are
answered 202 and stored and delivered once.

The asyncio side of the feature: the SIP work goes through :class:`ProxyCore` (``answer`` for
the 202, ``originate`` for deliveries), storage through the :class:`Store` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..config import Profile
from ..core.registrar import Binding, Registrar
from ..core.routing import Distribute, Revoke
from ..cpim import ImdnStatus, build_imdn_report_cpim, parse_cpim
from ..sip.errors import RemoteProtocolError
from ..sip.message import Request
from ..sip.uri import aor_key
from ..store.protocol import (
    Store,
    StoredMessage,
    StoreError,
    StoreFull,
    TraceEvent,
)
from .cdrs import DELIVERED, DUPLICATE, EXPIRED, REVOKED, CdrRecorder, Outcome
from .proxy import ProxyCore
from .traces import RecentTraces

#: Request headers that belong to one hop or one transaction and are not stored.
_HOP_HEADERS = frozenset(h.lower() for h in (
    "Via", "Max-Forwards", "Call-ID", "CSeq", "Content-Length", "Route", "Record-Route",
    "Proxy-Authorization", "Authorization", "Proxy-Require", "Contact",
))


#: Headers of the list request that do not belong to the copies (RFC 5365 §4.1).
_LIST_HEADERS = frozenset(("to", "content-type", "require", "content-disposition"))


class StoreAndForward:
    def __init__(self, profile: Profile, store: Store, core: ProxyCore, registrar: Registrar,
                 target_flow: Callable[[Binding], Any], log: Any,
                 now: Callable[[], float], wall: Callable[[], float] = time.time,
                 cdrs: CdrRecorder | None = None,
                 route_for: Callable[[str], Binding | None] = lambda uri: None,
                 traces: RecentTraces | None = None,
                 on_imdn: Callable[[bytes, float], None] | None = None,
                 on_core_change: Callable[[], None] = lambda: None) -> None:
        self.profile = profile
        self.store = store
        self.core = core
        self.registrar = registrar
        self.target_flow = target_flow
        self.log = log
        self.now = now  # loop clock, for SIP timers
        self.wall = wall  # wall clock, for what is stored
        self.domain = profile.operator.home_domain
        self.cdrs = cdrs
        self.route_for = route_for  # the static route (next hop) serving a URI, if any
        self.traces = traces  # to find stored messages by imdn.Message-ID
        self.on_imdn = on_imdn  # an IMDN passed through (for the trace of its message)
        # called after each answer/originate: the core filed timers the adapter's loop timer
        # must cover (the adapter re-arms it, as after a received message)
        self.on_core_change = on_core_change
        self._spawn: Callable[[Awaitable[None]], Any] | None = None
        self._delivering: set[str] = set()
        # Messages stored after the answer timeout whose relay is still running: token → id
        # once stored; tokens whose late 2xx came while the put was still in flight.
        self._stored_ids: dict[object, tuple[str, float]] = {}  # token -> (id, forget at)
        self._answered_early: set[object] = set()
        # The relay's own client transaction ends by Timer F (64·T1): after that no late 2xx
        # can come, so the entry is forgotten.
        self._late_window = 64 * profile.sip.t1_ms / 1000 + 5.0
        #: Called with each message that expired undelivered (after its IMDN): where the SMS
        #: fallback plugs in (issue 5). A hook that raises is logged and does not stop others.
        self.expired_hooks: list[Callable[[StoredMessage], Awaitable[None] | None]] = []

    def _answer(self, token: object, status: int, now: float, reason: str | None = None,
                headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.core.answer(token, status, now, reason, headers)
        self.on_core_change()  # Timer J of the answered server transaction

    def bind(self, spawn: Callable[[Any], Any]) -> None:
        """Give the service its parent: the node's TaskGroup ``create_task``."""
        self._spawn = spawn

    def _start(self, coro: Any) -> None:
        if self._spawn is None:
            coro.close()
            return
        self._spawn(coro)

    # -- accepting ---------------------------------------------------------------------------
    def on_store(self, req: Request, number: str, token: object, relay_running: bool) -> None:
        """ProxyCore hands over a MESSAGE to store: the subscriber is offline, or
        (``relay_running``) its UE gave no final answer within the answer timeout."""
        try:
            msg = self._stored_form(req, number)
        except RemoteProtocolError as exc:
            self._answer(token, 400, self.now(), f"Bad Request ({exc.reason})")
            return
        if relay_running:
            # The relay goes on; the first retry waits, so the UE is not sent a second copy
            # while it may still answer the first (a late 2xx marks the stored one delivered).
            later = self.wall() + self.profile.messaging.retry_initial_s
            msg = dataclasses.replace(msg, next_attempt_at=later)
        self._start(self._accept(msg, token, relay_running))

    def on_late_success(self, token: object) -> None:
        """A UE's 2xx arrived for a message already stored after the answer timeout."""
        entry = self._stored_ids.pop(token, None)
        if entry is None:
            self._answered_early.add(token)  # the put is still in flight
            return
        self._start(self._mark_delivered_late(entry[0]))

    async def _mark_delivered_late(self, msg_id: str) -> None:
        with contextlib.suppress(StoreError):
            if await self.store.mark_delivered(msg_id, self.wall()):
                await self._trace(msg_id, "delivered", "late answer to the first relay")
                msg = await self.store.get_message(msg_id)
                if msg is not None:
                    self._cdr(msg, DELIVERED, 200)

    def _stored_form(self, req: Request, number: str) -> StoredMessage:
        ctype = (req.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        imdn_id: str | None = None
        if ctype == "message/cpim":
            imdn_id = parse_cpim(req.body).message_id  # malformed CPIM → 400 (issue 3)
        sender = aor_key(req.from_().uri) or str(req.from_().uri)
        now = self.wall()
        return StoredMessage(
            # Duplicates are per recipient: a chatbot platform (or a client fanning out itself)
            # sends the same imdn.Message-ID to each recipient in its own MESSAGE.
            id=uuid.uuid4().hex, recipient=number, sender=sender,
            imdn_message_id=f"{imdn_id}#{number}" if imdn_id else None,
            received_at=now, expires_at=now + self.profile.messaging.validity_s,
            content_type=req.headers.get("Content-Type") or "",
            body=req.body,
            headers=tuple((n, v) for n, v in req.headers if n.lower() not in _HOP_HEADERS),
            next_attempt_at=now,
        )

    async def _accept(self, msg: StoredMessage, token: object,
                      relay_running: bool = False) -> None:
        try:
            result = await self.store.put_message(msg)
        except StoreFull:
            self._answered_early.discard(token)
            self._answer(token, 503, self.now(), "Message store full",
                             (("Retry-After", "60"),))
            return
        except StoreError as exc:
            self._answered_early.discard(token)
            self.log.warning("store unavailable: answering 503", error=str(exc))
            self._answer(token, 503, self.now(), "Message store unavailable",
                             (("Retry-After", "5"),))
            return
        if result.duplicate:
            self._cdr(msg, DUPLICATE, 202)
        else:
            why = "no answer in time" if relay_running else "recipient offline"
            await self._trace(result.id, "stored", f"for {msg.recipient} ({why})")
            self._noted(msg, result.id)
        self._answer(token, 202, self.now())  # only now: the message is durable
        if relay_running:
            if token in self._answered_early:
                self._answered_early.discard(token)
                await self._mark_delivered_late(result.id)
            else:
                self._stored_ids[token] = (result.id, self.wall() + self._late_window)
            return
        if not result.duplicate and self.registrar.lookup(msg.recipient, self.now()):
            self.on_registered(msg.recipient)  # registered meanwhile: deliver now

    def on_distribute(self, req: Request, d: Distribute, token: object) -> None:
        """One-to-many (RFC 5365): a stored copy per recipient, each with its own delivery
        state; 202 once every copy is durable."""
        try:
            sender = aor_key(req.from_().uri) or str(req.from_().uri)
            imdn_id: str | None = None
            if d.message.content_type.split(";", 1)[0].strip().lower() == "message/cpim":
                imdn_id = parse_cpim(d.message.body).message_id
        except RemoteProtocolError as exc:
            self._answer(token, 400, self.now(), f"Bad Request ({exc.reason})")
            return
        keep = tuple((n, v) for n, v in req.headers
                     if n.lower() not in _HOP_HEADERS and n.lower() not in _LIST_HEADERS)
        now = self.wall()
        copies = [
            StoredMessage(
                id=uuid.uuid4().hex, recipient=number, sender=sender,
                # duplicates are per recipient here: every copy shares the imdn.Message-ID
                imdn_message_id=f"{imdn_id}#{number}" if imdn_id else None,
                received_at=now, expires_at=now + self.profile.messaging.validity_s,
                content_type=d.message.content_type, body=d.message.body,
                headers=(*keep, ("To", f"<sip:{number}@{self.domain}>"),
                         ("Content-Type", d.message.content_type)),
                next_attempt_at=now,
            )
            for number in d.numbers
        ]
        warning: tuple[tuple[str, str], ...] = ()
        if d.refused:
            shown = ", ".join(d.refused[:5]) + (" …" if len(d.refused) > 5 else "")
            warning = (("Warning", f'399 {self.domain} "not delivered to: {shown}"'),)
        self._start(self._accept_copies(copies, token, warning))

    async def _accept_copies(self, copies: list[StoredMessage], token: object,
                             warning: tuple[tuple[str, str], ...]) -> None:
        try:
            results = await asyncio.gather(*(self.store.put_message(m) for m in copies))
        except StoreError as exc:
            # Some copies may be stored: a resend is safe, duplicates are suppressed.
            self.log.warning("store unavailable for a recipient list: 503", error=str(exc))
            self._answer(token, 503, self.now(), "Message store unavailable",
                             (("Retry-After", "5"),))
            return
        for msg, result in zip(copies, results, strict=True):
            if not result.duplicate:
                await self._trace(result.id, "stored", f"for {msg.recipient} (recipient list)")
                self._noted(msg, result.id)
        self._answer(token, 202, self.now(), None, warning)
        for msg in copies:
            if self.registrar.lookup(msg.recipient, self.now()):
                self.on_registered(msg.recipient)

    def _noted(self, msg: StoredMessage, stored_id: str) -> None:
        """Index a stored message by its imdn.Message-ID; an IMDN among them goes to the
        trace of the message it reports on."""
        if self.traces is not None and msg.imdn_message_id:
            self.traces.index_stored(msg.imdn_message_id.split("#", 1)[0], stored_id)
        if (self.on_imdn is not None and b"message/imdn+xml" in msg.body[:2048]
                and msg.content_type.lower().startswith("message/cpim")):
            self.on_imdn(msg.body, self.wall())

    # -- revoking ----------------------------------------------------------------------------
    def on_revoke(self, req: Request, d: Revoke, token: object) -> None:
        """The sender withdraws a message: an undelivered stored copy is removed (200); one
        already delivered or never stored cannot be (404)."""
        self._start(self._revoke(d, token))

    async def _revoke(self, d: Revoke, token: object) -> None:
        try:
            found = await self._find_stored(d)
            if found is None:
                self._answer(token, 404, self.now(), "Message not stored")
                return
            # A delivery attempt still waiting for the UE's answer does not stop the revoke:
            # the UE has not taken the message (a UE that never answers is the fallback case);
            # should its 2xx still come, the copy stays revoked (compare-and-set) and the late
            # answer is only logged.
            if not await self.store.mark_failed(found.id, self.wall(), "revoked"):
                self._answer(token, 404, self.now(), "Message not stored")
                return
        except StoreError as exc:
            self.log.warning("store unavailable for a revoke: 503", error=str(exc))
            self._answer(token, 503, self.now(), "Message store unavailable",
                             (("Retry-After", "5"),))
            return
        await self._trace(found.id, "revoked", f"by {d.sender}")
        self._cdr(found, REVOKED, 200)
        self._answer(token, 200, self.now())

    async def _find_stored(self, d: Revoke) -> StoredMessage | None:
        """The sender's STORED message with that imdn.Message-ID for the recipient (a one-to-
        many copy is keyed ``id#number``). Scans the recipient's queue: bounded by its size."""
        wanted = {d.message_id, f"{d.message_id}#{d.number}"}
        for msg in await self.store.pending(d.number, limit=self.profile.store.max_stored):
            if msg.sender == d.sender and msg.imdn_message_id in wanted:
                return msg
        return None

    # -- delivering --------------------------------------------------------------------------
    def on_registered(self, number: str) -> None:
        """The subscriber registered (or refreshed): deliver what waits for it, in order."""
        if number in self._delivering:
            return
        self._delivering.add(number)
        self._start(self._deliver(number))

    async def _deliver(self, number: str) -> None:
        try:
            while True:
                batch = await self.store.pending(number, limit=50)
                if not batch:
                    return
                for msg in batch:
                    if msg.next_attempt_at > self.wall():
                        return  # backing off; the housekeeping loop comes back for it
                    if not await self._deliver_one(msg):
                        return  # keep the order: later ones wait behind this one
        except StoreError as exc:
            self.log.warning("store unavailable during delivery", error=str(exc))
        finally:
            self._delivering.discard(number)

    async def _deliver_one(self, msg: StoredMessage) -> bool:
        bindings = self.registrar.lookup(msg.recipient, self.now())
        if not bindings:
            return False
        status = await self._send(msg, bindings[0])
        if 200 <= status < 300:
            if await self.store.mark_delivered(msg.id, self.wall()):
                self._cdr(msg, DELIVERED, status)
                await self._trace(msg.id, "delivered", f"status {status}")
            else:  # revoked (or expired) while the UE kept silent
                await self._trace(msg.id, "late-answer", f"status {status} after it ended")
            return True
        backoff = min(self.profile.messaging.retry_initial_s * 2 ** msg.attempts,
                      self.profile.messaging.retry_max_s)
        await self.store.mark_attempt(msg.id, self.wall() + backoff)
        await self._trace(msg.id, "delivery-failed", f"status {status}, retry in {backoff:g}s")
        return False

    def _send(self, msg: StoredMessage, binding: Binding,
              request_uri: str | None = None) -> asyncio.Future[int]:
        """Originate the stored MESSAGE towards one binding; resolves to the final status."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        flow = self.target_flow(binding)
        branch = self.core.new_branch()
        lines = [
            f"MESSAGE {request_uri or binding.contact.uri} SIP/2.0",
            f"Via: {self.core.local_via(flow.transport)};branch={branch}",
            "Max-Forwards: 70",
            *(f"{n}: {v}" for n, v in msg.headers),
            f"Call-ID: {msg.id}-{msg.attempts}@{self.domain}",
            "CSeq: 1 MESSAGE",
            f"Content-Length: {len(msg.body)}",
            "",
            "",
        ]
        data = "\r\n".join(lines).encode("utf-8", "surrogateescape") + msg.body

        def settle(status: int) -> None:
            if not fut.done():
                fut.set_result(status)

        self.core.originate(data, flow, branch, "MESSAGE", settle, self.now())
        self.on_core_change()  # Timer E/F of the new client transaction
        return fut

    def _cdr(self, msg: StoredMessage, outcome: Outcome, sip_status: int) -> None:
        if self.cdrs is None:
            return
        self.cdrs.record(
            message_id=msg.id, sender=msg.sender, recipient=msg.recipient, outcome=outcome,
            sip_status=sip_status, received_at=msg.received_at, content_type=msg.content_type,
            body_size=len(msg.body), attempts=msg.attempts + 1,
            imdn_message_id=(msg.imdn_message_id or "").split("#", 1)[0] or None,
        )

    # -- housekeeping ------------------------------------------------------------------------
    async def run(self) -> None:
        """Once a second: expire what outlived its validity, retry what is due."""
        while True:
            await asyncio.sleep(1.0)
            now = self.wall()
            for token in [t for t, (_, until) in self._stored_ids.items() if until < now]:
                del self._stored_ids[token]
            try:
                await self._expire()
                for msg in await self.store.due(self.wall(), limit=1000):
                    if self.registrar.lookup(msg.recipient, self.now()):
                        self.on_registered(msg.recipient)
            except StoreError as exc:
                self.log.warning("store unavailable in housekeeping", error=str(exc))

    async def _expire(self) -> None:
        for msg in await self.store.expire(self.wall(), limit=1000):
            await self._trace(msg.id, "expired")
            self._cdr(msg, EXPIRED, 408)
            await self._negative_imdn(msg)
            for hook in self.expired_hooks:
                try:
                    result = hook(msg)
                    if result is not None:
                        await result
                except Exception as exc:  # a hook's bug must not stop expiry of the others
                    self.log.error("expiry hook failed", message_id=msg.id, error=repr(exc))

    async def _negative_imdn(self, msg: StoredMessage) -> None:
        """RFC 5438 §6.3: a failed delivery reported to a sender that asked for it, as a
        MESSAGE from the node's domain that is stored and delivered like any other."""
        if msg.content_type.split(";", 1)[0].strip().lower() != "message/cpim":
            return
        try:
            cpim = parse_cpim(msg.body)
        except RemoteProtocolError:
            return
        if "negative-delivery" not in cpim.disposition_notification or not cpim.message_id:
            return
        now = self.wall()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        sender_uri = (f"sip:{msg.sender}" if "@" in msg.sender
                      else f"sip:{msg.sender}@{self.domain}")
        body = build_imdn_report_cpim(
            from_=f"<sip:{msg.recipient}@{self.domain}>", to=f"<{sender_uri}>",
            message_id=uuid.uuid4().hex, datetime=stamp, original_message_id=cpim.message_id,
            original_datetime=cpim.datetime or stamp, kind="delivery", status="failed",
        )
        if not msg.sender.startswith("+"):
            # a chatbot (or a peer's user) behind a static route: send it there
            await self._imdn_via_route(msg, sender_uri, body)
            return
        if await self._store_report(msg.sender, msg.recipient, body):
            await self._trace(msg.id, "imdn-sent", "negative-delivery (failed)")

    async def report(self, *, recipient: str, about: str, original_message_id: str,
                     original_datetime: str | None, status: ImdnStatus,
                     message_id: str) -> None:
        """Send subscriber ``recipient`` a delivery IMDN (RFC 5438) about the message it sent
        to ``about`` (e.g. from an SMS delivery receipt), stored and delivered like any
        other message."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.wall()))
        body = build_imdn_report_cpim(
            from_=f"<sip:{about}@{self.domain}>", to=f"<sip:{recipient}@{self.domain}>",
            message_id=message_id, datetime=stamp, original_message_id=original_message_id,
            original_datetime=original_datetime or stamp, kind="delivery", status=status,
        )
        await self._store_report(recipient, about, body)

    async def _store_report(self, recipient: str, about: str, body: bytes) -> bool:
        now = self.wall()
        report = StoredMessage(
            id=uuid.uuid4().hex, recipient=recipient, sender=about,
            imdn_message_id=None, received_at=now,
            expires_at=now + self.profile.messaging.validity_s, content_type="message/cpim",
            body=body,
            headers=(("From", f"<sip:{about}@{self.domain}>;tag={uuid.uuid4().hex[:8]}"),
                     ("To", f"<sip:{recipient}@{self.domain}>"),
                     ("Content-Type", "message/cpim")),
            next_attempt_at=now,
        )
        try:
            await self.store.put_message(report)
        except StoreError as exc:
            self.log.warning("could not store an IMDN", error=str(exc))
            return False
        if self.registrar.lookup(recipient, self.now()):
            self.on_registered(recipient)
        return True

    async def _imdn_via_route(self, msg: StoredMessage, sender_uri: str, body: bytes) -> None:
        """Originate the IMDN to the route serving the sender's domain (the MaaP), retrying
        with backoff while the next hop does not answer 2xx (bounded: 6 attempts)."""
        hop = self.route_for(sender_uri)
        if hop is None:
            return  # nobody to tell (the NNI issue routes other operators' users)
        delay = self.profile.messaging.retry_initial_s
        for attempt in range(6):
            report = StoredMessage(
                id=f"{msg.id}-imdn", recipient=msg.sender, sender=msg.recipient,
                imdn_message_id=None, received_at=self.wall(), expires_at=msg.expires_at,
                content_type="message/cpim", body=body, attempts=attempt,
                headers=(("From", f"<sip:{msg.recipient}@{self.domain}>;tag={msg.id[:8]}"),
                         ("To", f"<{sender_uri}>"), ("Content-Type", "message/cpim")),
            )
            status = await self._send(report, hop, request_uri=sender_uri)
            if 200 <= status < 300:
                await self._trace(msg.id, "imdn-sent", f"negative-delivery to {sender_uri}")
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.profile.messaging.retry_max_s)
        self.log.warning("negative-delivery IMDN not accepted by the next hop",
                         message_id=msg.id, to=sender_uri)

    async def _trace(self, msg_id: str, event: str, detail: str = "") -> None:
        # a lost trace line must never lose or delay the message itself
        with contextlib.suppress(StoreError):
            await self.store.add_trace(msg_id, TraceEvent(at=self.wall(), event=event,
                                                          detail=detail))
