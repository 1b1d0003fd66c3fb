"""The Docker token service: GET and POST /auth/token (distribution's token.md and oauth.md)."""

from __future__ import annotations

import base64
import binascii
import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..trust import gun
from .accounts import AccountService, LoginFailed, TooManyAttempts
from .principal import ANONYMOUS, Principal
from .scopes import Scope, parse
from .services import AuthServices
from .tokens import InvalidToken


def _auth(request: Request) -> AuthServices:
    services: AuthServices = request.app.state.auth
    return services


def _fail(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    # "details" is what the docker CLI prints; "errors" keeps the registry's envelope too.
    body = {"details": message, "errors": [{"code": "UNAUTHORIZED" if status == 401 else "DENIED", "message": message}]}
    return JSONResponse(body, status_code=status, headers=headers)


async def _grant(services: AuthServices, principal: Principal, requested: list[Scope]) -> list[Scope]:
    """Requested ∩ allowed, scope by scope; asking for too much is never an error."""
    granted: list[Scope] = []
    for s in requested:
        if s.type == "repository":
            # A trust scope names a GUN (host/repository): the repository's grants apply.
            allowed = await services.access.actions(principal, gun.repository_of(s.name) or s.name)
            actions = frozenset(a for a in s.actions if a in allowed or "*" in allowed)
        elif s.type == "registry" and s.name == "catalog":
            actions = s.actions & {"*"} if not principal.anonymous else frozenset()
        else:
            actions = frozenset()
        granted.append(Scope(s.type, s.name, actions, s.resource_class))
    await services.audit.record(
        principal.name,
        "token",
        " ".join(str(s) for s in requested),
        "allowed" if all(g.actions == r.actions for g, r in zip(granted, requested, strict=True)) else "denied",
        detail={"granted": [str(g) for g in granted]},
    )
    return granted


def _issued(at: int) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _login(accounts: AccountService, user: str, password: str, address: str) -> Principal | Response:
    try:
        return await accounts.authenticate(user, password, address)
    except LoginFailed as e:
        return _fail(401, str(e))
    except TooManyAttempts as e:
        return _fail(429, str(e), {"Retry-After": str(int(e.retry_after) + 1)})


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


async def get_token(request: Request) -> Response:
    services = _auth(request)
    q = request.query_params
    service = q.get("service") or services.tokens.service
    if service != services.tokens.service:
        return _fail(400, f"unknown service {service[:100]!r}; this token server serves {services.tokens.service!r}")
    principal: Principal = ANONYMOUS
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return _fail(401, "malformed Basic credentials")
        result = await _login(services.accounts, user, password, _address(request))
        if isinstance(result, Response):
            return result
        principal = result
    granted = await _grant(services, principal, parse(q.getlist("scope")))
    token, expires_in, issued_at = services.tokens.issue(principal.name, granted)
    body: dict[str, Any] = {
        "token": token,
        "access_token": token,
        "expires_in": expires_in,
        "issued_at": _issued(issued_at),
    }
    if q.get("offline_token") == "true" and not principal.anonymous:
        body["refresh_token"] = services.tokens.issue_refresh(principal.name, service)
    return JSONResponse(body)


async def post_token(request: Request) -> Response:
    services = _auth(request)
    form = await request.form()
    fields = {k: str(v) for k, v in form.items()}
    grant_type = fields.get("grant_type", "")
    service = fields.get("service", "")
    if not service or not fields.get("client_id"):
        return JSONResponse({"details": "service and client_id are required"}, status_code=400)
    if service != services.tokens.service:
        return _fail(400, f"unknown service {service[:100]!r}")
    refresh_token: str | None = None
    if grant_type == "password":
        result = await _login(
            services.accounts, fields.get("username", ""), fields.get("password", ""), _address(request)
        )
        if isinstance(result, Response):
            return result
        principal = result
        if fields.get("access_type") == "offline":
            refresh_token = services.tokens.issue_refresh(principal.name, service)
    elif grant_type == "refresh_token":
        try:
            subject, _ = services.tokens.verify_refresh(fields.get("refresh_token", ""), service)
        except InvalidToken as e:
            return _fail(401, f"invalid refresh token: {e}")
        found = await services.accounts.principal_for(subject, "refresh-token")
        if found is None:
            return _fail(401, "the account of this refresh token is gone or disabled")
        principal = found
        refresh_token = fields.get("refresh_token")
    else:
        return JSONResponse({"details": f"unsupported grant_type {grant_type[:50]!r}"}, status_code=400)
    granted = await _grant(services, principal, parse([fields.get("scope", "")]))
    token, expires_in, issued_at = services.tokens.issue(principal.name, granted)
    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "issued_at": _issued(issued_at),
        "scope": " ".join(str(g) for g in granted if g.actions),
    }
    if refresh_token:
        body["refresh_token"] = refresh_token
    return JSONResponse(body)


ROUTES: list[BaseRoute] = [
    Route("/auth/token", get_token, methods=["GET"]),
    Route("/auth/token", post_token, methods=["POST"]),
]
