"""Cron schedules: enqueue a job of an action at each due time, once per cluster.

Expressions have 5 fields (minute hour day-of-month month day-of-week), in UTC, with
croniter's syntax (``*/15``, ``1-5``, ``MON-FRI``, ``@daily``…). Every process with a job
runner looks for due schedules; whoever moves ``next_run_at`` on from the due time it read
(a conditional UPDATE in the same transaction as the insert of the job) enqueues the job, so
a due time gives one job however many processes see it. Missed due times (nobody running)
give one job, not one per missed time.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from croniter import croniter
from sqlalchemy import Connection

from ..metadata import jobs as q
from ..metadata.db import Database
from .registry import ActionRegistry

log = logging.getLogger("dockyard.jobs")

Schedule = q.ScheduleRow


class BadCron(ValueError):
    """Not a 5-field cron expression; the message says why."""


class ScheduleExists(ValueError):
    pass


def check_cron(expression: str) -> str:
    """The expression, normalised (single spaces), or BadCron."""
    fields = expression.split()
    if not fields:
        raise BadCron("empty cron expression")
    if len(fields) != 1 and len(fields) != 5:
        raise BadCron(
            f"cron expression {expression!r} has {len(fields)} fields;"
            " expected 5: minute hour day-of-month month day-of-week"
        )
    if len(fields) == 1 and not fields[0].startswith("@"):
        raise BadCron(f"cron expression {expression!r}: expected 5 fields or an @name such as @daily")
    normal = " ".join(fields)
    try:
        croniter(normal, datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
        if not croniter.is_valid(normal):
            raise ValueError("invalid")
    except (ValueError, KeyError, TypeError) as e:
        raise BadCron(f"cron expression {expression!r} is not valid: {e}") from None
    return normal


def next_run(expression: str, after: float) -> float:
    """The first due time strictly after ``after`` (epoch seconds, UTC)."""
    start = datetime.datetime.fromtimestamp(after, datetime.UTC)
    following: float = croniter(check_cron(expression), start).get_next(float)
    return following


def _fire(conn: Connection, schedule: Schedule, following: float, now: float) -> int | None:
    if not q.advance_schedule(conn, schedule.id, schedule.next_run_at, following):
        return None  # another process enqueued this due time
    job_id = q.insert_job(
        conn,
        schedule.action,
        schedule.parameters,
        max_attempts=3,
        run_after=now,
        now=now,
        created_by=f"schedule:{schedule.name}",
        schedule_id=schedule.id,
    )
    q.set_last_job(conn, schedule.id, job_id)
    return job_id


class Scheduler:
    def __init__(
        self,
        db: Database,
        actions: ActionRegistry,
        *,
        poll_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
        on_enqueue: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.actions = actions
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.on_enqueue = on_enqueue

    async def create(
        self, name: str, action: str, cron: str, parameters: dict[str, Any] | None = None, enabled: bool = True
    ) -> Schedule:
        """BadCron, UnknownAction, BadParameters or ScheduleExists when it cannot be made."""
        normal = check_cron(cron)
        self.actions.get(action).check_parameters(dict(parameters or {}))
        now = self.clock()
        row = await self.db.write(
            q.insert_schedule, name, action, dict(parameters or {}), normal, enabled, next_run(normal, now), now
        )
        if row is None:
            raise ScheduleExists(f"a schedule named {name} already exists")
        return row

    async def update(
        self,
        name: str,
        *,
        cron: str | None = None,
        parameters: dict[str, Any] | None = None,
        enabled: bool | None = None,
    ) -> Schedule | None:
        """Change a schedule (BadCron, BadParameters); None when there is none of that name. A new expression,
        or enabling it, counts the next due time from now: missed times are not caught up."""
        current = await self.get(name)
        if current is None:
            return None
        changes: dict[str, Any] = {}
        if parameters is not None:
            if current.action in self.actions:
                self.actions.get(current.action).check_parameters(dict(parameters))
            changes["parameters"] = dict(parameters)
        if enabled is not None:
            changes["enabled"] = enabled
        if cron is not None:
            changes["cron"] = check_cron(cron)
        if cron is not None or (enabled and not current.enabled):
            changes["next_run_at"] = next_run(changes.get("cron", current.cron), self.clock())
        return await self.db.write(q.update_schedule, name, changes)

    async def get(self, name: str) -> Schedule | None:
        return await self.db.read(q.get_schedule, name)

    async def list_schedules(self) -> list[Schedule]:
        return await self.db.read(q.list_schedules)

    async def delete(self, name: str) -> bool:
        return await self.db.write(q.delete_schedule, name)

    async def tick(self) -> list[int]:
        """Enqueue a job for each schedule that is due; the ids of the jobs this process made."""
        now = self.clock()
        made: list[int] = []
        for schedule in await self.db.read(q.due_schedules, now):
            if schedule.action not in self.actions:
                log.warning("schedule %s: no handler for action %s here", schedule.name, schedule.action)
            job_id = await self.db.write(_fire, schedule, next_run(schedule.cron, now), now)
            if job_id is not None:
                log.info("schedule %s enqueued job %d (%s)", schedule.name, job_id, schedule.action)
                made.append(job_id)
        if made and self.on_enqueue is not None:
            self.on_enqueue()
        return made

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("checking schedules failed; will try again")
            await asyncio.sleep(self.poll_seconds)
