"""/accounts/{org}/teams: teams of an organization and their members (DTR 1.3's Teams API).

Members of the organization read; its owners (the "owners" team) and administrators change.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from ..auth.accounts import OWNERS
from ..metadata import admin
from .deps import User
from .errors import BadRequest, Conflict, NotFound
from .schemas import (
    LdapSyncResult,
    MemberList,
    NewTeam,
    RepositoryAccess,
    Team,
    TeamList,
    TeamPatch,
    TeamRepositoryAccess,
    access_level,
    account_out,
    repository_out,
    team_out,
)

router = APIRouter(tags=["teams"])

_NO_CONTENT = status.HTTP_204_NO_CONTENT


@router.get("/accounts/{org}/teams", response_model=TeamList, summary="List the teams of an organization")
async def list_teams(caller: User, org: str) -> TeamList:
    await caller.require_org_member(org)
    return TeamList(teams=[team_out(t) for t in await caller.ctx.auth.accounts.teams(org)])


def _ldap_dn(kind: str | None, dn: str | None, current: str | None = None) -> str | None:
    """The team's LDAP group after a create or edit: type ldap needs one, managed has none."""
    if kind == "managed":
        if dn:
            raise BadRequest("a managed team has no ldapDN; use type ldap")
        return None
    dn = dn if dn is not None else current
    if kind == "ldap" and not dn:
        raise BadRequest("a team of type ldap needs ldapDN")
    return dn


@router.post("/accounts/{org}/teams", response_model=Team, status_code=status.HTTP_201_CREATED, summary="Create a team")
async def create_team(caller: User, org: str, body: NewTeam) -> Team:
    await caller.require_org_owner(org)
    dn = _ldap_dn(body.type, body.ldap_dn)
    team = await caller.ctx.auth.accounts.create_team(caller.name, org, body.name, body.description, dn)
    return team_out(team)


@router.get("/accounts/{org}/teams/{team}", response_model=Team, summary="Get a team")
async def get_team(caller: User, org: str, team: str) -> Team:
    await caller.require_org_member(org)
    return team_out(await caller.ctx.auth.accounts.team(org, team))


@router.patch("/accounts/{org}/teams/{team}", response_model=Team, summary="Edit a team")
async def update_team(caller: User, org: str, team: str, body: TeamPatch) -> Team:
    """description, and whether members come from an LDAP group (type, ldapDN). Teams keep their name."""
    await caller.require_org_owner(org)
    service = caller.ctx.auth.accounts
    current = await service.team(org, team)
    values: dict[str, str | None] = {}
    if body.description is not None:
        values["description"] = body.description
    if body.type is not None or body.ldap_dn is not None:
        kind = body.type or ("ldap" if current.ldap_group_dn else "managed")
        values["ldap_group_dn"] = _ldap_dn(kind, body.ldap_dn, current.ldap_group_dn)
    updated = await service.update_team(caller.name, org, team, **values)
    return team_out(updated)


@router.delete("/accounts/{org}/teams/{team}", status_code=_NO_CONTENT, summary="Delete a team")
async def delete_team(caller: User, org: str, team: str) -> Response:
    """Its grants go with it. The owners team cannot be deleted."""
    await caller.require_org_owner(org)
    await caller.ctx.auth.accounts.delete_team(caller.name, org, team)
    caller.ctx.auth.access.forget()
    return Response(status_code=_NO_CONTENT)


@router.get("/accounts/{org}/teams/{team}/members", response_model=MemberList, summary="List the members of a team")
async def list_members(caller: User, org: str, team: str) -> MemberList:
    await caller.require_org_member(org)
    service = caller.ctx.auth.accounts
    names = await service.members(org, team)
    return MemberList(members=[account_out(await service.get(n), caller.principal) for n in names])


@router.get(
    "/accounts/{org}/teams/{team}/members/{user}",
    status_code=_NO_CONTENT,
    summary="Check membership",
    responses={204: {"description": "the user is a member"}},
)
async def check_member(caller: User, org: str, team: str, user: str) -> Response:
    """204 when the user is a member of the team, 404 when not."""
    await caller.require_org_member(org)
    if user not in await caller.ctx.auth.accounts.members(org, team):
        raise NotFound(f"{user} is not a member of {org}/{team}")
    return Response(status_code=_NO_CONTENT)


@router.put("/accounts/{org}/teams/{team}/members/{user}", status_code=_NO_CONTENT, summary="Add a member")
async def add_member(caller: User, org: str, team: str, user: str) -> Response:
    """Only users can be members. Teams linked to an LDAP group take their members from it."""
    await caller.require_org_owner(org)
    service = caller.ctx.auth.accounts
    if (await service.team(org, team)).ldap_group_dn:
        raise Conflict(f"the members of {org}/{team} come from its LDAP group")
    await service.add_member(caller.name, org, team, user)
    caller.ctx.auth.access.forget()
    return Response(status_code=_NO_CONTENT)


@router.delete("/accounts/{org}/teams/{team}/members/{user}", status_code=_NO_CONTENT, summary="Remove a member")
async def remove_member(caller: User, org: str, team: str, user: str) -> Response:
    """The last member of the owners team stays, so the organization keeps an owner."""
    await caller.require_org_owner(org)
    service = caller.ctx.auth.accounts
    team_record = await service.team(org, team)
    if team_record.ldap_group_dn:
        raise Conflict(f"the members of {org}/{team} come from its LDAP group")
    if team == OWNERS and await service.members(org, team) == [user]:
        raise Conflict(f"{user} is the last owner of {org}")
    await service.remove_member(caller.name, org, team, user)
    caller.ctx.auth.access.forget()
    return Response(status_code=_NO_CONTENT)


@router.get(
    "/accounts/{org}/teams/{team}/repositoryAccess",
    response_model=TeamRepositoryAccess,
    summary="Repositories a team has access to",
)
async def team_repository_access(caller: User, org: str, team: str) -> TeamRepositoryAccess:
    """Grants on single repositories; namespace-wide grants are under /repositoryNamespaces."""
    await caller.require_org_member(org)
    record = await caller.ctx.auth.accounts.team(org, team)
    grants = await caller.ctx.db.read(admin.team_repository_grants, record.id)
    return TeamRepositoryAccess(
        team=team_out(record),
        repository_access_list=[
            RepositoryAccess(access_level=access_level(level), repository=repository_out(repo))
            for repo, level in grants
        ],
    )


@router.post("/ldapSync", response_model=LdapSyncResult, summary="Sync LDAP-linked teams now")
async def ldap_sync(caller: User) -> LdapSyncResult:
    """Make every LDAP-linked team's members those of its group (as the periodic sync does).
    Administrators only; 409 when LDAP is not configured."""
    caller.require_admin()
    service = caller.ctx.auth.accounts
    if service.ldap is None:
        raise Conflict("LDAP is not configured")
    result = await service.sync_ldap_teams(caller.name)
    caller.ctx.auth.access.forget()
    return LdapSyncResult(teams=result)
