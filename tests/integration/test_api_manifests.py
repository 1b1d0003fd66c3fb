"""Manifests: every type, content negotiation, validation and deletion."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    EMPTY_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    errors_of,
    image_manifest,
    push_blob,
    push_image,
    put_manifest,
    sha256,
)


@pytest.mark.parametrize("media_type", [DOCKER_MANIFEST, OCI_MANIFEST])
def test_image_manifest_round_trip_is_byte_exact(http: httpx.Client, repo: str, media_type: str) -> None:
    body, digest = push_image(http, repo, "v1", media_type=media_type, layers=3)
    for ref in ("v1", digest):
        r = http.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": media_type})
        assert r.status_code == 200
        assert r.content == body
        assert r.headers["content-type"] == media_type
        assert r.headers["docker-content-digest"] == digest
        r = http.head(f"/v2/{repo}/manifests/{ref}", headers={"Accept": media_type})
        assert r.status_code == 200 and r.content == b""
        assert r.headers["content-length"] == str(len(body))
        assert r.headers["docker-content-digest"] == digest
        assert r.headers["content-type"] == media_type


def test_whitespace_makes_a_different_manifest(http: httpx.Client, repo: str) -> None:
    body = image_manifest(http, repo)
    compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
    r1 = put_manifest(http, repo, "a", body, DOCKER_MANIFEST)
    r2 = put_manifest(http, repo, "b", compact, DOCKER_MANIFEST)
    assert r1.headers["docker-content-digest"] != r2.headers["docker-content-digest"]
    assert http.get(f"/v2/{repo}/manifests/b").content == compact


@pytest.mark.parametrize(("index_type", "child_type"), [(OCI_INDEX, OCI_MANIFEST), (DOCKER_LIST, DOCKER_MANIFEST)])
def test_index_and_negotiation(http: httpx.Client, repo: str, index_type: str, child_type: str) -> None:
    children = {}
    for arch in ("amd64", "arm64"):
        body, digest = push_image(http, repo, f"only-{arch}", media_type=child_type, arch=arch)
        children[arch] = (body, digest)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": index_type,
            "manifests": [
                descriptor(child_type, body, platform={"architecture": arch, "os": "linux"})
                for arch, (body, _) in children.items()
            ],
        }
    ).encode()
    r = put_manifest(http, repo, "multi", index, index_type)
    assert r.status_code == 201, r.text
    r = http.get(f"/v2/{repo}/manifests/multi", headers={"Accept": f"{index_type}, {child_type}"})
    assert r.content == index and r.headers["content-type"] == index_type
    # No Accept at all, or a wildcard: served as stored.
    assert http.get(f"/v2/{repo}/manifests/multi").content == index
    assert http.get(f"/v2/{repo}/manifests/multi", headers={"Accept": "*/*"}).content == index
    # A client that does not take lists gets the linux/amd64 image by tag (reference behaviour).
    r = http.get(f"/v2/{repo}/manifests/multi", headers={"Accept": child_type})
    assert r.status_code == 200 and r.content == children["amd64"][0]
    # By digest there is no such substitution.
    r = http.get(f"/v2/{repo}/manifests/{sha256(index)}", headers={"Accept": child_type})
    assert r.status_code == 404 and errors_of(r) == ["MANIFEST_UNKNOWN"]


def test_oci_manifest_refused_to_a_docker_only_client(http: httpx.Client, repo: str) -> None:
    push_image(http, repo, "oci", media_type=OCI_MANIFEST)
    r = http.get(f"/v2/{repo}/manifests/oci", headers={"Accept": DOCKER_MANIFEST})
    assert r.status_code == 404 and errors_of(r) == ["MANIFEST_UNKNOWN"]
    assert "Accept" in r.json()["errors"][0]["message"]


def test_artifact_with_artifact_type(http: httpx.Client, repo: str) -> None:
    empty = push_blob(http, repo, b"{}")
    layer = push_blob(http, repo, b"signature bytes")
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sig",
            "config": {"mediaType": EMPTY_CONFIG, "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": 15}],
        }
    ).encode()
    r = put_manifest(http, repo, "sig", body, OCI_MANIFEST)
    assert r.status_code == 201, r.text


def test_empty_config_needs_artifact_type(http: httpx.Client, repo: str) -> None:
    empty = push_blob(http, repo, b"{}")
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": EMPTY_CONFIG, "digest": empty, "size": 2},
            "layers": [],
        }
    ).encode()
    r = put_manifest(http, repo, "x", body, OCI_MANIFEST)
    assert r.status_code == 400 and errors_of(r) == ["MANIFEST_INVALID"]


def test_missing_blobs_are_each_reported(http: httpx.Client, repo: str) -> None:
    missing1, missing2 = sha256(b"never pushed 1"), sha256(b"never pushed 2")
    config = push_blob(http, repo, b'{"os":"linux"}')
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": config,
                "size": 14,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": missing1,
                    "size": 1,
                },
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": missing2,
                    "size": 1,
                },
            ],
        }
    ).encode()
    r = put_manifest(http, repo, "broken", body, DOCKER_MANIFEST)
    assert r.status_code == 400
    assert errors_of(r) == ["MANIFEST_BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"]
    assert {e["detail"] for e in r.json()["errors"]} == {missing1, missing2}
    # Nothing half-written: neither the tag nor the manifest exists.
    assert http.get(f"/v2/{repo}/manifests/broken").status_code == 404
    assert http.get(f"/v2/{repo}/manifests/{sha256(body)}").status_code == 404


def test_index_with_unknown_child(http: httpx.Client, repo: str) -> None:
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(b"nope"), "size": 4}],
        }
    ).encode()
    r = put_manifest(http, repo, "idx", index, OCI_INDEX)
    assert r.status_code == 400 and errors_of(r) == ["MANIFEST_BLOB_UNKNOWN"]


def test_foreign_layers_need_not_exist(http: httpx.Client, repo: str) -> None:
    body = json.loads(image_manifest(http, repo))
    body["layers"].append(
        {
            "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "digest": sha256(b"windows base"),
            "size": 12,
            "urls": ["https://example.invalid/layer"],
        }
    )
    r = put_manifest(http, repo, "foreign", json.dumps(body).encode(), DOCKER_MANIFEST)
    assert r.status_code == 201, r.text
    body["layers"][-1]["urls"] = ["file:///etc/passwd"]
    r = put_manifest(http, repo, "foreign2", json.dumps(body).encode(), DOCKER_MANIFEST)
    assert r.status_code == 400 and errors_of(r) == ["MANIFEST_INVALID"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", DOCKER_MANIFEST),
        (b"[]", DOCKER_MANIFEST),
        (b'{"schemaVersion": 3, "mediaType": "' + OCI_MANIFEST.encode() + b'"}', OCI_MANIFEST),
        (
            b'{"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}',
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        ),
        (b'{"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}', "application/json"),
        (b'{"schemaVersion": 2, "mediaType": "' + OCI_INDEX.encode() + b'", "manifests": []}', OCI_MANIFEST),
        (b'{"schemaVersion": 2, "manifests": []}', OCI_MANIFEST),
        (b'{"schemaVersion": 2, "config": {}, "layers": []}', OCI_INDEX),
        (
            b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:1", "size": 1}, "layers": []}',
            OCI_MANIFEST,
        ),
        (
            b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:'
            + b"a" * 64
            + b'", "size": -1}, "layers": []}',
            OCI_MANIFEST,
        ),
        (b'{"schemaVersion": 2, "layers": []}', "application/vnd.example.unknown+json"),
        (b'{"schemaVersion": 2, "config": {}, "layers": []}', DOCKER_MANIFEST),  # docker type needs mediaType
    ],
)
def test_invalid_manifests(http: httpx.Client, repo: str, body: bytes, content_type: str) -> None:
    r = put_manifest(http, repo, "bad", body, content_type)
    assert r.status_code == 400, r.text
    assert errors_of(r) == ["MANIFEST_INVALID"]
    assert r.json()["errors"][0]["message"]


def test_schema1_refusal_names_the_reason(http: httpx.Client, repo: str) -> None:
    r = put_manifest(
        http,
        repo,
        "old",
        b'{"schemaVersion": 1}',
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    )
    assert "schema 1" in r.json()["errors"][0]["message"]


def test_oversized_manifest_is_413(http: httpx.Client, repo: str) -> None:
    big = b'{"schemaVersion": 2, "padding": "' + b"x" * (4 << 20) + b'"}'
    r = put_manifest(http, repo, "big", big, OCI_MANIFEST)
    assert r.status_code == 413 and errors_of(r) == ["MANIFEST_INVALID"]
    assert http.get("/v2/").status_code == 200


def test_put_by_digest_must_match(http: httpx.Client, repo: str) -> None:
    body = image_manifest(http, repo)
    r = put_manifest(http, repo, sha256(b"other"), body, DOCKER_MANIFEST)
    assert r.status_code == 400 and errors_of(r) == ["DIGEST_INVALID"]
    r = put_manifest(http, repo, sha256(body), body, DOCKER_MANIFEST)
    assert r.status_code == 201
    assert r.headers["location"] == f"/v2/{repo}/manifests/{sha256(body)}"


def test_invalid_references(http: httpx.Client, repo: str) -> None:
    body = image_manifest(http, repo)
    r = put_manifest(http, repo, "-bad-tag", body, DOCKER_MANIFEST)
    assert r.status_code == 400 and errors_of(r) == ["TAG_INVALID"]
    r = put_manifest(http, repo, "t" * 129, body, DOCKER_MANIFEST)
    assert r.status_code == 400 and errors_of(r) == ["TAG_INVALID"]
    r = http.get(f"/v2/{repo}/manifests/sha256:1234")
    assert r.status_code == 400 and errors_of(r) == ["DIGEST_INVALID"]


def test_unknown_repository_and_manifest(http: httpx.Client, repo: str) -> None:
    r = http.get(f"/v2/{repo}/manifests/latest")
    assert r.status_code == 404 and errors_of(r) == ["NAME_UNKNOWN"]
    push_image(http, repo, "exists")
    r = http.get(f"/v2/{repo}/manifests/missing")
    assert r.status_code == 404 and errors_of(r) == ["MANIFEST_UNKNOWN"]
    r = http.head(f"/v2/{repo}/manifests/missing")
    assert r.status_code == 404 and r.content == b""


def test_tag_moves_to_the_newest_push(http: httpx.Client, repo: str) -> None:
    _, first = push_image(http, repo, "latest")
    _, second = push_image(http, repo, "latest")
    assert first != second
    assert http.head(f"/v2/{repo}/manifests/latest").headers["docker-content-digest"] == second
    assert http.head(f"/v2/{repo}/manifests/{first}").status_code == 200


def test_delete_by_tag_keeps_the_manifest(http: httpx.Client, repo: str) -> None:
    _, digest = push_image(http, repo, "one")
    r = http.delete(f"/v2/{repo}/manifests/one")
    assert r.status_code == 202
    assert http.get(f"/v2/{repo}/manifests/one").status_code == 404
    assert http.get(f"/v2/{repo}/manifests/{digest}").status_code == 200
    r = http.delete(f"/v2/{repo}/manifests/one")
    assert r.status_code == 404 and errors_of(r) == ["MANIFEST_UNKNOWN"]


def test_delete_by_digest_removes_its_tags(http: httpx.Client, repo: str) -> None:
    body, digest = push_image(http, repo, "a")
    put_manifest(http, repo, "b", body, DOCKER_MANIFEST)
    r = http.delete(f"/v2/{repo}/manifests/{digest}")
    assert r.status_code == 202
    for ref in ("a", "b", digest):
        assert http.get(f"/v2/{repo}/manifests/{ref}").status_code == 404
    assert http.get(f"/v2/{repo}/tags/list").json()["tags"] == []
    r = http.delete(f"/v2/{repo}-nope/manifests/{digest}")
    assert r.status_code == 404 and errors_of(r) == ["NAME_UNKNOWN"]
