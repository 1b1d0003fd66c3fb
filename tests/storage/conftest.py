"""The ``driver`` fixture: every storage driver, built by name through the factory, so the
CheckedDriver wrapper is always in play. A new backend is one more entry in DRIVERS;
a backend that cannot be reached fails its tests, it is never skipped."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.storage.checked import CheckedDriver
from dockyard.storage.factory import create_driver
from tests import backends

# Driver name -> its parameters, given a fresh per-test directory.
DRIVERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "inmemory": lambda tmp: {},
    "filesystem": lambda tmp: {"rootdirectory": str(tmp / "root")},
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def object_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], backends.Backend]]:
    """Start each object store's server once per test process, when a test first needs it."""
    started: dict[str, backends.Backend] = {}

    def get(name: str) -> backends.Backend:
        if name not in started:
            started[name] = backends.start(name, tmp_path_factory.mktemp(f"backend-{name}"))
        return started[name]

    yield get
    for backend in started.values():
        backend.stop()


@pytest.fixture(params=sorted(DRIVERS) + backends.names())
async def driver(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    anyio_backend: str,
    object_stores: Callable[[str], backends.Backend],
) -> AsyncIterator[CheckedDriver]:
    name: str = request.param
    fresh = f"t-{uuid.uuid4().hex[:12]}"
    params = DRIVERS[name](tmp_path) if name in DRIVERS else object_stores(name).params(fresh)
    d = create_driver(name, params, str(tmp_path / "data"))
    try:
        yield d
    finally:
        await d.close()
