"""The composition root: everything is built here from Settings and kept on app.state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware

from .config import Settings
from .metadata.db import Database
from .middleware import RegistryHeaders
from .registry import errors
from .registry.routes import ROUTES
from .registry.services import Registry
from .storage.factory import create_driver

log = logging.getLogger("dockyard")


def create_app(settings: Settings) -> Starlette:
    db = Database(settings.effective_database_url)
    db.migrate()
    storage = create_driver(settings.storage.driver, settings.storage.params, str(settings.data_dir))
    registry = Registry.build(db, storage, settings.registry)

    async def expire_uploads() -> None:
        # Until the job runner exists, each process sweeps stale sessions itself; the
        # sweep is idempotent, so several processes sharing a database do no harm.
        while True:
            try:
                expired = await registry.uploads.expire(settings.registry.upload_expiry_seconds)
                if expired:
                    log.info("removed %d expired upload sessions", expired)
            except Exception:
                log.exception("upload expiry failed; will try again")
            await asyncio.sleep(min(3600, max(60, settings.registry.upload_expiry_seconds / 4)))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(expire_uploads())
        yield
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await storage.close()
        db.dispose()

    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(RegistryHeaders, log_access=settings.server.access_log)],
        exception_handlers=errors.HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.storage = storage
    app.state.registry = registry
    return app
