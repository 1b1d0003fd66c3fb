"""Building blocks for tests that talk to a registry over HTTP."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import httpx

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def errors_of(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return [e["code"] for e in response.json()["errors"]]


def push_blob(http: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha256(data)
    r = http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == digest
    return digest


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def image_manifest(
    http: httpx.Client,
    repo: str,
    *,
    media_type: str = DOCKER_MANIFEST,
    layers: int = 1,
    arch: str = "amd64",
    extra: dict[str, Any] | None = None,
    config_type: str | None = None,
) -> bytes:
    """Push a config and random layers; return manifest bytes referencing them (not pushed)."""
    oci = media_type == OCI_MANIFEST
    config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    push_blob(http, repo, config)
    layer_descs = []
    for _ in range(layers):
        data = os.urandom(1024)
        push_blob(http, repo, data)
        layer_descs.append(descriptor(OCI_LAYER if oci else DOCKER_LAYER, data))
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(config_type or (OCI_CONFIG if oci else DOCKER_CONFIG), config),
        "layers": layer_descs,
    }
    doc.update(extra or {})
    return json.dumps(doc, indent=1).encode()


def put_manifest(http: httpx.Client, repo: str, ref: str, body: bytes, media_type: str) -> httpx.Response:
    return http.put(f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": media_type})


def push_image(http: httpx.Client, repo: str, tag: str, **kw: Any) -> tuple[bytes, str]:
    media_type = kw.get("media_type", DOCKER_MANIFEST)
    body = image_manifest(http, repo, **kw)
    r = put_manifest(http, repo, tag, body, media_type)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == sha256(body)
    return body, sha256(body)
