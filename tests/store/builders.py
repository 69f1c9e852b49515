"""Builders of stored messages shared by the store test suites."""

from __future__ import annotations

import itertools

from fivegmc.store.protocol import StoredMessage

NOW = 1_800_000_000.0
_ids = itertools.count(1)


def msg(
    recipient: str = "+8613800000001",
    *,
    sender: str = "+8613900000001",
    imdn: str | None = None,
    expires_at: float = NOW + 3600,
    next_attempt_at: float = 0.0,
    body: bytes = b"hello",
    msg_id: str | None = None,
) -> StoredMessage:
    n = next(_ids)
    return StoredMessage(
        id=msg_id or f"m{n}",
        recipient=recipient,
        sender=sender,
        imdn_message_id=imdn,
        received_at=NOW,
        expires_at=expires_at,
        content_type="message/cpim",
        body=body,
        headers=(("From", f"<tel:{sender}>"), ("To", f"<tel:{recipient}>")),
        next_attempt_at=next_attempt_at,
    )
