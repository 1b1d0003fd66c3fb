"""The Swift driver against a real Swift (tests/backends/swift.py): settings, append
writers continued by other driver instances and processes, large objects and their
segments, TempURL redirects, and a registry pushing and pulling through it."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import random
import threading
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from dockyard.storage.checked import CheckedDriver
from dockyard.storage.driver import DriverError, PathNotFound
from dockyard.storage.factory import create_driver
from dockyard.storage.swift import MiB, SwiftDriver, parse_settings
from tests import backends
from tests.backends.swift import CONTAINER, SwiftBackend
from tests.conftest import start_server
from tests.helpers import DOCKER_LAYER, DOCKER_MANIFEST, descriptor, push_blob, sha256

pytestmark = pytest.mark.anyio

BASE = {"auth_url": "http://127.0.0.1:1/auth/v1.0", "username": "a:u", "password": "p", "container": "c"}


@pytest.fixture
def swift(object_stores: Callable[[str], backends.Backend]) -> SwiftBackend:
    return cast(SwiftBackend, object_stores("swift"))


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_driver(
    swift: SwiftBackend, prefix: str, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[Callable[..., CheckedDriver]]:
    """Drivers on one fresh prefix, closed at the end; keyword arguments override params."""
    made: list[CheckedDriver] = []

    def make(**overrides: Any) -> CheckedDriver:
        d = create_driver("swift", {**swift.params(prefix), **overrides}, str(tmp_path))
        made.append(d)
        return d

    yield make
    for d in made:
        await d.close()


def blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def read_all(d: CheckedDriver, path: str) -> bytes:
    return b"".join([chunk async for chunk in d.read(path)])


async def append(d: CheckedDriver, path: str, data: bytes, pieces: int = 3) -> None:
    w = await d.writer(path, append=True)
    step = max(1, len(data) // pieces)
    for pos in range(0, len(data), step):
        await w.write(data[pos : pos + step])
    await w.commit(durable=False)


# -- settings ---------------------------------------------------------------------------------


def test_settings_defaults_and_strings() -> None:
    s = parse_settings(BASE)
    assert (s.prefix, s.segment_size, s.redirect, s.redirect_expiry_seconds, s.create_container) == (
        "",
        16 * MiB,
        False,
        1200,
        False,
    )
    assert not s.keystone
    # Settings from the environment arrive as strings.
    s = parse_settings(
        {
            **BASE,
            "prefix": "/reg/one/",
            "segment_size_mib": "4",
            "redirect": "true",
            "temp_url_key": "k",
            "redirect_expiry_seconds": "60",
            "create_container": "0",
        }
    )
    assert (s.prefix, s.segment_size, s.redirect, s.redirect_expiry_seconds, s.create_container) == (
        "reg/one",
        4 * MiB,
        True,
        60,
        False,
    )
    key_form = {k: v for k, v in BASE.items() if k != "password"} | {"key": "secret"}
    assert parse_settings(key_form).password == "secret"
    v3 = parse_settings({**BASE, "auth_url": "https://keystone:5000/v3", "project_name": "p", "region": "r1"})
    assert v3.keystone and (v3.user_domain_name, v3.project_domain_name, v3.region) == ("Default", "Default", "r1")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"bucket": "x"}, "bucket"),
        ({"container": None}, "container"),
        ({"container": "a/b"}, "container"),
        ({"auth_url": None}, "auth_url"),
        ({"auth_url": "ftp://x/auth"}, "auth_url"),
        ({"username": ""}, "username"),
        ({"password": None}, "password"),
        ({"key": "also"}, "key"),
        ({"segment_size_mib": "abc"}, "segment_size_mib"),
        ({"segment_size_mib": 0}, "segment_size_mib"),
        ({"segment_size_mib": 6000}, "segment_size_mib"),
        ({"redirect": "maybe"}, "redirect"),
        ({"redirect": True}, "temp_url_key"),
        ({"create_container": 2}, "create_container"),
        ({"redirect_expiry_seconds": -5}, "redirect_expiry_seconds"),
        ({"prefix": "a~b"}, "prefix"),
        ({"prefix": "a/../b"}, "prefix"),
        ({"auth_url": "https://keystone/v3"}, "project_name"),
        ({"auth_url": "https://keystone/v3", "project_name": "p", "interface": "secret"}, "interface"),
        ({"temp_url_key": 5}, "temp_url_key"),
    ],
)
def test_settings_errors_name_the_key(change: dict[str, Any], named: str) -> None:
    params = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(ValueError, match=named):
        create_driver("swift", params, "/nonexistent")


async def test_missing_container_is_a_readable_error(swift: SwiftBackend, tmp_path: Path) -> None:
    d = create_driver("swift", {**swift.params("p"), "container": f"absent-{uuid.uuid4().hex[:8]}"}, str(tmp_path))
    try:
        with pytest.raises(DriverError, match="create_container"):
            await d.stat("/x")
    finally:
        await d.close()


# -- append writers, moves and segments ------------------------------------------------------------


async def test_append_continued_by_new_driver_then_moved(
    swift: SwiftBackend, prefix: str, make_driver: Callable[..., CheckedDriver]
) -> None:
    """An upload's life: begun by one driver (process), continued by others, moved into
    place; then its directory is removed. No segment is left behind at the end."""
    upload, target = "/uploads/u1/data", "/blobs/sha256/ab/abcdef"
    chunks = [blob(int(2.5 * MiB), 1), blob(7, 2), blob(3 * MiB, 3), blob(100_000, 4)]
    first = make_driver()
    w = await first.writer(upload)
    await w.commit(durable=False)  # an empty file, as an upload session starts
    expected = b""
    for i, chunk in enumerate(chunks):
        d = make_driver()  # a new instance each time: nothing shared but Swift
        await append(d, upload, chunk)
        expected += chunk
        reader = make_driver()
        assert (await reader.stat(upload)).size == len(expected)
        assert await read_all(reader, upload) == expected, f"after chunk {i}"
    segments = swift.object_names(f"{prefix}~segments/")
    assert len(segments) >= 6  # 1 MiB segments: the large appends went through SLO
    assert await make_driver().list("/") == ["/uploads"]  # segments stay out of sight
    mover = make_driver()
    await mover.move(upload, target)
    with pytest.raises(PathNotFound):  # what the registry does after a move: nothing is left
        await mover.delete("/uploads/u1")
    reader = make_driver()
    assert await read_all(reader, target) == expected
    assert [i.path async for i in reader.walk("/")] == [target]
    assert swift.object_names(f"{prefix}~segments/") == segments  # now the blob's
    await reader.delete(target)
    assert swift.object_names(prefix) == [], "segments were left behind"


async def test_small_appends_stay_one_plain_object(
    swift: SwiftBackend, prefix: str, make_driver: Callable[..., CheckedDriver]
) -> None:
    d = make_driver()
    await d.put("/f", b"abc")
    await append(d, "/f", b"def")
    await append(make_driver(), "/f", b"ghi")
    assert await d.get("/f") == b"abcdefghi"
    assert swift.object_names(prefix) == [f"{prefix}/f"]
    await d.delete("/f")


async def test_many_appends_fold_into_nested_manifests(
    swift: SwiftBackend, prefix: str, make_driver: Callable[..., CheckedDriver]
) -> None:
    """Past fold_at loose segments an append nests them in a sub-manifest, so a manifest
    stays small and each commit validates few entries."""
    params = swift.params(prefix)
    d = CheckedDriver(SwiftDriver(dataclasses.replace(parse_settings(params), fold_at=3)))
    try:
        expected = blob(MiB + 10, 5)
        await d.put("/big", expected[:10])
        await append(d, "/big", expected[10:])  # a plain file grows into an SLO
        for i in range(10):
            chunk = blob(5000 + i, 10 + i)
            await append(d, "/big", chunk, pieces=1)
            expected += chunk
        assert await read_all(d, "/big") == expected
        r = swift.request("GET", f"/{CONTAINER}/{prefix}/big", params={"multipart-manifest": "get"})
        assert any(entry.get("sub_slo") for entry in r.json())
        assert len(r.json()) <= 5
        part = b"".join([c async for c in d.read("/big", MiB - 3, 5010)])
        assert part == expected[MiB - 3 : MiB - 3 + 5010]
        await d.move("/big", "/moved")
        assert await read_all(d, "/moved") == expected
        await d.delete("/")
        assert swift.object_names(prefix) == []
    finally:
        await d.close()


async def test_manifest_entry_limit(
    swift: SwiftBackend, prefix: str, make_driver: Callable[..., CheckedDriver]
) -> None:
    """More segments than a manifest may list (SLO's max_manifest_segments, lowered here)
    are grouped into nested manifests."""
    d = make_driver()
    await d.put("/warm", b"")  # loads the cluster's limits, which the next line overrides
    cast(SwiftDriver, d.inner)._caps.max_segments = 3
    data = blob(8 * MiB + 1, 14)
    w = await d.writer("/many")
    for pos in range(0, len(data), 3 * MiB):
        await w.write(data[pos : pos + 3 * MiB])
    await w.commit()
    assert await read_all(d, "/many") == data
    r = swift.request("GET", f"/{CONTAINER}/{prefix}/many", params={"multipart-manifest": "get"})
    assert len(r.json()) == 3 and all(entry.get("sub_slo") for entry in r.json())
    await d.delete("/")
    assert swift.object_names(prefix) == []


async def test_replacing_a_large_object_deletes_its_segments(
    swift: SwiftBackend, prefix: str, make_driver: Callable[..., CheckedDriver]
) -> None:
    d = make_driver()
    for path in ("/a", "/b"):
        w = await d.writer(path)
        await w.write(blob(3 * MiB + 1, 6))
        await w.commit()
    assert len(swift.object_names(f"{prefix}~segments/")) == 8
    await d.put("/a", b"small now")  # a's four segments go
    assert len(swift.object_names(f"{prefix}~segments/")) == 4
    await d.move("/b", "/a")  # b's segments now belong to a
    await d.put("/c", b"c")
    w = await d.writer("/c")
    await w.write(blob(2 * MiB, 7))
    await w.commit()
    await d.move("/c", "/a")  # replaces a: the segments that came from b go
    assert len(swift.object_names(f"{prefix}~segments/")) == 2
    assert await d.get("/a") == blob(2 * MiB, 7)
    w = await d.writer("/abandoned")
    await w.write(blob(2 * MiB, 8))  # two segments uploaded, never committed
    await w.cancel()
    await d.delete("/")
    assert swift.object_names(prefix) == []


async def test_64_mib_in_8_mib_chunks_with_bounded_memory(
    swift: SwiftBackend, prefix: str, make_driver: Callable[..., CheckedDriver]
) -> None:
    chunk_size, chunks = 8 * MiB, 8
    d = make_driver(segment_size_mib=16)
    want = hashlib.sha256()
    tracemalloc.start()
    try:
        w = await d.writer("/uploads/big/data")
        await w.commit(durable=False)
        for i in range(chunks):
            chunk = blob(chunk_size, 100 + i)
            want.update(chunk)
            w = await make_driver(segment_size_mib=16).writer("/uploads/big/data", append=True)
            for pos in range(0, chunk_size, MiB):  # as the upload pump hands it over
                await w.write(chunk[pos : pos + MiB])
            await w.commit(durable=False)
            del chunk
        await d.move("/uploads/big/data", "/blobs/big")
        got = hashlib.sha256()
        async for piece in d.read("/blobs/big"):
            got.update(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got.hexdigest() == want.hexdigest()
    assert (await d.stat("/blobs/big")).size == chunk_size * chunks
    print(f"peak traced memory: {peak / MiB:.1f} MiB")
    assert peak < 40 * MiB, f"peak {peak / MiB:.1f} MiB"
    await d.delete("/")
    assert swift.object_names(prefix) == []


async def test_reauthenticates_after_token_expiry(make_driver: Callable[..., CheckedDriver]) -> None:
    d = make_driver()
    await d.put("/x", b"1")
    inner = cast(SwiftDriver, d.inner)
    inner._session.token = "expired-token"
    assert await d.get("/x") == b"1"
    assert inner._session.token != "expired-token"
    await d.delete("/x")


async def test_without_prefix_in_own_container(swift: SwiftBackend, tmp_path: Path) -> None:
    """create_container, and the segments of a prefix-less driver hidden at the root."""
    container = f"own-{uuid.uuid4().hex[:8]}"
    params = {**swift.params(""), "container": container, "create_container": "true"}
    d = create_driver("swift", params, str(tmp_path))
    try:
        w = await d.writer("/a/big")
        await w.write(blob(2 * MiB + 3, 9))
        await w.commit()
        assert await d.list("/") == ["/a"]
        assert [i.path async for i in d.walk("/")] == ["/a/big"]
        r = swift.request("GET", f"/{container}", params={"format": "json", "delimiter": "/"})
        assert [item.get("subdir") or item["name"] for item in r.json()] == ["a/", "~segments/"]
        await d.delete("/")
        r = swift.request("GET", f"/{container}", params={"format": "json"})
        assert r.status_code == 200 and r.json() == []
    finally:
        await d.close()
        swift.request("DELETE", f"/{container}")


class _StandInKeystone(http.server.ThreadingHTTPServer):
    """Answers Keystone v3's password authentication with a tempauth token and a catalog
    that leads to the real Swift (no Keystone here: this checks the driver's side only)."""

    def __init__(self, swift: SwiftBackend) -> None:
        self.swift = swift
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                swift.authenticate()
                catalog = [
                    {"type": "identity", "endpoints": [{"interface": "public", "url": "http://127.0.0.1:9/"}]},
                    {
                        "type": "object-store",
                        "endpoints": [
                            {"interface": "internal", "region_id": "r1", "url": "http://127.0.0.1:9/internal"},
                            {"interface": "public", "region_id": "r2", "url": "http://127.0.0.1:9/other-region"},
                            {"interface": "public", "region_id": "r1", "url": swift.storage_url},
                        ],
                    },
                ]
                answer = json.dumps({"token": {"catalog": catalog}}).encode()
                ok = self.path == "/v3/auth/tokens"
                self.send_response(201 if ok else 404)
                self.send_header("X-Subject-Token", swift.token)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


async def test_keystone_v3_against_a_stand_in(swift: SwiftBackend, prefix: str, tmp_path: Path) -> None:
    keystone = _StandInKeystone(swift)
    thread = threading.Thread(target=keystone.serve_forever, daemon=True)
    thread.start()
    params = {
        **{k: v for k, v in swift.params(prefix).items() if k not in ("auth_url", "username", "password")},
        "auth_url": f"http://127.0.0.1:{keystone.server_address[1]}/v3",
        "username": "tester",
        "password": "secret",
        "project_name": "test",
        "region": "r1",
    }
    d = create_driver("swift", params, str(tmp_path))
    try:
        await d.put("/k", b"via keystone")
        cast(SwiftDriver, d.inner)._session.token = "expired"
        assert await d.get("/k") == b"via keystone"
        await d.delete("/k")
    finally:
        await d.close()
        keystone.shutdown()
        keystone.server_close()
    assert len(keystone.requests) == 2  # the first token, then a new one after the 401
    assert keystone.requests[0] == {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": "tester", "domain": {"name": "Default"}, "password": "secret"}},
            },
            "scope": {"project": {"name": "test", "domain": {"name": "Default"}}},
        }
    }


