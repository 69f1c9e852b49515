"""The MaaP file store: uploaded media served at ``GET {root}/files/{file_id}`` until they expire.

Dialect upload endpoints (GSMA ``POST …/files``, CT/CU ``medias/upload``, CMCC ``Content``;
protocols.md §1, §2) call :meth:`FileStore.put` and hand the CSP the record's ``url``; UEs
fetch the file from that URL (FT-over-HTTP ``<data url=… until=…/>``, protocols.md §3).

Layout under ``dir``: ``{id}.bin`` (content) and ``{id}.json`` (the record; written last, so a
sidecar means a complete file). The index is kept in memory and rebuilt from the sidecars on
start, so files survive restarts. A file past ``until`` answers 410; the sweeper deletes its
content, keeps a small tombstone (still 410) for ``tombstone_s``, and reports a
``FileStatusEvent("expired")`` through ``on_expired``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from .model import FileRecord, FileStatusEvent

#: Called once per file the sweeper expires.
OnExpired = Callable[[FileStatusEvent], Awaitable[None]]

_ID_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
_CTYPE_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;[^\r\n]*)?")
DEFAULT_TYPE = "application/octet-stream"


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    record: FileRecord
    #: content deleted by the sweeper (a tombstone that answers 410)
    swept: bool = False


def _record_json(rec: FileRecord, swept: bool) -> bytes:
    d = dataclasses.asdict(rec)
    d.pop("url")
    d["swept"] = swept
    return json.dumps(d, ensure_ascii=False).encode()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class FileStore:
    """:class:`fivegmc.maap.api.Files` on a directory (one concept: media by id with expiry)."""

    def __init__(self, dir: Path, public_base: str, max_bytes: int, default_ttl_s: float,
                 clock: Callable[[], float] = time.time, *, root: str = "",
                 on_expired: OnExpired | None = None, tombstone_s: float = 86400.0) -> None:
        if max_bytes <= 0 or default_ttl_s <= 0:
            raise ValueError("max_bytes and default_ttl_s must be > 0")
        self.dir = Path(dir)
        #: ``http://host:port`` the URLs start with; settable once the server's port is known
        self.public_base = public_base.rstrip("/")
        #: path prefix of the file route (``MaapConfig.server_root``)
        self.root = root.rstrip("/")
        self.max_bytes = max_bytes
        self.default_ttl_s = default_ttl_s
        self.on_expired = on_expired
        self._clock = clock
        self._tombstone_s = tombstone_s
        self._index: dict[str, _Entry] = {}
        self.dir.mkdir(parents=True, exist_ok=True)
        self._load()

    # -- naming --------------------------------------------------------------------------------
    @property
    def route(self) -> str:
        """The aiohttp route template the files are served on."""
        return f"{self.root}/files/{{file_id}}"

    def url_for(self, file_id: str) -> str:
        return f"{self.public_base}{self.root}/files/{file_id}"

    def _with_url(self, rec: FileRecord) -> FileRecord:
        url = self.url_for(rec.file_id)
        return rec if rec.url == url else dataclasses.replace(rec, url=url)

    def _bin(self, file_id: str) -> Path:
        return self.dir / f"{file_id}.bin"

    def _meta(self, file_id: str) -> Path:
        return self.dir / f"{file_id}.json"

    # -- startup -------------------------------------------------------------------------------
    def _load(self) -> None:
        for meta in self.dir.glob("*.json"):
            try:
                d: dict[str, Any] = json.loads(meta.read_bytes())
                swept = bool(d.pop("swept", False))
                rec = FileRecord(url="", **d)
            except (OSError, ValueError, TypeError):
                continue  # a damaged sidecar: the file is unknown (404), nothing else breaks
            if rec.file_id != meta.stem or (not swept and not self._bin(rec.file_id).exists()):
                continue
            self._index[rec.file_id] = _Entry(self._with_url(rec), swept)
        # content without a sidecar: an upload cut short by a crash
        for data in self.dir.glob("*.bin"):
            if data.stem not in self._index:
                data.unlink(missing_ok=True)
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink(missing_ok=True)

    # -- api.Files -----------------------------------------------------------------------------
    async def put(self, bot_id: str, name: str, content_type: str, data: bytes, *,
                  ttl_s: float | None = None, thumbnail_of: str = "") -> FileRecord:
        if len(data) > self.max_bytes:
            raise ValueError(f"file is {len(data)} bytes, more than the {self.max_bytes} "
                             f"allowed")
        content_type = content_type.strip() or DEFAULT_TYPE
        if not _CTYPE_RE.fullmatch(content_type):
            raise ValueError(f"not a media type: {content_type!r}")
        ttl = self.default_ttl_s if ttl_s is None else ttl_s
        if ttl <= 0:
            raise ValueError("expiry (until) must be in the future")
        if thumbnail_of and thumbnail_of not in self._index:
            raise ValueError(f"thumbnail_of names no file: {thumbnail_of!r}")
        file_id = secrets.token_urlsafe(18)
        rec = FileRecord(
            file_id=file_id, bot_id=bot_id, url=self.url_for(file_id),
            name=name.replace("\r", " ").replace("\n", " ")[:255], content_type=content_type,
            size=len(data), until=self._clock() + ttl,
            sha256=hashlib.sha256(data).hexdigest(), thumbnail_of=thumbnail_of)
        await asyncio.to_thread(self._write, rec, data)
        self._index[file_id] = _Entry(rec)
        return rec

    def _write(self, rec: FileRecord, data: bytes) -> None:
        _write_atomic(self._bin(rec.file_id), data)
        _write_atomic(self._meta(rec.file_id), _record_json(rec, False))

    def get(self, file_id: str) -> FileRecord | None:
        entry = self._index.get(file_id)
        return None if entry is None else self._with_url(entry.record)

    def by_url(self, url: str) -> FileRecord | None:
        path = urlsplit(url.strip()).path
        prefix = f"{self.root}/files/"
        if not path.startswith(prefix):
            return None
        return self.get(path[len(prefix):])

    async def read(self, file_id: str) -> bytes:
        entry = self._index.get(file_id)
        if entry is None or entry.swept:
            raise KeyError(file_id)
        try:
            return await asyncio.to_thread(self._bin(file_id).read_bytes)
        except FileNotFoundError:
            raise KeyError(file_id) from None

    async def delete(self, file_id: str) -> bool:
        entry = self._index.pop(file_id, None)
        if entry is None:
            return False
        # thumbnails belong to their file
        thumbs = [i for i, e in self._index.items() if e.record.thumbnail_of == file_id]
        for t in thumbs:
            del self._index[t]
        await asyncio.to_thread(self._remove, [file_id, *thumbs])
        return True

    def _remove(self, ids: list[str]) -> None:
        for i in ids:
            self._meta(i).unlink(missing_ok=True)
            self._bin(i).unlink(missing_ok=True)

    # -- extras --------------------------------------------------------------------------------
    def of_bot(self, bot_id: str) -> list[FileRecord]:
        """The chatbot's files (live and expired), oldest expiry first."""
        recs = [self._with_url(e.record) for e in self._index.values()
                if e.record.bot_id == bot_id]
        return sorted(recs, key=lambda r: r.until)

    def is_expired(self, rec: FileRecord, now: float | None = None) -> bool:
        return (self._clock() if now is None else now) >= rec.until

    async def sweep(self, now: float | None = None) -> list[FileRecord]:
        """Delete the content of files past ``until`` (tombstones stay 410), drop old
        tombstones, and report each newly expired file to ``on_expired``."""
        now = self._clock() if now is None else now
        expired = [e.record for e in self._index.values()
                   if not e.swept and now >= e.record.until]
        stale = [e.record.file_id for e in self._index.values()
                 if e.swept and now >= e.record.until + self._tombstone_s]
        for rec in expired:
            self._index[rec.file_id] = _Entry(rec, swept=True)
        for file_id in stale:
            del self._index[file_id]
        await asyncio.to_thread(self._sweep_disk, expired, stale)
        if self.on_expired is not None:
            for rec in expired:
                await self.on_expired(FileStatusEvent(rec.bot_id, rec.file_id, "expired", now))
        return [self._with_url(r) for r in expired]

    def _sweep_disk(self, expired: list[FileRecord], stale: list[str]) -> None:
        for rec in expired:
            _write_atomic(self._meta(rec.file_id), _record_json(rec, True))
            self._bin(rec.file_id).unlink(missing_ok=True)
        self._remove(stale)

    async def run(self, interval_s: float = 60.0) -> None:
        """Sweep every ``interval_s`` until cancelled (run it under the node's TaskGroup)."""
        while True:
            await asyncio.sleep(interval_s)
            await self.sweep()


