"""Errors that say whose fault it is and what to answer (DESIGN.md §3)."""

from __future__ import annotations

from .constants import CommandStatus


class SmppError(Exception):
    """Base of the SMPP codec's errors."""


class RemoteProtocolError(SmppError):
    """The peer sent something invalid.

    ``status`` is the command_status to answer with (in the request's ``_resp`` when
    ``command_id``/``sequence_number`` are known and the command has one, else in a
    generic_nack). ``fatal`` means the byte stream can no longer be framed: answer, then close.
    """

    def __init__(self, message: str, status: int, *, command_id: int | None = None,
                 sequence_number: int = 0, fatal: bool = False) -> None:
        super().__init__(message)
        self.status = CommandStatus(status) if status in CommandStatus._value2member_map_ \
            else status
        self.command_id = command_id
        self.sequence_number = sequence_number
        self.fatal = fatal


class LocalProtocolError(SmppError):
    """We were asked to send something the protocol does not allow (a bug on our side)."""
