"""`dockyard worker` (job workers as their own process) and `dockyard jobs …` (the queue).

Both work on the data folder's database directly, like the operator verbs: no server needs
to run. Messages go to stderr, results to stdout (``--json`` for scripts).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from ..ca.authority import kek_for
from ..config import Settings
from ..jobs import BadParameters, Job, JobLog, JobSystem, UnknownAction, build_actions
from ..metadata import jobs as q
from ..metadata.db import Database
from ..ops._common import driver_for
from ..registry.services import Registry
from ..storage.driver import StorageDriver
from ..webhooks import WebhookService
from .ops import ConfigFile, DataDir, JsonFlag, _print_json, _settings

T = TypeVar("T")
err = Console(stderr=True)

app = typer.Typer(help="The job queue: list, start, cancel, follow jobs and read their logs.", no_args_is_help=True)


def _open(data_dir: Path, config: Path | None) -> tuple[Settings, Database]:
    settings = _settings(data_dir, config)
    db = Database(settings.effective_database_url)
    db.migrate()
    return settings, db


def _registry(settings: Settings, db: Database) -> tuple[Registry, WebhookService, StorageDriver]:
    """The registry the actions work on, with the webhooks its events go to."""
    driver = driver_for(settings)
    hooks = WebhookService(db, lambda: kek_for(settings.data_dir), settings.webhooks)
    return Registry.build(db, driver, settings.registry, events=hooks), hooks, driver


def _with_system(data_dir: Path, config: Path | None, work: Callable[[JobSystem], Awaitable[T]]) -> T:
    settings, db = _open(data_dir, config)
    registry, hooks, driver = _registry(settings, db)
    system = JobSystem.build(db, settings.jobs, build_actions(settings, registry, hooks), workers=0)

    async def run() -> T:
        try:
            return await work(system)
        finally:
            await driver.close()

    try:
        return asyncio.run(run())
    finally:
        db.dispose()


def _when(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def job_json(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "action": job.action,
        "parameters": job.parameters,
        "status": job.status,
        "attempts": job.attempts,
        "maxAttempts": job.max_attempts,
        "worker": job.worker,
        "createdAt": _when(job.created_at),
        "scheduledAt": _when(job.run_after),
        "startedAt": _when(job.started_at) or None,
        "finishedAt": _when(job.finished_at) or None,
        "progress": {"done": job.progress_done, "total": job.progress_total},
        "summary": job.summary,
        "error": job.error,
        "cancelRequested": job.cancel_requested,
        "createdBy": job.created_by,
    }


def _log_json(entry: JobLog) -> dict[str, Any]:
    return {"id": entry.id, "at": _when(entry.at), "level": entry.level, "message": entry.message}


def _missing(job_id: int) -> typer.Exit:
    err.print(Text.assemble(("error: ", "bold red"), f"there is no job {job_id}"))
    return typer.Exit(2)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``k=v`` pairs; a value that is JSON (a number, true, a list…) is taken as such."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--param")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def worker(
    data_dir: DataDir,
    config: ConfigFile = None,
    workers: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--workers", min=1, help="Workers in this process (default: jobs.workers)."),
    ] = None,
    poll_seconds: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--poll-seconds", min=0.01, help="Idle poll interval (default: jobs.poll_seconds)."),
    ] = None,
    lease_seconds: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--lease-seconds", min=0.1, help="Heartbeat lease (default: jobs.lease_seconds)."),
    ] = None,
) -> None:
    """Run job workers (and the cron scheduler) in this process until SIGTERM or Ctrl-C.
    It also sends webhook deliveries, as every server does (each is claimed once)."""
    settings, db = _open(data_dir, config)
    registry, hooks, driver = _registry(settings, db)
    system = JobSystem.build(
        db,
        settings.jobs,
        build_actions(settings, registry, hooks),
        workers=workers,
        lease_seconds=lease_seconds,
        poll_seconds=poll_seconds,
    )

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        names = ", ".join(w.name for w in system.workers)
        err.print(f"job workers running: {names}", highlight=False)
        delivering = asyncio.create_task(hooks.run())
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await system.run()
        finally:
            delivering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await delivering
            await driver.close()
        err.print("job workers stopped")

    try:
        asyncio.run(main())
    finally:
        db.dispose()


@app.command("list")
def list_jobs(
    data_dir: DataDir,
    config: ConfigFile = None,
    status: Annotated[Optional[str], typer.Option("--status", help=f"One of {', '.join(q.STATUSES)}.")] = None,  # noqa: UP045
    action: Annotated[Optional[str], typer.Option("--action", help="Only jobs of this action.")] = None,  # noqa: UP045
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Jobs, newest first."""
    if status is not None and status not in q.STATUSES:
        raise typer.BadParameter(f"expected one of {', '.join(q.STATUSES)}", param_hint="--status")
    rows = _with_system(data_dir, config, lambda s: s.queue.list_jobs(status, action, None, limit))
    if as_json:
        _print_json({"jobs": [job_json(j) for j in rows]})
        return
    table = Table(title="Jobs", title_justify="left")
    for column in ("id", "action", "status", "attempts", "progress", "created", "worker", "error"):
        table.add_column(column, overflow="fold")
    for j in rows:
        progress = f"{j.progress_done}/{j.progress_total}" if j.progress_total else str(j.progress_done or "")
        table.add_row(
            str(j.id),
            j.action,
            j.status,
            f"{j.attempts}/{j.max_attempts}",
            progress,
            _when(j.created_at),
            Text(j.worker or ""),
            Text(j.error or ""),
        )
    Console().print(table)


