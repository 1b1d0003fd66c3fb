"""The storage driver contract: a small interface every backend implements.

Paths are absolute, slash-separated, and follow one grammar (see ``checked.PATH_RE``):
``/`` followed by components of ``[A-Za-z0-9._-]`` joined by ``/``; no ``.`` or ``..``
components. Drivers never see anything else because every driver is wrapped by
``checked.CheckedDriver``, which validates paths and normalises exceptions.

The interface is designed for object stores too: nothing relies on ``move`` being atomic
across drivers (the filesystem driver happens to make it so), and ``writer`` with
``append=True`` is the only way to grow an existing file.

Exception tree::

    StorageError
    ├── PathNotFound      the path does not exist
    ├── InvalidPath       the path breaks the grammar
    ├── InvalidOffset     a read or resume offset past the end
    └── DriverError       anything else a backend raised (carries the driver name)
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass


class StorageError(Exception):
    """Base class of every error a driver raises."""

    def __init__(self, path: str, message: str = "") -> None:
        super().__init__(f"{path}: {message}" if message else path)
        self.path = path


class PathNotFound(StorageError):
    pass


class InvalidPath(StorageError):
    pass


class InvalidOffset(StorageError):
    def __init__(self, path: str, offset: int) -> None:
        super().__init__(path, f"invalid offset {offset}")
        self.offset = offset


class DriverError(StorageError):
    def __init__(self, driver: str, path: str, cause: BaseException) -> None:
        super().__init__(path, f"{driver}: {cause!r}")
        self.driver = driver
        self.cause = cause


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    size: int
    is_dir: bool
    mtime: float  # seconds since the epoch; 0 for directories where a backend has none


class FileWriter(abc.ABC):
    """A file being written.

    A new file (``append=False``) is not visible at its path until ``commit`` returns, so
    readers never see half a file. An append writer continues the file in place: its
    ``size`` starts at the existing length, and on some backends what it writes may be
    visible before commit; commit makes it durable. Uploads use append writers and only
    become visible to pulls through ``move`` after their digest is verified.
    """

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Bytes in the file so far, including what was there before an append."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def commit(self, durable: bool = True) -> None:
        """Make the content visible at the path and, unless ``durable=False``, durable
        (on stable storage before this returns). The writer is closed after.

        Uploads commit each chunk with ``durable=False`` and make the whole file durable
        once, when the blob is committed: a chunk lost to a power cut only shortens the
        upload, which the client learns from the upload's status."""

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Throw away what this writer wrote. The writer is closed after."""


class StorageDriver(abc.ABC):
    """The whole contract: eleven operations."""

    name: str = "abstract"

    @abc.abstractmethod
    async def stat(self, path: str) -> FileInfo:
        """Raise PathNotFound if neither a file nor a directory (prefix) exists at path."""

    @abc.abstractmethod
    async def get(self, path: str) -> bytes:
        """The whole content of a (small) file."""

    @abc.abstractmethod
    async def put(self, path: str, data: bytes) -> None:
        """Write a whole file at once; replaces any existing file atomically for readers."""

    @abc.abstractmethod
    def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream ``length`` bytes (or to the end) from ``offset``.

        Raise PathNotFound for a missing file and InvalidOffset for offset > size,
        at the first iteration at the latest.
        """

    @abc.abstractmethod
    async def writer(self, path: str, append: bool = False) -> FileWriter:
        """Open a writer. ``append=False`` starts empty; ``append=True`` continues the
        committed content at path (PathNotFound if there is none)."""

    @abc.abstractmethod
    async def move(self, src: str, dst: str) -> None:
        """Move a file, replacing dst. Not guaranteed atomic on every backend."""

    @abc.abstractmethod
    async def delete(self, path: str) -> None:
        """Delete a file, or a directory and everything under it. PathNotFound if absent."""

    @abc.abstractmethod
    async def list(self, path: str) -> list[str]:
        """Full paths of the direct children of a directory, sorted. PathNotFound if absent."""

    @abc.abstractmethod
    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        """Every file (not directory) below path, depth first, in sorted order."""

    @abc.abstractmethod
    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        """A URL a client can fetch the content from directly, or None if unsupported."""

    def local_path(self, path: str) -> str | None:
        """The file's path on the local filesystem, for zero-copy serving; None if not local."""
        return None

    async def close(self) -> None:
        """Release connections and other resources."""
        return None
