"""`dockyard prune`: apply the tag-pruning policies of every repository now."""

from __future__ import annotations

from ..config import Settings
from ..metadata.db import Database
from ..registry.services import Registry
from ._common import driver_for


async def prune(settings: Settings, dry_run: bool) -> list[tuple[str, str, str]]:
    db = Database(settings.effective_database_url)
    driver = driver_for(settings)
    try:
        db.migrate()
        return await Registry.build(db, driver, settings.registry).lifecycle.prune(dry_run)
    finally:
        await driver.close()
        db.dispose()
