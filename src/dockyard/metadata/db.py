"""The metadata database: engine set-up, migrations, and the two ways to use it.

``read`` runs a function on a connection; for SQLite (WAL, readers never wait for
writers) it runs inline on the event loop, which is faster than a thread hop. ``write``
always runs in a worker thread inside one transaction (``BEGIN IMMEDIATE`` on SQLite,
so concurrent writers queue on the lock instead of failing to upgrade).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio.to_thread
from sqlalchemy import Connection, Engine, create_engine, event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from ..storage.mounts import is_network_filesystem
from . import models

T = TypeVar("T")
P = ParamSpec("P")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=QueuePool,
        pool_size=8,
        max_overflow=16,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")  # an acknowledged push survives power loss too
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Reads run without BEGIN: each statement is its own snapshot, and nothing waits.
        if conn.get_execution_options().get("dockyard_write", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                folder = os.path.dirname(os.path.abspath(parsed.database))
                os.makedirs(folder, exist_ok=True)
                if is_network_filesystem(folder):
                    raise ValueError(
                        f"the SQLite database folder {folder} is on a network filesystem, where SQLite's"
                        " locks are unreliable: keep db/ on a local disk (dockyard install --part db=...)"
                        " or use PostgreSQL (database_url)"
                    )
            self.engine = _sqlite_engine(url)
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        self._inline_reads = self.dialect == "sqlite"
        self._compiled: dict[int, tuple[Any, str, Any]] = {}
        self._reader: Any = None

    def _prepared(self, stmt: Any) -> tuple[str, Any]:
        """Compile a statement once; hot-path reads then skip SQLAlchemy's per-call work."""
        hit = self._compiled.get(id(stmt))
        if hit is None or hit[0] is not stmt:
            compiled = stmt.compile(dialect=self.engine.dialect)
            hit = (stmt, str(compiled), compiled.positiontup if compiled.positional else None)
            self._compiled[id(stmt)] = hit
        return hit[1], hit[2]

    def _fetch_sync(self, stmt: Any, params: dict[str, Any], many: bool) -> Any:
        sql, order = self._prepared(stmt)
        args = tuple(params[k] for k in order) if order is not None else params

        def run(cur: Any) -> Any:
            cur.execute(sql, args)
            if many:
                return [tuple(r) for r in cur.fetchall()]
            row = cur.fetchone()
            return tuple(row) if row is not None else None

        if self._inline_reads:
            # One raw connection used only from the event loop thread, never concurrently.
            if self._reader is None:
                self._reader = self.engine.raw_connection()
            cur = self._reader.cursor()
            try:
                return run(cur)
            finally:
                cur.close()
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            out = run(cur)
            cur.close()
            raw.commit()
            return out
        finally:
            raw.close()

    def _fetch_one_sync(self, stmt: Any, params: dict[str, Any]) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._fetch_sync(stmt, params, many=False)
        return row

    async def fetch_one(self, stmt: Any, **params: Any) -> tuple[Any, ...] | None:
        """One row of a statement built with bindparam()s, on the fast path."""
        if self._inline_reads:
            return self._fetch_one_sync(stmt, params)
        return await anyio.to_thread.run_sync(self._fetch_one_sync, stmt, params)

    async def fetch_all(self, stmt: Any, **params: Any) -> list[tuple[Any, ...]]:
        """Every row of a statement built with bindparam()s, on the fast path."""
        if self._inline_reads:
            rows: list[tuple[Any, ...]] = self._fetch_sync(stmt, params, many=True)
            return rows
        result: list[tuple[Any, ...]] = await anyio.to_thread.run_sync(self._fetch_sync, stmt, params, True)
        return result

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def read_sync(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self.engine.connect() as conn:
            return fn(conn, *args, **kwargs)

    def write_sync(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self.engine.connect().execution_options(dockyard_write=True) as conn, conn.begin():
            return fn(conn, *args, **kwargs)

    def write_unsynced_sync(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``write_sync`` without waiting for the disk: the transaction survives a crash of this
        process, and is on disk with the next synced commit, but an OS crash or power loss before
        that may undo it. Only for rows that can be rebuilt from elsewhere."""
        with self.engine.connect().execution_options(dockyard_write=True) as conn:
            raw = conn.connection.driver_connection if self.dialect == "sqlite" else None
            if raw is not None:
                raw.execute("PRAGMA synchronous=NORMAL")  # WAL: no fsync at commit
            try:
                with conn.begin():
                    if self.dialect == "postgresql":
                        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                    return fn(conn, *args, **kwargs)
            finally:
                if raw is not None:
                    raw.execute("PRAGMA synchronous=FULL")

    async def read(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._inline_reads:
            return self.read_sync(fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(lambda: self.read_sync(fn, *args, **kwargs))

    async def write(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await anyio.to_thread.run_sync(lambda: self.write_sync(fn, *args, **kwargs))

    async def write_unsynced(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await anyio.to_thread.run_sync(lambda: self.write_unsynced_sync(fn, *args, **kwargs))

    def dispose(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self.engine.dispose()


def insert_ignore(conn: Connection, table: Any, values: dict[str, Any]) -> None:
    """INSERT that does nothing when the primary/unique key already exists."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).values(**values).on_conflict_do_nothing())
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).values(**values).on_conflict_do_nothing())
    else:
        conn.execute(insert(table).prefix_with("IGNORE").values(**values))


def upsert(
    conn: Connection, table: Any, values: dict[str, Any], keys: tuple[str, ...], update: tuple[str, ...]
) -> None:
    """INSERT, or UPDATE the given columns when the key already exists."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(conn.dialect.name)
    stmt = dialect_insert(table).values(**values)
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_={c: values[c] for c in update}))


__all__ = ["Database", "insert_ignore", "models", "upsert"]