# -- HTTP ------------------------------------------------------------------------------------


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One byte range of RFC 9110 §14.1.2 as ``(start, end_exclusive)``.

    None: serve the whole representation (no range, or a form we ignore as RFC 9110 §14.2
    allows: several ranges, another unit). Raises ValueError when the range is not
    satisfiable (answer 416).
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None  # malformed: ignore the header (RFC 9110 §14.2)
    if not first:
        if not last:
            return None
        n = int(last)
        if n == 0 or size == 0:
            raise ValueError("empty suffix range")
        return max(0, size - n), size
    start = int(first)
    end = size if not last else min(size, int(last) + 1)
    if last and int(last) < start:
        return None  # invalid range-spec: ignore
    if start >= size:
        raise ValueError("range starts past the end")
    return start, end


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


def file_routes(files: FileStore) -> list[web.RouteDef]:
    """``GET``/``HEAD {root}/files/{file_id}``: the file with its type and length; ``Range``
    (206 / 416); 404 unknown; 410 expired."""

    async def serve(request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        rec = files.get(file_id) if _ID_RE.fullmatch(file_id) else None
        if rec is None:
            return _error(404, f"no file {file_id}")
        if files.is_expired(rec):
            return _error(410, f"file {file_id} expired")
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": f'"{rec.sha256}"',
            "Cache-Control": "private, max-age=60",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(rec.name, safe='')}",
            "Expires": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(rec.until)),
        }
        etag = headers["ETag"]
        # If-Range naming another version: send the whole file (RFC 9110 §13.1.5)
        use_range = "Range" in request.headers and request.headers.get("If-Range", etag) == etag
        try:
            rng = parse_range(request.headers["Range"], rec.size) if use_range else None
        except ValueError:
            headers["Content-Range"] = f"bytes */{rec.size}"
            resp = _error(416, "range not satisfiable")
            resp.headers.update(headers)
            return resp
        status, start, end = (200, 0, rec.size) if rng is None else (206, *rng)
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{rec.size}"
        if request.method == "HEAD":
            headers["Content-Length"] = str(end - start)
            resp = web.Response(status=status, headers=headers, content_type=None)
            resp.headers["Content-Type"] = rec.content_type
            return resp
        try:
            data = await files.read(file_id)
        except KeyError:
            return _error(410, f"file {file_id} expired")
        resp = web.Response(status=status, body=data[start:end], headers=headers)
        resp.headers["Content-Type"] = rec.content_type
        return resp

    route = files.route
    return [web.get(route, serve, allow_head=False), web.head(route, serve)]


