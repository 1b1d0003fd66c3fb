"""Every statement the registry core runs. Functions take a Connection (the caller picks
read or write through ``Database``) and return frozen dataclasses, never ORM rows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, delete, func, select, update

from .db import Database, insert_ignore, upsert
from .models import blobs, manifest_references, manifests, repositories, repository_blobs, tags, uploads


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    content: bytes


@dataclass(frozen=True, slots=True)
class ReferrerRecord:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class UploadRecord:
    id: str
    repository: str
    created_at: float
    updated_at: float


# --- repositories -------------------------------------------------------------------------


def repository_id(conn: Connection, name: str) -> int | None:
    return conn.execute(select(repositories.c.id).where(repositories.c.name == name)).scalar()


_REPOSITORY_ID = select(repositories.c.id).where(repositories.c.name == bindparam("name"))


async def fetch_repository_id(db: Database, name: str) -> int | None:
    """repository_id on the database's fast path."""
    row = await db.fetch_one(_REPOSITORY_ID, name=name)
    return int(row[0]) if row else None


def ensure_repository(conn: Connection, name: str) -> int:
    insert_ignore(conn, repositories, {"name": name, "created_at": time.time()})
    rid = repository_id(conn, name)
    assert rid is not None
    return rid


def list_repositories(conn: Connection, last: str | None, limit: int) -> list[str]:
    q = select(repositories.c.name).order_by(repositories.c.name).limit(limit)
    if last:
        q = q.where(repositories.c.name > last)
    return list(conn.execute(q).scalars())


# --- blobs --------------------------------------------------------------------------------

_blob_in_repo = select(blobs.c.size).select_from(
    repositories.join(repository_blobs, repository_blobs.c.repository_id == repositories.c.id).join(
        blobs, blobs.c.digest == repository_blobs.c.digest
    )
)


_BLOB_IN_REPO = _blob_in_repo.where(
    repositories.c.name == bindparam("repo"), repository_blobs.c.digest == bindparam("digest")
)


async def blob_size_in_repository(db: Database, repo: str, digest: str) -> int | None:
    """The blob's size if this repository may serve it, else None (hot path)."""
    row = await db.fetch_one(_BLOB_IN_REPO, repo=repo, digest=digest)
    return int(row[0]) if row else None


def blob_size(conn: Connection, digest: str) -> int | None:
    return conn.execute(select(blobs.c.size).where(blobs.c.digest == digest)).scalar()


def link_blob(conn: Connection, repo_id: int, digest: str, size: int) -> None:
    now = time.time()
    insert_ignore(conn, blobs, {"digest": digest, "size": size, "created_at": now})
    insert_ignore(conn, repository_blobs, {"repository_id": repo_id, "digest": digest, "created_at": now})


def link_existing_blob(conn: Connection, repo_id: int, digest: str) -> int | None:
    """Link a blob that is stored already (a mount); its size, or None when GC removed it."""
    size = blob_size(conn, digest)
    if size is None:
        return None
    insert_ignore(conn, repository_blobs, {"repository_id": repo_id, "digest": digest, "created_at": time.time()})
    return int(size)


def unlink_blob(conn: Connection, repo_id: int, digest: str) -> bool:
    res = conn.execute(
        delete(repository_blobs).where(repository_blobs.c.repository_id == repo_id, repository_blobs.c.digest == digest)
    )
    return bool(res.rowcount)


def missing_blobs(conn: Connection, repo_id: int, digests: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(digests))
    if not wanted:
        return []
    # FOR SHARE (PostgreSQL): GC cannot remove these links until this transaction commits.
    found = set(
        conn.execute(
            select(repository_blobs.c.digest)
            .where(repository_blobs.c.repository_id == repo_id, repository_blobs.c.digest.in_(wanted))
            .with_for_update(read=True)
        ).scalars()
    )
    return [d for d in wanted if d not in found]


# --- manifests and tags -------------------------------------------------------------------

_manifest_cols = (manifests.c.digest, manifests.c.media_type, manifests.c.size, manifests.c.content)
_by_tag = select(*_manifest_cols).select_from(
    repositories.join(tags, tags.c.repository_id == repositories.c.id).join(
        manifests, manifests.c.id == tags.c.manifest_id
    )
)
_by_digest = select(*_manifest_cols).select_from(
    repositories.join(manifests, manifests.c.repository_id == repositories.c.id)
)


_MANIFEST_BY_TAG = _by_tag.where(repositories.c.name == bindparam("repo"), tags.c.name == bindparam("tag"))
_MANIFEST_BY_DIGEST = _by_digest.where(
    repositories.c.name == bindparam("repo"), manifests.c.digest == bindparam("digest")
)


async def manifest_by_tag(db: Database, repo: str, tag: str) -> ManifestRecord | None:
    row = await db.fetch_one(_MANIFEST_BY_TAG, repo=repo, tag=tag)
    return ManifestRecord(row[0], row[1], int(row[2]), bytes(row[3])) if row else None


async def manifest_by_digest(db: Database, repo: str, digest: str) -> ManifestRecord | None:
    row = await db.fetch_one(_MANIFEST_BY_DIGEST, repo=repo, digest=digest)
    return ManifestRecord(row[0], row[1], int(row[2]), bytes(row[3])) if row else None


def missing_manifests(conn: Connection, repo_id: int, digests: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(digests))
    if not wanted:
        return []
    found = set(  # FOR SHARE: GC cannot delete these children until this transaction commits
        conn.execute(
            select(manifests.c.digest)
            .where(manifests.c.repository_id == repo_id, manifests.c.digest.in_(wanted))
            .with_for_update(read=True)
        ).scalars()
    )
    return [d for d in wanted if d not in found]


