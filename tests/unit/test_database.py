"""Database.write_unsynced: committed like write, without the fsync, and the connection it
borrowed goes back to the pool synced again (SQLite here; PostgreSQL in test_postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection

from dockyard.metadata.db import Database

FULL = 2  # PRAGMA synchronous values
NORMAL = 1


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'm.db'}")
    database.write_sync(lambda conn: conn.exec_driver_sql("CREATE TABLE t (v INTEGER)"))
    yield database
    database.dispose()


def _synchronous(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


def test_unsynced_write_commits_relaxed_and_restores_full(db: Database) -> None:
    seen = db.write_unsynced_sync(
        lambda conn: (conn.exec_driver_sql("INSERT INTO t VALUES (1)"), _synchronous(conn))[1]
    )
    assert seen == NORMAL
    assert db.read_sync(lambda conn: conn.exec_driver_sql("SELECT v FROM t").scalars().all()) == [1]
    assert db.write_sync(_synchronous) == FULL  # the same pooled connection, synced again


def test_unsynced_write_that_fails_rolls_back_and_restores_full(db: Database) -> None:
    def fail(conn: Connection) -> None:
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        db.write_unsynced_sync(fail)
    assert db.read_sync(lambda conn: conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one()) == 0
    assert db.write_sync(_synchronous) == FULL
