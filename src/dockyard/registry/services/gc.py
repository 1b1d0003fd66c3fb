"""Online garbage collection: runs while pushes, pulls and mounts go on (DESIGN.md §5).

Mark: every tagged manifest, untagged manifests younger than their retention, every
manifest younger than the grace period, and — transitively — the children of kept indexes
and the referrers (signatures, SBOMs) of kept manifests. Sweep, in short transactions:
unreachable manifests (re-checked as they are deleted), repository links no manifest of
the repository uses, then blobs nothing references, each re-checked, unlinked and its file
deleted inside one write transaction (metadata/gc.py), so that a concurrent push either
keeps the blob or finds it gone and uploads it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import anyio.from_thread

from ...metadata import gc as q
from ...metadata import lifecycle as lifecycle_q
from ...metadata.db import Database
from ...storage.driver import PathNotFound, StorageDriver
from ...storage.paths import blob_path
from .uploads import UploadService

BATCH = 100  # rows per write transaction: short enough that pushes barely wait

Log = Callable[[str], None]
Progress = Callable[[str, int, int], None]  # (phase, done, total)
Checkpoint = Callable[[], Awaitable[None]]  # raises to stop (a cancelled job)


async def _no_checkpoint() -> None:
    return None


@dataclass
class GcReport:
    dry_run: bool
    grace_period_seconds: float
    manifests_deleted: int = 0
    links_removed: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    uploads_removed: int = 0
    manifests_kept: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def reachable(
    rows: list[q.ManifestRow], refs: list[tuple[int, str]], kept_after: Callable[[q.ManifestRow], float]
) -> set[int]:
    """The ids of manifests to keep: roots (tagged, or created after ``kept_after(row)``) and,
    transitively, children of kept indexes and referrers of kept manifests (same repository)."""
    by_key = {(r.repository_id, r.digest): r for r in rows}
    by_id = {r.id: r for r in rows}
    children: dict[int, list[int]] = {}
    for parent_id, child_digest in refs:
        parent = by_id.get(parent_id)
        child = by_key.get((parent.repository_id, child_digest)) if parent else None
        if child is not None:
            children.setdefault(parent_id, []).append(child.id)
    referrers: dict[tuple[int, str], list[int]] = {}
    for r in rows:
        if r.subject:
            referrers.setdefault((r.repository_id, r.subject), []).append(r.id)
    keep: set[int] = set()
    stack = [r.id for r in rows if r.tagged or r.created_at >= kept_after(r)]
    while stack:
        mid = stack.pop()
        if mid in keep:
            continue
        keep.add(mid)
        row = by_id[mid]
        stack.extend(children.get(mid, ()))
        stack.extend(referrers.get((row.repository_id, row.digest), ()))
    return keep


def retention_by_repository(
    names: dict[int, str], policies: list[lifecycle_q.Policy], default: float | None
) -> dict[int, float | None]:
    """Untagged retention per repository id: its own policy, else its namespace's, else ``default``."""
    own = {p.target: float(p.parameters["seconds"]) for p in policies if p.scope == "repository"}
    ns = {p.target: float(p.parameters["seconds"]) for p in policies if p.scope == "namespace"}
    out: dict[int, float | None] = {}
    for repo_id, name in names.items():
        namespace = name.split("/", 1)[0]
        out[repo_id] = own.get(name, ns.get(namespace, default))
    return out


