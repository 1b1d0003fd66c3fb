"""The composition root: everything is built here from Settings and kept on app.state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from .api import build_api
from .auth.gate import AuthGate
from .auth.routes import ROUTES as AUTH_ROUTES
from .auth.services import AuthServices
from .ca import served_ca_certificate
from .ca.authority import kek_for
from .ca.routes import ca_certificate
from .config import Settings
from .jobs import JobSystem, build_actions
from .metadata.db import Database
from .middleware import RegistryHeaders
from .observability import health, metrics
from .registry import errors
from .registry.routes import ROUTES
from .registry.services import Registry
from .storage.factory import create_driver
from .trust.policy import SignaturePolicy
from .trust.routes import ROUTES as TRUST_ROUTES
from .trust.service import TrustService
from .trust.signer.setup import build_signer
from .ui.routes import ROUTES as UI_ROUTES
from .webhooks import WebhookService

log = logging.getLogger("dockyard")


def create_app(settings: Settings) -> Starlette:
    db = Database(settings.effective_database_url)
    db.migrate()
    storage = create_driver(settings.storage.driver, settings.storage.params, str(settings.data_dir))
    signer = build_signer(settings) if settings.trust.enabled else None
    trust = (
        TrustService(
            db,
            signer,
            hostnames=(*settings.tls.hostnames, settings.server.host, "localhost"),
            refresh_before_seconds=settings.trust.timestamp_refresh_seconds,
        )
        if signer is not None
        else None
    )
    policy = SignaturePolicy(db, storage)
    webhooks = WebhookService(db, lambda: kek_for(settings.data_dir), settings.webhooks)
    registry = Registry.build(db, storage, settings.registry, tag_policy=policy.check, events=webhooks)
    # The queue and the cron scheduler run in every server; its workers only when jobs.enabled
    # (otherwise `dockyard worker` processes run the jobs).
    jobs = JobSystem.build(
        db,
        settings.jobs,
        build_actions(settings, registry, webhooks),
        workers=None if settings.jobs.enabled else 0,
    )
    auth = AuthServices.build(settings, db) if settings.auth.enabled else None
    ca_certificate_pem = served_ca_certificate(settings)

    async def sync_ldap(services: AuthServices) -> None:
        while True:
            try:
                await services.accounts.sync_ldap_teams()
                services.access.forget()
            except Exception:
                log.exception("LDAP team sync failed; will try again")
            await asyncio.sleep(max(30, settings.auth.ldap_sync_interval_seconds))

    async def refresh_timestamps(service: TrustService) -> None:
        while True:
            try:
                refreshed = await service.refresh_expiring()
                if refreshed:
                    log.info("re-signed %d timestamps before they expire", refreshed)
            except Exception:
                log.exception("timestamp refresh failed; will try again")
            await asyncio.sleep(3600)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(jobs.run()),
            asyncio.create_task(webhooks.run()),
            asyncio.create_task(registry.pulls.run()),
        ]
        if trust is not None:
            tasks.append(asyncio.create_task(refresh_timestamps(trust)))
        if auth is not None:
            generated = await auth.accounts.ensure_admin(settings.auth.admin_password)
            if generated:
                print(
                    f"\nCreated the administrator account.\n  user:     admin\n  password: {generated}\n"
                    "Keep it: it is shown only this once.\n",
                    flush=True,
                )
            if settings.auth.ldap:
                tasks.append(asyncio.create_task(sync_ldap(auth)))
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await registry.pulls.flush()  # the pulls counted since the last flush
        except Exception:
            log.exception("could not record the last pulls at shutdown")
        await storage.close()
        if signer is not None:
            await signer.close()
        db.dispose()

    meters = metrics.Metrics(db)
    middleware = [Middleware(RegistryHeaders, log_access=settings.server.access_log, metrics=meters.http)]
    routes = [
        *(TRUST_ROUTES if trust is not None else []),
        *ROUTES,
        Route("/ca", ca_certificate, methods=["GET"]),
        *health.ROUTES,
        *metrics.ROUTES,
    ]
    if auth is not None:
        routes += AUTH_ROUTES + UI_ROUTES  # the UI works through /api/v0, which needs auth
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=errors.HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = meters
    app.state.health = health.HealthCheck(db, storage, auth_enabled=auth is not None, signer=signer)
    app.state.db = db
    app.state.storage = storage
    app.state.registry = registry
    app.state.webhooks = webhooks
    app.state.jobs = jobs
    app.state.trust = trust
    app.state.signature_policy = policy
    app.state.auth = auth
    app.state.ca_certificate = ca_certificate_pem
    app.state.gate = (
        AuthGate(accounts=auth.accounts, access=auth.access, tokens=auth.tokens, service=settings.auth.service)
        if auth is not None
        else None
    )
    if auth is not None:
        app.mount("/api/v0", build_api(auth, db, registry, policy, jobs, settings))
    return app
