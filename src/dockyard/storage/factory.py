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


def _s3(params: dict[str, Any], data_dir: str) -> StorageDriver:
    from .s3 import from_parameters

    return from_parameters(params, data_dir)


def _azure(params: dict[str, Any], data_dir: str) -> StorageDriver:
    from .azure import from_parameters

    return from_parameters(params, data_dir)


def _gcs(params: dict[str, Any], data_dir: str) -> StorageDriver:
    from .gcs import from_parameters

    return from_parameters(params, data_dir)


def _swift(params: dict[str, Any], data_dir: str) -> StorageDriver:
    from .swift import from_parameters

    return from_parameters(params, data_dir)


FACTORIES: dict[str, Callable[[dict[str, Any], str], StorageDriver]] = {
    "filesystem": _filesystem,
    "inmemory": _inmemory,
    "s3": _s3,
    "azure": _azure,
    "gcs": _gcs,
    "swift": _swift,
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
