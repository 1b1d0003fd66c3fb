"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs the hot path dearly)."""

from __future__ import annotations

import itertools
import logging
import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .observability.logs import request_id as current_request_id
from .observability.metrics import BODY_METHODS, HttpCollector

API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")
access_log = logging.getLogger("dockyard.access")


class RegistryHeaders:
    """Adds Docker-Distribution-API-Version to every response (docker detects v2 by it)
    and gives each request an id for logs and error messages. With ``metrics`` it also times
    each request and counts its body bytes (one wrapper for both keeps the hot path cheap)."""

    def __init__(self, app: ASGIApp, log_access: bool = False, metrics: HttpCollector | None = None) -> None:
        self.app = app
        self.log_access = log_access
        self.metrics = metrics
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}-"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"{self._prefix}{next(self._ids)}"
        scope["dockyard.request_id"] = request_id
        token = current_request_id.set(request_id)  # for log records (observability.logs)
        start = time.perf_counter()
        status = 0
        sent = 0
        received = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append(API_VERSION)
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            else:
                sent += len(message.get("body", b""))
            await send(message)

        if self.metrics is not None and scope["method"] in BODY_METHODS:

            async def counting_receive() -> Message:
                nonlocal received
                message = await receive()
                received += len(message.get("body", b""))
                return message

            app_receive: Receive = counting_receive
        else:
            app_receive = receive

        failed = False
        try:
            await self.app(scope, app_receive, send_with_headers)
        except Exception:
            status = status or 500  # what ServerErrorMiddleware answers (a cancelled request stays 0)
            failed = True
            raise
        finally:
            if self.metrics is not None:
                self.metrics.observe(scope, status, time.perf_counter() - start, received, sent)
            if self.log_access:
                elapsed_ms = round((time.perf_counter() - start) * 1000, 1)
                access_log.info(
                    "%s %s %s %d %.1fms",
                    request_id,
                    scope["method"],
                    scope["path"],
                    status,
                    elapsed_ms,
                    extra={"method": scope["method"], "path": scope["path"], "status": status, "ms": elapsed_ms},
                )
            if not failed:
                # After a failure the id stays set, so the 500 handler (outside, in ServerErrorMiddleware)
                # logs with it; the server runs each request in a task of its own, so it goes no further.
                current_request_id.reset(token)
