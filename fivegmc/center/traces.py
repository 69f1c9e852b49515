"""Traces of the messages the 5GMC relays without storing them (issue 3, item 6).

Stored messages keep their trace in the store (durable, ``Store.add_trace``). A MESSAGE relayed
straight to an online UE never touches the store — the hot path must not wait on it — so its
trace (received, relayed to N contacts, final answer, IMDNs seen) lives here, in a bounded
in-memory ring of the most recent ones. Both are found by the node's trace id or by the CPIM
``imdn.Message-ID``; IMDNs that pass through the node are matched to the message they report on
(RFC 5438 §7: by the original Message-ID) and added to its trace as ``imdn-seen``.

Hot-path cost matters (one entry per relayed MESSAGE): an entry is one flat tuple of atomic
values (untracked by the GC), keyed by an integer sequence; the events are built on reading.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..store.protocol import TraceEvent

# (sender, recipient, imdn id, content type, body size, received at, final at, status, targets)
_Entry = tuple[str, str, str | None, str, int, float, float, int, int]


@dataclass(frozen=True, slots=True)
class RelayTrace:
    id: str
    sender: str
    recipient: str
    imdn_message_id: str | None
    content_type: str
    body_size: int
    state: str  # delivered | failed
    events: tuple[TraceEvent, ...]


class RecentTraces:
    """The last ``limit`` relayed messages, by trace id and by imdn.Message-ID; and an index of
    stored messages by imdn.Message-ID (their traces are in the store)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = max(1, limit)
        self._entries: dict[int, _Entry] = {}
        self._by_imdn: dict[str, int] = {}
        self._stored: dict[str, str] = {}  # imdn.Message-ID → stored message id
        self._seen: dict[int, list[TraceEvent]] = {}  # IMDNs (and other later events), by entry
        #: Events about messages the 5GMC never relayed or stored (e.g. the MaaP's SMS fallback
        #: for a recipient the 5GMC answered 480), by message id.
        self._external: dict[str, list[TraceEvent]] = {}
        self._prefix = "r" + os.urandom(3).hex() + "-"
        self._seq = 0

    def relayed(self, sender: str, recipient: str, imdn_message_id: str | None,
                content_type: str, body_size: int, received_at: float, final_at: float,
                status: int, targets: int) -> int:
        """Record a relayed MESSAGE's outcome; returns its sequence number."""
        self._seq = seq = self._seq + 1
        self._entries[seq] = (sender, recipient, imdn_message_id, content_type, body_size,
                              received_at, final_at, status, targets)
        if imdn_message_id:
            self._by_imdn[imdn_message_id] = seq
        old = self._entries.pop(seq - self.limit, None)
        if old is not None:
            self._seen.pop(seq - self.limit, None)
            if old[2] and self._by_imdn.get(old[2]) == seq - self.limit:
                del self._by_imdn[old[2]]
        return seq

    def trace_id(self, seq: int) -> str:
        return f"{self._prefix}{seq:x}"

    def index_stored(self, imdn_message_id: str, stored_id: str) -> None:
        """Find a stored message (its trace is in the store) by its imdn.Message-ID."""
        self._stored[imdn_message_id] = stored_id
        if len(self._stored) > self.limit:
            del self._stored[next(iter(self._stored))]

    def resolve(self, key: str) -> str | None:
        """A trace id (relayed) or stored message id from either id or an imdn.Message-ID."""
        if self._seq_of(key) is not None:
            return key
        seq = self._by_imdn.get(key)
        if seq is not None:
            return self.trace_id(seq)
        return self._stored.get(key)

    def _seq_of(self, trace_id: str) -> int | None:
        if not trace_id.startswith(self._prefix):
            return None
        try:
            seq = int(trace_id[len(self._prefix):], 16)
        except ValueError:
            return None
        return seq if seq in self._entries else None

    def get(self, trace_id: str) -> RelayTrace | None:
        seq = self._seq_of(trace_id)
        if seq is None:
            return None
        sender, recipient, imdn, ctype, size, received, final, status, targets = \
            self._entries[seq]
        ok = 200 <= status < 300
        events = (
            TraceEvent(received, "received", f"from {sender}"),
            TraceEvent(received, "relayed", f"to {targets} contact(s) of {recipient}"),
            TraceEvent(final, "delivered" if ok else "failed", f"status {status}"),
            *self._seen.get(seq, ()),
        )
        return RelayTrace(trace_id, sender, recipient, imdn, ctype, size,
                          "delivered" if ok else "failed", events)

    def imdn_seen(self, trace_id: str, at: float, detail: str, *,
                  event: str = "imdn-seen") -> bool:
        """Note an IMDN (or another later event) about a relayed message; False if it is not
        (or no longer) here."""
        seq = self._seq_of(trace_id)
        if seq is None:
            return False
        self._seen.setdefault(seq, []).append(TraceEvent(at, event, detail))
        return True

    def note(self, key: str, at: float, event: str, detail: str = "") -> str | None:
        """Add an event to the trace of ``key`` (trace id, stored id or imdn.Message-ID).
        Returns the stored message id when the trace lives in the store (the caller writes it
        there); otherwise the event is kept here (on the relayed trace, or on an external one
        created for ``key``)."""
        resolved = self.resolve(key)
        if resolved is not None:
            if self.imdn_seen(resolved, at, detail, event=event):
                return None
            return resolved  # a stored message
        events = self._external.get(key)
        if events is None:
            events = self._external[key] = []
            if len(self._external) > self.limit:
                del self._external[next(iter(self._external))]
        events.append(TraceEvent(at, event, detail))
        return None

    def external(self, key: str) -> list[TraceEvent] | None:
        return self._external.get(key)

    def __len__(self) -> int:
        return len(self._entries)
