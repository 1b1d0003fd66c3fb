"""Manifest media types and Accept-header negotiation."""

from __future__ import annotations

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"

IMAGE_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_LIST, OCI_INDEX})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES
SCHEMA1_TYPES = frozenset({SCHEMA1, SCHEMA1_SIGNED})
OCI_TYPES = frozenset({OCI_MANIFEST, OCI_INDEX})

# Layers that are fetched from their `urls`, never pushed: they need not exist here.
FOREIGN_LAYER_TYPES = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)


def strip_params(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def parse_accept(values: list[str]) -> frozenset[str]:
    """All media types named by (possibly repeated) Accept headers, parameters dropped."""
    out: set[str] = set()
    for header in values:
        for part in header.split(","):
            t = strip_params(part)
            if t:
                out.add(t)
    return frozenset(out)


def accepts(accepted: frozenset[str], media_type: str) -> bool:
    """No Accept header, or a wildcard, takes anything. Docker schema 2 is always served
    as stored (as the reference does); only OCI and list types are negotiated."""
    if not accepted or "*/*" in accepted or "*" in accepted or "application/*" in accepted:
        return True
    if media_type == DOCKER_MANIFEST:
        return True
    return media_type in accepted
