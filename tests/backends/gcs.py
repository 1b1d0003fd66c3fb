"""Google Cloud Storage for the tests: gcp-storage-emulator (PyPI, pure Python; JSON API with
resumable uploads, compose, rewrite, ranged reads, and ``/<bucket>/<object>`` downloads that
serve signed URLs) run as a subprocess on a loopback port, in memory.

The same subprocess serves an OAuth token endpoint, so the driver authenticates as a real
deployment would: ``start`` makes a throwaway service-account key whose ``token_uri`` points
there, and the endpoint checks each JWT-bearer assertion against that key (issuer, audience,
scope, lifetime, RS256 signature) before it hands out a token. The key also signs the V4
URLs of blob redirects. (The emulator itself ignores the bearer token.)

Run as ``python -m tests.backends.gcs --port P --token-port T --key FILE`` by ``start``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.backends import server_env, stop_process
from tests.conftest import free_port

BUCKET = "dockyard-tests"
CHUNK_SIZE_MIB = 1  # small, so uploads in the tests take several resumable chunks
ROOT = Path(__file__).resolve().parents[2]


def make_service_account_key(
    path: Path, token_uri: str, email: str = "dockyard-test@example.iam.gserviceaccount.com"
) -> None:
    """A service-account key file of the shape Google issues, with a fresh RSA key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "dockyard-tests",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": "1" * 21,
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(info, indent=1))
    path.chmod(0o600)


@dataclass
class GcsBackend:
    name: str
    endpoint: str
    token_url: str
    credentials_file: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def params(self, prefix: str) -> dict[str, Any]:
        return {
            "bucket": BUCKET,
            "prefix": prefix,
            "endpoint_url": self.endpoint,
            "credentials_file": str(self.credentials_file),
            "chunk_size_mib": CHUNK_SIZE_MIB,
        }

    def server_env(self, prefix: str) -> dict[str, str]:
        return server_env("gcs", self.params(prefix))

    def tokens_issued(self) -> int:
        return int(httpx.get(f"{self.token_url}/stats", timeout=10).json()["issued"])

    def stop(self) -> None:
        stop_process(self.process)


def start(workdir: Path) -> GcsBackend:
    workdir.mkdir(parents=True, exist_ok=True)
    port, token_port = free_port(), free_port()
    token_url = f"http://127.0.0.1:{token_port}"
    key_file = workdir / "service-account.json"
    make_service_account_key(key_file, f"{token_url}/token")
    log_path = workdir / "gcs-emulator.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.backends.gcs"),
                *("--port", str(port), "--token-port", str(token_port), "--key", str(key_file)),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    backend = GcsBackend("gcs", f"http://127.0.0.1:{port}", token_url, key_file, process, log_path)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the GCS emulator exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{backend.endpoint}/", timeout=2).status_code == 200 and backend.tokens_issued() >= 0:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            backend.stop()
            raise RuntimeError(f"the GCS emulator did not answer in 30 s:\n{log_path.read_text()}")
        time.sleep(0.05)
    with httpx.Client(base_url=f"{backend.endpoint}/storage/v1", timeout=30) as http:
        r = http.post("/b", json={"name": BUCKET})
        assert r.status_code in (200, 409), r.text
        # Deleted objects are gone at once, as in a bucket without soft delete; the
        # emulator would otherwise keep every deleted byte in memory for a week.
        r = http.patch(f"/b/{BUCKET}", json={"softDeletePolicy": {"retentionDurationSeconds": "0"}})
        assert r.status_code == 200, r.text
    return backend


# -- the subprocess ---------------------------------------------------------------------------


def _token_server(port: int, key_file: Path) -> ThreadingHTTPServer:
    import jwt
    from cryptography.hazmat.primitives import serialization

    info = json.loads(key_file.read_text())
    public_key = serialization.load_pem_private_key(info["private_key"].encode(), password=None).public_key()
    issued = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            with lock:
                self._answer(200, {"issued": issued[0]})

        def do_POST(self) -> None:  # noqa: N802
            form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
            if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
                return self._answer(400, {"error": "unsupported_grant_type"})
            try:
                claims = jwt.decode(
                    form["assertion"][0],
                    public_key,  # type: ignore[arg-type]
                    algorithms=["RS256"],
                    audience=info["token_uri"],
                    issuer=info["client_email"],
                    options={"require": ["iat", "exp", "iss", "aud", "scope"]},
                )
            except (KeyError, jwt.InvalidTokenError) as e:
                return self._answer(400, {"error": "invalid_grant", "error_description": str(e)})
            if "devstorage" not in claims["scope"] or claims["exp"] - claims["iat"] > 3600:
                return self._answer(400, {"error": "invalid_scope"})
            with lock:
                issued[0] += 1
            self._answer(200, {"access_token": secrets.token_urlsafe(24), "expires_in": 3599, "token_type": "Bearer"})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _serve(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-port", type=int, required=True)
    parser.add_argument("--key", type=Path, required=True)
    args = parser.parse_args(argv)

    import logging
    import socketserver

    from gcp_storage_emulator.server import create_server  # type: ignore[import-untyped]

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)  # every 404 is logged as an error
    # The emulator answers one request at a time; a deeper accept queue keeps concurrent
    # clients waiting instead of retrying their SYNs.
    socketserver.TCPServer.request_queue_size = 256
    server = create_server("127.0.0.1", args.port, in_memory=True)
    tokens = _token_server(args.token_port, args.key)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    server.start()
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        tokens.shutdown()
        server.stop()


if __name__ == "__main__":
    _serve(sys.argv[1:])
