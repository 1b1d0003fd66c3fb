"""Web UI sessions: a random token in an HttpOnly cookie, stored hashed, with an idle and an
absolute limit, and a CSRF token the UI sends back on every state-changing request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from ..metadata import sessions as q
from ..metadata.db import Database
from .principal import Principal

COOKIE = "dockyard_session"
CSRF_HEADER = "X-CSRF-Token"
# last_seen_at is written at most this often, so browsing does not write on every request.
_TOUCH_EVERY = 30.0


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str  # for the cookie; never stored
    csrf_token: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class ActiveSession:
    principal: Principal
    csrf_token: str
    expires_at: float  # the earlier of the absolute and the idle limit, as of this request


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionService:
    def __init__(self, db: Database, idle_seconds: float, max_seconds: float) -> None:
        self.db = db
        self.idle = idle_seconds
        self.max = max_seconds

    async def start(self, principal: Principal, address: str) -> NewSession:
        assert principal.account_id is not None
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = time.time()
        expires = now + self.max
        await self.db.write(q.create, _hash(token), principal.account_id, csrf, now, expires, address)
        return NewSession(token, csrf, min(expires, now + self.idle))

    async def resolve(self, token: str) -> ActiveSession | None:
        """The session of a cookie, or None when unknown, ended, or its account disabled."""
        if not token or len(token) > 128:
            return None
        hashed = _hash(token)
        row = await self.db.read(q.get, hashed)
        now = time.time()
        if row is None or not row.is_active:
            return None
        if now >= row.expires_at or now - row.last_seen_at >= self.idle:
            await self.db.write(q.remove, hashed)
            return None
        if now - row.last_seen_at >= _TOUCH_EVERY:
            await self.db.write(q.touch, hashed, now)
            last_seen = now
        else:
            last_seen = row.last_seen_at
        principal = Principal(row.account, row.account_id, row.is_admin, "session")
        return ActiveSession(principal, row.csrf_token, min(row.expires_at, last_seen + self.idle))

    async def end(self, token: str) -> None:
        await self.db.write(q.remove, _hash(token))

    @staticmethod
    def csrf_matches(session: ActiveSession, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(session.csrf_token.encode(), sent.encode())
