"""The two contracts inside the MaaP node.

- :class:`MaapApi`: what the core offers the northbound dialects (``gsma``, ``ctcu``,
  ``cmcc``): chatbot lookup, tokens, rate limits, sends, revokes, statuses, capabilities,
  files. Implemented by ``fivegmc.maap.core.MaapCore``.
- :class:`Dialect`: what each dialect module offers the core and the HTTP server: its routes,
  the rendering of core events into the CSP's webhook/notification format, and its part of
  the OpenAPI document.

Wiring (``fivegmc.maap.server``): the server builds the core, one instance of each dialect
``XDialect(api)``, calls ``add_routes(app)`` on each, and hands the core a ``render`` function
that picks the chatbot's dialect. Events go through the durable webhook queue in order per
user (``Notification.ordering_key``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from ..config import ChatbotConfig, MaapConfig
from .model import (
    Capabilities,
    Event,
    FileRecord,
    MessageRecord,
    Notification,
    Outbound,
    SendResult,
    Status,
)


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """Outcome of checking an access token: ``bot_id`` when valid, else why not."""

    bot_id: str | None
    #: "" when valid, else "missing", "invalid" or "expired"
    problem: str = ""


class Tokens(Protocol):
    def issue(self, bot_id: str, *, replace: bool = False) -> tuple[str, float]:
        """A new access token for ``bot_id`` and its expiry (unix time). ``replace``: the new
        token invalidates the bot's earlier ones (CT/CU rule, protocols.md §10)."""

    def check(self, token: str | None) -> TokenCheck:
        """Who a presented token belongs to (no scope check: the caller compares bot ids and
        answers 403 on a mismatch)."""


class Files(Protocol):
    async def put(self, bot_id: str, name: str, content_type: str, data: bytes, *,
                  ttl_s: float | None = None, thumbnail_of: str = "") -> FileRecord:
        """Store an upload; the record's ``url`` is served by the MaaP (``GET /files/{id}``)
        until ``until``. Raises ValueError (message says why) above ``max_file_bytes``."""

    def get(self, file_id: str) -> FileRecord | None:
        """A live or expired record (compare ``until``); None if unknown or deleted."""

    def by_url(self, url: str) -> FileRecord | None:
        """The record a file URL the MaaP handed out points at."""

    async def read(self, file_id: str) -> bytes:
        """The file's bytes (KeyError if unknown/deleted)."""

    async def delete(self, file_id: str) -> bool:
        """Remove a file; False if it did not exist."""


class MaapApi(Protocol):
    """The MaaP core as the dialects see it. All numbers are E.164 with ``+``."""

    config: MaapConfig
    tokens: Tokens
    files: Files

    def bot(self, bot_id: str) -> ChatbotConfig | None:
        """A provisioned chatbot by id (GSMA ``botId``, CT/CU chatbotId, CMCC service code)."""

    def bot_by_uri(self, uri: str) -> ChatbotConfig | None:
        """A provisioned chatbot by SIP URI (case-insensitive host; percent-decoded by the
        caller)."""

    def bots(self) -> tuple[ChatbotConfig, ...]:
        """Every provisioned chatbot."""

    def allow(self, bot_id: str) -> bool:
        """Take one send from the chatbot's rate-limit bucket; False → answer 429 (or the
        dialect's code). Other chatbots are unaffected."""

    async def send(self, out: Outbound) -> SendResult:
        """Accept an A2P send (one or many recipients, up to ``max_destinations``). Durable
        before it returns; delivery, IMDNs, store-and-forward and fallback continue in the
        background and come back as events. A message id the bot already used returns the
        earlier result with ``duplicate=True``."""

    async def revoke(self, bot_id: str, message_id: str,
                     recipients: tuple[str, ...] = ()) -> dict[str, Status]:
        """Revoke an undelivered message for the given recipients (all when empty): per
        recipient REVOKED or REVOKE_FAILED (already delivered / unknown). The same outcomes
        are also queued as StatusEvents."""

    def record(self, bot_id: str, message_id: str) -> MessageRecord | None:
        """The message's per-recipient state, None when the bot never sent it."""

    async def displayed(self, bot_id: str, user: str, message_id: str) -> bool:
        """The chatbot read a user's message: send a ``displayed`` IMDN to the user for the
        P2A ``message_id``. False if no such inbound message."""

    async def capabilities(self, bot_id: str, number: str) -> Capabilities:
        """The user's capabilities as the 5GMC answers a SIP OPTIONS (cached briefly)."""


class Dialect(Protocol):
    """One northbound API flavour. Constructed as ``XDialect(api)``."""

    #: "gsma", "ctcu" or "cmcc" (``ChatbotConfig.dialect``)
    name: str

    def add_routes(self, app: web.Application) -> None:
        """Register this dialect's HTTP routes (under ``api.config.server_root``)."""

    def render(self, bot: ChatbotConfig, event: Event) -> Notification | None:
        """The webhook/notification POST for ``event`` (None: this dialect does not push
        that kind of event)."""

    def openapi(self) -> dict[str, Any]:
        """This dialect's part of the OpenAPI 3 document: ``{"paths": {...},
        "components": {"schemas": {...}, "securitySchemes": {...}}}``. Every route added by
        ``add_routes`` must appear (a test checks)."""
