"""Call Detail Records: length-delimited ``MessageCdr`` files, their reader and a JSON view.

The schema is ``fivegmc/obs/cdr.proto`` (package ``fivegmc.cdr.v1``); ``cdr_pb2`` is generated
from it by ``scripts/gen_proto.sh`` with a pinned grpcio-tools.

File format: a CDR file is a sequence of records, each a base-128 varint holding the length of
the serialized ``MessageCdr`` followed by those bytes -- the framing of protobuf's Java
``writeDelimitedTo`` / ``parseDelimitedFrom``, so other tools read the files directly. There is no
file header. Files are named ``<prefix>-<YYYYmmddTHHMMSSZ>-<seq>.pb`` (UTC; ``seq`` counts the
files of one writer, zero-padded), so a lexical sort of the names is their order in time.

:class:`CdrWriter` is synchronous and cheap: ``write()`` serializes the record and appends it to
an in-memory batch; the batch goes to the file in one ``write(2)`` when it reaches
``batch_bytes``, on ``flush()``, on rotation and on ``close()``. It is meant to be called from
the node's event loop (a 64 KiB write to the page cache takes tens of microseconds). A deployment
that wants fsync on flush, or a slow disk, can call ``flush()`` / ``close()`` through
``asyncio.to_thread`` (or wrap the writer in a small adapter that does); the writer itself does
no locking, so one thread at a time must use it.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from fivegmc.obs.cdr_pb2 import MessageCdr, MessageKind, Outcome

__all__ = [
    "CdrFileError",
    "CdrTruncatedError",
    "CdrTruncatedWarning",
    "CdrWriter",
    "MessageCdr",
    "MessageKind",
    "Outcome",
    "cdr_to_json",
    "decode_varint",
    "dump",
    "encode_varint",
    "read_cdrs",
]

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 64 * MiB
DEFAULT_BATCH_BYTES = 64 * 1024
# A sanity bound when reading: a CDR is a few hundred bytes; a length prefix above this means
# the file is not a CDR file (or is corrupt), not that we should allocate gigabytes.
MAX_RECORD_BYTES = 16 * MiB

_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


class CdrFileError(ValueError):
    """A CDR file is corrupt (bad length prefix or a record that does not parse)."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"{path}: {reason} at byte offset {offset}")
        self.path = path
        self.offset = offset
        self.reason = reason


class CdrTruncatedError(CdrFileError):
    """The file ends inside a record: typically the last record of a file cut by a crash.

    Every record before ``offset`` was complete and has been yielded already.
    """


class CdrTruncatedWarning(UserWarning):
    """Emitted instead of :class:`CdrTruncatedError` when reading with ``on_truncated="warn"``."""


def encode_varint(value: int) -> bytes:
    """Base-128 varint (little-endian groups of 7 bits, high bit = more), as protobuf."""
    if value < 0:
        raise ValueError("varint value must not be negative")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes, pos: int = 0) -> tuple[int, int] | None:
    """Decode a varint at ``data[pos:]``: ``(value, next_pos)``, or ``None`` if it is cut short.

    Raises ``ValueError`` for a varint longer than 10 bytes (not a protobuf varint).
    """
    result = 0
    shift = 0
    end = len(data)
    while pos < end:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than 10 bytes")
    return None


