"""Statements the admin API (/api/v0) needs beyond those of the registry and the accounts:
repository listings with their settings, tag details, whole-repository deletion, and the
grants of a team. Functions take a Connection and return frozen dataclasses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, case, delete, exists, literal, select, update

from ..registry.mediatypes import INDEX_TYPES
from . import accounts as acc
from . import queries
from .models import (
    manifest_references,
    manifests,
    repositories,
    repository_access,
    repository_blobs,
    repository_settings,
    tags,
    uploads,
)


@dataclass(frozen=True, slots=True)
class RepositoryRow:
    id: int
    name: str  # "<namespace>/<repo>"
    visibility: str  # "public" | "private"
    short_description: str
    created_at: float
    signed_only: bool = False  # pulls by tag need a valid signature (trust/policy.py)
    accepted_signatures: tuple[str, ...] = ("notary",)  # the kinds that count for signed_only

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
    size: int
    updated_at: float
    content: bytes = b""  # the manifest's bytes, read only for indexes (their platforms)


def _repository_query() -> Select[Any]:
    return select(
        repositories.c.id,
        repositories.c.name,
        repository_settings.c.visibility,
        repository_settings.c.short_description,
        repositories.c.created_at,
        repository_settings.c.signed_only,
        repository_settings.c.accepted_signatures,
    ).select_from(repositories.outerjoin(repository_settings, repository_settings.c.repository_id == repositories.c.id))


def _kinds(value: str | None) -> tuple[str, ...]:
    return tuple(k.strip() for k in (value if value is not None else "notary").split(",") if k.strip())


def _repository(row: Any) -> RepositoryRow:
    return RepositoryRow(
        int(row[0]), row[1], row[2] or "private", row[3] or "", float(row[4]), bool(row[5]), _kinds(row[6])
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
) -> list[RepositoryRow]:
    """Repositories by name, after ``after`` (the unique name index keeps every page one range
    scan); only those of ``namespace``, whose name contains ``search``, of ``visibility``."""
    q = _repository_query().order_by(repositories.c.name).limit(limit)
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
    conn.execute(delete(repositories).where(repositories.c.id == repo_id))


def tags_page(conn: Connection, repo_id: int, after: str | None, limit: int) -> list[TagRow]:
    """A page of tags by name; an index's bytes come along, for its platforms."""
    index = manifests.c.media_type.in_(sorted(INDEX_TYPES))
    content = case((index, manifests.c.content), else_=literal(b""))
    q = (
        select(tags.c.name, manifests.c.digest, manifests.c.media_type, manifests.c.size, tags.c.updated_at, content)
        .select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))
        .where(tags.c.repository_id == repo_id)
        .order_by(tags.c.name)
        .limit(limit)
    )
    if after is not None:
        q = q.where(tags.c.name > after)
    return [TagRow(r[0], r[1], r[2], int(r[3]), float(r[4]), bytes(r[5] or b"")) for r in conn.execute(q)]


def team_repository_grants(conn: Connection, team_id: int) -> list[tuple[RepositoryRow, str]]:
    """(repository, level) for every repository grant of a team."""
    q = (
        _repository_query()
        .add_columns(repository_access.c.level)
        .join(repository_access, repository_access.c.repository_id == repositories.c.id)
        .where(repository_access.c.team_id == team_id)
        .order_by(repositories.c.name)
    )
    return [(_repository(r), str(r[7])) for r in conn.execute(q)]
