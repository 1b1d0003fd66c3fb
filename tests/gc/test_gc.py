"""Online garbage collection against a live server: what it frees, what it keeps, and that
pushes racing it never lose an acknowledged blob."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
import yaml

from tests.conftest import RunningServer, start_server
from tests.helpers import DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, OCI_MANIFEST, descriptor, sha256
from tests.ops.test_ops import as_json

ACCEPT = {"Accept": f"{DOCKER_MANIFEST},{OCI_MANIFEST}"}


def gc(server: RunningServer, *args: str) -> dict[str, Any]:
    # A data folder on PostgreSQL names its database in config/dockyard.yml (see the PG test).
    result: dict[str, Any] = as_json("gc", "--data-dir", str(server.data_dir), *args)
    return result


def blob_files(data_dir: Path) -> set[str]:
    root = data_dir / "registry" / "blobs"
    return {"sha256:" + p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


UNREFERENCED = (
    "SELECT count(*) FROM blobs b WHERE NOT EXISTS"
    " (SELECT 1 FROM manifest_references r WHERE r.kind = 'blob' AND r.digest = b.digest)"
)


def _query(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Run SQL on the folder's database: its SQLite file, or the PostgreSQL its settings name."""
    settings = data_dir / "config" / "dockyard.yml"
    url = yaml.safe_load(settings.read_text()).get("database_url") if settings.exists() else None
    if url:
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.exec_driver_sql(sql)]
        finally:
            engine.dispose()
    conn = sqlite3.connect(data_dir / "db" / "dockyard.db")
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def blob_rows(data_dir: Path) -> set[str]:
    return {d for (d,) in _query(data_dir, "SELECT digest FROM blobs")}


def unreferenced_blob_rows(server: RunningServer) -> int:
    return int(_query(server.data_dir, UNREFERENCED)[0][0])


