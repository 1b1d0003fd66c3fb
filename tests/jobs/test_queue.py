"""The queue and its workers: exclusive claims (threads, processes, PostgreSQL), retries with
backoff, cancel, clean shutdown, and takeover of a job whose worker was killed."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest

from dockyard.jobs import JobQueue, Worker
from dockyard.metadata.db import Database
from tests.integration.test_postgres import postgres_url  # noqa: F401  (the fixture)

from . import job_of, log_lines, open_db, queue_for, run, runs, sqlite_url, start_worker, stop, wait_for


def _enqueue_many(db: Database, count: int, seconds: float) -> list[int]:
    async def go() -> list[int]:
        queue = queue_for(db)
        return [(await queue.enqueue("sleep", {"seconds": seconds})).id for _ in range(count)]

    return run(go())


def _drain_in_threads(url: str, threads: int) -> Counter[str]:
    """Workers in threads, each with its own engine and event loop, until nothing is due."""
    barrier = threading.Barrier(threads)
    ran: Counter[str] = Counter()
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work() -> None:
        db = Database(url)
        worker = Worker(queue_for(db), poll_seconds=0.01)
        try:
            barrier.wait()

            async def drain() -> None:
                idle = 0
                while idle < 3:
                    if await worker.run_once():
                        idle = 0
                        with lock:
                            ran[worker.name] += 1
                    else:
                        idle += 1
                        await asyncio.sleep(0.02)

            run(drain())
        except BaseException as e:  # reported by the test
            failures.append(e)
        finally:
            db.dispose()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not failures, failures
    return ran


async def _status(queue: JobQueue, job_id: int) -> str:
    job = await queue.get(job_id)
    assert job is not None
    return job.status


def _assert_each_ran_once(db: Database, ids: list[int]) -> None:
    for job_id in ids:
        job = job_of(db, job_id)
        assert job.status == "done", (job, log_lines(db, job_id))
        assert len(runs(db, job_id)) == 1, log_lines(db, job_id)
        assert job.attempts == 1
        assert log_lines(db, job_id).count("done") == 1


def test_claims_are_exclusive_across_threads(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    db = open_db(url)
    ids = _enqueue_many(db, 40, 0)
    ran = _drain_in_threads(url, 4)
    assert sum(ran.values()) == 40
    _assert_each_ran_once(db, ids)
    db.dispose()


def test_claims_are_exclusive_across_processes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    db = open_db(sqlite_url(data))
    ids = _enqueue_many(db, 30, 0.05)
    workers = [start_worker(data, tmp_path / f"worker-{i}.log") for i in range(3)]
    try:
        wait_for(lambda: all(job_of(db, i).status == "done" for i in ids), 60, "every job done")
    finally:
        for w in workers:
            stop(w)
    _assert_each_ran_once(db, ids)
    names = {job_of(db, i).worker for i in ids}
    assert len(names) >= 2, names  # the work was shared out
    db.dispose()


def test_claims_are_exclusive_on_postgres(postgres_url: str) -> None:  # noqa: F811
    db = open_db(postgres_url)
    ids = _enqueue_many(db, 40, 0)
    ran = _drain_in_threads(postgres_url, 4)
    assert sum(ran.values()) == 40
    _assert_each_ran_once(db, ids)
    db.dispose()


def test_failed_attempts_are_retried_with_exponential_backoff(tmp_path: Path) -> None:
    db = open_db(sqlite_url(tmp_path))
    queue = queue_for(db, base=0.2, cap=0.3)

    async def go() -> tuple[int, int]:
        ok = await queue.enqueue("sleep", {"seconds": 0, "fail_times": 2})
        bad = await queue.enqueue("sleep", {"seconds": 0, "fail_times": 5}, max_attempts=2)
        worker = Worker(queue, poll_seconds=0.02)
        task = asyncio.create_task(worker.run())
        while {await _status(queue, ok.id), await _status(queue, bad.id)} - {"done", "errored"}:
            await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return ok.id, bad.id

    ok, bad = run(go())
    job = job_of(db, ok)
    assert (job.status, job.attempts, job.summary) == ("done", 3, {"slept": 0.0, "attempt": 3})
    lines = log_lines(db, ok)
    assert "retry in 0.2 s" in lines[1] and "attempt 1 of 3 failed" in lines[1], lines
    assert "retry in 0.3 s" in lines[3], lines  # 0.2 * 2 = 0.4, capped at 0.3
    assert len(runs(db, ok)) == 3
    first_retry, second_retry = (e for e in db.read_sync(_logs_of, ok) if "retry in" in e[1])
    run_times = [at for at, message in db.read_sync(_logs_of, ok) if message.startswith("run ")]
    assert run_times[1] - first_retry[0] >= 0.19 and run_times[2] - second_retry[0] >= 0.29
    failed = job_of(db, bad)
    assert (failed.status, failed.attempts) == ("errored", 2)
    assert failed.error is not None and "on purpose" in failed.error
    assert "giving up" in log_lines(db, bad)[-1]
    db.dispose()


def _logs_of(conn: object, job_id: int) -> list[tuple[float, str]]:
    from dockyard.metadata import jobs as q

    return [(e.at, e.message) for e in q.logs(conn, job_id, None, 1000)]  # type: ignore[arg-type]


def test_cancel_a_waiting_job_at_once(tmp_path: Path) -> None:
    db = open_db(sqlite_url(tmp_path))
    queue = queue_for(db)

    async def go() -> int:
        job = await queue.enqueue("sleep", {"seconds": 0}, delay_seconds=0.2)
        cancelled = await queue.cancel(job.id)
        assert cancelled is not None and cancelled.status == "cancelled" and cancelled.finished_at
        await asyncio.sleep(0.3)
        assert await Worker(queue).run_once() is False  # nothing left to claim
        assert await queue.cancel(12345) is None
        return job.id

    job_id = run(go())
    assert job_of(db, job_id).attempts == 0
    db.dispose()


def test_cancel_a_running_job_at_its_next_checkpoint(tmp_path: Path) -> None:
    db = open_db(sqlite_url(tmp_path))
    queue = queue_for(db)

    async def go() -> int:
        job = await queue.enqueue("sleep", {"seconds": 30})
        task = asyncio.create_task(Worker(queue, poll_seconds=0.02).run())
        while await _status(queue, job.id) != "running":
            await asyncio.sleep(0.02)
        asked = await queue.cancel(job.id)
        assert asked is not None and asked.status == "running" and asked.cancel_requested
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while await _status(queue, job.id) != "cancelled":
            assert loop.time() < deadline, "the running job did not stop"
            await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return job.id

    job_id = run(go())
    assert log_lines(db, job_id)[-1] == "cancelled"
    assert job_of(db, job_id).finished_at is not None
    db.dispose()


def test_a_worker_stopped_as_it_records_an_outcome_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The stop lands on the worker's next await after the outcome is written: its wait
    # for the heartbeat task. It once was swallowed there and the worker ran on forever.
    db = open_db(sqlite_url(tmp_path))
    queue = queue_for(db)
    finish = queue.finish
    stopping: list[asyncio.Task[None]] = []

    async def finish_then_stop(*args: object) -> bool:
        written = await finish(*args)  # type: ignore[arg-type]
        stopping[0].cancel()
        return written

    monkeypatch.setattr(queue, "finish", finish_then_stop)

    async def go() -> int:
        job = await queue.enqueue("sleep", {"seconds": 0})
        stopping.append(asyncio.create_task(Worker(queue, poll_seconds=0.02).run()))
        done, _ = await asyncio.wait(stopping, timeout=10)
        assert done and stopping[0].cancelled(), "the worker did not stop"
        return job.id

    job_id = run(go())
    assert job_of(db, job_id).status == "done"
    db.dispose()


def test_a_stopping_worker_gives_its_job_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    db = open_db(sqlite_url(data))
    (job_id,) = _enqueue_many(db, 1, 30)
    worker = start_worker(data, tmp_path / "worker.log")
    try:
        wait_for(lambda: runs(db, job_id), 30, "the first run")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0, (tmp_path / "worker.log").read_text()
    job = job_of(db, job_id)
    assert (job.status, job.attempts, job.worker) == ("waiting", 0, None)
    assert "job given back" in log_lines(db, job_id)[-1]
    db.dispose()


def test_a_killed_workers_job_is_taken_over_and_finishes_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    db = open_db(sqlite_url(data))
    (job_id,) = _enqueue_many(db, 1, 1.5)
    first = start_worker(data, tmp_path / "first.log")
    try:
        wait_for(lambda: runs(db, job_id), 30, "the first run")
        first.send_signal(signal.SIGKILL)
        first.wait(15)
    finally:
        stop(first)
    assert job_of(db, job_id).status == "running"
    second = start_worker(data, tmp_path / "second.log")
    try:
        job = wait_for(lambda: (j := job_of(db, job_id)).status == "done" and j, 30, "the job done")
    finally:
        stop(second)
    assert job.attempts == 2
    lines = log_lines(db, job_id)
    started = runs(db, job_id)
    assert len(started) == 2 and started[0] != started[1], lines
    assert any("stopped heartbeating during attempt 1" in line for line in lines), lines
    assert lines.count("done") == 1
    assert job.summary == {"slept": 1.5, "attempt": 2}
    db.dispose()


def test_a_job_whose_attempts_ran_out_is_not_taken_over(tmp_path: Path) -> None:
    db = open_db(sqlite_url(tmp_path))
    queue = queue_for(db, lease=0.2)

    async def go() -> int:
        job = await queue.enqueue("sleep", {"seconds": 30}, max_attempts=1)
        claimed = await queue.claim("gone-worker")  # claims, then never heartbeats
        assert claimed is not None and claimed.id == job.id
        assert await queue.claim("other") is None  # its lease still holds
        await asyncio.sleep(0.3)
        assert await queue.claim("other") is None  # expired, but no attempt left
        return job.id

    job_id = run(go())
    job = job_of(db, job_id)
    assert job.status == "errored" and job.error is not None and "gone-worker stopped heartbeating" in job.error
    db.dispose()


@pytest.mark.parametrize("action", ["nope", ""])
def test_unknown_actions_are_refused(tmp_path: Path, action: str) -> None:
    from dockyard.jobs import UnknownAction

    db = open_db(sqlite_url(tmp_path))
    with pytest.raises(UnknownAction, match="known: false, sleep"):
        run(queue_for(db).enqueue(action))
    db.dispose()
