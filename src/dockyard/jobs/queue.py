"""The job queue in the metadata database: enqueue, claim, heartbeat, finish, fail, cancel.

Claims are atomic across processes and replicas: on SQLite the whole claim runs in one
``BEGIN IMMEDIATE`` transaction; on PostgreSQL the candidate row is locked with
``FOR UPDATE SKIP LOCKED`` and taken with a conditional UPDATE. A worker keeps its job by
refreshing ``heartbeat_at``; a running job whose heartbeat is older than the lease is
taken over by another worker, and the lost attempt counts. A failed attempt is retried
after ``retry_base * 2**(attempt-1)`` seconds (at most ``retry_max``) while attempts are left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..metadata import jobs as q
from ..metadata.db import Database
from .registry import ActionRegistry

Job = q.JobRow
JobLog = q.LogRow


class JobQueue:
    def __init__(
        self,
        db: Database,
        actions: ActionRegistry,
        *,
        lease_seconds: float = 30,
        retry_base_seconds: float = 10,
        retry_max_seconds: float = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.actions = actions
        self.lease_seconds = lease_seconds
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.clock = clock
        self._listeners: list[Callable[[], None]] = []

    def on_enqueue(self, listener: Callable[[], None]) -> None:
        """Called after each enqueue in this process (wakes idle workers at once)."""
        self._listeners.append(listener)

    async def enqueue(
        self,
        action: str,
        parameters: dict[str, Any] | None = None,
        *,
        created_by: str = "system",
        delay_seconds: float = 0,
        max_attempts: int | None = None,
        schedule_id: int | None = None,
    ) -> Job:
        """Queue a job; ``UnknownAction`` for an action without a handler, ``BadParameters``
        for parameters it does not take."""
        known = self.actions.get(action)
        known.check_parameters(dict(parameters or {}))
        now = self.clock()
        job_id = await self.db.write(
            q.insert_job,
            action,
            dict(parameters or {}),
            max_attempts=max_attempts or known.max_attempts,
            run_after=now + delay_seconds,
            now=now,
            created_by=created_by,
            schedule_id=schedule_id,
        )
        for listener in self._listeners:
            listener()
        job = await self.get(job_id)
        assert job is not None
        return job

    async def claim(self, worker: str) -> Job | None:
        return await self.db.write(q.claim, worker, self.clock(), self.lease_seconds)

    async def heartbeat(self, job_id: int, worker: str) -> bool | None:
        """None when the job is no longer this worker's; else whether cancel was requested."""
        return await self.db.write(q.heartbeat, job_id, worker, self.clock())

    async def finish(self, job_id: int, worker: str, summary: Any) -> bool:
        return await self.db.write(q.finish, job_id, worker, summary, self.clock())

    async def fail(self, job_id: int, worker: str, error: str, *, final: bool = False) -> Job | None:
        """``final``: no retry (another attempt would fail the same way)."""
        return await self.db.write(
            q.fail, job_id, worker, error, self.clock(), self.retry_base_seconds, self.retry_max_seconds, final
        )

    async def mark_cancelled(self, job_id: int, worker: str) -> bool:
        return await self.db.write(q.mark_cancelled, job_id, worker, self.clock())

    async def release(self, job_id: int, worker: str) -> bool:
        return await self.db.write(q.release, job_id, worker, self.clock())

    async def cancel(self, job_id: int) -> Job | None:
        """Cancel a waiting job at once, ask a running one to stop; None if there is no such job."""
        return await self.db.write(q.request_cancel, job_id, self.clock())

    async def progress(self, job_id: int, worker: str, done: int, total: int | None) -> None:
        await self.db.write(q.set_progress, job_id, worker, done, total)

    async def log(self, job_id: int, message: str, level: str = "info") -> None:
        await self.db.write(q.add_log, job_id, level, message, self.clock())

    async def get(self, job_id: int) -> Job | None:
        return await self.db.read(q.get_job, job_id)

    async def list_jobs(
        self, status: str | None = None, action: str | None = None, before_id: int | None = None, limit: int = 100
    ) -> list[Job]:
        return await self.db.read(q.list_jobs, status, action, before_id, limit)

    async def logs(self, job_id: int, after_id: int | None = None, limit: int = 1000) -> list[JobLog]:
        return await self.db.read(q.logs, job_id, after_id, limit)
