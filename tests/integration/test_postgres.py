"""The registry on PostgreSQL: the same statements must work unchanged on both databases.
A real PostgreSQL server is started for this module (Debian's postgresql package)."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from bench.benchlib.postgres import Postgres

from tests.conftest import RunningServer, start_server
from tests.helpers import DOCKER_MANIFEST, OCI_MANIFEST, errors_of, push_blob, push_image, put_manifest, sha256


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    pg = Postgres.start(fsync=False)
    try:
        yield pg.create_dockyard_database("dockyard")
    finally:
        pg.stop()


@pytest.fixture(scope="module")
def pg_server(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("dockyard-pg") / "data", extra_env={"DOCKYARD_DATABASE_URL": postgres_url})
    yield s
    s.stop()


@pytest.fixture
def pg(pg_server: RunningServer) -> Iterator[httpx.Client]:
    with pg_server.client() as c:
        yield c


def test_push_pull_on_postgres(pg: httpx.Client) -> None:
    repo = "pg/app"
    data = os.urandom(200_000)
    loc = pg.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    r = pg.patch(loc, content=data[:100_000], headers={"Content-Range": "0-99999"})
    assert r.status_code == 202
    r = pg.put(r.headers["location"], params={"digest": sha256(data)}, content=data[100_000:])
    assert r.status_code == 201, r.text
    assert pg.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data
    body, digest = push_image(pg, repo, "v1", media_type=OCI_MANIFEST)
    r = pg.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.content == body and r.headers["docker-content-digest"] == digest
    for tag in ("v2", "v3"):
        assert put_manifest(pg, repo, tag, body, OCI_MANIFEST).status_code == 201
    r = pg.get(f"/v2/{repo}/tags/list", params={"n": 2})
    assert r.json()["tags"] == ["v1", "v2"] and "last=v2" in r.headers["link"]
    assert pg.delete(f"/v2/{repo}/manifests/v3").status_code == 202
    assert pg.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
    assert pg.get(f"/v2/{repo}/tags/list").json()["tags"] == []


def test_mount_referrers_and_errors_on_postgres(pg: httpx.Client) -> None:
    digest = push_blob(pg, "pg/src", b"shared layer")
    r = pg.post("/v2/pg/dst/blobs/uploads/", params={"mount": digest, "from": "pg/src"})
    assert r.status_code == 201
    _, subject = push_image(pg, "pg/dst", "app", media_type=OCI_MANIFEST)
    empty = push_blob(pg, "pg/dst", b"{}")
    sig = (
        b'{"schemaVersion":2,"mediaType":"%s","artifactType":"application/x-sig",'
        b'"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[],'
        b'"subject":{"mediaType":"%s","digest":"%s","size":1}}'
        % (OCI_MANIFEST.encode(), empty.encode(), OCI_MANIFEST.encode(), subject.encode())
    )
    r = put_manifest(pg, "pg/dst", "sig", sig, OCI_MANIFEST)
    assert r.status_code == 201 and r.headers["oci-subject"] == subject
    r = pg.get(f"/v2/pg/dst/referrers/{subject}")
    assert [d["digest"] for d in r.json()["manifests"]] == [sha256(sig)]
    bad = b'{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"x","digest":"%s","size":1},"layers":[]}' % (
        DOCKER_MANIFEST.encode(),
        sha256(b"missing").encode(),
    )
    r = put_manifest(pg, "pg/dst", "bad", bad, DOCKER_MANIFEST)
    assert r.status_code == 400 and errors_of(r) == ["MANIFEST_BLOB_UNKNOWN"]
    assert pg.get("/v2/_catalog").json()["repositories"] == sorted(pg.get("/v2/_catalog").json()["repositories"])


def test_concurrent_pushes_of_one_blob_on_postgres(pg_server: RunningServer) -> None:
    data = os.urandom(1 << 20)

    def push(i: int) -> int:
        with pg_server.client() as c:
            r = c.post(f"/v2/pg/race{i % 3}/blobs/uploads/", params={"digest": sha256(data)}, content=data)
            return r.status_code

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        assert list(pool.map(push, range(10))) == [201] * 10
    with pg_server.client() as c:
        for i in range(3):
            assert c.get(f"/v2/pg/race{i}/blobs/{sha256(data)}").content == data


def test_unsynced_write_commits_and_leaves_the_connection_synchronous(postgres_url: str) -> None:
    from dockyard.metadata.db import Database

    db = Database(postgres_url)
    try:
        db.write_sync(lambda conn: conn.exec_driver_sql("CREATE TABLE unsynced_probe (v integer)"))

        def insert(conn: Any) -> str:
            conn.exec_driver_sql("INSERT INTO unsynced_probe VALUES (1)")
            return str(conn.exec_driver_sql("SHOW synchronous_commit").scalar_one())

        assert db.write_unsynced_sync(insert) == "off"  # only inside that transaction (SET LOCAL)
        assert db.read_sync(lambda conn: conn.exec_driver_sql("SELECT v FROM unsynced_probe").scalars().all()) == [1]
        assert db.write_sync(lambda conn: conn.exec_driver_sql("SHOW synchronous_commit").scalar_one()) == "on"
    finally:
        db.dispose()
