"""The azure driver beyond the conformance suite, against a real Azurite: its settings,
append writers continued by another process, memory use on a large layer, SAS redirects
and a registry pushing and pulling through it."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest

from dockyard.storage.azure import AzureDriver, AzureSettings, from_parameters
from dockyard.storage.checked import CheckedDriver
from dockyard.storage.driver import PathNotFound
from dockyard.storage.factory import create_driver
from tests import backends
from tests.backends.azure import Azurite
from tests.conftest import start_server
from tests.helpers import DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, descriptor, push_blob, put_manifest, sha256

MiB = 1 << 20


@pytest.fixture
def azurite(object_stores: Callable[[str], backends.Backend]) -> Azurite:
    return cast(Azurite, object_stores("azure"))


@pytest.fixture
def params(azurite: Azurite) -> dict[str, Any]:
    return azurite.params(f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def driver(params: dict[str, Any], anyio_backend: str) -> AsyncIterator[CheckedDriver]:
    d = create_driver("azure", params, "/nonexistent")
    try:
        yield d
    finally:
        await d.delete("/")
        await d.close()


def pieces(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def sha_of(driver: CheckedDriver, path: str) -> str:
    h = hashlib.sha256()
    async for chunk in driver.read(path):
        h.update(chunk)
    return h.hexdigest()


# -- settings ---------------------------------------------------------------------------------

GOOD = {"account_name": "acct", "account_key": "a2V5", "container": "dockyard"}


def settings(**changes: Any) -> AzureSettings:
    params = {**GOOD, **changes}
    return AzureSettings({k: v for k, v in params.items() if v is not None})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"container": None}, r"storage\.params\.container is required"),
        ({"container": "Bad_Name"}, r"storage\.params\.container 'Bad_Name' is no valid container name"),
        ({"account_key": None}, r"storage\.params\.account_key is required.*connection_string"),
        ({"account_name": None, "account_key": None}, r"storage\.params\.account_name is required"),
        ({"colour": "blue"}, r"unknown setting storage\.params\.colour for the azure storage driver"),
        ({"redirect": "maybe"}, r"storage\.params\.redirect: expected true or false"),
        ({"block_size_mib": "0"}, r"storage\.params\.block_size_mib: must be between 1 and 4000"),
        ({"block_size_mib": "8MiB"}, r"storage\.params\.block_size_mib: expected a whole number"),
        ({"endpoint_url": "127.0.0.1:10000"}, r"storage\.params\.endpoint_url must be an http"),
        ({"connection_string": "AccountName=a;AccountKey=b"}, r"exclude each other"),
        (
            {"account_name": None, "account_key": None, "connection_string": "AccountName=a", "redirect": True},
            r"storage\.params\.redirect needs the account key",
        ),
    ],
)
def test_bad_settings_name_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(**changes)


def test_settings_from_environment_strings() -> None:
    s = settings(
        redirect="true",
        create_container="0",
        block_size_mib="4",
        redirect_expiry_seconds="60",
        prefix="/a/b/",
    )
    assert (s.redirect, s.create_container, s.block_size, s.redirect_expiry) == (True, False, 4 * MiB, 60)
    assert s.prefix == "a/b"
    defaults = settings()
    assert (defaults.redirect, defaults.create_container, defaults.block_size) == (False, False, 8 * MiB)
    assert defaults.redirect_expiry == 1200 and defaults.prefix == ""
    conn = settings(account_name=None, account_key=None, connection_string="AccountName=x;AccountKey=eQ==;")
    assert (conn.account_name, conn.account_key) == ("x", "eQ==")
    assert isinstance(from_parameters(GOOD, "/unused"), AzureDriver)


# -- against Azurite --------------------------------------------------------------------------

on_anyio = pytest.mark.anyio  # the settings tests above are plain functions


@on_anyio
async def test_connection_string_and_created_container(azurite: Azurite) -> None:
    container = f"c-{uuid.uuid4().hex[:12]}"
    params = {"connection_string": azurite.connection_string, "container": container, "create_container": "true"}
    d = create_driver("azure", params, "/unused")
    try:
        await d.put("/x/y", b"through a connection string")
        assert await d.get("/x/y") == b"through a connection string"
        assert await d.list("/") == ["/x"]
        await d.delete("/x")
    finally:
        await d.close()
    missing = create_driver(
        "azure", {**params, "container": f"c-{uuid.uuid4().hex[:12]}", "create_container": False}, ""
    )
    try:
        with pytest.raises(Exception, match="ContainerNotFound") as exc:
            await missing.put("/x", b"x")
        assert not isinstance(exc.value, PathNotFound)  # a missing container is no missing file
    finally:
        await missing.close()


APPENDER = """
import asyncio, hashlib, json, random, sys
from dockyard.storage.factory import create_driver

