"""Round trips with skopeo of images built with umoci: digests must survive byte for byte."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .clients import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    Clients,
    HasLog,
    Layout,
    build_umoci_image,
    diff_id,
    layer_files,
    sha256,
)

pytestmark = pytest.mark.clients


def umoci_image(tmp_path: Path, tag: str = "v1") -> tuple[Layout, dict[str, bytes]]:
    """A three-layer umoci image, one layer ~1.5 MB of incompressible data; unique per call."""
    nonce = os.urandom(8).hex().encode()
    layers = [
        {"etc/dockyard/hello.txt": b"hello from umoci " + nonce + b"\n"},
        {"usr/share/dockyard/random.bin": os.urandom(1_500_000)},
        {"srv/data/nonce": nonce, "srv/data/empty": b""},
    ]
    build_umoci_image(tmp_path / "src", tag, layers, tmp_path)
    expected = {name: data for files in layers for name, data in files.items()}
    return Layout(tmp_path / "src"), expected


def test_skopeo_push_and_pull_back_preserve_every_digest(clients: Clients, repo: str, tmp_path: Path) -> None:
    src, expected_files = umoci_image(tmp_path)
    digest, manifest = src.manifest("v1")
    raw = src.blob(digest)
    assert manifest.get("mediaType", OCI_MANIFEST) == OCI_MANIFEST and len(manifest["layers"]) == 3
    layer_digests = [layer["digest"] for layer in manifest["layers"]]
    config_digest = manifest["config"]["digest"]

    pushed = clients.push(f"oci:{src.root}:v1", repo, "v1", "--preserve-digests")
    assert pushed == digest

    # The registry serves the manifest byte for byte, by tag and by digest.
    assert clients.inspect_raw(repo, "v1") == raw
    assert clients.inspect_raw(repo, digest) == raw
    assert clients.inspect_config(repo, "v1") == src.blob(config_digest)
    info = clients.inspect(repo, "v1")
    assert info["Digest"] == digest
    assert info["Layers"] == layer_digests
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert info["Labels"] == {"tag": "v1"}
    assert "v1" in info["RepoTags"]

    # Pull back into a fresh layout: same manifest digest, identical blobs, same files.
    clients.pull(repo, "v1", f"oci:{tmp_path / 'back'}:v1", "--preserve-digests")
    back = Layout(tmp_path / "back")
    assert back.ref("v1")["digest"] == digest
    assert back.blob(digest) == raw
    for d in [config_digest, *layer_digests]:
        assert back.blob(d) == src.blob(d), d
    assert back.files(digest) == expected_files


def test_skopeo_tags_repush_and_pull_by_digest(clients: Clients, repo: str, tmp_path: Path) -> None:
    src, expected_files = umoci_image(tmp_path)
    digest, manifest = src.manifest("v1")

    for tag in ("v1", "v2", "latest"):
        assert clients.push(f"oci:{src.root}:v1", repo, tag, "--preserve-digests") == digest
    assert sorted(clients.list_tags(repo)) == ["latest", "v1", "v2"]

    # A second push of the same image finds every blob already there (HEAD on the blobs).
    dest = f"docker://{clients.ref(repo, 'v3')}"
    res = clients.skopeo("copy", "--dest-tls-verify=false", "--preserve-digests", f"oci:{src.root}:v1", dest)
    for layer in manifest["layers"]:
        assert f"Skipping blob {layer['digest']} (already present)" in res.stderr, res.stderr
    assert "/blobs/uploads/" not in res.stderr, "re-push uploaded a blob the registry already had"
    assert sorted(clients.list_tags(repo)) == ["latest", "v1", "v2", "v3"]

    clients.pull(repo, digest, f"oci:{tmp_path / 'bydigest'}:x", "--preserve-digests")
    back = Layout(tmp_path / "bydigest")
    assert back.ref("x")["digest"] == digest
    assert back.files(digest) == expected_files


def test_skopeo_copy_between_repositories(
    clients: Clients, server: HasLog, repo: str, other_repo: str, tmp_path: Path
) -> None:
    src, _ = umoci_image(tmp_path)
    digest, manifest = src.manifest("v1")
    clients.push(f"oci:{src.root}:v1", repo, "v1", "--preserve-digests")

    res = clients.skopeo(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--preserve-digests",
        f"docker://{clients.ref(repo, 'v1')}",
        f"docker://{clients.ref(other_repo, 'copied')}",
    )
    # skopeo's blob info cache knows the layers are in `repo` (it just pushed them there), so it
    # asks for cross-repository mounts (POST .../uploads/?mount=...&from=repo): all must succeed.
    assert res.stderr.count("... mount OK") == len(manifest["layers"]), res.stderr
    assert clients.inspect_raw(other_repo, "copied") == src.blob(digest)
    with server.client() as http:
        for d in [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]:
            r = http.head(f"/v2/{other_repo}/blobs/{d}")
            assert r.status_code == 200, (d, r.status_code, r.headers)
            assert r.headers.get("Docker-Content-Digest") == d


def test_skopeo_converts_to_docker_schema2(clients: Clients, server: HasLog, repo: str, tmp_path: Path) -> None:
    src, expected_files = umoci_image(tmp_path)
    oci_digest, oci_manifest = src.manifest("v1")

    pushed = clients.push(f"oci:{src.root}:v1", repo, "v2s2", "--format", "v2s2")
    raw = clients.inspect_raw(repo, "v2s2")
    assert sha256(raw) == pushed != oci_digest
    m = json.loads(raw)
    assert m["mediaType"] == DOCKER_MANIFEST
    assert m["config"]["mediaType"] == DOCKER_CONFIG
    assert m["config"]["digest"] == oci_manifest["config"]["digest"]
    assert [layer["mediaType"] for layer in m["layers"]] == [DOCKER_LAYER_GZIP] * 3
    assert [layer["digest"] for layer in m["layers"]] == [layer["digest"] for layer in oci_manifest["layers"]]

    with server.client() as http:
        r = http.get(f"/v2/{repo}/manifests/v2s2", headers={"Accept": DOCKER_MANIFEST})
        assert r.status_code == 200
        assert r.headers["Content-Type"] == DOCKER_MANIFEST
        assert r.headers["Docker-Content-Digest"] == pushed
        assert r.content == raw

    # dir: keeps the manifest as served, so it comes back identical.
    clients.pull(repo, "v2s2", f"dir:{tmp_path / 'dir'}", "--preserve-digests")
    assert (tmp_path / "dir" / "manifest.json").read_bytes() == raw
    config = json.loads((tmp_path / "dir" / m["config"]["digest"].removeprefix("sha256:")).read_bytes())
    files: dict[str, bytes] = {}
    for layer, want_diff_id in zip(m["layers"], config["rootfs"]["diff_ids"], strict=True):
        blob = (tmp_path / "dir" / layer["digest"].removeprefix("sha256:")).read_bytes()
        assert diff_id(blob) == want_diff_id
        files.update(layer_files(blob))
    assert files == expected_files


def test_skopeo_delete_then_push_again(clients: Clients, repo: str, tmp_path: Path) -> None:
    src, _ = umoci_image(tmp_path)
    digest, _ = src.manifest("v1")
    for tag in ("v1", "v2"):
        clients.push(f"oci:{src.root}:v1", repo, tag, "--preserve-digests")

    # skopeo resolves the tag, then DELETE /v2/<repo>/manifests/<digest>.
    clients.skopeo("delete", "--tls-verify=false", f"docker://{clients.ref(repo, 'v1')}")
    for ref in (digest, "v1", "v2"):
        gone = f"docker://{clients.ref(repo, ref)}"
        res = clients.skopeo("inspect", "--raw", "--tls-verify=false", gone, check=False)
        assert res.returncode != 0, f"{ref} still resolves after the manifest was deleted: {res.out}"
        assert "manifest unknown" in res.stderr, res.stderr

    # The same image can be pushed again (its blobs may or may not have been kept).
    assert clients.push(f"oci:{src.root}:v1", repo, "again", "--preserve-digests") == digest
    assert clients.inspect_raw(repo, "again") == src.blob(digest)
    assert clients.list_tags(repo) == ["again"]


def test_skopeo_concurrent_pushes_of_the_same_blobs(
    clients: Clients, repo: str, other_repo: str, tmp_path: Path
) -> None:
    """Four skopeo processes push the same image at once, to two tags of one repository and to
    two more repositories: the same blobs are uploaded (or mounted) concurrently."""
    src, expected_files = umoci_image(tmp_path)
    digest, _ = src.manifest("v1")
    targets = [(repo, "t1"), (repo, "t2"), (other_repo, "t1"), (repo + "-third", "t1")]
    with ThreadPoolExecutor(len(targets)) as pool:
        futures = [pool.submit(clients.push, f"oci:{src.root}:v1", r, tag, "--preserve-digests") for r, tag in targets]
        assert [f.result(timeout=300) for f in futures] == [digest] * len(targets)

    for i, (r, tag) in enumerate(targets):
        assert clients.inspect_raw(r, tag) == src.blob(digest), (r, tag)
        clients.pull(r, tag, f"oci:{tmp_path / f'back{i}'}:x", "--preserve-digests")
        assert Layout(tmp_path / f"back{i}").files(digest) == expected_files
    assert sorted(clients.list_tags(repo)) == ["t1", "t2"]
