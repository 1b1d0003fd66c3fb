"""Registry bearer tokens (JWT, ES256, with kid and x5c as docker's clients expect) and
refresh tokens (the "identity token" docker login stores instead of a password)."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from .keys import SigningKey
from .principal import Principal
from .scopes import Scope

LEEWAY = 60  # seconds of clock skew tolerated on exp/nbf, as the reference does
ALGORITHM = "ES256"


class InvalidToken(Exception):
    """Malformed, expired, badly signed, or meant for another service or purpose."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    expires: float
    access: dict[str, frozenset[str]]  # "type:name" -> actions
    # Who the token speaks for; its rights are those in ``access``, never the account's.
    principal: Principal

    def allows(self, rtype: str, name: str, action: str) -> bool:
        actions = self.access.get(f"{rtype}:{name}")
        return actions is not None and (action in actions or "*" in actions)

    def actions_on(self, rtype: str, name: str) -> frozenset[str]:
        return self.access.get(f"{rtype}:{name}", frozenset())


class TokenService:
    def __init__(self, key: SigningKey, issuer: str, service: str, ttl: int, refresh_ttl: int) -> None:
        self.key = key
        self.issuer = issuer
        self.service = service
        self.ttl = max(60, ttl)
        self.refresh_ttl = refresh_ttl
        self._headers = {"kid": key.kid, "x5c": key.x5c}
        # Verified tokens, so the hot path pays for a signature check once per token.
        self._verified: OrderedDict[str, AccessClaims] = OrderedDict()

    def issue(self, subject: str, granted: list[Scope], now: float | None = None) -> tuple[str, int, int]:
        """(token, expires_in, issued_at) for the granted scopes."""
        now = int(now or time.time())
        access: list[dict[str, Any]] = []
        for s in granted:
            entry: dict[str, Any] = {"type": s.type, "name": s.name, "actions": sorted(s.actions)}
            if s.resource_class:
                entry["class"] = s.resource_class
            access.append(entry)
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.ttl,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "access": access,
        }
        return jwt.encode(claims, self.key.key, algorithm=ALGORITHM, headers=self._headers), self.ttl, now

    def verify(self, token: str) -> AccessClaims:
        cached = self._verified.get(token)
        now = time.time()
        if cached is not None:
            if cached.expires + LEEWAY < now:
                self._verified.pop(token, None)
                raise InvalidToken("token has expired")
            return cached
        try:
            claims = jwt.decode(
                token,
                self.key.public_key,
                algorithms=[ALGORITHM],
                audience=self.service,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "nbf", "iat", "aud", "iss"]},
            )
        except jwt.PyJWTError as e:
            raise InvalidToken(str(e)) from None
        if claims.get("typ") == "refresh":
            raise InvalidToken("a refresh token is not an access token")
        access: dict[str, frozenset[str]] = {}
        for entry in claims.get("access") or []:
            if isinstance(entry, dict) and isinstance(entry.get("actions"), list):
                key = f"{entry.get('type')}:{entry.get('name')}"
                access[key] = access.get(key, frozenset()) | frozenset(map(str, entry["actions"]))
        subject = str(claims.get("sub", ""))
        principal = Principal(subject, -1 if subject else None, False, "bearer")
        result = AccessClaims(subject, float(claims["exp"]), access, principal)
        self._verified[token] = result
        while len(self._verified) > 4096:
            self._verified.popitem(last=False)
        return result

    def issue_refresh(self, subject: str, service: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": service,
            "typ": "refresh",
            "iat": now,
            "nbf": now,
            "exp": now + self.refresh_ttl,
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(claims, self.key.key, algorithm=ALGORITHM, headers={"kid": self.key.kid})

    def verify_refresh(self, token: str, service: str) -> tuple[str, float]:
        """(subject, issued_at) of a valid refresh token bound to this service."""
        try:
            claims = jwt.decode(
                token,
                self.key.public_key,
                algorithms=[ALGORITHM],
                audience=service,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError as e:
            raise InvalidToken(str(e)) from None
        if claims.get("typ") != "refresh":
            raise InvalidToken("not a refresh token")
        return str(claims["sub"]), float(claims.get("iat", 0))