def openapi_part(files: FileStore) -> dict[str, Any]:
    """The file route's part of the OpenAPI document."""
    file_headers = {
        "Content-Length": {"schema": {"type": "integer"}},
        "Accept-Ranges": {"schema": {"type": "string"}},
    }
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    binary = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    params = [
        {"name": "file_id", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "One byte range (RFC 9110 §14.1.2), e.g. bytes=0-1023"},
    ]
    responses = {
        "200": {"description": "The file", "headers": file_headers, "content": binary},
        "206": {"description": "Part of the file (Range)", "headers": file_headers,
                "content": binary},
        "404": {"description": "Unknown file", **error},
        "410": {"description": "The file expired (its until has passed)", **error},
        "416": {"description": "Range not satisfiable", **error},
    }
    head_responses = {k: {kk: vv for kk, vv in v.items() if kk != "content"}
                      for k, v in responses.items()}
    return {
        "paths": {
            files.route: {
                "get": {"operationId": "getFile", "tags": ["files"],
                        "summary": "Download an uploaded media file", "parameters": params,
                        "responses": responses},
                "head": {"operationId": "headFile", "tags": ["files"],
                         "summary": "An uploaded media file's type and length",
                         "parameters": params, "responses": head_responses},
            },
        },
        "components": {"schemas": {"Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "string"}},
        }}},
    }


__all__ = ["DEFAULT_TYPE", "FileStore", "OnExpired", "file_routes", "openapi_part",
           "parse_range"]
