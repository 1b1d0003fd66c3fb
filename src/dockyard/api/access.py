"""Grants: teams on an organization's repositories, users on a user's repositories, teams on a
whole organization namespace (DTR 1.3's repository access APIs).

Repository grants are read and changed by repository admins; namespace grants are read by
members of the organization and changed by its owners. Every change is audited and drops
the access policy's cached decisions, so the registry honours it at once.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from ..metadata import accounts as q
from ..metadata import admin
from .deps import Caller, User
from .errors import BadRequest, NotFound
from .schemas import (
    AccessBody,
    AccessLevel,
    NamespaceTeamAccess,
    NamespaceTeamAccessList,
    TeamAccess,
    TeamAccessList,
    TeamGrant,
    UserAccess,
    UserAccessList,
    UserGrant,
    access_level,
    account_out,
    repository_out,
    team_out,
)

router = APIRouter(tags=["permissions"])

_NO_CONTENT = status.HTTP_204_NO_CONTENT
_TEAM_ACCESS = "/repositories/{namespace}/{repo}/teamAccess"
_USER_ACCESS = "/repositories/{namespace}/{repo}/userAccess"
_NAMESPACE_ACCESS = "/repositoryNamespaces/{namespace}/teamAccess"


async def _repository(caller: Caller, namespace: str, repo: str, owner_kind: str) -> admin.RepositoryRow:
    row = await caller.repository(namespace, repo, "admin")
    owner = await caller.ctx.auth.accounts.get(namespace)
    if owner.kind != owner_kind:
        if owner_kind == "organization":
            raise BadRequest(f"{row.name} is owned by a user: grant access to users, under userAccess")
        raise BadRequest(f"{row.name} is owned by an organization: grant access to its teams, under teamAccess")
    return row


async def _grants(caller: Caller, row: admin.RepositoryRow, kind: str) -> dict[str, AccessLevel]:
    grants = await caller.ctx.db.read(q.repository_grants, row.id)
    return {name: access_level(level) for k, name, level in grants if k == kind}


# --- teams on repositories of an organization ---------------------------------------------


@router.get(_TEAM_ACCESS, response_model=TeamAccessList, summary="Teams with access to a repository")
async def list_team_access(caller: User, namespace: str, repo: str) -> TeamAccessList:
    row = await _repository(caller, namespace, repo, "organization")
    grants = await _grants(caller, row, "team")
    service = caller.ctx.auth.accounts
    return TeamAccessList(
        repository=repository_out(row),
        team_access_list=[
            TeamGrant(access_level=level, team=team_out(await service.team(namespace, name)))
            for name, level in sorted(grants.items())
        ],
    )


@router.get(_TEAM_ACCESS + "/{team}", response_model=TeamAccess, summary="A team's access to a repository")
async def get_team_access(caller: User, namespace: str, repo: str, team: str) -> TeamAccess:
    row = await _repository(caller, namespace, repo, "organization")
    record = await caller.ctx.auth.accounts.team(namespace, team)
    level = (await _grants(caller, row, "team")).get(team)
    if level is None:
        raise NotFound(f"team {namespace}/{team} has no grant on {row.name}")
    return TeamAccess(access_level=level, team=team_out(record), repository=repository_out(row))


@router.put(_TEAM_ACCESS + "/{team}", response_model=TeamAccess, summary="Grant a team access to a repository")
async def set_team_access(caller: User, namespace: str, repo: str, team: str, body: AccessBody) -> TeamAccess:
    """The team must belong to the organization owning the repository."""
    row = await _repository(caller, namespace, repo, "organization")
    record = await caller.ctx.auth.accounts.team(namespace, team)
    await caller.ctx.db.write(q.set_repository_grant, row.id, body.access_level, team_id=record.id)
    await caller.audit("repository.access.grant", row.name, {"team": team, "level": body.access_level})
    caller.ctx.auth.access.forget()
    return TeamAccess(access_level=body.access_level, team=team_out(record), repository=repository_out(row))


@router.delete(_TEAM_ACCESS + "/{team}", status_code=_NO_CONTENT, summary="Revoke a team's access to a repository")
async def revoke_team_access(caller: User, namespace: str, repo: str, team: str) -> Response:
    row = await _repository(caller, namespace, repo, "organization")
    record = await caller.ctx.auth.accounts.team(namespace, team)
    await caller.ctx.db.write(q.set_repository_grant, row.id, None, team_id=record.id)
    await caller.audit("repository.access.revoke", row.name, {"team": team})
    caller.ctx.auth.access.forget()
    return Response(status_code=_NO_CONTENT)


# --- users on repositories of a user ------------------------------------------------------


async def _collaborator(caller: Caller, namespace: str, user: str) -> q.Account:
    account = await caller.ctx.auth.accounts.get(user)
    if account.kind != "user":
        raise BadRequest(f"{user} is an organization; only users can be collaborators")
    if user == namespace:
        raise BadRequest(f"{user} owns the repository already")
    return account


@router.get(_USER_ACCESS, response_model=UserAccessList, summary="Users with access to a repository")
async def list_user_access(caller: User, namespace: str, repo: str) -> UserAccessList:
    row = await _repository(caller, namespace, repo, "user")
    grants = await _grants(caller, row, "user")
    service = caller.ctx.auth.accounts
    return UserAccessList(
        repository=repository_out(row),
        user_access_list=[
            UserGrant(access_level=level, user=account_out(await service.get(name), caller.principal))
            for name, level in sorted(grants.items())
        ],
    )


@router.get(_USER_ACCESS + "/{user}", response_model=UserAccess, summary="A user's access to a repository")
async def get_user_access(caller: User, namespace: str, repo: str, user: str) -> UserAccess:
    row = await _repository(caller, namespace, repo, "user")
    account = await caller.ctx.auth.accounts.get(user)
    level = (await _grants(caller, row, "user")).get(user)
    if level is None:
        raise NotFound(f"{user} has no grant on {row.name}")
    return UserAccess(access_level=level, user=account_out(account, caller.principal), repository=repository_out(row))


@router.put(_USER_ACCESS + "/{user}", response_model=UserAccess, summary="Grant a user access to a repository")
async def set_user_access(caller: User, namespace: str, repo: str, user: str, body: AccessBody) -> UserAccess:
    row = await _repository(caller, namespace, repo, "user")
    account = await _collaborator(caller, namespace, user)
    await caller.ctx.db.write(q.set_repository_grant, row.id, body.access_level, account_id=account.id)
    await caller.audit("repository.access.grant", row.name, {"user": user, "level": body.access_level})
    caller.ctx.auth.access.forget()
    return UserAccess(
        access_level=body.access_level, user=account_out(account, caller.principal), repository=repository_out(row)
    )


@router.delete(_USER_ACCESS + "/{user}", status_code=_NO_CONTENT, summary="Revoke a user's access to a repository")
async def revoke_user_access(caller: User, namespace: str, repo: str, user: str) -> Response:
    row = await _repository(caller, namespace, repo, "user")
    account = await caller.ctx.auth.accounts.get(user)
    await caller.ctx.db.write(q.set_repository_grant, row.id, None, account_id=account.id)
    await caller.audit("repository.access.revoke", row.name, {"user": user})
    caller.ctx.auth.access.forget()
    return Response(status_code=_NO_CONTENT)


# --- teams on a whole organization namespace ----------------------------------------------


@router.get(_NAMESPACE_ACCESS, response_model=NamespaceTeamAccessList, summary="Teams with access to a namespace")
async def list_namespace_access(caller: User, namespace: str) -> NamespaceTeamAccessList:
    org = await caller.require_org_member(namespace)
    grants = await caller.ctx.db.read(q.namespace_grants, org.id)
    service = caller.ctx.auth.accounts
    return NamespaceTeamAccessList(
        namespace=namespace,
        team_access_list=[
            TeamGrant(access_level=access_level(level), team=team_out(await service.team(namespace, name)))
            for name, level in grants
        ],
    )


@router.get(_NAMESPACE_ACCESS + "/{team}", response_model=NamespaceTeamAccess, summary="A team's namespace access")
async def get_namespace_access(caller: User, namespace: str, team: str) -> NamespaceTeamAccess:
    org = await caller.require_org_member(namespace)
    record = await caller.ctx.auth.accounts.team(namespace, team)
    levels = dict(await caller.ctx.db.read(q.namespace_grants, org.id))
    if team not in levels:
        raise NotFound(f"team {namespace}/{team} has no grant on the namespace {namespace}")
    return NamespaceTeamAccess(access_level=access_level(levels[team]), team=team_out(record), namespace=namespace)


@router.put(
    _NAMESPACE_ACCESS + "/{team}", response_model=NamespaceTeamAccess, summary="Grant a team access to a namespace"
)
async def set_namespace_access(caller: User, namespace: str, team: str, body: AccessBody) -> NamespaceTeamAccess:
    """The level applies to every repository of the organization; admin also lets the team create
    repositories there (not manage teams). Owners of the organization only."""
    org = await caller.require_org_owner(namespace)
    record = await caller.ctx.auth.accounts.team(namespace, team)
    await caller.ctx.db.write(q.set_namespace_grant, org.id, record.id, body.access_level)
    await caller.audit("namespace.access.grant", namespace, {"team": team, "level": body.access_level})
    caller.ctx.auth.access.forget()
    return NamespaceTeamAccess(access_level=body.access_level, team=team_out(record), namespace=namespace)


@router.delete(_NAMESPACE_ACCESS + "/{team}", status_code=_NO_CONTENT, summary="Revoke a team's namespace access")
async def revoke_namespace_access(caller: User, namespace: str, team: str) -> Response:
    org = await caller.require_org_owner(namespace)
    record = await caller.ctx.auth.accounts.team(namespace, team)
    await caller.ctx.db.write(q.set_namespace_grant, org.id, record.id, None)
    await caller.audit("namespace.access.revoke", namespace, {"team": team})
    caller.ctx.auth.access.forget()
    return Response(status_code=_NO_CONTENT)