@dataclass(frozen=True, slots=True)
class NewManifest:
    digest: str
    media_type: str
    content: bytes
    artifact_type: str | None
    subject_digest: str | None
    annotations: dict[str, str]
    blob_refs: tuple[str, ...]
    manifest_refs: tuple[str, ...]
    pushed_by: str | None = None  # the account pushing (None: anonymous, or auth off)


def put_manifest(conn: Connection, repo_id: int, m: NewManifest, tag: str | None) -> None:
    """Store a manifest (once per repository) and move the tag to it, in one transaction."""
    now = time.time()
    insert_ignore(
        conn,
        manifests,
        {
            "repository_id": repo_id,
            "digest": m.digest,
            "media_type": m.media_type,
            "size": len(m.content),
            "content": m.content,
            "artifact_type": m.artifact_type,
            "subject_digest": m.subject_digest,
            "annotations": json.dumps(m.annotations) if m.annotations else None,
            "created_at": now,
        },
    )
    mid = conn.execute(  # FOR SHARE: a GC sweep of this (until now untagged) manifest waits for us
        select(manifests.c.id)
        .where(manifests.c.repository_id == repo_id, manifests.c.digest == m.digest)
        .with_for_update(read=True)
    ).scalar_one()
    for kind, refs in (("blob", m.blob_refs), ("manifest", m.manifest_refs)):
        for ref in dict.fromkeys(refs):
            insert_ignore(conn, manifest_references, {"manifest_id": mid, "kind": kind, "digest": ref})
    if tag is not None:
        upsert(
            conn,
            tags,
            {"repository_id": repo_id, "name": tag, "manifest_id": mid, "updated_at": now, "pushed_by": m.pushed_by},
            keys=("repository_id", "name"),
            update=("manifest_id", "updated_at", "pushed_by"),
        )


def delete_manifest(conn: Connection, repo_id: int, digest: str) -> bool:
    """Delete a manifest and every tag pointing at it."""
    mid = conn.execute(
        select(manifests.c.id).where(manifests.c.repository_id == repo_id, manifests.c.digest == digest)
    ).scalar()
    if mid is None:
        return False
    conn.execute(delete(tags).where(tags.c.manifest_id == mid))
    conn.execute(delete(manifest_references).where(manifest_references.c.manifest_id == mid))
    conn.execute(delete(manifests).where(manifests.c.id == mid))
    return True


def tag_digest(conn: Connection, repo_id: int, tag: str) -> str | None:
    return conn.execute(
        select(manifests.c.digest)
        .join(tags, tags.c.manifest_id == manifests.c.id)
        .where(tags.c.repository_id == repo_id, tags.c.name == tag)
    ).scalar()


def tags_of_digest(conn: Connection, repo_id: int, digest: str) -> list[str]:
    return list(
        conn.execute(
            select(tags.c.name)
            .join(manifests, manifests.c.id == tags.c.manifest_id)
            .where(manifests.c.repository_id == repo_id, manifests.c.digest == digest)
        ).scalars()
    )


def delete_tag(conn: Connection, repo_id: int, tag: str) -> bool:
    res = conn.execute(delete(tags).where(tags.c.repository_id == repo_id, tags.c.name == tag))
    return bool(res.rowcount)


def list_tags(conn: Connection, repo_id: int, last: str | None, limit: int) -> list[str]:
    q = select(tags.c.name).where(tags.c.repository_id == repo_id).order_by(tags.c.name).limit(limit)
    if last is not None:
        q = q.where(tags.c.name > last)
    return list(conn.execute(q).scalars())


def referrers(conn: Connection, repo_id: int, subject: str, artifact_type: str | None) -> list[ReferrerRecord]:
    q = (
        select(
            manifests.c.digest,
            manifests.c.media_type,
            manifests.c.size,
            manifests.c.artifact_type,
            manifests.c.annotations,
        )
        .where(manifests.c.repository_id == repo_id, manifests.c.subject_digest == subject)
        .order_by(manifests.c.created_at, manifests.c.id)
    )
    if artifact_type is not None:
        q = q.where(manifests.c.artifact_type == artifact_type)
    return [ReferrerRecord(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else None) for r in conn.execute(q)]


# --- uploads ------------------------------------------------------------------------------


def create_upload(conn: Connection, upload_id: str, repo_id: int) -> None:
    now = time.time()
    conn.execute(uploads.insert().values(id=upload_id, repository_id=repo_id, created_at=now, updated_at=now))


def get_upload(conn: Connection, upload_id: str) -> UploadRecord | None:
    row = conn.execute(
        select(uploads.c.id, repositories.c.name, uploads.c.created_at, uploads.c.updated_at)
        .select_from(uploads.join(repositories, repositories.c.id == uploads.c.repository_id))
        .where(uploads.c.id == upload_id)
    ).first()
    return UploadRecord(row[0], row[1], row[2], row[3]) if row else None


def touch_upload(conn: Connection, upload_id: str) -> None:
    conn.execute(update(uploads).where(uploads.c.id == upload_id).values(updated_at=time.time()))


def delete_upload(conn: Connection, upload_id: str) -> bool:
    return bool(conn.execute(delete(uploads).where(uploads.c.id == upload_id)).rowcount)


def stale_uploads(conn: Connection, older_than: float) -> list[str]:
    return list(conn.execute(select(uploads.c.id).where(uploads.c.updated_at < older_than)).scalars())


def count(conn: Connection, table_name: str) -> int:
    table = {t.name: t for t in (repositories, blobs, manifests, tags, uploads, repository_blobs)}[table_name]
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
