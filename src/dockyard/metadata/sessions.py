"""Statements for web UI sessions (table ``sessions``). Tokens arrive here already hashed."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from .models import accounts, sessions


@dataclass(frozen=True, slots=True)
class SessionRow:
    account_id: int
    account: str
    is_admin: bool
    is_active: bool
    csrf_token: str
    created_at: float
    last_seen_at: float
    expires_at: float


def create(
    conn: Connection, token_hash: str, account_id: int, csrf_token: str, now: float, expires_at: float, address: str
) -> None:
    conn.execute(
        insert(sessions).values(
            token_hash=token_hash,
            account_id=account_id,
            csrf_token=csrf_token,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
            address=address[:64],
        )
    )
    # Sessions that ended are swept as new ones begin: the table stays small without a job.
    conn.execute(delete(sessions).where(sessions.c.expires_at < now))


def get(conn: Connection, token_hash: str) -> SessionRow | None:
    q = (
        select(
            sessions.c.account_id,
            accounts.c.name,
            accounts.c.is_admin,
            accounts.c.is_active,
            sessions.c.csrf_token,
            sessions.c.created_at,
            sessions.c.last_seen_at,
            sessions.c.expires_at,
        )
        .select_from(sessions.join(accounts, accounts.c.id == sessions.c.account_id))
        .where(sessions.c.token_hash == token_hash)
    )
    r = conn.execute(q).first()
    if r is None:
        return None
    return SessionRow(int(r[0]), r[1], bool(r[2]), bool(r[3]), r[4], float(r[5]), float(r[6]), float(r[7]))


def touch(conn: Connection, token_hash: str, now: float) -> None:
    conn.execute(update(sessions).where(sessions.c.token_hash == token_hash).values(last_seen_at=now))


def remove(conn: Connection, token_hash: str) -> None:
    conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash))
