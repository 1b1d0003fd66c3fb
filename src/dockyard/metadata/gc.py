"""Statements for online garbage collection (DESIGN.md §5).

A blob is deleted in one write transaction that first locks its row, then checks in a fresh
statement that no manifest references it and no recent link holds it, then deletes its links
and row; the caller deletes the file before that transaction commits. Whatever relies on a
blob (an upload finishing, a mount, a manifest naming it) holds its row in its own
transaction first (``hold``): on SQLite the single writer orders them, on PostgreSQL the row
lock does. So a concurrent push either commits first (the sweep sees the reference and keeps
the blob) or comes after (it finds the blob gone and uploads it again).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, select

from .models import blobs, manifest_references, manifests, repositories, repository_blobs, tags


@dataclass(frozen=True, slots=True)
class ManifestRow:
    id: int
    repository_id: int
    digest: str
    subject: str | None
    created_at: float
    tagged: bool


def manifest_graph(conn: Connection) -> tuple[list[ManifestRow], list[tuple[int, str]]]:
    """Every manifest (with whether it is tagged) and every manifest→manifest reference."""
    tagged = select(tags.c.manifest_id).distinct().subquery()
    rows = conn.execute(
        select(
            manifests.c.id,
            manifests.c.repository_id,
            manifests.c.digest,
            manifests.c.subject_digest,
            manifests.c.created_at,
            tagged.c.manifest_id.isnot(None),
        ).outerjoin(tagged, tagged.c.manifest_id == manifests.c.id)
    )
    out = [ManifestRow(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]
    refs = conn.execute(
        select(manifest_references.c.manifest_id, manifest_references.c.digest).where(
            manifest_references.c.kind == "manifest"
        )
    )
    return out, [(r[0], r[1]) for r in refs]


def repository_names(conn: Connection) -> dict[int, str]:
    return {r[0]: r[1] for r in conn.execute(select(repositories.c.id, repositories.c.name))}


def delete_manifests(conn: Connection, ids: Iterable[int], cutoff: float) -> int:
    """Delete unreachable manifests, re-checked here against what changed since the mark:
    a tag or a new parent index (in the same repository) keeps a manifest."""
    batch = list(ids)
    if not batch:
        return 0
    parent = manifests.alias("parent")
    still_unreachable = and_(
        manifests.c.id.in_(batch),
        manifests.c.created_at < cutoff,
        ~exists().where(tags.c.manifest_id == manifests.c.id),
        ~exists().where(
            manifest_references.c.kind == "manifest",
            manifest_references.c.digest == manifests.c.digest,
            manifest_references.c.manifest_id == parent.c.id,
            parent.c.repository_id == manifests.c.repository_id,
            parent.c.id.notin_(batch),
        ),
    )
    # Lock first, then look: on PostgreSQL the second statement's fresh snapshot sees what a
    # concurrent push (holding these rows FOR SHARE until it committed) wrote.
    conn.execute(select(manifests.c.id).where(manifests.c.id.in_(batch)).with_for_update())
    doomed = list(conn.execute(select(manifests.c.id).where(still_unreachable)).scalars())
    if not doomed:
        return 0
    conn.execute(delete(manifest_references).where(manifest_references.c.manifest_id.in_(doomed)))
    conn.execute(delete(manifests).where(manifests.c.id.in_(doomed)))
    return len(doomed)


def stale_links(conn: Connection, cutoff: float) -> list[tuple[int, str]]:
    """Repository links to blobs that no manifest of that repository references."""
    referenced = exists().where(
        manifest_references.c.kind == "blob",
        manifest_references.c.digest == repository_blobs.c.digest,
        manifest_references.c.manifest_id == manifests.c.id,
        manifests.c.repository_id == repository_blobs.c.repository_id,
    )
    rows = conn.execute(
        select(repository_blobs.c.repository_id, repository_blobs.c.digest).where(
            repository_blobs.c.created_at < cutoff, ~referenced
        )
    )
    return [(r[0], r[1]) for r in rows]


def delete_links(conn: Connection, links: Iterable[tuple[int, str]], cutoff: float) -> int:
    """Delete the given links that are still unused and old (re-checked here), per repository
    so each statement uses the (repository, digest) key."""
    by_repo: dict[int, list[str]] = {}
    for repo_id, digest in links:
        by_repo.setdefault(repo_id, []).append(digest)
    removed = 0
    for repo_id, digests in by_repo.items():
        where = (repository_blobs.c.repository_id == repo_id, repository_blobs.c.digest.in_(digests))
        # Lock first, then delete in a statement whose snapshot sees references committed meanwhile.
        conn.execute(select(repository_blobs.c.digest).where(*where).with_for_update())
        referenced = exists().where(
            manifest_references.c.kind == "blob",
            manifest_references.c.digest == repository_blobs.c.digest,
            manifest_references.c.manifest_id == manifests.c.id,
            manifests.c.repository_id == repo_id,
        )
        res = conn.execute(delete(repository_blobs).where(*where, repository_blobs.c.created_at < cutoff, ~referenced))
        removed += int(res.rowcount or 0)
    return removed


def unreferenced_blobs(conn: Connection, cutoff: float) -> list[tuple[str, int]]:
    """Blobs older than the cutoff that no manifest references and no recent link holds."""
    rows = conn.execute(
        select(blobs.c.digest, blobs.c.size).where(
            blobs.c.created_at < cutoff,
            ~exists().where(manifest_references.c.kind == "blob", manifest_references.c.digest == blobs.c.digest),
            ~exists().where(repository_blobs.c.digest == blobs.c.digest, repository_blobs.c.created_at >= cutoff),
        )
    )
    return [(r[0], int(r[1])) for r in rows]


def _in_use(digests: list[str], cutoff: float) -> Any:
    """Blobs among ``digests`` that a manifest references or a recent link holds."""
    return select(blobs.c.digest).where(
        blobs.c.digest.in_(digests),
        exists().where(manifest_references.c.kind == "blob", manifest_references.c.digest == blobs.c.digest)
        | exists().where(repository_blobs.c.digest == blobs.c.digest, repository_blobs.c.created_at >= cutoff),
    )


def sweep_blobs(conn: Connection, digests: Iterable[str], cutoff: float) -> list[tuple[str, int]]:
    """In the sweep's transaction: the blobs among ``digests`` that nothing uses lose their
    links and rows; returned with their sizes (the caller deletes the files, then commits)."""
    wanted = list(dict.fromkeys(digests))
    if not wanted:
        return []
    # Lock first (PostgreSQL), then look in a statement whose snapshot sees what a push holding
    # these rows FOR SHARE committed meanwhile.
    present = set(conn.execute(select(blobs.c.digest).where(blobs.c.digest.in_(wanted)).with_for_update()).scalars())
    doomed = sorted(present - set(conn.execute(_in_use(wanted, cutoff)).scalars()))
    if not doomed:
        return []
    sizes = dict(conn.execute(select(blobs.c.digest, blobs.c.size).where(blobs.c.digest.in_(doomed))).all())
    conn.execute(delete(repository_blobs).where(repository_blobs.c.digest.in_(doomed)))
    conn.execute(delete(blobs).where(blobs.c.digest.in_(doomed)))
    return [(d, int(sizes.get(d, 0))) for d in doomed]


def hold(conn: Connection, digests: Iterable[str]) -> None:
    """Hold blob rows for share (PostgreSQL) for the rest of this transaction, before relying on
    them: a sweep of them in progress finishes first, and none starts until this commits."""
    wanted = list(dict.fromkeys(digests))
    if wanted:
        conn.execute(select(blobs.c.digest).where(blobs.c.digest.in_(wanted)).with_for_update(read=True))


def totals(conn: Connection) -> dict[str, Any]:
    return {
        "repositories": conn.execute(select(func.count()).select_from(repositories)).scalar_one(),
        "manifests": conn.execute(select(func.count()).select_from(manifests)).scalar_one(),
        "blobs": conn.execute(select(func.count()).select_from(blobs)).scalar_one(),
        "blob_bytes": int(conn.execute(select(func.coalesce(func.sum(blobs.c.size), 0))).scalar_one()),
    }
