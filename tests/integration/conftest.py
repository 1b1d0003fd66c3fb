"""Fixtures for the real-client round-trip tests (tests/integration/test_clients_*.py).

By default the tests run against Dockyard's own ``server`` fixture (tests/conftest.py).  With
``DOCKYARD_TEST_AGAINST_REFERENCE=1`` the ``server`` fixture is replaced by the reference
registry (Debian's ``docker-registry``, distribution 2.8) on 127.0.0.1, which is how a test is
checked to be right before blaming the server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .clients import Clients, DockerDaemon, HasLog, file_tail, require_tool

AGAINST_REFERENCE = os.environ.get("DOCKYARD_TEST_AGAINST_REFERENCE") == "1"


@dataclass
class ReferenceRegistry:
    """Same shape as tests/conftest.py's RunningServer, backed by distribution's registry."""

    host: str
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_reference_registry(base: Path) -> ReferenceRegistry:
    binary = require_tool("docker-registry")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    data_dir = base / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = base / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {data_dir}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log_path = base / "registry.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    reg = ReferenceRegistry(f"127.0.0.1:{port}", f"http://127.0.0.1:{port}", data_dir, proc, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {proc.returncode}:\n{file_tail(log_path)}")
        try:
            if httpx.get(f"{reg.url}/v2/", timeout=1).status_code == 200:
                return reg
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    reg.stop()
    raise RuntimeError(f"docker-registry did not answer in 30 s:\n{file_tail(log_path)}")


if AGAINST_REFERENCE:

    @pytest.fixture(scope="session")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRegistry]:  # noqa: F811
        reg = start_reference_registry(tmp_path_factory.mktemp("reference-registry"))
        yield reg
        reg.stop()


@pytest.fixture
def clients(server: HasLog, tmp_path: Path) -> Iterator[Clients]:
    """skopeo/podman bound to the registry under test, with private config under tmp_path."""
    c = Clients(server, tmp_path)
    yield c
    c.close()


@pytest.fixture
def other_repo(repo: str) -> str:
    """A second repository name unique to this test."""
    return repo + "-other"


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerDaemon]:
    """A private dockerd for the session (per xdist worker; the docker tests share one
    xdist_group).  A daemon that will not start is an error with its log attached, never a
    skip.  Its logs are kept in the session's temporary directory under dockerd-logs*/."""
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


@pytest.fixture
def docker(dockerd: DockerDaemon, server: HasLog) -> DockerDaemon:
    dockerd.registry = server
    return dockerd
