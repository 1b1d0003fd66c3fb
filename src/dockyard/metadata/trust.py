"""Statements for content trust: TUF files by GUN, the changefeed, and server key bookkeeping."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select

from .db import Database
from .models import repositories, repository_settings, trust_changes, trust_files, trust_keys


@dataclass(frozen=True, slots=True)
class TrustFile:
    role: str
    version: int
    sha256: str
    content: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class ServerKey:
    key_id: str
    role: str
    algorithm: str
    public: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class Change:
    id: int
    gun: str
    version: int
    sha256: str
    category: str
    created_at: float


_FILE_COLUMNS = (
    trust_files.c.role,
    trust_files.c.version,
    trust_files.c.sha256,
    trust_files.c.content,
    trust_files.c.created_at,
)


def _file(row: Any) -> TrustFile:
    return TrustFile(row[0], row[1], row[2], bytes(row[3]), row[4])


# Prepared once: the trust server's reads run on the database's fast path (Database.fetch_*).
# (No LIMIT: it would be a bind parameter of its own; fetch_one reads the first row only.)
_LATEST = (
    select(*_FILE_COLUMNS)
    .where(trust_files.c.gun == bindparam("gun"), trust_files.c.role == bindparam("role"))
    .order_by(trust_files.c.version.desc())
)
_BY_CHECKSUM = select(*_FILE_COLUMNS).where(
    trust_files.c.gun == bindparam("gun"),
    trust_files.c.role == bindparam("role"),
    trust_files.c.sha256 == bindparam("sha"),
)
_BY_VERSION = select(*_FILE_COLUMNS).where(
    trust_files.c.gun == bindparam("gun"),
    trust_files.c.role == bindparam("role"),
    trust_files.c.version == bindparam("version"),
)
_NEWEST = (
    select(trust_files.c.role, func.max(trust_files.c.version).label("version"))
    .where(trust_files.c.gun == bindparam("gun"))
    .group_by(trust_files.c.role)
    .subquery()
)
_LATEST_OF_EACH = (
    select(*_FILE_COLUMNS)
    .join(_NEWEST, (trust_files.c.role == _NEWEST.c.role) & (trust_files.c.version == _NEWEST.c.version))
    .where(trust_files.c.gun == bindparam("gun"))
)
_SERVER_KEYS = (
    select(trust_keys.c.key_id, trust_keys.c.role, trust_keys.c.algorithm, trust_keys.c.public, trust_keys.c.created_at)
    .where(trust_keys.c.gun == bindparam("gun"), trust_keys.c.role == bindparam("role"))
    .order_by(trust_keys.c.created_at.desc())
)


async def fetch_latest(db: Database, gun: str, role: str) -> TrustFile | None:
    row = await db.fetch_one(_LATEST, gun=gun, role=role)
    return _file(row) if row else None


async def fetch_by_checksum(db: Database, gun: str, role: str, sha256: str) -> TrustFile | None:
    row = await db.fetch_one(_BY_CHECKSUM, gun=gun, role=role, sha=sha256)
    return _file(row) if row else None


async def fetch_by_version(db: Database, gun: str, role: str, version: int) -> TrustFile | None:
    row = await db.fetch_one(_BY_VERSION, gun=gun, role=role, version=version)
    return _file(row) if row else None


async def fetch_latest_of_each(db: Database, gun: str) -> dict[str, TrustFile]:
    return {row[0]: _file(row) for row in await db.fetch_all(_LATEST_OF_EACH, gun=gun)}


async def fetch_server_keys(db: Database, gun: str, role: str) -> list[ServerKey]:
    rows = await db.fetch_all(_SERVER_KEYS, gun=gun, role=role)
    return [ServerKey(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]


def latest(conn: Connection, gun: str, role: str) -> TrustFile | None:
    row = conn.execute(
        select(*_FILE_COLUMNS)
        .where(trust_files.c.gun == gun, trust_files.c.role == role)
        .order_by(trust_files.c.version.desc())
        .limit(1)
    ).first()
    return _file(row) if row else None


def latest_of_each(conn: Connection, gun: str) -> dict[str, TrustFile]:
    """The newest version of every role of a GUN (root, targets, delegations, snapshot, timestamp)."""
    newest = (
        select(trust_files.c.role, func.max(trust_files.c.version).label("version"))
        .where(trust_files.c.gun == gun)
        .group_by(trust_files.c.role)
        .subquery()
    )
    rows = conn.execute(
        select(*_FILE_COLUMNS)
        .join(
            newest,
            (trust_files.c.role == newest.c.role) & (trust_files.c.version == newest.c.version),
        )
        .where(trust_files.c.gun == gun)
    )
    return {r.role: _file(r) for r in rows}


def by_checksum(conn: Connection, gun: str, role: str, sha256: str) -> TrustFile | None:
    row = conn.execute(
        select(*_FILE_COLUMNS)
        .where(trust_files.c.gun == gun, trust_files.c.role == role, trust_files.c.sha256 == sha256)
        .limit(1)
    ).first()
    return _file(row) if row else None


def by_version(conn: Connection, gun: str, role: str, version: int) -> TrustFile | None:
    row = conn.execute(
        select(*_FILE_COLUMNS).where(
            trust_files.c.gun == gun, trust_files.c.role == role, trust_files.c.version == version
        )
    ).first()
    return _file(row) if row else None


# Built once: every trust update runs these, and a statement built per call costs more than the
# SQL itself (SQLAlchemy derives its cache key from the whole statement each time).
_MAX_VERSIONS = (
    select(trust_files.c.role, func.max(trust_files.c.version))
    .where(trust_files.c.gun == bindparam("gun"))
    .group_by(trust_files.c.role)
)
_INSERT_FILE = insert(trust_files)
_INSERT_CHANGE = insert(trust_changes)


def max_versions(conn: Connection, gun: str) -> dict[str, int]:
    return {role: version for role, version in conn.execute(_MAX_VERSIONS, {"gun": gun})}


def store(conn: Connection, gun: str, repository: str, files: list[tuple[str, int, str, bytes]]) -> None:
    """Insert role files (role, version, sha256, bytes); a changefeed row for each timestamp."""
    now = time.time()
    conn.execute(
        _INSERT_FILE,
        [
            {
                "gun": gun,
                "repository": repository,
                "role": role,
                "version": version,
                "sha256": sha,
                "content": content,
                "created_at": now,
            }
            for role, version, sha, content in files
        ],
    )
    changes = [
        {"gun": gun, "version": version, "sha256": sha, "category": "update", "created_at": now}
        for role, version, sha, _ in files
        if role == "timestamp"
    ]
    if changes:
        conn.execute(_INSERT_CHANGE, changes)


def delete_gun(conn: Connection, gun: str) -> int:
    """Delete every file of a GUN and record the deletion in the changefeed; returns files deleted."""
    deleted = conn.execute(delete(trust_files).where(trust_files.c.gun == gun)).rowcount
    conn.execute(
        insert(trust_changes).values(gun=gun, version=0, sha256="", category="deletion", created_at=time.time())
    )
    return int(deleted or 0)


def guns_of(conn: Connection, repository: str) -> list[str]:
    rows = conn.execute(select(trust_files.c.gun).where(trust_files.c.repository == repository).distinct())
    return [gun for (gun,) in rows]


def changes(conn: Connection, gun: str | None, after_id: int, records: int, newest_first: bool) -> list[Change]:
    """The changefeed after ``after_id`` (or before it, newest first); -1 means from the latest."""
    q = select(trust_changes)
    if gun is not None:
        q = q.where(trust_changes.c.gun == gun)
    if after_id == -1:
        newest_first = True
    elif newest_first:
        q = q.where(trust_changes.c.id < after_id) if after_id > 0 else q
    else:
        q = q.where(trust_changes.c.id > after_id)
    q = q.order_by(trust_changes.c.id.desc() if newest_first else trust_changes.c.id).limit(records)
    out = [Change(r.id, r.gun, r.version, r.sha256, r.category, r.created_at) for r in conn.execute(q)]
    return out


def server_keys(conn: Connection, gun: str, role: str) -> list[ServerKey]:
    """The server-held keys of a role, newest first."""
    rows = conn.execute(
        select(trust_keys)
        .where(trust_keys.c.gun == gun, trust_keys.c.role == role)
        .order_by(trust_keys.c.created_at.desc())
    )
    return [ServerKey(r.key_id, r.role, r.algorithm, bytes(r.public), r.created_at) for r in rows]


_INSERT_KEY = insert(trust_keys)


def add_server_key(conn: Connection, gun: str, key: ServerKey) -> None:
    conn.execute(
        _INSERT_KEY,
        {
            "key_id": key.key_id,
            "gun": gun,
            "role": key.role,
            "algorithm": key.algorithm,
            "public": key.public,
            "created_at": key.created_at,
        },
    )


def signature_policy(conn: Connection, repository: str) -> tuple[bool, str] | None:
    """(signed_only, accepted kinds) of a repository, or None when it has no settings row."""
    row = conn.execute(
        select(repository_settings.c.signed_only, repository_settings.c.accepted_signatures)
        .join(repositories, repositories.c.id == repository_settings.c.repository_id)
        .where(repositories.c.name == repository)
    ).first()
    return (bool(row[0]), str(row[1])) if row else None


def all_guns(conn: Connection) -> list[str]:
    rows = conn.execute(select(trust_files.c.gun).where(trust_files.c.role == "timestamp").distinct())
    return [gun for (gun,) in rows]
