"""Multi-platform images through skopeo: an OCI image index and a Docker manifest list, each of
three platform images, pushed with ``--all`` and pulled back; every digest preserved."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .clients import (
    DOCKER_LIST,
    OCI_INDEX,
    BuiltIndex,
    Clients,
    HasLog,
    Layout,
    Platform,
    build_multiarch,
    layer_files,
    write_dir_transport,
)

pytestmark = pytest.mark.clients

# arm64 once without a variant (OCI index) and once with "v8" (Docker list): clients treat both
# as linux/arm64.
OCI_PLATFORMS = [Platform("amd64"), Platform("arm64"), Platform("arm", variant="v7")]
DOCKER_PLATFORMS = [Platform("amd64"), Platform("arm64", variant="v8"), Platform("arm", variant="v7")]


def push_oci_index(clients: Clients, repo: str, tmp_path: Path, tag: str = "multi") -> BuiltIndex:
    idx = build_multiarch(tmp_path / "src", tag, OCI_PLATFORMS, nonce=os.urandom(8).hex())
    pushed = clients.push(f"oci:{tmp_path / 'src'}:{tag}", repo, tag, "--all", "--preserve-digests")
    assert pushed == idx.digest
    return idx


def assert_served_as(server: HasLog, repo: str, ref: str, media_type: str, digest: str, body: bytes) -> None:
    """What a client asking for any manifest type gets: the stored bytes, their type, their digest."""
    accept = ", ".join(
        [
            OCI_INDEX,
            DOCKER_LIST,
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ]
    )
    with server.client() as http:
        r = http.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == media_type
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.content == body


def test_oci_index_push_all_and_pull_back(clients: Clients, server: HasLog, repo: str, tmp_path: Path) -> None:
    idx = push_oci_index(clients, repo, tmp_path)

    assert clients.inspect_raw(repo, "multi") == idx.index
    assert clients.inspect_raw(repo, idx.digest) == idx.index
    assert_served_as(server, repo, "multi", OCI_INDEX, idx.digest, idx.index)
    for child in idx.children:
        assert clients.inspect_raw(repo, child.digest) == child.manifest, child.platform
        assert clients.inspect_config(repo, child.digest) == child.config, child.platform

    for name, ref in (("back", "multi"), ("bydigest", idx.digest)):
        clients.pull(repo, ref, f"oci:{tmp_path / name}:x", "--all", "--preserve-digests")
        back = Layout(tmp_path / name)
        assert back.ref("x")["digest"] == idx.digest
        assert back.blob(idx.digest) == idx.index
        for child in idx.children:
            assert back.blob(child.digest) == child.manifest
            assert back.blob(child.config_digest) == child.config
            for layer_digest, layer in zip(child.layer_digests, child.layers, strict=True):
                assert back.blob(layer_digest) == layer


@pytest.mark.parametrize(
    ("arch", "variant"),
    [("arm64", None), ("arm", "v7"), ("amd64", None)],
    ids=["arm64", "arm-v7", "amd64"],
)
def test_override_arch_pulls_one_child(
    clients: Clients, repo: str, tmp_path: Path, arch: str, variant: str | None
) -> None:
    idx = push_oci_index(clients, repo, tmp_path)
    want = idx.child(arch, variant)

    extra = ["--override-arch", arch] + (["--override-variant", variant] if variant else [])
    clients.skopeo(
        "--override-os",
        "linux",
        *extra,
        "copy",
        "--src-tls-verify=false",
        "--preserve-digests",
        f"docker://{clients.ref(repo, 'multi')}",
        f"oci:{tmp_path / 'one'}:x",
    )
    one = Layout(tmp_path / "one")
    digest, manifest = one.manifest("x")
    assert digest == want.digest
    config = json.loads(one.blob(manifest["config"]["digest"]))
    assert (config["architecture"], config.get("variant")) == (arch, variant)
    assert one.files(digest)["etc/platform"] == want.platform.slug.encode() + b"\n"
    # Only that child came over.
    others = [c for c in idx.children if c is not want]
    assert not any(one.has_blob(c.digest) or one.has_blob(c.config_digest) for c in others)


def test_docker_manifest_list_push_all_and_pull_back(
    clients: Clients, server: HasLog, repo: str, tmp_path: Path
) -> None:
    idx = build_multiarch(tmp_path / "layout", "list", DOCKER_PLATFORMS, docker=True, nonce=os.urandom(8).hex())
    write_dir_transport(idx, tmp_path / "src")

    pushed = clients.push(f"dir:{tmp_path / 'src'}", repo, "list", "--all", "--preserve-digests")
    assert pushed == idx.digest
    assert clients.inspect_raw(repo, "list") == idx.index
    assert_served_as(server, repo, "list", DOCKER_LIST, idx.digest, idx.index)
    for child in idx.children:
        assert clients.inspect_raw(repo, child.digest) == child.manifest, child.platform

    clients.pull(repo, "list", f"dir:{tmp_path / 'back'}", "--all", "--preserve-digests")
    back = tmp_path / "back"
    assert (back / "manifest.json").read_bytes() == idx.index
    for child in idx.children:
        assert (back / f"{child.digest.removeprefix('sha256:')}.manifest.json").read_bytes() == child.manifest
        for blob_digest, blob in zip(
            [child.config_digest, *child.layer_digests], [child.config, *child.layers], strict=True
        ):
            assert (back / blob_digest.removeprefix("sha256:")).read_bytes() == blob

    # Without --all: only the arm/v7 instance, still a Docker schema 2 manifest.
    want = idx.child("arm", "v7")
    clients.skopeo(
        "--override-os",
        "linux",
        "--override-arch",
        "arm",
        "--override-variant",
        "v7",
        "copy",
        "--src-tls-verify=false",
        "--preserve-digests",
        f"docker://{clients.ref(repo, 'list')}",
        f"dir:{tmp_path / 'one'}",
    )
    assert (tmp_path / "one" / "manifest.json").read_bytes() == want.manifest
    files: dict[str, bytes] = {}
    for digest in want.layer_digests:
        files.update(layer_files((tmp_path / "one" / digest.removeprefix("sha256:")).read_bytes()))
    assert files["etc/platform"] == b"linux-arm-v7\n"
