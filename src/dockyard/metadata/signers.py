"""Statements for the keys and certificates that verify OCI-artifact signatures of a repository
(cosign public keys, Notation certificates), and the repository's signature policy settings."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .models import repositories, repository_settings, repository_signers


@dataclass(frozen=True, slots=True)
class Signer:
    name: str
    kind: str  # "cosign" | "notation"
    pem: str
    created_at: float


def _signer(row: tuple[str, str, str, float]) -> Signer:
    return Signer(row[0], row[1], row[2], float(row[3]))


_COLUMNS = (
    repository_signers.c.name,
    repository_signers.c.kind,
    repository_signers.c.pem,
    repository_signers.c.created_at,
)


def signers(conn: Connection, repo_id: int) -> list[Signer]:
    rows = conn.execute(
        select(*_COLUMNS).where(repository_signers.c.repository_id == repo_id).order_by(repository_signers.c.name)
    )
    return [_signer(tuple(r)) for r in rows]


def signers_of(conn: Connection, repository: str) -> list[Signer]:
    """The signers of a repository by its name (none when it does not exist)."""
    rows = conn.execute(
        select(*_COLUMNS)
        .join(repositories, repositories.c.id == repository_signers.c.repository_id)
        .where(repositories.c.name == repository)
        .order_by(repository_signers.c.name)
    )
    return [_signer(tuple(r)) for r in rows]


def add_signer(conn: Connection, repo_id: int, name: str, kind: str, pem: str) -> Signer | None:
    """Add a signer; None when the repository already has one of that name."""
    now = time.time()
    try:
        with conn.begin_nested():
            conn.execute(
                insert(repository_signers).values(repository_id=repo_id, name=name, kind=kind, pem=pem, created_at=now)
            )
    except IntegrityError:
        return None
    return Signer(name, kind, pem, now)


def delete_signer(conn: Connection, repo_id: int, name: str) -> bool:
    res = conn.execute(
        delete(repository_signers).where(
            repository_signers.c.repository_id == repo_id, repository_signers.c.name == name
        )
    )
    return bool(res.rowcount)


def set_signature_policy(conn: Connection, repo_id: int, signed_only: bool, accepted: str) -> None:
    """Write (signed_only, accepted kinds as a comma list) of a repository, creating its settings row."""
    res = conn.execute(
        update(repository_settings)
        .where(repository_settings.c.repository_id == repo_id)
        .values(signed_only=signed_only, accepted_signatures=accepted)
    )
    if not res.rowcount:
        conn.execute(
            insert(repository_settings).values(
                repository_id=repo_id,
                visibility="private",
                short_description="",
                signed_only=signed_only,
                accepted_signatures=accepted,
            )
        )
