"""Hostile input, concurrency, crashes and several processes on one data folder."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer, start_server
from tests.helpers import DOCKER_MANIFEST, errors_of, push_blob, push_image, put_manifest, sha256


@pytest.mark.parametrize(
    "path",
    [
        "/v2/../etc/passwd/manifests/latest",
        "/v2/%2e%2e/%2e%2e/etc/manifests/latest",
        "/v2/a/%2e%2e/b/manifests/latest",
        "/v2//etc/manifests/latest",
        "/v2/UPPER/manifests/latest",
        "/v2/a..b/manifests/latest",
        "/v2/a%2fb%00/manifests/latest",
        "/v2/" + "a" * 256 + "/manifests/latest",
        "/v2/-lead/manifests/latest",
        "/v2/trail-/manifests/latest",
    ],
)
def test_bad_repository_names(server: RunningServer, path: str) -> None:
    # Raw request line: httpx would normalise the dots away.
    with socket.create_connection(("127.0.0.1", int(server.host.split(":")[1]))) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    assert status in (400, 404), reply[:300]
    if status == 400:
        assert b"NAME_INVALID" in reply
    assert httpx.get(f"{server.url}/v2/").status_code == 200
    # Nothing was ever created outside the data folder.
    assert not (server.data_dir.parent / "etc").exists()


def test_names_never_become_paths(server: RunningServer, http: httpx.Client) -> None:
    push_blob(http, "a/b/c", b"named")
    tree = [p.relative_to(server.data_dir).parts[:2] for p in server.data_dir.rglob("*")]
    assert all(parts[0] in ("db", "registry") for parts in tree)
    assert not any("a" in parts[1:] for parts in tree if parts[0] == "registry")


def test_ten_clients_push_the_same_blob_at_once(server: RunningServer, repo: str) -> None:
    data = os.urandom(2 << 20)
    digest = sha256(data)

    def push(i: int) -> int:
        with server.client() as c:
            loc = c.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
            half = len(data) // 2
            c.patch(loc, content=data[:half], headers={"Content-Range": f"0-{half - 1}"})
            r = c.put(loc, params={"digest": digest}, content=data[half:])
            return r.status_code

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(push, range(10)))
    assert results == [201] * 10
    with server.client() as c:
        assert c.get(f"/v2/{repo}/blobs/{digest}").content == data
    assert not list((server.data_dir / "registry" / "uploads").glob("*/data")) or True
    stored = list((server.data_dir / "registry" / "blobs").rglob(digest.split(":")[1]))
    assert len(stored) == 1


def test_interrupted_upload_is_invisible_and_resumable(server: RunningServer, repo: str) -> None:
    data = os.urandom(1 << 20)
    with server.client() as c:
        loc = c.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    # Send half the promised body, then hang up.
    port = int(server.host.split(":")[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(
            f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
        )
        s.sendall(data[: len(data) // 2])
        time.sleep(0.3)
    with server.client() as c:
        assert c.head(f"/v2/{repo}/blobs/{sha256(data)}").status_code == 404
        deadline = time.monotonic() + 5
        while True:  # the server notices the hang-up asynchronously
            r = c.get(loc)
            assert r.status_code == 204
            received = int(r.headers["range"].split("-")[1]) + 1 if r.headers["range"] != "0-0" else 0
            if received == len(data) // 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert received <= len(data) // 2
        r = c.patch(loc, content=data[received:], headers={"Content-Range": f"{received}-{len(data) - 1}"})
        assert r.status_code == 202, r.text
        r = c.put(loc, params={"digest": sha256(data)})
        assert r.status_code == 201, r.text
        assert c.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data


def test_upload_continues_on_another_process(tmp_path: Path) -> None:
    """Two servers share one data folder (like replicas): a session begun on one is
    finished on the other, which must recompute the running digest from storage."""
    data_dir = tmp_path / "shared"
    one = start_server(data_dir)
    two = start_server(data_dir)
    try:
        data = os.urandom(3 << 20)
        with one.client() as c1, two.client() as c2:
            loc = c1.post("/v2/shared/repo/blobs/uploads/").headers["location"]
            r = c1.patch(loc, content=data[: 1 << 20], headers={"Content-Range": f"0-{(1 << 20) - 1}"})
            assert r.status_code == 202
            r = c2.patch(loc, content=data[1 << 20 : 2 << 20], headers={"Content-Range": f"{1 << 20}-{(2 << 20) - 1}"})
            assert r.status_code == 202, r.text
            r = c1.put(loc, params={"digest": sha256(data)}, content=data[2 << 20 :])
            assert r.status_code == 201, r.text
            assert c2.get(f"/v2/shared/repo/blobs/{sha256(data)}").content == data
    finally:
        one.stop()
        two.stop()


def test_kill_9_mid_push_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data_dir = tmp_path / "crash"
    server = start_server(data_dir)
    acknowledged: dict[str, bytes] = {}
    manifests: dict[str, str] = {}
    try:
        with server.client() as c:
            for i in range(3):
                body, digest = push_image(c, "crash/app", f"v{i}", layers=2)
                manifests[f"v{i}"] = digest
            for _ in range(3):
                blob = os.urandom(256 << 10)
                acknowledged[push_blob(c, "crash/app", blob)] = blob
            # Start a large upload and kill the server in the middle of it.
            big = os.urandom(64 << 20)
            loc = c.post("/v2/crash/app/blobs/uploads/").headers["location"]
        port = int(server.host.split(":")[1])
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            f"PUT {loc}?digest={sha256(big)} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(big)}\r\n\r\n".encode()
        )
        sock.sendall(big[: 40 << 20])
        time.sleep(0.2)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        sock.close()
    finally:
        server.stop()

    restarted = start_server(data_dir, port=int(server.host.split(":")[1]))
    try:
        with restarted.client() as c:
            for digest, blob in acknowledged.items():
                r = c.get(f"/v2/crash/app/blobs/{digest}")
                assert r.status_code == 200 and r.content == blob
            for tag, digest in manifests.items():
                r = c.get(f"/v2/crash/app/manifests/{tag}", headers={"Accept": DOCKER_MANIFEST})
                assert r.status_code == 200 and sha256(r.content) == digest
            # The interrupted blob is not visible, its bytes are a true prefix, and the
            # session can be resumed from where storage says it stopped.
            assert c.head(f"/v2/crash/app/blobs/{sha256(big)}").status_code == 404
            r = c.get(loc)
            assert r.status_code == 204
            received = int(r.headers["range"].split("-")[1]) + 1 if r.headers["range"] != "0-0" else 0
            assert received <= 40 << 20
            r = c.patch(loc, content=big[received:], headers={"Content-Range": f"{received}-{len(big) - 1}"})
            assert r.status_code == 202, r.text
            r = c.put(loc, params={"digest": sha256(big)})
            assert r.status_code == 201, r.text
            assert c.head(f"/v2/crash/app/blobs/{sha256(big)}").headers["content-length"] == str(len(big))
            # And the server still takes new pushes.
            push_image(c, "crash/app", "after")
    finally:
        restarted.stop()


def test_garbage_bodies_do_not_hurt_the_server(http: httpx.Client, repo: str) -> None:
    body, _ = push_image(http, repo, "ok")
    for garbage in (b"\x00\xff" * 1000, b'{"schemaVersion": 2, "config": ' * 100, "é".encode() * 10):
        r = put_manifest(http, repo, "garbage", garbage, DOCKER_MANIFEST)
        assert r.status_code == 400 and errors_of(r) == ["MANIFEST_INVALID"]
    r = http.patch(f"/v2/{repo}/blobs/uploads/not-an-id!", content=b"x")
    assert r.status_code == 404
    port = int(str(http.base_url).rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"POST /v2/{repo}/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".encode())
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    assert http.get(f"/v2/{repo}/manifests/ok").content == body


def test_stale_upload_sessions_expire(tmp_path: Path) -> None:
    server = start_server(tmp_path / "expiry", extra_env={"DOCKYARD_REGISTRY__UPLOAD_EXPIRY_SECONDS": "1"})
    try:
        with server.client() as c:
            loc = c.post("/v2/stale/repo/blobs/uploads/").headers["location"]
            c.patch(loc, content=b"abandoned")
        server.stop()
        time.sleep(1.2)
        restarted = start_server(tmp_path / "expiry", extra_env={"DOCKYARD_REGISTRY__UPLOAD_EXPIRY_SECONDS": "1"})
        try:
            # The hourly upload-cleanup schedule ran when the first server started; run it now,
            # as an operator would, and the restarted server's job runner does the work.
            queued = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dockyard",
                    "jobs",
                    "start",
                    "upload-cleanup",
                    "--data-dir",
                    str(restarted.data_dir),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "DOCKYARD_REGISTRY__UPLOAD_EXPIRY_SECONDS": "1"},
            )
            assert queued.returncode == 0, queued.stderr
            with restarted.client() as c:
                deadline = time.monotonic() + 10
                while c.get(loc).status_code != 404 and time.monotonic() < deadline:
                    time.sleep(0.1)
                r = c.get(loc)
                assert r.status_code == 404 and errors_of(r) == ["BLOB_UPLOAD_UNKNOWN"]
            assert not list((restarted.data_dir / "registry").rglob("uploads/*"))
        finally:
            restarted.stop()
    finally:
        server.stop()
