"""The Azure Blob storage driver: one container, everything under an optional prefix.

Files are block blobs; directories are only prefixes of blob names ("/" separated), as
in the in-memory driver. The async client (``azure.storage.blob.aio``, over aiohttp) is
made lazily on first use inside the running event loop.

Writers
    A new file's writer keeps at most one block in memory while the previous block is
    being staged (Put Block), and commits the block list on ``commit``: nothing is
    visible before. Content that fits one block is written with a single Put Blob
    instead. ``cancel`` commits nothing; staged blocks of an uncommitted blob expire on
    their own (the service drops them after a week, or at the blob's next commit).

    An append writer reads the blob's committed block list, stages the new bytes as new
    blocks and commits ``[old ids..., new ids...]`` on the condition that the blob is
    unchanged since the writer opened (ETag). Nothing lives only in memory between two
    writers, so any process can continue an upload another one began, and a 1 GiB
    layer pushed in chunks never sits in memory or on a local disk. A blob that is not
    made of our blocks (written by Put Blob, or by another tool) is first re-staged by
    streaming its content into new blocks, once.

    Block ids all have the same length (``ID_LEN`` characters), as the service requires
    within one blob. A block blob holds at most 50,000 committed blocks: an upload of
    many small chunks (each chunk ends with its own, possibly short, block) fails with
    a clear error once it would need more. With 8 MiB blocks and chunks of at least
    5 MiB that is over 240 GiB; a single streamed chunk fills whole blocks.

Concurrent writers of one new path: the first commit wins; since a commit drops the
blob's other uncommitted blocks, a second writer of more than one block may then fail
(it never mixes content). Uploads use unique paths, so this concerns direct puts only.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from . import params as params_
from .driver import FileInfo, FileWriter, InvalidOffset, PathNotFound, StorageDriver

MiB = 1 << 20
MAX_BLOCKS = 50_000  # committed blocks per block blob, a service limit
MAX_BLOCK_MIB = 4000  # largest Put Block the service accepts
READ_CHUNK = 4 * MiB  # one ranged GET while streaming a read
DELETE_BATCH = 64  # blobs deleted concurrently when removing a directory
COPY_POLL_SECONDS = (0.05, 2.0)  # first and longest wait between copy status checks
_TOKEN_HEX = 16  # random per writer, so ids of different writers never collide
ID_LEN = _TOKEN_HEX + 8  # + an 8-digit sequence number; constant for every block we stage
_CONTAINER_RE = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")

log = logging.getLogger(__name__)


def _new_token() -> str:
    return secrets.token_hex(_TOKEN_HEX // 2)


def _sort_key(path: str) -> tuple[str, ...]:
    # Depth first in sorted order means comparing component lists (see inmemory.walk).
    return tuple(path.split("/"))


def _walk_bound(path: str) -> tuple[str, ...]:
    """The smallest walk sort key any blob listed after ``path`` can have.

    The service lists names in plain string order, which differs from component order
    only because "-" and "." sort before "/": after "/a-b" may still come "/a/x", whose
    key is smaller. Such a later name shares the text before the first "-" or "." of
    ``path`` and continues with "/"; no later name sorts below that."""
    for i, ch in enumerate(path):
        if ch in "-.":
            return (*path[:i].split("/"), "")
    return _sort_key(path)


# -- settings -------------------------------------------------------------------------------

KNOWN_PARAMS = (
    "account_name",
    "account_key",
    "connection_string",
    "container",
    "prefix",
    "endpoint_url",
    "block_size_mib",
    "redirect",
    "redirect_expiry_seconds",
    "create_container",
)


_where = params_.where


def _str(params: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = params.get(key)
    if value is None or value == "":
        if required:
            raise ValueError(f"{_where(key)} is required for the azure driver")
        return None
    return params_.text(value, key)


def _bool(params: dict[str, Any], key: str, default: bool) -> bool:
    return params_.flag(params.get(key, default), key)


def _int(params: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    return params_.whole(params.get(key, default), key, low, high)


def _connection_fields(conn: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in conn.split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{_where('connection_string')} is not Key=Value pairs separated by ';'")
        fields[name.strip().lower()] = value.strip()
    return fields


class AzureSettings:
    """The validated ``storage.params`` of the azure driver."""

    def __init__(self, params: dict[str, Any]) -> None:
        params_.reject_unknown(params, KNOWN_PARAMS, "azure")
        self.connection_string = _str(params, "connection_string")
        self.account_name = _str(params, "account_name")
        self.account_key = _str(params, "account_key")
        self.endpoint_url = _str(params, "endpoint_url")
        if self.connection_string is not None:
            for key in ("account_name", "account_key", "endpoint_url"):
                if params.get(key):
                    raise ValueError(
                        f"{_where(key)} and {_where('connection_string')} exclude each other:"
                        " the connection string names the account, its key and its endpoint"
                    )
            fields = _connection_fields(self.connection_string)
            if "accountname" not in fields:
                raise ValueError(f"{_where('connection_string')} has no AccountName")
            self.account_name = fields.get("accountname")
            self.account_key = fields.get("accountkey")
        elif self.account_name is None or self.account_key is None:
            missing = "account_name" if self.account_name is None else "account_key"
            raise ValueError(
                f"{_where(missing)} is required for the azure driver"
                f" (give account_name and account_key, or connection_string)"
            )
        if self.endpoint_url is not None and not re.match(r"^https?://[^/]", self.endpoint_url):
            raise ValueError(f"{_where('endpoint_url')} must be an http:// or https:// URL")
        container = _str(params, "container", required=True)
        assert container is not None
        if not _CONTAINER_RE.fullmatch(container):
            raise ValueError(
                f"{_where('container')} {container!r} is no valid container name"
                " (3-63 lowercase letters, digits and single hyphens)"
            )
        self.container = container
        prefix = _str(params, "prefix") or ""
        self.prefix = "/".join(part for part in prefix.split("/") if part)
        self.block_size = _int(params, "block_size_mib", 8, 1, MAX_BLOCK_MIB) * MiB
        self.redirect = _bool(params, "redirect", False)
        self.redirect_expiry = _int(params, "redirect_expiry_seconds", 1200, 1, 7 * 24 * 3600)
        self.create_container = _bool(params, "create_container", False)
        if self.redirect and not self.account_key:
            raise ValueError(f"{_where('redirect')} needs the account key, to sign the URLs it hands out")


# -- the driver -------------------------------------------------------------------------------


def _is_missing_blob(e: BaseException) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    # A missing container is a configuration error, not a missing file.
    return isinstance(e, ResourceNotFoundError) and getattr(e, "error_code", None) != "ContainerNotFound"


@contextlib.contextmanager
def _not_found(path: str) -> Iterator[None]:
    try:
        yield
    except Exception as e:
        if _is_missing_blob(e):
            raise PathNotFound(path) from None
        raise


class _AzureWriter(FileWriter):
    def __init__(self, driver: AzureDriver, path: str, blob: Any, ids: list[str], size: int, etag: str | None) -> None:
        self._driver = driver
        self._path = path
        self._blob = blob
        self._base = ids  # committed ids kept in front (append writers); [] for a new file
        self._etag = etag  # an append commits only over the blob it started from
        self._new: list[str] = []
        self._size = size
        self._buf = bytearray()
        self._pending: asyncio.Task[Any] | None = None  # at most one block being staged
        self._token = _new_token()
        self._closed = False
        self._broken = False
        self.restaged = False  # set when the blob's content was copied into new blocks

    @property
    def size(self) -> int:
        return self._size

    def _require_open(self) -> None:
        if self._closed:
            raise ValueError("writer is closed")
        if self._broken:
            raise OSError(f"{self._path}: staging a block failed; the writer can only be cancelled")

    async def _wait_pending(self) -> None:
        if self._pending is not None:
            task, self._pending = self._pending, None
            try:
                await task
            except BaseException:
                self._broken = True  # a block is missing: committing now would lose bytes
                raise

    async def _stage_buffer(self) -> None:
        """Stage the buffer as the next block, in the background."""
        if len(self._base) + len(self._new) >= MAX_BLOCKS:
            raise OSError(
                f"{self._path}: a block blob holds at most {MAX_BLOCKS} blocks; "
                "upload in fewer, larger chunks or raise storage.params.block_size_mib"
            )
        # The previous block first, so that memory holds about two blocks at most.
        await self._wait_pending()
        block, self._buf = bytes(self._buf), bytearray()
        block_id = f"{self._token}{len(self._new):08d}"
        self._new.append(block_id)
        self._pending = asyncio.ensure_future(self._blob.stage_block(block_id, block, length=len(block)))

    async def write(self, data: bytes) -> None:
        self._require_open()
        view = memoryview(data)
        size = self._driver.settings.block_size
        while view:
            take = min(len(view), size - len(self._buf))
            self._buf += view[:take]
            view = view[take:]
            if len(self._buf) >= size:
                await self._stage_buffer()
        self._size += len(data)

    async def commit(self, durable: bool = True) -> None:  # acknowledged writes are durable
        self._require_open()
        self._closed = True
        from azure.core import MatchConditions
        from azure.storage.blob import BlobBlock, BlockState

        try:
            if self._etag is None and not self._new:
                # A new file of at most one block: one Put Blob, atomic for readers.
                await self._blob.upload_blob(bytes(self._buf), overwrite=True, max_concurrency=1)
                return
            if self._buf:
                await self._stage_buffer()
            await self._wait_pending()
            if not self._new and not self.restaged:
                return  # an append that added nothing
            blocks = [BlobBlock(i, BlockState.COMMITTED) for i in self._base]
            blocks += [BlobBlock(i, BlockState.UNCOMMITTED) for i in self._new]
            conditions: dict[str, Any] = {}
            if self._etag is not None:
                conditions = {"etag": self._etag, "match_condition": MatchConditions.IfNotModified}
            await self._blob.commit_block_list(blocks, **conditions)
        finally:
            self._buf = bytearray()

    async def cancel(self) -> None:
        self._closed = True
        self._buf = bytearray()
        if self._pending is not None:
            task, self._pending = self._pending, None
            task.cancel()
            # Its outcome no longer matters; a cancellation of cancel() itself still propagates.
            await asyncio.gather(task, return_exceptions=True)


class AzureDriver(StorageDriver):
    name = "azure"

    def __init__(self, settings: AzureSettings) -> None:
        self.settings = settings
        self._root = settings.prefix + "/" if settings.prefix else ""
        self._service: Any = None
        self._container: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._container_ready = not settings.create_container
        # The SDK logs every request at INFO; keep that out of the server's log unless asked.
        http_log = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
        if http_log.level == logging.NOTSET:
            http_log.setLevel(logging.WARNING)

    # -- client -------------------------------------------------------------------------------

    def _make_service(self) -> Any:
        from azure.storage.blob.aio import BlobServiceClient

        s = self.settings
        tuning: dict[str, Any] = {
            # Streamed reads and single-shot puts stay within one block or read chunk.
            "max_single_get_size": READ_CHUNK,
            "max_chunk_get_size": READ_CHUNK,
            "max_single_put_size": max(s.block_size, READ_CHUNK),
            "max_block_size": s.block_size,
        }
        if s.connection_string is not None:
            return BlobServiceClient.from_connection_string(s.connection_string, **tuning)
        assert s.account_name is not None and s.account_key is not None  # checked by AzureSettings
        url = s.endpoint_url or f"https://{s.account_name}.blob.core.windows.net"
        credential = {"account_name": s.account_name, "account_key": s.account_key}
        return BlobServiceClient(url.rstrip("/"), credential=credential, **tuning)

    async def _containerc(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._container is None or self._loop is not loop:
            # aiohttp sessions belong to one event loop; a CLI may run several in turn.
            self._service = self._make_service()
            self._container = self._service.get_container_client(self.settings.container)
            self._loop = loop
        if not self._container_ready:
            from azure.core.exceptions import ResourceExistsError

            with contextlib.suppress(ResourceExistsError):
                await self._container.create_container()
            self._container_ready = True
        return self._container

    async def _blob(self, path: str) -> Any:
        return (await self._containerc()).get_blob_client(self._key(path))

    def _key(self, path: str) -> str:
        return self._root + path[1:]

    def _dir(self, path: str) -> str:
        return self._root if path == "/" else self._key(path) + "/"

    def _path(self, name: str) -> str:
        return "/" + name[len(self._root) :]

    async def _has_children(self, path: str) -> bool:
        container = await self._containerc()
        async for _ in container.list_blobs(name_starts_with=self._dir(path), results_per_page=1):
            return True
        return False

    # -- the contract ---------------------------------------------------------------------------

    async def stat(self, path: str) -> FileInfo:
        if path == "/":
            return FileInfo(path, 0, True, 0.0)
        blob = await self._blob(path)
        try:
            props = await blob.get_blob_properties()
        except Exception as e:
            if not _is_missing_blob(e):
                raise
        else:
            return FileInfo(path, props.size, False, props.last_modified.timestamp())
        if await self._has_children(path):
            return FileInfo(path, 0, True, 0.0)
        raise PathNotFound(path)

    async def get(self, path: str) -> bytes:
        blob = await self._blob(path)
        with _not_found(path):
            downloader = await blob.download_blob(max_concurrency=1)
            data: bytes = await downloader.readall()
        return data

    async def put(self, path: str, data: bytes) -> None:
        w = await self.writer(path)
        try:
            await w.write(data)
            await w.commit()
        except BaseException:
            await w.cancel()
            raise

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        async for chunk in self._download(path, offset, length, None):
            yield chunk

    async def _download(self, path: str, offset: int, length: int | None, etag: str | None) -> AsyncIterator[bytes]:
        """Stream a range with GETs of READ_CHUNK bytes each; the SDK pins later ranges
        to the ETag of the first, so a blob replaced mid-read fails instead of mixing."""
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError

        blob = await self._blob(path)
        conditions: dict[str, Any] = {}
        if etag is not None:
            conditions = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        with _not_found(path):
            if length == 0:
                props = await blob.get_blob_properties(**conditions)
                if offset > props.size:
                    raise InvalidOffset(path, offset)
                return
            try:
                downloader = await blob.download_blob(
                    offset=offset if offset or length is not None else None,
                    length=length,
                    max_concurrency=1,
                    **conditions,
                )
            except HttpResponseError as e:
                if e.status_code != 416:
                    raise
                # A range starting at or past the end: empty at the end, an error after it.
                props = await blob.get_blob_properties(**conditions)
                if offset > props.size:
                    raise InvalidOffset(path, offset) from None
                return
            async for chunk in downloader.chunks():
                yield chunk

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        blob = await self._blob(path)
        if not append:
            return _AzureWriter(self, path, blob, [], 0, None)
        with _not_found(path):
            # Properties first: a change after this fails the commit's ETag condition.
            props = await blob.get_blob_properties()
            committed, _ = await blob.get_block_list("committed")
        ids = [b.id for b in committed]
        if sum(b.size for b in committed) == props.size and all(len(i) == ID_LEN for i in ids):
            return _AzureWriter(self, path, blob, ids, props.size, props.etag)
        return await self._restage(path, blob, props.etag)

    async def _restage(self, path: str, blob: Any, etag: str) -> FileWriter:
        """An append writer for a blob that is not made of our blocks: its content is
        streamed into new blocks first, so that the commit can list them."""
        log.info("azure: re-staging %s as blocks before appending to it", path)
        w = _AzureWriter(self, path, blob, [], 0, etag)
        w.restaged = True  # the commit must replace the old blocks even if nothing is appended
        try:
            async for chunk in self._download(path, 0, None, etag):
                await w.write(chunk)
        except BaseException:
            await w.cancel()
            raise
        return w

    async def move(self, src: str, dst: str) -> None:
        source = await self._blob(src)
        if src == dst:
            with _not_found(src):
                await source.get_blob_properties()
            return
        target = await self._blob(dst)
        # The source is in the same account, so the copy request's own Shared Key authorises
        # reading it: no SAS. (Azurite also mishandles a SAS source of 512 MiB or more: it
        # reads the whole blob into one string to "validate" it, and fails.)
        url = source.url.split("?", 1)[0]
        with _not_found(src):
            copy = await target.start_copy_from_url(url)
        status, wait = copy.get("copy_status"), COPY_POLL_SECONDS[0]
        while status == "pending":
            await asyncio.sleep(wait)
            wait = min(wait * 2, COPY_POLL_SECONDS[1])
            props = await target.get_blob_properties()
            status = props.copy.status
        if status != "success":
            raise OSError(f"copy {src} -> {dst} ended {status!r}")
        with contextlib.suppress(PathNotFound), _not_found(src):
            await source.delete_blob(delete_snapshots="include")

    async def delete(self, path: str) -> None:
        container = await self._containerc()
        found = False
        if path != "/":
            try:
                await container.delete_blob(self._key(path), delete_snapshots="include")
                found = True
            except Exception as e:
                if not _is_missing_blob(e):
                    raise
        batch: list[str] = []
        async for props in container.list_blobs(name_starts_with=self._dir(path)):
            found = True
            batch.append(props.name)
            if len(batch) >= DELETE_BATCH:
                await self._delete_many(container, batch)
                batch = []
        await self._delete_many(container, batch)
        if not found and path != "/":
            raise PathNotFound(path)

    async def _delete_many(self, container: Any, names: list[str]) -> None:
        async def one(name: str) -> None:
            try:
                await container.delete_blob(name, delete_snapshots="include")
            except Exception as e:
                if not _is_missing_blob(e):  # already gone: someone else deleted it
                    raise

        await asyncio.gather(*(one(n) for n in names))

    async def list(self, path: str) -> list[str]:
        container = await self._containerc()
        prefix = self._dir(path)
        base = "" if path == "/" else path
        names: set[str] = set()
        async for item in container.walk_blobs(name_starts_with=prefix, delimiter="/"):
            names.add(f"{base}/{item.name[len(prefix) :].rstrip('/')}")
        if not names and path != "/":
            raise PathNotFound(path)
        return sorted(names)

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        container = await self._containerc()
        if path != "/":
            blob = container.get_blob_client(self._key(path))
            try:
                props = await blob.get_blob_properties()
            except Exception as e:
                if not _is_missing_blob(e):
                    raise
            else:
                yield FileInfo(path, props.size, False, props.last_modified.timestamp())
                return
        # Streamed: hold back only the names a later-listed one may still sort before.
        pending: list[tuple[tuple[str, ...], FileInfo]] = []
        found = False
        async for props in container.list_blobs(name_starts_with=self._dir(path)):
            found = True
            child = self._path(props.name)
            info = FileInfo(child, props.size, False, props.last_modified.timestamp())
            heapq.heappush(pending, (_sort_key(child), info))
            bound = _walk_bound(child)
            while pending and pending[0][0] < bound:
                yield heapq.heappop(pending)[1]
        if not found and path != "/":
            raise PathNotFound(path)
        while pending:
            yield heapq.heappop(pending)[1]

    def _sas(self, key: str, expiry: datetime) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        s = self.settings
        assert s.account_name is not None and s.account_key is not None
        sas: str = generate_blob_sas(
            s.account_name,
            s.container,
            key,
            account_key=s.account_key,
            permission=BlobSasPermissions(read=True),
            expiry=expiry,
        )
        return sas

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        if not self.settings.redirect or method not in ("GET", "HEAD"):
            return None
        blob = await self._blob(path)
        expiry = datetime.now(UTC) + timedelta(seconds=self.settings.redirect_expiry)
        url: str = blob.url.split("?", 1)[0]
        return f"{url}?{self._sas(self._key(path), expiry)}"

    async def close(self) -> None:
        service, self._service, self._container = self._service, None, None
        if service is not None:
            await service.close()


def from_parameters(params: dict[str, Any], data_dir: str) -> AzureDriver:
    return AzureDriver(AzureSettings(params))
