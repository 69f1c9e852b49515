"""Typed operator profiles.

A profile is a TOML file describing one lab operator node (see ``profiles/lab.toml``). It decodes
into the frozen, documented structures below; unknown keys, wrong types and inconsistent values are
reported at start as one :class:`ProfileError` whose lines read ``<file>: <key.path>: <problem>``.

Loading does three things, in order:

1. parse the TOML text into a plain dict and apply ``--set key=value`` overrides to it;
2. convert that dict into :class:`Profile` (the conversion ``msgspec.toml.decode(..., type=...)``
   performs, split in two only so overrides can edit the raw dict first);
3. run the semantic checks, then resolve derived values: ``sip.tls_cert``/``sip.tls_key`` become
   absolute paths (relative ones are taken from the profile file's directory) and ``auth.realm`` is
   filled in from ``operator.home_domain`` when unset. A loaded profile therefore always has a
   realm; for a :class:`Profile` built directly in code use :meth:`AuthConfig.effective_realm`.

Nothing here is global: callers pass the loaded :class:`Profile` down.
"""

import importlib.resources
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal

import msgspec

__all__ = [
    "AdminConfig",
    "AuthConfig",
    "AuthUser",
    "ChatbotConfig",
    "LogConfig",
    "MaapConfig",
    "NodeConfig",
    "NumberRange",
    "OperatorConfig",
    "Profile",
    "ProfileError",
    "RegistrarConfig",
    "RouteConfig",
    "SipConfig",
    "SmppAccount",
    "SmscConfig",
    "load_profile",
    "load_profile_text",
    "password_for",
]

_E164 = re.compile(r"\+[0-9]{6,15}")
AUTH_ALGORITHMS = frozenset({"MD5", "SHA-256"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MIN_MESSAGE_SIZE = 1024
MAX_MESSAGE_SIZE = 1_048_576
EMBEDDED_SOURCE = "fivegmc/profiles/lab.toml (embedded default)"
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


class ProfileError(Exception):
    """A profile could not be read, decoded or validated.

    ``problems`` holds one ``"<key.path>: <what was expected>"`` entry per problem found; the
    exception message prefixes each with the source file, one per line.
    """

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))


# --------------------------------------------------------------------------------------------------
# Schema

# Every section is a frozen, keyword-only msgspec Struct that rejects unknown keys.


