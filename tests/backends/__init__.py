"""Real servers speaking each object store's API, started by the tests (never a stub of a
client library). One module per storage driver name (``s3``, ``azure``, ``gcs``,
``swift``), each with::

    def start(workdir: Path) -> Backend      # start the server, wait until it answers

A module here is picked up by the storage conformance suite and the registry-level backend
tests by its presence; a server that cannot start fails those tests, it is never skipped.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
from pathlib import Path
from typing import Any, Protocol


class Backend(Protocol):
    name: str  # the storage driver's name, as in storage.driver

    def params(self, prefix: str) -> dict[str, Any]:
        """``storage.params`` for a Dockyard that keeps everything under ``prefix`` (a fresh
        one per test; create the bucket/container here if the driver does not)."""
        ...

    def server_env(self, prefix: str) -> dict[str, str]:
        """``DOCKYARD_STORAGE__…`` environment for a ``dockyard serve`` on that prefix."""
        ...

    def stop(self) -> None: ...


def names() -> list[str]:
    """The object stores the tests run against: every module in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def start(name: str, workdir: Path) -> Backend:
    workdir.mkdir(parents=True, exist_ok=True)
    backend: Backend = importlib.import_module(f"{__name__}.{name}").start(workdir)
    return backend


def server_env(driver: str, params: dict[str, Any]) -> dict[str, str]:
    """``storage.driver`` and ``storage.params`` as ``dockyard serve``'s environment."""
    env = {"DOCKYARD_STORAGE__DRIVER": driver}
    for key, value in params.items():
        env[f"DOCKYARD_STORAGE__PARAMS__{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
