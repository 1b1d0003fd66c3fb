"""One conformance suite for every storage driver (see ``conftest.DRIVERS``).

Only the public contract of ``dockyard.storage.driver`` is used here, through the
CheckedDriver every driver is wrapped in. Each test removes what it wrote; an autouse
fixture fails the test if the root is not empty afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest

from dockyard.storage.checked import CheckedDriver
from dockyard.storage.driver import FileInfo, InvalidOffset, InvalidPath, PathNotFound, StorageError

pytestmark = pytest.mark.anyio

MiB = 1 << 20


def blob(size: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes, so a failure is reproducible."""
    return random.Random(seed).randbytes(size)


async def read_all(driver: CheckedDriver, path: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in driver.read(path, offset, length)])


async def sha256_of(driver: CheckedDriver, path: str, offset: int = 0, length: int | None = None) -> str:
    h = hashlib.sha256()
    async for chunk in driver.read(path, offset, length):
        h.update(chunk)
    return h.hexdigest()


async def walk_infos(driver: CheckedDriver, path: str = "/") -> list[FileInfo]:
    return [info async for info in driver.walk(path)]


async def walk_paths(driver: CheckedDriver, path: str = "/") -> list[str]:
    return [info.path for info in await walk_infos(driver, path)]


async def write_in_pieces(driver: CheckedDriver, path: str, data: bytes, sizes: list[int]) -> None:
    """Write data through one writer, cycling through uneven piece sizes."""
    w = await driver.writer(path)
    pos, i = 0, 0
    while pos < len(data):
        piece = data[pos : pos + sizes[i % len(sizes)]]
        await w.write(piece)
        pos, i = pos + len(piece), i + 1
        assert w.size == pos
    await w.commit()


@pytest.fixture(autouse=True)
async def root_left_empty(driver: CheckedDriver) -> AsyncIterator[None]:
    yield
    try:
        left = await walk_paths(driver, "/")
        top = await driver.list("/")
    except PathNotFound:  # an object store may have no root until something is in it
        left, top = [], []
    if left or top:
        await driver.delete("/")  # so that one failure does not cascade into the next test
    assert (left, top) == ([], []), "the test left files behind"


# -- paths ------------------------------------------------------------------------------

VALID_PATHS = [
    "/a",
    "/2",
    "/aa",
    "/a.a",
    "/0-9/abcdefg",
    "/abcdefg/z.75",
    "/abc/1.2.3.4.5-6_zyx/123.z/4",
    "/docker/docker-registry",
    "/123.abc",
    "/abc./abc",
    "/.abc",
    "/...",
    "/a--b",
    "/a-.b",
    "/_.abc",
    "/Docker/docker-registry",
    "/Abc/Cba",
    "/blobs/sha256/ab/" + "ab" * 32,
]

INVALID_PATHS = [
    "",
    "relative",
    "a/b",
    "/a/../b",
    "/..",
    "/.",
    "/a/.",
    "/a//b",
    "//",
    "/a/./b",
    "/a/",
    "/a b",
    "/a\n",
    "/a\\b",
    "/a:b",
    "/%2e%2e",
    "/ünï",
    "/a~tmp~0123",
]


@pytest.mark.parametrize("path", VALID_PATHS)
async def test_valid_path(driver: CheckedDriver, path: str) -> None:
    await driver.put(path, path.encode())
    assert await driver.get(path) == path.encode()
    info = await driver.stat(path)
    assert (info.path, info.size, info.is_dir) == (path, len(path), False)
    parent = path.rsplit("/", 1)[0] or "/"
    assert path in await driver.list(parent)
    assert await walk_paths(driver) == [path]
    await driver.delete(path)
    with pytest.raises(PathNotFound):
        await driver.stat(path)