class NumberRange(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A block of E.164 numbers provisioned on this operator node."""

    #: First number of the block, E.164 (``+`` then 6–15 digits).
    first: str
    #: Last number of the block (inclusive), same length as ``first``.
    last: str
    #: ``rcs``: 5G-message capable subscribers; ``sms_only``: reachable by SMS fallback only.
    kind: Literal["rcs", "sms_only"]
    #: Lab-only generated digest password, ``{number}`` replaced by the subscriber's number
    #: (e.g. ``"lab-{number}"``). None: numbers in this range have no generated password.
    password_template: str | None = None

    def contains(self, number: str) -> bool:
        """True if ``number`` (E.164 with ``+``) lies within this range."""
        return len(number) == len(self.first) and self.first <= number <= self.last


class OperatorConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Who this node is: operator name, domains and provisioned numbers."""

    #: Short operator name, used in logs, metrics and CDRs.
    name: str = "lab"
    #: IMS home domain; request URIs in it are local, and the default digest realm.
    home_domain: str = "ims.mnc000.mcc460.3gppnetwork.org"
    #: Extra domains/IPs treated as local (the node also adds its own listen IP at run time).
    local_domains: tuple[str, ...] = ()
    #: Provisioned number blocks; they must not overlap.
    number_ranges: tuple[NumberRange, ...] = ()

    def range_for(self, number: str) -> NumberRange | None:
        """The provisioned range holding ``number``, or None."""
        for number_range in self.number_ranges:
            if number_range.contains(number):
                return number_range
        return None


class SipConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """SIP listeners, limits and RFC 3261 timers."""

    #: Listen address for UDP, TCP and TLS.
    host: str = "127.0.0.1"
    #: UDP port (0: ephemeral, as used by tests).
    udp_port: int = 5060
    #: TCP port (0: ephemeral).
    tcp_port: int = 5060
    #: TLS port (0: ephemeral); TLS listens only when tls_cert and tls_key are set.
    tls_port: int = 5061
    #: PEM certificate chain for TLS; relative paths are taken from the profile's directory.
    tls_cert: str | None = None
    #: PEM private key for TLS; set together with tls_cert.
    tls_key: str | None = None
    #: Listen on UDP.
    enable_udp: bool = True
    #: Listen on TCP.
    enable_tcp: bool = True
    #: Largest accepted SIP message in bytes; larger ones are answered 513.
    max_message_size: int = 65535
    #: RFC 3261 T1, RTT estimate (ms).
    t1_ms: int = 500
    #: RFC 3261 T2, maximum retransmit interval for non-INVITE requests (ms).
    t2_ms: int = 4000
    #: RFC 3261 T4, maximum time a message stays in the network (ms).
    t4_ms: int = 5000
    #: Max-Forwards inserted into requests that lack one.
    max_forwards: int = 70
    #: Close TCP/TLS connections idle for this long (seconds).
    tcp_idle_timeout_s: float = 300.0
    #: Refuse new TCP/TLS connections beyond this many.
    max_tcp_connections: int = 10000
    #: Value of the Server/User-Agent header the node sends.
    server_header: str = "fivegmc"
    #: Overload: when the UDP socket holds more than this many bytes of unread datagrams
    #: (kernel accounting: ~2-5 KB per datagram), new requests are answered 503 + Retry-After
    #: until the backlog halves. 0 disables the check.
    overload_backlog_bytes: int = 4_000_000
    #: Overload: at most this many relayed requests waiting for a final response; beyond it
    #: new requests are answered 503 + Retry-After (bounded memory when UEs do not answer).
    max_pending_relays: int = 20000
    #: Retry-After (seconds) sent with overload 503s (RFC 3261 §20.33).
    overload_retry_after_s: int = 1

    @property
    def tls_enabled(self) -> bool:
        """True when a certificate and key are configured."""
        return self.tls_cert is not None and self.tls_key is not None


class RegistrarConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """REGISTER policy (expiry bounds, bindings per address of record)."""

    #: Shorter non-zero expiries are answered 423 Interval Too Brief (seconds).
    min_expires: int = 60
    #: Expiry granted when the request asks for none (seconds).
    default_expires: int = 3600
    #: Longer requested expiries are cut down to this (seconds).
    max_expires: int = 7200
    #: Most contacts bound to one address of record at once.
    max_contacts_per_aor: int = 10


class AuthUser(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An explicit digest credential, taking precedence over a range's password_template."""

    #: Subscriber number, E.164, inside a provisioned range.
    number: str
    #: Lab password for that number.
    password: str


class AuthConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Digest authentication (RFC 3261 §22, RFC 8760 for SHA-256)."""

    #: Challenge REGISTER and MESSAGE requests from subscribers.
    enabled: bool = False
    #: Digest realm; None means operator.home_domain (a loaded profile always has it filled in).
    realm: str | None = None
    #: Algorithms offered, one challenge each, in this order; subset of MD5, SHA-256.
    algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    #: Lifetime of a nonce before it is answered stale=true (seconds).
    nonce_ttl_s: int = 300
    #: Explicit credentials, checked before any range password_template.
    users: tuple[AuthUser, ...] = ()

    def effective_realm(self, operator: OperatorConfig) -> str:
        """The realm to challenge with: ``realm`` if set, else the operator's home domain."""
        return self.realm if self.realm is not None else operator.home_domain


class AdminConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The admin HTTP endpoint (health, metrics, admin API)."""

    #: Listen address.
    host: str = "127.0.0.1"
    #: Listen port (0: ephemeral).
    port: int = 9090
    #: Serve the admin endpoint at all.
    enabled: bool = True


class LogConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Logging output."""

    #: Minimum level: DEBUG, INFO, WARNING or ERROR.
    level: str = "INFO"
    #: ``json``: one JSON object per line; ``console``: human-readable.
    format: Literal["json", "console"] = "json"


class StoreConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[store]``: where accepted messages, registrations and traces are kept."""

    #: Backend: "sqlite" (embedded, durable), "memory" (lost on exit) or "redis" (shared).
    kind: Literal["memory", "sqlite", "redis"] = "sqlite"
    #: SQLite file; a relative path is taken from the working directory.
    path: str = ".fivegmc-data/store.db"
    #: Redis URL for kind = "redis".
    url: str = "redis://127.0.0.1:6379/0"
    #: At most this many messages waiting for delivery; beyond it new ones get 503.
    max_stored: int = 1_000_000


class MessagingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[messaging]``: store-and-forward policy of the 5GMC."""

    #: Accept MESSAGEs for offline 5G-message subscribers (202) and deliver them later;
    #: false answers 480 instead.
    store_and_forward: bool = True
    #: How long a stored message is kept before it expires (seconds; 7 days).
    validity_s: float = 604800.0
    #: One-to-many MESSAGE (RFC 5365): at most this many recipients; more → 413.
    max_recipients: int = 100
    #: A relayed MESSAGE whose UE gives no final answer within this long is stored and
    #: answered 202 (well before the sender's Timer F of 32 s); 0 disables.
    answer_timeout_s: float = 8.0
    #: First retry of a failed delivery after this long, doubling up to retry_max_s.
    retry_initial_s: float = 5.0
    retry_max_s: float = 600.0
    #: Traces of relayed (not stored) messages kept in memory for the admin API, newest first
    #: out; stored messages keep theirs in the store.
    recent_traces: int = 100_000
    #: P2P SMS fallback (protocols.md §6): a MESSAGE from a subscriber to an SMS-only
    #: subscriber goes out as an SMS (its text part) through the SMSC ([smsc.esme] bind), and
    #: the sender gets 202 and, if asked, a delivery IMDN from the receipt; false answers 480.
    sms_fallback: bool = True


class CapabilityConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[capability]``: how OPTIONS capability queries for subscribers are answered."""

    #: "registrar": from the feature tags the UE registered; "forward": relay the OPTIONS to
    #: the UE and pass its own answer back (cached below).
    mode: Literal["registrar", "forward"] = "registrar"
    #: Keep a UE's forwarded answer this long (seconds; 0 = no cache). A new REGISTER of the
    #: number drops its entry.
    cache_ttl_s: float = 60.0


class CdrConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[cdr]``: charging data records, one per message outcome (length-delimited protobuf)."""

    enabled: bool = True
    #: Directory of the CDR files; a relative path is taken from the working directory.
    dir: str = ".fivegmc-data/cdr"
    #: A new file is started before one would grow past this many bytes.
    max_file_bytes: int = 64 * 1024 * 1024


class RouteConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[[routes]]``: requests for a foreign domain sent to a fixed next hop (a MaaP, a peer)."""

    #: Request-URI host this route serves (e.g. ``botplatform.rcs.chinamobile.com``).
    domain: str
    #: Where to send them: a SIP URI naming host, port and transport
    #: (``sip:127.0.0.1:5070;transport=tcp``).
    next_hop: str


class ChatbotConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[[maap.chatbots]]``: one chatbot provisioned on the MaaP."""

    #: Chatbot id: the GSMA ``botId``, or the CT/CU chatbotId / CMCC service code.
    id: str
    #: Chatbot SIP URI, e.g. ``sip:12599@botplatform.rcs.chinamobile.com``.
    uri: str
    #: Northbound API dialect: ``gsma`` (MaaP bot/v1 + OAuth2), ``ctcu`` (China Telecom /
    #: Unicom JSON) or ``cmcc`` (China Mobile OMA NetAPI XML).
    dialect: Literal["gsma", "ctcu", "cmcc"]
    #: Credentials: GSMA clientId / CT-CU appId / CMCC appId.
    app_id: str
    #: GSMA clientSecret / CT-CU appKey / CMCC password (lab credentials only).
    secret: str
    #: GSMA: webhook URL events are POSTed to. CT/CU and CMCC: the CSP's notify URL base.
    webhook: str = ""
    #: Shared secret for the webhook signature (GSMA HMAC-SHA256 of the body); "" = unsigned.
    webhook_secret: str = ""
    #: Directory entry shown to UEs.
    name: str = ""
    description: str = ""
    category: str = ""
    #: SMS port (service number) the chatbot is reached on by SMS, e.g. ``1065900000001``.
    sms_port: str = ""
    #: API sends per second allowed (token bucket, burst = one second's worth); beyond → 429.
    rate_limit_per_s: float = 100.0
    #: Traffic types this chatbot may send (CPIM ``maap.Traffic-Type``).
    traffic_types: tuple[str, ...] = ("advertisement", "payment", "premium", "subscription",
                                      "token")
    #: SMS fallback text when the request gives none (CMCC: no per-message field; an H5 link).
    fallback_text: str = ""
    #: CT/CU (protocols.md §10): after a successful accessToken call the platform verifies the
    #: CSP's notify URL (``GET {notifyURL}/notifyPath``, the CSP echoes ``echoStr`` and gives
    #: its ``appId``); sends are refused with errorCode 30006 until that check has passed.
    verify_notify_url: bool = False
    #: GSMA: header carrying the webhook signature (protocols.md §11 [U]) and its HMAC hash
    #: (value ``<algorithm>=<hex HMAC(webhook_secret, raw body)>``).
    webhook_signature_header: str = "X-MaaP-Signature"
    webhook_signature_algorithm: Literal["sha256", "sha384", "sha512", "sha1"] = "sha256"


class EsmeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[smsc.esme]``: how the 5GMC/MaaP bind to an SMSC (as a transceiver) for SMS fallback."""

    #: SMSC address; "" / 0 = this profile's own SMSC stub.
    host: str = ""
    port: int = 0
    system_id: str = "fivegmc"
    password: str = "lab-smpp"
    #: Most submit_sm in flight (unanswered) at once.
    window: int = 10
    #: enquire_link keep-alive interval (seconds).
    enquire_link_s: float = 30.0
    #: Reconnect backoff: first wait, doubling up to the max (seconds).
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    #: A response not received within this long drops the connection (seconds).
    response_timeout_s: float = 10.0
    #: Messages held in memory while the SMSC is unreachable; beyond → refused.
    max_held: int = 10000


class MaapSmsConfig(EsmeConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[maap.sms]``: the MaaP's own ESME bind to an SMSC for SMS fallback of chatbot messages
    and MO SMS to chatbots' SMS ports (issue 5): the ``[smsc.esme]`` keys, with the MaaP's own
    account, plus the two below."""

    #: Bind and fall back at all (off: a recipient the 5GMC cannot reach simply fails).
    enabled: bool = False
    #: Bind credentials (an ``[[smsc.accounts]]`` entry; SMPP v3.4 §5.2: ≤ 15 / ≤ 8 chars).
    system_id: str = "maap"
    password: str = "lab-maap"
    #: SMS source address for every chatbot; "" = the chatbot's ``sms_port``.
    source: str = ""

class CtcuSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[maap.ctcu]``: China Telecom / Unicom platform choices (protocols.md §10 [U])."""

    #: Push/verification ``signature``: sha256 of sorted (§10) or unsorted token+timestamp+nonce.
    signature_order: Literal["sorted", "unsorted"] = "sorted"
    #: Content-Type of the pushes; ``multipart/form-data`` reproduces the platform's quirk
    #: (the body stays JSON).
    push_content_type: Literal["application/json", "multipart/form-data"] = "application/json"
    #: ``uploadMode: temp`` media expire after this many days (operator-set, §10).
    temp_media_days: float = 3.0
    #: accessToken calls allowed per chatbot per (China-time) day (§10: 2000); beyond → 45001.
    token_calls_per_day: int = 2000
    #: Media URLs in sends must have been uploaded to this MaaP (§10 "Send"); else 40007.
    require_uploaded_media: bool = True
    #: Status reports per ``deliveryNotification`` push (its body is the list
    #: ``deliveryInfoList[]``): statuses ready for the same chatbot at one moment are merged, up
    #: to this many per POST, each user's still in order. 1 = one status per push (as seen
    #: from the operators); raise it for high-volume campaigns (docs/maap-ctcu.md).
    status_batch: int = 1


class CmccSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[maap.cmcc]``: China Mobile platform choices (protocols.md §2A [U])."""

    #: Sign notifications with ``signature``/``timestamp``/``nonce`` headers like CT/CU.
    notify_signing: bool = False
    #: sha256 of token+timestamp+nonce unsorted (the CMT test client) or sorted (CT/CU §10).
    signature_order: Literal["sorted", "unsorted"] = "unsorted"


class MaapConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[maap]``: the MaaP node (chatbot REST APIs, webhooks, file store)."""

    enabled: bool = True
    #: HTTP listen address and port for the chatbot APIs, files and ``/openapi.json``.
    host: str = "127.0.0.1"
    port: int = 8080
    #: Path prefix before ``/bot/v1``, ``/oauth2/v1``, ``/messaging/...`` (e.g. ``/rcs``).
    server_root: str = ""
    #: Base URL put in file URLs and links; "" = ``http://{host}:{port}``.
    public_url: str = ""
    #: SIP listener (TCP) the 5GMC reaches the MaaP on; 0 = ephemeral.
    sip_host: str = "127.0.0.1"
    sip_port: int = 5070
    #: The 5GMC the MaaP sends through; "" = this profile's own SIP node over TCP.
    center: str = ""
    #: Access token lifetime (seconds).
    token_ttl_s: int = 7200
    #: CMCC: largest accepted skew of the request's Date header (seconds).
    date_skew_s: int = 900
    #: Most destinations in one send (mass send); more → 413 / the dialect's error.
    max_destinations: int = 10000
    #: Largest accepted request body (bytes; 250 KB).
    max_body_bytes: int = 256000
    #: Largest uploaded file (bytes).
    max_file_bytes: int = 10485760
    #: Uploaded files expire after this long unless the request says (seconds; 30 days).
    file_ttl_s: int = 2592000
    #: Durable state (webhook queue, message states, files); relative to the working directory.
    data_dir: str = ".fivegmc-data/maap"
    #: Webhook POST retry: first after this long, doubling up to retry_max_s; per-POST timeout.
    webhook_retry_initial_s: float = 1.0
    webhook_retry_max_s: float = 300.0
    webhook_timeout_s: float = 5.0
    #: A message not delivered within this long is reported failed (or falls back to SMS when
    #: allowed); 0 = only the 5GMC's store-and-forward validity applies.
    delivery_timeout_s: float = 0.0
    #: Sent messages whose states are held in memory; older finished ones are read back from
    #: SQLite when asked for (bounded memory under any volume).
    max_cached_messages: int = 200_000
    #: When the 5GMC runs in another process: its admin base URL (``http://127.0.0.1:9090``);
    #: the MaaP's revoke and SMS-fallback steps are POSTed to its message traces. "" = none
    #: (or this process's own 5GMC).
    trace_url: str = ""
    #: A chatbot with this many webhook events its CSP has not yet accepted gets 429 (or its
    #: dialect's equivalent) for new sends until the backlog drains (bounded memory).
    max_pending_events_per_bot: int = 100_000
    #: SMS fallback and MO SMS (``[maap.sms]``).
    sms: MaapSmsConfig = MaapSmsConfig()
    #: Capability answers (SIP OPTIONS via the 5GMC) are cached this long (seconds).
    capability_ttl_s: float = 10.0
    #: A2P deliveries in flight toward the 5GMC at once (the fan-out worker pool).
    fanout_concurrency: int = 256
    #: Attempts per recipient while the 5GMC answers 408/500/503/504 or not at all.
    center_attempts: int = 8
    #: 503 (overload) answers from the 5GMC are retried this long without counting toward
    #: center_attempts, while the fan-out window shrinks to what the 5GMC takes (seconds).
    center_overload_s: float = 60.0
    #: On shutdown, wait this long for MESSAGEs already handed to the 5GMC to be answered, so
    #: their outcome is recorded and they are not sent again after a restart (seconds).
    shutdown_grace_s: float = 2.0
    #: China Telecom / Unicom dialect settings ([U] choices, docs/maap-ctcu.md).
    ctcu: CtcuSettings = CtcuSettings()
    #: China Mobile dialect settings ([U] choices, docs/maap-cmcc.md).
    cmcc: CmccSettings = CmccSettings()
    #: Provisioned chatbots.
    chatbots: tuple[ChatbotConfig, ...] = ()


#: Delivery-receipt ``stat:`` words an SMSC outcome may use (SMPP v3.4 Appendix B).
SMSC_OUTCOMES = ("DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "UNKNOWN", "ACCEPTD")


class SmppAccount(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[[smsc.accounts]]``: one ESME allowed to bind to the SMSC stub."""

    #: bind ``system_id`` (at most 15 characters) and ``password`` (at most 8, SMPP v3.4 §5.2).
    system_id: str
    password: str
    #: submit_sm per second allowed per bind (token bucket, burst one second's worth);
    #: above it → ESME_RTHROTTLED.
    throttle_per_s: float = 10000.0
    #: At most this many unacknowledged deliver_sm (receipts, MO) outstanding per bind.
    window: int = 10


class SmscConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[smsc]``: the SMSC stub (SMPP v3.4 server) and the ESME settings for fallback."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 2775
    #: ESMEs allowed to bind.
    accounts: tuple[SmppAccount, ...] = ()
    #: Delivery outcome weights by receipt ``stat`` (DELIVRD, UNDELIV, EXPIRED, REJECTD, …).
    outcomes: dict[str, float] = msgspec.field(default_factory=lambda: {"DELIVRD": 1.0})
    #: The receipt is sent a uniformly random delay in [min, max] after the submit (seconds).
    receipt_delay_min_s: float = 0.0
    receipt_delay_max_s: float = 0.2
    #: A bind with no PDU received for this long is dropped (seconds).
    idle_timeout_s: float = 300.0
    #: Simulated processing time before each submit_sm_resp (seconds; 0 = answer at once).
    submit_delay_s: float = 0.0
    #: More than this many unanswered requests from one bind → ESME_RMSGQFUL.
    max_pending: int = 1000
    #: deliver_sm (receipts, MO) queued per system_id while no receiver is bound.
    max_queued: int = 10000
    #: MT messages kept for ``GET /admin/v1/smsc/messages`` (the oldest are dropped).
    inbox_size: int = 1000
    #: Largest accepted command_length (octets).
    max_pdu_bytes: int = 70000
    #: The ESME side (used by the 5GMC / MaaP for SMS fallback).
    esme: EsmeConfig = EsmeConfig()


#: The network elements a process can run (``[node] elements``).
ELEMENTS = ("center", "maap", "smsc")
Element = Literal["center", "maap", "smsc"]


class NodeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[node]``: which network elements this process runs (``fivegmc run --element``).

    The 5GMC, the MaaP and the SMSC stub are separate elements that talk SIP over TCP and SMPP,
    so they can run in separate processes (DESIGN.md §8): e.g. one process with
    ``["center", "smsc"]`` and one with ``["maap"]``. A process without ``center`` has no SIP
    listener of its own (``maap.center`` is then required); a process without ``maap`` does
    not route the chatbot domains by itself (give ``[[routes]]`` to the MaaP's SIP listener).
    """

    #: Elements run by this process (each also needs its own ``enabled`` flag, where it has one).
    elements: tuple[Element, ...] = ("center", "maap", "smsc")


class Profile(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One lab operator node, as described by a profile TOML file."""

    #: Identity, domains and provisioned numbers (the ``[operator]`` table is required).
    operator: OperatorConfig
    #: SIP transport settings.
    sip: SipConfig = SipConfig()
    #: Registrar policy.
    registrar: RegistrarConfig = RegistrarConfig()
    #: Digest authentication.
    auth: AuthConfig = AuthConfig()
    #: Admin HTTP endpoint.
    admin: AdminConfig = AdminConfig()
    #: Logging.
    log: LogConfig = LogConfig()
    #: Storage backend.
    store: StoreConfig = StoreConfig()
    #: Store-and-forward policy.
    messaging: MessagingConfig = MessagingConfig()
    #: Charging data records.
    cdr: CdrConfig = CdrConfig()
    #: Capability queries.
    capability: CapabilityConfig = CapabilityConfig()
    #: Static next hops for foreign domains (chatbot platforms, peers).
    routes: tuple[RouteConfig, ...] = ()
    #: The MaaP node.
    maap: MaapConfig = MaapConfig()
    #: The SMSC stub (SMPP) and the ESME settings for SMS fallback.
    smsc: SmscConfig = SmscConfig()
    #: Which elements this process runs (default: all of them, in one process).
    node: NodeConfig = NodeConfig()

    def runs(self, element: Element) -> bool:
        """True when this process runs ``element`` (listed in ``[node] elements`` and, for
        the MaaP and the SMSC stub, enabled)."""
        if element not in self.node.elements:
            return False
        if element == "maap":
            return self.maap.enabled
        if element == "smsc":
            return self.smsc.enabled
        return True


# --------------------------------------------------------------------------------------------------
# Public functions


def load_profile(
    path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = ()
) -> Profile:
    """Load, override and validate a profile file; ``None`` loads the embedded default.

    ``overrides`` are ``dotted.key=value`` strings (``sip.udp_port=5070``); see
    :func:`load_profile_text`. Raises :class:`ProfileError` on any problem.
    """
    if path is None:
        resource = importlib.resources.files("fivegmc") / "profiles" / "lab.toml"
        try:
            text = resource.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(EMBEDDED_SOURCE, [f"cannot read profile: {exc}"]) from None
        return load_profile_text(text, EMBEDDED_SOURCE, None, overrides)
    source = os.fspath(path)
    file_path = Path(source)
    try:
        text = file_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(source, [f"cannot read profile: not UTF-8 ({exc.reason})"]) from None
    except OSError as exc:
        raise ProfileError(source, [f"cannot read profile: {exc.strerror or exc}"]) from None
    return load_profile_text(text, source, file_path.parent, overrides)


def load_profile_text(
    text: str, source: str, base_dir: Path | None = None, overrides: Sequence[str] = ()
) -> Profile:
    """Decode and validate profile TOML ``text``; ``source`` names it in error messages.

    ``base_dir`` is where relative TLS file paths are resolved (None: the current directory).
    Each override ``dotted.key=value`` is applied to the raw TOML before typed decoding; ``value``
    is read as a TOML value when it parses as one (``5070``, ``true``, ``"x"``, ``["MD5"]``) and
    taken as a bare string otherwise (quote it to force a string, e.g. ``operator.name='"inf"'``).
    Array elements can be addressed as ``operator.number_ranges[0].kind``. Keys that are not in
    the schema are rejected like unknown keys in the file.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(source, [f"invalid TOML: {exc}"]) from None

    applied: list[tuple[str, str]] = []
    for item in overrides:
        try:
            applied.append((_apply_override(raw, item), item))
        except _OverrideError as exc:
            raise ProfileError(source, [f"--set {item!r}: {exc}"]) from None

    try:
        profile = msgspec.convert(raw, Profile, str_keys=True, builtin_types=(datetime, date, time))
    except msgspec.ValidationError as exc:
        key, problem = _translate_validation_error(str(exc))
        raise ProfileError(source, [_with_origin(key, problem, applied)]) from None

    problems = [_with_origin(key, problem, applied) for key, problem in _check(profile, base_dir)]
    if problems:
        raise ProfileError(source, problems)
    return _resolve(profile, base_dir)


def password_for(profile: Profile, number: str) -> str | None:
    """The lab digest password for ``number``.

    An explicit ``auth.users`` entry wins; otherwise the matching range's ``password_template``
    with ``{number}`` replaced; otherwise None (unknown number or no credential configured).
    """
    for user in profile.auth.users:
        if user.number == number:
            return user.password
    number_range = profile.operator.range_for(number)
    if number_range is None or number_range.password_template is None:
        return None
    return number_range.password_template.replace("{number}", number)


# --------------------------------------------------------------------------------------------------
# Overrides


class _OverrideError(Exception):
    """A ``--set`` item is malformed or does not fit the raw TOML structure."""


_OVERRIDE_KEY = re.compile(r"[A-Za-z0-9_-]+(?:\[[0-9]+\])*(?:\.[A-Za-z0-9_-]+(?:\[[0-9]+\])*)*")
_KEY_STEP = re.compile(r"([A-Za-z0-9_-]+)|\[([0-9]+)\]")


def _key_steps(key: str) -> list[str | int]:
    """``a.b[1].c`` → ``["a", "b", 1, "c"]`` (key already matched ``_OVERRIDE_KEY``)."""
    return [name if name else int(index) for name, index in _KEY_STEP.findall(key)]


def _parse_override_value(text: str) -> Any:
    try:
        doc = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return doc["v"] if doc.keys() == {"v"} else text


def _apply_override(raw: dict[str, Any], item: str) -> str:
    """Set ``key=value`` from ``item`` in ``raw``; return the key."""
    key, sep, value_text = item.partition("=")
    key = key.strip()
    if not sep:
        raise _OverrideError("expected dotted.key=value")
    if not _OVERRIDE_KEY.fullmatch(key):
        raise _OverrideError(
            "expected a dotted key of letters, digits, '_' or '-', with optional [index]"
        )
    value = _parse_override_value(value_text.strip())
    steps = _key_steps(key)
    node: Any = raw
    walked = ""
    for position, step in enumerate(steps):
        last = position == len(steps) - 1
        if isinstance(step, int):
            if not isinstance(node, list):
                raise _OverrideError(f"{walked} is not an array")
            if step >= len(node):
                raise _OverrideError(f"{walked} has {len(node)} element(s), no [{step}]")
            if last:
                node[step] = value
            else:
                node = node[step]
            walked = f"{walked}[{step}]"
        else:
            if not isinstance(node, dict):
                raise _OverrideError(f"{walked} is not a table")
            if last:
                node[step] = value
            elif step not in node:
                if isinstance(steps[position + 1], int):
                    raise _OverrideError(f"{_join(walked, step)} is not set, cannot index it")
                # A new table: the schema check rejects it later if the key is unknown.
                node[step] = {}
                node = node[step]
            else:
                node = node[step]
            walked = _join(walked, step)
    return key


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _with_origin(key: str, problem: str, applied: Sequence[tuple[str, str]]) -> str:
    """``key: problem``, naming the override that set ``key`` (or a parent/child of it)."""
    for override_key, item in reversed(applied):
        related = (
            key == override_key
            or override_key.startswith((f"{key}.", f"{key}["))
            or key.startswith((f"{override_key}.", f"{override_key}["))
        )
        if key and related:
            return f"{key}: {problem} (from --set {item!r})"
    return f"{key}: {problem}" if key else problem


# --------------------------------------------------------------------------------------------------
# msgspec error translation

_MSGSPEC_ERROR = re.compile(r"(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?", re.DOTALL)
_PATH_STEP = re.compile(r"\.([^.\[]+)|\[([0-9]+)\]")
_TYPE_NAMES = {"object": "table", "null": "none"}


def _translate_validation_error(message: str) -> tuple[str, str]:
    """msgspec's ``Expected `int`, got `str` - at `$.sip.udp_port``` → (key path, problem)."""
    match = _MSGSPEC_ERROR.fullmatch(message)
    assert match is not None  # the pattern matches any string
    msg = match["msg"]
    steps: list[str | int] = [
        name if name else int(index) for name, index in _PATH_STEP.findall(match["path"] or "$")
    ]

    if found := re.fullmatch(r"Object contains unknown field `(.*)`", msg):
        steps.append(found[1])
        return _dotted(steps), _unknown_key_problem(steps)
    if found := re.fullmatch(r"Object missing required field `(.*)`", msg):
        steps.append(found[1])
        return _dotted(steps), "required key missing"
    if found := re.fullmatch(r"Invalid enum value (.*)", msg):
        allowed = _literal_values(steps)
        if allowed:
            return _dotted(steps), f"expected one of {allowed}, got {found[1]}"
        return _dotted(steps), f"invalid value {found[1]}"
    if found := re.fullmatch(r"Expected `(.*)`, got `(.*)`", msg):
        expected = " | ".join(_TYPE_NAMES.get(t, t) for t in found[1].split(" | "))
        return _dotted(steps), f"expected {expected}, got {_TYPE_NAMES.get(found[2], found[2])}"
    return _dotted(steps), msg[:1].lower() + msg[1:]


def _dotted(steps: Sequence[str | int]) -> str:
    out = ""
    for step in steps:
        out = f"{out}[{step}]" if isinstance(step, int) else _join(out, step)
    return out


def _unknown_key_problem(steps: Sequence[str | int]) -> str:
    table = _type_at(steps[:-1])
    if isinstance(table, type) and issubclass(table, msgspec.Struct):
        names = ", ".join(table.__struct_fields__)
        return f"unknown key (expected one of: {names})"
    return "unknown key"


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _type_at(steps: Sequence[str | int]) -> Any:
    """The schema type at a decoded path, or None if the path leaves the schema."""
    tp: Any = Profile
    for step in steps:
        tp = _strip_optional(tp)
        if isinstance(step, int):
            args = typing.get_args(tp)
            if typing.get_origin(tp) is not tuple or not args:
                return None
            tp = args[0]
        else:
            if not (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
                return None
            hints = typing.get_type_hints(tp)
            if step not in hints:
                return None
            tp = hints[step]
    return _strip_optional(tp)


def _literal_values(steps: Sequence[str | int]) -> str:
    tp = _type_at(steps)
    if typing.get_origin(tp) is not Literal:
        return ""
    return ", ".join(repr(v) for v in typing.get_args(tp))


# --------------------------------------------------------------------------------------------------
# Semantic checks

_Problem = tuple[str, str]


def _check(profile: Profile, base_dir: Path | None) -> list[_Problem]:
    problems: list[_Problem] = []
    problems += _check_operator(profile.operator)
    problems += _check_sip(profile.sip, base_dir)
    problems += _check_registrar(profile.registrar)
    problems += _check_auth(profile.auth, profile.operator)
    problems += _check_listeners(profile)
    problems += _check_admin(profile.admin)
    problems += _positive("store.max_stored", profile.store.max_stored)
    problems += _positive("cdr.max_file_bytes", profile.cdr.max_file_bytes)
    if profile.capability.cache_ttl_s < 0:
        problems.append(("capability.cache_ttl_s", "expected >= 0"))
    problems += _positive("messaging.validity_s", profile.messaging.validity_s)
    problems += _positive("messaging.max_recipients", profile.messaging.max_recipients)
    if profile.messaging.answer_timeout_s < 0:
        problems.append(("messaging.answer_timeout_s", "expected >= 0"))
    problems += _positive("messaging.retry_initial_s", profile.messaging.retry_initial_s)
    if profile.messaging.retry_max_s < profile.messaging.retry_initial_s:
        problems.append(("messaging.retry_max_s", "expected >= messaging.retry_initial_s"))
    if profile.log.level not in LOG_LEVELS:
        problems.append(
            ("log.level", f"expected one of {', '.join(LOG_LEVELS)}, got {profile.log.level!r}")
        )
    problems += _check_routes(profile.routes)
    problems += _check_maap(profile.maap)
    problems += _check_smsc(profile.smsc)
    problems += _check_elements(profile)
    return problems


def _check_elements(profile: Profile) -> Iterator[_Problem]:
    """``[node] elements``: what a process without one of them must be told instead."""
    elements = profile.node.elements
    if not elements:
        yield "node.elements", f"expected at least one of {', '.join(ELEMENTS)}"
    for index, element in enumerate(elements):
        if element in elements[:index]:
            yield f"node.elements[{index}]", f"{element} listed twice"
    if profile.runs("maap") and not profile.runs("center") and not profile.maap.center:
        yield ("maap.center",
               "required when this process runs the MaaP without the 5GMC (node.elements has "
               "no \"center\"): the 5GMC's SIP address, e.g. sip:127.0.0.1:5060;transport=tcp")
    center = profile.maap.center
    if center and not re.fullmatch(r"(sip:)?(\[[0-9A-Fa-f:.]+\]|[^\s:;@\[\]]+):[0-9]{1,5}(;\S*)?",
                                   center):
        yield ("maap.center",
               f"expected host:port or sip:host:port;transport=tcp, got {center!r}")
    if (profile.runs("maap") and profile.maap.sms.enabled and not profile.runs("smsc")
            and not profile.maap.sms.port):
        yield ("maap.sms.port",
               "required when maap.sms is enabled and this process runs no SMSC stub "
               "(node.elements has no \"smsc\"): the SMSC's SMPP port")


def _check_smsc(smsc: SmscConfig) -> Iterator[_Problem]:
    yield from _port("smsc.port", smsc.port)
    for key in ("idle_timeout_s", "max_pending", "max_queued", "inbox_size", "max_pdu_bytes"):
        yield from _positive(f"smsc.{key}", getattr(smsc, key))
    if smsc.max_pdu_bytes < 300:
        yield "smsc.max_pdu_bytes", "expected >= 300 (a full submit_sm)"
    if not 0 <= smsc.receipt_delay_min_s <= smsc.receipt_delay_max_s:
        yield "smsc.receipt_delay_max_s", "expected 0 <= receipt_delay_min_s <= receipt_delay_max_s"
    if smsc.submit_delay_s < 0:
        yield "smsc.submit_delay_s", "expected >= 0"
    for stat, weight in smsc.outcomes.items():
        if stat not in SMSC_OUTCOMES:
            yield f"smsc.outcomes.{stat}", f"expected one of {', '.join(SMSC_OUTCOMES)}"
        elif weight < 0:
            yield f"smsc.outcomes.{stat}", f"expected a weight >= 0, got {weight}"
    if not any(w > 0 for w in smsc.outcomes.values()):
        yield "smsc.outcomes", "expected at least one positive weight"
    seen: set[str] = set()
    for index, account in enumerate(smsc.accounts):
        key = f"smsc.accounts[{index}]"
        if not 1 <= len(account.system_id) <= 15 or not account.system_id.isascii():
            yield f"{key}.system_id", "expected 1-15 ASCII characters (SMPP v3.4 §5.2.1)"
        if len(account.password) > 8 or not account.password.isascii():
            yield f"{key}.password", "expected at most 8 ASCII characters (SMPP v3.4 §5.2.2)"
        if account.system_id in seen:
            yield f"{key}.system_id", f"duplicate system_id {account.system_id!r}"
        seen.add(account.system_id)
        yield from _positive(f"{key}.throttle_per_s", account.throttle_per_s)
        yield from _positive(f"{key}.window", account.window)
    yield from _check_esme("smsc.esme", smsc.esme)


def _check_esme(where: str, esme: EsmeConfig) -> Iterator[_Problem]:
    """An ESME bind ([smsc.esme], [maap.sms])."""
    yield from _port(f"{where}.port", esme.port)
    if not 0 < len(esme.system_id) <= 15:
        yield f"{where}.system_id", "expected 1-15 characters (SMPP v3.4 §5.2)"
    if len(esme.password) > 8:
        yield f"{where}.password", "expected at most 8 characters (SMPP v3.4 §5.2)"
    for key in ("window", "enquire_link_s", "reconnect_initial_s", "response_timeout_s",
                "max_held"):
        yield from _positive(f"{where}.{key}", getattr(esme, key))
    if esme.reconnect_max_s < esme.reconnect_initial_s:
        yield f"{where}.reconnect_max_s", f"expected >= {where}.reconnect_initial_s"


def _check_routes(routes: Sequence[RouteConfig]) -> Iterator[_Problem]:
    for index, route in enumerate(routes):
        yield from _non_empty(f"routes[{index}].domain", route.domain)
        if not route.next_hop.startswith(("sip:", "sips:")) or "@" in route.next_hop:
            yield (f"routes[{index}].next_hop",
                   f"expected a SIP URI naming a host (sip:host:port;transport=tcp), "
                   f"got {route.next_hop!r}")


def _check_maap(maap: MaapConfig) -> Iterator[_Problem]:
    yield from _port("maap.port", maap.port)
    yield from _port("maap.sip_port", maap.sip_port)
    if maap.server_root and (not maap.server_root.startswith("/")
                             or maap.server_root.endswith("/")):
        yield "maap.server_root", f"expected '' or '/prefix' without a trailing '/', got " \
                                  f"{maap.server_root!r}"
    for key in ("token_ttl_s", "date_skew_s", "max_destinations", "max_body_bytes",
                "max_file_bytes", "file_ttl_s", "webhook_retry_initial_s",
                "webhook_timeout_s"):
        yield from _positive(f"maap.{key}", getattr(maap, key))
    if maap.webhook_retry_max_s < maap.webhook_retry_initial_s:
        yield "maap.webhook_retry_max_s", "expected >= maap.webhook_retry_initial_s"
    if maap.delivery_timeout_s < 0:
        yield "maap.delivery_timeout_s", "expected >= 0"
    yield from _positive("maap.max_cached_messages", maap.max_cached_messages)
    if maap.trace_url and not maap.trace_url.startswith(("http://", "https://")):
        yield "maap.trace_url", f"expected an http(s) URL or \"\", got {maap.trace_url!r}"
    yield from _positive("maap.max_pending_events_per_bot", maap.max_pending_events_per_bot)
    for key in ("capability_ttl_s", "fanout_concurrency", "center_attempts"):
        yield from _positive(f"maap.{key}", getattr(maap, key))
    if maap.shutdown_grace_s < 0:
        yield "maap.shutdown_grace_s", "expected >= 0"
    if maap.center_overload_s < 0:
        yield "maap.center_overload_s", "expected >= 0"
    yield from _positive("maap.ctcu.temp_media_days", maap.ctcu.temp_media_days)
    yield from _positive("maap.ctcu.token_calls_per_day", maap.ctcu.token_calls_per_day)
    if not 1 <= maap.ctcu.status_batch <= 1000:
        yield "maap.ctcu.status_batch", "expected 1 to 1000"
    yield from _check_esme("maap.sms", maap.sms)
    seen_ids: set[str] = set()
    seen_uris: set[str] = set()
    for index, bot in enumerate(maap.chatbots):
        key = f"maap.chatbots[{index}]"
        yield from _non_empty(f"{key}.id", bot.id)
        yield from _non_empty(f"{key}.app_id", bot.app_id)
        yield from _non_empty(f"{key}.secret", bot.secret)
        if not re.fullmatch(r"sips?:[^@\s]+@[^@\s]+", bot.uri):
            yield f"{key}.uri", f"expected a chatbot SIP URI (sip:id@domain), got {bot.uri!r}"
        if bot.id in seen_ids:
            yield f"{key}.id", f"duplicate chatbot id {bot.id!r}"
        if bot.uri.lower() in seen_uris:
            yield f"{key}.uri", f"duplicate chatbot uri {bot.uri!r}"
        seen_ids.add(bot.id)
        seen_uris.add(bot.uri.lower())
        yield from _positive(f"{key}.rate_limit_per_s", bot.rate_limit_per_s)
        if bot.webhook and not bot.webhook.startswith(("http://", "https://")):
            yield f"{key}.webhook", f"expected an http(s) URL, got {bot.webhook!r}"
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", bot.webhook_signature_header):
            yield (f"{key}.webhook_signature_header",
                   f"expected an HTTP header name, got {bot.webhook_signature_header!r}")


def _port(key: str, value: int) -> Iterator[_Problem]:
    if not 0 <= value <= 65535:
        yield key, f"expected a port 0-65535 (0 = ephemeral), got {value}"


def _positive(key: str, value: float) -> Iterator[_Problem]:
    if value <= 0:
        yield key, f"expected a positive value, got {value}"


def _non_empty(key: str, value: str) -> Iterator[_Problem]:
    if not value.strip():
        yield key, "expected a non-empty string"


def _e164(key: str, value: str) -> Iterator[_Problem]:
    if not _E164.fullmatch(value):
        yield key, f"expected an E.164 number ('+' then 6-15 digits), got {value!r}"


def _check_operator(operator: OperatorConfig) -> Iterator[_Problem]:
    yield from _non_empty("operator.name", operator.name)
    yield from _non_empty("operator.home_domain", operator.home_domain)
    for index, domain in enumerate(operator.local_domains):
        yield from _non_empty(f"operator.local_domains[{index}]", domain)

    valid: list[tuple[int, NumberRange]] = []
    for index, number_range in enumerate(operator.number_ranges):
        key = f"operator.number_ranges[{index}]"
        bad = [*_e164(f"{key}.first", number_range.first), *_e164(f"{key}.last", number_range.last)]
        yield from bad
        if bad:
            continue
        if len(number_range.first) != len(number_range.last):
            yield (
                key,
                (
                    f"first {number_range.first} and last {number_range.last} "
                    "must have the same number of digits"
                ),
            )
        elif number_range.first > number_range.last:
            yield key, f"first {number_range.first} is after last {number_range.last}"
        else:
            valid.append((index, number_range))

    # Numbers of different lengths are different numbers, so only same-length ranges can overlap.
    # Sorted by start, a range overlaps an earlier one iff it starts at or before the furthest end
    # seen so far (tracking the furthest end also catches a wide range covering several others).
    ordered = sorted(valid, key=lambda item: (len(item[1].first), item[1].first))
    reach: tuple[int, NumberRange] | None = None
    for index, current in ordered:
        if reach is not None and len(reach[1].last) == len(current.first):
            reach_index, reach_range = reach
            if current.first <= reach_range.last:
                yield (
                    f"operator.number_ranges[{index}]",
                    f"{current.first}-{current.last} overlaps operator.number_ranges"
                    f"[{reach_index}] {reach_range.first}-{reach_range.last}",
                )
            if current.last <= reach_range.last:
                continue
        reach = (index, current)


def _check_sip(sip: SipConfig, base_dir: Path | None) -> Iterator[_Problem]:
    yield from _non_empty("sip.host", sip.host)
    yield from _port("sip.udp_port", sip.udp_port)
    yield from _port("sip.tcp_port", sip.tcp_port)
    yield from _port("sip.tls_port", sip.tls_port)

    if (sip.tls_cert is None) != (sip.tls_key is None):
        missing = "sip.tls_key" if sip.tls_key is None else "sip.tls_cert"
        yield missing, "expected sip.tls_cert and sip.tls_key to be set together"
    for key, value in (("sip.tls_cert", sip.tls_cert), ("sip.tls_key", sip.tls_key)):
        if value is not None and not _resolve_file(value, base_dir).is_file():
            yield key, f"file not found: {_resolve_file(value, base_dir)}"
    if not (sip.enable_udp or sip.enable_tcp or sip.tls_enabled):
        yield "sip", "no SIP listener: enable_udp and enable_tcp are false and TLS is not set up"

    if not MIN_MESSAGE_SIZE <= sip.max_message_size <= MAX_MESSAGE_SIZE:
        yield (
            "sip.max_message_size",
            (f"expected {MIN_MESSAGE_SIZE}-{MAX_MESSAGE_SIZE} bytes, got {sip.max_message_size}"),
        )
    yield from _positive("sip.t1_ms", sip.t1_ms)
    yield from _positive("sip.t2_ms", sip.t2_ms)
    yield from _positive("sip.t4_ms", sip.t4_ms)
    if 0 < sip.t2_ms < sip.t1_ms:
        yield "sip.t1_ms", f"expected t1_ms <= t2_ms, got {sip.t1_ms} > {sip.t2_ms}"
    if not 1 <= sip.max_forwards <= 255:
        yield "sip.max_forwards", f"expected 1-255, got {sip.max_forwards}"
    yield from _positive("sip.tcp_idle_timeout_s", sip.tcp_idle_timeout_s)
    yield from _positive("sip.max_tcp_connections", sip.max_tcp_connections)
    yield from _positive("sip.max_pending_relays", sip.max_pending_relays)
    yield from _positive("sip.overload_retry_after_s", sip.overload_retry_after_s)
    if sip.overload_backlog_bytes < 0:
        yield "sip.overload_backlog_bytes", f"expected >= 0, got {sip.overload_backlog_bytes}"


def _check_registrar(registrar: RegistrarConfig) -> Iterator[_Problem]:
    yield from _positive("registrar.min_expires", registrar.min_expires)
    yield from _positive("registrar.max_contacts_per_aor", registrar.max_contacts_per_aor)
    low, default, high = registrar.min_expires, registrar.default_expires, registrar.max_expires
    if not low <= default <= high:
        yield (
            "registrar.default_expires",
            (
                "expected min_expires <= default_expires <= max_expires, "
                f"got {low} <= {default} <= {high}"
            ),
        )


def _check_auth(auth: AuthConfig, operator: OperatorConfig) -> Iterator[_Problem]:
    if auth.realm is not None:
        yield from _non_empty("auth.realm", auth.realm)
    if not auth.algorithms:
        yield "auth.algorithms", f"expected at least one of {', '.join(sorted(AUTH_ALGORITHMS))}"
    for index, algorithm in enumerate(auth.algorithms):
        if algorithm not in AUTH_ALGORITHMS:
            yield (
                f"auth.algorithms[{index}]",
                (f"expected one of {', '.join(sorted(AUTH_ALGORITHMS))}, got {algorithm!r}"),
            )
        elif algorithm in auth.algorithms[:index]:
            yield f"auth.algorithms[{index}]", f"{algorithm} listed twice"
    yield from _positive("auth.nonce_ttl_s", auth.nonce_ttl_s)

    seen: dict[str, int] = {}
    for index, user in enumerate(auth.users):
        key = f"auth.users[{index}]"
        yield from _non_empty(f"{key}.password", user.password)
        bad = list(_e164(f"{key}.number", user.number))
        yield from bad
        if bad:
            continue
        if user.number in seen:
            yield f"{key}.number", f"{user.number} already in auth.users[{seen[user.number]}]"
        seen.setdefault(user.number, index)
        if operator.range_for(user.number) is None:
            yield f"{key}.number", f"{user.number} is not in any operator.number_ranges entry"


def _check_admin(admin: AdminConfig) -> Iterator[_Problem]:
    yield from _non_empty("admin.host", admin.host)
    yield from _port("admin.port", admin.port)


def _check_listeners(profile: Profile) -> Iterator[_Problem]:
    """Stream listeners that would collide on one host:port (EADDRINUSE at start)."""
    sip, admin = profile.sip, profile.admin
    listeners: list[tuple[str, str, int]] = []
    center = "center" in profile.node.elements
    if center and sip.enable_tcp:
        listeners.append(("sip.tcp_port", sip.host, sip.tcp_port))
    if center and sip.tls_enabled:
        listeners.append(("sip.tls_port", sip.host, sip.tls_port))
    if admin.enabled:
        listeners.append(("admin.port", admin.host, admin.port))
    for position, (key, host, port) in enumerate(listeners):
        for other_key, other_host, other_port in listeners[:position]:
            same_host = host == other_host or {host, other_host} & _WILDCARD_HOSTS
            if port != 0 and port == other_port and same_host:
                yield key, f"port {port} is already used by {other_key} on {other_host}"


# --------------------------------------------------------------------------------------------------
# Derived values


def _resolve_file(value: str, base_dir: Path | None) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base_dir if base_dir is not None else Path.cwd()) / path
    return path.resolve()


def _resolve(profile: Profile, base_dir: Path | None) -> Profile:
    sip = profile.sip
    if sip.tls_cert is not None and sip.tls_key is not None:
        sip = msgspec.structs.replace(
            sip,
            tls_cert=str(_resolve_file(sip.tls_cert, base_dir)),
            tls_key=str(_resolve_file(sip.tls_key, base_dir)),
        )
    auth = msgspec.structs.replace(
        profile.auth, realm=profile.auth.effective_realm(profile.operator)
    )
    return msgspec.structs.replace(profile, sip=sip, auth=auth)
