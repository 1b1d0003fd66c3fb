"""GET /system: how this server is set up (storage, database, sign-in providers, TLS, jobs and
the GC schedules), for administrators and the UI's system page. Secrets are never shown."""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any

from fastapi import APIRouter
from pydantic import Field
from sqlalchemy.engine import make_url

from .deps import User
from .errors import Unavailable
from .schemas import Schema

router = APIRouter(tags=["system"])

# Setting names that hold a secret: passwords, keys, tokens, connection strings. Key *ids*
# (access_key_id, sse_kms_key_id) name a key and are shown.
_SECRET = re.compile(r"(secret|password|token|connection_string|(^|_)key$)")
REDACTED = "(set, not shown)"


def _version() -> str:
    try:
        return importlib.metadata.version("dockyard")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


def redacted(params: dict[str, Any]) -> dict[str, Any]:
    """A settings block with the value of every secret replaced, nested blocks included."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, dict):
            out[name] = redacted(value)
        elif _SECRET.search(name.lower()) and value not in (None, ""):
            out[name] = REDACTED
        else:
            out[name] = value
    return out


class StorageInfo(Schema):
    driver: str
    params: dict[str, Any] = Field(description="the driver's settings, secrets not shown")


class AuthInfo(Schema):
    providers: list[str] = Field(description="local, and ldap when configured")
    ldap: dict[str, Any] | None = Field(description="the LDAP settings, secrets not shown")
    token_ttl_seconds: int
    session_idle_seconds: int
    session_max_seconds: int
    create_repository_on_push: bool


class GcSchedule(Schema):
    name: str
    schedule: str
    enabled: bool
    parameters: dict[str, Any]


class SystemInfo(Schema):
    version: str
    database: str = Field(description="sqlite or postgresql")
    storage: StorageInfo
    auth: AuthInfo
    tls: bool = Field(description="whether Dockyard itself serves HTTPS")
    hostnames: list[str]
    content_trust: bool
    delete_enabled: bool
    jobs_in_server: bool = Field(description="false: separate dockyard worker processes run the jobs")
    gc_schedules: list[GcSchedule] = Field(description="cron schedules of the gc action (edit them under /crons)")


@router.get("/system", response_model=SystemInfo, summary="How this server is set up (administrators)")
async def system(caller: User) -> SystemInfo:
    caller.require_admin()
    settings = caller.ctx.settings
    if settings is None:
        raise Unavailable("this server was built without its settings")
    schedules = await caller.ctx.jobs.scheduler.list_schedules() if caller.ctx.jobs is not None else []
    ldap = settings.auth.ldap or None
    return SystemInfo(
        version=_version(),
        database=make_url(settings.effective_database_url).get_backend_name(),
        storage=StorageInfo(driver=settings.storage.driver, params=redacted(settings.storage.params)),
        auth=AuthInfo(
            providers=["local", "ldap"] if ldap else ["local"],
            ldap=redacted(ldap) if ldap else None,
            token_ttl_seconds=settings.auth.token_ttl_seconds,
            session_idle_seconds=settings.auth.session_idle_seconds,
            session_max_seconds=settings.auth.session_max_seconds,
            create_repository_on_push=settings.auth.create_repository_on_push,
        ),
        tls=settings.tls.enabled,
        hostnames=list(settings.tls.hostnames),
        content_trust=settings.trust.enabled,
        delete_enabled=settings.registry.delete_enabled,
        jobs_in_server=settings.jobs.enabled,
        gc_schedules=[
            GcSchedule(name=s.name, schedule=s.cron, enabled=s.enabled, parameters=s.parameters)
            for s in schedules
            if s.action == "gc"
        ],
    )
