"""Figures for the dashboard: counts, storage used, and pushes per day."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Integer, cast, distinct, func, select

from .models import blobs, manifests, repositories, repository_blobs

DAY = 86400


def all_repository_names(conn: Connection) -> list[str]:
    return list(conn.execute(select(repositories.c.name).order_by(repositories.c.name)).scalars())


def repository_ids(conn: Connection, names: Sequence[str]) -> list[int]:
    out: list[int] = []
    for i in range(0, len(names), 500):  # bounded IN lists
        chunk = list(names[i : i + 500])
        out += [int(x) for x in conn.execute(select(repositories.c.id).where(repositories.c.name.in_(chunk))).scalars()]
    return out


def totals(conn: Connection) -> tuple[int, int, int]:
    """(repositories, blob bytes stored, manifests) of the whole registry."""
    repos = conn.execute(select(func.count()).select_from(repositories)).scalar() or 0
    stored = conn.execute(select(func.coalesce(func.sum(blobs.c.size), 0))).scalar() or 0
    count = conn.execute(select(func.count()).select_from(manifests)).scalar() or 0
    return int(repos), int(stored), int(count)


def stored_bytes_of(conn: Connection, repo_ids: Sequence[int]) -> int:
    """Bytes of the distinct blobs the given repositories link (shared blobs count once)."""
    if not repo_ids:
        return 0
    digests = (
        select(distinct(repository_blobs.c.digest))
        .where(repository_blobs.c.repository_id.in_(list(repo_ids)))
        .scalar_subquery()
    )
    return int(
        conn.execute(select(func.coalesce(func.sum(blobs.c.size), 0)).where(blobs.c.digest.in_(digests))).scalar() or 0
    )


def pushes_per_day(conn: Connection, since: float, repo_ids: Sequence[int] | None = None) -> dict[int, int]:
    """Manifests pushed per day (days since the epoch, UTC) from ``since`` on."""
    day = cast(manifests.c.created_at / DAY, Integer)
    q = select(day, func.count()).where(manifests.c.created_at >= since).group_by(day)
    if repo_ids is not None:
        if not repo_ids:
            return {}
        q = q.where(manifests.c.repository_id.in_(list(repo_ids)))
    return {int(d): int(n) for d, n in conn.execute(q)}
