"""The filesystem driver: a directory on a local disk or an NFS mount.

New files are written beside their target under a name outside the path grammar
(``<name>~tmp~<random>``) and renamed into place on commit, after an fsync, so a crash
leaves either the old file, the new one, or litter that ``list`` and ``walk`` skip.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import secrets
import shutil
import stat
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio.to_thread

from .driver import FileInfo, FileWriter, InvalidOffset, PathNotFound, StorageDriver

T = TypeVar("T")
TMP_MARK = "~tmp~"
READ_CHUNK = 1 << 20
# Reads this small are done on the event loop: a thread hop costs more than the read.
INLINE_READ = 256 << 10


def _prune_empty_parents(full: str, root: str) -> None:
    """Remove directories left empty, so the tree looks like an object store's prefixes."""
    parent = os.path.dirname(full)
    while parent != root and parent.startswith(root):
        try:
            os.rmdir(parent)
        except OSError:
            return  # not empty (or already gone): stop
        parent = os.path.dirname(parent)


def _retry_on_pruned(full: str, op: Callable[[], T]) -> T:
    """Run op after creating full's parent; a concurrent prune may remove it in between."""
    for _ in range(10):
        try:
            # makedirs itself can lose a race: a prune may remove an ancestor it just made.
            os.makedirs(os.path.dirname(full), exist_ok=True)
            return op()
        except FileNotFoundError:
            continue
    os.makedirs(os.path.dirname(full), exist_ok=True)
    return op()


