"""The storage protocol of the 5GMC (DESIGN.md §3: policy apart from storage).

Store-and-forward, registrations and message traces go through this one narrow interface,
implemented by an in-memory backend (unit tests), SQLite (the embedded, durable default) and
Redis (state shared by several processes or hosts). The behavioural contract is the test suite
in ``tests/store/``, run against every backend.

Rules every backend keeps:

- ``put_message`` returns only once the message is durable for that backend (committed, for
  SQLite and Redis): the node answers 202 after it, so an accepted message is never lost.
  Concurrent calls may be committed together (group commit); each still waits for its own.
- Duplicate suppression: a message with the same ``(sender, imdn_message_id)`` as one already
  stored (in any state) is not stored again; ``put_message`` returns the existing id with
  ``duplicate=True`` (RFC 5438 §6.3: the Message-ID is unique per sender).
- Per recipient, messages come back from :meth:`Store.pending` in the order they were stored.
- State changes are compare-and-set: ``mark_delivered`` on a message that is no longer STORED
  (delivered, expired, failed) changes nothing and returns False — so a delivery and an expiry
  racing each other (or two processes) settle on exactly one outcome.
- Errors: :class:`StoreUnavailable` when the backend cannot be reached or written (the node
  answers 503 + Retry-After), :class:`StoreFull` when a configured bound is reached.
- Times are wall-clock seconds (``time.time()``) so they survive restarts.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Protocol


class MessageState(enum.StrEnum):
    STORED = "stored"  # accepted, waiting for (re)delivery
    DELIVERED = "delivered"  # a UE answered 2xx
    EXPIRED = "expired"  # validity ran out before delivery
    FAILED = "failed"  # given up for another reason (e.g. the recipient refused it)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A pager MESSAGE accepted for a recipient, with what is needed to send it again."""

    id: str  # node-assigned, unique; also the trace id
    recipient: str  # the recipient's AoR key (E.164 number)
    sender: str  # the sender's AoR key or URI
    imdn_message_id: str | None  # CPIM imdn.Message-ID, for duplicate suppression
    received_at: float
    expires_at: float
    content_type: str
    body: bytes  # the CPIM body, byte for byte as received
    #: Request headers to send again on delivery (From, To, Contribution-ID, ...), in order.
    headers: tuple[tuple[str, str], ...] = ()
    state: MessageState = MessageState.STORED
    attempts: int = 0
    next_attempt_at: float = 0.0
    seq: int = 0  # assigned by the store: orders a recipient's messages (0 before put)


@dataclass(frozen=True, slots=True)
class PutResult:
    id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class StoredBinding:
    """A registration binding as stored (see fivegmc.core.registrar.Binding)."""

    aor: str
    contact: str  # the Contact value as registered (name-addr with params)
    contact_key: str
    expires_at: float  # wall clock
    call_id: str
    cseq: int
    transport: str  # flow the REGISTER came on: udp / tcp / tls
    host: str
    port: int
    q: float = 1.0
    registered_at: float = 0.0


def binding_values(b: StoredBinding) -> tuple[str | float | int, ...]:
    """A binding's fields in declaration order (row / wire form; ``StoredBinding(*values)``
    rebuilds it)."""
    return tuple(getattr(b, f.name) for f in fields(StoredBinding))


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One hop or state change of a message (``GET /admin/v1/messages/{id}``)."""

    at: float
    event: str  # received, stored, delivery-attempt, delivered, imdn-seen, expired, ...
    detail: str = ""
    attrs: tuple[tuple[str, str], ...] = field(default=())


class StoreError(Exception):
    """Base of storage errors; the node answers 503 with Retry-After."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or written right now."""


class StoreFull(StoreError):
    """A configured bound (messages stored) is reached."""


class Store(Protocol):
    """What the 5GMC needs from storage. All methods are coroutines; none blocks the loop."""

    async def open(self) -> None:
        """Connect / create the schema. Called once before use."""

    async def close(self) -> None:
        """Flush what is pending and release resources."""

    # -- store-and-forward -----------------------------------------------------------------
    async def put_message(self, msg: StoredMessage) -> PutResult:
        """Store durably (see the module rules) or report the duplicate."""

    async def get_message(self, msg_id: str) -> StoredMessage | None: ...

    async def pending(self, recipient: str, limit: int = 100) -> list[StoredMessage]:
        """STORED messages for ``recipient``, oldest first."""

    async def due(self, now: float, limit: int = 1000) -> list[StoredMessage]:
        """STORED messages whose ``next_attempt_at`` <= now (retry with backoff), oldest
        first."""

    async def mark_attempt(self, msg_id: str, next_attempt_at: float) -> bool:
        """Count a delivery attempt and set the next one; False if not STORED."""

    async def mark_delivered(self, msg_id: str, at: float) -> bool:
        """STORED → DELIVERED; False (and no change) if it was not STORED."""

    async def mark_failed(self, msg_id: str, at: float, reason: str) -> bool:
        """STORED → FAILED; False (and no change) if it was not STORED."""

    async def expire(self, now: float, limit: int = 1000) -> list[StoredMessage]:
        """STORED messages with ``expires_at`` <= now become EXPIRED; returns them (with the
        new state), oldest first, at most ``limit``."""

    async def count(self, state: MessageState = MessageState.STORED) -> int: ...

    # -- registrations ---------------------------------------------------------------------
    async def save_bindings(self, aor: str, bindings: Sequence[StoredBinding]) -> None:
        """Replace every binding of ``aor`` (an empty sequence removes the AoR)."""

    async def load_bindings(self, now: float) -> list[StoredBinding]:
        """All bindings not expired at ``now`` (for a restart, or a new process)."""

    def iter_bindings(self, now: float, page: int = 10000) -> AsyncIterator[list[StoredBinding]]:
        """The same bindings as :meth:`load_bindings`, a page at a time, so a node restoring a
        million registrations never holds them all twice."""

    async def watch_bindings(
        self, on_change: Callable[[str, list[StoredBinding]], None]
    ) -> None:
        """Run until cancelled, calling ``on_change(aor, bindings)`` whenever another process
        sharing this store saved an AoR's bindings (an empty list: it has none left). Single-
        process backends have nothing to report and just wait."""

    # -- traces ----------------------------------------------------------------------------
    async def add_trace(self, msg_id: str, event: TraceEvent) -> None: ...

    async def trace(self, msg_id: str) -> list[TraceEvent]:
        """The message's events in the order they were added."""
