"""Statements for lifecycle policies and storage usage."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select

from .models import blobs, lifecycle_policies, repositories, repository_blobs, tags


@dataclass(frozen=True, slots=True)
class Policy:
    id: int
    scope: str  # "repository" | "namespace"
    target: str
    kind: str
    parameters: dict[str, Any]


def policies_for(conn: Connection, repository: str) -> list[Policy]:
    """The repository's own policies and its namespace's."""
    namespace = repository.split("/", 1)[0]
    rows = conn.execute(
        select(lifecycle_policies).where(
            or_(
                (lifecycle_policies.c.scope == "repository") & (lifecycle_policies.c.target == repository),
                (lifecycle_policies.c.scope == "namespace") & (lifecycle_policies.c.target == namespace),
            )
        )
    )
    return [Policy(r.id, r.scope, r.target, r.kind, json.loads(r.parameters)) for r in rows]


def policies_of(conn: Connection, scope: str, target: str) -> list[Policy]:
    rows = conn.execute(
        select(lifecycle_policies)
        .where(lifecycle_policies.c.scope == scope, lifecycle_policies.c.target == target)
        .order_by(lifecycle_policies.c.id)
    )
    return [Policy(r.id, r.scope, r.target, r.kind, json.loads(r.parameters)) for r in rows]


def all_policies(conn: Connection, kind: str | None = None) -> list[Policy]:
    q = select(lifecycle_policies).order_by(lifecycle_policies.c.id)
    if kind is not None:
        q = q.where(lifecycle_policies.c.kind == kind)
    return [Policy(r.id, r.scope, r.target, r.kind, json.loads(r.parameters)) for r in conn.execute(q)]


def replace_policies(conn: Connection, scope: str, target: str, items: list[tuple[str, dict[str, Any]]]) -> None:
    """Set every policy of a repository or namespace at once (what the API's PUT does)."""
    conn.execute(
        delete(lifecycle_policies).where(lifecycle_policies.c.scope == scope, lifecycle_policies.c.target == target)
    )
    now = time.time()
    for kind, parameters in items:
        conn.execute(
            insert(lifecycle_policies).values(
                scope=scope, target=target, kind=kind, parameters=json.dumps(parameters), created_at=now
            )
        )


def _under(namespace: str) -> Any:
    """Repository names in a namespace ("_" is a LIKE wildcard, and legal in names)."""
    escaped = namespace.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    return repositories.c.name.like(escaped + "/%", escape="\\")


def repository_usage(conn: Connection, repository: str) -> int:
    """Bytes of the distinct blobs linked to a repository."""
    digests = (
        select(repository_blobs.c.digest)
        .join(repositories, repositories.c.id == repository_blobs.c.repository_id)
        .where(repositories.c.name == repository)
        .distinct()
        .subquery()
    )
    total = conn.execute(
        select(func.coalesce(func.sum(blobs.c.size), 0)).join(digests, digests.c.digest == blobs.c.digest)
    ).scalar_one()
    return int(total)


def namespace_usage(conn: Connection, namespace: str) -> int:
    """Bytes of the distinct blobs linked anywhere in a namespace: a blob two of its
    repositories share counts once."""
    digests = (
        select(repository_blobs.c.digest)
        .join(repositories, repositories.c.id == repository_blobs.c.repository_id)
        .where(_under(namespace))
        .distinct()
        .subquery()
    )
    total = conn.execute(
        select(func.coalesce(func.sum(blobs.c.size), 0)).join(digests, digests.c.digest == blobs.c.digest)
    ).scalar_one()
    return int(total)


def blob_linked(conn: Connection, repository: str, digest: str) -> tuple[bool, bool]:
    """Whether a blob is linked already in the repository, and anywhere in its namespace
    (then storing it again there adds nothing to that usage)."""
    namespace = repository.split("/", 1)[0]
    names = set(
        conn.execute(
            select(repositories.c.name)
            .join(repository_blobs, repository_blobs.c.repository_id == repositories.c.id)
            .where(repository_blobs.c.digest == digest, _under(namespace))
        ).scalars()
    )
    return repository in names, bool(names)


def tag_rows(conn: Connection, repository: str) -> list[tuple[str, float]]:
    """(tag, updated_at) of a repository."""
    rows = conn.execute(
        select(tags.c.name, tags.c.updated_at)
        .join(repositories, repositories.c.id == tags.c.repository_id)
        .where(repositories.c.name == repository)
    )
    return [(r[0], float(r[1])) for r in rows]


def repositories_under(conn: Connection, scope: str, target: str) -> list[str]:
    if scope == "repository":
        return [target] if conn.execute(select(repositories.c.id).where(repositories.c.name == target)).first() else []
    rows = conn.execute(select(repositories.c.name).where(_under(target)))
    return list(rows.scalars())