@pytest.mark.parametrize("path", INVALID_PATHS, ids=repr)
async def test_invalid_path(driver: CheckedDriver, path: str) -> None:
    await driver.put("/valid", b"x")
    ops: dict[str, Callable[[], Awaitable[object]]] = {
        "stat": lambda: driver.stat(path),
        "get": lambda: driver.get(path),
        "put": lambda: driver.put(path, b"data"),
        "read": lambda: read_all(driver, path),
        "writer": lambda: driver.writer(path),
        "append writer": lambda: driver.writer(path, append=True),
        "move from": lambda: driver.move(path, "/valid"),
        "move to": lambda: driver.move("/valid", path),
        "delete": lambda: driver.delete(path),
        "list": lambda: driver.list(path),
        "walk": lambda: walk_infos(driver, path),
        "redirect_url": lambda: driver.redirect_url(path),
    }
    for op, call in ops.items():
        with pytest.raises(InvalidPath):
            await call()
            pytest.fail(f"{op}({path!r}) was accepted")
    assert await driver.get("/valid") == b"x"
    await driver.delete("/valid")


async def test_root_is_not_a_file(driver: CheckedDriver) -> None:
    await driver.put("/file", b"x")
    with pytest.raises(InvalidPath):
        await driver.put("/", b"data")
    with pytest.raises(InvalidPath):
        await driver.writer("/")
    with pytest.raises(InvalidPath):
        await driver.move("/file", "/")
    with pytest.raises(InvalidPath):
        await driver.move("/", "/elsewhere")
    assert await walk_paths(driver) == ["/file"]
    await driver.delete("/file")


# -- put / get / stat -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"x", b"\x00", bytes(range(256)), b"\x00\xff" * 1000, blob(MiB + 1, seed=1)],
    ids=["empty", "one-byte", "nul", "all-bytes", "binary-2k", "1MiB+1"],
)
async def test_put_get_round_trip(driver: CheckedDriver, data: bytes) -> None:
    await driver.put("/round/trip", data)
    assert await driver.get("/round/trip") == data
    assert await read_all(driver, "/round/trip") == data
    info = await driver.stat("/round/trip")
    assert (info.size, info.is_dir) == (len(data), False)
    await driver.delete("/round/trip")


async def test_put_replaces_content(driver: CheckedDriver) -> None:
    await driver.put("/replace", b"the first, longer content")
    await driver.put("/replace", b"second")
    assert await driver.get("/replace") == b"second"
    assert (await driver.stat("/replace")).size == 6
    await driver.delete("/replace")


async def test_stat_file_and_prefix(driver: CheckedDriver) -> None:
    await driver.put("/st/dir/file", b"12345")
    info = await driver.stat("/st/dir/file")
    assert (info.path, info.size, info.is_dir) == ("/st/dir/file", 5, False)
    assert info.mtime > 0
    for prefix in ("/st", "/st/dir"):
        info = await driver.stat(prefix)
        assert (info.path, info.is_dir) == (prefix, True)
    await driver.delete("/st")


async def test_failed_put_leaves_no_litter(driver: CheckedDriver) -> None:
    await driver.put("/d/a/x", b"x")
    # A backend may refuse a file where a directory is (a filesystem) or accept it (an
    # object store); either way nothing may be left behind that keeps "/d" alive.
    with contextlib.suppress(StorageError):
        await driver.put("/d/a", b"file")
    await driver.delete("/d/a/x")
    with contextlib.suppress(PathNotFound):
        await driver.delete("/d/a")
    assert await driver.list("/") == []


async def test_missing_paths(driver: CheckedDriver) -> None:
    await driver.put("/present/file", b"x")
    missing = ["/absent", "/present/absent", "/present/file/below", "/presen", "/present/fil"]
    for path in missing:
        with pytest.raises(PathNotFound) as exc:
            await driver.get(path)
        assert exc.value.path == path
        with pytest.raises(PathNotFound):
            await driver.stat(path)
        with pytest.raises(PathNotFound):
            await read_all(driver, path)
        with pytest.raises(PathNotFound):
            await driver.delete(path)
        with pytest.raises(PathNotFound):
            await driver.list(path)
        with pytest.raises(PathNotFound):
            await walk_infos(driver, path)
        with pytest.raises(PathNotFound):
            await driver.move(path, "/moved")
    assert await walk_paths(driver) == ["/present/file"]
    await driver.delete("/present")


