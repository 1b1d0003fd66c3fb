"""The in-memory driver: a dict of path -> bytes, for tests and throwaway registries.

It behaves like an object store: directories are only prefixes of file paths, so an
empty directory cannot exist. It refuses what the filesystem driver cannot do either (a
file where a directory is, or below a file), so code tested here also works on disk.

Every operation takes one lock and never awaits while holding it, so each is atomic for
other tasks and for other threads. Stored contents are immutable ``bytes``: a reader keeps
the object it started with while writers publish new ones.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from anyio.lowlevel import checkpoint

from .driver import FileInfo, FileWriter, InvalidOffset, PathNotFound, StorageDriver

READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class _File:
    data: bytes
    mtime: float


def _under(path: str) -> tuple[str, str]:
    """Bounds of the sorted keys strictly below path: every key starting with path + "/"
    sorts in [path + "/", path + "0") because "0" follows "/" in ASCII."""
    base = "" if path == "/" else path
    return base + "/", base + "0"


class _MemWriter(FileWriter):
    def __init__(self, owner: InMemoryDriver, path: str, base: bytes) -> None:
        self._owner, self._path, self._base = owner, path, base
        self._buf = bytearray()
        self._closed = False

    @property
    def size(self) -> int:
        return len(self._base) + len(self._buf)

    def _require_open(self) -> None:
        if self._closed:
            raise ValueError("writer is closed")

    async def write(self, data: bytes) -> None:
        self._require_open()
        self._buf += data
        await checkpoint()  # let other tasks run, as a real backend's I/O would

    async def commit(self, durable: bool = True) -> None:  # memory is as durable as it gets
        self._require_open()
        self._closed = True
        # Nothing is visible before this point, appended bytes included (like an object
        # store's multipart upload); the base is what the file held when the writer opened.
        self._owner._publish(self._path, self._base + self._buf)  # bytes + bytearray -> bytes
        self._buf = bytearray()

    async def cancel(self) -> None:
        self._closed = True
        self._buf = bytearray()


class InMemoryDriver(StorageDriver):
    name = "inmemory"

    def __init__(self) -> None:
        self._files: dict[str, _File] = {}
        self._keys: list[str] = []  # sorted paths of _files, for prefix queries
        self._lock = threading.Lock()

    # -- helpers; callers hold the lock ----------------------------------------------

    def _keys_under(self, path: str) -> list[str]:
        lo, hi = _under(path)
        return self._keys[bisect.bisect_left(self._keys, lo) : bisect.bisect_left(self._keys, hi)]

    def _is_dir(self, path: str) -> bool:
        if path == "/":
            return True  # the root always exists, as the filesystem driver's root does
        lo, hi = _under(path)
        i = bisect.bisect_left(self._keys, lo)
        return i < len(self._keys) and self._keys[i] < hi

    def _check_file_slot(self, path: str) -> None:
        # Refuse what a filesystem cannot hold: a file over a directory or below a file.
        if self._is_dir(path):
            raise IsADirectoryError(path)
        parent = path.rsplit("/", 1)[0]
        while parent:
            if parent in self._files:
                raise NotADirectoryError(parent)
            parent = parent.rsplit("/", 1)[0]

    def _store(self, path: str, f: _File) -> None:
        if path not in self._files:
            bisect.insort(self._keys, path)
        self._files[path] = f

    def _remove(self, path: str) -> None:
        del self._files[path]
        del self._keys[bisect.bisect_left(self._keys, path)]

    def _publish(self, path: str, data: bytes) -> None:
        with self._lock:
            self._check_file_slot(path)
            self._store(path, _File(data, time.time()))

    def _file(self, path: str) -> _File:
        with self._lock:
            f = self._files.get(path)
        if f is None:
            raise PathNotFound(path)
        return f

    # -- the contract ------------------------------------------------------------------

    async def stat(self, path: str) -> FileInfo:
        with self._lock:
            f = self._files.get(path)
            if f is not None:
                return FileInfo(path, len(f.data), False, f.mtime)
            if self._is_dir(path):
                return FileInfo(path, 0, True, 0.0)
        raise PathNotFound(path)

    async def get(self, path: str) -> bytes:
        return self._file(path).data

    async def put(self, path: str, data: bytes) -> None:
        self._publish(path, bytes(data))

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        data = self._file(path).data  # a snapshot: later writes publish a new object
        if offset < 0 or offset > len(data):
            raise InvalidOffset(path, offset)
        end = len(data) if length is None else min(len(data), offset + length)
        view = memoryview(data)
        for pos in range(offset, end, READ_CHUNK):
            yield bytes(view[pos : min(pos + READ_CHUNK, end)])
            await checkpoint()

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        base = self._file(path).data if append else b""
        return _MemWriter(self, path, base)

    async def move(self, src: str, dst: str) -> None:
        with self._lock:
            f = self._files.get(src)
            if f is None:
                raise PathNotFound(src)
            if src == dst:
                return
            self._check_file_slot(dst)
            self._remove(src)
            self._store(dst, f)

    async def delete(self, path: str) -> None:
        with self._lock:
            doomed = self._keys_under(path)
            if path in self._files:
                doomed.append(path)
            if not doomed and path != "/":
                raise PathNotFound(path)
            for key in doomed:
                self._remove(key)

    async def list(self, path: str) -> list[str]:
        with self._lock:
            if not self._is_dir(path):
                raise PathNotFound(path)
            keys = self._keys_under(path)
        start = len(path) + 1 if path != "/" else 1
        base = path if path != "/" else ""
        return sorted({f"{base}/{key[start:].split('/', 1)[0]}" for key in keys})

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        with self._lock:
            f = self._files.get(path)
            if f is not None:
                found = [(path, f)]
            elif self._is_dir(path):
                found = [(key, self._files[key]) for key in self._keys_under(path)]
            else:
                raise PathNotFound(path)
        # Depth first in sorted order means sorting by components: "/a/b/x" comes before
        # "/a/b-c" because "b" < "b-c", although "/a/b-c" < "/a/b/x" as plain strings.
        found.sort(key=lambda item: item[0].split("/"))
        for key, f in found:
            yield FileInfo(key, len(f.data), False, f.mtime)

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        return None
