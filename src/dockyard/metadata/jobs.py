"""Statements for jobs, their logs and schedules (see the tables in ``models``).

Every function takes a Connection; ``Database.write`` runs writers in one transaction
(``BEGIN IMMEDIATE`` on SQLite, so a claim is atomic there; PostgreSQL locks the chosen
row with ``FOR UPDATE SKIP LOCKED`` so concurrent claimers pass over it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from .models import job_logs, jobs, schedules

STATUSES = ("waiting", "running", "done", "errored", "cancelled")
FINISHED = ("done", "errored", "cancelled")


@dataclass(frozen=True, slots=True)
class JobRow:
    id: int
    action: str
    parameters: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    run_after: float
    worker: str | None
    heartbeat_at: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    progress_done: int
    progress_total: int | None
    summary: Any
    error: str | None
    cancel_requested: bool
    schedule_id: int | None
    created_by: str


@dataclass(frozen=True, slots=True)
class LogRow:
    id: int
    job_id: int
    at: float
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    id: int
    name: str
    action: str
    parameters: dict[str, Any]
    cron: str
    enabled: bool
    next_run_at: float
    last_job_id: int | None
    created_at: float


_job_cols = (
    jobs.c.id,
    jobs.c.action,
    jobs.c.parameters,
    jobs.c.status,
    jobs.c.attempts,
    jobs.c.max_attempts,
    jobs.c.run_after,
    jobs.c.worker,
    jobs.c.heartbeat_at,
    jobs.c.created_at,
    jobs.c.started_at,
    jobs.c.finished_at,
    jobs.c.progress_done,
    jobs.c.progress_total,
    jobs.c.summary,
    jobs.c.error,
    jobs.c.cancel_requested,
    jobs.c.schedule_id,
    jobs.c.created_by,
)


def _job(row: Any) -> JobRow:
    return JobRow(
        id=int(row[0]),
        action=row[1],
        parameters=json.loads(row[2]),
        status=row[3],
        attempts=int(row[4]),
        max_attempts=int(row[5]),
        run_after=float(row[6]),
        worker=row[7],
        heartbeat_at=row[8],
        created_at=float(row[9]),
        started_at=row[10],
        finished_at=row[11],
        progress_done=int(row[12]),
        progress_total=None if row[13] is None else int(row[13]),
        summary=None if row[14] is None else json.loads(row[14]),
        error=row[15],
        cancel_requested=bool(row[16]),
        schedule_id=row[17],
        created_by=row[18],
    )


_schedule_cols = (
    schedules.c.id,
    schedules.c.name,
    schedules.c.action,
    schedules.c.parameters,
    schedules.c.cron,
    schedules.c.enabled,
    schedules.c.next_run_at,
    schedules.c.last_job_id,
    schedules.c.created_at,
)


def _schedule(row: Any) -> ScheduleRow:
    return ScheduleRow(
        int(row[0]), row[1], row[2], json.loads(row[3]), row[4], bool(row[5]), float(row[6]), row[7], float(row[8])
    )


# --- jobs ----------------------------------------------------------------------------------


def insert_job(
    conn: Connection,
    action: str,
    parameters: dict[str, Any],
    *,
    max_attempts: int,
    run_after: float,
    now: float,
    created_by: str,
    schedule_id: int | None = None,
) -> int:
    result = conn.execute(
        insert(jobs)
        .values(
            action=action,
            parameters=json.dumps(parameters, sort_keys=True),
            status="waiting",
            attempts=0,
            max_attempts=max_attempts,
            run_after=run_after,
            created_at=now,
            progress_done=0,
            cancel_requested=False,
            schedule_id=schedule_id,
            created_by=created_by,
        )
        .returning(jobs.c.id)
    )
    return int(result.scalar_one())


def get_job(conn: Connection, job_id: int) -> JobRow | None:
    row = conn.execute(select(*_job_cols).where(jobs.c.id == job_id)).first()
    return None if row is None else _job(row)


def list_jobs(
    conn: Connection, status: str | None, action: str | None, before_id: int | None, limit: int
) -> list[JobRow]:
    """Newest first; ``before_id`` is the last id of the previous page."""
    stmt = select(*_job_cols).order_by(jobs.c.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(jobs.c.status == status)
    if action is not None:
        stmt = stmt.where(jobs.c.action == action)
    if before_id is not None:
        stmt = stmt.where(jobs.c.id < before_id)
    return [_job(r) for r in conn.execute(stmt)]


def _claimable(now: float, lease: float) -> Any:
    return or_(
        and_(jobs.c.status == "waiting", jobs.c.run_after <= now),
        and_(jobs.c.status == "running", jobs.c.heartbeat_at < now - lease),
    )


def claim(conn: Connection, worker: str, now: float, lease: float) -> JobRow | None:
    """Take the next due job for ``worker``: a waiting job whose time has come, or a running
    one whose worker stopped heartbeating (the lost attempt counts). Jobs taken over with no
    attempts left become errored, cancelled ones cancelled, and the search goes on."""
    for _ in range(100):
        stmt = (
            select(
                jobs.c.id, jobs.c.status, jobs.c.attempts, jobs.c.max_attempts, jobs.c.cancel_requested, jobs.c.worker
            )
            .where(_claimable(now, lease))
            .order_by(jobs.c.run_after, jobs.c.id)
            .limit(1)
        )
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        row = conn.execute(stmt).first()
        if row is None:
            return None
        job_id, status, attempts, max_attempts, cancel_requested, previous = row
        guard = and_(jobs.c.id == job_id, _claimable(now, lease))
        if status == "running":
            lost = f"worker {previous} stopped heartbeating during attempt {attempts}"
            if cancel_requested or attempts >= max_attempts:
                final = "cancelled" if cancel_requested else "errored"
                conn.execute(
                    update(jobs)
                    .where(guard)
                    .values(status=final, finished_at=now, error=None if cancel_requested else lost)
                )
                add_log(conn, job_id, "error", f"{lost}; job {final}", now)
                continue
            add_log(conn, job_id, "warning", f"{lost}; taken over by {worker}", now)
        done = conn.execute(
            update(jobs)
            .where(guard)
            .values(
                status="running",
                worker=worker,
                heartbeat_at=now,
                started_at=func.coalesce(jobs.c.started_at, now),
                attempts=jobs.c.attempts + 1,
            )
        )
        if done.rowcount == 1:
            return get_job(conn, job_id)
    return None


def heartbeat(conn: Connection, job_id: int, worker: str, now: float) -> bool | None:
    """Refresh the lease; None when the job is no longer this worker's, else whether a
    cancel was requested."""
    owned = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.worker == worker, jobs.c.status == "running")
        .values(heartbeat_at=now)
    )
    if owned.rowcount != 1:
        return None
    return bool(conn.execute(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar_one())


def _mine(job_id: int, worker: str) -> Any:
    return and_(jobs.c.id == job_id, jobs.c.worker == worker, jobs.c.status == "running")


def finish(conn: Connection, job_id: int, worker: str, summary: Any, now: float) -> bool:
    done = conn.execute(
        update(jobs)
        .where(_mine(job_id, worker))
        .values(status="done", finished_at=now, summary=json.dumps(summary), error=None)
    )
    if done.rowcount == 1:
        add_log(conn, job_id, "info", "done", now)
    return done.rowcount == 1


def fail(
    conn: Connection, job_id: int, worker: str, error: str, now: float, base: float, cap: float, final: bool = False
) -> JobRow | None:
    """Record a failed attempt: back to waiting after an exponential backoff while attempts
    are left (and the failure is not ``final``), else errored. None when the job was no
    longer this worker's."""
    row = conn.execute(select(jobs.c.attempts, jobs.c.max_attempts).where(_mine(job_id, worker))).first()
    if row is None:
        return None
    attempts, max_attempts = int(row[0]), int(row[1])
    if attempts < max_attempts and not final:
        delay = min(cap, base * 2 ** (attempts - 1))
        values: dict[str, Any] = {"status": "waiting", "run_after": now + delay, "worker": None, "heartbeat_at": None}
        add_log(
            conn, job_id, "error", f"attempt {attempts} of {max_attempts} failed: {error}; retry in {delay:g} s", now
        )
    else:
        values = {"status": "errored", "finished_at": now}
        add_log(conn, job_id, "error", f"attempt {attempts} of {max_attempts} failed: {error}; giving up", now)
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(error=error, **values))
    return get_job(conn, job_id)