async def test_prefix_is_not_a_file(driver: CheckedDriver) -> None:
    await driver.put("/pre/fix/file", b"x")
    with pytest.raises(PathNotFound):
        await driver.get("/pre/fix")
    with pytest.raises(PathNotFound):
        await read_all(driver, "/pre/fix")
    with pytest.raises(PathNotFound):
        await driver.writer("/pre/fix", append=True)
    with pytest.raises(PathNotFound):
        await driver.list("/pre/fix/file")  # a file has no children
    await driver.delete("/pre")


# -- read ---------------------------------------------------------------------------------


async def test_read_offsets(driver: CheckedDriver) -> None:
    data = blob(1000, seed=2)
    await driver.put("/offsets", data)
    cases: list[tuple[int, int | None]] = [
        (0, None),
        (1, None),
        (500, 10),
        (999, 1),
        (999, 100),  # a length past the end stops at the end
        (0, 0),
        (1000, None),  # offset == size: empty, not an error
        (1000, 5),
    ]
    for offset, length in cases:
        want = data[offset:] if length is None else data[offset : offset + length]
        assert await read_all(driver, "/offsets", offset, length) == want, (offset, length)
    for bad in (1001, 10**9, -1):
        with pytest.raises(InvalidOffset):
            await read_all(driver, "/offsets", bad)
    await driver.delete("/offsets")


async def test_read_empty_file(driver: CheckedDriver) -> None:
    await driver.put("/empty", b"")
    assert await read_all(driver, "/empty") == b""
    assert await read_all(driver, "/empty", 0, 10) == b""
    with pytest.raises(InvalidOffset):
        await read_all(driver, "/empty", 1)
    await driver.delete("/empty")


async def test_large_stream(driver: CheckedDriver) -> None:
    size = 32 * MiB
    data = blob(size, seed=3)
    await write_in_pieces(driver, "/large/stream", data, [1, 7, 4096, 65537, MiB + 3, 3 * MiB - 1, 12345])
    assert (await driver.stat("/large/stream")).size == size
    assert await sha256_of(driver, "/large/stream") == hashlib.sha256(data).hexdigest()
    ranges = [
        (0, 1),
        (MiB - 1, 2),
        (3 * MiB + 17, 5 * MiB),
        (12345, None),
        (size - 10, 100),
        (size - 1, None),
    ]
    for offset, length in ranges:
        want = data[offset:] if length is None else data[offset : offset + length]
        got = await sha256_of(driver, "/large/stream", offset, length)
        assert got == hashlib.sha256(want).hexdigest(), (offset, length)
    await driver.delete("/large")


# -- writers ------------------------------------------------------------------------------


async def test_writer_invisible_until_commit(driver: CheckedDriver) -> None:
    w = await driver.writer("/pending")
    try:
        await w.write(b"hello ")
        await w.write(b"world")
        assert w.size == 11
        with pytest.raises(PathNotFound):
            await driver.stat("/pending")
        with pytest.raises(PathNotFound):
            await driver.get("/pending")
        assert "/pending" not in await driver.list("/")
        assert await walk_paths(driver) == []
        await w.commit()
    except BaseException:
        await w.cancel()
        raise
    assert await driver.get("/pending") == b"hello world"
    assert (await driver.stat("/pending")).size == 11
    await driver.delete("/pending")


async def test_writer_replaces_only_on_commit(driver: CheckedDriver) -> None:
    await driver.put("/swap", b"old")
    w = await driver.writer("/swap")
    await w.write(b"new content")
    assert await driver.get("/swap") == b"old"
    await w.commit()
    assert await driver.get("/swap") == b"new content"
    await driver.delete("/swap")


