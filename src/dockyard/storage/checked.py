"""One wrapper around every driver: validates paths against one grammar, normalises
exceptions to the StorageError tree, and times calls. Drivers then only do I/O."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from .driver import (
    DriverError,
    FileInfo,
    FileWriter,
    InvalidOffset,
    InvalidPath,
    StorageDriver,
    StorageError,
)

T = TypeVar("T")

# "/" or "/" + components of [A-Za-z0-9._-]; "." and ".." components are refused below.
PATH_RE = re.compile(r"^/$|^(/[A-Za-z0-9._-]+)+$")


def check_path(path: str) -> str:
    # fullmatch, not match: "$" also matches before a trailing newline, so "/a\n" passed.
    if not isinstance(path, str) or not PATH_RE.fullmatch(path):
        raise InvalidPath(str(path), "breaks the path grammar")
    if any(part in (".", "..") for part in path.split("/")):
        raise InvalidPath(path, "dot components are not allowed")
    return path


def check_file_path(path: str) -> str:
    """A path a file can be written or moved to: the root is always a directory."""
    if check_path(path) == "/":
        raise InvalidPath(path, "the root is not a file")
    return path


class CallStats:
    """Counts and total seconds per operation; read by /metrics later."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.seconds: dict[str, float] = {}

    def add(self, op: str, elapsed: float) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        self.seconds[op] = self.seconds.get(op, 0.0) + elapsed


class _CheckedWriter(FileWriter):
    def __init__(self, inner: FileWriter, owner: CheckedDriver, path: str) -> None:
        self._inner, self._owner, self._path = inner, owner, path

    @property
    def size(self) -> int:
        return self._inner.size

    async def write(self, data: bytes) -> None:
        await self._owner._call("write", self._path, lambda: self._inner.write(data))

    async def commit(self, durable: bool = True) -> None:
        await self._owner._call("commit", self._path, lambda: self._inner.commit(durable))

    async def cancel(self) -> None:
        await self._owner._call("cancel", self._path, self._inner.cancel)


class CheckedDriver(StorageDriver):
    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.name = inner.name
        self.stats = CallStats()

    async def _call(self, op: str, path: str, fn: Callable[[], Awaitable[T]]) -> T:
        start = time.perf_counter()
        try:
            return await fn()
        except StorageError:
            raise
        except Exception as e:  # normalise whatever the backend raised
            raise DriverError(self.name, path, e) from e
        finally:
            self.stats.add(op, time.perf_counter() - start)

    async def stat(self, path: str) -> FileInfo:
        return await self._call("stat", path, lambda: self.inner.stat(check_path(path)))

    async def get(self, path: str) -> bytes:
        return await self._call("get", path, lambda: self.inner.get(check_path(path)))

    async def put(self, path: str, data: bytes) -> None:
        await self._call("put", path, lambda: self.inner.put(check_file_path(path), data))

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        check_path(path)
        if offset < 0 or (length is not None and length < 0):
            raise InvalidOffset(path, offset)
        try:
            async for chunk in self.inner.read(path, offset, length):
                yield chunk
        except StorageError:
            raise
        except Exception as e:
            raise DriverError(self.name, path, e) from e

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        inner = await self._call("writer", path, lambda: self.inner.writer(check_file_path(path), append))
        return _CheckedWriter(inner, self, path)

    async def move(self, src: str, dst: str) -> None:
        check_file_path(src)
        await self._call("move", src, lambda: self.inner.move(src, check_file_path(dst)))

    async def delete(self, path: str) -> None:
        await self._call("delete", path, lambda: self.inner.delete(check_path(path)))

    async def list(self, path: str) -> list[str]:
        return await self._call("list", path, lambda: self.inner.list(check_path(path)))

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        check_path(path)
        try:
            async for info in self.inner.walk(path):
                yield info
        except StorageError:
            raise
        except Exception as e:
            raise DriverError(self.name, path, e) from e

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        return await self._call("redirect_url", path, lambda: self.inner.redirect_url(check_path(path), method))

    def local_path(self, path: str) -> str | None:
        return self.inner.local_path(check_path(path))

    async def close(self) -> None:
        await self.inner.close()
