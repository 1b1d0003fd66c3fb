"""Statements the admin API (/api/v0) needs beyond those of the registry and the accounts:
repository listings with their settings, tag details, whole-repository deletion, and the
grants of a team. Functions take a Connection and return frozen dataclasses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, case, delete, exists, func, literal, select, update

from ..registry.mediatypes import INDEX_TYPES
from . import accounts as acc
from . import queries
from .models import (
    blobs,
    manifest_references,
    manifests,
    pulls_per_day,
    repositories,
    repository_access,
    repository_blobs,
    repository_settings,
    tag_pulls,
    tags,
    uploads,
)
from .visibility import Reader, readable


@dataclass(frozen=True, slots=True)
class RepositoryRow:
    id: int
    name: str  # "<namespace>/<repo>"
    visibility: str  # "public" | "private"
    short_description: str
    created_at: float
    signed_only: bool = False  # pulls by tag need a valid signature (trust/policy.py)
    accepted_signatures: tuple[str, ...] = ("notary",)  # the kinds that count for signed_only
    last_pulled_at: float | None = None  # the last manifest GET (as of the last pull flush)

    @property
    def namespace(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def short_name(self) -> str:
        return self.name.split("/", 1)[1] if "/" in self.name else self.name


@dataclass(frozen=True, slots=True)
class TagRow:
    name: str
    digest: str
    media_type: str
    size: int  # bytes to pull: an image's manifest, config and layers; the sum of an index's images
    updated_at: float
    content: bytes = b""  # the manifest's bytes, read only for indexes (their platforms)
    last_pulled_at: float | None = None
    pushed_by: str | None = None


def _repository_query() -> Select[Any]:
    last_pulled = (
        select(func.max(pulls_per_day.c.last_pulled_at))
        .where(pulls_per_day.c.repository_id == repositories.c.id)
        .scalar_subquery()
    )
    return select(
        repositories.c.id,
        repositories.c.name,
        repository_settings.c.visibility,
        repository_settings.c.short_description,
        repositories.c.created_at,
        repository_settings.c.signed_only,
        repository_settings.c.accepted_signatures,
        last_pulled,
    ).select_from(repositories.outerjoin(repository_settings, repository_settings.c.repository_id == repositories.c.id))


def _kinds(value: str | None) -> tuple[str, ...]:
    return tuple(k.strip() for k in (value if value is not None else "notary").split(",") if k.strip())


def _repository(row: Any) -> RepositoryRow:
    return RepositoryRow(
        int(row[0]),
        row[1],
        row[2] or "private",
        row[3] or "",
        float(row[4]),
        bool(row[5]),
        _kinds(row[6]),
        float(row[7]) if row[7] is not None else None,
    )


def repository(conn: Connection, name: str) -> RepositoryRow | None:
    row = conn.execute(_repository_query().where(repositories.c.name == name)).first()
    return _repository(row) if row else None


def repositories_page(
    conn: Connection,
    namespace: str | None,
    after: str | None,
    limit: int,
    search: str | None = None,
    visibility: str | None = None,
    reader: Reader | None = None,
) -> list[RepositoryRow]:
    """Repositories by name, after ``after`` (the unique name index keeps every page one range
    scan); only those of ``namespace``, whose name contains ``search``, of ``visibility``, and
    that ``reader`` may read (None: all)."""
    q = _repository_query().order_by(repositories.c.name).limit(limit)
    if reader is not None:
        q = q.where(readable(reader))
    if namespace is not None:
        q = q.where(repositories.c.name.startswith(namespace + "/", autoescape=True))
    if after:
        q = q.where(repositories.c.name > after)
    if search:
        q = q.where(repositories.c.name.contains(search.lower(), autoescape=True))
    if visibility == "public":
        q = q.where(repository_settings.c.visibility == "public")
    elif visibility == "private":
        q = q.where((repository_settings.c.visibility != "public") | repository_settings.c.visibility.is_(None))
    return [_repository(r) for r in conn.execute(q)]


def namespace_has_repositories(conn: Connection, namespace: str) -> bool:
    q = select(exists().where(repositories.c.name.startswith(namespace + "/", autoescape=True)))
    return bool(conn.execute(q).scalar())


def create_repository(conn: Connection, name: str, visibility: str, short_description: str) -> RepositoryRow | None:
    """Create a repository with its settings; None when it already exists."""
    if queries.repository_id(conn, name) is not None:
        return None
    repo_id = queries.ensure_repository(conn, name)
    acc.set_repository_settings(conn, repo_id, visibility=visibility, short_description=short_description)
    return repository(conn, name)


def set_signing_policy(
    conn: Connection, repo_id: int, *, signed_only: bool | None = None, accepted: Sequence[str] | None = None
) -> None:
    """Change the "only signed content" settings; what is None stays as it is."""
    acc.set_repository_settings(conn, repo_id)  # the settings row, with its defaults, if missing
    values: dict[str, Any] = {}
    if signed_only is not None:
        values["signed_only"] = signed_only
    if accepted is not None:
        values["accepted_signatures"] = ",".join(accepted)
    if values:
        conn.execute(update(repository_settings).where(repository_settings.c.repository_id == repo_id).values(**values))


def upload_ids(conn: Connection, repo_id: int) -> list[str]:
    return list(conn.execute(select(uploads.c.id).where(uploads.c.repository_id == repo_id)).scalars())


def delete_repository(conn: Connection, repo_id: int) -> None:
    """Remove a repository with its tags, manifests, blob links, settings and grants. The
    blobs themselves stay: garbage collection removes those no repository links."""
    manifest_ids = select(manifests.c.id).where(manifests.c.repository_id == repo_id).scalar_subquery()
    conn.execute(delete(tags).where(tags.c.repository_id == repo_id))
    conn.execute(delete(manifest_references).where(manifest_references.c.manifest_id.in_(manifest_ids)))
    conn.execute(delete(manifests).where(manifests.c.repository_id == repo_id))
    conn.execute(delete(repository_blobs).where(repository_blobs.c.repository_id == repo_id))
    conn.execute(delete(uploads).where(uploads.c.repository_id == repo_id))
    conn.execute(delete(repository_access).where(repository_access.c.repository_id == repo_id))
    conn.execute(delete(repository_settings).where(repository_settings.c.repository_id == repo_id))
    conn.execute(delete(pulls_per_day).where(pulls_per_day.c.repository_id == repo_id))
    conn.execute(delete(tag_pulls).where(tag_pulls.c.repository_id == repo_id))
    conn.execute(delete(repositories).where(repositories.c.id == repo_id))


def tags_page(conn: Connection, repo_id: int, after: str | None, limit: int) -> list[TagRow]:
    """A page of tags by name, with the bytes a pull fetches and the last pull; an index's
    bytes come along, for its platforms."""
    index = manifests.c.media_type.in_(sorted(INDEX_TYPES))
    content = case((index, manifests.c.content), else_=literal(b""))
    q = (
        select(
            tags.c.name,
            manifests.c.digest,
            manifests.c.media_type,
            manifests.c.size,
            tags.c.updated_at,
            content,
            tag_pulls.c.last_pulled_at,
            manifests.c.id,
            tags.c.pushed_by,
        )
        .select_from(
            tags.join(manifests, manifests.c.id == tags.c.manifest_id).outerjoin(
                tag_pulls, (tag_pulls.c.repository_id == tags.c.repository_id) & (tag_pulls.c.tag == tags.c.name)
            )
        )
        .where(tags.c.repository_id == repo_id)
        .order_by(tags.c.name)
        .limit(limit)
    )
    if after is not None:
        q = q.where(tags.c.name > after)
    rows = conn.execute(q).all()
    sizes = pull_sizes(conn, repo_id, {int(r[7]): (r[2] in INDEX_TYPES, int(r[3])) for r in rows})
    return [
        TagRow(
            r[0],
            r[1],
            r[2],
            sizes.get(int(r[7]), int(r[3])),
            float(r[4]),
            bytes(r[5] or b""),
            float(r[6]) if r[6] is not None else None,
            r[8],
        )
        for r in rows
    ]


def _blob_bytes(conn: Connection, manifest_ids: Sequence[int]) -> dict[int, int]:
    """Bytes of the blobs (config, layers) each manifest references."""
    out: dict[int, int] = {}
    ids = list(manifest_ids)
    for i in range(0, len(ids), 500):
        q = (
            select(manifest_references.c.manifest_id, func.sum(blobs.c.size))
            .select_from(manifest_references.join(blobs, blobs.c.digest == manifest_references.c.digest))
            .where(manifest_references.c.manifest_id.in_(ids[i : i + 500]), manifest_references.c.kind == "blob")
            .group_by(manifest_references.c.manifest_id)
        )
        out.update({int(m): int(n or 0) for m, n in conn.execute(q)})
    return out


def pull_sizes(conn: Connection, repo_id: int, wanted: dict[int, tuple[bool, int]]) -> dict[int, int]:
    """The bytes a pull fetches, by manifest id (``wanted``: id -> (is an index, own size)):
    an image's manifest + config + layers; an index's sum of that over its images (the index's
    own bytes left out). Three queries whatever the number of manifests."""
    indexes = [m for m, (is_index, _) in wanted.items() if is_index]
    children: list[tuple[int, int, int]] = []  # (index id, child id, child size)
    child = manifests.alias("child")
    for i in range(0, len(indexes), 500):
        q = (
            select(manifest_references.c.manifest_id, child.c.id, child.c.size)
            .select_from(
                manifest_references.join(
                    child, (child.c.repository_id == repo_id) & (child.c.digest == manifest_references.c.digest)
                )
            )
            .where(
                manifest_references.c.manifest_id.in_(indexes[i : i + 500]),
                manifest_references.c.kind == "manifest",
            )
        )
        children += [(int(p), int(c), int(n)) for p, c, n in conn.execute(q)]
    images = [m for m, (is_index, _) in wanted.items() if not is_index]
    layer_bytes = _blob_bytes(conn, sorted({*images, *(c for _, c, _ in children)}))
    out = {m: size + layer_bytes.get(m, 0) for m, (is_index, size) in wanted.items() if not is_index}
    for parent, c, size in children:
        out[parent] = out.get(parent, 0) + size + layer_bytes.get(c, 0)
    return out  # an index none of whose images is here keeps its own size (the caller's default)


def pull_size(conn: Connection, repo_id: int, digest: str) -> int | None:
    """The bytes a pull of one manifest fetches (see ``pull_sizes``); None when it is not here."""
    row = conn.execute(
        select(manifests.c.id, manifests.c.media_type, manifests.c.size).where(
            manifests.c.repository_id == repo_id, manifests.c.digest == digest
        )
    ).first()
    if row is None:
        return None
    return pull_sizes(conn, repo_id, {int(row[0]): (row[1] in INDEX_TYPES, int(row[2]))}).get(int(row[0]), int(row[2]))


def team_repository_grants(conn: Connection, team_id: int) -> list[tuple[RepositoryRow, str]]:
    """(repository, level) for every repository grant of a team."""
    q = (
        _repository_query()
        .add_columns(repository_access.c.level)
        .join(repository_access, repository_access.c.repository_id == repositories.c.id)
        .where(repository_access.c.team_id == team_id)
        .order_by(repositories.c.name)
    )
    return [(_repository(r), str(r[8])) for r in conn.execute(q)]