class CdrWriter:
    """Writes ``MessageCdr`` records to rotating length-delimited files in ``directory``.

    - ``prefix``: file name prefix (``<prefix>-<UTC stamp>-<seq>.pb``).
    - ``max_bytes``: a file is rotated before a record would take it past this size. A single
      record larger than ``max_bytes`` is written alone in its own file (records are never
      split).
    - ``max_files``: if set, after each rotation the oldest ``<prefix>-*.pb`` files in
      ``directory`` (this writer's and earlier runs') are deleted so that at most this many
      remain, the one being written included.
    - ``batch_bytes``: buffered bytes that trigger a write to the file.
    - ``fsync``: also ``os.fsync`` on ``flush()`` and on rotation/close (durable, slower).
    - ``clock``: returns the current UTC time for file names (tests pass a fixed one).

    Files are created lazily: a writer that never gets a record creates no file. Use as a
    context manager or call ``close()``.
    """

    def __init__(
        self,
        directory: Path,
        *,
        prefix: str = "cdr",
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_files: int | None = None,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        fsync: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if max_files is not None and max_files < 1:
            raise ValueError("max_files must be at least 1")
        if not prefix or "/" in prefix or os.sep in prefix:
            raise ValueError(f"bad CDR file prefix {prefix!r}")
        self.directory = Path(directory)
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.batch_bytes = batch_bytes
        self.fsync = fsync
        self._clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._name_re = re.compile(rf"^{re.escape(prefix)}-\d{{8}}T\d{{6}}Z-\d+\.pb$")
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._file_size = 0  # bytes of the current file, written and batched
        self._batch: list[bytes] = []
        self._batch_size = 0
        self._seq = 0
        self._closed = False
        self.paths: list[Path] = []  # every file this writer created, in order
        self.records_written = 0

    # -- public API ---------------------------------------------------------------------------

    @property
    def current_path(self) -> Path | None:
        """The file being written, or ``None`` before the first record / after close."""
        return self._path

    def write(self, record: MessageCdr) -> None:
        """Append one record (buffered; see ``flush()``)."""
        if self._closed:
            raise ValueError("write to a closed CdrWriter")
        body = record.SerializeToString()
        framed = encode_varint(len(body)) + body
        size = len(framed)
        if self._file is None:
            self._open_next()
        elif self._file_size > 0 and self._file_size + size > self.max_bytes:
            self._rotate()
        self._batch.append(framed)
        self._batch_size += size
        self._file_size += size
        self.records_written += 1
        if self._batch_size >= self.batch_bytes:
            self._drain()

    def flush(self) -> None:
        """Hand every buffered record to the OS (and fsync if the writer was made with it)."""
        self._drain()
        if self._file is not None and self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush and close the current file. Idempotent."""
        if self._closed:
            return
        try:
            self._close_file()
        finally:
            self._closed = True

    def __enter__(self) -> CdrWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _drain(self) -> None:
        if not self._batch or self._file is None:
            return
        data = b"".join(self._batch) if len(self._batch) > 1 else self._batch[0]
        self._batch.clear()
        self._batch_size = 0
        self._file.write(data)

    def _close_file(self) -> None:
        if self._file is None:
            return
        try:
            self.flush()
        finally:
            self._file.close()
            self._file = None
            self._path = None

    def _rotate(self) -> None:
        self._close_file()
        self._open_next()

    def _open_next(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = self._clock().astimezone(UTC).strftime(_STAMP_FORMAT)
        while True:
            path = self.directory / f"{self.prefix}-{stamp}-{self._seq:06d}.pb"
            self._seq += 1
            try:
                # Unbuffered: our batch is the buffer, one write(2) per drain.
                self._file = open(path, "xb", buffering=0)  # noqa: SIM115 - closed in _close_file
            except FileExistsError:
                continue  # another writer (or an earlier run) used this name: take the next seq
            break
        self._path = path
        self._file_size = 0
        self.paths.append(path)
        if self.max_files is not None:
            self._prune(self.max_files)

    def _prune(self, keep: int) -> None:
        names = sorted(
            p.name for p in self.directory.iterdir() if self._name_re.match(p.name) is not None
        )
        current = self._path.name if self._path is not None else None
        excess = len(names) - keep
        for name in names:
            if excess <= 0:
                break
            if name == current:
                continue
            (self.directory / name).unlink(missing_ok=True)
            excess -= 1


def read_cdrs(
    path: Path | str,
    *,
    on_truncated: Literal["raise", "warn"] = "raise",
) -> Iterator[MessageCdr]:
    """Yield the records of one CDR file, in order.

    If the file ends inside a record (a length prefix cut short, or fewer bytes than the prefix
    announced -- what a crash leaves behind), the complete records before it are yielded and
    then :class:`CdrTruncatedError` is raised, or, with ``on_truncated="warn"``, a
    :class:`CdrTruncatedWarning` is emitted and iteration stops. A record that does not parse or
    an absurd length raises :class:`CdrFileError` in both modes.
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    end = len(data)
    while pos < end:
        start = pos
        try:
            header = decode_varint(data, pos)
        except ValueError as exc:
            raise CdrFileError(path, start, f"bad length prefix ({exc})") from None
        if header is None:
            _truncated(path, start, "file ends inside a record length prefix", on_truncated)
            return
        length, pos = header
        if length > MAX_RECORD_BYTES:
            raise CdrFileError(path, start, f"record length {length} exceeds {MAX_RECORD_BYTES}")
        if pos + length > end:
            _truncated(
                path,
                start,
                f"last record truncated ({end - pos} of {length} bytes present)",
                on_truncated,
            )
            return
        try:
            record = MessageCdr.FromString(data[pos : pos + length])
        except DecodeError as exc:
            raise CdrFileError(path, start, f"record does not parse ({exc})") from None
        pos += length
        yield record


def _truncated(path: Path, offset: int, reason: str, mode: Literal["raise", "warn"]) -> None:
    if mode == "warn":
        warnings.warn(
            f"{path}: {reason} at byte offset {offset}; stopped reading",
            CdrTruncatedWarning,
            stacklevel=3,
        )
        return
    raise CdrTruncatedError(path, offset, reason)


def cdr_to_json(record: MessageCdr) -> dict[str, Any]:
    """The proto3 JSON mapping of ``record`` with the .proto field names (snake_case).

    Every scalar field is present, default values included, so the key set is stable;
    enums are their names (``"OUTCOME_DELIVERED"``), timestamps RFC 3339 UTC strings (absent
    when unset), ``body_size`` (uint64) a decimal string as proto3 JSON requires.
    """
    return json_format.MessageToDict(
        record,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def dump(
    paths: Iterable[Path | str],
    out: IO[str],
    *,
    on_truncated: Literal["raise", "warn"] = "raise",
) -> int:
    """Write every record of ``paths`` (in the order given) to ``out`` as JSON lines.

    Returns the number of records written. Keys are sorted; non-ASCII text is kept as is.
    """
    count = 0
    for path in paths:
        for record in read_cdrs(path, on_truncated=on_truncated):
            out.write(json.dumps(cdr_to_json(record), ensure_ascii=False, sort_keys=True))
            out.write("\n")
            count += 1
    return count
