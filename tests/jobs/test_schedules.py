"""Cron schedules: due times, validation, and one job per due time across schedulers."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

import pytest

from dockyard.jobs import BadCron, ScheduleExists, Scheduler, UnknownAction, builtin_actions, check_cron, next_run
from dockyard.metadata import jobs as q
from dockyard.metadata.db import Database

from . import open_db, run, sqlite_url


def _at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC).timestamp()


@pytest.mark.parametrize(
    ("cron", "after", "due"),
    [
        ("*/15 * * * *", "2026-01-01T00:07:00", "2026-01-01T00:15:00"),
        ("*/15 * * * *", "2026-01-01T00:15:00", "2026-01-01T00:30:00"),  # strictly after
        ("0 3 * * *", "2026-01-01T03:00:00", "2026-01-02T03:00:00"),
        ("0 3 * * *", "2026-12-31T23:59:59", "2027-01-01T03:00:00"),
        ("30 2 1 * *", "2026-02-01T02:31:00", "2026-03-01T02:30:00"),
        ("0 9 * * MON-FRI", "2026-01-02T10:00:00", "2026-01-05T09:00:00"),  # Friday → Monday
        ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),  # the next leap day
        ("@daily", "2026-05-05T12:00:00", "2026-05-06T00:00:00"),
    ],
)
def test_next_due_time(cron: str, after: str, due: str) -> None:
    assert next_run(cron, _at(after)) == _at(due)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("", "empty"),
        ("* * * *", "4 fields"),
        ("0 * * * * *", "6 fields"),
        ("61 * * * *", "not valid"),
        ("* 25 * * *", "not valid"),
        ("* * * * FOO", "not valid"),
        ("daily", "5 fields"),
    ],
)
def test_bad_cron_expressions_are_refused(cron: str, message: str) -> None:
    with pytest.raises(BadCron, match=message):
        check_cron(cron)


def test_expressions_are_normalised() -> None:
    assert check_cron("  0   3 * *  * ") == "0 3 * * *"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _jobs(db: Database) -> list[q.JobRow]:
    return list(reversed(db.read_sync(q.list_jobs, None, None, None, 1000)))


def test_two_schedulers_enqueue_a_due_schedule_once(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    db = open_db(url)
    clock = Clock(_at("2026-01-01T00:00:30"))
    made = run(Scheduler(db, builtin_actions(), clock=clock).create("nightly", "sleep", "* * * * *", {"seconds": 0}))
    assert made.next_run_at == _at("2026-01-01T00:01:00")
    others = [Database(url) for _ in range(2)]
    schedulers = [Scheduler(d, builtin_actions(), clock=clock) for d in others]

    def race() -> list[int]:
        barrier = threading.Barrier(len(schedulers))
        made: list[int] = []

        def tick(s: Scheduler) -> None:
            barrier.wait()
            for _ in range(5):
                made.extend(run(s.tick()))

        threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return made

    assert race() == []  # not due yet
    clock.now = _at("2026-01-01T00:01:00")
    first = race()
    assert len(first) == 1
    clock.now = _at("2026-01-01T00:05:10")  # missed 00:02 … 00:05: one job, not four
    second = race()
    assert len(second) == 1
    jobs = _jobs(db)
    assert [j.id for j in jobs] == first + second
    assert all(
        j.action == "sleep" and j.parameters == {"seconds": 0} and j.created_by == "schedule:nightly" for j in jobs
    )
    schedule = db.read_sync(q.get_schedule, "nightly")
    assert schedule is not None
    assert schedule.next_run_at == _at("2026-01-01T00:06:00") and schedule.last_job_id == second[0]
    assert {j.schedule_id for j in jobs} == {schedule.id}
    for d in [*others, db]:
        d.dispose()


def test_disabled_schedules_do_not_run_and_bad_ones_are_refused(tmp_path: Path) -> None:
    db = open_db(sqlite_url(tmp_path))
    clock = Clock(_at("2026-01-01T00:00:00"))
    scheduler = Scheduler(db, builtin_actions(), clock=clock)
    run(scheduler.create("off", "sleep", "* * * * *", enabled=False))
    with pytest.raises(ScheduleExists):
        run(scheduler.create("off", "sleep", "* * * * *"))
    with pytest.raises(UnknownAction):
        run(scheduler.create("x", "nope", "* * * * *"))
    with pytest.raises(BadCron):
        run(scheduler.create("y", "sleep", "* * *"))
    clock.now += 3600
    assert run(scheduler.tick()) == []
    assert [s.name for s in run(scheduler.list_schedules())] == ["off"]
    assert run(scheduler.delete("off")) is True
    assert run(scheduler.delete("off")) is False
    db.dispose()
