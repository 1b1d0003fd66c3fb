"""`dockyard install` and `dockyard destroy`: create and delete a data folder."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..auth.services import AuthServices
from ..config import Settings
from ..metadata.accounts import count_admins
from ..metadata.db import Database
from ..storage.driver import PathNotFound
from ._common import OpsError, driver_for
from .schema import check_not_newer, current_revision

# What makes a folder a Dockyard data folder; destroy refuses anything else.
PARTS = ("db", "config", "registry", "ca", "trust")


@dataclass(frozen=True)
class InstallResult:
    data_dir: Path
    schema_revision: str
    admin_created: bool
    generated_password: str | None


async def install(settings: Settings) -> InstallResult:
    """Create the database (migrated), the keys in config/, storage, and the first admin."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
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
        return InstallResult(settings.data_dir, revision, not had_admin, generated)
    finally:
        db.dispose()


def looks_like_data_folder(path: Path) -> bool:
    return path.is_dir() and any((path / part).exists() for part in PARTS)


def destroy(data_dir: Path) -> None:
    if not data_dir.exists():
        raise OpsError(f"{data_dir} does not exist")
    if not looks_like_data_folder(data_dir):
        raise OpsError(
            f"{data_dir} does not look like a Dockyard data folder (none of {', '.join(PARTS)}): not deleting"
        )
    shutil.rmtree(data_dir)
