"""The Google Cloud Storage driver against a real emulator (tests/backends/gcs.py): settings,
appends continued by another driver and another process, a 64 MiB file through append
writers in bounded memory, V4 signed redirect URLs, OAuth tokens, and the registry on it."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import textwrap
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from dockyard.storage.checked import CheckedDriver
from dockyard.storage.driver import DriverError, PathNotFound
from dockyard.storage.factory import create_driver
from dockyard.storage.gcs import GcsDriver, from_parameters
from tests import backends
from tests.backends.gcs import BUCKET, GcsBackend, make_service_account_key
from tests.conftest import start_server
from tests.helpers import OCI_MANIFEST, push_image, sha256

MiB = 1 << 20


@pytest.fixture
def gcs(object_stores: Callable[[str], backends.Backend]) -> GcsBackend:
    backend = object_stores("gcs")
    assert isinstance(backend, GcsBackend)
    return backend


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def driver(gcs: GcsBackend, prefix: str, anyio_backend: str) -> AsyncIterator[CheckedDriver]:
    d = create_driver("gcs", gcs.params(prefix), "/nonexistent")
    try:
        yield d
    finally:
        await d.delete("/")
        await d.close()


def bucket_names(gcs: GcsBackend, prefix: str) -> list[str]:
    """Every object under prefix, straight from the JSON API, litter included."""
    r = httpx.get(f"{gcs.endpoint}/storage/v1/b/{BUCKET}/o", params={"prefix": prefix + "/"}, timeout=30)
    assert r.status_code == 200, r.text
    return sorted(item["name"] for item in r.json().get("items") or [])


async def sha256_of(driver: CheckedDriver, path: str) -> str:
    h = hashlib.sha256()
    async for chunk in driver.read(path):
        h.update(chunk)
    return h.hexdigest()


# -- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({}, "bucket"),
        ({"bucket": ""}, "bucket"),
        ({"bucket": "Not A Bucket"}, "bucket"),
        ({"bucket": "b-1", "chunk_size_mib": 0}, "chunk_size_mib"),
        ({"bucket": "b-1", "chunk_size_mib": "0.3"}, "chunk_size_mib"),
        ({"bucket": "b-1", "chunk_size_mib": -1}, "chunk_size_mib"),
        ({"bucket": "b-1", "chunk_size_mib": "lots"}, "chunk_size_mib"),
        ({"bucket": "b-1", "chunk_size_mib": 4096}, "chunk_size_mib"),
        ({"bucket": "b-1", "chunk_size_mib": True}, "chunk_size_mib"),
        ({"bucket": "b-1", "regoin": "eu"}, "regoin"),
        ({"bucket": "b-1", "redirect": "maybe"}, "redirect"),
        ({"bucket": "b-1", "create_bucket": 2}, "create_bucket"),
        ({"bucket": "b-1", "redirect_expiry_seconds": 0}, "redirect_expiry_seconds"),
        ({"bucket": "b-1", "redirect_expiry_seconds": 8 * 86400}, "redirect_expiry_seconds"),
        ({"bucket": "b-1", "redirect_expiry_seconds": "1.5"}, "redirect_expiry_seconds"),
        ({"bucket": "b-1", "endpoint_url": "localhost:4443"}, "endpoint_url"),
        ({"bucket": "b-1", "prefix": "a b"}, "prefix"),
        ({"bucket": "b-1", "prefix": "a/~part~/b"}, "prefix"),
        ({"bucket": "b-1", "credentials_file": "/nonexistent/key.json"}, "credentials_file"),
        ({"bucket": "b-1", "create_bucket": True, "credentials_file": None}, "project"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(params: dict[str, Any], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        from_parameters(params, "/data")


def test_credentials_file_is_checked(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    wrong_type = tmp_path / "wrong.json"
    wrong_type.write_text(json.dumps({"type": "external_account"}))
    no_key = tmp_path / "nokey.json"
    no_key.write_text(json.dumps({"type": "service_account", "client_email": "x@y"}))
    for path, says in [(bad_json, "not JSON"), (wrong_type, "external_account"), (no_key, "private_key")]:
        with pytest.raises(ValueError, match=f"credentials_file.*{says}"):
            from_parameters({"bucket": "b-1", "credentials_file": str(path)}, "/data")


def test_settings_from_strings_as_the_environment_gives_them(tmp_path: Path) -> None:
    key = tmp_path / "sa.json"
    make_service_account_key(key, "http://127.0.0.1:9/token")
    d = from_parameters(
        {
            "bucket": "my.bucket-1",
            "prefix": "/registry/one/",
            "endpoint_url": "http://127.0.0.1:4443/",
            "credentials_file": str(key),
            "chunk_size_mib": "0.5",
            "redirect": "true",
            "redirect_expiry_seconds": "600",
            "create_bucket": "no",
        },
        "/data",
    )
    s = d.settings
    assert (s.bucket, s.prefix, s.endpoint_url) == ("my.bucket-1", "registry/one", "http://127.0.0.1:4443")
    assert (s.chunk_size, s.redirect, s.redirect_expiry_seconds, s.create_bucket) == (512 << 10, True, 600, False)
    defaults = from_parameters({"bucket": "b-1", "redirect": 1, "create_bucket": "off"}, "/data").settings
    assert (defaults.prefix, defaults.chunk_size, defaults.redirect_expiry_seconds) == ("", 16 * MiB, 1200)
    assert (defaults.redirect, defaults.create_bucket) == (True, False)


@pytest.mark.anyio
async def test_create_bucket(gcs: GcsBackend) -> None:
    bucket = f"made-{uuid.uuid4().hex[:10]}"
    d = create_driver("gcs", {"bucket": bucket, "endpoint_url": gcs.endpoint, "create_bucket": "true"}, "/data")
    try:
        await d.put("/hello", b"world")
        assert await d.get("/hello") == b"world"
        await d.delete("/")
    finally:
        await d.close()
    missing = create_driver("gcs", {"bucket": f"absent-{uuid.uuid4().hex[:10]}", "endpoint_url": gcs.endpoint}, "/")
    try:
        with pytest.raises(DriverError):
            await missing.put("/hello", b"world")  # no bucket, and not told to make one
    finally:
        await missing.close()


# -- appends --------------------------------------------------------------------------------------

CONTINUE_IN_ANOTHER_PROCESS = textwrap.dedent(
    """
    import asyncio, hashlib, json, sys
    from dockyard.storage.factory import create_driver

    async def main():
        params, path, chunk_file = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
        d = create_driver("gcs", params, "/nonexistent")
        h = hashlib.sha256()
        async for piece in d.read(path):  # what uploads do: re-hash what was received
            h.update(piece)
        w = await d.writer(path, append=True)
        size = w.size
        await w.write(open(chunk_file, "rb").read())
        await w.commit(durable=False)
        await d.close()
        print(json.dumps({"size": size, "sha256": h.hexdigest()}))

    asyncio.run(main())
    """
)


@pytest.mark.anyio
async def test_append_continued_by_another_driver_and_another_process(
    gcs: GcsBackend, prefix: str, driver: CheckedDriver, tmp_path: Path
) -> None:
    rng = random.Random(1)
    chunks = [rng.randbytes(n) for n in (0, 700_000, 3 * MiB + 17, 5, 2 * MiB)]
    path = "/uploads/u1/data"
    w = await driver.writer(path)
    await w.commit(durable=False)  # an upload's empty data file
    expected = b""
    for i, chunk in enumerate(chunks[1:], start=1):
        if i == 3:
            # Another process: reads back what was committed, then appends.
            chunk_file = tmp_path / "chunk"
            chunk_file.write_bytes(chunk)
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CONTINUE_IN_ANOTHER_PROCESS,
                    json.dumps(gcs.params(prefix)),
                    path,
                    str(chunk_file),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert out.returncode == 0, out.stderr
            seen = json.loads(out.stdout)
            assert seen == {"size": len(expected), "sha256": hashlib.sha256(expected).hexdigest()}
        else:
            # A new driver instance each time, as another request on another replica would.
            other = create_driver("gcs", gcs.params(prefix), "/nonexistent")
            try:
                w = await other.writer(path, append=True)
                assert w.size == len(expected)
                await w.write(chunk[: len(chunk) // 2])
                await w.write(chunk[len(chunk) // 2 :])
                assert w.size == len(expected) + len(chunk)
                await w.commit(durable=False)
            finally:
                await other.close()
        expected += chunk
        assert (await driver.stat(path)).size == len(expected)
        assert not [n for n in bucket_names(gcs, prefix) if "~" in n], "a component was left behind"
    assert await sha256_of(driver, path) == hashlib.sha256(expected).hexdigest()
    assert await driver.get(path) == expected
    target = "/blobs/sha256/ab/" + hashlib.sha256(expected).hexdigest()
    await driver.move(path, target)
    assert await driver.get(target) == expected
    with pytest.raises(PathNotFound):
        await driver.stat(path)
    assert bucket_names(gcs, prefix) == [prefix + target]


@pytest.mark.anyio
@pytest.mark.parametrize("lost", ["answer", "request"])
async def test_commit_after_a_failed_chunk_keeps_every_byte(
    gcs: GcsBackend, prefix: str, driver: CheckedDriver, monkeypatch: pytest.MonkeyPatch, lost: str
) -> None:
    """Uploads commit a writer even after a write failed, to keep what arrived: the writer
    must find out what the session holds (a lost answer: all of the chunk; a lost request:
    none of it) and finish from there."""
    real = GcsDriver._put_range
    calls = 0

    async def flaky(self: GcsDriver, session: str, pieces: Any, start: int, total: int | None) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2 and total is None:  # the second chunk; the session holds the first
            if lost == "answer":
                await real(self, session, pieces, start, total)
            raise httpx.ReadTimeout("injected")
        return await real(self, session, pieces, start, total)

    monkeypatch.setattr(GcsDriver, "_put_range", flaky)
    data = os.urandom(3 * MiB + 5)
    w = await driver.writer("/flaky")
    with pytest.raises(DriverError):
        await w.write(data)  # 1 MiB chunks: the first goes, the second fails
    assert w.size == len(data)
    await w.commit()
    assert await driver.get("/flaky") == data


@pytest.mark.anyio
async def test_append_cancel_leaves_no_component(gcs: GcsBackend, prefix: str, driver: CheckedDriver) -> None:
    await driver.put("/up/data", b"kept")
    w = await driver.writer("/up/data", append=True)
    await w.write(os.urandom(3 * MiB))  # past one chunk: a resumable session is open
    await w.cancel()
    assert await driver.get("/up/data") == b"kept"
    assert bucket_names(gcs, prefix) == [f"{prefix}/up/data"]


@pytest.mark.anyio
async def test_component_litter_is_invisible_and_goes_with_its_directory(
    gcs: GcsBackend, prefix: str, driver: CheckedDriver
) -> None:
    await driver.put("/uploads/u2/data", b"data")
    # What a crash between a component's upload and its compose leaves.
    litter = f"{prefix}/uploads/u2/data~part~0123456789abcdef"
    r = httpx.post(
        f"{gcs.endpoint}/upload/storage/v1/b/{BUCKET}/o",
        params={"uploadType": "media", "name": litter},
        content=b"orphan",
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert await driver.list("/uploads/u2") == ["/uploads/u2/data"]
    assert [i.path async for i in driver.walk("/")] == ["/uploads/u2/data"]
    await driver.delete("/uploads/u2")
    assert bucket_names(gcs, prefix) == []


@pytest.mark.anyio
async def test_64_mib_through_append_writers_in_bounded_memory(gcs: GcsBackend, prefix: str) -> None:
    params = {**gcs.params(prefix), "chunk_size_mib": 4}  # each 8 MiB append: two resumable chunks
    d = create_driver("gcs", params, "/nonexistent")
    piece, count = 8 * MiB, 8
    want = hashlib.sha256()
    try:
        w = await d.writer("/uploads/big/data")
        await w.commit(durable=False)
        tracemalloc.start()
        try:
            for i in range(count):
                chunk = random.Random(100 + i).randbytes(piece)
                want.update(chunk)
                w = await d.writer("/uploads/big/data", append=True)
                assert w.size == i * piece
                await w.write(chunk)
                await w.commit(durable=False)
                del chunk
            await d.move("/uploads/big/data", "/blobs/big")
            got = await sha256_of(d, "/blobs/big")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert got == want.hexdigest()
        assert (await d.stat("/blobs/big")).size == count * piece
        assert bucket_names(gcs, prefix) == [f"{prefix}/blobs/big"]
        print(f"peak traced memory for a {count * piece // MiB} MiB file: {peak / MiB:.1f} MiB")
        assert peak < 40 * MiB, f"peak {peak / MiB:.1f} MiB"
    finally:
        await d.delete("/")
        await d.close()


# -- signed URLs and credentials --------------------------------------------------------------------


def verify_v4_signature(url: str, public_key: rsa.RSAPublicKey, method: str = "GET") -> dict[str, str]:
    """Check a V4 signed URL as Google documents it (canonical request, string to sign,
    RSA-SHA256); returns its query parameters."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    signature = bytes.fromhex(query.pop("X-Goog-Signature"))
    canonical_query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(query.items()))
    canonical_request = "\n".join(
        [
            method,
            parts.path,
            canonical_query,
            f"host:{parts.netloc}\n",
            query["X-Goog-SignedHeaders"],
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = query["X-Goog-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        [query["X-Goog-Algorithm"], query["X-Goog-Date"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    public_key.verify(signature, to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())  # raises if wrong
    return query


@pytest.mark.anyio
async def test_redirect_urls_are_v4_signed_and_served(gcs: GcsBackend, prefix: str, driver: CheckedDriver) -> None:
    data = os.urandom(300_000)
    await driver.put("/blobs/sha256/ab/abcd", data)
    assert await driver.redirect_url("/blobs/sha256/ab/abcd") is None  # redirect is off

    params = {**gcs.params(prefix), "redirect": "true", "redirect_expiry_seconds": "900"}
    signing = create_driver("gcs", params, "/nonexistent")
    try:
        before = time.time()
        url = await signing.redirect_url("/blobs/sha256/ab/abcd")
        assert url is not None
    finally:
        await signing.close()
    info = json.loads(gcs.credentials_file.read_text())
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    query = verify_v4_signature(url, key.public_key())
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == gcs.endpoint
    assert parts.path == f"/{BUCKET}/{prefix}/blobs/sha256/ab/abcd"
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert query["X-Goog-SignedHeaders"] == "host"
    assert query["X-Goog-Expires"] == "900"
    signed_at = datetime.strptime(query["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    assert before - 2 <= signed_at <= time.time() + 1
    assert query["X-Goog-Credential"] == f"{info['client_email']}/{query['X-Goog-Date'][:8]}/auto/storage/goog4_request"
    # The emulator serves signed URLs (without checking them): the bytes come back.
    got = httpx.get(url, timeout=30)
    assert got.status_code == 200 and got.content == data


@pytest.mark.anyio
async def test_no_redirect_without_a_signing_key(gcs: GcsBackend, prefix: str) -> None:
    anonymous = {"bucket": BUCKET, "prefix": prefix, "endpoint_url": gcs.endpoint, "redirect": True}
    d = create_driver("gcs", anonymous, "/nonexistent")
    try:
        await d.put("/x", b"x")
        assert await d.redirect_url("/x") is None
        await d.delete("/x")
    finally:
        await d.close()


@pytest.mark.anyio
async def test_service_account_tokens(gcs: GcsBackend, prefix: str, tmp_path: Path) -> None:
    before = gcs.tokens_issued()
    d = create_driver("gcs", gcs.params(prefix), "/nonexistent")
    try:
        for i in range(5):
            await d.put(f"/t/{i}", b"x")
        await d.delete("/t")
    finally:
        await d.close()
    assert gcs.tokens_issued() == before + 1, "one token, signed with the key, reused while it lives"
    # A key the token endpoint does not know: its assertion is refused, and the error says so.
    stranger = tmp_path / "stranger.json"
    make_service_account_key(stranger, json.loads(gcs.credentials_file.read_text())["token_uri"])
    d = create_driver("gcs", {**gcs.params(prefix), "credentials_file": str(stranger)}, "/nonexistent")
    try:
        with pytest.raises(DriverError, match="access token"):
            await d.put("/t/0", b"x")
    finally:
        await d.close()


# -- the registry on GCS ------------------------------------------------------------------------------


def test_registry_push_and_pull_on_gcs(gcs: GcsBackend, prefix: str, tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", extra_env=gcs.server_env(prefix))
    try:
        with server.client() as http:
            # Monolithic uploads (config and layers) and a manifest.
            body, digest = push_image(http, "gcs/app", "v1", media_type=OCI_MANIFEST, layers=2)
            # A chunked upload of a layer larger than the driver's chunk size.
            layer = os.urandom(3 * MiB + 4321)
            r = http.post("/v2/gcs/app/blobs/uploads/")
            assert r.status_code == 202, r.text
            location, offset = r.headers["location"], 0
            for pos in range(0, len(layer), MiB + 7):
                chunk = layer[pos : pos + MiB + 7]
                r = http.patch(
                    location,
                    content=chunk,
                    headers={
                        "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                        "Content-Type": "application/octet-stream",
                    },
                )
                assert r.status_code == 202, r.text
                offset += len(chunk)
                location = r.headers["location"]
            r = http.put(location, params={"digest": sha256(layer)})
            assert r.status_code == 201, r.text

            r = http.get("/v2/gcs/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
            assert r.status_code == 200 and r.content == body and sha256(r.content) == digest
            doc = json.loads(body)
            for d in [doc["config"], *doc["layers"]]:
                blob = http.get(f"/v2/gcs/app/blobs/{d['digest']}")
                assert blob.status_code == 200 and sha256(blob.content) == d["digest"]
            blob = http.get(f"/v2/gcs/app/blobs/{sha256(layer)}")
            assert blob.status_code == 200 and blob.content == layer
            ranged = http.get(f"/v2/gcs/app/blobs/{sha256(layer)}", headers={"Range": "bytes=1000-2000999"})
            assert ranged.status_code == 206 and ranged.content == layer[1000:2001000]
    finally:
        server.stop()
    names = bucket_names(gcs, prefix)
    assert f"{prefix}/blobs/sha256/{sha256(layer)[7:9]}/{sha256(layer)[7:]}" in names
    assert not [n for n in names if "~" in n or "/uploads/" in n], names
