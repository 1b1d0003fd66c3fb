"""Fixtures for the real-client round-trip tests (tests/integration/test_clients_*.py).

By default the tests run against Dockyard's own ``server`` fixture (tests/conftest.py).  With
``DOCKYARD_TEST_AGAINST_REFERENCE=1`` the ``server`` fixture is replaced by the reference
registry (Debian's ``docker-registry``, distribution 2.8) on 127.0.0.1, which is how a test is
checked to be right before blaming the server.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer, free_port, wait_until_ready

from .clients import Clients, DockerDaemon, HasLog, require_tool

AGAINST_REFERENCE = os.environ.get("DOCKYARD_TEST_AGAINST_REFERENCE") == "1"


def start_reference_registry(base: Path) -> RunningServer:
    binary = require_tool("docker-registry")
    port = free_port()
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
    reg = RunningServer(f"127.0.0.1:{port}", f"http://127.0.0.1:{port}", data_dir, proc, log_path)
    return wait_until_ready(reg, "docker-registry")


if AGAINST_REFERENCE:

    @pytest.fixture(scope="session")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:  # noqa: F811
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


@pytest.fixture
def docker(dockerd: DockerDaemon, server: HasLog) -> DockerDaemon:
    dockerd.registry = server
    return dockerd
