"""A Dockyard server over HTTPS with the built-in CA, shared by the TLS tests of one worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import RunningServer, free_port, start_server


@pytest.fixture(scope="session")
def redirect_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory: pytest.TempPathFactory, redirect_port: int) -> Iterator[RunningServer]:
    s = start_server(
        tmp_path_factory.mktemp("dockyard-tls") / "data",
        extra_env={"DOCKYARD_TLS__REDIRECT_HTTP_PORT": str(redirect_port)},
        tls=True,
    )
    yield s
    s.stop()
