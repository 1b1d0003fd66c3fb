"""/jobs and /crons: the job queue and its cron schedules (administrators only).

As in DTR: ``POST /jobs`` runs an action now (202, the job), ``DELETE /jobs/{id}`` cancels
(a waiting job at once, a running one at its next checkpoint), ``/crons`` schedules actions.
Unlike DTR, cron expressions have 5 fields (no seconds), in UTC.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import Field

from ..jobs import BadCron, BadParameters, Job, JobLog, JobSystem, Schedule, ScheduleExists, UnknownAction
from .deps import Caller, User
from .errors import BadRequest, Conflict, NotFound, Unavailable
from .schemas import MAX_ROW_ID, Body, RowId, Schema, timestamp, utc

router = APIRouter(tags=["jobs"])

Status = Literal["waiting", "running", "done", "errored", "cancelled"]
NEXT_PAGE = "X-Next-Page-Start"


class JobIn(Body):
    action: str = Field(description="what to run, e.g. gc; GET /jobs/actions lists them")
    parameters: dict[str, Any] = Field(default_factory=dict, description="the action's parameters")
    max_attempts: int | None = Field(None, ge=1, le=100, description="default: the action's")


class Progress(Schema):
    done: int
    total: int | None = Field(description="None while unknown")


class JobOut(Schema):
    id: int
    action: str
    parameters: dict[str, Any]
    status: Status
    attempts: int = Field(description="attempts started so far (retries and takeovers included)")
    max_attempts: int
    retries_left: int
    worker_id: str | None = Field(description="the worker running it, or that ran it last")
    scheduled_at: datetime.datetime = Field(description="not run before this time")
    created_at: datetime.datetime
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    last_updated: datetime.datetime | None = Field(description="the last heartbeat of its worker")
    progress: Progress
    summary: Any = Field(None, description="what the action reported when done")
    error: str | None
    cancel_requested: bool
    schedule_id: int | None
    created_by: str


class JobList(Schema):
    jobs: list[JobOut]


class LogOut(Schema):
    id: int
    at: datetime.datetime
    level: str
    message: str


class LogList(Schema):
    logs: list[LogOut]


class ActionOut(Schema):
    name: str
    description: str
    max_attempts: int


class ActionList(Schema):
    actions: list[ActionOut]


class CronIn(Body):
    name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    action: str
    schedule: str = Field(description='5 fields, UTC: minute hour day-of-month month day-of-week, e.g. "0 3 * * *"')
    parameters: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class CronChange(Body):
    schedule: str | None = Field(None, description="a new expression (5 fields, UTC)")
    parameters: dict[str, Any] | None = Field(None, description="replaces the parameters")
    enabled: bool | None = Field(None, description="false: no jobs until enabled again")


class CronOut(Schema):
    id: int
    name: str
    action: str
    schedule: str
    parameters: dict[str, Any]
    enabled: bool
    next_run: datetime.datetime
    last_job_id: int | None
    created_at: datetime.datetime


class CronList(Schema):
    crons: list[CronOut]


def job_out(j: Job) -> JobOut:
    return JobOut(
        id=j.id,
        action=j.action,
        parameters=j.parameters,
        status=j.status,  # type: ignore[arg-type]
        attempts=j.attempts,
        max_attempts=j.max_attempts,
        retries_left=max(0, j.max_attempts - j.attempts) if j.status in ("waiting", "running") else 0,
        worker_id=j.worker,
        scheduled_at=utc(j.run_after),
        created_at=utc(j.created_at),
        started_at=timestamp(j.started_at),
        finished_at=timestamp(j.finished_at),
        last_updated=timestamp(j.heartbeat_at),
        progress=Progress(done=j.progress_done, total=j.progress_total),
        summary=j.summary,
        error=j.error,
        cancel_requested=j.cancel_requested,
        schedule_id=j.schedule_id,
        created_by=j.created_by,
    )


def _log_out(e: JobLog) -> LogOut:
    return LogOut(id=e.id, at=utc(e.at), level=e.level, message=e.message)


def _cron_out(s: Schedule) -> CronOut:
    return CronOut(
        id=s.id,
        name=s.name,
        action=s.action,
        schedule=s.cron,
        parameters=s.parameters,
        enabled=s.enabled,
        next_run=utc(s.next_run_at),
        last_job_id=s.last_job_id,
        created_at=utc(s.created_at),
    )


def _system(caller: Caller) -> JobSystem:
    """The process's job system (its queue and scheduler; its workers may be elsewhere)."""
    caller.require_admin()
    if caller.ctx.jobs is None:
        raise Unavailable("the job runner is not set up on this server")
    return caller.ctx.jobs


async def _job(system: JobSystem, job_id: int) -> Job:
    job = await system.queue.get(job_id)
    if job is None:
        raise NotFound(f"there is no job {job_id}")
    return job


