"""Lifecycle policies against a live server: immutable tags, quotas, pruning, untagged retention."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, RunningServer, start_server
from tests.gc.test_gc import ACCEPT, blob_files, gc, push
from tests.helpers import sha256
from tests.ops.test_ops import as_json

pytestmark = pytest.mark.xdist_group("lifecycle")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("lifecycle") / "data", auth=True)
    yield s
    s.stop()


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=60) as client:
        yield client


def set_policy(http: httpx.Client, path: str, **body: Any) -> dict[str, Any]:
    r = http.put(f"/api/v0/{path}/lifecycle", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def denied(r: httpx.Response, says: str) -> None:
    assert r.status_code == 403, (r.status_code, r.text)
    error = r.json()["errors"][0]
    assert error["code"] == "DENIED" and says in error["message"], error


def test_immutable_tags(http: httpx.Client) -> None:
    first = push(http, "admin/frozen", "v1", [os.urandom(100)])
    assert first is not None
    out = set_policy(http, "repositories/admin/frozen", immutableTags=True)
    assert out["immutableTags"] is True
    time.sleep(0)  # the policy cache is cleared by the API in this process
    again = http.put(
        "/v2/admin/frozen/manifests/v1", content=first, headers={"Content-Type": json.loads(first)["mediaType"]}
    )
    assert again.status_code == 201  # the same digest again is no move
    doc = json.loads(first)
    doc["layers"] = doc["layers"][:0]
    moved = http.put("/v2/admin/frozen/manifests/v1", content=json.dumps(doc).encode(),
                     headers={"Content-Type": doc["mediaType"]})  # fmt: skip
    denied(moved, "immutable")
    denied(http.delete("/v2/admin/frozen/manifests/v1"), "cannot be deleted")
    denied(http.delete(f"/v2/admin/frozen/manifests/{sha256(first)}"), "cannot be deleted")
    assert push(http, "admin/frozen", "v2", [os.urandom(100)]) is not None  # new tags are fine
    assert http.get("/v2/admin/frozen/manifests/v1", headers=ACCEPT).content == first
    set_policy(http, "repositories/admin/frozen", immutableTags=False)
    assert http.delete("/v2/admin/frozen/manifests/v1").status_code == 202


def test_repository_quota_refuses_before_storing(server: RunningServer, http: httpx.Client) -> None:
    assert push(http, "admin/small", "v1", [os.urandom(100)]) is not None
    usage = http.get("/api/v0/repositories/admin/small/lifecycle").json()["usageBytes"]
    set_policy(http, "repositories/admin/small", quotaBytes=usage + 6000)
    kept = os.urandom(5000)
    assert http.post("/v2/admin/small/blobs/uploads/", params={"digest": sha256(kept)}, content=kept).status_code == 201
    big = os.urandom(5000)
    denied(http.post("/v2/admin/small/blobs/uploads/", params={"digest": sha256(big)}, content=big), "quota exceeded")
    assert sha256(big) not in blob_files(server.data_dir)
    # Chunked: refused at the PATCH that would cross the quota, before its bytes are read.
    r = http.post("/v2/admin/small/blobs/uploads/")
    location = r.headers["location"]
    r = http.patch(location, content=big, headers={"Content-Range": f"0-{len(big) - 1}"})
    denied(r, "quota exceeded")
    # A blob already in the repository costs nothing more.
    again = http.post("/v2/admin/small/blobs/uploads/", params={"digest": sha256(kept)}, content=kept)
    assert again.status_code == 201
    assert http.get("/api/v0/repositories/admin/small/lifecycle").json()["usageBytes"] == usage + 5000


def test_namespace_quota_counts_a_shared_blob_once(http: httpx.Client) -> None:
    r = http.post("/api/v0/accounts", json={"name": "quotaorg", "type": "organization"})
    assert r.status_code in (200, 201), r.text
    shared = os.urandom(6000)
    set_policy(http, "namespaces/quotaorg", quotaBytes=9000)
    assert (
        http.post("/v2/quotaorg/a/blobs/uploads/", params={"digest": sha256(shared)}, content=shared).status_code == 201
    )
    # The same blob in a second repository of the namespace: no more usage.
    assert (
        http.post("/v2/quotaorg/b/blobs/uploads/", params={"digest": sha256(shared)}, content=shared).status_code == 201
    )
    mount = http.post("/v2/quotaorg/c/blobs/uploads/", params={"mount": sha256(shared), "from": "quotaorg/a"})
    assert mount.status_code == 201
    assert http.get("/api/v0/namespaces/quotaorg/lifecycle").json()["usageBytes"] == 6000
    other = os.urandom(4000)
    denied(
        http.post("/v2/quotaorg/b/blobs/uploads/", params={"digest": sha256(other)}, content=other),
        "namespace quotaorg",
    )


def test_bad_policies_are_refused(http: httpx.Client) -> None:
    assert push(http, "admin/badpolicy", "v1", [os.urandom(10)]) is not None
    for body, says in [
        ({"quotaBytes": 0}, "quota.bytes"),
        ({"pruneRules": [{"pattern": "*"}]}, "keep"),
        ({"pruneRules": [{"keep": -1}]}, "prune.keep"),
        ({"untaggedRetentionSeconds": -5}, "untagged_retention.seconds"),
        ({"immutable": True}, "immutable"),
    ]:
        r = http.put("/api/v0/repositories/admin/badpolicy/lifecycle", json=body)
        assert r.status_code in (400, 422), (body, r.text)
        assert says in r.text, (body, r.text)


def _age_tags(data_dir: Path, repo: str, seconds: float) -> None:
    conn = sqlite3.connect(data_dir / "db" / "dockyard.db")
    with conn:
        conn.execute(
            "UPDATE tags SET updated_at = updated_at - ? WHERE repository_id ="
            " (SELECT id FROM repositories WHERE name = ?)",
            (seconds, repo),
        )
    conn.close()


def test_pruning_by_count_age_and_pattern(server: RunningServer, http: httpx.Client) -> None:
    for i in range(5):
        assert push(http, "admin/pruned", f"pr-{i}", [os.urandom(50)]) is not None
        time.sleep(0.01)
    assert push(http, "admin/pruned", "release", [os.urandom(50)]) is not None
    _age_tags(server.data_dir, "admin/pruned", 0)
    set_policy(http, "repositories/admin/pruned", pruneRules=[{"pattern": "pr-*", "keep": 2}])
    dry = as_json("prune", "--data-dir", str(server.data_dir), "--dry-run")
    assert {(d["repository"], d["tag"]) for d in dry} == {("admin/pruned", f"pr-{i}") for i in range(3)}
    done = as_json("prune", "--data-dir", str(server.data_dir))
    assert len(done) == 3
    tags = http.get("/v2/admin/pruned/tags/list").json()["tags"]
    assert sorted(tags) == ["pr-3", "pr-4", "release"]
    # By age: everything matching and older than a day goes; "release" does not match.
    set_policy(http, "repositories/admin/pruned", pruneRules=[{"pattern": "pr-*", "maxAgeSeconds": 86400}])
    _age_tags(server.data_dir, "admin/pruned", 2 * 86400)
    as_json("prune", "--data-dir", str(server.data_dir))
    assert http.get("/v2/admin/pruned/tags/list").json()["tags"] == ["release"]


def test_untagged_retention_per_repository(server: RunningServer, http: httpx.Client) -> None:
    old = push(http, "admin/keepuntagged", "t", [os.urandom(70)])
    push(http, "admin/keepuntagged", "t", [os.urandom(80)])
    gone = push(http, "admin/dropuntagged", "t", [os.urandom(90)])
    push(http, "admin/dropuntagged", "t", [os.urandom(95)])
    assert old and gone
    set_policy(http, "repositories/admin/dropuntagged", untaggedRetentionSeconds=0)
    report: dict[str, Any] = gc(server, "--grace-period", "0")
    assert report["manifests_deleted"] >= 1
    assert http.get(f"/v2/admin/dropuntagged/manifests/{sha256(gone)}", headers=ACCEPT).status_code == 404
    assert http.get(f"/v2/admin/keepuntagged/manifests/{sha256(old)}", headers=ACCEPT).status_code == 200
