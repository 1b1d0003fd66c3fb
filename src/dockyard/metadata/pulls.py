"""Pulls: batches of counts added to ``pulls_per_day`` and ``tag_pulls`` with upserts, so
several registry processes (or a flush racing another) add up instead of overwriting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, case, func, select

from .models import pulls_per_day, repositories, tag_pulls

DAY = 86400


def _dialect_insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(conn.dialect.name)
    return insert


def _later(column: Any, incoming: Any) -> Any:
    """The later of two times, in SQL both dialects know (no GREATEST in SQLite)."""
    return case((incoming > column, incoming), else_=column)


def record(
    conn: Connection,
    days: Mapping[tuple[str, int], tuple[int, float]],
    tags: Mapping[tuple[str, str], float],
) -> None:
    """Add ``days`` ((repository, day) -> (pulls, last pull)) and ``tags`` ((repository,
    tag) -> last pull). Repositories deleted meanwhile are skipped."""
    names = sorted({r for r, _ in days} | {r for r, _ in tags})
    ids: dict[str, int] = {}
    for i in range(0, len(names), 500):
        chunk = names[i : i + 500]
        rows = conn.execute(select(repositories.c.name, repositories.c.id).where(repositories.c.name.in_(chunk)))
        ids.update({name: int(rid) for name, rid in rows})
    insert = _dialect_insert(conn)
    day_rows = [
        {"repository_id": ids[r], "day": d, "count": n, "last_pulled_at": at}
        for (r, d), (n, at) in sorted(days.items())
        if r in ids
    ]
    if day_rows:
        stmt = insert(pulls_per_day)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["repository_id", "day"],
                set_={
                    "count": pulls_per_day.c.count + stmt.excluded.count,
                    "last_pulled_at": _later(pulls_per_day.c.last_pulled_at, stmt.excluded.last_pulled_at),
                },
            ),
            day_rows,
        )
    tag_rows = [
        {"repository_id": ids[r], "tag": t, "last_pulled_at": at} for (r, t), at in sorted(tags.items()) if r in ids
    ]
    if tag_rows:
        stmt = insert(tag_pulls)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["repository_id", "tag"],
                set_={"last_pulled_at": _later(tag_pulls.c.last_pulled_at, stmt.excluded.last_pulled_at)},
            ),
            tag_rows,
        )


def repository_last_pulled(conn: Connection, repo_id: int) -> float | None:
    q = select(func.max(pulls_per_day.c.last_pulled_at)).where(pulls_per_day.c.repository_id == repo_id)
    value = conn.execute(q).scalar()
    return float(value) if value is not None else None


def tags_last_pulled(conn: Connection, repo_id: int, names: Sequence[str]) -> dict[str, float]:
    if not names:
        return {}
    q = select(tag_pulls.c.tag, tag_pulls.c.last_pulled_at).where(
        tag_pulls.c.repository_id == repo_id, tag_pulls.c.tag.in_(list(names))
    )
    return {str(t): float(at) for t, at in conn.execute(q)}
