"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs the hot path dearly)."""

from __future__ import annotations

import itertools
import logging
import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")
access_log = logging.getLogger("dockyard.access")


class RegistryHeaders:
    """Adds Docker-Distribution-API-Version to every response (docker detects v2 by it)
    and gives each request an id for logs and error messages."""

    def __init__(self, app: ASGIApp, log_access: bool = False) -> None:
        self.app = app
        self.log_access = log_access
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}-"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"{self._prefix}{next(self._ids)}"
        scope["dockyard.request_id"] = request_id
        start = time.perf_counter()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append(API_VERSION)
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if self.log_access:
                access_log.info(
                    "%s %s %s %d %.1fms",
                    request_id,
                    scope["method"],
                    scope["path"],
                    status,
                    (time.perf_counter() - start) * 1000,
                )
