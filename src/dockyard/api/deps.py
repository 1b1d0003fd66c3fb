"""Who is calling, and what they may do: every authorization decision of /api/v0 is here.

Identity: HTTP Basic with a password or an access token (``AccountService.authenticate``),
else the web UI's session cookie (``SessionService``); no credentials means anonymous. A
request authenticated by the cookie that changes state (POST, PUT, PATCH, DELETE) must carry
the session's CSRF token in ``X-CSRF-Token``, or it is refused (403): a browser sends the
cookie on requests other sites make it send, never that header. The rules, deny unless one of them allows:

    system admin            everything
    any signed-in user      list and read accounts; own account, password and tokens
    organization member     read its teams, their members and grants, its namespace grants
    organization owner      (member of its "owners" team) manage its teams, members, grants
    namespace manager       create repositories there (``AccessPolicy.can_manage_namespace``)
    repository levels       ``AccessPolicy.level``, as the registry uses them:
                            read-only to read, admin to edit settings, grants, or delete
    anonymous               read public repositories and their tags, nothing else

A repository the caller may not read does not exist for them: 404 (401 when anonymous, as
signing in may help). Below the needed level it is 403 (401 when anonymous).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from ..auth.access import RANK
from ..auth.accounts import OWNERS, LoginFailed, TooManyAttempts
from ..auth.principal import ANONYMOUS, Principal
from ..auth.services import AuthServices
from ..auth.sessions import COOKIE, CSRF_HEADER, ActiveSession
from ..config import Settings
from ..jobs import JobSystem
from ..metadata import accounts as q
from ..metadata import admin
from ..metadata.db import Database
from ..registry.services import Registry
from ..trust.policy import SignaturePolicy
from .errors import BadRequest, Denied, NotFound, TooManyRequests, Unauthorized


@dataclass(frozen=True)
class ApiContext:
    """What the API's routes work with, handed over by ``build_api``."""

    auth: AuthServices
    db: Database
    registry: Registry
    # The registry's own policy, so forgetting its cached settings takes effect at once.
    signature_policy: SignaturePolicy
    jobs: JobSystem | None = None  # the process's queue and scheduler (None: no job runner)
    settings: Settings | None = None  # what the server was started with (GET /system)


@dataclass(frozen=True)
class Caller:
    principal: Principal
    ctx: ApiContext
    address: str
    session: ActiveSession | None = None  # when authenticated by the UI's session cookie

    @property
    def name(self) -> str:
        return self.principal.name

    async def audit(self, action: str, target: str, detail: object = None) -> None:
        await self.ctx.auth.audit.record(self.name, action, target, "ok", self.address, detail)

    # --- accounts ---------------------------------------------------------------------------

    def require_user(self) -> None:
        if self.principal.anonymous:
            raise Unauthorized()

    def require_admin(self) -> None:
        self.require_user()
        if not self.principal.is_admin:
            raise Denied("only administrators may do this")

    def require_self_or_admin(self, name: str) -> None:
        self.require_user()
        if not (self.principal.is_admin or self.principal.name == name):
            raise Denied(f"only {name} or an administrator may do this")

    async def organization(self, name: str) -> q.Account:
        account = await self.ctx.auth.accounts.get(name)
        if account.kind != "organization":
            raise BadRequest(f"{name} is not an organization")
        return account

    async def is_owner(self, org: str) -> bool:
        if self.principal.is_admin:
            return True
        return self.principal.name in await self.ctx.auth.accounts.members(org, OWNERS)

    async def require_org_member(self, org: str) -> q.Account:
        self.require_user()
        account = await self.organization(org)
        if not self.principal.is_admin and org not in await self.ctx.auth.accounts.organizations_of(self.name):
            raise Denied(f"only members of {org} may see this")
        return account

    async def require_org_owner(self, org: str) -> q.Account:
        self.require_user()
        account = await self.organization(org)
        if not await self.is_owner(org):
            raise Denied(f"only owners of {org} may do this")
        return account

    async def require_namespace_manager(self, namespace: str) -> q.Account:
        self.require_user()
        account = await self.ctx.auth.accounts.get(namespace)
        if not await self.ctx.auth.access.can_manage_namespace(self.principal, namespace):
            raise Denied(f"{self.name} may not create repositories in {namespace}")
        return account

    # --- repositories -----------------------------------------------------------------------

    async def repository(self, namespace: str, repo: str, need: str = "read-only") -> admin.RepositoryRow:
        """The repository if the caller has at least ``need`` on it (see the module doc)."""
        name = f"{namespace}/{repo}"
        row = await self.ctx.db.read(admin.repository, name)
        # The policy answers for repositories that do not exist too (create on push), so
        # existence is checked first.
        level = await self.ctx.auth.access.level(self.principal, name) if row is not None else None
        if row is None or level is None:
            if self.principal.anonymous:
                raise Unauthorized()
            raise NotFound(f"repository {name} does not exist or is not visible to {self.name}")
        if RANK[level] < RANK[need]:
            if self.principal.anonymous:
                raise Unauthorized()
            raise Denied(f"{self.name} has {level} access to {name}; this needs {need}")
        return row


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_basic = HTTPBasic(realm="dockyard", auto_error=False, description="a password, or an access token (dyat_…)")


async def _context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.api
    return ctx


async def anyone(
    request: Request,
    ctx: Annotated[ApiContext, Depends(_context)],
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> Caller:
    """The caller, anonymous when no credentials are sent; wrong credentials are a 401."""
    address = request.client.host if request.client else ""
    if credentials is None:
        if request.headers.get("authorization"):
            raise Unauthorized("unsupported authorization scheme; use Basic")
        cookie = request.cookies.get(COOKIE)
        session = await ctx.auth.sessions.resolve(cookie) if cookie else None
        if session is None:
            return Caller(ANONYMOUS, ctx, address)  # an ended session reads as signed out
        if request.method not in SAFE_METHODS and not ctx.auth.sessions.csrf_matches(
            session, request.headers.get(CSRF_HEADER)
        ):
            raise Denied(f"missing or wrong {CSRF_HEADER} header: a request signed in by the session cookie needs it")
        return Caller(session.principal, ctx, address, session)
    try:
        principal = await ctx.auth.accounts.authenticate(credentials.username, credentials.password, address)
    except LoginFailed:
        raise Unauthorized("incorrect username or password") from None
    except TooManyAttempts as e:
        raise TooManyRequests(str(e), e.retry_after) from None
    return Caller(principal, ctx, address)


async def signed_in(caller: Annotated[Caller, Depends(anyone)]) -> Caller:
    """The caller, who must have authenticated."""
    caller.require_user()
    return caller


Anyone = Annotated[Caller, Depends(anyone)]
User = Annotated[Caller, Depends(signed_in)]