@router.get("/jobs", response_model=JobList, summary="List jobs, newest first")
async def list_jobs(
    caller: User,
    response: Response,
    status_: Annotated[Status | None, Query(alias="status", description="only jobs in this state")] = None,
    action: Annotated[str | None, Query(max_length=64, description="only jobs of this action")] = None,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=1000, description="at most this many")] = 100,
    page_start: Annotated[
        int | None,
        Query(
            alias="pageStart", ge=1, le=MAX_ROW_ID, description="the last id of the previous page (X-Next-Page-Start)"
        ),
    ] = None,
) -> JobList:
    system = _system(caller)
    rows = await system.queue.list_jobs(status_, action, page_start, page_size + 1)
    if len(rows) > page_size:
        rows = rows[:page_size]
        response.headers[NEXT_PAGE] = str(rows[-1].id)
    return JobList(jobs=[job_out(j) for j in rows])


@router.post(
    "/jobs",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Run an action now",
    responses={503: {"description": "no job runner"}},
)
async def start_job(caller: User, body: JobIn) -> JobOut:
    """The job is queued (status waiting) and run by the next free worker."""
    system = _system(caller)
    try:
        job = await system.queue.enqueue(
            body.action, body.parameters, created_by=caller.name, max_attempts=body.max_attempts
        )
    except (UnknownAction, BadParameters) as e:
        raise BadRequest(str(e)) from None
    await caller.audit("job.start", f"job/{job.id}", {"action": job.action})
    return job_out(job)


@router.get("/jobs/actions", response_model=ActionList, summary="The actions jobs may run")
async def list_actions(caller: User) -> ActionList:
    system = _system(caller)
    actions = [system.actions.get(name) for name in system.actions.names()]
    return ActionList(
        actions=[ActionOut(name=a.name, description=a.description, max_attempts=a.max_attempts) for a in actions]
    )


@router.get("/jobs/{job_id}", response_model=JobOut, summary="Get a job")
async def get_job(caller: User, job_id: RowId) -> JobOut:
    return job_out(await _job(_system(caller), job_id))


@router.get("/jobs/{job_id}/logs", response_model=LogList, summary="A job's log, oldest first")
async def job_logs(
    caller: User,
    job_id: RowId,
    response: Response,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=10000, description="at most this many")] = 1000,
    page_start: Annotated[
        int | None, Query(alias="pageStart", ge=0, le=MAX_ROW_ID, description="only lines after this id")
    ] = None,
) -> LogList:
    system = _system(caller)
    await _job(system, job_id)
    rows = await system.queue.logs(job_id, page_start, page_size + 1)
    if len(rows) > page_size:
        rows = rows[:page_size]
        response.headers[NEXT_PAGE] = str(rows[-1].id)
    return LogList(logs=[_log_out(e) for e in rows])


@router.delete(
    "/jobs/{job_id}",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Cancel a job",
)
async def cancel_job(caller: User, job_id: RowId) -> JobOut:
    """A waiting job is cancelled at once; a running one gets ``cancelRequested`` and stops at
    its next checkpoint. A job that has ended is a 409."""
    system = _system(caller)
    before = await _job(system, job_id)
    if before.status in ("done", "errored", "cancelled"):
        raise Conflict(f"job {job_id} has already ended ({before.status})")
    job = await system.queue.cancel(job_id)
    assert job is not None
    await caller.audit("job.cancel", f"job/{job_id}")
    return job_out(job)


@router.get("/crons", response_model=CronList, summary="List cron schedules")
async def list_crons(caller: User) -> CronList:
    system = _system(caller)
    return CronList(crons=[_cron_out(s) for s in await system.scheduler.list_schedules()])


@router.post("/crons", response_model=CronOut, status_code=status.HTTP_201_CREATED, summary="Schedule an action")
async def create_cron(caller: User, body: CronIn) -> CronOut:
    system = _system(caller)
    try:
        row = await system.scheduler.create(body.name, body.action, body.schedule, body.parameters, body.enabled)
    except (BadCron, UnknownAction, BadParameters) as e:
        raise BadRequest(str(e)) from None
    except ScheduleExists as e:
        raise Conflict(str(e)) from None
    await caller.audit("cron.create", f"cron/{row.name}", {"action": row.action, "schedule": row.cron})
    return _cron_out(row)


@router.get("/crons/{name}", response_model=CronOut, summary="Get a cron schedule")
async def get_cron(caller: User, name: str) -> CronOut:
    row = await _system(caller).scheduler.get(name)
    if row is None:
        raise NotFound(f"there is no cron schedule {name}")
    return _cron_out(row)


@router.patch("/crons/{name}", response_model=CronOut, summary="Change a cron schedule")
async def change_cron(caller: User, name: str, body: CronChange) -> CronOut:
    """Only the fields given change. A new expression, or enabling, counts the next run from now."""
    system = _system(caller)
    try:
        row = await system.scheduler.update(name, cron=body.schedule, parameters=body.parameters, enabled=body.enabled)
    except (BadCron, BadParameters) as e:
        raise BadRequest(str(e)) from None
    if row is None:
        raise NotFound(f"there is no cron schedule {name}")
    await caller.audit("cron.change", f"cron/{name}", body.model_dump(exclude_none=True))
    return _cron_out(row)


@router.delete("/crons/{name}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a cron schedule")
async def delete_cron(caller: User, name: str) -> Response:
    """Jobs it already queued stay."""
    if not await _system(caller).scheduler.delete(name):
        raise NotFound(f"there is no cron schedule {name}")
    await caller.audit("cron.delete", f"cron/{name}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
