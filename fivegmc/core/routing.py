"""The 5GMC routing pipeline for out-of-dialog requests, as named steps (like a Kamailio
route block): sanity → auth → registrar → static route (foreign domains with a configured next
hop: chatbot platforms, peers) → dispatch (MESSAGE relay, OPTIONS capability answer, revoke, the
proper 4xx/5xx for everything else).

Pure and synchronous: it reads a parsed request, the registrar and the directory, and returns a
decision; the proxy core (``center/``) carries decisions out with transactions and transports.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Profile, password_for
from ..cpim import parse_cpim, parse_imdn
from ..cpim.scan import scan_cpim
from ..sip import digest
from ..sip.errors import RemoteProtocolError
from ..sip.headers import split_list
from ..sip.message import Request
from ..sip.recipients import ListMessage, parse_list_message
from ..sip.uri import NameAddr, SipUri, TelUri, aor_key, parse_name_addr, parse_uri
from .capability import (
    CapabilityAnswer,
    CapabilityCache,
    capability_answer,
    format_tags,
    is_rcs_tag,
)
from .registrar import Binding, Flow, Registrar
from .subscribers import SubscriberDirectory, SubscriberKind

#: Methods this node handles; others it recognises get 405 with Allow (RFC 3261 §8.2.1).
ALLOWED_METHODS = ("REGISTER", "MESSAGE", "OPTIONS", "ACK", "CANCEL")
ALLOW = ", ".join(ALLOWED_METHODS)
KNOWN_METHODS = frozenset((
    "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "MESSAGE", "SUBSCRIBE", "NOTIFY",
    "PUBLISH", "INFO", "PRACK", "UPDATE", "REFER",
))
#: Option tags this node supports (RFC 3261 §8.2.2.3, §16.3 step 5: Proxy-Require).
SUPPORTED_OPTIONS = frozenset(("path", "outbound", "gruu", "recipient-list-message"))
SUPPORTED = ", ".join(sorted(SUPPORTED_OPTIONS))
#: Bodies a 5G Message pager MESSAGE may carry (protocols.md §3–4). Others get 415.
MESSAGE_TYPES = frozenset((
    "message/cpim", "text/plain", "message/imdn+xml", "application/im-iscomposing+xml",
    "application/vnd.3gpp.sms", "multipart/mixed", "application/vnd.gsma.rcs-ft-http+xml",
    "application/vnd.gsma.botmessage.v1.0+json", "application/vnd.gsma.botsuggestion.v1.0+json",
    "application/vnd.gsma.botsuggestion.response.v1.0+json", "application/vnd.gsma.rcsrevoke+xml",
    "application/vnd.gsma.rcspushlocation+xml", "application/vnd.gsma.rcsspam-report+xml",
))
ACCEPT = ", ".join(sorted(MESSAGE_TYPES))


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the request ourselves."""

    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    log_reason: str | None = None  # why, for the WARNING/DEBUG log and metrics


@dataclass(slots=True)  # not frozen: built for every relayed request (cheaper); never edited
class Relay:
    """Proxy the request statefully to these bindings (parallel fork, §16.6)."""

    targets: tuple[Binding, ...]
    max_forwards: int
    number: str | None = None  # the recipient, when it is a subscriber (store-and-forward)
    #: Keep the Request-URI and send to the target's address (a static route's next hop)
    #: instead of retargeting to the binding's Contact (§16.5).
    keep_uri: bool = False
    #: May be stored when the UE does not answer in time (false: Request-Disposition no-queue).
    storable: bool = True
    #: What the CPIM body said, for the trace: its imdn.Message-ID and whether it is an IMDN.
    imdn_id: str | None = None
    is_report: bool = False


@dataclass(frozen=True, slots=True)
class Revoke:
    """A revoke request (``application/vnd.gsma.rcsrevoke+xml``) for a message the sender sent
    to ``number``: the adapter removes the undelivered stored copy (200) or answers 404."""

    number: str
    sender: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Store:
    """Accept for store-and-forward: the subscriber is offline (issue 3). The adapter stores
    the message durably and answers 202 only after that."""

    number: str


@dataclass(frozen=True, slots=True)
class Distribute:
    """One-to-many (RFC 5365): store a copy per recipient, then deliver each (issue 3)."""

    message: ListMessage
    numbers: tuple[str, ...]  # 5G-message subscribers, in list order, without repeats
    refused: tuple[str, ...]  # list entries that are not (unknown, SMS-only, foreign)


