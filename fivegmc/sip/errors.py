"""Protocol errors, split by whose fault they are (the h11 pattern).

A :class:`RemoteProtocolError` means the peer sent something we cannot accept; ``status_hint`` is
the SIP status to answer with when an answer is possible (RFC 3261 §21.4: 400 for a malformed
request, 413/513 for size, 420 for an unsupported extension ...). A :class:`LocalProtocolError`
means our own code tried something the protocol forbids; it is a bug, never a peer's doing.
"""

from __future__ import annotations


class SipError(Exception):
    """Base of all SIP protocol errors."""


class RemoteProtocolError(SipError):
    """The peer sent something invalid; answer with ``status_hint`` if a reply is possible."""

    def __init__(self, reason: str, status_hint: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint


class LocalProtocolError(SipError):
    """Our side tried to do something the protocol does not allow."""


def is_digits(text: str) -> bool:
    """ASCII digits only (RFC 3261 §25.1 DIGIT); ``str.isdigit`` also accepts '²' or '٣'."""
    return text.isascii() and text.isdigit()