# -- TempURL redirects -------------------------------------------------------------------------------


async def test_temp_url_redirect(make_driver: Callable[..., CheckedDriver]) -> None:
    on = make_driver(redirect=True)
    small, large = b"tiny content", blob(3 * MiB + 5, 11)
    await on.put("/small", small)
    w = await on.writer("/dir/large")
    await w.write(large)
    await w.commit()
    async with httpx.AsyncClient() as client:
        for path, data in (("/small", small), ("/dir/large", large)):
            url = await on.redirect_url(path)
            assert url is not None and "temp_url_sig=" in url
            r = await client.get(url)
            assert r.status_code == 200 and r.content == data
            head_url = await on.redirect_url(path, "HEAD")
            assert head_url is not None
            r = await client.head(head_url)
            assert r.status_code == 200 and int(r.headers["content-length"]) == len(data)
        tampered = cast(str, await on.redirect_url("/small")).replace("small", "dir/large")
        assert (await client.get(tampered)).status_code == 401
    assert await on.redirect_url("/small", "PUT") is None
    off = make_driver()  # temp_url_key set, redirect off
    assert await off.redirect_url("/small") is None
    await on.delete("/")


# -- the registry on Swift -----------------------------------------------------------------------------


def test_registry_push_and_pull(swift: SwiftBackend, prefix: str, tmp_path: Path) -> None:
    """Two `dockyard serve` processes on one data folder and one Swift prefix: a chunked
    upload begun on one is continued on the other; pulls are redirected to TempURLs."""
    env = {**swift.server_env(prefix), "DOCKYARD_STORAGE__PARAMS__REDIRECT": "true"}
    one = start_server(tmp_path / "data", extra_env=env)
    two = start_server(tmp_path / "data", extra_env=env)
    try:
        repo = "smoke/swift"
        with one.client() as c1, two.client() as c2:
            config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
            push_blob(c1, repo, config)
            small_layer = blob(300_000, 12)
            push_blob(c2, repo, small_layer)  # monolithic
            layer = blob(3 * MiB + 12345, 13)
            loc = c1.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
            pos = 0
            for i, size in enumerate((700_000, 1_500_000, 5, 600_000)):
                client = (c1, c2)[i % 2]
                r = client.patch(
                    loc,
                    content=layer[pos : pos + size],
                    headers={"Content-Range": f"{pos}-{pos + size - 1}", "Content-Type": "application/octet-stream"},
                )
                assert r.status_code == 202, r.text
                loc, pos = r.headers["location"], pos + size
            r = c2.put(loc, params={"digest": sha256(layer)}, content=layer[pos:])
            assert r.status_code == 201, r.text
            manifest = {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": descriptor("application/vnd.docker.container.image.v1+json", config),
                "layers": [descriptor(DOCKER_LAYER, small_layer), descriptor(DOCKER_LAYER, layer)],
            }
            body = httpx.Request("PUT", "/", json=manifest).content
            r = c1.put(f"/v2/{repo}/manifests/v1", content=body, headers={"Content-Type": DOCKER_MANIFEST})
            assert r.status_code == 201, r.text
            r = c2.get(f"/v2/{repo}/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
            assert r.status_code == 200 and r.content == body
            for data in (config, small_layer, layer):
                r = c1.get(f"/v2/{repo}/blobs/{sha256(data)}")
                assert r.status_code == 307, r.text
                assert r.headers["location"].startswith(swift.storage_url)
                assert httpx.get(r.headers["location"]).content == data
        assert swift.object_names(f"{prefix}/uploads/") == []
    finally:
        one.stop()
        two.stop()