def mark_cancelled(conn: Connection, job_id: int, worker: str, now: float) -> bool:
    done = conn.execute(update(jobs).where(_mine(job_id, worker)).values(status="cancelled", finished_at=now))
    if done.rowcount == 1:
        add_log(conn, job_id, "info", "cancelled", now)
    return done.rowcount == 1


def release(conn: Connection, job_id: int, worker: str, now: float) -> bool:
    """Give a running job back (its worker is shutting down): waiting at once, and the
    interrupted attempt is not counted."""
    done = conn.execute(
        update(jobs)
        .where(_mine(job_id, worker))
        .values(status="waiting", worker=None, heartbeat_at=None, run_after=now, attempts=jobs.c.attempts - 1)
    )
    if done.rowcount == 1:
        add_log(conn, job_id, "warning", f"worker {worker} stopped; job given back", now)
    return done.rowcount == 1


def request_cancel(conn: Connection, job_id: int, now: float) -> JobRow | None:
    """A waiting job is cancelled at once; a running one is asked to stop at its next checkpoint."""
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == "waiting")
        .values(status="cancelled", finished_at=now, cancel_requested=True)
    )
    conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.status == "running").values(cancel_requested=True))
    return get_job(conn, job_id)


def set_progress(conn: Connection, job_id: int, worker: str, done: int, total: int | None) -> None:
    conn.execute(update(jobs).where(_mine(job_id, worker)).values(progress_done=done, progress_total=total))


