"""/api/v0/jobs and /crons, and the CLI, against a live server whose job runner runs the
registry's actions (gc, prune, upload-cleanup); and jobs run by a separate `dockyard worker`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, RunningServer, start_server
from tests.gc.test_gc import push
from tests.helpers import sha256

from . import start_worker, stop, wait_for

pytestmark = pytest.mark.xdist_group("jobs-api")

FAST = {"DOCKYARD_JOBS__POLL_SECONDS": "0.1", "DOCKYARD_JOBS__RETRY_BASE_SECONDS": "0.2"}
ENDED = ("done", "errored", "cancelled")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("jobs") / "data", extra_env=FAST, auth=True)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=60) as client:
        r = client.post("/api/v0/accounts", json={"type": "user", "name": "jane", "password": "jane-password"})
        assert r.status_code == 201, r.text
        yield client


def start_job(http: httpx.Client, action: str, **parameters: Any) -> dict[str, Any]:
    r = http.post("/api/v0/jobs", json={"action": action, "parameters": parameters})
    assert r.status_code == 202, r.text
    job: dict[str, Any] = r.json()
    assert job["action"] == action and job["parameters"] == parameters and job["createdBy"] == "admin"
    return job


def ended(http: httpx.Client, job_id: int, seconds: float = 60) -> dict[str, Any]:
    def look() -> dict[str, Any] | None:
        job: dict[str, Any] = http.get(f"/api/v0/jobs/{job_id}").json()
        return job if job["status"] in ENDED else None

    return wait_for(look, seconds, f"job {job_id} to end")


def log_of(http: httpx.Client, job_id: int) -> list[str]:
    r = http.get(f"/api/v0/jobs/{job_id}/logs")
    assert r.status_code == 200, r.text
    return [line["message"] for line in r.json()["logs"]]


def refused(r: httpx.Response, status: int, says: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    error = r.json()["errors"][0]
    assert says in error["message"], error


def test_gc_job_reports_what_it_would_free_then_frees_it(http: httpx.Client) -> None:
    layers = [os.urandom(3000), os.urandom(2000)]
    body = push(http, "admin/gcjob", "doomed", layers)
    assert body is not None
    assert http.delete(f"/v2/admin/gcjob/manifests/{sha256(body)}").status_code == 202

    dry = start_job(http, "gc", grace_period_seconds=0, dry_run=True)
    assert dry["status"] in ("waiting", "running")
    dry = ended(http, dry["id"])
    assert dry["status"] == "done", dry
    assert dry["summary"]["dry_run"] is True
    assert dry["summary"]["blobs_deleted"] >= 3 and dry["summary"]["bytes_freed"] >= 5000
    for data in layers:  # a dry run deletes nothing
        assert http.head(f"/v2/admin/gcjob/blobs/{sha256(data)}").status_code == 200

    real = ended(http, start_job(http, "gc", grace_period_seconds=0)["id"])
    assert real["status"] == "done", real
    summary = real["summary"]
    assert summary["dry_run"] is False and summary["blobs_deleted"] >= 3 and summary["bytes_freed"] >= 5000
    assert real["attempts"] == 1 and real["finishedAt"] and real["workerId"]
    assert real["progress"]["done"] == real["progress"]["total"] and real["progress"]["total"] >= 3
    for data in layers:
        assert http.get(f"/v2/admin/gcjob/blobs/{sha256(data)}").status_code == 404
    lines = log_of(http, real["id"])
    assert any(line.startswith("mark: ") for line in lines), lines
    assert any(line.startswith("done: ") for line in lines), lines

    again = ended(http, start_job(http, "gc", grace_period_seconds=0)["id"])
    assert again["summary"]["blobs_deleted"] == 0 and again["summary"]["manifests_deleted"] == 0


def test_prune_job_deletes_tags_by_policy(http: httpx.Client) -> None:
    for i in range(3):
        assert push(http, "admin/prunejob", f"v{i}", [os.urandom(64)]) is not None
        time.sleep(0.01)  # distinct push times: "keep the newest" is well defined
    r = http.put("/api/v0/repositories/admin/prunejob/lifecycle", json={"pruneRules": [{"pattern": "v*", "keep": 1}]})
    assert r.status_code == 200, r.text

    dry = ended(http, start_job(http, "prune", dry_run=True)["id"])
    assert dry["status"] == "done", dry
    would = {(t["repository"], t["tag"]) for t in dry["summary"]["tags"]}
    assert would == {("admin/prunejob", "v0"), ("admin/prunejob", "v1")}
    assert http.get("/v2/admin/prunejob/tags/list").json()["tags"] == ["v0", "v1", "v2"]

    real = ended(http, start_job(http, "prune")["id"])
    assert real["status"] == "done" and real["summary"]["tags_deleted"] == 2, real
    assert http.get("/v2/admin/prunejob/tags/list").json()["tags"] == ["v2"]
    lines = log_of(http, real["id"])
    pruned = sorted(line.split(" (")[0] for line in lines if line.startswith("pruned "))
    assert pruned == ["pruned admin/prunejob:v0", "pruned admin/prunejob:v1"], lines


def test_upload_cleanup_job_removes_abandoned_uploads(http: httpx.Client) -> None:
    r = http.post("/v2/admin/uploads/blobs/uploads/")
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    r = http.patch(location, content=os.urandom(1000), headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    job = ended(http, start_job(http, "upload-cleanup", max_age_seconds=0)["id"])
    assert job["status"] == "done" and job["summary"]["uploads_removed"] >= 1, job
    gone = http.get(location)
    assert gone.status_code == 404 and "BLOB_UPLOAD_UNKNOWN" in gone.text


def test_the_default_schedule_sweeps_uploads_once_the_server_starts(http: httpx.Client) -> None:
    crons = {c["name"]: c for c in http.get("/api/v0/crons").json()["crons"]}
    cleanup = crons["upload-cleanup"]
    assert cleanup["action"] == "upload-cleanup" and cleanup["schedule"] == "17 * * * *" and cleanup["enabled"]

    def scheduled() -> list[dict[str, Any]]:
        jobs = http.get("/api/v0/jobs", params={"action": "upload-cleanup"}).json()["jobs"]
        return [j for j in jobs if j["createdBy"] == "schedule:upload-cleanup"]

    jobs = wait_for(scheduled, 30, "the scheduled upload-cleanup job")
    assert ended(http, jobs[-1]["id"])["status"] == "done"
    assert jobs[-1]["scheduleId"] == cleanup["id"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"action": "nope"}, "unknown action 'nope' (known: false, gc, prune, sleep, upload-cleanup)"),
        ({"action": "gc", "parameters": {"dry_run": "maybe"}}, "parameter dry_run: expected true or false"),
        ({"action": "gc", "parameters": {"grace_period_seconds": -1}}, "grace_period_seconds: expected 0 or more"),
        ({"action": "gc", "parameters": {"grace_period_seconds": "NaN"}}, "expected a finite number"),
        ({"action": "gc", "parameters": {"grace": 0}}, "unknown parameter grace for gc"),
        ({"action": "upload-cleanup", "parameters": {"max_age_seconds": [1]}}, "expected a number"),
    ],
)
def test_jobs_that_cannot_run_are_refused_when_made(http: httpx.Client, body: dict[str, Any], says: str) -> None:
    before = len(http.get("/api/v0/jobs", params={"pageSize": 1000}).json()["jobs"])
    refused(http.post("/api/v0/jobs", json=body), 400, says)
    assert len(http.get("/api/v0/jobs", params={"pageSize": 1000}).json()["jobs"]) == before


def test_jobs_are_for_administrators(server: RunningServer, http: httpx.Client) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        assert anonymous.get("/api/v0/jobs").status_code == 401
        assert anonymous.post("/api/v0/jobs", json={"action": "gc"}).status_code == 401
    with httpx.Client(base_url=server.url, auth=("jane", "jane-password"), timeout=30) as jane:
        refused(jane.get("/api/v0/jobs"), 403, "administrators")
        refused(jane.post("/api/v0/jobs", json={"action": "gc"}), 403, "administrators")
        refused(jane.get("/api/v0/crons"), 403, "administrators")
        refused(jane.delete("/api/v0/crons/upload-cleanup"), 403, "administrators")
    refused(http.get("/api/v0/jobs/999999"), 404, "there is no job 999999")
    assert http.post("/api/v0/jobs", json={"action": "gc", "extra": 1}).status_code == 422
    assert http.get("/api/v0/jobs", params={"status": "sleeping"}).status_code == 422


def test_cancel_a_running_job_and_read_its_history(http: httpx.Client) -> None:
    job = start_job(http, "sleep", seconds=30)
    wait_for(lambda: http.get(f"/api/v0/jobs/{job['id']}").json()["status"] == "running", 30, "running")
    r = http.delete(f"/api/v0/jobs/{job['id']}")
    assert r.status_code == 202 and r.json()["cancelRequested"] is True, r.text
    done = ended(http, job["id"], 30)
    assert done["status"] == "cancelled" and done["finishedAt"]
    refused(http.delete(f"/api/v0/jobs/{job['id']}"), 409, "has already ended (cancelled)")

    failed = ended(http, start_job(http, "false")["id"])
    assert failed["status"] == "errored" and failed["error"] == "false always fails" and failed["retriesLeft"] == 0

    cancelled = http.get("/api/v0/jobs", params={"status": "cancelled"}).json()["jobs"]
    assert [j["id"] for j in cancelled] == [job["id"]]
    page = http.get("/api/v0/jobs", params={"pageSize": 1})
    assert len(page.json()["jobs"]) == 1 and page.json()["jobs"][0]["id"] == failed["id"]
    after = http.get("/api/v0/jobs", params={"pageSize": 1, "pageStart": page.headers["x-next-page-start"]})
    assert after.json()["jobs"][0]["id"] == job["id"]
    actions = {a["name"] for a in http.get("/api/v0/jobs/actions").json()["actions"]}
    assert {"gc", "prune", "upload-cleanup", "sleep", "false"} <= actions


def test_cron_schedules(http: httpx.Client) -> None:
    cron = {"name": "nightly-gc", "action": "gc", "schedule": "0 3 * * *", "parameters": {"dry_run": True}}
    r = http.post("/api/v0/crons", json=cron)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["schedule"] == "0 3 * * *" and made["enabled"] and made["nextRun"].endswith("03:00:00Z")
    refused(http.post("/api/v0/crons", json=cron), 409, "already exists")
    refused(http.post("/api/v0/crons", json={**cron, "name": "x", "schedule": "0 3 * *"}), 400, "has 4 fields")
    refused(http.post("/api/v0/crons", json={**cron, "name": "x", "parameters": {"dry_run": 2}}), 400, "true or false")
    assert http.post("/api/v0/crons", json={**cron, "name": "../x"}).status_code == 422

    off = http.patch("/api/v0/crons/nightly-gc", json={"enabled": False})
    assert off.status_code == 200 and off.json()["enabled"] is False, off.text
    moved = http.patch("/api/v0/crons/nightly-gc", json={"schedule": "30 4 * * 1", "parameters": {}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["schedule"] == "30 4 * * 1" and moved.json()["parameters"] == {}
    assert moved.json()["nextRun"].endswith("04:30:00Z")
    refused(http.patch("/api/v0/crons/nightly-gc", json={"schedule": "61 * * * *"}), 400, "not valid")
    refused(http.patch("/api/v0/crons/nightly-gc", json={"parameters": {"x": 1}}), 400, "unknown parameter x")
    refused(http.patch("/api/v0/crons/none", json={"enabled": True}), 404, "no cron schedule none")
    assert http.get("/api/v0/crons/nightly-gc").json()["schedule"] == "30 4 * * 1"
    assert http.delete("/api/v0/crons/nightly-gc").status_code == 204
    refused(http.get("/api/v0/crons/nightly-gc"), 404, "no cron schedule nightly-gc")


def dockyard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_jobs_run_by_a_separate_worker_and_the_cli(tmp_path: Path) -> None:
    """A server with jobs.enabled false queues; only a `dockyard worker` process runs jobs."""
    data = tmp_path / "data"
    server = start_server(data, extra_env={**FAST, "DOCKYARD_JOBS__ENABLED": "false"}, auth=True)
    worker = None
    try:
        with httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=60) as http:
            job = start_job(http, "gc", dry_run=True)
            time.sleep(1.0)
            assert http.get(f"/api/v0/jobs/{job['id']}").json()["status"] == "waiting"

            worker = start_worker(data, tmp_path / "worker.log")
            done = ended(http, job["id"])
            assert done["status"] == "done" and done["workerId"].split(":")[1] == str(worker.pid), done

            refusal = dockyard("jobs", "start", "gc", "--data-dir", str(data), "--param", "dry_run=maybe")
            assert refusal.returncode == 2 and "parameter dry_run: expected true or false" in refusal.stderr
            started = dockyard("jobs", "start", "sleep", "--data-dir", str(data), "--param", "seconds=0.3", "--json")
            assert started.returncode == 0, started.stderr
            job_id = json.loads(started.stdout)["id"]
            followed = dockyard("jobs", "follow", str(job_id), "--data-dir", str(data), "--interval", "0.1")
            assert followed.returncode == 0, followed.stderr
            assert http.get(f"/api/v0/jobs/{job_id}").json()["summary"] == {"slept": 0.3, "attempt": 1}
            listed = dockyard("jobs", "list", "--data-dir", str(data), "--action", "sleep", "--json")
            assert [j["id"] for j in json.loads(listed.stdout)["jobs"]] == [job_id]
    finally:
        if worker is not None:
            stop(worker)
        server.stop()
