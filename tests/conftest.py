"""Shared fixtures: a real Dockyard server over HTTP, started as its own process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from tests.integration.clients import DockerDaemon


def asgi_get(app: Any, path: str, *, raise_app_exceptions: bool = True, **kwargs: Any) -> httpx.Response:
    """One GET to an ASGI app in process, for the few failures no real server can be made to
    show from outside (an exception escaping a handler)."""

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get(path, **kwargs)

    return asyncio.run(call())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    """A `dockyard serve` process on loopback."""

    host: str  # "127.0.0.1:PORT", what clients put in image references
    url: str  # "http://127.0.0.1:PORT"
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def verify(self) -> ssl.SSLContext | bool:
        """What httpx should verify with: the server's own CA over HTTPS."""
        if not self.url.startswith("https:"):
            return True
        ca = self.data_dir / "ca" / "ca.crt"
        return ssl.create_default_context(cafile=str(ca)) if ca.exists() else False

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, verify=self.verify())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


ADMIN_PASSWORD = "admin-test-password"


def start_server(
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
    auth: bool = False,
    tls: bool = False,
) -> RunningServer:
    """Start `dockyard serve`. Protocol tests run with auth off; auth tests turn it on with
    a known admin password. Plain HTTP (`--http`) unless ``tls``: then HTTPS with the built-in
    CA (``<data_dir>/ca/ca.crt``, see ``RunningServer.verify``)."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-server-{port}.log"
    env = {
        **os.environ,
        "DOCKYARD_AUTH__ENABLED": "true" if auth else "false",
        "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        **(extra_env or {}),
    }
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "dockyard", "serve", "--data-dir", str(data_dir)),
                *("--listen", f"127.0.0.1:{port}"),
                *(() if tls else ("--http",)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    scheme = "https" if tls else "http"
    server = RunningServer(f"127.0.0.1:{port}", f"{scheme}://127.0.0.1:{port}", data_dir, proc, log_path)
    return wait_until_ready(server, "dockyard serve")


def wait_until_ready(server: RunningServer, what: str, seconds: float = 30) -> RunningServer:
    """Wait for GET /v2/ to answer (200, or 401 with auth on); stop the process and raise with its log otherwise."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{what} exited with {server.process.returncode}:\n{server.log_path.read_text()}")
        try:
            if httpx.get(f"{server.url}/v2/", timeout=1, verify=server.verify()).status_code in (200, 401):
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{what} did not answer in {seconds:.0f} s:\n{server.log_path.read_text()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server shared by a whole test session (per xdist worker)."""
    s = start_server(tmp_path_factory.mktemp("dockyard") / "data")
    yield s
    s.stop()


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


_counter = 0


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name unique to this test, so tests sharing a server do not collide."""
    global _counter
    _counter += 1
    base = "".join(ch if ch.isalnum() else "-" for ch in request.node.name.lower()).strip("-")[:40].strip("-")
    return f"test/{base}-{os.getpid()}-{_counter}"


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerDaemon]:
    """A private dockerd for the session (per xdist worker; the docker tests share one
    xdist_group).  A daemon that will not start is an error with its log attached, never a
    skip.  Its logs are kept in the session's temporary directory under dockerd-logs*/."""
    from tests.integration.clients import DockerDaemon  # the docker tooling lives with the client tests

    daemon = DockerDaemon()
    try:
        daemon.start()
    except BaseException:
        daemon.stop()
        daemon.remove(keep_logs_in=tmp_path_factory.mktemp("dockerd-logs"))
        raise
    yield daemon
    problems = daemon.stop()
    daemon.remove(keep_logs_in=tmp_path_factory.mktemp("dockerd-logs"))
    assert not problems, "dockerd did not shut down cleanly:\n" + "\n".join(problems)
