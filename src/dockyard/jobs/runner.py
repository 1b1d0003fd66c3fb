"""Workers: claim a job, run its action's handler, record the outcome.

A worker runs one job at a time. While a handler runs, the worker refreshes the job's
heartbeat every third of the lease, so a slow handler keeps its job; a handler should still
call ``ctx.checkpoint()`` between units of work, which refreshes the heartbeat and raises
``Cancelled`` once a cancel was requested. A worker that is stopped (task cancelled)
interrupts its handler and gives the job back at once, without counting the attempt; a
worker that dies leaves the job to be taken over when its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import Any

from .queue import Job, JobQueue
from .registry import BadParameters, JobFailed, UnknownAction

log = logging.getLogger("dockyard.jobs")

PROGRESS_EVERY_SECONDS = 0.5


class Cancelled(Exception):
    """Raised by ``JobContext.checkpoint`` when a cancel was requested: let it propagate."""


class LeaseLost(Exception):
    """The job was taken over by another worker (this one missed its heartbeats)."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobContext:
    """What a handler gets: the job's parameters, and ways to report and to be stopped."""

    def __init__(self, queue: JobQueue, job: Job, worker: str) -> None:
        self.queue = queue
        self.job = job
        self.worker = worker
        self.cancel_requested = job.cancel_requested
        self.lost = False
        self._last_beat = time.monotonic()
        self._last_progress = 0.0

    @property
    def id(self) -> int:
        return self.job.id

    @property
    def action(self) -> str:
        return self.job.action

    @property
    def parameters(self) -> dict[str, Any]:
        return self.job.parameters

    @property
    def attempt(self) -> int:
        """1 for the first run, 2 for the first retry (or takeover), …"""
        return self.job.attempts

    async def log(self, message: str, level: str = "info") -> None:
        """A line in the job's log (``dockyard jobs logs``, ``GET /api/v0/jobs/{id}/logs``)."""
        await self.queue.log(self.job.id, message, level)

    async def progress(self, done: int, total: int | None = None) -> None:
        """Units done out of ``total`` (None: unknown); written at most twice a second."""
        now = time.monotonic()
        if done == total or now - self._last_progress >= PROGRESS_EVERY_SECONDS:
            self._last_progress = now
            await self.queue.progress(self.job.id, self.worker, done, total)

    async def checkpoint(self) -> None:
        """Refresh the heartbeat (now and then); raise ``Cancelled`` if a cancel was requested."""
        if time.monotonic() - self._last_beat >= min(1.0, self.queue.lease_seconds / 6):
            await self.beat()
        if self.lost:
            raise LeaseLost(f"job {self.job.id} was taken over by another worker")
        if self.cancel_requested:
            raise Cancelled(f"job {self.job.id} was cancelled")

    async def beat(self) -> None:
        self._last_beat = time.monotonic()
        state = await self.queue.heartbeat(self.job.id, self.worker)
        if state is None:
            self.lost = True
        else:
            self.cancel_requested = self.cancel_requested or state


class Worker:
    def __init__(self, queue: JobQueue, *, name: str | None = None, poll_seconds: float = 1.0) -> None:
        self.queue = queue
        self.name = name or worker_name()
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for work now (from the worker's own event loop)."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and run jobs until cancelled."""
        log.info("job worker %s started", self.name)
        try:
            while True:
                if not await self.run_once():
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        finally:
            log.info("job worker %s stopped", self.name)

    async def run_once(self) -> bool:
        """Claim one job and run it; False when none was due."""
        try:
            job = await self.queue.claim(self.name)
        except Exception:
            log.exception("claiming a job failed; will try again")
            return False
        if job is None:
            return False
        await self.execute(job)
        return True

    async def execute(self, job: Job) -> None:
        ctx = JobContext(self.queue, job, self.name)
        try:
            action = self.queue.actions.get(job.action)
        except UnknownAction as e:
            await self.queue.fail(job.id, self.name, f"{e} in worker {self.name}")
            return
        task = asyncio.create_task(action.handler(ctx))
        beat = asyncio.create_task(self._heartbeat(ctx, task))
        try:
            summary = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # the worker is stopping
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                current.uncancel()  # let the release through, then stop as asked
                try:
                    await self.queue.release(job.id, self.name)
                finally:
                    current.cancel()
                raise
            await ctx.log(f"worker {self.name} lost the job to another worker", "warning")
        except Cancelled:
            await self.queue.mark_cancelled(job.id, self.name)
        except LeaseLost:
            await ctx.log(f"worker {self.name} lost the job to another worker", "warning")
        except Exception as e:
            message = str(e) if isinstance(e, JobFailed) else f"{type(e).__name__}: {e}"
            if not isinstance(e, JobFailed):
                log.exception("job %d (%s) failed", job.id, job.action)
            await self.queue.fail(job.id, self.name, message, final=isinstance(e, BadParameters))
        else:
            await self.queue.finish(job.id, self.name, summary)
        finally:
            beat.cancel()
            # asyncio.wait, not a suppressed await: a stop of this worker arriving just
            # now must end the worker, not be swallowed with the heartbeat's cancellation.
            await asyncio.wait({beat})

    async def _heartbeat(self, ctx: JobContext, task: asyncio.Task[Any]) -> None:
        interval = max(0.05, self.queue.lease_seconds / 3)
        while not task.done():
            await asyncio.sleep(interval)
            try:
                await ctx.beat()
            except Exception:
                log.exception("heartbeat of job %d failed; will try again", ctx.id)
                continue
            if ctx.lost:
                task.cancel()
                return