def _load_sync_file_range() -> Callable[[int, int, int], None]:
    """Linux's sync_file_range(SYNC_FILE_RANGE_WRITE): start writeback without waiting.
    Elsewhere a no-op; commit's fsync then does all the work."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return lambda fd, offset, length: None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int

    def start(fd: int, offset: int, length: int) -> None:
        fn(fd, offset, length, 2)  # SYNC_FILE_RANGE_WRITE; failure only costs speed

    return start


_start_writeback = _load_sync_file_range()
WRITEBACK_STEP = 8 << 20


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FsWriter(FileWriter):
    def __init__(self, fd: int, final: str, tmp: str | None, size: int, root: str) -> None:
        self._fd: int | None = fd
        self._final = final
        self._tmp = tmp  # None for an append writer, which writes in place
        self._size = size
        self._start = size  # what an append writer's cancel truncates back to
        self._flushed = size
        self._root = root

    @property
    def size(self) -> int:
        return self._size

    def _require_fd(self) -> int:
        if self._fd is None:
            raise ValueError("writer is closed")
        return self._fd

    async def write(self, data: bytes) -> None:
        fd = self._require_fd()
        view = memoryview(data)

        def _write() -> None:
            written = 0
            while written < len(view):
                written += os.write(fd, view[written:])
            end = self._size + len(data)
            if end - self._flushed >= WRITEBACK_STEP:
                # Start writing back what is already here, so commit's fsync has little
                # left to wait for.
                _start_writeback(fd, self._flushed, end - self._flushed)
                self._flushed = end

        if len(data) <= INLINE_READ:
            _write()
        else:
            await anyio.to_thread.run_sync(_write)
        self._size += len(data)

    async def commit(self, durable: bool = True) -> None:
        fd = self._require_fd()

        def _commit() -> None:
            if durable:
                os.fsync(fd)
            os.close(fd)
            if self._tmp is not None:
                try:
                    os.replace(self._tmp, self._final)
                except OSError:  # e.g. a directory at the path; cancel cannot clean up after us
                    with _suppress_missing():
                        os.unlink(self._tmp)
                    raise
                if durable:
                    _fsync_dir(os.path.dirname(self._final))

        self._fd = None
        await anyio.to_thread.run_sync(_commit)

    async def cancel(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if self._tmp is None:
            # Appended bytes are already in the file: cut them off, so a resumed upload
            # continues from what was committed.
            try:
                os.ftruncate(fd, self._start)
            finally:
                os.close(fd)
            return
        os.close(fd)
        with _suppress_missing():
            os.unlink(self._tmp)
        _prune_empty_parents(self._tmp, self._root)  # the writer may have made them


class _suppress_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: Any, exc: Any, tb: Any) -> bool:
        return isinstance(exc, FileNotFoundError)


class FilesystemDriver(StorageDriver):
    name = "filesystem"

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)

    def _full(self, path: str) -> str:
        # CheckedDriver guarantees a clean absolute path, so joining cannot escape root.
        return self.root + path if path != "/" else self.root

    def local_path(self, path: str) -> str | None:
        return self._full(path)

    async def stat(self, path: str) -> FileInfo:
        try:
            st = os.stat(self._full(path))
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(path) from None
        is_dir = os.path.isdir(self._full(path))
        return FileInfo(path, 0 if is_dir else st.st_size, is_dir, st.st_mtime)

    async def get(self, path: str) -> bytes:
        full = self._full(path)

        def _get() -> bytes:
            try:
                with open(full, "rb") as f:
                    return f.read()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise PathNotFound(path) from None

        return await anyio.to_thread.run_sync(_get)

    async def put(self, path: str, data: bytes) -> None:
        w = await self.writer(path)
        try:
            await w.write(data)
            await w.commit()
        except BaseException:
            await w.cancel()
            raise

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        full = self._full(path)
        try:
            fd = os.open(full, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(path) from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):  # open() succeeds on a directory; it is no file
                raise PathNotFound(path)
            size = st.st_size
            if offset > size or offset < 0:
                raise InvalidOffset(path, offset)
            end = size if length is None else min(size, offset + length)
            pos = offset
            while pos < end:
                n = min(READ_CHUNK, end - pos)
                if n <= INLINE_READ:
                    chunk = os.pread(fd, n, pos)
                else:
                    chunk = await anyio.to_thread.run_sync(os.pread, fd, n, pos)
                if not chunk:
                    break
                pos += len(chunk)
                yield chunk
        finally:
            os.close(fd)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        full = self._full(path)

        def _open() -> FileWriter:
            if append:
                try:
                    fd = os.open(full, os.O_WRONLY | os.O_APPEND)
                except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    raise PathNotFound(path) from None
                return _FsWriter(fd, full, None, os.fstat(fd).st_size, self.root)
            tmp = f"{full}{TMP_MARK}{secrets.token_hex(6)}"
            fd = _retry_on_pruned(full, lambda: os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
            return _FsWriter(fd, full, tmp, 0, self.root)

        return await anyio.to_thread.run_sync(_open)

    async def move(self, src: str, dst: str) -> None:
        s, d = self._full(src), self._full(dst)

        def _move() -> None:
            if not os.path.isfile(s):
                raise PathNotFound(src)
            _retry_on_pruned(d, lambda: os.replace(s, d))
            _fsync_dir(os.path.dirname(d))
            _prune_empty_parents(s, self.root)

        await anyio.to_thread.run_sync(_move)

    async def delete(self, path: str) -> None:
        full = self._full(path)

        def _delete() -> None:
            try:
                if os.path.isdir(full) and not os.path.islink(full):
                    if path == "/":
                        for name in os.listdir(full):
                            child = os.path.join(full, name)
                            if os.path.isdir(child):
                                shutil.rmtree(child)
                            else:
                                os.unlink(child)
                    else:
                        shutil.rmtree(full)
                else:
                    os.unlink(full)
                _prune_empty_parents(full, self.root)
            except (FileNotFoundError, NotADirectoryError):
                raise PathNotFound(path) from None
            except OSError as e:
                if e.errno == errno.ENOENT:
                    raise PathNotFound(path) from None
                raise

        await anyio.to_thread.run_sync(_delete)

    async def list(self, path: str) -> list[str]:
        full = self._full(path)
        try:
            names = os.listdir(full)
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(path) from None
        prefix = "" if path == "/" else path
        return sorted(f"{prefix}/{n}" for n in names if TMP_MARK not in n)

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        full = self._full(path)
        if not os.path.exists(full):
            raise PathNotFound(path)
        if os.path.isfile(full):
            st = os.stat(full)
            yield FileInfo(path, st.st_size, False, st.st_mtime)
            return
        prefix = "" if path == "/" else path
        for name in sorted(os.listdir(full)):
            if TMP_MARK in name:
                continue
            child = f"{prefix}/{name}"
            child_full = os.path.join(full, name)
            if os.path.isdir(child_full):
                async for info in self.walk(child):
                    yield info
            else:
                try:
                    st = os.stat(child_full)
                except FileNotFoundError:
                    continue  # removed while walking
                yield FileInfo(child, st.st_size, False, st.st_mtime)

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        return None


def from_parameters(params: dict[str, Any], data_dir: str) -> FilesystemDriver:
    root = params.get("rootdirectory") or os.path.join(data_dir, "registry")
    if not isinstance(root, str):
        raise ValueError("storage.filesystem.rootdirectory must be a string")
    return FilesystemDriver(root)
