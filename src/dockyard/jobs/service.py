"""The job runner of one process: a queue, its workers and the scheduler, from settings."""

from __future__ import annotations

import asyncio
import contextlib

from ..config import JobsSettings, Settings
from ..metadata.db import Database
from ..registry.services import Registry
from ..webhooks import WebhookService
from .actions import register_registry_actions
from .queue import JobQueue
from .registry import ActionRegistry, builtin_actions
from .runner import Worker
from .schedules import Scheduler


def build_actions(settings: Settings, registry: Registry, events: WebhookService | None) -> ActionRegistry:
    """The actions of every process that runs jobs (``dockyard serve``, ``dockyard worker``)
    and the ones ``dockyard jobs start`` accepts: the self tests and the registry's own."""
    actions = builtin_actions()
    register_registry_actions(actions, registry, events, settings)
    return actions


class JobSystem:
    def __init__(self, queue: JobQueue, scheduler: Scheduler, workers: list[Worker]) -> None:
        self.queue = queue
        self.scheduler = scheduler
        self.workers = workers
        queue.on_enqueue(self.wake)
        scheduler.on_enqueue = self.wake

    @classmethod
    def build(
        cls,
        db: Database,
        settings: JobsSettings,
        actions: ActionRegistry,
        *,
        workers: int | None = None,
        lease_seconds: float | None = None,
        poll_seconds: float | None = None,
    ) -> JobSystem:
        """``workers`` (default: settings.workers) may be 0: a queue and scheduler only."""
        queue = JobQueue(
            db,
            actions,
            lease_seconds=lease_seconds or settings.lease_seconds,
            retry_base_seconds=settings.retry_base_seconds,
            retry_max_seconds=settings.retry_max_seconds,
        )
        poll = poll_seconds or settings.poll_seconds
        count = settings.workers if workers is None else workers
        return cls(
            queue,
            Scheduler(db, actions, poll_seconds=poll),
            [Worker(queue, poll_seconds=poll) for _ in range(count)],
        )

    @property
    def actions(self) -> ActionRegistry:
        return self.queue.actions

    def wake(self) -> None:
        for worker in self.workers:
            worker.wake()

    async def run(self) -> None:
        """Run the workers and the scheduler until cancelled; running jobs are given back."""
        tasks = [asyncio.create_task(w.run()) for w in self.workers]
        tasks.append(asyncio.create_task(self.scheduler.run()))
        try:
            await asyncio.wait(tasks)  # unlike gather, leaves the tasks to be cancelled once, below
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
