"""/_ping, /health and /load_balancer_status on real servers: healthy, storage gone, recovered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer, start_server
from tests.helpers import push_image

PROBES = ("/_ping", "/health", "/load_balancer_status")
CACHE_SECONDS = 2.0  # observability.health.STORAGE_CACHE_SECONDS


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of this module's own: one test breaks its storage."""
    s = start_server(tmp_path_factory.mktemp("health") / "data")
    yield s
    s.stop()


def wait_for(http: httpx.Client, path: str, status: int, seconds: float = 4 * CACHE_SECONDS) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        r = http.get(path)
        if r.status_code == status or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def test_healthy(own_server: RunningServer) -> None:
    with own_server.client() as http:
        ping = http.get("/_ping")
        assert ping.status_code == 200
        assert ping.json() == {"Healthy": True, "Error": ""}
        health = http.get("/health")
        assert health.status_code == 200
        assert health.json() == {
            "Healthy": True,
            "Error": "",
            "components": {
                "database": {"status": "ok"},
                "storage": {"status": "ok"},
                "auth": {"status": "disabled"},
                "signer": {"status": "ok"},
                "jobs": {"status": "not configured"},
            },
        }
        lb = http.get("/load_balancer_status")
        assert (lb.status_code, lb.json()) == (200, {"status": "ok"})
        for path in PROBES:
            head = http.head(path)
            assert head.status_code == 200 and head.content == b""


def test_probes_leave_no_files(own_server: RunningServer) -> None:
    with own_server.client() as http:
        for _ in range(3):
            assert http.get("/health").status_code == 200
            time.sleep(CACHE_SECONDS / 2)
    root = own_server.data_dir / "registry"
    assert not (root / "_health").exists() or not any((root / "_health").iterdir())


def _break_storage(root: Path) -> Path | None:
    """Put a plain file where the storage root directory was: every storage call fails."""
    moved = None
    if root.exists():
        moved = root.with_name("registry.moved")
        root.rename(moved)
    root.write_text("not a directory")
    return moved


def test_storage_failure_is_named_then_recovers(own_server: RunningServer) -> None:
    root = own_server.data_dir / "registry"
    with own_server.client() as http:
        assert http.get("/_ping").status_code == 200
        moved = _break_storage(root)
        try:
            ping = wait_for(http, "/_ping", 503)
            assert ping.status_code == 503, ping.text
            body = ping.json()
            assert body["Healthy"] is False
            assert body["Error"].startswith("storage: ")
            assert "database" not in body["Error"]
            assert str(root) not in body["Error"]  # details go to the log, not to anonymous callers

            health = http.get("/health")
            assert health.status_code == 503
            components = health.json()["components"]
            assert components["storage"]["status"] == "error"
            assert components["database"] == {"status": "ok"}

            lb = http.get("/load_balancer_status")
            assert lb.status_code == 503
            assert lb.json()["status"] == "error"
            assert "storage" in lb.json()["error"]
        finally:
            root.unlink()
            if moved is not None:
                moved.rename(root)
        recovered = wait_for(http, "/_ping", 200)
        assert recovered.status_code == 200, recovered.text
        assert recovered.json() == {"Healthy": True, "Error": ""}
        assert wait_for(http, "/load_balancer_status", 200).status_code == 200
    assert "health check: storage failed" in own_server.log_path.read_text()


def test_no_authentication_needed(tmp_path: Path) -> None:
    s = start_server(tmp_path / "data", auth=True)
    try:
        with s.client() as http:
            assert http.get("/v2/").status_code == 401
            for path in PROBES:
                assert http.get(path).status_code == 200, path
            assert http.get("/health").json()["components"]["auth"] == {"status": "ok"}
            assert http.get("/metrics").status_code == 200
    finally:
        s.stop()


def test_a_signer_that_cannot_open_its_keys_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data, extra_env={"DOCKYARD_SIGNER_PASSPHRASE": "the-first-passphrase"})
    try:
        with first.client() as http:
            push_image(http, "trust/app", "v1", layers=1)
            key = http.get(f"/v2/{first.host}/trust/app/_trust/tuf/timestamp.key")  # creates the keystore
            assert key.status_code == 200 and key.json()["keytype"] == "ecdsa"
            assert http.get("/health").json()["components"]["signer"] == {"status": "ok"}
    finally:
        first.stop()
    second = start_server(data, extra_env={"DOCKYARD_SIGNER_PASSPHRASE": "not-the-passphrase"})
    try:
        with second.client() as http:
            r = http.get("/health")
            assert r.status_code == 503
            assert r.json()["components"]["signer"]["status"] == "error"
            assert r.json()["Error"].startswith("signer:")
            # The registry itself still serves; trust requests fail cleanly.
            assert http.get("/v2/trust/app/tags/list").status_code == 200
            refused = http.get(f"/v2/{second.host}/trust/app/_trust/tuf/snapshot.key")
            assert refused.status_code == 500 and refused.json()["errors"][0]["code"] == "NO_CRYPTOSERVICE"
    finally:
        second.stop()
