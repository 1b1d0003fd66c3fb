"""Who may do what to a repository: DTR's model, deny unless granted.

system admin                      everything
namespace owner (user's own)      admin on the user's repositories
org "owners" team member          admin on the organization's repositories
team grants (repo or namespace)   read-only / read-write / admin, highest wins
public repository                 pull for everyone, anonymous included
repository that does not exist    push (which creates it, private) only if create-on-push is on
                                  and the caller may write the namespace
"""

from __future__ import annotations

from typing import Any

from ..metadata import accounts as q
from ..metadata.db import Database
from ..metadata.visibility import Reader, readable_names
from ..ttlcache import TtlCache
from .accounts import OWNERS
from .principal import Principal

LEVEL_ACTIONS = {
    "read-only": frozenset({"pull"}),
    "read-write": frozenset({"pull", "push", "delete"}),
    "admin": frozenset({"pull", "push", "delete", "*"}),
}
ALL = LEVEL_ACTIONS["admin"]
NONE: frozenset[str] = frozenset()
RANK = {"read-only": 1, "read-write": 2, "admin": 3}
CACHE_SECONDS = 5.0  # how long a computed answer is reused for clients sending Basic each time


def best(levels: list[str]) -> str | None:
    return max(levels, key=lambda lv: RANK.get(lv, 0)) if levels else None


class AccessPolicy:
    def __init__(self, db: Database, create_on_push: bool) -> None:
        self.db = db
        self.create_on_push = create_on_push
        self._cache: TtlCache[tuple[str, str], frozenset[str]] = TtlCache(CACHE_SECONDS)

    def forget(self) -> None:
        """Drop cached answers after a change of grants, visibility or membership."""
        self._cache.clear()

    async def actions(self, principal: Principal, repo: str) -> frozenset[str]:
        if principal.is_admin:
            return ALL
        return await self._cache.get_or_load(
            (principal.name, repo), lambda: self.db.read(_actions, principal, repo, self.create_on_push)
        )

    async def level(self, principal: Principal, repo: str) -> str | None:
        """The access level the principal has on an existing repository, for the API."""
        acts = await self.actions(principal, repo)
        if "*" in acts:
            return "admin"
        if "push" in acts:
            return "read-write"
        return "read-only" if "pull" in acts else None

    def reader(self, principal: Principal) -> Reader | None:
        """Who reads a listing, for metadata/visibility.py: the rules above as one SQL
        condition (what ``actions`` grants "pull" on). None for an administrator (everything)."""
        if principal.is_admin:
            return None
        return Reader(principal.name, principal.account_id, OWNERS)

    async def visible(self, principal: Principal, names: list[str]) -> list[str]:
        """Of ``names``, those the principal may pull, in their order (one query a 500)."""
        reader = self.reader(principal)
        if reader is None:
            return names
        allowed = await self.db.read(readable_names, reader, names)
        return [n for n in names if n in allowed]

    async def can_manage_namespace(self, principal: Principal, namespace: str) -> bool:
        """Owner of the namespace: the user itself, an org owner, or a system admin."""
        if principal.is_admin:
            return True
        if principal.anonymous:
            return False
        return bool(await self.db.read(_namespace_level, principal, namespace) == "admin")


def _namespace_level(conn: Any, principal: Principal, namespace: str) -> str | None:
    """The principal's level over a whole namespace (None if no grant)."""
    if principal.anonymous:
        return None
    if namespace == principal.name:
        return "admin"
    ns = q.get_account(conn, namespace)
    if ns is None or ns.kind != "organization" or principal.account_id is None:
        return None
    team_ids = q.team_ids_of(conn, principal.account_id)
    if not team_ids:
        return None
    owners = q.get_team(conn, namespace, OWNERS)
    if owners is not None and owners.id in team_ids:
        return "admin"
    return best(q.namespace_levels(conn, ns.id, team_ids))


def _actions(conn: Any, principal: Principal, repo: str, create_on_push: bool) -> frozenset[str]:
    namespace = repo.split("/", 1)[0]
    row = q.repository_row(conn, repo)
    ns_level = _namespace_level(conn, principal, namespace)
    if row is None:
        # Pushing creates the repository: only namespace owners (the user, org owners, an
        # admin namespace grant) may, and only when the setting allows it.
        if create_on_push and ns_level == "admin" and "/" in repo:
            return frozenset({"pull", "push"})
        return NONE
    repo_id, visibility = row
    levels = [ns_level] if ns_level else []
    if principal.account_id is not None:
        team_ids = q.team_ids_of(conn, principal.account_id)
        levels += q.repository_levels(conn, repo_id, principal.account_id, team_ids)
    level = best(levels)
    actions = LEVEL_ACTIONS[level] if level else NONE
    if visibility == "public":
        actions = actions | LEVEL_ACTIONS["read-only"]
    return actions
