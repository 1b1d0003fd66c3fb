"""Serving and deleting blobs. A repository serves a blob only if metadata links it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from ...metadata import queries
from ...metadata.db import Database
from ...storage.driver import PathNotFound, StorageDriver
from ...storage.paths import blob_path
from .. import codes
from .. import digest as digests


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: str
    size: int
    path: str  # storage path


class BlobService:
    def __init__(self, db: Database, storage: StorageDriver, delete_enabled: bool) -> None:
        self.db = db
        self.storage = storage
        self.delete_enabled = delete_enabled

    async def stat(self, repo: str, digest: str) -> BlobInfo:
        d = digests.parse(digest)
        size = await queries.blob_size_in_repository(self.db, repo, digest)
        if size is None:
            raise codes.RegistryError(
                codes.BLOB_UNKNOWN, f"blob {digest} is unknown to repository {repo}", detail=digest
            )
        return BlobInfo(digest, size, blob_path(d.algorithm, d.hex))

    async def open(self, info: BlobInfo, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream the blob's bytes; the first chunk is read before returning, so a missing
        file surfaces as BLOB_UNKNOWN instead of a broken response."""
        stream = self.storage.read(info.path, offset, length)
        try:
            first = await anext(stream, b"")
        except PathNotFound:
            raise codes.RegistryError(codes.BLOB_UNKNOWN, f"blob {info.digest} is missing from storage") from None

        async def chained() -> AsyncIterator[bytes]:
            if first:
                yield first
            async for chunk in stream:
                yield chunk

        return chained()

    def local_path(self, info: BlobInfo) -> str | None:
        return self.storage.local_path(info.path)

    async def redirect_url(self, info: BlobInfo) -> str | None:
        return await self.storage.redirect_url(info.path)

    async def delete(self, repo: str, digest: str) -> None:
        """Unlink the blob from the repository; its bytes go when garbage collection runs."""
        if not self.delete_enabled:
            raise codes.RegistryError(codes.UNSUPPORTED, "deletion is disabled on this registry")
        digests.parse(digest)
        repo_id = await self.db.read(queries.repository_id, repo)
        if repo_id is None:
            raise codes.RegistryError(codes.NAME_UNKNOWN, f"repository {repo} is not known", detail={"name": repo})
        if not await self.db.write(queries.unlink_blob, repo_id, digest):
            raise codes.RegistryError(
                codes.BLOB_UNKNOWN, f"blob {digest} is unknown to repository {repo}", detail=digest
            )
