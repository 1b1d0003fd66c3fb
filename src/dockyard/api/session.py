"""/session: signing the web UI in and out. The session lives in an HttpOnly cookie; the
CSRF token returned here goes back in ``X-CSRF-Token`` on every state-changing request
(``deps.anyone`` checks it). Scripts keep using HTTP Basic and need none of this."""

from __future__ import annotations

import datetime

from fastapi import APIRouter, Request, Response, status
from pydantic import Field

from ..auth.accounts import LoginFailed, TooManyAttempts
from ..auth.sessions import COOKIE
from .deps import Anyone
from .errors import TooManyRequests, Unauthorized
from .schemas import Account, Body, Schema, account_out, utc

router = APIRouter(tags=["session"])


class SignIn(Body):
    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(Schema):
    account: Account
    csrf_token: str | None = Field(description="send it as X-CSRF-Token on POST, PUT, PATCH and DELETE")
    expires_at: datetime.datetime | None = Field(description="when the session ends unless used before")


@router.post("/session", response_model=SessionOut, summary="Sign in (web UI)")
async def sign_in(caller: Anyone, request: Request, response: Response, body: SignIn) -> SessionOut:
    """Local and LDAP accounts, with their password (not an access token). Sets the session
    cookie (HttpOnly, SameSite=Strict, Secure over HTTPS). Failed attempts are rate-limited
    as every login is."""
    ctx = caller.ctx
    try:
        principal = await ctx.auth.accounts.authenticate(body.username, body.password, caller.address)
    except LoginFailed:
        raise Unauthorized("incorrect username or password") from None
    except TooManyAttempts as e:
        raise TooManyRequests(str(e), e.retry_after) from None
    if principal.via == "access-token":
        raise Unauthorized("sign in with your password; access tokens are for scripts and clients")
    session = await ctx.auth.sessions.start(principal, caller.address)
    response.set_cookie(
        COOKIE,
        session.token,
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
        path="/",
    )
    account = await ctx.auth.accounts.get(principal.name)
    return SessionOut(
        account=account_out(account, principal), csrf_token=session.csrf_token, expires_at=utc(session.expires_at)
    )


@router.get("/session", response_model=SessionOut, summary="Who is signed in")
async def current(caller: Anyone) -> SessionOut:
    """The signed-in account (401 when nobody is); with a session cookie, its CSRF token."""
    caller.require_user()
    account = await caller.ctx.auth.accounts.get(caller.name)
    session = caller.session
    return SessionOut(
        account=account_out(account, caller.principal),
        csrf_token=session.csrf_token if session else None,
        expires_at=utc(session.expires_at) if session else None,
    )


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT, summary="Sign out (web UI)")
async def sign_out(caller: Anyone, request: Request) -> Response:
    """Ends the session at once (its cookie no longer signs in, even if kept) and clears it."""
    cookie = request.cookies.get(COOKIE)
    if cookie and caller.session is not None:
        await caller.ctx.auth.sessions.end(cookie)
        await caller.audit("logout", caller.name)
    out = Response(status_code=status.HTTP_204_NO_CONTENT)
    out.delete_cookie(COOKIE, path="/", httponly=True, secure=request.url.scheme == "https", samesite="strict")
    return out
