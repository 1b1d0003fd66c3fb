"""Statements for accounts, teams, grants, access tokens and the audit log."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, or_, select, update

from .db import Database, insert_ignore, upsert
from .models import (
    access_tokens,
    accounts,
    audit_events,
    namespace_access,
    repositories,
    repository_access,
    repository_settings,
    team_members,
    teams,
)

LEVELS = ("read-only", "read-write", "admin")


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    kind: str
    password_hash: str | None
    full_name: str
    email: str
    is_admin: bool
    is_active: bool
    ldap_dn: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class Team:
    id: int
    org: str
    name: str
    description: str
    ldap_group_dn: str | None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    account: str
    name: str
    secret_hash: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


_account_cols = (
    accounts.c.id,
    accounts.c.name,
    accounts.c.kind,
    accounts.c.password_hash,
    accounts.c.full_name,
    accounts.c.email,
    accounts.c.is_admin,
    accounts.c.is_active,
    accounts.c.ldap_dn,
    accounts.c.created_at,
)
_ACCOUNT_BY_NAME = select(*_account_cols).where(accounts.c.name == bindparam("name"))


def _account(row: Any) -> Account:
    return Account(
        int(row[0]), row[1], row[2], row[3], row[4], row[5], bool(row[6]), bool(row[7]), row[8], float(row[9])
    )


async def account_by_name(db: Database, name: str) -> Account | None:
    row = await db.fetch_one(_ACCOUNT_BY_NAME, name=name)
    return _account(row) if row else None


def get_account(conn: Connection, name: str) -> Account | None:
    row = conn.execute(select(*_account_cols).where(accounts.c.name == name)).first()
    return _account(row) if row else None


def list_accounts(
    conn: Connection, kind: str | None = None, after: str | None = None, limit: int | None = None
) -> list[Account]:
    """Accounts by name (of ``kind``), those after ``after``, at most ``limit``."""
    q = select(*_account_cols).order_by(accounts.c.name)
    if kind:
        q = q.where(accounts.c.kind == kind)
    if after:
        q = q.where(accounts.c.name > after)
    if limit is not None:
        q = q.limit(limit)
    return [_account(r) for r in conn.execute(q)]


def count_admins(conn: Connection) -> int:
    q = select(func.count()).select_from(accounts).where(accounts.c.is_admin.is_(True))
    return int(conn.execute(q).scalar_one())


def create_account(conn: Connection, /, **values: Any) -> int:
    values.setdefault("created_at", time.time())
    values.setdefault("full_name", "")
    values.setdefault("email", "")
    values.setdefault("is_admin", False)
    values.setdefault("is_active", True)
    res = conn.execute(accounts.insert().values(**values))
    return int(res.inserted_primary_key[0])  # type: ignore[index]


def update_account(conn: Connection, name: str, /, **values: Any) -> bool:
    return bool(conn.execute(update(accounts).where(accounts.c.name == name).values(**values)).rowcount)


def delete_account(conn: Connection, name: str) -> bool:
    return bool(conn.execute(delete(accounts).where(accounts.c.name == name)).rowcount)


# --- teams ---------------------------------------------------------------------------------

_team_cols = (teams.c.id, accounts.c.name, teams.c.name, teams.c.description, teams.c.ldap_group_dn)


def _team_query() -> Any:
    return select(*_team_cols).select_from(teams.join(accounts, accounts.c.id == teams.c.org_id))


def get_team(conn: Connection, org: str, name: str) -> Team | None:
    row = conn.execute(_team_query().where(accounts.c.name == org, teams.c.name == name)).first()
    return Team(int(row[0]), row[1], row[2], row[3], row[4]) if row else None


def list_teams(conn: Connection, org: str) -> list[Team]:
    rows = conn.execute(_team_query().where(accounts.c.name == org).order_by(teams.c.name))
    return [Team(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


def ldap_teams(conn: Connection) -> list[Team]:
    rows = conn.execute(_team_query().where(teams.c.ldap_group_dn.is_not(None)))
    return [Team(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


def create_team(conn: Connection, org_id: int, name: str, description: str, ldap_group_dn: str | None) -> int:
    res = conn.execute(
        teams.insert().values(
            org_id=org_id, name=name, description=description, ldap_group_dn=ldap_group_dn, created_at=time.time()
        )
    )
    return int(res.inserted_primary_key[0])  # type: ignore[index]


def update_team(conn: Connection, team_id: int, /, **values: Any) -> None:
    conn.execute(update(teams).where(teams.c.id == team_id).values(**values))


def delete_team(conn: Connection, team_id: int) -> None:
    conn.execute(delete(teams).where(teams.c.id == team_id))


def add_member(conn: Connection, team_id: int, account_id: int) -> None:
    insert_ignore(conn, team_members, {"team_id": team_id, "account_id": account_id})


def remove_member(conn: Connection, team_id: int, account_id: int) -> bool:
    q = delete(team_members).where(team_members.c.team_id == team_id, team_members.c.account_id == account_id)
    return bool(conn.execute(q).rowcount)


def team_member_names(conn: Connection, team_id: int) -> list[str]:
    q = (
        select(accounts.c.name)
        .select_from(team_members.join(accounts, accounts.c.id == team_members.c.account_id))
        .where(team_members.c.team_id == team_id)
        .order_by(accounts.c.name)
    )
    return list(conn.execute(q).scalars())


def set_team_members(conn: Connection, team_id: int, account_ids: list[int]) -> None:
    conn.execute(delete(team_members).where(team_members.c.team_id == team_id))
    for aid in account_ids:
        add_member(conn, team_id, aid)


def organizations_of(conn: Connection, account_id: int) -> list[str]:
    q = (
        select(accounts.c.name)
        .distinct()
        .select_from(
            team_members.join(teams, teams.c.id == team_members.c.team_id).join(
                accounts, accounts.c.id == teams.c.org_id
            )
        )
        .where(team_members.c.account_id == account_id)
        .order_by(accounts.c.name)
    )
    return list(conn.execute(q).scalars())


# --- repositories and grants ---------------------------------------------------------------


def repository_row(conn: Connection, name: str) -> tuple[int, str] | None:
    """(id, visibility) of a repository; visibility defaults to private."""
    row = conn.execute(
        select(repositories.c.id, repository_settings.c.visibility)
        .select_from(
            repositories.outerjoin(repository_settings, repository_settings.c.repository_id == repositories.c.id)
        )
        .where(repositories.c.name == name)
    ).first()
    return (int(row[0]), row[1] or "private") if row else None


def set_repository_settings(conn: Connection, repo_id: int, /, **values: Any) -> None:
    current = conn.execute(
        select(repository_settings.c.visibility, repository_settings.c.short_description).where(
            repository_settings.c.repository_id == repo_id
        )
    ).first()
    merged = {"visibility": "private", "short_description": ""}
    if current:
        merged = {"visibility": current[0], "short_description": current[1]}
    merged.update(values)
    upsert(
        conn,
        repository_settings,
        {"repository_id": repo_id, **merged},
        keys=("repository_id",),
        update=("visibility", "short_description"),
    )


def public_repositories(conn: Connection) -> set[str]:
    q = (
        select(repositories.c.name)
        .select_from(repositories.join(repository_settings, repository_settings.c.repository_id == repositories.c.id))
        .where(repository_settings.c.visibility == "public")
    )
    return set(conn.execute(q).scalars())


def team_ids_of(conn: Connection, account_id: int) -> list[int]:
    q = select(team_members.c.team_id).where(team_members.c.account_id == account_id)
    return list(conn.execute(q).scalars())


def repository_levels(conn: Connection, repo_id: int, account_id: int, team_ids: list[int]) -> list[str]:
    cond = repository_access.c.account_id == account_id
    if team_ids:
        cond = or_(cond, repository_access.c.team_id.in_(team_ids))
    q = select(repository_access.c.level).where(repository_access.c.repository_id == repo_id, cond)
    return list(conn.execute(q).scalars())


def namespace_levels(conn: Connection, org_id: int, team_ids: list[int]) -> list[str]:
    if not team_ids:
        return []
    q = select(namespace_access.c.level).where(
        namespace_access.c.org_id == org_id, namespace_access.c.team_id.in_(team_ids)
    )
    return list(conn.execute(q).scalars())


def set_repository_grant(
    conn: Connection, repo_id: int, level: str | None, account_id: int | None = None, team_id: int | None = None
) -> None:
    conn.execute(
        delete(repository_access).where(
            repository_access.c.repository_id == repo_id,
            repository_access.c.account_id.is_(None)
            if account_id is None
            else repository_access.c.account_id == account_id,
            repository_access.c.team_id.is_(None) if team_id is None else repository_access.c.team_id == team_id,
        )
    )
    if level is not None:
        conn.execute(
            repository_access.insert().values(
                repository_id=repo_id, account_id=account_id, team_id=team_id, level=level
            )
        )


def repository_grants(conn: Connection, repo_id: int) -> list[tuple[str, str, str]]:
    """(kind, grantee, level) for a repository: kind "user" or "team"."""
    users = conn.execute(
        select(accounts.c.name, repository_access.c.level)
        .select_from(repository_access.join(accounts, accounts.c.id == repository_access.c.account_id))
        .where(repository_access.c.repository_id == repo_id)
    )
    team_rows = conn.execute(
        select(teams.c.name, repository_access.c.level)
        .select_from(repository_access.join(teams, teams.c.id == repository_access.c.team_id))
        .where(repository_access.c.repository_id == repo_id)
    )
    return [("user", n, lv) for n, lv in users] + [("team", n, lv) for n, lv in team_rows]


def set_namespace_grant(conn: Connection, org_id: int, team_id: int, level: str | None) -> None:
    conn.execute(
        delete(namespace_access).where(namespace_access.c.org_id == org_id, namespace_access.c.team_id == team_id)
    )
    if level is not None:
        conn.execute(namespace_access.insert().values(org_id=org_id, team_id=team_id, level=level))


def namespace_grants(conn: Connection, org_id: int) -> list[tuple[str, str]]:
    q = (
        select(teams.c.name, namespace_access.c.level)
        .select_from(namespace_access.join(teams, teams.c.id == namespace_access.c.team_id))
        .where(namespace_access.c.org_id == org_id)
        .order_by(teams.c.name)
    )
    return [(r[0], r[1]) for r in conn.execute(q)]


# --- access tokens -------------------------------------------------------------------------


def create_token(conn: Connection, token_id: str, account_id: int, name: str, secret_hash: str) -> None:
    conn.execute(
        access_tokens.insert().values(
            id=token_id, account_id=account_id, name=name, secret_hash=secret_hash, created_at=time.time()
        )
    )


_TOKENS = select(
    access_tokens.c.id,
    accounts.c.name,
    access_tokens.c.name,
    access_tokens.c.secret_hash,
    access_tokens.c.created_at,
    access_tokens.c.last_used_at,
    access_tokens.c.revoked_at,
).select_from(access_tokens.join(accounts, accounts.c.id == access_tokens.c.account_id))


def get_token(conn: Connection, token_id: str) -> TokenRecord | None:
    row = conn.execute(_TOKENS.where(access_tokens.c.id == token_id)).first()
    return TokenRecord(*row) if row else None


def list_tokens(conn: Connection, account_id: int) -> list[TokenRecord]:
    rows = conn.execute(_TOKENS.where(access_tokens.c.account_id == account_id).order_by(access_tokens.c.created_at))
    return [TokenRecord(*r) for r in rows]


def touch_token(conn: Connection, token_id: str) -> None:
    conn.execute(update(access_tokens).where(access_tokens.c.id == token_id).values(last_used_at=time.time()))


def revoke_token(conn: Connection, token_id: str) -> bool:
    q = update(access_tokens).where(access_tokens.c.id == token_id, access_tokens.c.revoked_at.is_(None))
    return bool(conn.execute(q.values(revoked_at=time.time())).rowcount)


# --- audit ---------------------------------------------------------------------------------


def add_audit(conn: Connection, actor: str, action: str, target: str, outcome: str, address: str, detail: Any) -> None:
    conn.execute(
        audit_events.insert().values(
            at=time.time(),
            actor=actor,
            action=action,
            target=target,
            outcome=outcome,
            address=address,
            detail=json.dumps(detail) if detail is not None else None,
        )
    )


def list_audit(conn: Connection, limit: int, before_id: int | None, actor: str | None) -> list[dict[str, Any]]:
    q = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
    if before_id is not None:
        q = q.where(audit_events.c.id < before_id)
    if actor:
        q = q.where(audit_events.c.actor == actor)
    out = []
    for r in conn.execute(q).mappings():
        d = dict(r)
        d["detail"] = json.loads(d["detail"]) if d["detail"] else None
        out.append(d)
    return out
