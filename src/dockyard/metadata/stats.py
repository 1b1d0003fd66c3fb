"""Figures for the dashboard: counts, storage used, and pushes and pulls per day. Each takes
``readable`` (a SELECT of the repository ids the caller may read, metadata/visibility.py), or
None for the whole registry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Integer, cast, func, select

from .models import blobs, manifests, pulls_per_day, repositories, repository_blobs

DAY = 86400


def totals(conn: Connection) -> tuple[int, int, int]:
    """(repositories, blob bytes stored, manifests) of the whole registry."""
    repos = conn.execute(select(func.count()).select_from(repositories)).scalar() or 0
    stored = conn.execute(select(func.coalesce(func.sum(blobs.c.size), 0))).scalar() or 0
    count = conn.execute(select(func.count()).select_from(manifests)).scalar() or 0
    return int(repos), int(stored), int(count)


def stored_bytes_of(conn: Connection, readable: Any) -> int:
    """Bytes of the distinct blobs the given repositories link (shared blobs count once)."""
    digests = select(repository_blobs.c.digest).where(repository_blobs.c.repository_id.in_(readable))
    return int(
        conn.execute(select(func.coalesce(func.sum(blobs.c.size), 0)).where(blobs.c.digest.in_(digests))).scalar() or 0
    )


def pushes_per_day(conn: Connection, since: float, readable: Any = None) -> dict[int, int]:
    """Manifests pushed per day (days since the epoch, UTC) from ``since`` on."""
    day = cast(manifests.c.created_at / DAY, Integer)
    q = select(day, func.count()).where(manifests.c.created_at >= since).group_by(day)
    if readable is not None:
        q = q.where(manifests.c.repository_id.in_(readable))
    return {int(d): int(n) for d, n in conn.execute(q)}


def pulls_per_day_since(conn: Connection, first_day: int, readable: Any = None) -> dict[int, int]:
    """Manifest GETs per day (days since the epoch, UTC) from ``first_day`` on, as flushed."""
    q = (
        select(pulls_per_day.c.day, func.sum(pulls_per_day.c.count))
        .where(pulls_per_day.c.day >= first_day)
        .group_by(pulls_per_day.c.day)
    )
    if readable is not None:
        q = q.where(pulls_per_day.c.repository_id.in_(readable))
    return {int(d): int(n or 0) for d, n in conn.execute(q)}


# SQLite binds at most 32,766 parameters in one statement; past this many readable
# repositories the figures below use the visibility subquery as it is.
MAX_LISTED_IDS = 30_000


def readable_figures(
    conn: Connection, readable: Any, since: float, first_day: int
) -> tuple[int, int, dict[int, int], dict[int, int]]:
    """(repositories, stored bytes, pushes per day, pulls per day) of what a reader may read,
    in one transaction: the visibility condition is evaluated once, not once per figure."""
    ids = list(conn.execute(readable).scalars())
    chosen: Any = ids if len(ids) <= MAX_LISTED_IDS else readable
    if not ids:
        return 0, 0, {}, {}
    return (
        len(ids),
        stored_bytes_of(conn, chosen),
        pushes_per_day(conn, since, chosen),
        pulls_per_day_since(conn, first_day, chosen),
    )
