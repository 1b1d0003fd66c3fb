"""`dockyard emergency-repair`: bring metadata and storage back in step after damage.

What it looks for, and what repairing does:

==========================  ===========================================================
dangling-blob               a ``blobs`` row whose bytes are gone: the row and its repository
                            links are deleted, so clients are asked to push it again
broken-manifest             a manifest referencing a dangling blob: reported only (push the
                            image again, or delete it)
orphan-blob                 bytes under ``/blobs`` with no row, older than an hour: deleted
                            (younger ones may belong to a push in flight: kept)
upload-without-data         an upload session whose data file is gone: the session is deleted
data-without-upload         upload data with no session, older than an hour: deleted
==========================  ===========================================================

Rows are read before storage is walked, and a blob's bytes are always written before its
row, so a running server's pushes are never taken for dangling blobs.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, or_, select

from ..config import Settings
from ..metadata.db import Database
from ..metadata.models import blobs, manifest_references, manifests, repositories, repository_blobs, uploads
from ..storage.checked import CheckedDriver
from ..storage.driver import FileInfo, PathNotFound
from ..storage.paths import blob_path, upload_dir
from ._common import OpsError, Progress, driver_for, no_progress
from .schema import current_revision, head_revision

ORPHAN_AGE_SECONDS = 3600.0
_BLOB_FILE = re.compile(r"^/blobs/([a-z0-9]+)/([0-9a-f]{2})/([0-9a-f]+)$")
_UPLOAD_FILE = re.compile(r"^/uploads/([A-Za-z0-9-]{8,64})/data$")


@dataclass(frozen=True)
class Finding:
    kind: str
    subject: str
    detail: str
    action: str


@dataclass
class RepairReport:
    dry_run: bool
    findings: list[Finding] = field(default_factory=list)

    def add(self, kind: str, subject: str, detail: str, action: str) -> None:
        self.findings.append(Finding(kind, subject, detail, action))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.kind] = out.get(f.kind, 0) + 1
        return out

    def as_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "counts": self.counts(), "findings": [asdict(f) for f in self.findings]}


def _rows(conn: Connection) -> tuple[set[str], dict[str, float]]:
    digests = set(conn.execute(select(blobs.c.digest)).scalars())
    sessions = {str(i): float(t) for i, t in conn.execute(select(uploads.c.id, uploads.c.updated_at))}
    return digests, sessions


def _broken_manifests(conn: Connection, missing: list[str]) -> list[tuple[str, str, str]]:
    q = (
        select(repositories.c.name, manifests.c.digest, manifest_references.c.digest)
        .select_from(
            manifest_references.join(manifests, manifests.c.id == manifest_references.c.manifest_id).join(
                repositories, repositories.c.id == manifests.c.repository_id
            )
        )
        .where(
            manifest_references.c.kind == "blob",
            or_(manifest_references.c.digest.in_(missing), manifest_references.c.digest.not_in(select(blobs.c.digest))),
        )
        .order_by(repositories.c.name, manifests.c.digest)
    )
    return [(str(r), str(m), str(b)) for r, m, b in conn.execute(q)]


def _drop_blob_rows(conn: Connection, digest: str) -> int:
    links = conn.execute(delete(repository_blobs).where(repository_blobs.c.digest == digest)).rowcount
    conn.execute(delete(blobs).where(blobs.c.digest == digest))
    return int(links)


def _has_blob_row(conn: Connection, digest: str) -> bool:
    return conn.execute(select(blobs.c.digest).where(blobs.c.digest == digest)).first() is not None


def _drop_session(conn: Connection, upload_id: str) -> None:
    conn.execute(delete(uploads).where(uploads.c.id == upload_id))


def _has_session(conn: Connection, upload_id: str) -> bool:
    return conn.execute(select(uploads.c.id).where(uploads.c.id == upload_id)).first() is not None


async def _walk(driver: CheckedDriver, root: str, progress: Progress) -> list[FileInfo]:
    found: list[FileInfo] = []
    try:
        async for info in driver.walk(root):
            found.append(info)
            progress("walking storage", 1, None)
    except PathNotFound:
        pass
    return found


async def _exists(driver: CheckedDriver, path: str) -> bool:
    try:
        await driver.stat(path)
        return True
    except PathNotFound:
        return False


async def emergency_repair(
    settings: Settings, dry_run: bool = False, progress: Progress = no_progress, now: float | None = None
) -> RepairReport:
    now = time.time() if now is None else now
    report = RepairReport(dry_run)
    db = Database(settings.effective_database_url)
    driver = driver_for(settings)
    try:
        revision = db.read_sync(current_revision)
        if revision != head_revision():
            raise OpsError(f"the database is at revision {revision!r}, not {head_revision()!r}: run `dockyard upgrade`")
        digests, sessions = db.read_sync(_rows)  # rows first, then storage: see the module docstring
        progress("walking storage", 0, None)
        blob_files = await _walk(driver, "/blobs", progress)
        upload_files = await _walk(driver, "/uploads", progress)
        await _blobs(report, db, driver, digests, blob_files, now)
        await _uploads(report, db, driver, sessions, upload_files, now)
    finally:
        await driver.close()
        db.dispose()
    return report


async def _blobs(
    report: RepairReport, db: Database, driver: CheckedDriver, digests: set[str], files: list[FileInfo], now: float
) -> None:
    in_storage: dict[str, FileInfo] = {}
    for info in files:
        m = _BLOB_FILE.match(info.path)
        if m and m.group(3).startswith(m.group(2)):
            in_storage[f"{m.group(1)}:{m.group(3)}"] = info
        else:
            await _orphan(report, db, driver, info, None, now)
    missing = []
    for digest in sorted(digests - set(in_storage)):
        algorithm, _, hex_digest = digest.partition(":")
        if await _exists(driver, blob_path(algorithm, hex_digest)):
            continue
        missing.append(digest)
        if report.dry_run:
            report.add("dangling-blob", digest, "row without bytes in storage", "would delete row and links")
        else:
            links = db.write_sync(_drop_blob_rows, digest)
            report.add("dangling-blob", digest, "row without bytes in storage", f"deleted row and {links} link(s)")
    for repo, manifest, blob in db.read_sync(_broken_manifests, missing):
        report.add("broken-manifest", f"{repo}@{manifest}", f"references missing blob {blob}", "reported")
    for digest in sorted(set(in_storage) - digests):
        await _orphan(report, db, driver, in_storage[digest], digest, now)


async def _orphan(
    report: RepairReport, db: Database, driver: CheckedDriver, info: FileInfo, digest: str | None, now: float
) -> None:
    subject = digest or info.path
    age = now - info.mtime
    detail = f"{info.size} bytes in storage, no row, {age / 3600:.1f} h old"
    if age < ORPHAN_AGE_SECONDS:
        report.add("orphan-blob", subject, detail, "kept (younger than 1 hour)")
    elif report.dry_run:
        report.add("orphan-blob", subject, detail, "would delete")
    elif digest is not None and db.read_sync(_has_blob_row, digest):
        return  # committed meanwhile
    else:
        try:
            await driver.delete(info.path)
        except PathNotFound:
            return
        report.add("orphan-blob", subject, detail, "deleted")


async def _uploads(
    report: RepairReport,
    db: Database,
    driver: CheckedDriver,
    sessions: dict[str, float],
    files: list[FileInfo],
    now: float,
) -> None:
    with_data: dict[str, FileInfo] = {}
    for info in files:
        m = _UPLOAD_FILE.match(info.path)
        if m:
            with_data[m.group(1)] = info
    for upload_id in sorted(set(sessions) - set(with_data)):
        if await _exists(driver, f"{upload_dir(upload_id)}/data"):
            continue
        detail = "session without data in storage"
        if report.dry_run:
            report.add("upload-without-data", upload_id, detail, "would delete session")
        else:
            db.write_sync(_drop_session, upload_id)
            report.add("upload-without-data", upload_id, detail, "deleted session")
    for upload_id in sorted(set(with_data) - set(sessions)):
        info = with_data[upload_id]
        age = now - info.mtime
        detail = f"{info.size} bytes of upload data without a session, {age / 3600:.1f} h old"
        if age < ORPHAN_AGE_SECONDS:
            report.add("data-without-upload", upload_id, detail, "kept (younger than 1 hour)")
        elif report.dry_run:
            report.add("data-without-upload", upload_id, detail, "would delete")
        elif not db.read_sync(_has_session, upload_id):
            try:
                await driver.delete(upload_dir(upload_id))
            except PathNotFound:
                continue
            report.add("data-without-upload", upload_id, detail, "deleted")
