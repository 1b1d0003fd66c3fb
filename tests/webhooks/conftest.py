"""Fixtures for webhooks: a receiver on loopback and a real Dockyard (auth on) per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.conftest import Api, start_api_server
from tests.webhooks.receiver import Receiver, start_receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r, server = start_receiver()
    yield r
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    server = start_api_server(tmp_path_factory)
    client = Api(server)
    yield client
    client.close()
    server.stop()
