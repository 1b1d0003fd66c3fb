"""Authentication and authorization for /v2/, in one place, before any handler runs.

The registry's routes call ``check`` with the repository name the router itself extracted,
so the name that is authorized is always the name that is served.

(method, repository, mount source) → the actions the request needs; the caller's Bearer
token, Basic credentials or anonymity → the actions it has; anything short of that is a
401 with a Bearer challenge naming the scope (docker then fetches a token and retries), or
a 403 for Basic credentials that will never be enough.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs

from starlette.types import Scope

from ..registry import codes
from ..registry.http._common import MOUNT_DENIED, PRINCIPAL
from ..registry.reference import NAME_RE
from .access import AccessPolicy
from .accounts import AccountService, LoginFailed, TooManyAttempts
from .principal import ANONYMOUS, Principal
from .tokens import AccessClaims, InvalidToken, TokenService


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
        *,
        accounts: AccountService,
        access: AccessPolicy,
        tokens: TokenService,
        service: str,
        realm_path: str = "/auth/token",
    ) -> None:
        self.accounts = accounts
        self.access = access
        self.tokens = tokens
        self.service = service
        self.realm_path = realm_path

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
            return claims.principal, claims
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
            return claims.actions_on("repository", repo)
        return await self.access.actions(principal, repo)

    def _require(
        self,
        scope: Scope,
        principal: Principal,
        claims: AccessClaims | None,
        name: str,
        need: tuple[str, ...],
        have: frozenset[str],
    ) -> None:
        if all(a in have or "*" in have for a in need):
            return
        detail = [{"Type": "repository", "Name": name, "Action": a} for a in need]
        wanted = f"repository:{name}:{','.join(need)}"
        if claims is None and not principal.anonymous:
            raise codes.RegistryError(codes.DENIED, f"{principal.name} may not {'/'.join(need)} {name}", detail)
        err = self._challenge(
            scope, [wanted], "insufficient_scope" if claims is not None else None, "authentication required"
        )
        err.detail = detail
        raise err

    async def check_trust(self, scope: Scope, gun: str, repository: str, need: tuple[str, ...]) -> Principal:
        """Authorize a trust-server request: tokens name the GUN, grants come from its repository.
        ``need`` is ("pull",) to read, ("push", "pull") to write, ("*",) to delete or rotate."""
        principal, claims = await self._identify(scope)
        scope[PRINCIPAL] = principal
        have = (
            claims.actions_on("repository", gun)
            if claims is not None
            else await self.access.actions(principal, repository)
        )
        self._require(scope, principal, claims, gun, need, have)
        return principal

    async def check(self, scope: Scope, resource: str) -> None:
        """Raise the RegistryError to answer with, or return to let the handler run.
        ``resource`` is "base", "catalog" or "repository" (then path_params has the name)."""
        method = scope["method"]
        principal, claims = await self._identify(scope)
        scope[PRINCIPAL] = principal
        if resource == "base":
            if principal.anonymous:
                raise self._challenge(scope, [], None, "authentication required")
            return
        if resource == "catalog":
            if principal.anonymous:
                raise self._challenge(scope, ["registry:catalog:*"], None, "authentication required")
            if claims is not None:  # the listing is filtered by the account's own rights
                scope[PRINCIPAL] = await self.accounts.principal_for(claims.subject, "bearer") or ANONYMOUS
            return
        repo = scope["path_params"]["name"]
        if not NAME_RE.fullmatch(repo):
            return  # the handler answers NAME_INVALID before touching anything
        need = required_actions(method)
        have = await self._allowed(principal, claims, repo)
        self._require(scope, principal, claims, repo, need, have)
        if method == "POST" and b"mount=" in scope.get("query_string", b""):
            # A mount needs pull on its source; without a source it could reach any
            # repository's blobs, so it becomes an ordinary upload.
            source = parse_qs(scope["query_string"].decode("latin-1")).get("from", [""])[0]
            if not (source and NAME_RE.fullmatch(source) and "pull" in await self._allowed(principal, claims, source)):
                scope[MOUNT_DENIED] = True
