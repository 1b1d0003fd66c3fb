"""podman (rootful, vfs storage, private --root/--runroot): pull what skopeo pushed, tag, push to
another repository, pull it back; image ids, digests and files must survive."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .clients import (
    DOCKER_MANIFEST,
    OCI_LAYER_ZSTD,
    Clients,
    Layout,
    LayoutWriter,
    Platform,
    build_multiarch,
    build_umoci_image,
    diff_id,
    sha256,
)

pytestmark = pytest.mark.clients


def push_umoci_image(clients: Clients, repo: str, tmp_path: Path) -> tuple[Layout, str, dict[str, bytes]]:
    nonce = os.urandom(8).hex().encode()
    layers = [
        {"etc/podman-test/hello": b"hello " + nonce},
        {"var/lib/podman-test/blob.bin": os.urandom(300_000), "var/lib/podman-test/nonce": nonce},
    ]
    build_umoci_image(tmp_path / "src", "v1", layers, tmp_path)
    src = Layout(tmp_path / "src")
    digest = clients.push(f"oci:{src.root}:v1", repo, "v1", "--preserve-digests")
    assert digest == src.ref("v1")["digest"]
    return src, digest, {name: data for files in layers for name, data in files.items()}


def test_podman_pull_tag_push_pull_back(clients: Clients, repo: str, other_repo: str, tmp_path: Path) -> None:
    src, digest, files = push_umoci_image(clients, repo, tmp_path)
    _, manifest = src.manifest("v1")
    config = json.loads(src.blob(manifest["config"]["digest"]))
    image_id = manifest["config"]["digest"].removeprefix("sha256:")
    podman = clients.podman
    ref1 = clients.ref(repo, "v1")
    ref2 = clients.ref(other_repo, "v2")

    podman.pull(ref1)
    info = podman.inspect(ref1)
    assert info["Id"] == image_id
    assert info["Digest"] == digest
    assert f"{clients.host}/{repo}@{digest}" in info["RepoDigests"]
    assert info["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
    assert info["Architecture"] == "amd64"

    # The files are really there in podman's storage.
    mountpoint = Path(podman("image", "mount", ref1).out.strip())
    try:
        for name, data in files.items():
            assert (mountpoint / name).read_bytes() == data, name
    finally:
        podman("image", "unmount", ref1)

    podman("tag", ref1, ref2)
    pushed = podman.push(ref2)
    raw = clients.inspect_raw(other_repo, "v2")
    assert sha256(raw) == pushed
    pushed_manifest = json.loads(raw)
    assert pushed_manifest["config"]["digest"] == manifest["config"]["digest"]
    assert clients.inspect_config(other_repo, "v2") == src.blob(manifest["config"]["digest"])

    # The layers podman pushed decompress to the same diff ids (podman may reuse or recompress).
    clients.pull(other_repo, "v2", f"dir:{tmp_path / 'pushed'}", "--preserve-digests")
    pushed_layers = [
        (tmp_path / "pushed" / layer["digest"].removeprefix("sha256:")).read_bytes()
        for layer in pushed_manifest["layers"]
    ]
    assert [diff_id(b) for b in pushed_layers] == config["rootfs"]["diff_ids"]

    podman("rmi", ref1, ref2)
    assert podman("images", "--quiet").out.strip() == ""

    podman.pull(ref2)
    back = podman.inspect(ref2)
    assert back["Id"] == image_id
    assert back["Digest"] == pushed
    assert f"{clients.host}/{other_repo}@{pushed}" in back["RepoDigests"]
    assert back["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]


def test_podman_push_docker_format(clients: Clients, repo: str, other_repo: str, tmp_path: Path) -> None:
    """podman push --format v2s2 converts the OCI image it pulled into a Docker schema 2 one."""
    src, _, _ = push_umoci_image(clients, repo, tmp_path)
    _, manifest = src.manifest("v1")
    podman = clients.podman
    ref1 = clients.ref(repo, "v1")
    ref2 = clients.ref(other_repo, "v2s2")
    podman.pull(ref1)

    pushed = podman.push(ref1, "--format", "v2s2", dest=f"docker://{ref2}")
    raw = clients.inspect_raw(other_repo, "v2s2")
    assert sha256(raw) == pushed
    m = json.loads(raw)
    assert m["mediaType"] == DOCKER_MANIFEST
    assert m["config"]["digest"] == manifest["config"]["digest"]
    assert clients.inspect_raw(repo, "v1") == src.blob(src.ref("v1")["digest"])  # the source is untouched

    podman("rmi", ref1)
    podman.pull(ref2)
    info = podman.inspect(ref2)
    assert info["Digest"] == pushed
    assert info["Id"] == manifest["config"]["digest"].removeprefix("sha256:")


def test_podman_pull_platform_from_index(clients: Clients, repo: str, tmp_path: Path) -> None:
    platforms = [Platform("amd64"), Platform("arm64"), Platform("arm", variant="v7")]
    idx = build_multiarch(tmp_path / "src", "multi", platforms, nonce=os.urandom(8).hex())
    assert clients.push(f"oci:{tmp_path / 'src'}:multi", repo, "multi", "--all", "--preserve-digests") == idx.digest
    podman = clients.podman
    ref = clients.ref(repo, "multi")

    podman.pull(ref, "--platform", "linux/arm64")
    info = podman.inspect(ref)
    arm64 = idx.child("arm64")
    assert info["Architecture"] == "arm64"
    assert info["Id"] == arm64.config_digest.removeprefix("sha256:")
    assert info["Digest"] == idx.digest
    assert f"{clients.host}/{repo}@{arm64.digest}" in info["RepoDigests"]
    assert info["Labels"] == {"dockyard.test.platform": "linux-arm64"}


def test_podman_push_zstd_layers(clients: Clients, repo: str, tmp_path: Path) -> None:
    """podman compresses layers with zstd: the registry must take and serve any layer type.

    The image is loaded from an archive (never seen by any registry), so podman has no gzip
    blob it could reuse instead of compressing."""
    nonce = os.urandom(8).hex().encode()
    layer_contents = [{"etc/zstd/one": b"one " + nonce}, {"usr/share/zstd/text": b"zstd me\n" * 50_000}]
    layout = LayoutWriter(tmp_path / "layout")
    image = layout.image(layer_contents)
    layout.tag(image.descriptor, "v1")
    ref = clients.ref(repo, "zstd")
    clients.skopeo("copy", f"oci:{layout.root}:v1", f"docker-archive:{tmp_path / 'image.tar'}:{ref}")
    podman = clients.podman
    podman("load", "--input", str(tmp_path / "image.tar"), "--signature-policy", str(clients.policy))
    diff_ids = json.loads(image.config)["rootfs"]["diff_ids"]
    assert podman.inspect(ref)["RootFS"]["Layers"] == diff_ids

    pushed = podman.push(ref, "--format", "oci", "--compression-format", "zstd")
    raw = clients.inspect_raw(repo, "zstd")
    assert sha256(raw) == pushed
    m = json.loads(raw)
    assert [layer["mediaType"] for layer in m["layers"]] == [OCI_LAYER_ZSTD] * len(layer_contents)
    # (--format oci turned the Docker config podman loaded into an OCI one: a new config digest)
    pushed_config = clients.inspect_config(repo, "zstd")
    assert sha256(pushed_config) == m["config"]["digest"]
    assert json.loads(pushed_config)["rootfs"]["diff_ids"] == diff_ids
    clients.pull(repo, "zstd", f"dir:{tmp_path / 'zstd'}", "--preserve-digests")
    for layer in m["layers"]:
        blob = (tmp_path / "zstd" / layer["digest"].removeprefix("sha256:")).read_bytes()
        assert blob[:4] == b"\x28\xb5\x2f\xfd", "not a zstd frame"
        assert sha256(blob) == layer["digest"] and len(blob) == layer["size"]

    podman("rmi", ref)
    podman.pull(ref)
    info = podman.inspect(ref)
    assert info["Id"] == m["config"]["digest"].removeprefix("sha256:")
    assert info["Digest"] == pushed
    assert info["RootFS"]["Layers"] == diff_ids
    mountpoint = Path(podman("image", "mount", ref).out.strip())
    try:
        for files in layer_contents:
            for name, data in files.items():
                assert (mountpoint / name).read_bytes() == data, name
    finally:
        podman("image", "unmount", ref)
