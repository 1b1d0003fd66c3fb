"""A throw-away PostgreSQL cluster on 127.0.0.1, in a folder the postgres user can enter:
durable as in production for the benchmarks (fsync and synchronous_commit on), or with fsync
off for the tests (tests/integration/test_postgres.py), which only need its SQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .servers import LOOPBACK, free_port

PG_BIN = Path("/usr/lib/postgresql")


def _tool(name: str) -> str:
    versions = sorted(PG_BIN.glob("*/bin/" + name))
    if not versions:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian package postgresql)")
    return str(versions[-1])


def _as_postgres(*args: str, stdin: str | None = None) -> None:
    # PostgreSQL refuses to run as root; the Debian package makes the postgres user.
    cmd = list(args) if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *args]
    subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True, timeout=120)


@dataclass
class Postgres:
    base: Path
    port: int

    @classmethod
    def start(cls, fsync: bool = True) -> Postgres:
        # Outside pytest's and the bench's tmp trees: the postgres user cannot enter root's folders.
        base = Path(tempfile.mkdtemp(prefix="dockyard-pg-"))
        if os.geteuid() == 0:
            shutil.chown(base, "postgres")
        pg = cls(base, free_port())
        _as_postgres(_tool("initdb"), "-D", str(base / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-c listen_addresses={LOOPBACK} -p {pg.port} -k {base}" + ("" if fsync else " -c fsync=off")
        log = str(base / "pg.log")
        _as_postgres(_tool("pg_ctl"), "-D", str(base / "data"), "-w", "-l", log, "-o", options, "start")
        return pg

    def create_database(self, name: str, schema: str = "") -> str:
        """A new database (and ``schema`` run in it); its URL as ``postgres://`` (libpq / lib/pq)."""
        _as_postgres(_tool("createdb"), "-h", LOOPBACK, "-p", str(self.port), "-U", "postgres", name)
        if schema:
            psql = [_tool("psql"), "-h", LOOPBACK, "-p", str(self.port), "-U", "postgres", "-v", "ON_ERROR_STOP=1"]
            _as_postgres(*psql, "-d", name, stdin=schema)
        return f"postgres://postgres@{LOOPBACK}:{self.port}/{name}?sslmode=disable"

    def create_dockyard_database(self, name: str) -> str:
        """A new database for Dockyard; its URL as Dockyard's ``database_url`` takes it (SQLAlchemy)."""
        url = self.create_database(name).split("?", 1)[0]
        return url.replace("postgres://", "postgresql+psycopg://", 1)

    def stop(self) -> None:
        try:
            _as_postgres(_tool("pg_ctl"), "-D", str(self.base / "data"), "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
