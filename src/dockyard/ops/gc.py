"""`dockyard gc`: online garbage collection of a data folder, from the command line.

The same collector the job runner uses; safe while servers are pushing and pulling.
"""

from __future__ import annotations

from ..ca.authority import kek_for
from ..config import Settings
from ..metadata.db import Database
from ..registry.services import Registry
from ..registry.services.gc import GcReport
from ..webhooks import WebhookService
from ._common import Progress, driver_for


async def collect(
    settings: Settings,
    grace_period_seconds: float,
    untagged_retention_seconds: float | None,
    dry_run: bool,
    progress: Progress,
    pace: float = 3.0,
) -> GcReport:
    db = Database(settings.effective_database_url)
    driver = driver_for(settings)
    done: dict[str, int] = {}

    def report_progress(phase: str, count: int, total: int) -> None:
        progress(phase, count - done.get(phase, 0), total)
        done[phase] = count

    try:
        db.migrate()
        registry = Registry.build(db, driver, settings.registry)
        registry.gc.pace = pace
        report = await registry.gc.run(
            grace_period_seconds=grace_period_seconds,
            untagged_retention_seconds=untagged_retention_seconds,
            upload_timeout_seconds=settings.registry.upload_expiry_seconds,
            dry_run=dry_run,
            progress=report_progress,
        )
        if not dry_run:
            # Recorded here, sent by a server's delivery loop (this process does not run one).
            hooks = WebhookService(db, lambda: kek_for(settings.data_dir))
            await hooks.reload()
            await hooks.emit("gc.done", None, report.as_json())
        return report
    finally:
        await driver.close()
        db.dispose()
