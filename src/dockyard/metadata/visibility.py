"""Which repositories a non-admin may read, as one SQL condition on ``repositories``: the
rules of auth/access.py (there, per repository) applied to a whole listing at once.

A repository is readable by a reader when any of these holds:
  it is public;
  the reader is signed in and it lies in the reader's own namespace ("<name>/...");
  it lies in an organization's namespace where the reader belongs to the owners team, or to
  a team with a namespace grant (any level);
  the reader, or a team of the reader, holds a grant on the repository itself (any level).
Anonymous readers (account_id None) see only the public repositories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, select

from .models import (
    accounts,
    namespace_access,
    repositories,
    repository_access,
    repository_settings,
    team_members,
    teams,
)


@dataclass(frozen=True, slots=True)
class Reader:
    name: str  # "" for anonymous
    account_id: int | None  # None: anonymous
    owners_team: str = "owners"  # the team whose members own an organization


def readable(reader: Reader) -> ColumnElement[bool]:
    """A condition on ``repositories`` (usable in any query that has that table in FROM).

    Each rule is an uncorrelated ``IN (SELECT ...)``, so the database computes it once per
    query rather than once per repository (10,000 repositories: milliseconds, not seconds)."""
    settings = repository_settings.alias("vis_settings")
    public = repositories.c.id.in_(select(settings.c.repository_id).where(settings.c.visibility == "public"))
    if reader.account_id is None:
        return public
    account_id = reader.account_id
    my_teams = select(team_members.c.team_id).where(team_members.c.account_id == account_id)
    own = repositories.c.name.startswith(reader.name + "/", autoescape=True) if reader.name else false()
    owner_teams = teams.alias("vis_owner_teams")
    owner_members = team_members.alias("vis_owner_members")
    owned_orgs = (
        select(owner_teams.c.org_id)
        .join(owner_members, owner_members.c.team_id == owner_teams.c.id)
        .where(owner_members.c.account_id == account_id, owner_teams.c.name == reader.owners_team)
    )
    granted_orgs = select(namespace_access.c.org_id).where(namespace_access.c.team_id.in_(my_teams))
    org = accounts.alias("vis_org")
    in_orgs = repositories.alias("vis_org_repositories")
    org_repositories = (
        select(in_orgs.c.id)
        .select_from(org.join(in_orgs, func.substr(in_orgs.c.name, 1, func.length(org.c.name) + 1) == org.c.name + "/"))
        .where(org.c.kind == "organization", or_(org.c.id.in_(owned_orgs), org.c.id.in_(granted_orgs)))
    )
    granted = select(repository_access.c.repository_id).where(
        or_(repository_access.c.account_id == account_id, repository_access.c.team_id.in_(my_teams))
    )
    return or_(public, own, repositories.c.id.in_(org_repositories), repositories.c.id.in_(granted))


def readable_ids(reader: Reader) -> Any:
    """SELECT of the ids of the repositories the reader may read (for IN subqueries)."""
    return select(repositories.c.id).where(readable(reader))


def readable_names(conn: Any, reader: Reader, names: list[str]) -> set[str]:
    """Of ``names``, those the reader may read."""
    out: set[str] = set()
    for i in range(0, len(names), 500):  # bounded IN lists
        chunk = names[i : i + 500]
        q = select(repositories.c.name).where(repositories.c.name.in_(chunk), readable(reader))
        out.update(conn.execute(q).scalars())
    return out
