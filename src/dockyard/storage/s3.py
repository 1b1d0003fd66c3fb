"""The S3 driver: Amazon S3 and any store that speaks its API (MinIO, Ceph RGW, moto, ...).

Talks to S3 with aiobotocore (botocore's request signing and retries, on asyncio).

Layout
    A path maps to the key ``<prefix>/<path without its leading slash>``. Directories are
    only key prefixes: a path is a directory while some key lies below it, ``list`` uses
    the delimiter ``/`` and ``delete`` of a directory removes every key below it in
    batches of DeleteObjects.

New files (``writer(append=False)``, ``put``)
    Buffered up to ``part_size_mib``; a file that stays smaller is one PutObject at commit.
    A larger one becomes a multipart upload whose parts are sent as they fill, one part in
    flight while the next fills, so a writer holds about two parts in memory. Nothing is
    visible until commit completes the upload; cancel aborts it. An abandoned writer leaves
    an incomplete multipart upload, invisible to every operation here; a bucket lifecycle
    rule (AbortIncompleteMultipartUpload) reclaims its space.

Append writers (resumable uploads)
    S3 cannot append to an object nor read an unfinished multipart upload, yet an upload's
    data must be readable by any process after each chunk. So a file written by append
    writers is a *base object* at its key followed by *segment objects* at
    ``<key>~seg~00000001``, ``~00000002``, ... Paths never contain ``~`` (the checked
    driver guarantees it), so segment keys cannot collide with a real path, and
    ``list``/``walk`` hide them. Each append writer streams exactly one new segment, with
    the same part-by-part multipart upload as a new file (bounded memory, invisible until
    commit, aborted by cancel); an empty append adds no segment. Nothing lives in memory
    between writers: the next writer, in any process, lists the segments to learn the size
    and the next segment number. ``stat`` sums base and segments, ``read`` streams Range
    GETs across them, ``delete`` removes them with the base.

    ``move`` turns the pieces into one object at the destination, server-side where S3
    allows: one piece is a CopyObject (up to 5 GiB; larger, a multipart upload of
    UploadPartCopy ranges); several pieces are a multipart upload where each piece of at
    least 5 MiB is copied server-side (UploadPartCopy) and runs of smaller pieces, which
    S3 refuses as non-final parts, are downloaded and re-uploaded through a buffer of at
    most ``part_size_mib`` + 5 MiB. The source's objects are deleted afterwards. Moves are
    not atomic: a crash midway leaves the source intact, and a retried move redoes it.

    Appends to one file must not run concurrently (the registry serialises chunks of an
    upload); two concurrent append writers would pick the same segment number.

Consistency
    Reads of part of a file send ``If-Match`` with the ETag seen when the file was listed,
    so a file replaced mid-read is read again from the start (or fails, if bytes were
    already returned) instead of mixing two versions.

Redirects
    With ``redirect: true``, ``redirect_url`` pre-signs a GET (or HEAD) of the path's
    object, valid for ``redirect_expiry_seconds``. It sends no request: the URL names the
    base object only, which is the whole file for everything but upload data that has not
    been moved yet (blobs, the only files served, are always single objects).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio

from . import params as params_
from .driver import FileInfo, FileWriter, InvalidOffset, PathNotFound, StorageDriver

MiB = 1 << 20
# S3's limits: every part but the last is at least 5 MiB; a part or a CopyObject at most 5 GiB.
MIN_PART = 5 * MiB
MAX_PART = 5 << 30
SEG_MARK = "~seg~"
SEG_DIGITS = 8
READ_CHUNK = 1 << 20
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
READ_ATTEMPTS = 4  # reads restarted because the file changed under them
MAX_POOL_CONNECTIONS = 64  # streaming blob downloads each hold a connection
MAX_REDIRECT_EXPIRY = 7 * 24 * 3600  # SigV4's longest pre-signed URL

_PARAMS = "storage.params"
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
_SSE = ("", "AES256", "aws:kms")
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_CHANGED_CODES = _MISSING_CODES | {"PreconditionFailed", "412"}


@functools.cache
def _botocore_session() -> Any:
    """One aiobotocore session per process, shared by every driver: it caches the parsed S3
    service model (several MiB), which each driver would otherwise load again. It holds no
    settings of ours; each client gets its own credentials and endpoint."""
    from aiobotocore.session import get_session  # type: ignore[import-untyped]

    return get_session()


# -- settings ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3Settings:
    bucket: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    prefix: str = ""
    force_path_style: bool = False
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    server_side_encryption: str = ""
    sse_kms_key_id: str | None = None
    storage_class: str = "STANDARD"
    part_size_mib: int = 16
    redirect: bool = False
    redirect_expiry_seconds: int = 1200
    create_bucket: bool = False


_KNOWN = tuple(S3Settings.__dataclass_fields__)


def _bool(params: dict[str, Any], key: str, default: bool) -> bool:
    return default if params.get(key) is None else params_.flag(params[key], key)


def _int(params: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    return default if params.get(key) is None else params_.whole(params[key], key, low, high)


def _str(params: dict[str, Any], key: str, default: str | None = None) -> str | None:
    value = params.get(key)
    return default if value is None or value == "" else params_.text(value, key)


def parse_settings(params: dict[str, Any]) -> S3Settings:
    """Validate ``storage.params``; a ValueError names the offending key."""
    params_.reject_unknown(params, _KNOWN, "s3")
    bucket = _str(params, "bucket")
    if bucket is None:
        raise ValueError(f"{_PARAMS}.bucket: required")
    if "/" in bucket or bucket != bucket.strip():
        raise ValueError(f"{_PARAMS}.bucket: not a bucket name: {bucket!r}")
    endpoint = _str(params, "endpoint_url")
    if endpoint is not None and not re.match(r"^https?://[^/\s]+", endpoint):
        raise ValueError(f"{_PARAMS}.endpoint_url: expected an http:// or https:// URL, got {endpoint!r}")
    prefix = (_str(params, "prefix") or "").strip("/")
    if prefix and not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"{_PARAMS}.prefix: use letters, digits, '.', '_', '-' and '/' only, got {prefix!r}")
    key_id, secret = _str(params, "access_key_id"), _str(params, "secret_access_key")
    token = _str(params, "session_token")
    if (key_id is None) != (secret is None):
        missing = "secret_access_key" if secret is None else "access_key_id"
        raise ValueError(f"{_PARAMS}.{missing}: required with access_key_id and secret_access_key both or neither")
    if token is not None and key_id is None:
        raise ValueError(f"{_PARAMS}.session_token: needs access_key_id and secret_access_key")
    sse = _str(params, "server_side_encryption", "") or ""
    if sse not in _SSE:
        raise ValueError(f"{_PARAMS}.server_side_encryption: one of '', 'AES256', 'aws:kms'; got {sse!r}")
    kms_key = _str(params, "sse_kms_key_id")
    if kms_key is not None and sse != "aws:kms":
        raise ValueError(f"{_PARAMS}.sse_kms_key_id: only with server_side_encryption: aws:kms")
    storage_class = _str(params, "storage_class", "STANDARD") or "STANDARD"
    if not re.fullmatch(r"[A-Z][A-Z0-9_]*", storage_class):
        raise ValueError(
            f"{_PARAMS}.storage_class: expected a name like STANDARD or STANDARD_IA, got {storage_class!r}"
        )
    region = _str(params, "region", "us-east-1") or "us-east-1"
    return S3Settings(
        bucket=bucket,
        region=region,
        endpoint_url=endpoint,
        prefix=prefix,
        force_path_style=_bool(params, "force_path_style", False),
        access_key_id=key_id,
        secret_access_key=secret,
        session_token=token,
        server_side_encryption=sse,
        sse_kms_key_id=kms_key,
        storage_class=storage_class,
        part_size_mib=_int(params, "part_size_mib", 16, 5, 5120),
        redirect=_bool(params, "redirect", False),
        redirect_expiry_seconds=_int(params, "redirect_expiry_seconds", 1200, 1, MAX_REDIRECT_EXPIRY),
        create_bucket=_bool(params, "create_bucket", False),
    )


# -- helpers ----------------------------------------------------------------------------


def _code(e: BaseException) -> str:
    """The S3 error code of a botocore ClientError ("" for anything else)."""
    response = getattr(e, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


class _Changed(Exception):
    """An object of a file was replaced or removed while it was being read."""


@dataclass(frozen=True, slots=True)
class _Piece:
    key: str
    size: int
    etag: str
    mtime: float


@dataclass(slots=True)
class _Probe:
    """What lies at one key: the file's pieces (base object first, then its segments in
    order; empty when there is no base object) and whether keys lie below it."""

    pieces: list[_Piece] = field(default_factory=list)
    last_segment: int = 0
    is_dir: bool = False

    @property
    def is_file(self) -> bool:
        return bool(self.pieces)

    @property
    def size(self) -> int:
        return sum(p.size for p in self.pieces)

    @property
    def mtime(self) -> float:
        return max(p.mtime for p in self.pieces)


def _segment_number(name: str) -> int | None:
    """The number of a segment key's suffix (what follows the base key), or None."""
    if not name.startswith(SEG_MARK):
        return None
    digits = name[len(SEG_MARK) :]
    return int(digits) if digits.isdigit() else None


