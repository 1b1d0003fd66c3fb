"""The ``driver`` fixture: every storage driver, built by name through the factory, so the
CheckedDriver wrapper is always in play. A new backend is one more entry in DRIVERS;
a backend that cannot be reached fails its tests, it is never skipped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from dockyard.storage.checked import CheckedDriver
from dockyard.storage.factory import create_driver

# Driver name -> its parameters, given a fresh per-test directory.
DRIVERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "inmemory": lambda tmp: {},
    "filesystem": lambda tmp: {"rootdirectory": str(tmp / "root")},
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=sorted(DRIVERS))
async def driver(request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str) -> AsyncIterator[CheckedDriver]:
    name: str = request.param
    d = create_driver(name, DRIVERS[name](tmp_path), str(tmp_path / "data"))
    try:
        yield d
    finally:
        await d.close()