@dataclass(frozen=True, slots=True)
class Absorb:
    """Nothing to answer (a stray ACK, §17.2.3: matched by no transaction)."""

    why: str


@dataclass(frozen=True, slots=True)
class SmsOut:
    """P2P SMS fallback: send the MESSAGE's text to an SMS-only subscriber as an SMS (issue 5;
    the adapter answers 202 once the SMSC has it)."""

    number: str


Decision = Reply | Relay | Store | Distribute | Revoke | SmsOut | Absorb

REVOKE_TYPE = "application/vnd.gsma.rcsrevoke+xml"


_LOOP_FIELDS = ("from", "to", "call-id", "cseq", "proxy-require")


def loop_hash(req: Request) -> str:
    """RFC 3261 §16.6 step 8: a hash of the fields that make a request 'the same' for loop
    detection (Request-URI, From tag, To tag, Call-ID, CSeq number, Proxy-Require)."""
    from_, to, call_id, cseq, proxy_require = req.headers.first_values(_LOOP_FIELDS)
    key = "|".join((req.uri, from_, to, call_id, cseq.split(" ", 1)[0], proxy_require))
    return format(zlib.crc32(key.encode("utf-8", "surrogateescape")), "08x")


class Router:
    """The named steps of the pipeline. One instance per node; no global state."""

    def __init__(
        self,
        profile: Profile,
        registrar: Registrar,
        directory: SubscriberDirectory,
        *,
        local_sent_by: Callable[[], frozenset[str]],
        nonces: digest.NonceManager | None = None,
        wall_clock: Callable[[], float] | None = None,
        on_registered: Callable[[str], None] | None = None,
        on_bindings: Callable[[str, tuple[Binding, ...]], None] | None = None,
    ) -> None:
        self.profile = profile
        self.registrar = registrar
        self.directory = directory
        self.local_sent_by = local_sent_by
        self.nonces = nonces
        # Nonces carry wall-clock time (so they survive a restart); timers use ``now``.
        self.wall_clock = wall_clock
        # Told after every successful REGISTER that leaves bindings (store-and-forward delivers).
        self.on_registered = on_registered
        # Told after every successful REGISTER with the AoR's bindings now (for persistence).
        self.on_bindings = on_bindings
        op = profile.operator
        self.home_domain = op.home_domain.lower()
        self.local_domains = {self.home_domain, *(d.lower() for d in op.local_domains)}
        self.local_domains.add(profile.sip.host.lower())
        self.realm = profile.auth.effective_realm(op)
        self.capabilities = CapabilityCache(profile.capability.cache_ttl_s)
        self.max_forwards = profile.sip.max_forwards
        # Set by the adapter when an ESME for P2P SMS fallback is running.
        self.sms_fallback_ready = False
        # Static routes: foreign Request-URI domain → next hop (as a binding to relay to).
        self.routes: dict[str, Binding] = {}
        for route in profile.routes:
            self.add_route(route.domain, route.next_hop)

    def add_local_domain(self, domain: str) -> None:
        self.local_domains.add(domain.lower())

    def add_route(self, domain: str, next_hop: str) -> None:
        """Send requests for ``domain`` to ``next_hop`` (``sip:host:port;transport=tcp``) and
        trust requests from that host whose From is in ``domain`` (a trusted peer: the MaaP,
        an interconnect partner), as an IBCF trusts its configured peers."""
        uri = parse_uri(next_hop)
        if not isinstance(uri, SipUri):
            raise ValueError(f"next hop must be a SIP URI: {next_hop!r}")
        transport = (uri.param("transport") or "udp").lower()
        port = uri.port or (5061 if transport == "tls" else 5060)
        self.routes[domain.lower()] = Binding(
            aor=domain.lower(), contact=NameAddr(uri), contact_key=next_hop,
            expires_at=float("inf"), call_id="", cseq=0,
            flow=Flow(transport, uri.host.strip("[]"), port),
        )

    def route_for(self, uri: object) -> Binding | None:
        """The static route serving a URI's host, if any."""
        if not self.routes or not isinstance(uri, SipUri):
            return None
        return self.routes.get(uri.host.lower())

    def trusted_peer(self, req: Request, flow: Flow) -> bool:
        """A request from a configured next hop, sent on behalf of its own domain."""
        hop = self.route_for(req.from_().uri)
        return hop is not None and hop.flow.host == flow.host

    # -- the pipeline ------------------------------------------------------------------
    def route(self, req: Request, flow: Flow, now: float) -> Decision:
        # The steps in order; each guard is the step's own first test, checked here so that a
        # relayed MESSAGE makes no call that can only return None.
        decision = self.sanity(req)
        if decision is None and self.nonces is not None and req.method != "CANCEL":
            decision = self.authenticate(req, flow, now)
        if decision is None and req.method == "REGISTER":
            decision = self.registrar_step(req, flow, now)
        if decision is None and self.routes:
            decision = self.static_route(req)
        return decision or self.dispatch(req, now)

    def static_route(self, req: Request) -> Decision | None:
        """Requests for a routed foreign domain go to its next hop, Request-URI unchanged."""
        hop = self.route_for(req.request_uri()) if self.routes else None
        if hop is None or req.method in ("CANCEL", "REGISTER"):
            return None
        mf = req.max_forwards()
        return Relay((hop,), (mf if mf is not None else self.max_forwards + 1) - 1,
                     keep_uri=True)

    def sanity(self, req: Request) -> Decision | None:
        """RFC 3261 §16.3 request validation, and §8.2 UAS checks for what we terminate."""
        method = req.method
        if method == "ACK":
            return Absorb("ACK matched no transaction")
        # The identities are needed for routing replies, traces and CDRs: parse them now so a
        # malformed one is a 400 here, not a failure later (RemoteProtocolError → 400).
        req.from_()
        req.to()
        mf = req.max_forwards()
        if mf is not None and mf == 0 and method != "OPTIONS" and method != "REGISTER":
            return Reply(483, log_reason="Max-Forwards reached 0")
        ruri = req.request_uri()
        if not isinstance(ruri, SipUri | TelUri):
            return Reply(416, log_reason=f"Request-URI scheme {ruri.scheme!r}")
        proxy_require = req.headers.get_all("Proxy-Require")
        unsupported = proxy_require and [
            o for o in proxy_require if o.lower() not in SUPPORTED_OPTIONS]
        if unsupported:
            return Reply(
                420, headers=(("Unsupported", ", ".join(unsupported)),),
                log_reason="unsupported Proxy-Require",
            )
        # §16.4: a Route entry naming this node was for us; remove it before routing.
        top_route = req.headers.get("Route")
        if top_route is not None:
            first = split_list(top_route)[0]
            uri = parse_name_addr(first).uri
            if isinstance(uri, SipUri) and self._is_local(uri):
                req.headers.pop_first_value("Route")
                req.invalidate()
        # Loop detection (§16.3 step 4): our own Via with the same loop hash is a loop; the
        # same Via with another hash is a spiral and allowed.
        local = self.local_sent_by()
        for field in req.headers.get_fields("Via"):
            for sb in local:
                if sb in field:
                    return self._loop_check(req, local)
        return None

    @staticmethod
    def _loop_check(req: Request, local: frozenset[str]) -> Decision | None:
        lh = None
        for via in req.vias():
            if via.sent_by in local:
                branch = via.branch or ""
                lh = lh or loop_hash(req)
                if branch.startswith("z9hG4bK") and branch[7:15] == lh:
                    return Reply(482, log_reason="request looped back to this node")
        return None

    def authenticate(self, req: Request, flow: Flow, now: float) -> Decision | None:
        """Digest auth (RFC 3261 §22, RFC 8760) when the profile enables it.

        REGISTER is challenged with 401. Other requests are trusted when they come over a flow
        on which their sender is registered (as a P-CSCF trusts its UEs' flows); otherwise
        they are challenged with 407.
        """
        if self.nonces is None or req.method == "CANCEL":
            return None
        if self.routes and self.trusted_peer(req, flow):
            return None
        wall = self.wall_clock() if self.wall_clock is not None else now
        is_register = req.method == "REGISTER"
        if is_register:
            number = aor_key(req.to().uri)
        else:
            number = aor_key(req.from_().uri)
            if number is not None:
                for b in self.registrar.lookup(number, now):
                    if b.flow == flow:
                        return None
        header = "Authorization" if is_register else "Proxy-Authorization"
        stale = False
        for value in req.headers.get_fields(header):
            try:
                creds = digest.parse_credentials(value)
            except digest.DigestError as exc:
                return Reply(400, log_reason=f"bad {header}: {exc}")
            if creds.realm != self.realm:
                continue
            if not _same_uri(creds.uri, req.uri):
                # RFC 7616 §3.4.6 / RFC 2617 §3.2.2.5: credentials are bound to the target.
                return Reply(400, "Authorization uri does not match the Request-URI",
                             log_reason="digest uri mismatch")
            status = self.nonces.check(creds.nonce, wall)
            if status is digest.NonceStatus.INVALID:
                continue
            if status is digest.NonceStatus.STALE:
                stale = True
                continue
            password = (
                password_for(self.profile, creds.username) if creds.username == number else None
            )
            if password is not None and digest.verify(
                creds, method=req.method, password=password, realm=self.realm,
                allowed_algorithms=self.profile.auth.algorithms,
            ):
                return None
            return Reply(403, log_reason="digest credentials do not match")
        status_code = 401 if is_register else 407
        challenge_header = "WWW-Authenticate" if is_register else "Proxy-Authenticate"
        nonce = self.nonces.issue(wall)
        challenges = tuple(
            (challenge_header, digest.challenge(self.realm, nonce, alg, stale=stale))
            for alg in self.profile.auth.algorithms
        )
        return Reply(status_code, headers=challenges, log_reason=None)

    def registrar_step(self, req: Request, flow: Flow, now: float) -> Decision | None:
        """REGISTER processing (RFC 3261 §10.3)."""
        if req.method != "REGISTER":
            return None
        ruri = req.request_uri()
        if not isinstance(ruri, SipUri) or ruri.host.lower() not in self.local_domains:
            return Reply(404, "Domain not served here", log_reason="REGISTER for a foreign domain")
        unsupported = self._unsupported_require(req)
        if unsupported is not None:
            return unsupported
        to_uri = req.to().uri
        if isinstance(to_uri, SipUri) and to_uri.host.lower() not in self.local_domains:
            # §10.3 step 5: the To must name an AoR of this registrar's domain.
            return Reply(404, "Domain not served here", log_reason="REGISTER To foreign domain")
        number = aor_key(to_uri)
        kind = self.directory.kind(number)
        if kind is SubscriberKind.UNKNOWN or number is None:
            status = 403 if self.nonces is not None else 404
            return Reply(status, log_reason="REGISTER for an unknown number")
        expires_header = req.int_header("Expires")
        outcome = self.registrar.register(
            number, req.contacts(), expires_header=expires_header, call_id=req.call_id(),
            cseq=req.cseq()[0], flow=flow, now=now,
        )
        if outcome.status == 423:
            return Reply(423, headers=(("Min-Expires", str(outcome.min_expires)),))
        if outcome.status != 200:
            return Reply(outcome.status, outcome.reason, log_reason=outcome.reason)
        self.capabilities.invalidate(number)  # what the UE can do may have changed
        if outcome.changed and self.on_bindings is not None:
            self.on_bindings(number, outcome.bindings)
        if outcome.bindings and self.on_registered is not None:
            self.on_registered(number)
        headers = tuple(
            ("Contact", _with_expires(b.contact, b.remaining(now))) for b in outcome.bindings
        )
        return Reply(200, headers=headers)

    def dispatch(self, req: Request, now: float) -> Decision:
        method = req.method
        if method == "MESSAGE":
            return self.message(req, now)
        if method == "OPTIONS":
            return self.options(req, now)
        if method == "CANCEL":
            # No INVITE transactions are proxied yet, so a CANCEL matches nothing (§9.2).
            return Reply(481, log_reason="CANCEL matched no transaction")
        if method in KNOWN_METHODS:
            return Reply(405, headers=(("Allow", ALLOW),), log_reason=f"{method} not supported")
        return Reply(501, headers=(("Allow", ALLOW),), log_reason=f"unknown method {method}")

    def message(self, req: Request, now: float) -> Decision:
        """Pager-mode MESSAGE (RFC 3428): relay to every live binding of the recipient."""
        required = req.headers.get_all("Require")
        if required and any(o.lower() == "recipient-list-message" for o in required):
            return self.recipient_list(req)
        ctype = (req.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if req.body and not ctype:
            return Reply(400, "Missing Content-Type", log_reason="MESSAGE body without type")
        if ctype and ctype not in MESSAGE_TYPES:
            return Reply(415, headers=(("Accept", ACCEPT),), log_reason=f"MESSAGE type {ctype}")
        encoding = (req.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            return Reply(
                415, headers=(("Accept-Encoding", "identity"),),
                log_reason=f"Content-Encoding {encoding}",
            )
        target = self._local_target(req)
        if isinstance(target, Reply):
            return target
        number, kind = target
        if ctype == REVOKE_TYPE:
            return self.revoke(req, number)
        imdn_id: str | None = None
        is_report = False
        if ctype == "message/cpim":
            try:  # RFC 3862 / RFC 5438: malformed CPIM or IMDN is refused, not passed on
                summary = scan_cpim(req.body)
                is_report = summary.content_type == "message/imdn+xml"
                if is_report:
                    parse_imdn(parse_cpim(req.body).content)
            except RemoteProtocolError as exc:
                return Reply(400, f"Bad Request ({exc.reason})"[:200],
                             log_reason=f"malformed CPIM/IMDN: {exc.reason}")
            imdn_id = summary.message_id
        if kind is SubscriberKind.SMS_ONLY:
            # protocols.md §6: P2P falls back to SMS (profile switch); a chatbot platform's
            # MESSAGE gets the 480 and applies its own fallback policy.
            if (self.profile.messaging.sms_fallback and self.sms_fallback_ready
                    and self.route_for(req.from_().uri) is None):
                return SmsOut(number)
            return Reply(480, "Recipient has no 5G Message client",
                         log_reason="MESSAGE to an SMS-only subscriber")
        bindings = self.registrar.lookup(number, now)
        # RFC 3841 §9.1: "no-queue" asks us not to hold the request for a later delivery.
        directives = (req.headers.get("Request-Disposition") or "").lower()
        storable = "no-queue" not in directives
        if not bindings:
            if self.profile.messaging.store_and_forward and storable:
                return Store(number)
            return Reply(480, log_reason="recipient not registered")
        if len(bindings) > 1 and "no-fork" in directives:
            bindings = bindings[:1]  # RFC 3841 §9.1: one target only, the best one
        mf = req.max_forwards()
        return Relay(tuple(bindings), (mf if mf is not None else self.max_forwards + 1) - 1,
                     number, storable=storable, imdn_id=imdn_id, is_report=is_report)

    def revoke(self, req: Request, number: str) -> Decision:
        """A sender withdraws a message it sent to ``number`` (GSMA revoke, used by the MaaP):
        the body names the CPIM ``imdn.Message-ID``."""
        message_id = parse_revoke(req.body)
        if message_id is None:
            return Reply(400, "Bad Request (revoke body names no Message-ID)",
                         log_reason="malformed revoke body")
        sender = aor_key(req.from_().uri) or str(req.from_().uri)
        return Revoke(number, sender, message_id)

    def note_capabilities(self, number: str, status: int, contact: str | None,
                          now: float) -> None:
        """Cache what a UE answered to a forwarded OPTIONS (its 200 Contact's RCS tags)."""
        if status != 200:
            return
        tags: tuple[tuple[str, str | None], ...] = ()
        if contact:
            try:
                tags = tuple(t for t in parse_name_addr(split_list(contact)[0]).params
                             if is_rcs_tag(*t))
            except (RemoteProtocolError, IndexError):
                tags = ()
        self.capabilities.put(number, CapabilityAnswer(200, None, tags), now)

    def recipient_list(self, req: Request) -> Decision:
        """RFC 5365: this node is the MESSAGE URI-list service for its domain."""
        ruri = req.request_uri()
        if isinstance(ruri, SipUri) and ruri.host.lower() not in self.local_domains:
            return Reply(404, "Domain not served here")
        if not self.profile.messaging.store_and_forward:
            return Reply(420, headers=(("Unsupported", "recipient-list-message"),),
                         log_reason="one-to-many needs store-and-forward")
        listed = parse_list_message(req.headers.get("Content-Type") or "", req.body)
        cap = self.profile.messaging.max_recipients
        if len(listed.recipients) > cap:
            return Reply(413, f"Too many recipients ({len(listed.recipients)} > {cap})",
                         log_reason="recipient list over the profile cap")
        numbers: list[str] = []
        refused: list[str] = []
        for r in listed.recipients:
            try:
                uri = parse_uri(r.uri)
            except RemoteProtocolError:
                refused.append(r.uri)
                continue
            number = aor_key(uri)
            local = not isinstance(uri, SipUri) or uri.host.lower() in self.local_domains
            if local and self.directory.kind(number) is SubscriberKind.RCS and number:
                if number not in numbers:
                    numbers.append(number)
            else:
                refused.append(r.uri)
        if not numbers:
            return Reply(404, "No 5G Message recipient in the list")
        return Distribute(listed, tuple(numbers), tuple(refused))

    def options(self, req: Request, now: float) -> Decision:
        """OPTIONS: to the node itself (keep-alive / probe) or a capability query (§4)."""
        unsupported = self._unsupported_require(req)
        if unsupported is not None:
            return unsupported
        ruri = req.request_uri()
        if isinstance(ruri, SipUri) and ruri.user is None:
            if ruri.host.lower() in self.local_domains:
                return Reply(200, headers=self._capability_headers())
            return Reply(404, "Domain not served here")
        target = self._local_target(req)
        if isinstance(target, Reply):
            return target
        number, kind = target
        bindings = self.registrar.lookup(number, now)
        if (self.profile.capability.mode == "forward" and kind is SubscriberKind.RCS
                and bindings):
            cached = self.capabilities.get(number, now)
            if cached is None:
                mf = req.max_forwards()
                # the UE answers for itself (protocols.md §4); note_capabilities caches it
                return Relay(tuple(bindings), (mf if mf is not None else self.max_forwards + 1)
                             - 1, number)
            answer = cached
        else:
            answer = capability_answer(kind, bindings)
        if answer.status != 200:
            return Reply(answer.status, answer.reason)
        contact = f"<sip:{number}@{self.home_domain};user=phone>{format_tags(answer.tags)}"
        return Reply(200, headers=(("Contact", contact), *self._capability_headers()))

    # -- helpers -------------------------------------------------------------------------
    def _is_local(self, uri: SipUri) -> bool:
        host = uri.host.lower()
        if uri.port is None:
            return host in self.local_domains
        return f"{host}:{uri.port}" in self.local_sent_by() or (
            host in self.local_domains and not _is_ip(host))

    def _local_target(self, req: Request) -> tuple[str, SubscriberKind] | Reply:
        ruri = req.request_uri()
        if isinstance(ruri, SipUri) and ruri.host.lower() not in self.local_domains:
            return Reply(404, "Domain not served here", log_reason=f"foreign domain {ruri.host}")
        number = aor_key(ruri)
        kind = self.directory.kind(number)
        if number is None or kind is SubscriberKind.UNKNOWN:
            return Reply(404, log_reason="unknown recipient")
        return number, kind

    def _unsupported_require(self, req: Request) -> Reply | None:
        required = req.headers.get_all("Require")
        bad = [o for o in required if o.lower() not in SUPPORTED_OPTIONS]
        if bad:
            return Reply(420, headers=(("Unsupported", ", ".join(bad)),),
                         log_reason="unsupported Require")
        return None

    @staticmethod
    def _capability_headers() -> tuple[tuple[str, str], ...]:
        return (("Allow", ALLOW), ("Accept", ACCEPT), ("Supported", SUPPORTED))


def _with_expires(contact: NameAddr, remaining: int) -> str:
    """The binding's Contact with its remaining time as the ``expires`` param (§10.3 step 8)."""
    params = tuple(p for p in contact.params if p[0].lower() != "expires")
    return str(NameAddr(contact.uri, contact.display_name, (*params, ("expires", str(remaining)))))


def _same_uri(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        ua, ub = parse_uri(a), parse_uri(b)
    except RemoteProtocolError:
        return False
    if isinstance(ua, SipUri) and isinstance(ub, SipUri):
        return (ua.scheme, ua.user, ua.host.lower(), ua.port) == (
            ub.scheme, ub.user, ub.host.lower(), ub.port)
    return str(ua) == str(ub)


def _is_ip(host: str) -> bool:
    return host.startswith("[") or host.replace(".", "").isdigit()


_REVOKE_ID = re.compile(rb"<(?:[A-Za-z0-9_-]+:)?Message-ID>\s*([^<\s]{1,256})\s*</", re.I)


def parse_revoke(body: bytes) -> str | None:
    """The Message-ID a revoke body (``<revoke><Message-ID>…</Message-ID></revoke>``) names."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        return None  # no DTDs in our XML (entity expansion)
    found = _REVOKE_ID.search(body)
    return found.group(1).decode("utf-8", "replace") if found else None