def push(http: httpx.Client, repo: str, tag: str, blobs: list[bytes], attempts: int = 8, **extra: Any) -> bytes | None:
    """Push like docker: HEAD each blob, upload what is missing, then the manifest; a push
    refused because GC took a blob in between is retried. The manifest bytes, or None."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": tag}).encode()
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, config),
        "layers": [descriptor(DOCKER_LAYER, b) for b in blobs],
        **extra,
    }
    body = json.dumps(doc).encode()
    for _ in range(attempts):
        for data in [config, *blobs]:
            digest = sha256(data)
            if http.head(f"/v2/{repo}/blobs/{digest}").status_code != 200:
                r = http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
                assert r.status_code == 201, r.text
        r = http.put(f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": DOCKER_MANIFEST})
        if r.status_code == 201:
            return body
        assert r.status_code == 400 and "MANIFEST_BLOB_UNKNOWN" in r.text, r.text
    return None


def pulls_back(http: httpx.Client, repo: str, tag: str, body: bytes) -> None:
    r = http.get(f"/v2/{repo}/manifests/{tag}", headers=ACCEPT)
    assert r.status_code == 200 and r.content == body, (repo, tag, r.status_code, r.text[:200])
    doc = json.loads(body)
    for d in [doc["config"], *doc["layers"]]:
        b = http.get(f"/v2/{repo}/blobs/{d['digest']}")
        assert b.status_code == 200 and sha256(b.content) == d["digest"], (repo, tag, d["digest"], b.status_code)


@pytest.fixture
def server(tmp_path: Path) -> Any:
    s = start_server(tmp_path / "data")
    yield s
    s.stop()


def test_gc_frees_what_deleted_images_alone_used(server: RunningServer) -> None:
    shared, only_a, only_b = os.urandom(3000), os.urandom(2000), os.urandom(1000)
    with server.client() as http:
        a = push(http, "gc/a", "v1", [shared, only_a])
        b = push(http, "gc/b", "v1", [shared, only_b])
        assert a and b
        digest_a = http.head("/v2/gc/a/manifests/v1", headers=ACCEPT).headers["docker-content-digest"]
        assert http.delete(f"/v2/gc/a/manifests/{digest_a}").status_code == 202

        dry = gc(server, "--grace-period", "0", "--dry-run")
        # Both images have the same config ({"n": "v1"}): only a's own layer is garbage.
        assert dry["dry_run"] is True and (dry["blobs_deleted"], dry["bytes_freed"]) == (1, len(only_a))
        assert sha256(only_a) in blob_files(server.data_dir)

        report = gc(server, "--grace-period", "0")
        assert (report["blobs_deleted"], report["bytes_freed"]) == (1, len(only_a))
        assert sha256(only_a) not in blob_files(server.data_dir) | blob_rows(server.data_dir)
        assert http.get(f"/v2/gc/a/blobs/{sha256(only_a)}").status_code == 404
        pulls_back(http, "gc/b", "v1", b)
        assert {sha256(shared), sha256(only_b)} <= blob_files(server.data_dir)
        # Nothing left to collect: a second run frees nothing.
        again = gc(server, "--grace-period", "0")
        assert (again["blobs_deleted"], again["manifests_deleted"]) == (0, 0)


def test_grace_period_and_untagged_retention(server: RunningServer) -> None:
    with server.client() as http:
        first = push(http, "gc/moving", "latest", [os.urandom(500)])
        second = push(http, "gc/moving", "latest", [os.urandom(600)])  # the tag moves on
        assert first and second
        old_digest = sha256(first)
        # A signature of the current image (a referrer) and an untagged manifest pushed by digest.
        sig = push(http, "gc/moving", "sig", [os.urandom(100)], subject=descriptor(DOCKER_MANIFEST, second))
        assert sig is not None
        assert http.delete("/v2/gc/moving/manifests/sig").status_code == 202  # untag: the referrer stays

        # Inside the grace period nothing goes; untagged manifests are kept unless a retention is given.
        assert gc(server, "--grace-period", "3600", "--untagged-retention", "0")["manifests_deleted"] == 0
        assert gc(server, "--grace-period", "0")["manifests_deleted"] == 0
        report = gc(server, "--grace-period", "0", "--untagged-retention", "0")
        assert (report["manifests_deleted"], report["blobs_deleted"]) == (1, 1)  # the config is shared
        assert http.get(f"/v2/gc/moving/manifests/{old_digest}", headers=ACCEPT).status_code == 404
        pulls_back(http, "gc/moving", "latest", second)
        referrers = http.get(f"/v2/gc/moving/referrers/{sha256(second)}").json()["manifests"]
        assert [m["digest"] for m in referrers] == [sha256(sig)]


def race(server: RunningServer, seconds: float = 20) -> None:
    """Pushers (sharing base layers) and deleters for ``seconds`` while GC runs in a loop with
    no grace period; then every acknowledged image pulls back and nothing unreachable is left."""
    base = [os.urandom(4096) for _ in range(3)]  # layers every image shares
    acknowledged: dict[tuple[str, str], bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()
    failures: list[BaseException] = []

    def pusher(worker: int) -> None:
        rnd = random.Random(worker)
        try:
            with server.client() as http:
                n = 0
                while not stop.is_set():
                    n += 1
                    repo, tag = f"race/w{worker}-{n % 4}", f"t{n}"
                    layers = [rnd.choice(base), os.urandom(512)]
                    body = push(http, repo, tag, layers)
                    if body is not None:
                        with lock:
                            acknowledged[(repo, tag)] = body
                    if n % 3 == 0:  # delete an earlier image: its unique blobs become garbage
                        with lock:
                            mine = [k for k in acknowledged if k[0].startswith(f"race/w{worker}-")]
                            victim = rnd.choice(mine) if mine else None
                            body = acknowledged.pop(victim) if victim else None
                        if victim and body:
                            r = http.delete(f"/v2/{victim[0]}/manifests/{sha256(body)}")
                            assert r.status_code in (202, 404), r.text
        except BaseException as e:
            failures.append(e)

    def collector(runs: list[dict[str, Any]]) -> None:
        try:
            while not stop.is_set():
                runs.append(gc(server, "--grace-period", "0"))
        except BaseException as e:
            failures.append(e)

    runs: list[dict[str, Any]] = []
    threads = [threading.Thread(target=pusher, args=(w,)) for w in range(3)]
    threads.append(threading.Thread(target=collector, args=(runs,)))
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(120)
    assert not failures, failures
    assert len(runs) >= 3 and sum(r["blobs_deleted"] for r in runs) > 0, runs

    with server.client() as http:
        for (repo, tag), body in acknowledged.items():
            pulls_back(http, repo, tag, body)
    final = gc(server, "--grace-period", "0")
    assert final["manifests_deleted"] == 0
    # Nothing unreachable remains: every blob row is referenced, and files and rows agree.
    assert unreferenced_blob_rows(server) == 0
    assert blob_files(server.data_dir) == blob_rows(server.data_dir)


def test_gc_racing_pushes_and_deletes_loses_nothing(server: RunningServer) -> None:
    race(server)