@app.command()
def start(
    action: Annotated[str, typer.Argument(help="The action, e.g. gc or sleep.")],
    data_dir: DataDir,
    config: ConfigFile = None,
    param: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--param", help="A parameter KEY=VALUE (JSON values are parsed), repeatable."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Queue a job now; a worker (of `dockyard serve` or `dockyard worker`) runs it."""
    parameters = parse_params(param or [])
    try:
        job = _with_system(data_dir, config, lambda s: s.queue.enqueue(action, parameters, created_by="cli"))
    except (UnknownAction, BadParameters) as e:
        err.print(Text.assemble(("error: ", "bold red"), str(e)))
        raise typer.Exit(2) from None
    if as_json:
        _print_json(job_json(job))
    else:
        err.print(f"queued job {job.id} ({job.action})", highlight=False)
        print(job.id)


@app.command()
def cancel(
    job_id: Annotated[int, typer.Argument(help="The job's id.")],
    data_dir: DataDir,
    config: ConfigFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Cancel a job: a waiting one at once, a running one at its next checkpoint."""
    job = _with_system(data_dir, config, lambda s: s.queue.cancel(job_id))
    if job is None:
        raise _missing(job_id)
    if as_json:
        _print_json(job_json(job))
    elif job.status == "cancelled":
        err.print(f"job {job_id} cancelled")
    elif job.status == "running":
        err.print(f"job {job_id} will stop at its next checkpoint")
    else:
        err.print(f"job {job_id} had already ended ({job.status})")


@app.command()
def logs(
    job_id: Annotated[int, typer.Argument(help="The job's id.")],
    data_dir: DataDir,
    config: ConfigFile = None,
    as_json: JsonFlag = False,
) -> None:
    """A job's log lines, oldest first."""

    async def read(system: JobSystem) -> tuple[Job | None, list[JobLog]]:
        return await system.queue.get(job_id), await system.queue.logs(job_id)

    job, lines = _with_system(data_dir, config, read)
    if job is None:
        raise _missing(job_id)
    if as_json:
        _print_json({"logs": [_log_json(e) for e in lines]})
        return
    for entry in lines:
        print(f"{_when(entry.at)} {entry.level:<7} {entry.message}")


@app.command()
def follow(
    job_id: Annotated[int, typer.Argument(help="The job's id.")],
    data_dir: DataDir,
    config: ConfigFile = None,
    interval: Annotated[float, typer.Option("--interval", min=0.05, help="Seconds between looks.")] = 0.5,
    as_json: JsonFlag = False,
) -> None:
    """Show a job's progress and log until it ends; exit 0 when done, 1 when errored or cancelled."""

    async def watch(system: JobSystem) -> Job | None:
        job = await system.queue.get(job_id)
        if job is None:
            return None
        after: int | None = None
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with RichProgress(*columns, console=err, transient=False, disable=as_json) as bar:
            task = bar.add_task(f"job {job_id} {job.action}", total=None)
            while True:
                for entry in await system.queue.logs(job_id, after):
                    after = entry.id
                    if not as_json:
                        bar.console.print(Text(f"{_when(entry.at)} {entry.level:<7} {entry.message}"))
                job = await system.queue.get(job_id)
                assert job is not None
                bar.update(
                    task,
                    completed=job.progress_done,
                    total=job.progress_total,
                    description=f"job {job_id} {job.action} {job.status}",
                )
                if job.status in q.FINISHED:
                    for entry in await system.queue.logs(job_id, after):
                        if not as_json:
                            bar.console.print(Text(f"{_when(entry.at)} {entry.level:<7} {entry.message}"))
                    return job
                await asyncio.sleep(interval)

    started = time.monotonic()
    job = _with_system(data_dir, config, watch)
    if job is None:
        raise _missing(job_id)
    if as_json:
        _print_json(job_json(job))
    else:
        err.print(f"job {job_id} {job.status} after {time.monotonic() - started:.1f} s", highlight=False)
        if job.error:
            err.print(Text.assemble(("error: ", "bold red"), job.error))
    raise typer.Exit(0 if job.status == "done" else 1)
