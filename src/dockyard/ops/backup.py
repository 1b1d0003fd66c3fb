"""`dockyard backup` and `dockyard restore`: one tar.gz holding a whole installation.

Archive layout (``manifest.json`` last, so it can list every file's digest)::

    db/dockyard.db              a consistent snapshot (SQLite online backup API)
    config/…                    master key, token-signing key and certificate (as stored: encrypted)
    ca/…, trust/…               when present
    blobs/<algorithm>/<hex>     with --include-images: every blob the snapshot's metadata knows
    manifest.json               format, version, schema revision, and path/size/sha256 of each file

The snapshot is taken first and blobs are read afterwards through the storage driver. The
registry writes a blob's bytes before its row, so every blob row in the snapshot has its
bytes in storage (unless something deleted them, which is reported as missing).

Restore reads the archive twice: once to check every file against the manifest, then to
write. Nothing is written until the whole archive has been verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath
from typing import IO, Any

from ..config import Settings
from ..storage.driver import PathNotFound
from ..storage.paths import blob_path
from ._common import OpsError, Progress, driver_for, no_progress, sqlite_path
from .schema import check_not_newer

FORMAT = "dockyard-backup"
VERSION = 1
MANIFEST = "manifest.json"
DB_MEMBER = "db/dockyard.db"
FOLDERS = ("config", "ca", "trust")
CHUNK = 1 << 20
SPOOL_IN_MEMORY = 16 << 20


def _dockyard_version() -> str:
    try:
        return version("dockyard")
    except PackageNotFoundError:  # pragma: no cover - always installed
        return "unknown"


@dataclass
class BackupResult:
    path: Path
    schema_revision: str | None
    files: int = 0
    blobs: int = 0
    bytes: int = 0
    missing_blobs: list[str] = field(default_factory=list)


@dataclass
class RestoreResult:
    data_dir: Path
    schema_revision: str | None
    files: int = 0
    blobs: int = 0
    bytes: int = 0
    created_at: str = ""
    include_images: bool = False


# --- backup --------------------------------------------------------------------------------


def snapshot_database(source: Path, target: Path) -> None:
    """Copy a live SQLite database consistently (readers and writers carry on meanwhile)."""
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dst.close()
    finally:
        src.close()


def _read_snapshot(path: Path) -> tuple[str | None, list[tuple[str, int]]]:
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        revision = None
        if "alembic_version" in tables:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
        blobs: list[tuple[str, int]] = []
        if "blobs" in tables:
            blobs = [(str(d), int(s)) for d, s in conn.execute("SELECT digest, size FROM blobs ORDER BY digest")]
        return revision, blobs
    finally:
        conn.close()


class _ArchiveWriter:
    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.entries: list[dict[str, Any]] = []
        self.bytes = 0

    def add(self, name: str, fileobj: IO[bytes], mode: int = 0o644) -> str:
        """Add a seekable file; returns its sha256 (hex)."""
        h = hashlib.sha256()
        size = 0
        fileobj.seek(0)
        while chunk := fileobj.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
        fileobj.seek(0)
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = mode & 0o777
        info.mtime = int(time.time())
        self.tar.addfile(info, fileobj)
        self.entries.append({"path": name, "size": size, "sha256": h.hexdigest()})
        self.bytes += size
        return h.hexdigest()

    def add_path(self, name: str, path: Path) -> None:
        with path.open("rb") as f:
            self.add(name, f, path.stat().st_mode)


def _folder_files(data_dir: Path) -> list[tuple[str, Path]]:
    found = []
    for folder in FOLDERS:
        base = data_dir / folder
        if base.is_dir():
            for p in sorted(base.rglob("*")):
                if p.is_file() and not p.is_symlink():
                    found.append((p.relative_to(data_dir).as_posix(), p))
    return found


async def backup(
    settings: Settings, output: Path, include_images: bool = False, progress: Progress = no_progress
) -> BackupResult:
    data_dir = settings.data_dir
    db_file = sqlite_path(settings)
    if not db_file.exists():
        raise OpsError(f"no database at {db_file}: is {data_dir} a Dockyard data folder?")
    output = output.absolute()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with tempfile.TemporaryDirectory(prefix="dockyard-backup-") as tmp:
        snap = Path(tmp) / "dockyard.db"
        snapshot_database(db_file, snap)
        revision, blobs = _read_snapshot(snap)
        result = BackupResult(output, revision)
        try:
            with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
                w = _ArchiveWriter(tar)
                w.add_path(DB_MEMBER, snap)
                for name, path in _folder_files(data_dir):
                    w.add_path(name, path)
                if include_images:
                    await _add_blobs(w, settings, blobs, Path(tmp), result, progress)
                result.files = len(w.entries)
                result.bytes = w.bytes
                manifest = {
                    "format": FORMAT,
                    "version": VERSION,
                    "dockyard_version": _dockyard_version(),
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "schema_revision": revision,
                    "include_images": include_images,
                    "files": w.entries,
                    "missing_blobs": result.missing_blobs,
                }
                data = json.dumps(manifest, indent=1).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size = len(data)
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(data))
            os.replace(partial, output)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
    return result


async def _add_blobs(
    w: _ArchiveWriter,
    settings: Settings,
    blobs: list[tuple[str, int]],
    tmp: Path,
    result: BackupResult,
    progress: Progress,
) -> None:
    driver = driver_for(settings)
    total = sum(size for _, size in blobs)
    progress("blobs", 0, total)
    try:
        for digest, size in blobs:
            algorithm, _, hex_digest = digest.partition(":")
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, dir=str(tmp)) as spool:
                try:
                    async for chunk in driver.read(blob_path(algorithm, hex_digest)):
                        spool.write(chunk)
                except PathNotFound:
                    result.missing_blobs.append(digest)
                    progress("blobs", size, None)
                    continue
                sha = w.add(f"blobs/{algorithm}/{hex_digest}", spool)
            if algorithm == "sha256" and sha != hex_digest:
                raise OpsError(f"blob {digest} in storage does not match its digest (sha256 {sha}): storage is damaged")
            result.blobs += 1
            progress("blobs", size, None)
    finally:
        await driver.close()


# --- restore -------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise OpsError(f"the archive holds an unsafe path {name!r}")
    top = p.parts[0]
    if name in (MANIFEST, DB_MEMBER) or top in FOLDERS:
        return
    if top == "blobs" and len(p.parts) == 3:
        return
    raise OpsError(f"the archive holds an unexpected file {name!r}: not a Dockyard backup")


def _open(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:gz")
    except FileNotFoundError:
        raise OpsError(f"{archive} does not exist") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise OpsError(f"{archive} is not a readable backup archive: {e}") from None


def verify_archive(archive: Path, progress: Progress = no_progress) -> dict[str, Any]:
    """Check every file of the archive against its manifest; return the manifest."""
    seen: dict[str, tuple[int, str]] = {}
    manifest: dict[str, Any] | None = None
    progress("verifying", 0, None)
    try:
        with _open(archive) as tar:
            for member in tar:
                _check_name(member.name)
                if not member.isfile():
                    raise OpsError(f"the archive holds {member.name!r}, which is not a regular file")
                if member.name in seen or (member.name == MANIFEST and manifest is not None):
                    raise OpsError(f"the archive holds {member.name!r} twice")
                f = tar.extractfile(member)
                assert f is not None
                if member.name == MANIFEST:
                    try:
                        manifest = json.loads(f.read(16 << 20))
                    except ValueError as e:
                        raise OpsError(f"the archive's manifest is not valid JSON: {e}") from None
                    continue
                h = hashlib.sha256()
                size = 0
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                seen[member.name] = (size, h.hexdigest())
                progress("verifying", size, None)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise OpsError(f"{archive} is damaged: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise OpsError(f"{archive} has no Dockyard backup manifest")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > VERSION:
        raise OpsError(f"{archive} is backup format version {manifest.get('version')!r}; this Dockyard reads {VERSION}")
    listed: dict[str, tuple[int, str]] = {}
    for entry in manifest.get("files", []):
        try:
            listed[str(entry["path"])] = (int(entry["size"]), str(entry["sha256"]))
        except (KeyError, TypeError, ValueError):
            raise OpsError("the archive's manifest has a malformed file entry") from None
    for name in sorted(set(listed) | set(seen)):
        if name not in seen:
            raise OpsError(f"{name}: listed in the manifest but missing from the archive")
        if name not in listed:
            raise OpsError(f"{name}: in the archive but not listed in the manifest")
        if seen[name] != listed[name]:
            raise OpsError(f"{name}: sha256 or size does not match the manifest (the archive was altered or damaged)")
    if DB_MEMBER not in seen:
        raise OpsError(f"{archive} holds no database")
    check_not_newer(manifest.get("schema_revision"))
    return manifest


def _is_empty(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


async def restore(settings: Settings, archive: Path, progress: Progress = no_progress) -> RestoreResult:
    data_dir = settings.data_dir
    if not _is_empty(data_dir):
        raise OpsError(f"{data_dir} is not empty: restore only into an empty or new data folder")
    db_file = sqlite_path(settings)
    if db_file.exists():
        raise OpsError(f"{db_file} already exists: refusing to overwrite it")
    manifest = verify_archive(archive, progress)
    result = RestoreResult(
        data_dir,
        manifest.get("schema_revision"),
        created_at=str(manifest.get("created_at", "")),
        include_images=bool(manifest.get("include_images")),
    )
    total = sum(int(e["size"]) for e in manifest["files"])
    progress("restoring", 0, total)
    created = not data_dir.exists()
    data_dir.mkdir(parents=True, exist_ok=True)
    driver = driver_for(settings)
    try:
        with _open(archive) as tar:
            for member in tar:
                if member.name == MANIFEST:
                    continue
                f = tar.extractfile(member)
                assert f is not None
                if member.name.startswith("blobs/"):
                    _, algorithm, hex_digest = member.name.split("/")
                    writer = await driver.writer(blob_path(algorithm, hex_digest))
                    try:
                        while chunk := f.read(CHUNK):
                            await writer.write(chunk)
                    except BaseException:
                        await writer.cancel()
                        raise
                    await writer.commit()
                    result.blobs += 1
                else:
                    target = db_file if member.name == DB_MEMBER else data_dir / member.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, member.mode & 0o777 or 0o600)
                    with os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(f, out, CHUNK)
                        out.flush()
                        os.fsync(out.fileno())
                result.files += 1
                result.bytes += member.size
                progress("restoring", member.size, None)
    except BaseException:
        await driver.close()
        if created:
            shutil.rmtree(data_dir, ignore_errors=True)
        raise
    await driver.close()
    return result
