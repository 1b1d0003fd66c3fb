"""`dockyard install` and `dockyard destroy`: create and delete a data folder."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..auth.services import AuthServices
from ..ca.authority import CertificateAuthority, fingerprint, kek_for
from ..ca.server import ensure_server_certificate
from ..config import Settings
from ..metadata.accounts import count_admins
from ..metadata.db import Database
from ..storage.driver import PathNotFound
from ._common import OpsError, driver_for
from .reconfigure import write_initial
from .schema import check_not_newer, current_revision

# What makes a folder a Dockyard data folder; destroy refuses anything else.
PARTS = ("db", "config", "registry", "ca", "trust")


@dataclass(frozen=True)
class InstallResult:
    data_dir: Path
    schema_revision: str
    admin_created: bool
    generated_password: str | None
    # part -> where it lives, "created" or "found" (what install made and what it reused)
    parts: dict[str, tuple[Path, str]]
    ca_fingerprint: str | None


def parse_placement(text: str) -> tuple[str, Path]:
    """``registry=/mnt/nfs/dockyard-registry``: put one part of the data folder elsewhere."""
    name, sep, where = text.partition("=")
    if not sep or name not in PARTS or not where:
        raise OpsError(f"--part {text!r}: expected NAME=PATH with NAME one of {', '.join(PARTS)}")
    return name, Path(where)


def place_parts(data_dir: Path, placements: dict[str, Path]) -> dict[str, tuple[Path, str]]:
    """Make each part a folder, or a link to the folder given for it (like DTR's named volumes).

    A part that already exists is used as found; a placement that contradicts it is refused
    rather than silently hiding data."""
    data_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, str]] = {}
    for part in PARTS:
        here = data_dir / part
        target = placements.get(part)
        if target is not None:
            target = target.absolute()
            if here.is_symlink() and here.resolve() == target.resolve():
                out[part] = (target, "found")
                continue
            if here.exists() or here.is_symlink():
                raise OpsError(f"--part {part}={target}: {here} already exists; move it there by hand first")
            existed = target.is_dir()
            target.mkdir(parents=True, exist_ok=True)
            here.symlink_to(target, target_is_directory=True)
            out[part] = (target, "found" if existed else "created")
        else:
            existed = here.is_dir()
            here.mkdir(exist_ok=True)
            out[part] = (here.resolve(), "found" if existed else "created")
    return out


async def install(settings: Settings, placements: dict[str, Path] | None = None) -> InstallResult:
    """Create or complete a data folder: its parts, settings file, CA and server certificate,
    the migrated database, the keys in config/, storage, and the first admin."""
    parts = place_parts(settings.data_dir, placements or {})
    write_initial(settings.data_dir)
    ca_fingerprint = None
    if settings.tls.enabled and not settings.tls.cert_file:
        ca = CertificateAuthority.load_or_create(settings.data_dir, kek_for(settings.data_dir))
        ensure_server_certificate(settings, ca)
        ca_fingerprint = fingerprint(ca.cert)
    db = Database(settings.effective_database_url)
    try:
        check_not_newer(db.read_sync(current_revision))
        db.migrate()
        revision = db.read_sync(current_revision)
        assert revision is not None
        try:
            services = AuthServices.build(settings, db)
        except ValueError as e:
            raise OpsError(str(e)) from None
        driver = driver_for(settings)
        try:
            try:
                await driver.stat("/")
            except PathNotFound:
                await driver.put("/.dockyard", b"")  # makes the root (bucket prefix, folder) exist
                await driver.delete("/.dockyard")
        finally:
            await driver.close()
        had_admin = db.read_sync(count_admins) > 0
        try:
            generated = await services.accounts.ensure_admin(settings.auth.admin_password)
        except ValueError as e:  # a weak password
            raise OpsError(str(e)) from None
        return InstallResult(settings.data_dir, revision, not had_admin, generated, parts, ca_fingerprint)
    finally:
        db.dispose()


def looks_like_data_folder(path: Path) -> bool:
    return path.is_dir() and any((path / part).exists() for part in PARTS)


def placed_elsewhere(data_dir: Path) -> list[Path]:
    """The folders of parts installed elsewhere (``--part``): destroy deletes them too."""
    return [(data_dir / part).resolve() for part in PARTS if (data_dir / part).is_symlink()]


def destroy(data_dir: Path) -> None:
    if not data_dir.exists():
        raise OpsError(f"{data_dir} does not exist")
    if not looks_like_data_folder(data_dir):
        raise OpsError(
            f"{data_dir} does not look like a Dockyard data folder (none of {', '.join(PARTS)}): not deleting"
        )
    for target in placed_elsewhere(data_dir):
        if target.is_dir():
            shutil.rmtree(target)
    shutil.rmtree(data_dir)
