"""Tests of the job runner: queue, workers, schedules, API and CLI, on real databases.

Helpers shared by the modules: a migrated SQLite database in a folder, `dockyard worker`
processes, and waiting for a job to reach a state."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from dockyard.jobs import Job, JobQueue, builtin_actions
from dockyard.metadata import jobs as q
from dockyard.metadata.db import Database

T = TypeVar("T")


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir.absolute() / 'db' / 'dockyard.db'}"


def open_db(url: str, *, default_schedules: bool = False) -> Database:
    """Migrated; without the default schedules (upload-cleanup) unless asked, so that the
    only jobs are a test's own."""
    db = Database(url)
    db.migrate()
    if not default_schedules:
        db.write_sync(q.delete_schedule, "upload-cleanup")
    return db


def queue_for(db: Database, lease: float = 1.0, base: float = 0.1, cap: float = 1.0) -> JobQueue:
    return JobQueue(db, builtin_actions(), lease_seconds=lease, retry_base_seconds=base, retry_max_seconds=cap)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def wait_for(check: Callable[[], T | None], seconds: float = 30, what: str = "condition") -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def job_of(db: Database, job_id: int) -> Job:
    job = db.read_sync(q.get_job, job_id)
    assert job is not None
    return job


def log_lines(db: Database, job_id: int) -> list[str]:
    return [entry.message for entry in db.read_sync(q.logs, job_id, None, 10_000)]


def runs(db: Database, job_id: int) -> list[str]:
    """The "run N by WORKER" lines the sleep action writes at the start of each run."""
    return [line for line in log_lines(db, job_id) if line.startswith("run ")]


def start_worker(
    data_dir: Path, log_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A `dockyard worker` process on the data folder (short poll and lease unless given)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "dockyard", "worker", "--data-dir", str(data_dir)),
                *(args or ("--poll-seconds", "0.05", "--lease-seconds", "1")),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
