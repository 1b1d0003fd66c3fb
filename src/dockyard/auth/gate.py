"""Authentication and authorization for /v2/, in one place, before any handler runs.

(method, repository, mount source) → the actions the request needs; the caller's Bearer
token, Basic credentials or anonymity → the actions it has; anything short of that is a
401 with a Bearer challenge naming the scope (docker then fetches a token and retries), or
a 403 for Basic credentials that will never be enough.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from ..registry import codes
from ..registry.errors import error_response
from ..registry.http._common import MOUNT_DENIED, PRINCIPAL
from ..registry.reference import NAME_RE
from .access import AccessPolicy
from .accounts import AccountService, LoginFailed, TooManyAttempts
from .principal import ANONYMOUS, Principal
from .tokens import AccessClaims, InvalidToken, TokenService

_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?:manifests|blobs|tags|referrers)/")


def required_actions(method: str) -> tuple[str, ...]:
    if method in ("GET", "HEAD"):
        return ("pull",)
    if method == "DELETE":
        return ("delete",)
    return ("pull", "push")


def realm_of(scope: Scope, path: str) -> str:
    host = "localhost"
    for k, v in scope.get("headers", []):
        if k == b"host":
            host = v.decode("latin-1")
            break
    return f"{scope.get('scheme', 'http')}://{host}{path}"


class AuthGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        accounts: AccountService,
        access: AccessPolicy,
        tokens: TokenService,
        service: str,
        realm_path: str = "/auth/token",
    ) -> None:
        self.app = app
        self.accounts = accounts
        self.access = access
        self.tokens = tokens
        self.service = service
        self.realm_path = realm_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v2"):
            await self.app(scope, receive, send)
            return
        try:
            await self._check(scope)
        except codes.RegistryError as err:
            response = error_response(err, scope["method"])
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _challenge(self, scope: Scope, scopes: list[str], error: str | None, message: str) -> codes.RegistryError:
        parts = [f'realm="{realm_of(scope, self.realm_path)}"', f'service="{self.service}"']
        if scopes:
            parts.append(f'scope="{" ".join(scopes)}"')
        if error:
            parts.append(f'error="{error}"')
        return codes.RegistryError(
            codes.UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer " + ",".join(parts)}
        )

    async def _identify(self, scope: Scope) -> tuple[Principal, AccessClaims | None]:
        header = b""
        for k, v in scope.get("headers", []):
            if k == b"authorization":
                header = v
                break
        if not header:
            return ANONYMOUS, None
        kind, _, value = header.decode("latin-1").partition(" ")
        kind = kind.lower()
        if kind == "bearer":
            try:
                claims = self.tokens.verify(value.strip())
            except InvalidToken as e:
                raise self._challenge(scope, [], "invalid_token", f"invalid token: {e}") from None
            return Principal(claims.subject, None if not claims.subject else -1, False, "bearer"), claims
        if kind == "basic":
            try:
                user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise self._challenge(scope, [], "invalid_token", "malformed Basic credentials") from None
            client = scope.get("client")
            address = client[0] if client else ""
            try:
                return await self.accounts.authenticate(user, password, address), None
            except LoginFailed:
                raise self._challenge(scope, [], "invalid_token", "incorrect username or password") from None
            except TooManyAttempts as e:
                raise codes.RegistryError(
                    codes.TOOMANYREQUESTS, str(e), headers={"Retry-After": str(int(e.retry_after) + 1)}
                ) from None
        raise self._challenge(scope, [], "invalid_token", f"unsupported authorization scheme {kind!r}")

    async def _allowed(self, principal: Principal, claims: AccessClaims | None, repo: str) -> frozenset[str]:
        if claims is not None:
            return frozenset(a for a in ("pull", "push", "delete", "*") if claims.allows("repository", repo, a))
        return await self.access.actions(principal, repo)

    async def _check(self, scope: Scope) -> None:
        path, method = scope["path"], scope["method"]
        principal, claims = await self._identify(scope)
        scope[PRINCIPAL] = principal
        if path in ("/v2", "/v2/"):
            if principal.anonymous:
                raise self._challenge(scope, [], None, "authentication required")
            return
        if path == "/v2/_catalog":
            if principal.anonymous:
                raise self._challenge(scope, ["registry:catalog:*"], None, "authentication required")
            if claims is not None:  # the listing is filtered by the account's own rights
                scope[PRINCIPAL] = await self.accounts.principal_for(claims.subject, "bearer") or ANONYMOUS
            return
        m = _REPO_PATH.match(path)
        if m is None or not NAME_RE.fullmatch(m.group("name")):
            return  # the router answers 404 / NAME_INVALID; nothing to protect
        repo = m.group("name")
        need = required_actions(method)
        have = await self._allowed(principal, claims, repo)
        if not all(a in have or "*" in have for a in need):
            detail = [{"Type": "repository", "Name": repo, "Action": a} for a in need]
            wanted = f"repository:{repo}:{','.join(need)}"
            if claims is None and not principal.anonymous:
                raise codes.RegistryError(codes.DENIED, f"{principal.name} may not {'/'.join(need)} {repo}", detail)
            err = self._challenge(
                scope, [wanted], "insufficient_scope" if claims is not None else None, "authentication required"
            )
            err.detail = detail
            raise err
        if method == "POST" and b"mount=" in scope.get("query_string", b""):
            # A mount needs pull on its source; without a source it could reach any
            # repository's blobs, so it becomes an ordinary upload.
            source = parse_qs(scope["query_string"].decode("latin-1")).get("from", [""])[0]
            if not (source and NAME_RE.fullmatch(source) and "pull" in await self._allowed(principal, claims, source)):
                scope[MOUNT_DENIED] = True
