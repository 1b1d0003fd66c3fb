"""Blob uploads: sessions, chunks, verification and the atomic commit.

The bytes of a session live at ``uploads/<id>/data`` and the session row in the metadata
database, so any process (or replica) can continue a session another one began. The
running SHA-256 of a session is kept in memory only as a shortcut: when it is missing or
does not match the stored length (another process wrote a chunk, or a restart), the
digest is recomputed from storage. A blob becomes visible only after its digest is
verified, its bytes are durable and it has been moved under ``blobs/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio.from_thread
import anyio.to_thread

from ...metadata import gc, queries
from ...metadata.db import Database
from ...storage.driver import FileWriter, PathNotFound, StorageDriver
from ...storage.paths import blob_path, upload_data_path, upload_dir
from .. import codes
from .. import digest as digests
from .lifecycle import LifecycleService

# Bytes gathered before one hash+write step: large enough to amortise the thread hops,
# small enough that hashing and writing overlap well with receiving (1 MiB measured best).
PUMP_BUFFER = 1 << 20
# Sessions are marked alive at most this often (seconds): a write per chunk costs an fsync.
TOUCH_INTERVAL = 60.0
_UPLOAD_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")
_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


@dataclass(frozen=True, slots=True)
class UploadState:
    id: str
    size: int  # bytes received so far


@dataclass(frozen=True, slots=True)
class CommittedBlob:
    digest: str
    size: int


def parse_content_range(value: str) -> tuple[int, int]:
    m = _CONTENT_RANGE.fullmatch(value.strip())
    if not m:
        raise codes.RegistryError(codes.RANGE_INVALID, f"invalid Content-Range {value[:100]!r}")
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise codes.RegistryError(codes.RANGE_INVALID, f"Content-Range end before start: {value[:100]!r}")
    return start, end


class _Hashers:
    """Running hashes of recent sessions, keyed by upload id, bounded."""

    def __init__(self, limit: int = 1024) -> None:
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._limit = limit

    def take(self, upload_id: str, size: int) -> Any | None:
        item = self._items.pop(upload_id, None)
        if item is None or item[1] != size:
            return None
        return item[0]

    def put(self, upload_id: str, hasher: Any, size: int) -> None:
        self._items[upload_id] = (hasher, size)
        while len(self._items) > self._limit:
            self._items.popitem(last=False)

    def drop(self, upload_id: str) -> None:
        self._items.pop(upload_id, None)


async def _pump(stream: AsyncIterator[bytes], writer: FileWriter, hasher: Any, limit: int | None) -> int:
    """Copy a request body into a writer while hashing it; hashing and writing of one
    buffer overlap with receiving the next. Returns the number of bytes copied."""
    pending: asyncio.Future[Any] | None = None
    chunks: list[bytes] = []
    buffered = 0
    total = 0

    async def consume(data: bytes) -> None:
        await asyncio.gather(anyio.to_thread.run_sync(hasher.update, data), writer.write(data))

    async def flush() -> None:
        nonlocal pending, buffered
        if pending is not None:
            step, pending = pending, None
            await step
        if chunks:
            data = b"".join(chunks)
            chunks.clear()
            buffered = 0
            await consume(data)

    try:
        async for chunk in stream:
            if not chunk:
                continue
            if limit is not None and total + len(chunk) > limit:
                raise codes.RegistryError(codes.SIZE_INVALID, "request body is longer than its Content-Length")
            total += len(chunk)
            # A list joined once: growing one bytearray costs a copy per realloc.
            chunks.append(chunk)
            buffered += len(chunk)
            if buffered >= PUMP_BUFFER:
                data = b"".join(chunks)
                chunks.clear()
                buffered = 0
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(consume(data))
    except codes.RegistryError:
        # The client went away or sent too much: keep the prefix that did arrive intact,
        # so the session can resume from it.
        await flush()
        raise
    finally:
        if pending is not None:
            # Let the in-flight step finish so the file and hash stay in step.
            await asyncio.gather(pending, return_exceptions=True)
    await flush()
    return total


class UploadService:
    def __init__(self, db: Database, storage: StorageDriver, lifecycle: LifecycleService | None = None) -> None:
        self.db = db
        self.storage = storage
        self.lifecycle = lifecycle
        self._hashers = _Hashers()
        # Weak: a lock lives only while some request holds or waits on it.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # --- sessions -------------------------------------------------------------------------

    async def start(self, repo: str) -> UploadState:
        upload_id = secrets.token_hex(16)
        writer = await self.storage.writer(upload_data_path(upload_id))
        await writer.commit(durable=False)  # an empty file: the session exists in storage from now on
        await self.db.write(_create_session, repo, upload_id)
        self._hashers.put(upload_id, digests.hasher("sha256"), 0)
        return UploadState(upload_id, 0)

    async def _session(self, repo: str, upload_id: str) -> queries.UploadRecord:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise codes.RegistryError(codes.BLOB_UPLOAD_UNKNOWN, "no such upload session")
        rec = await self.db.read(queries.get_upload, upload_id)
        if rec is None:
            raise codes.RegistryError(
                codes.BLOB_UPLOAD_UNKNOWN, "no such upload session (finished, cancelled or expired)"
            )
        if rec.repository != repo:
            raise codes.RegistryError(codes.BLOB_UPLOAD_INVALID, "the upload session belongs to another repository")
        return rec

    async def _check_quota(self, repo: str, incoming: int, digest: str | None = None) -> None:
        if self.lifecycle is not None:
            await self.lifecycle.check_quota(repo, incoming, digest)

    def _lock(self, upload_id: str) -> asyncio.Lock:
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[upload_id] = lock
        return lock

    async def _size(self, upload_id: str) -> int:
        try:
            return (await self.storage.stat(upload_data_path(upload_id))).size
        except PathNotFound:
            raise codes.RegistryError(codes.BLOB_UPLOAD_UNKNOWN, "upload session has no data") from None

    async def status(self, repo: str, upload_id: str) -> UploadState:
        await self._session(repo, upload_id)
        return UploadState(upload_id, await self._size(upload_id))

    async def append(
        self,
        repo: str,
        upload_id: str,
        body: AsyncIterator[bytes],
        content_range: str | None,
        content_length: int | None,
    ) -> UploadState:
        session = await self._session(repo, upload_id)
        async with self._lock(upload_id):
            size = await self._append(repo, upload_id, body, content_range, content_length, durable=False)
        if time.time() - session.updated_at > TOUCH_INTERVAL:
            await self.db.write(queries.touch_upload, upload_id)
        return UploadState(upload_id, size)

    async def _append(
        self,
        repo: str,
        upload_id: str,
        body: AsyncIterator[bytes] | None,
        content_range: str | None,
        content_length: int | None,
        durable: bool,
        digest: str | None = None,
    ) -> int:
        """Append a chunk (or nothing, when body is None) and commit the data file."""
        try:
            writer = await self.storage.writer(upload_data_path(upload_id), append=True)
        except PathNotFound:
            raise codes.RegistryError(codes.BLOB_UPLOAD_UNKNOWN, "upload session has no data") from None
        size = writer.size
        try:
            if content_range is not None:
                start, end = parse_content_range(content_range)
                if start != size:
                    raise codes.RegistryError(
                        codes.RANGE_INVALID,
                        f"chunk starts at {start} but {size} bytes were received so far",
                        headers={"Range": f"0-{max(size - 1, 0)}", "Docker-Upload-UUID": upload_id},
                    )
                if content_length is not None and content_length != end - start + 1:
                    raise codes.RegistryError(
                        codes.SIZE_INVALID,
                        f"Content-Length {content_length} does not match Content-Range {content_range}",
                    )
            if body is None:
                await writer.commit(durable)
                return size
            if content_length is not None:
                # Over quota is refused before the chunk is read (a streamed chunk of unknown
                # length is checked when the upload finishes, before the blob is committed).
                await self._check_quota(repo, size + content_length, digest)
            hasher = self._hashers.take(upload_id, size) or await self._rehash(upload_id, size)
            try:
                received = await _pump(body, writer, hasher, content_length)
            except codes.RegistryError:
                await writer.commit(durable=False)  # keep the prefix that arrived; it is what the client sent
                self._hashers.put(upload_id, hasher, writer.size)
                raise
            except BaseException:
                self._hashers.drop(upload_id)
                await writer.commit(durable=False)
                raise
            if content_length is not None and received != content_length:
                self._hashers.drop(upload_id)
                await writer.commit(durable=False)
                raise codes.RegistryError(
                    codes.SIZE_INVALID, f"received {received} bytes but Content-Length said {content_length}"
                )
            await writer.commit(durable)
        except codes.RegistryError:
            if writer.size == size:
                await writer.cancel()
            raise
        self._hashers.put(upload_id, hasher, writer.size)
        return writer.size

    async def _rehash(self, upload_id: str, size: int) -> Any:
        """Recompute the running hash from what storage holds (another process wrote it)."""
        hasher = digests.hasher("sha256")
        async for chunk in self.storage.read(upload_data_path(upload_id), 0, size):
            if len(chunk) >= 65536:
                await anyio.to_thread.run_sync(hasher.update, chunk)
            else:
                hasher.update(chunk)
        return hasher

    async def finish(
        self,
        repo: str,
        upload_id: str,
        digest: str | None,
        body: AsyncIterator[bytes] | None,
        content_range: str | None,
        content_length: int | None,
    ) -> CommittedBlob:
        """Append the optional last chunk, verify the digest and commit the blob."""
        expected = digests.parse(digest, what="digest query parameter")
        if expected.algorithm != "sha256":
            raise codes.RegistryError(codes.DIGEST_INVALID, "uploads are verified with sha256 only")
        await self._session(repo, upload_id)
        async with self._lock(upload_id):
            # Chunks were committed without fsync; the blob is made durable once, here.
            size = await self._append(
                repo, upload_id, body, content_range, content_length, durable=True, digest=str(expected)
            )
            hasher = self._hashers.take(upload_id, size) or await self._rehash(upload_id, size)
            actual = f"sha256:{hasher.hexdigest()}"
            if actual != str(expected):
                await self._discard(upload_id)
                raise codes.RegistryError(
                    codes.DIGEST_INVALID,
                    f"digest {expected} does not match the uploaded content ({actual}); session cancelled",
                    detail={"expected": str(expected), "actual": actual},
                )
            await self._check_quota(repo, size, str(expected))
            await self._commit(repo, upload_id, expected, size)
        return CommittedBlob(str(expected), size)

    async def _commit(self, repo: str, upload_id: str, d: digests.Digest, size: int) -> None:
        target = blob_path(d.algorithm, d.hex)
        # Twice at most: the second time, GC has just swept an identical blob we meant to reuse.
        for _ in range(2):
            if not await self._stored(target, size):
                # Moved only after verification; the data file was made durable by its writer.
                await self.storage.move(upload_data_path(upload_id), target)
            if await self.db.write(self._link_and_close, repo, upload_id, target, str(d), size):
                break
        else:
            raise codes.RegistryError(codes.UNAVAILABLE, "the blob was collected while it was linked; push it again")
        await self._remove_files(upload_id)

    async def _stored(self, path: str, size: int) -> bool:
        try:
            return (await self.storage.stat(path)).size == size
        except PathNotFound:
            return False

    def _link_and_close(self, conn: Any, repo: str, upload_id: str, target: str, digest: str, size: int) -> bool:
        """Link the blob and end the session, if its file is (still) there. Inside the write
        transaction, so a GC sweep of the same digest is either before (file gone: False, the
        caller puts it back) or after (it sees the new link, and keeps the blob)."""
        gc.hold(conn, [digest])  # first: waits for a sweep of this digest in progress
        if not anyio.from_thread.run(self._stored, target, size):
            return False
        _link(conn, repo, digest, size)
        queries.delete_upload(conn, upload_id)
        return True

    async def cancel(self, repo: str, upload_id: str) -> None:
        await self._session(repo, upload_id)
        await self._discard(upload_id)

    async def _discard(self, upload_id: str) -> None:
        self._hashers.drop(upload_id)
        await self.db.write(queries.delete_upload, upload_id)
        await self._remove_files(upload_id)

    async def _remove_files(self, upload_id: str) -> None:
        with contextlib.suppress(PathNotFound):
            await self.storage.delete(upload_dir(upload_id))

    async def monolithic(
        self, repo: str, digest: str, body: AsyncIterator[bytes], content_length: int | None
    ) -> CommittedBlob:
        """``POST ?digest=`` with the whole blob: a session started and finished at once."""
        digests.parse(digest, what="digest query parameter")
        if content_length is not None:
            await self._check_quota(repo, content_length, digest)
        state = await self.start(repo)
        try:
            return await self.finish(repo, state.id, digest, body, None, content_length)
        except BaseException:
            await self._discard(state.id)
            raise

    # --- cross-repository mount -----------------------------------------------------------

    async def mount(self, repo: str, digest: str, source: str | None) -> CommittedBlob | None:
        """Link a blob another repository has; None when it cannot (caller starts an upload)."""
        try:
            d = digests.parse(digest)
        except codes.RegistryError:
            return None
        if source is not None:
            size = await queries.blob_size_in_repository(self.db, source, str(d))
        else:
            size = await self.db.read(queries.blob_size, str(d))
        if size is None:
            return None
        await self._check_quota(repo, size, str(d))
        linked = await self.db.write(_mount, repo, str(d))
        return CommittedBlob(str(d), linked) if linked is not None else None

    async def expire(self, max_age_seconds: float) -> int:
        """Remove sessions untouched for longer than max_age_seconds; returns how many."""
        stale = await self.db.read(queries.stale_uploads, time.time() - max_age_seconds)
        for upload_id in stale:
            await self._discard(upload_id)
        return len(stale)


def _create_session(conn: Any, repo: str, upload_id: str) -> None:
    queries.create_upload(conn, upload_id, queries.ensure_repository(conn, repo))


def _link(conn: Any, repo: str, digest: str, size: int) -> None:
    queries.link_blob(conn, queries.ensure_repository(conn, repo), digest, size)


def _mount(conn: Any, repo: str, digest: str) -> int | None:
    gc.hold(conn, [digest])
    return queries.link_existing_blob(conn, queries.ensure_repository(conn, repo), digest)
