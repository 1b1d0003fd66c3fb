"""The s3 driver beyond the conformance suite, against a real moto server: settings,
segmented append files continued by another driver instance (another process), moves that
assemble segments server-side, memory on a large layer, pre-signed redirects, encryption
and storage class on the wire, and a registry pushing and pulling through it."""

from __future__ import annotations

import hashlib
import json
import random
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
from dockyard.storage.s3 import SEG_MARK, S3Settings, from_parameters, parse_settings
from tests import backends
from tests.backends.s3 import BUCKET, MotoS3
from tests.conftest import start_server
from tests.helpers import DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, descriptor, push_blob, put_manifest, sha256

MiB = 1 << 20
anyio_mark = pytest.mark.anyio


@pytest.fixture
def moto(object_stores: Callable[[str], backends.Backend]) -> MotoS3:
    return cast(MotoS3, object_stores("s3"))


@pytest.fixture
def prefix() -> str:
    return f"s3t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make(moto: MotoS3, prefix: str, anyio_backend: str) -> AsyncIterator[Callable[..., CheckedDriver]]:
    """Build drivers on this test's prefix (each one stands for a separate process);
    everything under the prefix is removed afterwards."""
    made: list[CheckedDriver] = []

    def build(**extra: Any) -> CheckedDriver:
        d = create_driver("s3", {**moto.params(prefix), **extra}, "/nonexistent")
        made.append(d)
        return d

    yield build
    cleaner = build()
    await cleaner.delete("/")
    for d in made:
        await d.close()


def keys_under(moto: MotoS3, prefix: str) -> list[str]:
    found: list[str] = []
    for page in moto.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
        found.extend(obj["Key"] for obj in page.get("Contents", ()))
    return sorted(found)


def blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def read_all(driver: CheckedDriver, path: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in driver.read(path, offset, length)])


# -- settings -----------------------------------------------------------------------------


