"""Background jobs: a queue in the metadata database, workers, cron schedules.

Register an action (name → ``async def handler(ctx: JobContext) -> summary``) on an
``ActionRegistry``; enqueue with ``JobQueue.enqueue``; ``JobSystem.run`` runs the workers and
the scheduler of a process (``dockyard serve`` when ``jobs.enabled``, ``dockyard worker``).
"""

from __future__ import annotations

from .queue import Job, JobLog, JobQueue
from .registry import Action, ActionRegistry, BadParameters, Handler, JobFailed, UnknownAction, builtin_actions
from .runner import Cancelled, JobContext, LeaseLost, Worker
from .schedules import BadCron, Schedule, ScheduleExists, Scheduler, check_cron, next_run
from .service import JobSystem, build_actions

__all__ = [
    "Action",
    "ActionRegistry",
    "BadParameters",
    "BadCron",
    "Cancelled",
    "Handler",
    "Job",
    "JobContext",
    "JobFailed",
    "JobLog",
    "JobQueue",
    "JobSystem",
    "LeaseLost",
    "Schedule",
    "ScheduleExists",
    "Scheduler",
    "UnknownAction",
    "Worker",
    "build_actions",
    "builtin_actions",
    "check_cron",
    "next_run",
]
