"""The /api/v0 application: a FastAPI app mounted by ``create_app`` when auth is enabled,
for its OpenAPI document (``/api/v0/openapi.json``) and docs page (``/api/v0/docs``)."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth.services import AuthServices
from ..config import Settings
from ..jobs import JobSystem
from ..metadata.db import Database
from ..registry.services import Registry
from ..trust.policy import SignaturePolicy
from . import (
    access,
    accounts,
    audit,
    content,
    jobs,
    lifecycle,
    repositories,
    session,
    signatures,
    stats,
    system,
    teams,
    tokens,
    webhooks,
)
from .deps import ApiContext
from .docs import add_docs
from .errors import HANDLERS, RESPONSES

DESCRIPTION = """\
The administration API of Dockyard: accounts, organizations, teams, repositories, their
permissions, access tokens and the audit log, in the shape of Docker Trusted Registry's
`/api/v0`. Authenticate with HTTP Basic, giving a password or an access token.

Errors are `{"errors": [{"code": ..., "message": ...}]}`.
"""


log = logging.getLogger("dockyard.api")


class _Contained:
    """Keeps the API's failures inside it. Starlette re-raises an error after its 500 handler
    (``errors.on_unexpected``) has answered, so servers can log it; mounted, the re-raised error
    would reach the outer application, whose handlers would try to answer a second time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started or scope["type"] != "http":
                return  # answered, and logged, by errors.on_unexpected
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            body = json.dumps({"errors": [{"code": "UNKNOWN", "message": "internal error"}]}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})


def build_api(
    auth: AuthServices,
    db: Database,
    registry: Registry,
    signature_policy: SignaturePolicy | None = None,
    job_system: JobSystem | None = None,
    settings: Settings | None = None,
) -> ASGIApp:
    """The API application (FastAPI inside; mount it at /api/v0). ``signature_policy`` is the
    one the registry checks pulls with; without it the API reads through its own, whose
    forgotten settings the registry's policy still caches for a few seconds."""
    return _Contained(build_fastapi(auth, db, registry, signature_policy, job_system, settings))


def build_fastapi(
    auth: AuthServices,
    db: Database,
    registry: Registry,
    signature_policy: SignaturePolicy | None = None,
    job_system: JobSystem | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    api = FastAPI(
        title="Dockyard API",
        version="0",
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,  # served by .docs, from this server
        redoc_url=None,
        exception_handlers=HANDLERS,  # type: ignore[arg-type]
    )
    policy = signature_policy if signature_policy is not None else SignaturePolicy(db)
    api.state.api = ApiContext(
        auth=auth, db=db, registry=registry, signature_policy=policy, jobs=job_system, settings=settings
    )
    routers = (
        session,
        accounts,
        teams,
        repositories,
        content,
        access,
        tokens,
        audit,
        lifecycle,
        signatures,
        webhooks,
        jobs,
        stats,
        system,
    )
    for module in routers:
        api.include_router(module.router, responses=RESPONSES)
    add_docs(api)
    return api