async def main():
    params, path, seed, size, before, sha_before = json.loads(sys.argv[1])
    d = create_driver("azure", params, "/unused")
    try:
        h = hashlib.sha256()
        async for chunk in d.read(path):  # what the other process committed
            h.update(chunk)
        assert h.hexdigest() == sha_before, "the committed content differs in this process"
        w = await d.writer(path, append=True)
        assert w.size == before, (w.size, before)
        data = random.Random(seed).randbytes(size)
        for pos in range(0, size, 1 << 20):
            await w.write(data[pos : pos + (1 << 20)])
        await w.commit(durable=False)
    finally:
        await d.close()

asyncio.run(main())
"""


@on_anyio
async def test_append_continued_by_another_process(driver: CheckedDriver, params: dict[str, Any]) -> None:
    # Small blocks, so that chunks end in the middle of blocks and sessions share none.
    params = {**params, "block_size_mib": 1}
    d = create_driver("azure", params, "/unused")
    path = "/uploads/0123456789abcdef/data"
    sizes = [3 * MiB + 17, 2 * MiB + 5, 123, 5 * MiB]
    expected = hashlib.sha256()
    total = 0
    try:
        w = await d.writer(path)
        await w.commit(durable=False)  # an upload starts as an empty file
        for i, size in enumerate(sizes):
            if i % 2 == 1:  # every other chunk is appended by a separate Python process
                arg = json.dumps([params, path, i, size, total, expected.hexdigest()])
                done = subprocess.run([sys.executable, "-c", APPENDER, arg], capture_output=True, text=True)
                assert done.returncode == 0, done.stderr
            else:
                w = await d.writer(path, append=True)
                assert w.size == total
                await w.write(pieces(i, size))
                await w.commit(durable=False)
            expected.update(pieces(i, size))
            total += size
            assert (await d.stat(path)).size == total
    finally:
        await d.close()
    # A fresh driver instance (as another replica would have) reads and moves it.
    fresh = create_driver("azure", params, "/unused")
    try:
        assert await sha_of(fresh, path) == expected.hexdigest()
        await fresh.move(path, "/blobs/sha256/ab/moved")
        assert await sha_of(fresh, "/blobs/sha256/ab/moved") == expected.hexdigest()
        assert (await fresh.stat("/blobs/sha256/ab/moved")).size == total
        with pytest.raises(PathNotFound):
            await fresh.stat(path)
    finally:
        await fresh.close()


@on_anyio
async def test_append_to_a_blob_written_in_one_put(driver: CheckedDriver, caplog: pytest.LogCaptureFixture) -> None:
    # Put Blob leaves no block list to extend: the driver re-stages the content once.
    caplog.set_level(logging.INFO, "dockyard.storage.azure")
    first = pieces(1, 3 * MiB)
    await driver.put("/one/shot", first)
    w = await driver.writer("/one/shot", append=True)
    assert w.size == len(first)
    await w.write(b"tail")
    await w.commit()
    assert await driver.get("/one/shot") == first + b"tail"
    assert sum("re-staging /one/shot" in r.getMessage() for r in caplog.records) == 1
    w = await driver.writer("/one/shot", append=True)  # now made of blocks: nothing re-staged
    await w.write(b"more")
    await w.commit()
    assert await driver.get("/one/shot") == first + b"tailmore"
    assert sum("re-staging /one/shot" in r.getMessage() for r in caplog.records) == 1


@on_anyio
async def test_append_refuses_a_blob_changed_meanwhile(driver: CheckedDriver) -> None:
    w = await driver.writer("/raced")
    await w.commit()
    slow = await driver.writer("/raced", append=True)
    fast = await driver.writer("/raced", append=True)
    await fast.write(b"fast")
    await fast.commit()
    await slow.write(b"slow")
    with pytest.raises(Exception, match="ConditionNotMet|412"):
        await slow.commit()
    assert await driver.get("/raced") == b"fast"


@on_anyio
async def test_cancel_with_blocks_staged(driver: CheckedDriver, params: dict[str, Any]) -> None:
    small = create_driver("azure", {**params, "block_size_mib": 1}, "/unused")
    try:
        await small.put("/kept", b"old")
        for path in ("/kept", "/fresh/file"):
            w = await small.writer(path)
            await w.write(pieces(3, 3 * MiB + 5))  # three blocks staged, one in flight
            await w.cancel()
        assert await small.get("/kept") == b"old"
        with pytest.raises(PathNotFound):
            await small.stat("/fresh")
        assert await small.list("/") == ["/kept"]
    finally:
        await small.close()


@on_anyio
async def test_walk_streams_in_component_order(driver: CheckedDriver) -> None:
    # Names full of "-" and ".", which sort before "/" in the service's listing order.
    rng = random.Random(12)
    parts = ["a", "a-b", "a.b", "a_b", "ab", "b", "a-", "-a", ".a", "Z", "0"]
    paths = sorted({"/" + "/".join(rng.choice(parts) for _ in range(rng.randint(1, 4))) for _ in range(120)})
    # An object store could hold a file and a prefix of the same name; keep to what a disk can.
    paths = [p for p in paths if not any(q.startswith(p + "/") for q in paths)]
    for path in paths:
        await driver.put(path, b"")
    walked = [info.path async for info in driver.walk("/")]
    assert walked == sorted(paths, key=lambda p: p.split("/"))


@on_anyio
async def test_large_layer_in_chunks_uses_bounded_memory(driver: CheckedDriver) -> None:
    chunk, count = 8 * MiB, 8  # a 64 MiB layer pushed in 8 MiB PATCHes
    path, target = "/uploads/big/data", "/blobs/sha256/bi/big"
    expected = hashlib.sha256()
    tracemalloc.start()
    try:
        w = await driver.writer(path)
        await w.commit(durable=False)
        for i in range(count):
            data = pieces(i, chunk)
            expected.update(data)
            w = await driver.writer(path, append=True)
            assert w.size == i * chunk
            for pos in range(0, chunk, MiB):  # as the upload service hands it over
                await w.write(data[pos : pos + MiB])
            await w.commit(durable=False)
            del data
        await driver.move(path, target)
        assert (await driver.stat(target)).size == chunk * count
        assert await sha_of(driver, target) == expected.hexdigest()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"peak traced memory for a 64 MiB layer: {peak / MiB:.1f} MiB")
    assert peak < 40 * MiB, f"{peak / MiB:.1f} MiB"


@on_anyio
async def test_redirect_urls_are_read_only_sas(params: dict[str, Any]) -> None:
    data = pieces(7, 2 * MiB + 3)
    off = create_driver("azure", params, "/unused")
    on = create_driver("azure", {**params, "redirect": "true", "redirect_expiry_seconds": "300"}, "/unused")
    try:
        await off.put("/blobs/x", data)
        assert await off.redirect_url("/blobs/x") is None
        url = await on.redirect_url("/blobs/x")
        assert url is not None
        query = parse_qs(urlsplit(url).query)
        assert query["sp"] == ["r"] and "sig" in query and "se" in query
        async with httpx.AsyncClient(timeout=30) as http:
            got = await http.get(url)
            assert got.status_code == 200 and got.content == data
            assert (await http.head(url)).status_code == 200
            assert (await on.redirect_url("/blobs/x", "HEAD")) is not None
            # Read-only: the URL cannot overwrite the blob.
            put = await http.put(url, content=b"x", headers={"x-ms-blob-type": "BlockBlob"})
            assert put.status_code == 403
            tampered = url.replace("sp=r", "sp=rw")
            assert (await http.get(tampered)).status_code == 403
        assert await on.get("/blobs/x") == data
    finally:
        await on.delete("/")
        await off.close()
        await on.close()


# -- the registry on Azurite ------------------------------------------------------------------


def test_registry_push_and_pull(azurite: Azurite, tmp_path: Path) -> None:
    prefix = f"reg-{uuid.uuid4().hex[:8]}"
    server = start_server(tmp_path / "data", extra_env=azurite.server_env(prefix))
    try:
        with server.client() as http:
            repo = "azure/smoke"
            config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
            small = random.randbytes(3000)
            big = random.randbytes(9 * MiB + 7)
            push_blob(http, repo, config)  # monolithic
            push_blob(http, repo, small)
            # Chunked: POST, PATCHes with Content-Range, PUT with the digest.
            r = http.post(f"/v2/{repo}/blobs/uploads/")
            assert r.status_code == 202, r.text
            location = r.headers["location"]
            step = 4 * MiB
            for pos in range(0, len(big), step):
                part = big[pos : pos + step]
                r = http.patch(
                    location,
                    content=part,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{pos}-{pos + len(part) - 1}",
                    },
                )
                assert r.status_code == 202, r.text
                location = r.headers["location"]
            sep = "&" if "?" in location else "?"
            r = http.put(f"{location}{sep}digest={sha256(big)}")
            assert r.status_code == 201, r.text
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": DOCKER_MANIFEST,
                    "config": descriptor(DOCKER_CONFIG, config),
                    "layers": [descriptor(DOCKER_LAYER, small), descriptor(DOCKER_LAYER, big)],
                }
            ).encode()
            assert put_manifest(http, repo, "v1", manifest, DOCKER_MANIFEST).status_code == 201
            # Pull it back.
            got = http.get(f"/v2/{repo}/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
            assert got.status_code == 200 and got.content == manifest
            for data in (config, small, big):
                pulled = http.get(f"/v2/{repo}/blobs/{sha256(data)}")
                assert pulled.status_code == 200 and pulled.content == data
            ranged = http.get(f"/v2/{repo}/blobs/{sha256(big)}", headers={"Range": "bytes=100-199"})
            assert ranged.status_code == 206 and ranged.content == big[100:200]
    finally:
        server.stop()

    # The bytes live in Azurite under the prefix, content-addressed.
    async def stored() -> list[str]:
        d = create_driver("azure", azurite.params(prefix), "/unused")
        try:
            paths = [info.path async for info in d.walk("/blobs")]
            await d.delete("/")
            return paths
        finally:
            await d.close()

    paths = anyio.run(stored)
    assert {f"/blobs/sha256/{d[7:9]}/{d[7:]}" for d in map(sha256, (config, small, big))} <= set(paths)
