"""The nginx front from `dockyard nginx-config`: a real nginx (as the current user, its own
runtime folder, loopback ports) before a Dockyard with accounts, one pair for the module.

nginx speaks HTTPS to clients with a certificate from Dockyard's CA and plain HTTP to the
replica, so the token realm being https proves the forwarded headers are honoured."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, RunningServer, free_port, start_server

from .clients import Clients, LayoutWriter, Platform, sha256

pytestmark = [pytest.mark.clients, pytest.mark.xdist_group("nginx")]

NGINX = "/usr/sbin/nginx"
ADMIN = ("admin", ADMIN_PASSWORD)
BLOB_ROUTE = 'dockyard_http_response_bytes_total{method="GET",route="/v2/{name}/blobs/{digest}"}'


@dataclass
class Front:
    """nginx before Dockyard: what Clients needs (host, url, log_path, client) plus the parts."""

    host: str  # 127.0.0.1:<https port>
    url: str
    http_url: str  # the port-80 listener
    log_path: Path  # nginx's error log
    runtime_dir: Path
    config: str
    ca_file: Path
    dockyard: RunningServer

    def verify(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, verify=self.verify(), auth=ADMIN)


def nginx_config(data_dir: Path, *args: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "dockyard", "nginx-config", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def nginx_test(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NGINX, "-t", "-c", str(config)], capture_output=True, text=True, timeout=30)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}:\n{log.read_text() if log.exists() else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("nginx did not listen in 15 s")


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    base = tmp_path_factory.mktemp("nginx-front")
    dockyard = start_server(base / "data", auth=True)
    https_port, http_port = free_port(), free_port()
    runtime = base / "run"
    user = ("--user", getpass.getuser()) if os.geteuid() == 0 else ()  # else workers would be nobody
    text = nginx_config(
        dockyard.data_dir,
        *("--upstream", dockyard.host, "--upstream-http", "--listen-address", "127.0.0.1"),
        *("--https-port", str(https_port), "--http-port", str(http_port), "--runtime-dir", str(runtime), *user),
    )
    conf = base / "nginx.conf"
    conf.write_text(text)
    checked = nginx_test(conf)
    assert checked.returncode == 0, checked.stderr
    log = runtime / "error.log"
    with open(base / "nginx.out", "ab") as out:
        proc = subprocess.Popen([NGINX, "-c", str(conf), "-g", "daemon off;"], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(https_port, proc, log)
        yield Front(
            host=f"127.0.0.1:{https_port}",
            url=f"https://127.0.0.1:{https_port}",
            http_url=f"http://127.0.0.1:{http_port}",
            log_path=log,
            runtime_dir=runtime,
            config=text,
            ca_file=dockyard.data_dir / "ca" / "ca.crt",
            dockyard=dockyard,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        dockyard.stop()


@pytest.fixture
def clients(front: Front, tmp_path: Path) -> Iterator[Clients]:
    c = Clients(front, tmp_path)
    yield c
    c.close()


def blob_bytes_sent(front: Front) -> float:
    """Dockyard's own count of blob-GET body bytes (read from it directly, not through nginx)."""
    text = httpx.get(f"{front.dockyard.url}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith(BLOB_ROUTE + " "):
            return float(line.split()[-1])
    return 0.0


def push_blob(http: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha256(data)
    r = http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    return digest


def test_nginx_accepts_the_generated_configs(front: Front, tmp_path: Path) -> None:
    assert "proxy_request_buffering off;" in front.config and "client_max_body_size 0;" in front.config
    assert f"alias {front.dockyard.data_dir.absolute() / 'registry' / 'blobs'}/;" in front.config
    key = front.dockyard.data_dir / "config" / "nginx" / "server.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert b"ENCRYPTED" not in key.read_bytes()
    # The conf.d variant, proxying to an HTTPS replica verified with the CA, inside a minimal nginx.conf.
    part = tmp_path / "dockyard.conf"
    part.write_text(nginx_config(front.dockyard.data_dir, "--https-port", "8443", "--http-port", "8080"))
    assert "proxy_pass https://dockyard;" in part.read_text() and "proxy_ssl_verify on;" in part.read_text()
    (tmp_path / "tmp").mkdir()
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{\n"
        + "".join(f"    {kind}_temp_path {tmp_path}/tmp/{kind};\n" for kind in ("client_body", "proxy", "fastcgi"))
        + "".join(f"    {kind}_temp_path {tmp_path}/tmp/{kind};\n" for kind in ("uwsgi", "scgi"))
        + f"    include {part};\n}}\n"
    )
    checked = nginx_test(main)
    assert checked.returncode == 0, checked.stderr


def test_skopeo_push_and_pull_through_nginx_over_verified_https(front: Front, clients: Clients, tmp_path: Path) -> None:
    writer = LayoutWriter(tmp_path / "layout")
    image = writer.image([{"big.bin": os.urandom(3 << 20)}, {"small.txt": b"through nginx\n" * 50}], Platform("amd64"))
    writer.tag(image.descriptor, "latest")
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(front.ca_file, certs / "ca.crt")
    creds = f"admin:{ADMIN_PASSWORD}"
    ref = f"docker://{front.host}/admin/through-nginx:latest"
    digestfile = tmp_path / "digest"
    clients.skopeo(
        "copy", "--dest-cert-dir", certs, "--dest-creds", creds, "--digestfile", digestfile,
        f"oci:{writer.root}:latest", ref,
    )  # fmt: skip
    assert digestfile.read_text().strip() == image.digest
    back = tmp_path / "back"
    clients.skopeo("copy", "--src-cert-dir", certs, "--src-creds", creds, ref, f"oci:{back}:latest")
    index = json.loads((back / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest
    for blob in [*image.layers, image.config, image.manifest]:
        assert (back / "blobs" / "sha256" / sha256(blob).removeprefix("sha256:")).read_bytes() == blob
    # Without the CA skopeo refuses nginx's certificate.
    res = clients.skopeo("inspect", "--raw", "--creds", creds, ref, check=False)
    assert res.returncode != 0 and "certificate" in res.stderr


def test_blob_get_is_sent_by_nginx_from_the_file(front: Front) -> None:
    data = os.urandom(5 << 20)
    with front.client() as http:
        digest = push_blob(http, "admin/accel", data)
        before = blob_bytes_sent(front)
        r = http.get(f"/v2/admin/accel/blobs/{digest}")
        assert r.status_code == 200 and r.content == data
        assert r.headers["Docker-Content-Digest"] == digest
        assert r.headers["ETag"] == f'"{digest}"'
        assert r.headers["Content-Type"] == "application/octet-stream"
        assert "x-accel-redirect" not in r.headers
        # nginx handles Range on the file.
        r = http.get(f"/v2/admin/accel/blobs/{digest}", headers={"Range": "bytes=1000-1999"})
        assert r.status_code == 206 and r.content == data[1000:2000]
        assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
        r = http.get(f"/v2/admin/accel/blobs/{digest}", headers={"Range": "bytes=-10"})
        assert r.status_code == 206 and r.content == data[-10:]
        assert http.head(f"/v2/admin/accel/blobs/{digest}").headers["Content-Length"] == str(len(data))
        assert http.get(f"/v2/admin/accel/blobs/{digest}", headers={"If-None-Match": f'"{digest}"'}).status_code == 304
    # Dockyard sent none of those bytes itself ...
    assert blob_bytes_sent(front) == before
    # ... while a direct GET (no nginx, so no X-Dockyard-Accel) has Dockyard send them all.
    with httpx.Client(base_url=front.dockyard.url, timeout=60, auth=ADMIN) as direct:
        assert direct.get(f"/v2/admin/accel/blobs/{digest}").content == data
    assert blob_bytes_sent(front) == before + len(data)


def test_unauthorized_blob_get_through_nginx_gets_401_with_an_https_realm(front: Front) -> None:
    data = os.urandom(300 << 10)
    with front.client() as http:
        digest = push_blob(http, "admin/private", data)
    with httpx.Client(base_url=front.url, timeout=60, verify=front.verify()) as anonymous:
        r = anonymous.get(f"/v2/admin/private/blobs/{digest}")
        assert r.status_code == 401
        assert data[:64] not in r.content and r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        challenge = r.headers["WWW-Authenticate"]
        realm = re.search(r'realm="([^"]+)"', challenge)
        assert realm and realm.group(1) == f"{front.url}/auth/token"  # X-Forwarded-Proto and Host honoured
        # The realm works: a token from it opens the blob, still sent by nginx.
        token = anonymous.get(
            realm.group(1), params={"service": "dockyard", "scope": "repository:admin/private:pull"}, auth=ADMIN
        ).json()["token"]
        r = anonymous.get(f"/v2/admin/private/blobs/{digest}", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.content == data


def test_accel_header_sent_straight_to_dockyard_reveals_nothing(front: Front) -> None:
    """Without nginx the header only changes how an authorized answer is shaped: refused requests
    stay refused, an authorized one gets the headers and the digest-derived path, no more; a
    prefix outside /_dockyard…/ is ignored (so no proxy could be steered elsewhere)."""
    data = os.urandom(64 << 10)
    with front.client() as http:
        digest = push_blob(http, "admin/direct", data)
    hexd = digest.removeprefix("sha256:")
    accel = {"X-Dockyard-Accel": "/_dockyard_blobs/"}
    with httpx.Client(base_url=front.dockyard.url, timeout=60) as direct:
        r = direct.get(f"/v2/admin/direct/blobs/{digest}", headers=accel)
        assert r.status_code == 401 and "x-accel-redirect" not in r.headers and data[:64] not in r.content
        r = direct.get(f"/v2/admin/direct/blobs/{digest}", headers=accel, auth=ADMIN)
        assert r.status_code == 200 and r.content == b""
        assert r.headers["X-Accel-Redirect"] == f"/_dockyard_blobs/sha256/{hexd[:2]}/{hexd}"
        for prefix in ("/etc/", "/_dockyard_blobs/../../", "/_dockyard_blobs", "http://x/_dockyard/"):
            r = direct.get(f"/v2/admin/direct/blobs/{digest}", headers={"X-Dockyard-Accel": prefix}, auth=ADMIN)
            assert "x-accel-redirect" not in r.headers and r.content == data
    # Through nginx a client's own header is replaced, and the internal location is not reachable.
    with front.client() as http:
        r = http.get(f"/v2/admin/direct/blobs/{digest}", headers={"X-Dockyard-Accel": "/etc/"})
        assert r.status_code == 200 and r.content == data
        assert http.get(f"/_dockyard_blobs/sha256/{hexd[:2]}/{hexd}").status_code == 404


def test_plain_http_listener_redirects_to_https(front: Front) -> None:
    r = httpx.get(f"{front.http_url}/v2/admin/app/tags/list?n=1", timeout=30)
    assert r.status_code == 308
    assert r.headers["Location"] == f"{front.url}/v2/admin/app/tags/list?n=1"


def test_large_chunked_upload_streams_through_nginx_without_spooling(front: Front) -> None:
    size, piece = 64 << 20, 1 << 20
    seed = os.urandom(piece)
    pieces = [hashlib.sha256(seed + i.to_bytes(4, "big")).digest() * (piece // 32) for i in range(size // piece)]
    digest = "sha256:" + hashlib.sha256(b"".join(pieces)).hexdigest()

    def body() -> Iterator[bytes]:
        yield from pieces

    with front.client() as http:
        r = http.post("/v2/admin/big/blobs/uploads/")
        assert r.status_code == 202, r.text
        r = http.patch(r.headers["Location"], content=body(), headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 202, r.text
        assert r.headers["Range"] == f"0-{size - 1}"
        r = http.put(r.headers["Location"], params={"digest": digest})
        assert r.status_code == 201, r.text
        h = hashlib.sha256()
        with http.stream("GET", f"/v2/admin/big/blobs/{digest}") as got:
            assert got.status_code == 200
            for chunk in got.iter_bytes():
                h.update(chunk)
        assert "sha256:" + h.hexdigest() == digest
    spooled = front.runtime_dir / "client_body"
    assert not spooled.exists() or not any(spooled.rglob("*"))
    assert "buffered to a temporary file" not in front.log_path.read_text()
