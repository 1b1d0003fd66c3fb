"""Parsing and validating pushed manifests. The bytes are never re-serialised: we only
read them to learn what they reference."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import codes, digest, mediatypes

MAX_MANIFEST_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    digest: str
    size: int
    config: Descriptor | None
    layers: tuple[Descriptor, ...]  # blobs that must exist (foreign layers excluded)
    children: tuple[Descriptor, ...]  # index/list entries
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in mediatypes.INDEX_TYPES

    @property
    def effective_artifact_type(self) -> str | None:
        """What the referrers API reports: artifactType, else the config media type."""
        if self.artifact_type:
            return self.artifact_type
        return self.config.media_type if self.config else None


def _invalid(message: str) -> codes.RegistryError:
    return codes.RegistryError(codes.MANIFEST_INVALID, message)


def _descriptor(obj: Any, where: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise _invalid(f"{where}: descriptor must be an object")
    mt, dg, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
    if not isinstance(mt, str) or not mt:
        raise _invalid(f"{where}: mediaType must be a non-empty string")
    if not isinstance(dg, str):
        raise _invalid(f"{where}: digest must be a string")
    try:
        digest.parse(dg, what=f"{where} digest")
    except codes.RegistryError as e:
        raise _invalid(e.message) from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}: size must be a non-negative integer")
    urls = obj.get("urls")
    if urls is not None and (not isinstance(urls, list) or not all(isinstance(u, str) for u in urls)):
        raise _invalid(f"{where}: urls must be a list of strings")
    platform = obj.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise _invalid(f"{where}: platform must be an object")
    return Descriptor(mt, dg, size, platform)


def _check_url(url: str, where: str) -> None:
    if not (url.startswith("http://") or url.startswith("https://")) or "#" in url:
        raise _invalid(f"{where}: foreign layer URL {url[:200]!r} must be http(s) without a fragment")


def parse(body: bytes, content_type: str | None, computed: digest.Digest) -> ParsedManifest:
    """Validate a manifest body sent with Content-Type; raise MANIFEST_INVALID with a reason."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise codes.RegistryError(codes.SIZE_TOO_LARGE, f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    ct = mediatypes.strip_params(content_type) if content_type else ""
    if ct in mediatypes.SCHEMA1_TYPES:
        raise _invalid(f"Docker schema 1 manifests ({ct}) are deprecated and not accepted; push schema 2 or OCI")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise _invalid(f"manifest is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _invalid("manifest must be a JSON object")
    if doc.get("schemaVersion") == 1:
        raise _invalid("Docker schema 1 manifests are deprecated and not accepted; push schema 2 or OCI")
    if doc.get("schemaVersion") != 2 or isinstance(doc.get("schemaVersion"), bool):
        raise _invalid("schemaVersion must be 2")
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise _invalid("mediaType must be a string")

    # The Content-Type decides; without one (or a generic one) the body's own mediaType does.
    media_type = ct if ct in mediatypes.MANIFEST_TYPES else None
    if media_type is None:
        if ct and ct not in ("application/json", "application/octet-stream"):
            raise _invalid(f"unsupported manifest media type {ct!r}")
        if body_type in mediatypes.MANIFEST_TYPES:
            media_type = body_type
        elif body_type is None and "manifests" in doc:
            media_type = mediatypes.OCI_INDEX
        elif body_type is None and "config" in doc:
            media_type = mediatypes.OCI_MANIFEST
        else:
            raise _invalid("cannot tell the manifest's media type: send a Content-Type")
    if body_type is not None and body_type != media_type:
        raise _invalid(f"mediaType {body_type!r} in the body does not match Content-Type {media_type!r}")
    if media_type in (mediatypes.DOCKER_MANIFEST, mediatypes.DOCKER_LIST) and body_type is None:
        raise _invalid(f"a {media_type} manifest must carry its mediaType")

    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise _invalid("annotations must be a map of strings to strings")
    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None

    config: Descriptor | None = None
    layers: list[Descriptor] = []
    children: list[Descriptor] = []
    if media_type in mediatypes.IMAGE_TYPES:
        if "manifests" in doc:
            raise _invalid("an image manifest cannot have 'manifests' (is this an index?)")
        config = _descriptor(doc.get("config"), "config")
        raw_layers = doc.get("layers")
        if not isinstance(raw_layers, list):
            raise _invalid("layers must be a list")
        for i, raw in enumerate(raw_layers):
            d = _descriptor(raw, f"layers[{i}]")
            urls = raw.get("urls") or []
            if d.media_type in mediatypes.FOREIGN_LAYER_TYPES and urls:
                for url in urls:
                    _check_url(url, f"layers[{i}]")
                continue  # fetched from its URLs; need not be here
            layers.append(d)
        if config.media_type == mediatypes.EMPTY_CONFIG and not artifact_type and media_type == mediatypes.OCI_MANIFEST:
            raise _invalid("artifactType must be set when config.mediaType is the empty type")
    else:
        if "config" in doc or "layers" in doc:
            raise _invalid("an index cannot have 'config' or 'layers' (is this an image manifest?)")
        raw_children = doc.get("manifests")
        if not isinstance(raw_children, list):
            raise _invalid("manifests must be a list")
        children = [_descriptor(raw, f"manifests[{i}]") for i, raw in enumerate(raw_children)]
    return ParsedManifest(
        media_type=media_type,
        digest=str(computed),
        size=len(body),
        config=config,
        layers=tuple(layers),
        children=tuple(children),
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations,
    )
