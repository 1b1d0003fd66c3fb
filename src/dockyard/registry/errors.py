"""The one place where errors become HTTP responses for /v2/ (the spec's JSON envelope)."""

from __future__ import annotations

import json
import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..storage.driver import StorageError
from . import codes

log = logging.getLogger("dockyard.registry")


def error_response(err: codes.RegistryError, method: str = "GET") -> Response:
    body = b"" if method == "HEAD" else json.dumps({"errors": err.entries()}).encode()
    headers = dict(err.headers)
    if method == "HEAD":
        headers["Content-Length"] = "0"
    return Response(body, status_code=err.code.status, media_type="application/json", headers=headers)


async def on_registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, codes.RegistryError)
    return error_response(exc, request.method)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        err = codes.RegistryError(codes.METHOD_NOT_ALLOWED, f"{request.method} is not allowed on {request.url.path}")
    elif exc.status_code == 404:
        err = codes.RegistryError(codes.NOT_FOUND, f"no endpoint at {request.url.path}")
    else:
        err = codes.RegistryError(codes.ErrorCode("UNKNOWN", exc.status_code, str(exc.detail)))
    return error_response(err, request.method)


async def on_storage_error(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("dockyard.request_id", "-")
    log.error("storage failure on %s %s [%s]: %s", request.method, request.url.path, request_id, exc)
    err = codes.RegistryError(codes.UNAVAILABLE, f"storage backend failed; request id {request_id}")
    return error_response(err, request.method)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("dockyard.request_id", "-")
    log.exception("unexpected error on %s %s [%s]", request.method, request.url.path, request_id, exc_info=exc)
    err = codes.RegistryError(codes.UNKNOWN, f"internal error; request id {request_id}")
    return error_response(err, request.method)


HANDLERS = {
    codes.RegistryError: on_registry_error,
    HTTPException: on_http_exception,
    StorageError: on_storage_error,
    Exception: on_unexpected,
}