def add_log(conn: Connection, job_id: int, level: str, message: str, now: float) -> None:
    conn.execute(insert(job_logs).values(job_id=job_id, at=now, level=level, message=message))


def logs(conn: Connection, job_id: int, after_id: int | None, limit: int) -> list[LogRow]:
    stmt = (
        select(job_logs.c.id, job_logs.c.job_id, job_logs.c.at, job_logs.c.level, job_logs.c.message)
        .where(job_logs.c.job_id == job_id)
        .order_by(job_logs.c.id)
        .limit(limit)
    )
    if after_id is not None:
        stmt = stmt.where(job_logs.c.id > after_id)
    return [LogRow(int(r[0]), int(r[1]), float(r[2]), r[3], r[4]) for r in conn.execute(stmt)]


# --- schedules -----------------------------------------------------------------------------


def insert_schedule(
    conn: Connection,
    name: str,
    action: str,
    parameters: dict[str, Any],
    cron: str,
    enabled: bool,
    next_run_at: float,
    now: float,
) -> ScheduleRow | None:
    """None when the name is taken."""
    if conn.execute(select(schedules.c.id).where(schedules.c.name == name)).first() is not None:
        return None
    conn.execute(
        insert(schedules).values(
            name=name,
            action=action,
            parameters=json.dumps(parameters, sort_keys=True),
            cron=cron,
            enabled=enabled,
            next_run_at=next_run_at,
            created_at=now,
        )
    )
    return get_schedule(conn, name)


def get_schedule(conn: Connection, name: str) -> ScheduleRow | None:
    row = conn.execute(select(*_schedule_cols).where(schedules.c.name == name)).first()
    return None if row is None else _schedule(row)


def list_schedules(conn: Connection) -> list[ScheduleRow]:
    return [_schedule(r) for r in conn.execute(select(*_schedule_cols).order_by(schedules.c.name))]


def update_schedule(conn: Connection, name: str, changes: dict[str, Any]) -> ScheduleRow | None:
    """Set some of cron, parameters, enabled, next_run_at; None when there is no such schedule."""
    values = dict(changes)
    if "parameters" in values:
        values["parameters"] = json.dumps(values["parameters"], sort_keys=True)
    if values and conn.execute(update(schedules).where(schedules.c.name == name).values(**values)).rowcount != 1:
        return None
    return get_schedule(conn, name)


def delete_schedule(conn: Connection, name: str) -> bool:
    return conn.execute(delete(schedules).where(schedules.c.name == name)).rowcount == 1


def due_schedules(conn: Connection, now: float) -> list[ScheduleRow]:
    stmt = select(*_schedule_cols).where(schedules.c.enabled.is_(True), schedules.c.next_run_at <= now)
    return [_schedule(r) for r in conn.execute(stmt.order_by(schedules.c.next_run_at))]


def advance_schedule(conn: Connection, schedule_id: int, expected: float, following: float) -> bool:
    """Move next_run_at from ``expected`` to ``following``; False if another process did first."""
    moved = conn.execute(
        update(schedules)
        .where(schedules.c.id == schedule_id, schedules.c.next_run_at == expected)
        .values(next_run_at=following)
    )
    return moved.rowcount == 1


def set_last_job(conn: Connection, schedule_id: int, job_id: int) -> None:
    conn.execute(update(schedules).where(schedules.c.id == schedule_id).values(last_job_id=job_id))
