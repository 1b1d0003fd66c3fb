"""Health endpoints (DTR spec §4), for load balancers and monitoring; no authentication.

- ``GET /_ping``: 200 ``{"Healthy": true, "Error": ""}``, or 503 with ``Error`` naming each
  failing component (``storage: …; database: …``).
- ``GET /health``: the same verdict plus every component's own report.
- ``GET /load_balancer_status``: 200 ``{"status": "ok"}`` or 503 ``{"status": "error", …}``.

Components: ``database`` (``SELECT 1``), ``storage`` (put/stat/get/delete of a tiny file under
``/_health/``, the result cached for ``STORAGE_CACHE_SECONDS`` so a busy load balancer costs
little), ``auth`` (configured or disabled), ``signer`` (the in-process keystore opens, or the
separate signer process answers over mutual TLS) and ``jobs`` (not configured yet).
Answers name the component and the kind of error only; the details go to the log, since
anyone may call these.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from ..metadata.db import Database
from ..storage.driver import StorageDriver

log = logging.getLogger("dockyard.health")

STORAGE_CACHE_SECONDS = 2.0
CHECK_TIMEOUT_SECONDS = 5.0
HEALTH_PREFIX = "/_health"


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    status: str  # "ok", "error", "disabled" or "not configured"
    error: str = ""

    @property
    def healthy(self) -> bool:
        return self.status != "error"

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.error} if self.error else {"status": self.status}


OK = ComponentStatus("ok")
NOT_CONFIGURED = ComponentStatus("not configured")


class SignerHealth(Protocol):
    async def health(self) -> None: ...


def _failure(component: str, exc: BaseException) -> ComponentStatus:
    log.warning("health check: %s failed: %r", component, exc, exc_info=exc)
    kind = "timed out" if isinstance(exc, TimeoutError) else f"check failed ({type(exc).__name__})"
    return ComponentStatus("error", kind)


class HealthCheck:
    """Runs the component checks; one per app (``app.state.health``)."""

    def __init__(
        self, db: Database, storage: StorageDriver, auth_enabled: bool, signer: SignerHealth | None = None
    ) -> None:
        self.db = db
        self.signer = signer
        self.storage = storage
        self.auth_enabled = auth_enabled
        self._storage_result: ComponentStatus | None = None
        self._storage_checked = 0.0
        self._storage_lock = asyncio.Lock()

    async def check_database(self) -> ComponentStatus:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await self.db.read(lambda conn: conn.exec_driver_sql("SELECT 1").scalar())
        except Exception as e:
            return _failure("database", e)
        return OK

    async def _storage_round_trip(self) -> None:
        path = f"{HEALTH_PREFIX}/{secrets.token_hex(8)}"
        payload = secrets.token_bytes(16)
        await self.storage.put(path, payload)
        try:
            info = await self.storage.stat(path)
            if info.size != len(payload):
                raise RuntimeError(f"stat reports {info.size} bytes, wrote {len(payload)}")
            if await self.storage.get(path) != payload:
                raise RuntimeError("read back different content")
        finally:
            await self.storage.delete(path)

    async def check_storage(self) -> ComponentStatus:
        """The round trip, at most once per STORAGE_CACHE_SECONDS; concurrent callers share one."""
        async with self._storage_lock:
            if self._storage_result is None or time.monotonic() - self._storage_checked >= STORAGE_CACHE_SECONDS:
                try:
                    async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                        await self._storage_round_trip()
                    self._storage_result = OK
                except Exception as e:
                    self._storage_result = _failure("storage", e)
                self._storage_checked = time.monotonic()
            return self._storage_result

    async def check_signer(self) -> ComponentStatus:
        if self.signer is None:
            return ComponentStatus("disabled")
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await self.signer.health()
        except Exception as e:
            return _failure("signer", e)
        return OK

    async def run(self) -> dict[str, ComponentStatus]:
        database, storage, signer = await asyncio.gather(
            self.check_database(), self.check_storage(), self.check_signer()
        )
        return {
            "database": database,
            "storage": storage,
            "auth": OK if self.auth_enabled else ComponentStatus("disabled"),
            "signer": signer,
            "jobs": NOT_CONFIGURED,
        }


def _verdict(components: dict[str, ComponentStatus]) -> tuple[bool, str]:
    failing = [f"{name}: {c.error}" for name, c in components.items() if not c.healthy]
    return not failing, "; ".join(failing)


async def ping(request: Request) -> JSONResponse:
    healthy, error = _verdict(await request.app.state.health.run())
    return JSONResponse({"Healthy": healthy, "Error": error}, status_code=200 if healthy else 503)


async def health(request: Request) -> JSONResponse:
    components = await request.app.state.health.run()
    healthy, error = _verdict(components)
    body = {"Healthy": healthy, "Error": error, "components": {k: v.as_json() for k, v in components.items()}}
    return JSONResponse(body, status_code=200 if healthy else 503)


async def load_balancer_status(request: Request) -> JSONResponse:
    healthy, error = _verdict(await request.app.state.health.run())
    if healthy:
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "error", "error": error}, status_code=503)


ROUTES: list[BaseRoute] = [
    Route("/_ping", ping, methods=["GET", "HEAD"]),
    Route("/health", health, methods=["GET", "HEAD"]),
    Route("/load_balancer_status", load_balancer_status, methods=["GET", "HEAD"]),
]