async def test_cancel_leaves_nothing(driver: CheckedDriver) -> None:
    w = await driver.writer("/cancel/deep/file")
    await w.write(blob(100_000, seed=4))
    await w.cancel()
    for path in ("/cancel/deep/file", "/cancel/deep", "/cancel"):
        with pytest.raises(PathNotFound):
            await driver.stat(path)
    assert await driver.list("/") == []
    assert await walk_paths(driver) == []


async def test_cancel_keeps_existing_file(driver: CheckedDriver) -> None:
    await driver.put("/kept", b"committed")
    w = await driver.writer("/kept")
    await w.write(b"discarded")
    await w.cancel()
    assert await driver.get("/kept") == b"committed"
    await driver.delete("/kept")


async def test_closed_writer_refuses(driver: CheckedDriver) -> None:
    w = await driver.writer("/closed")
    await w.write(b"x")
    await w.commit()
    with pytest.raises(StorageError):
        await w.write(b"more")
    with pytest.raises(StorageError):
        await w.commit()
    c = await driver.writer("/closed2")
    await c.cancel()
    with pytest.raises(StorageError):
        await c.write(b"more")
    assert await driver.get("/closed") == b"x"
    await driver.delete("/closed")


# -- append (resumed streams) -------------------------------------------------------------


async def test_append_resumes_across_sessions(driver: CheckedDriver) -> None:
    sessions = [blob(MiB + 5, seed=5), blob(7, seed=6), b"", blob(2 * MiB - 3, seed=7)]
    expected = b""
    for i, chunk in enumerate(sessions):
        w = await driver.writer("/upload/data", append=i > 0)
        assert w.size == len(expected)
        half = len(chunk) // 2
        await w.write(chunk[:half])
        await w.write(chunk[half:])
        expected += chunk
        assert w.size == len(expected)
        await w.commit()
        assert (await driver.stat("/upload/data")).size == len(expected)
        assert await sha256_of(driver, "/upload/data") == hashlib.sha256(expected).hexdigest()
    # Ranges that straddle the session boundaries.
    boundary = len(sessions[0])
    assert await read_all(driver, "/upload/data", boundary - 3, 12) == expected[boundary - 3 : boundary + 9]
    await driver.delete("/upload")


async def test_append_to_empty_file(driver: CheckedDriver) -> None:
    await driver.put("/grow", b"")
    w = await driver.writer("/grow", append=True)
    assert w.size == 0
    await w.write(b"abc")
    await w.commit()
    assert await driver.get("/grow") == b"abc"
    await driver.delete("/grow")


async def test_append_cancel_keeps_committed_content(driver: CheckedDriver) -> None:
    await driver.put("/resume", b"committed")
    w = await driver.writer("/resume", append=True)
    await w.write(b" and thrown away")
    await w.cancel()
    assert await driver.get("/resume") == b"committed"
    w = await driver.writer("/resume", append=True)
    assert w.size == len(b"committed")
    await w.write(b" and kept")
    await w.commit()
    assert await driver.get("/resume") == b"committed and kept"
    await driver.delete("/resume")


async def test_append_to_missing_file(driver: CheckedDriver) -> None:
    with pytest.raises(PathNotFound):
        await driver.writer("/never/written", append=True)
    with pytest.raises(PathNotFound):
        await driver.stat("/never")


# -- move -----------------------------------------------------------------------------------


async def test_move_to_new_path(driver: CheckedDriver) -> None:
    data = blob(300_000, seed=8)
    await driver.put("/mv/src/file", data)
    await driver.move("/mv/src/file", "/moved/to/here")
    assert await driver.get("/moved/to/here") == data
    assert (await driver.stat("/moved/to/here")).size == len(data)
    with pytest.raises(PathNotFound):
        await driver.stat("/mv/src/file")
    with pytest.raises(PathNotFound):
        await driver.stat("/mv")  # the emptied prefix is gone, as in an object store
    assert await walk_paths(driver) == ["/moved/to/here"]
    await driver.delete("/moved")


