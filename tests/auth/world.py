"""A populated registry for permission tests: users, an organization with teams and grants,
and repositories, written straight into the server's database before requests are made."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from dockyard.auth.accounts import AccountService
from dockyard.auth.audit import AuditLog
from dockyard.auth.passwords import Passwords
from dockyard.auth.ratelimit import FailureLimiter
from dockyard.metadata import accounts as q
from dockyard.metadata import queries
from dockyard.metadata.db import Database

PASSWORD = "correct-horse-battery"
USERS = ("alice", "bob", "carol", "dave")


def basic(user: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def offline_services(data_dir: Path) -> tuple[Database, AccountService]:
    """The server's database and an account service on it, for setting up a test world."""
    db = Database(f"sqlite:///{data_dir / 'db' / 'dockyard.db'}")
    return db, AccountService(db, AuditLog(db), Passwords(), FailureLimiter(100, 60), FailureLimiter(100, 60))


async def _populate(data_dir: Path) -> None:
    db, accounts = offline_services(data_dir)
    for user in USERS:
        await accounts.create_user("admin", user, PASSWORD)
    await accounts.create_org("alice", "acme")  # alice is in acme's owners team
    await accounts.create_team("alice", "acme", "devs")
    await accounts.create_team("alice", "acme", "readers")
    await accounts.add_member("alice", "acme", "devs", "bob")
    await accounts.add_member("alice", "acme", "readers", "carol")

    def repos(conn: object) -> None:
        app = queries.ensure_repository(conn, "acme/app")  # type: ignore[arg-type]
        pub = queries.ensure_repository(conn, "acme/pub")  # type: ignore[arg-type]
        queries.ensure_repository(conn, "alice/own")  # type: ignore[arg-type]
        q.set_repository_settings(conn, pub, visibility="public")  # type: ignore[arg-type]
        devs = q.get_team(conn, "acme", "devs")  # type: ignore[arg-type]
        readers = q.get_team(conn, "acme", "readers")  # type: ignore[arg-type]
        assert devs and readers
        q.set_repository_grant(conn, app, "read-write", team_id=devs.id)  # type: ignore[arg-type]
        q.set_repository_grant(conn, app, "read-only", team_id=readers.id)  # type: ignore[arg-type]

    await db.write(repos)
    db.dispose()


def populate(data_dir: Path) -> None:
    asyncio.run(_populate(data_dir))