def test_settings_defaults_and_strings() -> None:
    s = parse_settings({"bucket": "b"})
    assert s == S3Settings(bucket="b")
    assert (s.region, s.part_size_mib, s.redirect, s.redirect_expiry_seconds) == ("us-east-1", 16, False, 1200)
    # Environment variables arrive as strings.
    s = parse_settings(
        {
            "bucket": "b",
            "force_path_style": "true",
            "redirect": "TRUE",
            "create_bucket": "0",
            "part_size_mib": "8",
            "redirect_expiry_seconds": "60",
            "prefix": "/some/root/",
            "server_side_encryption": "aws:kms",
            "sse_kms_key_id": "alias/x",
        }
    )
    assert (s.force_path_style, s.redirect, s.create_bucket) == (True, True, False)
    assert (s.part_size_mib, s.redirect_expiry_seconds, s.prefix) == (8, 60, "some/root")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "storage.params.bucket: required"),
        ({"bucket": ""}, "storage.params.bucket: required"),
        ({"bucket": "b", "part_size_mib": 4}, "storage.params.part_size_mib: must be between 5 and 5120"),
        ({"bucket": "b", "part_size_mib": "lots"}, "storage.params.part_size_mib: expected a whole number"),
        ({"bucket": "b", "part_size_mib": True}, "storage.params.part_size_mib: expected a whole number"),
        ({"bucket": "b", "colour": "blue"}, "unknown setting storage.params.colour for the s3 storage driver"),
        ({"bucket": "b", "redirect": "maybe"}, "storage.params.redirect: expected true or false"),
        ({"bucket": "b", "force_path_style": 2}, "storage.params.force_path_style: expected true or false"),
        ({"bucket": "b", "server_side_encryption": "DES"}, "storage.params.server_side_encryption: one of"),
        ({"bucket": "b", "sse_kms_key_id": "k"}, "storage.params.sse_kms_key_id: only with"),
        ({"bucket": "b", "access_key_id": "a"}, "storage.params.secret_access_key: required"),
        ({"bucket": "b", "session_token": "t"}, "storage.params.session_token: needs"),
        ({"bucket": "b", "endpoint_url": "localhost:9000"}, "storage.params.endpoint_url: expected an http"),
        ({"bucket": "b", "prefix": "a b"}, "storage.params.prefix:"),
        ({"bucket": "b", "storage_class": "cheap"}, "storage.params.storage_class:"),
        ({"bucket": "b", "redirect_expiry_seconds": 0}, "storage.params.redirect_expiry_seconds: must be between"),
    ],
)
def test_settings_refused(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as exc:
        from_parameters(params, "/data")
    assert message in str(exc.value)


# -- segmented append files ---------------------------------------------------------------


@anyio_mark
async def test_append_continued_by_another_process_then_moved(
    make: Callable[..., CheckedDriver], moto: MotoS3, prefix: str
) -> None:
    # Sizes mix pieces above S3's 5 MiB part minimum (copied server-side on move) with
    # short runs (re-uploaded through the buffer), including a short one last.
    sessions = [blob(6 * MiB, 1), blob(100_000, 2), blob(3 * MiB, 3), blob(7 * MiB + 1, 4), b"x", blob(2 * MiB, 5)]
    first = make(part_size_mib=5)
    w = await first.writer("/uploads/u1/data")
    await w.commit(durable=False)  # an empty file, as a new upload session starts
    expected = b""
    for i, chunk in enumerate(sessions):
        d = first if i < 3 else make(part_size_mib=5)  # later chunks reach "another process"
        w = await d.writer("/uploads/u1/data", append=True)
        assert w.size == len(expected)
        for pos in range(0, len(chunk), MiB):
            await w.write(chunk[pos : pos + MiB])
        await w.commit(durable=False)
        expected += chunk
        assert (await d.stat("/uploads/u1/data")).size == len(expected)
    fresh = make()
    assert await read_all(fresh, "/uploads/u1/data") == expected
    edge = len(sessions[0])
    assert await read_all(fresh, "/uploads/u1/data", edge - 5, 100_010) == expected[edge - 5 : edge + 100_005]
    # The segments are hidden: one logical file in list and walk.
    assert await fresh.list("/uploads/u1") == ["/uploads/u1/data"]
    assert [(i.path, i.size) for i in [x async for x in fresh.walk("/")]] == [("/uploads/u1/data", len(expected))]
    assert sum(SEG_MARK in k for k in keys_under(moto, prefix)) == len(sessions)

    await fresh.move("/uploads/u1/data", "/blobs/sha256/ab/abcd")
    assert await read_all(fresh, "/blobs/sha256/ab/abcd") == expected
    assert keys_under(moto, prefix) == [f"{prefix}/blobs/sha256/ab/abcd"]  # one object; segments gone
    with pytest.raises(PathNotFound):
        await fresh.stat("/uploads/u1/data")


@anyio_mark
async def test_move_of_many_small_segments_and_replace_of_segmented_file(
    make: Callable[..., CheckedDriver], moto: MotoS3, prefix: str
) -> None:
    d = make(part_size_mib=5)
    await d.put("/f", blob(1000, 6))
    expected = blob(1000, 6)
    for i in range(24):  # 24 x 512 KiB: no piece is a valid part on its own
        w = await d.writer("/f", append=True)
        chunk = blob(512 * 1024, 100 + i)
        await w.write(chunk)
        await w.commit()
        expected += chunk
    await d.put("/g/old", b"")
    w = await d.writer("/g/old", append=True)  # a destination with segments of its own
    await w.write(b"stale segment")
    await w.commit()
    await d.move("/f", "/g/old")
    assert await d.get("/g/old") == expected
    assert keys_under(moto, prefix) == [f"{prefix}/g/old"]
    # A plain write over a segmented file replaces all of it.
    w = await d.writer("/g/old", append=True)
    await w.write(b"more")
    await w.commit()
    await d.put("/g/old", b"new")
    assert await d.get("/g/old") == b"new"
    assert keys_under(moto, prefix) == [f"{prefix}/g/old"]


@anyio_mark
@pytest.mark.parametrize(
    "sizes",
    [
        [0, 5 * MiB, 1, 5 * MiB - 1, 5 * MiB + 1],  # exact minimums, a one-byte piece between
        [4 * MiB, 6 * MiB],  # a short run topped up from the long piece after it
        [3 * MiB, 3 * MiB, 3 * MiB, 1],  # short pieces only
        [1, 11 * MiB],  # a long piece after a tiny one
        [2 * MiB, 4 * MiB, 1 * MiB, 8 * MiB, 2 * MiB],
    ],
    ids=repr,
)
async def test_move_assembles_any_layout(
    make: Callable[..., CheckedDriver], moto: MotoS3, prefix: str, sizes: list[int]
) -> None:
    d = make(part_size_mib=5)
    expected = blob(sizes[0], 20)
    await d.put("/src", expected)
    for i, size in enumerate(sizes[1:]):
        chunk = blob(size, 21 + i)
        w = await d.writer("/src", append=True)
        await w.write(chunk)
        await w.commit()
        expected += chunk
    await d.move("/src", "/dst")
    assert await d.get("/dst") == expected
    assert keys_under(moto, prefix) == [f"{prefix}/dst"]


@anyio_mark
async def test_move_beyond_the_copy_limit_uses_part_copies(
    make: Callable[..., CheckedDriver], moto: MotoS3, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dockyard.storage.s3 as s3

    monkeypatch.setattr(s3, "MAX_PART", 6 * MiB)  # stands for S3's 5 GiB, which is too big for a test
    d = make(part_size_mib=5)
    data = blob(13 * MiB + 3, 30)
    await d.put("/one", data)
    await d.move("/one", "/two")  # one object over the limit: UploadPartCopy ranges of 6, 6 and 1 MiB
    assert await d.get("/two") == data
    assert keys_under(moto, prefix) == [f"{prefix}/two"]


@anyio_mark
async def test_append_cancel_aborts_its_multipart_upload(
    make: Callable[..., CheckedDriver], moto: MotoS3, prefix: str
) -> None:
    d = make(part_size_mib=5)
    await d.put("/up", b"kept")
    w = await d.writer("/up", append=True)
    await w.write(blob(11 * MiB, 7))  # parts already sent
    uploads = moto.client().list_multipart_uploads(Bucket=BUCKET, Prefix=prefix + "/")
    assert len(uploads.get("Uploads", [])) == 1
    await w.cancel()
    uploads = moto.client().list_multipart_uploads(Bucket=BUCKET, Prefix=prefix + "/")
    assert uploads.get("Uploads", []) == []
    assert await d.get("/up") == b"kept"
    assert keys_under(moto, prefix) == [f"{prefix}/up"]


@anyio_mark
async def test_large_layer_in_chunks_keeps_memory_bounded(
    make: Callable[..., CheckedDriver], moto: MotoS3, prefix: str
) -> None:
    size, chunk_size = 64 * MiB, 8 * MiB
    d = make()  # default 16 MiB parts
    await d.put("/uploads/big/data", b"")
    want = hashlib.sha256()
    tracemalloc.start()
    try:
        for i in range(size // chunk_size):
            chunk = blob(chunk_size, 1000 + i)  # made per chunk: the whole file never exists here
            want.update(chunk)
            w = await (make() if i % 2 else d).writer("/uploads/big/data", append=True)
            await w.write(chunk)
            await w.commit(durable=False)
            del chunk
        got = hashlib.sha256()
        async for piece in d.read("/uploads/big/data"):
            got.update(piece)
        assert got.hexdigest() == want.hexdigest()
        await d.move("/uploads/big/data", "/blobs/big")
        got = hashlib.sha256()
        async for piece in d.read("/blobs/big"):
            got.update(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got.hexdigest() == want.hexdigest()
    print(f"peak traced memory for a 64 MiB layer in 8 MiB chunks: {peak / MiB:.1f} MiB")
    assert peak < 40 * MiB, f"peak {peak / MiB:.1f} MiB"
    head = moto.client().head_object(Bucket=BUCKET, Key=f"{prefix}/blobs/big")
    assert head["ContentLength"] == size
    assert keys_under(moto, prefix) == [f"{prefix}/blobs/big"]


@anyio_mark
async def test_large_new_file_is_streamed_as_parts(make: Callable[..., CheckedDriver], moto: MotoS3) -> None:
    d = make(part_size_mib=5)
    w = await d.writer("/big")
    data = blob(23 * MiB + 7, 8)
    for pos in range(0, len(data), 3 * MiB):
        await w.write(data[pos : pos + 3 * MiB])
    with pytest.raises(PathNotFound):  # parts are out, the file is not there yet
        await d.stat("/big")
    await w.commit()
    assert await read_all(d, "/big", 5 * MiB - 3, 11 * MiB) == data[5 * MiB - 3 : 16 * MiB - 3]
    assert await d.get("/big") == data


# -- redirects ----------------------------------------------------------------------------


@anyio_mark
async def test_redirect_url_is_a_presigned_get(make: Callable[..., CheckedDriver], moto: MotoS3) -> None:
    off = make()
    data = blob(300_000, 9)
    await off.put("/blobs/x", data)
    assert await off.redirect_url("/blobs/x") is None
    on = make(redirect="true", redirect_expiry_seconds="300")
    url = await on.redirect_url("/blobs/x")
    assert url is not None and url.startswith(moto.endpoint_url)
    assert "X-Amz-Expires=300" in url
    r = httpx.get(url, timeout=30)
    assert r.status_code == 200 and r.content == data
    head = await on.redirect_url("/blobs/x", "HEAD")
    assert head is not None
    r = httpx.head(head, timeout=30)
    assert r.status_code == 200 and int(r.headers["content-length"]) == len(data)


# -- settings on the wire -------------------------------------------------------------------


@anyio_mark
async def test_encryption_and_storage_class_reach_every_object(
    make: Callable[..., CheckedDriver], moto: MotoS3, prefix: str
) -> None:
    d = make(server_side_encryption="AES256", storage_class="STANDARD_IA", part_size_mib=5)
    await d.put("/small", b"small")  # PutObject
    await d.put("/large", blob(6 * MiB, 10))  # multipart upload
    await d.put("/src", b"moved")
    await d.move("/src", "/copied")  # CopyObject
    await d.put("/seg", blob(6 * MiB, 11))
    w = await d.writer("/seg", append=True)
    await w.write(b"tail")
    await w.commit()  # a segment
    await d.move("/seg", "/assembled")  # multipart upload with UploadPartCopy
    client = moto.client()
    for name in ("small", "large", "copied", "assembled"):
        head = client.head_object(Bucket=BUCKET, Key=f"{prefix}/{name}")
        assert head.get("ServerSideEncryption") == "AES256", name
        assert head.get("StorageClass") == "STANDARD_IA", name
    assert await d.get("/assembled") == blob(6 * MiB, 11) + b"tail"


# -- buckets and prefixes -------------------------------------------------------------------


@anyio_mark
async def test_missing_bucket_is_a_driver_error_unless_created(moto: MotoS3, anyio_backend: str) -> None:
    params = {**moto.params(""), "bucket": f"made-{uuid.uuid4().hex[:10]}"}
    absent = create_driver("s3", params, "/nonexistent")
    try:
        with pytest.raises(DriverError) as exc:
            await absent.put("/x", b"x")
        assert not isinstance(exc.value, PathNotFound)
        assert "NoSuchBucket" in str(exc.value)
    finally:
        await absent.close()
    made = create_driver("s3", {**params, "create_bucket": "true"}, "/nonexistent")
    try:
        await made.put("/x", b"x")
        assert await made.get("/x") == b"x"
        assert await made.list("/") == ["/x"]  # no prefix: keys at the bucket's top
        await made.delete("/")
    finally:
        await made.close()


@anyio_mark
async def test_prefixes_keep_registries_apart(make: Callable[..., CheckedDriver], moto: MotoS3, prefix: str) -> None:
    a = make()
    b = create_driver("s3", moto.params(prefix + "-other"), "/nonexistent")
    try:
        await a.put("/shared/name", b"a")
        await b.put("/shared/name", b"b")
        assert (await a.get("/shared/name"), await b.get("/shared/name")) == (b"a", b"b")
        await a.delete("/")
        assert await b.get("/shared/name") == b"b"
        assert keys_under(moto, prefix) == []
        await b.delete("/")
    finally:
        await b.close()


# -- the registry on S3 ---------------------------------------------------------------------


def test_registry_push_and_pull(moto: MotoS3, prefix: str, tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", extra_env=moto.server_env(prefix))
    try:
        with server.client() as http:
            config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
            push_blob(http, "s3/app", config)
            small = blob(200_000, 12)
            push_blob(http, "s3/app", small)  # monolithic
            layer = blob(13 * MiB + 5, 13)  # chunked: PATCHes of 6 MiB
            r = http.post("/v2/s3/app/blobs/uploads/")
            assert r.status_code == 202, r.text
            location = r.headers["location"]
            for pos in range(0, len(layer), 6 * MiB):
                chunk = layer[pos : pos + 6 * MiB]
                r = http.patch(
                    location,
                    content=chunk,
                    headers={
                        "Content-Range": f"{pos}-{pos + len(chunk) - 1}",
                        "Content-Type": "application/octet-stream",
                    },
                )
                assert r.status_code == 202, r.text
                location = r.headers["location"]
            r = http.put(location, params={"digest": sha256(layer)})
            assert r.status_code == 201, r.text
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": DOCKER_MANIFEST,
                    "config": descriptor(DOCKER_CONFIG, config),
                    "layers": [descriptor(DOCKER_LAYER, small), descriptor(DOCKER_LAYER, layer)],
                }
            ).encode()
            r = put_manifest(http, "s3/app", "v1", manifest, DOCKER_MANIFEST)
            assert r.status_code == 201, r.text

            got = http.get("/v2/s3/app/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
            assert got.status_code == 200 and got.content == manifest
            for data in (config, small, layer):
                r = http.get(f"/v2/s3/app/blobs/{sha256(data)}")
                assert r.status_code == 200 and r.content == data
            ranged = http.get(f"/v2/s3/app/blobs/{sha256(layer)}", headers={"Range": "bytes=6291450-6291460"})
            assert ranged.status_code == 206 and ranged.content == layer[6291450:6291461]
    finally:
        server.stop()
    keys = keys_under(moto, prefix)
    for data in (config, small, layer):
        hex_digest = sha256(data).split(":")[1]
        assert f"{prefix}/blobs/sha256/{hex_digest[:2]}/{hex_digest}" in keys
    assert not [k for k in keys if "/uploads/" in k or SEG_MARK in k], keys  # finished uploads leave nothing
    head = moto.client().head_object(
        Bucket=BUCKET, Key=f"{prefix}/blobs/sha256/{sha256(layer)[7:9]}/{sha256(layer)[7:]}"
    )
    assert head["ContentLength"] == len(layer)
    # Leave the shared bucket clean for the next tests.
    client = moto.client()
    for key in keys:
        client.delete_object(Bucket=BUCKET, Key=key)
