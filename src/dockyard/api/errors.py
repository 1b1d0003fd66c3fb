"""Errors of the admin API, and the one place they become ``{"errors":[{"code","message"}]}``.

ApiError(message)                   raised by the API's own checks; status and code per class
├── BadRequest          400 BAD_REQUEST
├── Unauthorized        401 UNAUTHORIZED       + WWW-Authenticate: Basic realm="dockyard"
├── Denied              403 DENIED
├── NotFound            404 NOT_FOUND
├── Conflict            409 CONFLICT
└── TooManyRequests     429 TOO_MANY_REQUESTS  + Retry-After
AccountError(message, status)       raised by the account services; code from its status
RequestValidationError              400 BAD_REQUEST (body not a JSON object), else 422 INVALID_INPUT
HTTPException                       routing (404, 405) and malformed Basic credentials (401)
anything else                       500 UNKNOWN, naming the request id
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..auth.accounts import AccountError

log = logging.getLogger("dockyard.api")

REALM = 'Basic realm="dockyard"'
CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    422: "INVALID_INPUT",
    429: "TOO_MANY_REQUESTS",
    503: "UNAVAILABLE",
    500: "UNKNOWN",
}


class ErrorEntry(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    errors: list[ErrorEntry]


class ApiError(Exception):
    status: ClassVar[int] = 400

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401

    def __init__(self, message: str = "authentication required") -> None:
        super().__init__(message, {"WWW-Authenticate": REALM})


class Denied(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class Unavailable(ApiError):
    """A part this server was not set up with (webhooks, the job runner)."""

    status = 503


class TooManyRequests(ApiError):
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, {"Retry-After": str(int(retry_after) + 1)})


def envelope(status: int, messages: list[str], headers: dict[str, str] | None = None) -> JSONResponse:
    code = CODES.get(status, "UNKNOWN")
    body = {"errors": [{"code": code, "message": m} for m in messages]}
    return JSONResponse(body, status_code=status, headers=headers)


UI_CLIENT = ("x-requested-with", "dockyard-ui")


def _headers_for(request: Request, headers: dict[str, str]) -> dict[str, str]:
    # A Basic challenge makes a browser open its own password box over the web UI's sign-in
    # page; the UI marks its requests, and gets the 401 without the challenge.
    if request.headers.get(UI_CLIENT[0]) == UI_CLIENT[1]:
        return {k: v for k, v in headers.items() if k.lower() != "www-authenticate"}
    return headers


async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return envelope(exc.status, [exc.message], _headers_for(request, exc.headers))


async def on_account_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AccountError)
    return envelope(exc.status, [str(exc)])


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header") and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts)


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        reason = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {}).get("error", "")
        return envelope(400, [f"the request body is not valid JSON{': ' + reason if reason else ''}"])
    if any(tuple(e.get("loc", ())) == ("body",) and e.get("type") != "missing" for e in errors):
        return envelope(400, ["the request body must be a JSON object (Content-Type: application/json)"])
    messages = []
    for e in errors:
        where = _field(e.get("loc", ()))
        if e.get("type") == "missing" and where == "body":
            messages.append("a JSON request body is required")
        else:
            messages.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
    return envelope(422, messages or ["invalid request"])


async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no endpoint at {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return envelope(exc.status_code, [message], _headers_for(request, dict(exc.headers or {})))


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = request.scope.get("dockyard.request_id", "-")
    log.exception("unexpected error on %s %s [%s]", request.method, request.url.path, request_id, exc_info=exc)
    return envelope(500, [f"internal error; request id {request_id}"])


HANDLERS = {
    ApiError: on_api_error,
    AccountError: on_account_error,
    RequestValidationError: on_validation_error,
    HTTPException: on_http_exception,
    Exception: on_unexpected,
}

# For the OpenAPI document: every route may answer these with the envelope.
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": CODES[status]} for status in (400, 401, 403, 404, 409, 422, 429)
}
