"""Test images made from random bytes: gzip'ed tar layers, image configs, OCI layouts on disk."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Layer:
    blob: bytes  # gzip'ed tar
    diff_id: str  # digest of the uncompressed tar


def random_layer(payload_size: int, name: str) -> Layer:
    """A tar holding one file of random bytes, gzip'ed (random data barely compresses)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"{name}/data.bin")
        info.size = payload_size
        info.mode = 0o644
        info.mtime = 1_700_000_000
        tar.addfile(info, io.BytesIO(os.urandom(payload_size)))
    tar_bytes = raw.getvalue()
    return Layer(gzip.compress(tar_bytes, compresslevel=1, mtime=0), _sha(tar_bytes))


def image_config(layers: list[Layer]) -> bytes:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "dockyard bench"} for _ in layers],
    }
    return json.dumps(doc).encode()


@dataclass
class OciLayout:
    path: Path
    tag: str
    total_bytes: int  # all blobs: layers + config + manifest
    layers: int


def write_oci_layout(path: Path, layers: int, min_size: int, max_size: int, tag: str = "latest") -> OciLayout:
    """Write an OCI image layout with `layers` fresh random layers of min..max payload bytes."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = _sha(data)
        (blobs / digest.split(":", 1)[1]).write_bytes(data)
        return digest

    made = [random_layer(random.randint(min_size, max_size), f"layer{i:02d}") for i in range(layers)]
    config = image_config(made)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": put(config), "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER_GZIP, "digest": put(layer.blob), "size": len(layer.blob)} for layer in made
            ],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": put(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index))
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    total = sum(len(layer.blob) for layer in made) + len(config) + len(manifest)
    return OciLayout(path, tag, total, layers)


def seeded_manifest(blobs: list[tuple[str, int]], annotations: dict[str, str] | None = None) -> tuple[bytes, str]:
    """A Docker schema 2 manifest naming already-stored blobs, the first as its config, for
    benches that seed a database directly; (its bytes, its digest)."""
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": blobs[0][0],
            "size": blobs[0][1],
        },
        "layers": [
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": d, "size": s}
            for d, s in blobs[1:]
        ],
    }
    if annotations:
        doc["annotations"] = annotations
    body = json.dumps(doc).encode()
    return body, "sha256:" + hashlib.sha256(body).hexdigest()