async def _close_body(body: Any) -> None:
    result = body.close()  # sync on aiohttp bodies, a coroutine on httpx ones
    if inspect.isawaitable(result):
        await result


async def _read_chunk(body: Any) -> bytes:
    """Up to READ_CHUNK bytes; fewer only at the end (the socket hands out small pieces)."""
    first = await body.read(READ_CHUNK)
    if not first or len(first) >= READ_CHUNK:
        return bytes(first)
    pieces, got = [first], len(first)
    while got < READ_CHUNK:
        more = await body.read(READ_CHUNK - got)
        if not more:
            break
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)


# -- writers ----------------------------------------------------------------------------


class _S3Writer(FileWriter):
    """Streams one object: a new file's, or an append writer's new segment."""

    def __init__(self, driver: S3Driver, key: str, file_key: str, start: int, append: bool) -> None:
        self._d = driver
        self._key = key  # the object written
        self._file_key = file_key  # the file's base key (its old segments go on replace)
        self._append = append
        self._size = start
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._upload_id: str | None = None
        self._etags: dict[int, str] = {}
        self._next_part = 1
        self._inflight: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def _require_open(self) -> None:
        if self._closed:
            raise ValueError("writer is closed")

    def _take(self) -> bytes:
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks, self._buffered = [], 0
        return data

    async def write(self, data: bytes) -> None:
        self._require_open()
        if not data:
            return
        self._chunks.append(bytes(data))  # no copy for bytes; a bytearray may change under us
        self._buffered += len(data)
        self._size += len(data)
        if self._buffered >= self._d.part_size:
            await self._send_part()

    async def _send_part(self) -> None:
        # Wait for the part in flight before joining the next one: at most two parts in memory.
        await self._wait_inflight()
        if self._upload_id is None:
            self._upload_id = await self._d._create_multipart(self._key)
        number, data = self._next_part, self._take()
        self._next_part += 1
        self._inflight = asyncio.ensure_future(self._upload(number, data))

    async def _upload(self, number: int, data: bytes) -> None:
        assert self._upload_id is not None
        self._etags[number] = await self._d._upload_part(self._key, self._upload_id, number, data)

    async def _wait_inflight(self) -> None:
        if self._inflight is not None:
            step, self._inflight = self._inflight, None
            await step

    async def commit(self, durable: bool = True) -> None:
        # Every completed S3 write is durable: ``durable`` changes nothing here.
        self._require_open()
        self._closed = True
        try:
            if self._upload_id is None:
                if self._append and not self._buffered:
                    return  # nothing appended: no empty segment
                await self._d._put_object(self._key, self._take())
            else:
                await self._wait_inflight()
                if self._buffered:
                    await self._upload(self._next_part, self._take())
                parts = [{"PartNumber": n, "ETag": self._etags[n]} for n in sorted(self._etags)]
                await self._d._complete_multipart(self._key, self._upload_id, parts)
                self._upload_id = None
            if not self._append:
                # A replaced file must not keep the segments of an earlier append writer.
                await self._d._delete_segments(self._file_key)
        except BaseException:
            await self._discard()
            raise

    async def cancel(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._discard()

    async def _discard(self) -> None:
        self._chunks, self._buffered = [], 0
        if self._inflight is not None:
            step, self._inflight = self._inflight, None
            step.cancel()
            await asyncio.gather(step, return_exceptions=True)  # its failure is moot now
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            await self._d._abort_multipart(self._key, upload_id)


class _Assembler:
    """Builds one object from a file's pieces with a multipart upload: pieces of at least
    5 MiB are copied server-side, shorter runs go through a bounded buffer."""

    def __init__(self, driver: S3Driver, key: str, upload_id: str) -> None:
        self._d, self._key, self._upload_id = driver, key, upload_id
        self._parts: list[dict[str, Any]] = []
        self._buf = bytearray()

    async def _copy(self, piece: _Piece, start: int, length: int) -> None:
        etag = await self._d._upload_part_copy(self._key, self._upload_id, len(self._parts) + 1, piece, start, length)
        self._parts.append({"PartNumber": len(self._parts) + 1, "ETag": etag})

    async def _flush(self) -> None:
        data = bytes(self._buf)
        self._buf = bytearray()
        etag = await self._d._upload_part(self._key, self._upload_id, len(self._parts) + 1, data)
        self._parts.append({"PartNumber": len(self._parts) + 1, "ETag": etag})

    async def _download(self, piece: _Piece, start: int, length: int) -> None:
        async for chunk in self._d._stream(piece, start, start + length, whole=False):
            self._buf += chunk

    async def run(self, pieces: list[_Piece]) -> list[dict[str, Any]]:
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            pos = 0
            while pos < piece.size:
                rest = piece.size - pos
                if len(self._buf) >= MIN_PART and rest >= MIN_PART:
                    await self._flush()  # a valid part already: the rest can be copied
                    continue
                if not self._buf and (rest >= MIN_PART or last):
                    n = min(rest, MAX_PART)  # a tail under 5 MiB goes through the buffer next
                    await self._copy(piece, pos, n)
                else:
                    # A short piece joins the buffer; before a long one, the buffer takes
                    # just enough of it to become a valid part.
                    n = rest if rest < MIN_PART else MIN_PART - len(self._buf)
                    await self._download(piece, pos, n)
                    if len(self._buf) >= self._d.part_size:
                        await self._flush()
                pos += n
        if self._buf:
            await self._flush()  # the last part may be short
        return self._parts


# -- the driver -------------------------------------------------------------------------


class S3Driver(StorageDriver):
    name = "s3"

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.part_size = settings.part_size_mib * MiB
        self._root = settings.prefix + "/" if settings.prefix else ""
        self._put_args: dict[str, str] = {}
        if settings.server_side_encryption:
            self._put_args["ServerSideEncryption"] = settings.server_side_encryption
        if settings.sse_kms_key_id:
            self._put_args["SSEKMSKeyId"] = settings.sse_kms_key_id
        if settings.storage_class != "STANDARD":  # S3's default; some compatible stores refuse the header
            self._put_args["StorageClass"] = settings.storage_class
        # aiohttp sessions belong to one event loop: the client is made on first use, in
        # the loop that uses it, and remade if another loop comes along.
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._init_lock: asyncio.Lock | None = None
        self._init_lock_loop: asyncio.AbstractEventLoop | None = None

    # -- client ------------------------------------------------------------------------

    async def _s3(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is loop:
            return self._client
        if self._init_lock is None or self._init_lock_loop is not loop:
            self._init_lock, self._init_lock_loop = asyncio.Lock(), loop
        async with self._init_lock:
            if self._client is None or self._client_loop is not loop:
                client = await self._make_client()
                try:
                    if self.settings.create_bucket:
                        await self._ensure_bucket(client)
                except BaseException:
                    await client.close()
                    raise
                self._client, self._client_loop = client, loop
        return self._client

    async def _make_client(self) -> Any:
        from aiobotocore.config import AioConfig  # type: ignore[import-untyped]

        s = self.settings
        options: dict[str, Any] = {
            "signature_version": "s3v4",
            "s3": {"addressing_style": "path" if s.force_path_style else "auto"},
            "max_pool_connections": MAX_POOL_CONNECTIONS,
            "retries": {"mode": "standard", "max_attempts": 5},
        }
        if s.endpoint_url is not None:
            # Many S3-compatible stores do not know the CRC checksums botocore sends by default.
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        return (
            await _botocore_session()
            .create_client(
                "s3",
                region_name=s.region,
                endpoint_url=s.endpoint_url,
                aws_access_key_id=s.access_key_id,
                aws_secret_access_key=s.secret_access_key,
                aws_session_token=s.session_token,
                config=AioConfig(**options),
            )
            .__aenter__()
        )

    async def _ensure_bucket(self, client: Any) -> None:
        try:
            await client.head_bucket(Bucket=self.bucket)
            return
        except Exception as e:
            if _code(e) not in ("404", "NoSuchBucket", "NotFound"):
                raise
        args: dict[str, Any] = {"Bucket": self.bucket}
        if self.settings.region != "us-east-1":  # us-east-1 refuses its own name as a constraint
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
        try:
            await client.create_bucket(**args)
        except Exception as e:
            if _code(e) not in ("BucketAlreadyOwnedByYou",):
                raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.close()
        self._client_loop = None

    # -- keys --------------------------------------------------------------------------

    def _key(self, path: str) -> str:
        return self._root if path == "/" else self._root + path[1:]

    def _dir_prefix(self, path: str) -> str:
        return self._root if path == "/" else self._root + path[1:] + "/"

    def _path(self, key: str) -> str:
        return "/" + key[len(self._root) :]

    # -- requests ----------------------------------------------------------------------

    async def _pages(self, prefix: str, delimiter: str | None) -> AsyncIterator[dict[str, Any]]:
        client = await self._s3()
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            args["Delimiter"] = delimiter
        while True:
            page: dict[str, Any] = await client.list_objects_v2(**args)
            yield page
            if not page.get("IsTruncated") or not page.get("NextContinuationToken"):
                return
            args["ContinuationToken"] = page["NextContinuationToken"]

    async def _probe(self, key: str) -> _Probe:
        """One listing (delimited, so a directory below costs one entry) finds the base
        object, its segments and whether key is also a directory."""
        base: _Piece | None = None
        segments: dict[int, _Piece] = {}
        probe = _Probe()
        async for page in self._pages(key, "/"):
            for obj in page.get("Contents", ()):
                k: str = obj["Key"]
                piece = _Piece(k, int(obj["Size"]), str(obj.get("ETag", "")), obj["LastModified"].timestamp())
                if k == key:
                    base = piece
                elif (n := _segment_number(k[len(key) :])) is not None:
                    segments[n] = piece
            if any(cp.get("Prefix") == key + "/" for cp in page.get("CommonPrefixes", ())):
                probe.is_dir = True
        if base is not None:  # segments without a base are litter of an interrupted delete
            probe.pieces = [base, *(segments[n] for n in sorted(segments))]
            probe.last_segment = max(segments, default=0)
        return probe

    async def _file(self, path: str) -> _Probe:
        probe = await self._probe(self._key(path))
        if not probe.is_file:
            raise PathNotFound(path)
        return probe

    async def _put_object(self, key: str, data: bytes) -> None:
        client = await self._s3()
        await client.put_object(Bucket=self.bucket, Key=key, Body=data, **self._put_args)

    async def _create_multipart(self, key: str) -> str:
        client = await self._s3()
        resp = await client.create_multipart_upload(Bucket=self.bucket, Key=key, **self._put_args)
        return str(resp["UploadId"])

    async def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        client = await self._s3()
        resp = await client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)
        return str(resp["ETag"])

    async def _upload_part_copy(
        self, key: str, upload_id: str, number: int, piece: _Piece, start: int, length: int
    ) -> str:
        client = await self._s3()
        resp = await client.upload_part_copy(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": self.bucket, "Key": piece.key},
            CopySourceRange=f"bytes={start}-{start + length - 1}",
            CopySourceIfMatch=piece.etag,
        )
        return str(resp["CopyPartResult"]["ETag"])

    async def _complete_multipart(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        client = await self._s3()
        await client.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )

    async def _abort_multipart(self, key: str, upload_id: str) -> None:
        # Shielded: a cancelled request must still release the parts it stored.
        with anyio.CancelScope(shield=True):
            client = await self._s3()
            try:
                await client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception as e:
                if _code(e) != "NoSuchUpload":
                    raise

    async def _delete_keys(self, keys: list[str]) -> None:
        client = await self._s3()
        for i in range(0, len(keys), DELETE_BATCH):
            batch = keys[i : i + DELETE_BATCH]
            resp = await client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            errors = [e for e in resp.get("Errors", ()) if e.get("Code") != "NoSuchKey"]
            if errors:
                first = errors[0]
                raise RuntimeError(f"DeleteObjects failed for {len(errors)} keys, e.g. {first.get('Key')}: {first}")

    async def _segments(self, key: str) -> list[str]:
        found: list[str] = []
        async for page in self._pages(key + SEG_MARK, None):
            found.extend(obj["Key"] for obj in page.get("Contents", ()))
        return found

    async def _delete_segments(self, key: str) -> None:
        doomed = await self._segments(key)
        if doomed:
            await self._delete_keys(doomed)

    async def _open(self, piece: _Piece, start: int, stop: int, whole: bool) -> Any:
        """The body of a GET of piece[start:stop]; _Changed if the object is not the one listed."""
        client = await self._s3()
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": piece.key}
        if not whole:
            args["Range"] = f"bytes={start}-{stop - 1}"
            args["IfMatch"] = piece.etag
        try:
            resp = await client.get_object(**args)
        except Exception as e:
            if _code(e) in _CHANGED_CODES:
                raise _Changed(piece.key) from e
            raise
        return resp["Body"]

    async def _stream(self, piece: _Piece, start: int, stop: int, whole: bool) -> AsyncIterator[bytes]:
        body = await self._open(piece, start, stop, whole)
        try:
            while chunk := await _read_chunk(body):
                yield chunk
        finally:
            await _close_body(body)

    # -- the contract ------------------------------------------------------------------

    async def stat(self, path: str) -> FileInfo:
        if path == "/":
            return FileInfo(path, 0, True, 0.0)  # the root always exists, as on a filesystem
        probe = await self._probe(self._key(path))
        if probe.is_file:
            return FileInfo(path, probe.size, False, probe.mtime)
        if probe.is_dir:
            return FileInfo(path, 0, True, 0.0)
        raise PathNotFound(path)

    async def get(self, path: str) -> bytes:
        return b"".join([chunk async for chunk in self.read(path)])

    async def put(self, path: str, data: bytes) -> None:
        if len(data) > self.part_size:
            w = await self.writer(path)
            try:
                await w.write(data)
            except BaseException:
                await w.cancel()
                raise
            await w.commit()
            return
        key = self._key(path)
        await self._put_object(key, bytes(data))
        await self._delete_segments(key)

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        for attempt in range(READ_ATTEMPTS):
            probe = await self._file(path)
            size = probe.size
            if offset > size:
                raise InvalidOffset(path, offset)
            end = size if length is None else min(size, offset + length)
            # One object read whole needs no If-Match: a GET returns one version entirely.
            whole = len(probe.pieces) == 1 and offset == 0 and end == size
            sent = False
            try:
                pos = 0
                for piece in probe.pieces:
                    lo, hi = max(offset, pos), min(end, pos + piece.size)
                    if lo < hi:
                        async for chunk in self._stream(piece, lo - pos, hi - pos, whole):
                            sent = True
                            yield chunk
                    pos += piece.size
                return
            except _Changed:
                if sent or attempt == READ_ATTEMPTS - 1:
                    # Half of one version and half of another would be worse than an error.
                    raise PathNotFound(path, "the file changed while it was read") from None

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        key = self._key(path)
        if not append:
            return _S3Writer(self, key, key, 0, append=False)
        probe = await self._file(path)
        segment = f"{key}{SEG_MARK}{probe.last_segment + 1:0{SEG_DIGITS}d}"
        return _S3Writer(self, segment, key, probe.size, append=True)

    async def move(self, src: str, dst: str) -> None:
        probe = await self._file(src)
        if src == dst:
            return
        dkey = self._key(dst)
        try:
            await self._assemble(dkey, [p for p in probe.pieces if p.size > 0])
        except Exception as e:
            if isinstance(e, _Changed) or _code(e) in _CHANGED_CODES:
                raise PathNotFound(src, "the file changed while it was moved") from e
            raise
        # The destination's own old segments would otherwise be read as part of it.
        await self._delete_keys([p.key for p in probe.pieces] + await self._segments(dkey))

    async def _assemble(self, key: str, pieces: list[_Piece]) -> None:
        if not pieces:
            await self._put_object(key, b"")
            return
        client = await self._s3()
        if len(pieces) == 1 and pieces[0].size <= MAX_PART:
            source = pieces[0]
            await client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": source.key},
                CopySourceIfMatch=source.etag,
                **self._put_args,
            )
            return
        upload_id = await self._create_multipart(key)
        try:
            parts = await _Assembler(self, key, upload_id).run(pieces)
            await self._complete_multipart(key, upload_id, parts)
        except BaseException:
            await self._abort_multipart(key, upload_id)
            raise

    async def delete(self, path: str) -> None:
        doomed: list[str] = []
        below = path == "/"
        if path != "/":
            probe = await self._probe(self._key(path))
            doomed = [p.key for p in probe.pieces]
            below = probe.is_dir
            if not probe.pieces and not below:
                raise PathNotFound(path)
        if below:
            async for page in self._pages(self._dir_prefix(path), None):
                doomed.extend(obj["Key"] for obj in page.get("Contents", ()))
        await self._delete_keys(doomed)

    async def list(self, path: str) -> list[str]:
        prefix = self._dir_prefix(path)
        children: set[str] = set()
        found = False
        async for page in self._pages(prefix, "/"):
            for cp in page.get("CommonPrefixes", ()):
                found = True
                children.add(self._path(cp["Prefix"][:-1]))
            for obj in page.get("Contents", ()):
                found = True
                name = obj["Key"][len(prefix) :]
                if name and "~" not in name:  # segments belong to their base file
                    children.add(self._path(obj["Key"]))
        if not found and path != "/":
            raise PathNotFound(path)
        return sorted(children)

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        if path != "/":
            probe = await self._probe(self._key(path))
            if probe.is_file:
                yield FileInfo(path, probe.size, False, probe.mtime)
                return
            if not probe.is_dir:
                raise PathNotFound(path)
        async for info in self._walk_dir(path):
            yield info

    async def _walk_dir(self, path: str) -> AsyncIterator[FileInfo]:
        """One delimited listing per directory: depth first by component needs each
        level sorted by name, which a flat listing's byte order is not ("b-c" < "b/x")."""
        prefix = self._dir_prefix(path)
        base = "" if path == "/" else path
        files: dict[str, tuple[int, float]] = {}  # name -> (size, mtime) of base objects
        segments: dict[str, list[tuple[int, float]]] = {}
        dirs: set[str] = set()
        async for page in self._pages(prefix, "/"):
            for cp in page.get("CommonPrefixes", ()):
                dirs.add(cp["Prefix"][len(prefix) : -1])
            for obj in page.get("Contents", ()):
                name: str = obj["Key"][len(prefix) :]
                entry = (int(obj["Size"]), obj["LastModified"].timestamp())
                owner, mark, number = name.partition(SEG_MARK)
                if mark and number.isdigit() and owner and "~" not in owner:
                    segments.setdefault(owner, []).append(entry)
                elif name and "~" not in name:
                    files[name] = entry
        for name in sorted(files.keys() | dirs):
            if name in files:  # segments without a base object are litter, never a file
                pieces = [files[name], *segments.get(name, ())]
                size, mtime = sum(p[0] for p in pieces), max(p[1] for p in pieces)
                yield FileInfo(f"{base}/{name}", size, False, mtime)
            if name in dirs:
                async for info in self._walk_dir(f"{base}/{name}"):
                    yield info

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        if not self.settings.redirect:
            return None
        operation = {"GET": "get_object", "HEAD": "head_object"}.get(method.upper())
        if operation is None:
            return None
        client = await self._s3()
        url = await client.generate_presigned_url(
            operation,
            Params={"Bucket": self.bucket, "Key": self._key(path)},
            ExpiresIn=self.settings.redirect_expiry_seconds,
        )
        return str(url)


def from_parameters(params: dict[str, Any], data_dir: str) -> StorageDriver:
    """``storage.driver: s3``; the data folder is not used (everything lives in the bucket)."""
    return S3Driver(parse_settings(params))
