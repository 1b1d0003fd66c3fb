"""Blob pulls and every upload flow, against the live server over HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer
from tests.helpers import errors_of, push_blob, sha256


def test_base_endpoint_announces_v2(http: httpx.Client) -> None:
    r = http.get("/v2/")
    assert r.status_code == 200
    assert r.json() == {}
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"


def test_unknown_endpoint_and_method_give_json_errors(http: httpx.Client, repo: str) -> None:
    r = http.get(f"/v2/{repo}/nothing-here")
    assert r.status_code == 404
    assert errors_of(r) == ["NOT_FOUND"]
    r = http.post(f"/v2/{repo}/tags/list")
    assert r.status_code == 405
    assert errors_of(r) == ["UNSUPPORTED"]


def test_monolithic_post_with_digest(http: httpx.Client, repo: str) -> None:
    data = os.urandom(5000)
    digest = push_blob(http, repo, data)
    r = http.head(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.headers["content-length"] == "5000"
    assert r.headers["docker-content-digest"] == digest
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.content == b""
    r = http.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200 and r.content == data


def test_post_then_put(http: httpx.Client, repo: str) -> None:
    data = os.urandom(70000)
    r = http.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202
    assert r.headers["range"] == "0-0"
    assert r.headers["content-length"] == "0"
    uuid = r.headers["docker-upload-uuid"]
    assert uuid in r.headers["location"]
    r = http.put(r.headers["location"], params={"digest": sha256(data)}, content=data)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v2/{repo}/blobs/{sha256(data)}"
    assert http.get(r.headers["location"]).content == data


def test_chunked_upload_with_status_and_out_of_order_chunks(http: httpx.Client, repo: str) -> None:
    data = os.urandom(300_000)
    loc = http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    r = http.patch(loc, content=data[:100_000], headers={"Content-Range": "0-99999"})
    assert r.status_code == 202 and r.headers["range"] == "0-99999"
    loc = r.headers["location"]
    # A gap, and a retry of the chunk already taken: both 416 with the current range.
    r = http.patch(loc, content=data[150_000:200_000], headers={"Content-Range": "150000-199999"})
    assert r.status_code == 416 and errors_of(r) == ["RANGE_INVALID"]
    assert r.headers["range"] == "0-99999"
    r = http.patch(loc, content=data[:100_000], headers={"Content-Range": "0-99999"})
    assert r.status_code == 416
    r = http.get(loc)
    assert r.status_code == 204 and r.headers["range"] == "0-99999"
    assert r.headers["docker-upload-uuid"] in loc
    r = http.patch(loc, content=data[100_000:200_000], headers={"Content-Range": "100000-199999"})
    assert r.status_code == 202 and r.headers["range"] == "0-199999"
    # The last chunk comes with the closing PUT.
    r = http.put(
        r.headers["location"],
        params={"digest": sha256(data)},
        content=data[200_000:],
        headers={"Content-Range": "200000-299999"},
    )
    assert r.status_code == 201, r.text
    assert http.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data


def test_streamed_patch_without_content_range_like_docker(http: httpx.Client, repo: str) -> None:
    data = os.urandom(3 << 20)

    def body() -> Iterator[bytes]:  # chunked transfer encoding, no Content-Length
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    loc = http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    r = http.patch(loc, content=body())
    assert r.status_code == 202 and r.headers["range"] == f"0-{len(data) - 1}"
    r = http.put(r.headers["location"], params={"digest": sha256(data)})
    assert r.status_code == 201, r.text
    assert http.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data


def test_chunk_length_mismatch_is_size_invalid(http: httpx.Client, repo: str) -> None:
    loc = http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    r = http.patch(loc, content=b"x" * 10, headers={"Content-Range": "0-19"})
    assert r.status_code == 400 and errors_of(r) == ["SIZE_INVALID"]
    r = http.patch(loc, content=b"x" * 10, headers={"Content-Range": "garbage"})
    assert r.status_code == 416 and errors_of(r) == ["RANGE_INVALID"]


def test_digest_mismatch_cancels_the_session(http: httpx.Client, repo: str) -> None:
    data = os.urandom(1000)
    loc = http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    wrong = sha256(b"something else")
    r = http.put(loc, params={"digest": wrong}, content=data)
    assert r.status_code == 400 and errors_of(r) == ["DIGEST_INVALID"]
    assert http.head(f"/v2/{repo}/blobs/{wrong}").status_code == 404
    assert http.head(f"/v2/{repo}/blobs/{sha256(data)}").status_code == 404
    assert http.get(loc).status_code == 404


@pytest.mark.parametrize(
    "digest",
    ["", "sha256:xyz", "sha256:" + "A" * 64, "md5:" + "a" * 32, "sha256" + "a" * 64, "sha256:" + "a" * 63],
)
def test_invalid_digests_on_put(http: httpx.Client, repo: str, digest: str) -> None:
    loc = http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    r = http.put(loc, params={"digest": digest}, content=b"abc")
    assert r.status_code == 400 and errors_of(r) == ["DIGEST_INVALID"]


def test_put_without_digest_is_digest_invalid(http: httpx.Client, repo: str) -> None:
    loc = http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    r = http.put(loc, content=b"abc")
    assert r.status_code == 400 and errors_of(r) == ["DIGEST_INVALID"]


def test_cancel_upload(http: httpx.Client, repo: str) -> None:
    loc = http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    http.patch(loc, content=b"abc")
    r = http.delete(loc)
    assert r.status_code == 204
    r = http.get(loc)
    assert r.status_code == 404 and errors_of(r) == ["BLOB_UPLOAD_UNKNOWN"]
    r = http.patch(loc, content=b"abc")
    assert r.status_code == 404 and errors_of(r) == ["BLOB_UPLOAD_UNKNOWN"]


def test_unknown_and_foreign_upload_sessions(http: httpx.Client, repo: str) -> None:
    r = http.get(f"/v2/{repo}/blobs/uploads/0123456789abcdef")
    assert r.status_code == 404 and errors_of(r) == ["BLOB_UPLOAD_UNKNOWN"]
    r = http.patch(f"/v2/{repo}/blobs/uploads/..%2f..%2fetc", content=b"x")
    assert r.status_code == 404
    upload_id = http.post(f"/v2/{repo}/blobs/uploads/").headers["docker-upload-uuid"]
    r = http.patch(f"/v2/{repo}-other/blobs/uploads/{upload_id}", content=b"x")
    assert r.status_code == 400 and errors_of(r) == ["BLOB_UPLOAD_INVALID"]


def test_blob_is_served_only_by_repositories_that_link_it(http: httpx.Client, repo: str) -> None:
    digest = push_blob(http, repo, os.urandom(100))
    r = http.get(f"/v2/{repo}-elsewhere/blobs/{digest}")
    assert r.status_code == 404 and errors_of(r) == ["BLOB_UNKNOWN"]
    r = http.head(f"/v2/{repo}-elsewhere/blobs/{digest}")
    assert r.status_code == 404 and r.content == b""


def test_ranged_blob_reads(http: httpx.Client, repo: str) -> None:
    data = os.urandom(1 << 20)
    digest = push_blob(http, repo, data)
    url = f"/v2/{repo}/blobs/{digest}"
    r = http.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"
    r = http.get(url, headers={"Range": "bytes=1000000-"})
    assert r.status_code == 206 and r.content == data[1_000_000:]
    r = http.get(url, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]
    r = http.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}"
    r = http.get(url, headers={"Range": "bytes=0-1,5-6"})  # several ranges: the whole blob
    assert r.status_code == 200 and r.content == data


def test_large_blob_streams_back_intact(http: httpx.Client, repo: str) -> None:
    data = os.urandom(20 << 20)
    digest = push_blob(http, repo, data)
    with http.stream("GET", f"/v2/{repo}/blobs/{digest}") as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(len(data))
        assert b"".join(r.iter_bytes()) == data


def test_etag_gives_not_modified(http: httpx.Client, repo: str) -> None:
    digest = push_blob(http, repo, b"etag me")
    r = http.get(f"/v2/{repo}/blobs/{digest}", headers={"If-None-Match": f'"{digest}"'})
    assert r.status_code == 304


def test_delete_blob(http: httpx.Client, repo: str) -> None:
    digest = push_blob(http, repo, os.urandom(64))
    r = http.delete(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 202
    r = http.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 404 and errors_of(r) == ["BLOB_UNKNOWN"]
    r = http.delete(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 404 and errors_of(r) == ["BLOB_UNKNOWN"]
    r = http.delete(f"/v2/{repo}-never/blobs/{digest}")
    assert r.status_code == 404 and errors_of(r) == ["NAME_UNKNOWN"]
    r = http.delete(f"/v2/{repo}/blobs/sha256:nothex")
    assert r.status_code == 400 and errors_of(r) == ["DIGEST_INVALID"]


def test_cross_repository_mount(http: httpx.Client, repo: str) -> None:
    data = os.urandom(4096)
    digest = push_blob(http, repo, data)
    target = f"{repo}-mounted"
    r = http.post(f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": repo})
    assert r.status_code == 201
    assert r.headers["location"] == f"/v2/{target}/blobs/{digest}"
    assert r.headers["docker-content-digest"] == digest
    assert http.get(f"/v2/{target}/blobs/{digest}").content == data


@pytest.mark.parametrize(
    "params",
    [
        {"mount": "sha256:" + "0" * 64, "from": "somewhere/else"},  # unknown blob
        {"mount": "sha256:bad", "from": "x"},  # bad digest
        {"mount": "DIGEST", "from": "Not/A/Valid/Name"},  # bad source name
        {"mount": "DIGEST", "from": "other/repo-without-it"},  # source does not have it
    ],
)
def test_failed_mount_falls_back_to_an_upload(http: httpx.Client, repo: str, params: dict[str, str]) -> None:
    digest = push_blob(http, repo, os.urandom(10))
    params = {k: v.replace("DIGEST", digest) for k, v in params.items()}
    r = http.post(f"/v2/{repo}-target/blobs/uploads/", params=params)
    assert r.status_code == 202
    assert "docker-upload-uuid" in r.headers
    assert http.head(f"/v2/{repo}-target/blobs/{digest}").status_code == 404


def test_mount_without_from_finds_any_blob(http: httpx.Client, repo: str) -> None:
    digest = push_blob(http, repo, os.urandom(10))
    r = http.post(f"/v2/{repo}-anywhere/blobs/uploads/", params={"mount": digest})
    assert r.status_code == 201


def test_same_blob_in_two_repositories_is_stored_once(server: RunningServer, http: httpx.Client, repo: str) -> None:
    data = os.urandom(2048)
    digest = push_blob(http, repo, data)
    push_blob(http, f"{repo}-copy", data)
    hexd = digest.split(":")[1]
    stored = list((server.data_dir / "registry" / "blobs" / "sha256").rglob(hexd))
    assert len(stored) == 1
    assert stored[0].read_bytes() == data