async def test_move_overwrites(driver: CheckedDriver) -> None:
    await driver.put("/ow/src", b"the source")
    await driver.put("/ow/dst", b"the old destination, longer")
    await driver.move("/ow/src", "/ow/dst")
    assert await driver.get("/ow/dst") == b"the source"
    assert (await driver.stat("/ow/dst")).size == len(b"the source")
    with pytest.raises(PathNotFound):
        await driver.get("/ow/src")
    assert await driver.list("/ow") == ["/ow/dst"]
    await driver.delete("/ow")


async def test_move_missing_source(driver: CheckedDriver) -> None:
    await driver.put("/dst", b"untouched")
    with pytest.raises(PathNotFound):
        await driver.move("/missing", "/dst")
    with pytest.raises(PathNotFound):
        await driver.move("/missing", "/new")
    assert await driver.get("/dst") == b"untouched"
    assert await walk_paths(driver) == ["/dst"]
    await driver.delete("/dst")


# -- delete ---------------------------------------------------------------------------------


async def test_delete_file(driver: CheckedDriver) -> None:
    await driver.put("/del/one", b"1")
    await driver.put("/del/two", b"2")
    await driver.delete("/del/one")
    with pytest.raises(PathNotFound):
        await driver.get("/del/one")
    assert await driver.get("/del/two") == b"2"
    await driver.delete("/del/two")
    with pytest.raises(PathNotFound):
        await driver.stat("/del")  # the last file took its prefix with it
    assert await driver.list("/") == []


async def test_delete_only_subpaths(driver: CheckedDriver) -> None:
    doomed = ["/a/b/c", "/a/b/d/e", "/a/b/d/f/g"]
    kept = ["/a/bc", "/a/b.c", "/a/b-x", "/a/bb/c", "/ab"]
    for path in doomed + kept:
        await driver.put(path, path.encode())
    await driver.delete("/a/b")
    for path in doomed + ["/a/b", "/a/b/d"]:
        with pytest.raises(PathNotFound):
            await driver.stat(path)
    for path in kept:
        assert await driver.get(path) == path.encode()
    assert await driver.list("/a") == ["/a/b-x", "/a/b.c", "/a/bb", "/a/bc"]
    with pytest.raises(PathNotFound):
        await driver.delete("/a/b")
    with pytest.raises(PathNotFound):
        await driver.delete("/a/bb/c/d")
    await driver.delete("/a")
    await driver.delete("/ab")


# -- list and walk --------------------------------------------------------------------------

TREE = ["/t/c", "/t/b.d", "/t/a", "/t/b/y/z", "/t/B", "/t/b-c", "/t/b/x"]


async def test_list_direct_children_sorted(driver: CheckedDriver) -> None:
    for path in TREE:
        await driver.put(path, b"")
    assert await driver.list("/") == ["/t"]
    assert await driver.list("/t") == ["/t/B", "/t/a", "/t/b", "/t/b-c", "/t/b.d", "/t/c"]
    assert await driver.list("/t/b") == ["/t/b/x", "/t/b/y"]
    assert await driver.list("/t/b/y") == ["/t/b/y/z"]
    await driver.delete("/t")


async def test_walk_depth_first_sorted(driver: CheckedDriver) -> None:
    for i, path in enumerate(TREE):
        await driver.put(path, b"x" * i)
    # Sorted by component, depth first: "/t/b/..." comes before "/t/b-c" since "b" < "b-c".
    want = ["/t/B", "/t/a", "/t/b/x", "/t/b/y/z", "/t/b-c", "/t/b.d", "/t/c"]
    infos = await walk_infos(driver, "/")
    assert [i.path for i in infos] == want
    assert all(not i.is_dir for i in infos)
    assert {i.path: i.size for i in infos} == {path: i for i, path in enumerate(TREE)}
    assert await walk_paths(driver, "/t/b") == ["/t/b/x", "/t/b/y/z"]
    await driver.delete("/t")


