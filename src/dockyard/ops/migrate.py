"""`dockyard storage migrate --to FILE`: copy every blob to another storage backend.

Storage holds only blobs (manifests, tags and links are in the metadata database), so a
migration copies each blob the database knows, streaming and hashing as it goes: a copy
whose bytes do not match its digest is deleted and reported, never left behind. A blob
already at the target with the right size is skipped, so an interrupted migration resumes
where it stopped (``--verify-existing`` re-reads those too). Servers may keep running on
the source meanwhile; blobs pushed after the migration started are copied by running it
again just before switching (``dockyard reconfigure --set storage.driver=...``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..config import ConfigError, Settings, StorageSettings, build_section, read_yaml
from ..metadata.db import Database
from ..metadata.models import blobs
from ..storage.checked import CheckedDriver
from ..storage.driver import PathNotFound, StorageError
from ..storage.factory import create_driver
from ..storage.paths import blob_path
from ._common import OpsError, Progress, driver_for


@dataclass
class MigrationReport:
    target: str
    blobs: int = 0
    copied: int = 0
    skipped: int = 0  # already at the target (resumed)
    bytes_copied: int = 0
    missing_at_source: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)  # bytes that did not match the digest

    @property
    def ok(self) -> bool:
        return not self.missing_at_source and not self.corrupt

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def target_settings(path: Path) -> StorageSettings:
    """The storage block of a YAML file: either a whole configuration with ``storage:`` or
    just ``driver:`` and ``params:``."""
    raw = read_yaml(path)
    block = raw.get("storage", raw) if isinstance(raw.get("storage"), dict) else raw
    try:
        settings: StorageSettings = build_section(StorageSettings, block, "storage")
    except ConfigError as e:
        raise OpsError(f"{path}: {e}") from None
    return settings


def _blob_rows(conn: Any) -> list[tuple[str, int]]:
    return [(r[0], int(r[1])) for r in conn.execute(select(blobs.c.digest, blobs.c.size).order_by(blobs.c.digest))]


async def _present(target: CheckedDriver, path: str, size: int) -> bool:
    try:
        return (await target.stat(path)).size == size
    except PathNotFound:
        return False


async def _verify(target: CheckedDriver, path: str, hex_digest: str) -> bool:
    hasher = hashlib.sha256()
    async for chunk in target.read(path):
        hasher.update(chunk)
    return hasher.hexdigest() == hex_digest


async def _copy(source: CheckedDriver, target: CheckedDriver, path: str, hex_digest: str) -> bool:
    """Stream one blob across, hashing it; False (and nothing at the target) on a mismatch."""
    hasher = hashlib.sha256()
    writer = await target.writer(path)
    try:
        async for chunk in source.read(path):
            hasher.update(chunk)
            await writer.write(chunk)
    except BaseException:
        await writer.cancel()
        raise
    if hasher.hexdigest() != hex_digest:
        await writer.cancel()
        return False
    await writer.commit()
    return True


async def migrate(
    settings: Settings,
    to: StorageSettings,
    progress: Progress,
    *,
    concurrency: int = 4,
    verify_existing: bool = False,
) -> MigrationReport:
    if to.driver == settings.storage.driver and to.params == settings.storage.params:
        raise OpsError("the target is the storage already in use")
    db = Database(settings.effective_database_url)
    source = driver_for(settings)
    try:
        target = create_driver(to.driver, to.params, str(settings.data_dir))
    except ValueError as e:
        await source.close()
        db.dispose()
        raise OpsError(f"target storage: {e}") from None
    report = MigrationReport(target=to.driver)
    try:
        here, there = source.local_path("/blobs"), target.local_path("/blobs")
        if here is not None and there is not None and os.path.realpath(here) == os.path.realpath(there):
            raise OpsError("the target is the storage already in use")
        db.migrate()
        rows = await db.read(_blob_rows)
        report.blobs = len(rows)
        progress("copying blobs", 0, sum(size for _, size in rows))
        pending: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        for row in rows:
            pending.put_nowait(row)

        async def one(digest: str, size: int) -> None:
            algorithm, _, hex_digest = digest.partition(":")
            path = blob_path(algorithm, hex_digest)
            if algorithm != "sha256":
                raise OpsError(f"{digest}: only sha256 blobs can be verified")
            if await _present(target, path, size) and (not verify_existing or await _verify(target, path, hex_digest)):
                report.skipped += 1
                return
            try:
                copied = await _copy(source, target, path, hex_digest)
            except PathNotFound:
                report.missing_at_source.append(digest)
                return
            if not copied:
                report.corrupt.append(digest)
                return
            report.copied += 1
            report.bytes_copied += size

        async def work() -> None:
            while not pending.empty():
                digest, size = pending.get_nowait()
                await one(digest, size)
                progress("copying blobs", size, None)

        await asyncio.gather(*(work() for _ in range(max(1, concurrency))))
        return report
    except StorageError as e:
        raise OpsError(f"storage: {e}") from None
    finally:
        await source.close()
        await target.close()
        db.dispose()