class GarbageCollector:
    def __init__(self, db: Database, storage: StorageDriver, uploads: UploadService, pace: float = 3.0) -> None:
        self.pace = pace
        self.db = db
        self.storage = storage
        self.uploads = uploads

    async def run(
        self,
        *,
        grace_period_seconds: float = 3600,
        untagged_retention_seconds: float | None = None,
        upload_timeout_seconds: float | None = None,
        dry_run: bool = False,
        log: Log = lambda message: None,
        progress: Progress = lambda phase, done, total: None,
        checkpoint: Checkpoint = _no_checkpoint,
    ) -> GcReport:
        started = time.time()
        cutoff = started - grace_period_seconds
        report = GcReport(dry_run, grace_period_seconds)
        rows, refs = await self.db.read(q.manifest_graph)
        # Untagged manifests are kept for their retention (a repository's or namespace's policy,
        # else the run's; forever when None), and every manifest for the grace period.
        retention = retention_by_repository(
            await self.db.read(q.repository_names),
            await self.db.read(lifecycle_q.all_policies, "untagged_retention"),
            untagged_retention_seconds,
        )

        def kept_after(row: q.ManifestRow) -> float:
            seconds = retention.get(row.repository_id, untagged_retention_seconds)
            return float("-inf") if seconds is None else min(cutoff, started - seconds)

        keep = reachable(rows, refs, kept_after)
        doomed = [r.id for r in rows if r.id not in keep and r.created_at < cutoff]
        report.manifests_kept = len(rows) - len(doomed)
        log(f"mark: {len(rows)} manifests, {len(doomed)} unreachable")
        for i in range(0, len(doomed), BATCH):
            await checkpoint()
            batch = doomed[i : i + BATCH]
            report.manifests_deleted += (
                len(batch) if dry_run else await self.db.write(q.delete_manifests, batch, cutoff)
            )
            progress("manifests", min(i + BATCH, len(doomed)), len(doomed))

        candidates = await self.db.read(q.unreferenced_blobs, cutoff)
        log(f"blobs: {len(candidates)} unreferenced")
        if dry_run:
            report.blobs_deleted = len(candidates)
            report.bytes_freed = sum(size for _, size in candidates)
        else:
            for i in range(0, len(candidates), BATCH):
                await checkpoint()
                digests = [d for d, _ in candidates[i : i + BATCH]]
                async with self._paced():
                    swept = await self.db.write(self._sweep, digests, cutoff)
                report.blobs_deleted += len(swept)
                report.bytes_freed += sum(swept)
                progress("blobs", min(i + BATCH, len(candidates)), len(candidates))

        # After the blobs: their own links went with them; what is left are links, in some
        # repository, to blobs other repositories still use.
        links = await self.db.read(q.stale_links, cutoff)
        if dry_run:
            doomed_blobs = {d for d, _ in candidates}
            links = [link for link in links if link[1] not in doomed_blobs]
        for i in range(0, len(links), BATCH):
            await checkpoint()
            some = links[i : i + BATCH]
            async with self._paced():
                removed = len(some) if dry_run else await self.db.write(q.delete_links, some, cutoff)
            report.links_removed += removed
        log(f"links: {report.links_removed} repository links no manifest uses")

        if upload_timeout_seconds is not None and not dry_run:
            report.uploads_removed = await self.uploads.expire(upload_timeout_seconds)
        report.seconds = round(time.time() - started, 3)
        log(
            f"done: {report.manifests_deleted} manifests, {report.blobs_deleted} blobs"
            f" ({report.bytes_freed} bytes), {report.links_removed} links, {report.uploads_removed} uploads"
        )
        return report

    @contextlib.asynccontextmanager
    async def _paced(self) -> AsyncIterator[None]:
        """Rest after each batch in proportion to its work, so pushes keep most of the
        machine and the database (``pace`` 3.0, the default: busy at most a quarter of the time)."""
        began = time.monotonic()
        yield
        if self.pace:
            await asyncio.sleep((time.monotonic() - began) * self.pace)

    def _sweep(self, conn: Any, digests: list[str], cutoff: float) -> list[int]:
        """In one write transaction: unlink the blobs nothing uses, delete their files, commit.
        Returns the sizes of the blobs deleted."""
        taken = q.sweep_blobs(conn, digests, cutoff)
        remote = []
        for digest, _ in taken:
            algorithm, _, hex_digest = digest.partition(":")
            local = self.storage.local_path(blob_path(algorithm, hex_digest))
            if local is None:
                remote.append(digest)
                continue
            # A local file is unlinked right here: every hop back to the event loop would
            # lengthen the time this transaction holds the database's write lock.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(local)
        if remote:
            anyio.from_thread.run(self._delete_files, remote)
        return [size for _, size in taken]

    async def _delete_files(self, digests: list[str]) -> None:
        async def one(digest: str) -> None:
            algorithm, _, hex_digest = digest.partition(":")
            # Already gone is fine: a repair, or an earlier run that stopped after the file.
            with contextlib.suppress(PathNotFound):
                await self.storage.delete(blob_path(algorithm, hex_digest))

        for i in range(0, len(digests), 16):  # a few at a time: object stores answer in parallel
            await asyncio.gather(*(one(d) for d in digests[i : i + 16]))