# -- concurrency ----------------------------------------------------------------------------


async def test_concurrent_writers_to_different_paths(driver: CheckedDriver) -> None:
    contents = {f"/cc/{i:02d}/blob": blob(256 * 1024 + i, seed=100 + i) for i in range(16)}

    async def write(path: str, data: bytes) -> None:
        w = await driver.writer(path)
        for pos in range(0, len(data), 10_000):
            await w.write(data[pos : pos + 10_000])
            await anyio.sleep(0)  # interleave with the other writers
        await w.commit()

    async with anyio.create_task_group() as tg:
        for path, data in contents.items():
            tg.start_soon(write, path, data)
    for path, data in contents.items():
        assert await driver.get(path) == data
    assert await walk_paths(driver) == sorted(contents)
    await driver.delete("/cc")


async def test_concurrent_puts_to_same_path(driver: CheckedDriver) -> None:
    values = [bytes([i]) * (MiB + i) for i in range(12)]
    seen: list[bytes] = []

    async def put(i: int) -> None:
        if i % 2:
            await driver.put("/same", values[i])
        else:
            await write_in_pieces(driver, "/same", values[i], [65536 + i])

    async def watch() -> None:
        for _ in range(20):
            with contextlib.suppress(PathNotFound):  # before the first commit
                seen.append(await driver.get("/same"))
            await anyio.sleep(0)

    async with anyio.create_task_group() as tg:
        for i in range(len(values)):
            tg.start_soon(put, i)
        tg.start_soon(watch)
    final = await driver.get("/same")
    assert final in values, "the content is a mix of several writers"
    assert (await driver.stat("/same")).size == len(final)
    assert all(v in values for v in seen), "a reader saw a mix of several writers"
    assert await walk_paths(driver) == ["/same"]
    await driver.delete("/same")


async def test_many_concurrent_readers(driver: CheckedDriver) -> None:
    data = blob(4 * MiB + 1, seed=9)
    await driver.put("/shared", data)
    rng = random.Random(10)
    ranges = [(0, None)] * 4 + [(rng.randrange(len(data)), rng.randrange(2 * MiB)) for _ in range(28)]
    results: dict[int, bytes] = {}

    async def read(i: int, offset: int, length: int | None) -> None:
        results[i] = await read_all(driver, "/shared", offset, length)

    async with anyio.create_task_group() as tg:
        for i, (offset, length) in enumerate(ranges):
            tg.start_soon(read, i, offset, length)
    for i, (offset, length) in enumerate(ranges):
        want = data[offset:] if length is None else data[offset : offset + length]
        assert results[i] == want, (offset, length)
    await driver.delete("/shared")


# -- crash mid-write ------------------------------------------------------------------------


async def test_abandoned_writer_leaves_no_visible_file(driver: CheckedDriver) -> None:
    """A writer that is never committed nor cancelled (its process died) leaves nothing
    visible: not at its path, and no temporary litter in list or walk."""
    await driver.put("/crash/keep", b"kept")
    nested = await driver.writer("/crash/blob")
    top = await driver.writer("/crashed")
    try:
        for w in (nested, top):
            await w.write(blob(200_000, seed=11))
        for path in ("/crash/blob", "/crashed"):
            with pytest.raises(PathNotFound):
                await driver.stat(path)
            with pytest.raises(PathNotFound):
                await driver.get(path)
        assert await driver.list("/crash") == ["/crash/keep"]
        assert await driver.list("/") == ["/crash"]
        assert await walk_paths(driver) == ["/crash/keep"]
    finally:
        await nested.cancel()
        await top.cancel()
    await driver.delete("/crash")


# -- redirects ------------------------------------------------------------------------------


async def test_redirect_url(driver: CheckedDriver) -> None:
    await driver.put("/redirect/me", b"content")
    for method in ("GET", "HEAD"):
        url = await driver.redirect_url("/redirect/me", method)
        assert url is None or (isinstance(url, str) and url)
    await driver.delete("/redirect")
