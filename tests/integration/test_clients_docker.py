"""docker (a private dockerd, vfs storage) against the registry: pull what skopeo pushed, push to
another repository (cross-repository blob mount), rmi and pull back, pull one platform of a
multi-arch image, push an image of several layers docker compressed itself, pull by digest."""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .clients import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    Clients,
    DockerDaemon,
    HasLog,
    Layout,
    LayoutWriter,
    Platform,
    build_multiarch,
    build_umoci_image,
    diff_id,
    docker_pull_digest,
    docker_push_digest,
    layer_files,
    sha256,
    write_dir_transport,
)

# One worker runs all of them, so a test session starts one dockerd, not one per worker.
pytestmark = [pytest.mark.clients, pytest.mark.xdist_group("dockerd")]


def push_umoci_image(clients: Clients, repo: str, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A two-layer umoci image pushed with skopeo; returns (manifest digest, manifest)."""
    nonce = os.urandom(8).hex().encode()
    layers = [
        {"etc/docker-test/hello": b"hello " + nonce},
        {"opt/docker-test/blob.bin": os.urandom(200_000), "opt/docker-test/nonce": nonce},
    ]
    build_umoci_image(tmp_path / "src", "v1", layers, tmp_path)
    src = Layout(tmp_path / "src")
    digest = clients.push(f"oci:{src.root}:v1", repo, "v1", "--preserve-digests")
    _, manifest = src.manifest("v1")
    assert digest == src.ref("v1")["digest"]
    return digest, manifest


def image_inspect(docker: DockerDaemon, ref: str) -> dict[str, Any]:
    data = docker.docker("image", "inspect", ref).json()
    assert isinstance(data, list) and len(data) == 1
    info: dict[str, Any] = data[0]
    return info


def test_docker_pull_tag_push_mount_rmi_pull(
    docker: DockerDaemon, clients: Clients, server: HasLog, repo: str, other_repo: str, tmp_path: Path
) -> None:
    digest, manifest = push_umoci_image(clients, repo, tmp_path)
    config_digest = manifest["config"]["digest"]
    layer_digests = [layer["digest"] for layer in manifest["layers"]]
    ref1 = clients.ref(repo, "v1")
    ref2 = clients.ref(other_repo, "v2")

    out = docker.docker("pull", ref1).out
    assert docker_pull_digest(out) == digest
    info = image_inspect(docker, ref1)
    assert info["Id"] == config_digest
    assert f"{clients.host}/{repo}@{digest}" in info["RepoDigests"]
    assert info["Architecture"] == "amd64"

    docker.docker("tag", ref1, ref2)
    out = docker.docker("push", ref2).out
    # Every layer came from the first repository by a cross-repository mount, not a re-upload.
    mounted = re.findall(rf"^[0-9a-f]{{12}}: Mounted from {re.escape(repo)}$", out, re.M)
    assert len(mounted) == len(layer_digests), out
    pushed = docker_push_digest(out)
    raw = clients.inspect_raw(other_repo, "v2")
    assert sha256(raw) == pushed
    m = json.loads(raw)
    assert m["mediaType"] == DOCKER_MANIFEST
    assert m["config"]["digest"] == config_digest
    assert [layer["digest"] for layer in m["layers"]] == layer_digests
    with server.client() as http:
        for d in layer_digests:
            r = http.head(f"/v2/{other_repo}/blobs/{d}")
            assert r.status_code == 200 and r.headers.get("Docker-Content-Digest") == d, (d, r.status_code)

    docker.docker("rmi", ref1, ref2)
    assert docker.docker("image", "inspect", ref2, check=False).returncode != 0
    out = docker.docker("pull", ref2).out
    assert out.count("Pull complete") == len(layer_digests), out
    assert f"Downloaded newer image for {ref2}" in out
    assert docker_pull_digest(out) == pushed
    info = image_inspect(docker, ref2)
    assert info["Id"] == config_digest
    assert f"{clients.host}/{other_repo}@{pushed}" in info["RepoDigests"]


def test_docker_pull_by_digest(docker: DockerDaemon, clients: Clients, repo: str, tmp_path: Path) -> None:
    digest, manifest = push_umoci_image(clients, repo, tmp_path)
    ref = f"{clients.host}/{repo}@{digest}"

    out = docker.docker("pull", ref).out
    assert docker_pull_digest(out) == digest
    info = image_inspect(docker, ref)
    assert info["Id"] == manifest["config"]["digest"]
    assert info["RepoDigests"] == [ref]
    assert info["RepoTags"] == []


@pytest.mark.parametrize("platform", ["linux/arm64", "linux/arm/v7"])
@pytest.mark.parametrize("docker_list", [False, True], ids=["oci-index", "docker-list"])
def test_docker_pull_one_platform(
    docker: DockerDaemon, clients: Clients, repo: str, tmp_path: Path, docker_list: bool, platform: str
) -> None:
    platforms = [Platform("amd64"), Platform("arm64", variant="v8"), Platform("arm", variant="v7")]
    idx = build_multiarch(tmp_path / "layout", "multi", platforms, docker=docker_list, nonce=os.urandom(8).hex())
    if docker_list:
        write_dir_transport(idx, tmp_path / "dir")
        src = f"dir:{tmp_path / 'dir'}"
    else:
        src = f"oci:{tmp_path / 'layout'}:multi"
    assert clients.push(src, repo, "multi", "--all", "--preserve-digests") == idx.digest
    _, arch, variant = (platform.split("/") + [""])[:3]
    child = idx.child(arch, variant or "v8")
    ref = clients.ref(repo, "multi")

    out = docker.docker("pull", "--platform", platform, ref).out
    assert docker_pull_digest(out) == idx.digest
    assert out.count("Pull complete") == len(child.layers), out
    info = image_inspect(docker, ref)
    assert info["Id"] == child.config_digest
    assert (info["Os"], info["Architecture"], info.get("Variant")) == ("linux", arch, child.platform.variant), info
    assert info["RepoDigests"] == [f"{clients.host}/{repo}@{idx.digest}"]
    assert info["Config"]["Labels"] == {"dockyard.test.platform": child.platform.slug}


def test_docker_push_several_layers(docker: DockerDaemon, clients: Clients, repo: str, tmp_path: Path) -> None:
    """An image docker has only as uncompressed layers (docker load): docker compresses and
    uploads each layer itself; a second tag then finds them all already there."""
    nonce = os.urandom(8).hex().encode()
    layer_contents = [
        {"etc/several/one": b"one " + nonce},
        {"usr/lib/several/big.bin": os.urandom(3_000_000)},
        {"usr/share/several/text.txt": b"compressible text\n" * 20_000},
        {"etc/several/one": b"overwritten " + nonce, "var/several/four": b"four"},
    ]
    layout = LayoutWriter(tmp_path / "layout")
    image = layout.image(layer_contents, Platform("amd64"))
    layout.tag(image.descriptor, "v1")
    ref = clients.ref(repo, "v1")
    archive = tmp_path / "image.tar"
    clients.skopeo("copy", f"oci:{tmp_path / 'layout'}:v1", f"docker-archive:{archive}:{ref}")
    out = docker.docker("load", "--input", archive).out
    assert f"Loaded image: {ref}" in out, out
    assert image_inspect(docker, ref)["Id"] == image.config_digest

    out = docker.docker("push", ref).out
    pushed_lines = re.findall(r"^[0-9a-f]{12}: Pushed$", out, re.M)
    assert len(pushed_lines) == len(layer_contents), out
    pushed = docker_push_digest(out)
    raw = clients.inspect_raw(repo, "v1")
    assert sha256(raw) == pushed
    m = json.loads(raw)
    assert m["mediaType"] == DOCKER_MANIFEST
    assert m["config"]["digest"] == image.config_digest
    assert len(m["layers"]) == len(layer_contents)
    assert clients.inspect_config(repo, "v1") == image.config

    # What docker uploaded is what it meant: sizes, digests, diff ids and file contents.
    clients.pull(repo, "v1", f"dir:{tmp_path / 'back'}", "--preserve-digests")
    config = json.loads(image.config)
    for layer, want_diff_id, files in zip(m["layers"], config["rootfs"]["diff_ids"], layer_contents, strict=True):
        blob = (tmp_path / "back" / layer["digest"].removeprefix("sha256:")).read_bytes()
        assert sha256(blob) == layer["digest"] and len(blob) == layer["size"]
        assert diff_id(blob) == want_diff_id
        assert layer_files(blob) == files

    # A second tag: every layer is already in the repository.
    ref2 = clients.ref(repo, "v2")
    docker.docker("tag", ref, ref2)
    out = docker.docker("push", ref2).out
    assert len(re.findall(r"^[0-9a-f]{12}: Layer already exists$", out, re.M)) == len(layer_contents), out
    assert docker_push_digest(out) == pushed
    assert sorted(clients.list_tags(repo)) == ["v1", "v2"]


def test_docker_concurrent_pushes_to_three_repositories(
    docker: DockerDaemon, clients: Clients, repo: str, tmp_path: Path
) -> None:
    """Three `docker push` at once of one image (new to the registry) to three repositories."""
    nonce = os.urandom(8).hex().encode()
    layer_contents = [
        {"etc/race/one": b"one " + nonce},
        {"usr/lib/race/big.bin": os.urandom(2_000_000)},
        {"usr/share/race/text": b"race\n" * 100_000},
    ]
    layout = LayoutWriter(tmp_path / "layout")
    image = layout.image(layer_contents)
    layout.tag(image.descriptor, "v1")
    repos = [f"{repo}-{i}" for i in range(3)]
    refs = [clients.ref(r, "v1") for r in repos]
    archive = tmp_path / "image.tar"
    clients.skopeo("copy", f"oci:{layout.root}:v1", f"docker-archive:{archive}:{refs[0]}")
    docker.docker("load", "--input", archive)
    for ref in refs[1:]:
        docker.docker("tag", refs[0], ref)

    with ThreadPoolExecutor(len(refs)) as pool:
        outputs = list(pool.map(lambda ref: docker.docker("push", ref).out, refs))

    diff_ids = json.loads(image.config)["rootfs"]["diff_ids"]
    for r, out in zip(repos, outputs, strict=True):
        pushed = docker_push_digest(out)
        raw = clients.inspect_raw(r, "v1")
        assert sha256(raw) == pushed, r
        m = json.loads(raw)
        assert m["config"]["digest"] == image.config_digest
        back = tmp_path / r.replace("/", "_")
        clients.pull(r, "v1", f"dir:{back}", "--preserve-digests")
        blobs = [(back / d["digest"].removeprefix("sha256:")).read_bytes() for d in m["layers"]]
        assert [diff_id(b) for b in blobs] == diff_ids, r


def test_docker_manifest_create_and_push_a_list(
    docker: DockerDaemon, clients: Clients, repo: str, tmp_path: Path
) -> None:
    """The usual multi-arch flow: `docker push` one image per architecture, then `docker manifest
    create/push`.  The CLI mounts each image's blobs from its repository into the list's, PUTs
    each image manifest there by digest, then the list by tag.

    (The images are pushed by docker, not skopeo: the 20.10 CLI re-serialises the manifests it
    reads, so only manifests already in docker's own formatting keep their digests.)"""
    pushed: dict[str, str] = {}  # arch -> manifest digest
    config_digests: dict[str, str] = {}
    for arch in ("amd64", "arm64"):
        layout = LayoutWriter(tmp_path / f"layout-{arch}")
        image = layout.image([{"etc/arch": arch.encode() + b" " + os.urandom(8).hex().encode()}], Platform(arch))
        layout.tag(image.descriptor, "v1")
        ref = clients.ref(f"{repo}-{arch}", "v1")
        clients.skopeo("copy", f"oci:{layout.root}:v1", f"docker-archive:{tmp_path / arch}.tar:{ref}")
        docker.docker("load", "--input", f"{tmp_path / arch}.tar")
        assert image_inspect(docker, ref)["Id"] == image.config_digest
        pushed[arch] = docker_push_digest(docker.docker("push", ref).out)
        config_digests[arch] = image.config_digest
    list_repo = f"{repo}-list"
    list_ref = clients.ref(list_repo, "v1")

    docker.docker(
        "manifest", "create", "--insecure", list_ref, *(clients.ref(f"{repo}-{arch}", "v1") for arch in pushed)
    )
    out = docker.docker("manifest", "push", "--insecure", list_ref).out
    list_digest = out.strip().splitlines()[-1]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", list_digest), out

    raw = clients.inspect_raw(list_repo, "v1")
    assert sha256(raw) == list_digest
    listed = json.loads(raw)
    assert listed["mediaType"] == DOCKER_LIST
    children = {m["platform"]["architecture"]: m["digest"] for m in listed["manifests"]}
    assert children == pushed
    for arch, digest in pushed.items():
        # The image manifest and its blobs now live in the list's repository too.
        assert clients.inspect_raw(list_repo, digest) == clients.inspect_raw(f"{repo}-{arch}", digest)
        assert clients.inspect_config(list_repo, digest) == clients.inspect_config(f"{repo}-{arch}", digest)

    out = docker.docker("pull", "--platform", "linux/arm64", list_ref).out
    assert docker_pull_digest(out) == list_digest
    info = image_inspect(docker, list_ref)
    assert info["Architecture"] == "arm64"
    assert info["Id"] == config_digests["arm64"]
