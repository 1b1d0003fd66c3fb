"""Drivers by name. An unknown name stops start-up; there is no silent fallback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .checked import CheckedDriver
from .driver import StorageDriver


def _filesystem(params: dict[str, Any], data_dir: str) -> StorageDriver:
    from .filesystem import from_parameters

    return from_parameters(params, data_dir)


def _inmemory(params: dict[str, Any], data_dir: str) -> StorageDriver:
    from .inmemory import InMemoryDriver

    return InMemoryDriver()


FACTORIES: dict[str, Callable[[dict[str, Any], str], StorageDriver]] = {
    "filesystem": _filesystem,
    "inmemory": _inmemory,
}


class UnknownDriver(ValueError):
    pass


def create_driver(name: str, params: dict[str, Any], data_dir: str) -> CheckedDriver:
    try:
        factory = FACTORIES[name]
    except KeyError:
        known = ", ".join(sorted(FACTORIES))
        raise UnknownDriver(f"unknown storage driver {name!r} (known: {known})") from None
    return CheckedDriver(factory(params, data_dir))
