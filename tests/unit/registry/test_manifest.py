from __future__ import annotations

import json

import pytest

from dockyard.registry import codes, digest, manifest, mediatypes

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def parse(doc: object, content_type: str | None) -> manifest.ParsedManifest:
    body = json.dumps(doc).encode()
    return manifest.parse(body, content_type, digest.of_bytes(body))


def test_image_manifest_references() -> None:
    m = parse(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1, "size": 3},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D2, "size": 5}],
            "subject": {"mediaType": mediatypes.OCI_MANIFEST, "digest": D2, "size": 9},
            "annotations": {"a": "b"},
        },
        mediatypes.OCI_MANIFEST + "; charset=utf-8",
    )
    assert m.media_type == mediatypes.OCI_MANIFEST
    assert m.config is not None and m.config.digest == D1
    assert [d.digest for d in m.layers] == [D2]
    assert m.subject is not None and m.subject.digest == D2
    assert m.effective_artifact_type == "application/vnd.oci.image.config.v1+json"
    assert m.annotations == {"a": "b"} and not m.is_index


def test_media_type_from_body_when_content_type_is_generic() -> None:
    m = parse({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": []}, "application/json")
    assert m.media_type == mediatypes.OCI_INDEX and m.is_index
    m = parse({"schemaVersion": 2, "manifests": []}, None)
    assert m.media_type == mediatypes.OCI_INDEX
    assert m.effective_artifact_type is None


def test_oversize() -> None:
    with pytest.raises(codes.RegistryError) as e:
        manifest.parse(b" " * (manifest.MAX_MANIFEST_BYTES + 1), mediatypes.OCI_MANIFEST, digest.of_bytes(b""))
    assert e.value.code.status == 413


@pytest.mark.parametrize(
    "doc",
    [
        {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "config": "x", "layers": []},
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {"mediaType": "x", "digest": D1, "size": True},
            "layers": [],
        },
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {"mediaType": "", "digest": D1, "size": 1},
            "layers": [],
        },
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {"mediaType": "x", "digest": D1, "size": 1},
            "layers": {},
        },
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {"mediaType": "x", "digest": D1, "size": 1},
            "layers": [],
            "annotations": {"a": 1},
        },
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_INDEX,
            "manifests": [{"mediaType": "x", "digest": D1, "size": 1, "platform": "linux"}],
        },
        {"schemaVersion": 2, "mediaType": 5, "manifests": []},
        {"schemaVersion": True, "manifests": []},
    ],
)
def test_invalid(doc: object) -> None:
    with pytest.raises(codes.RegistryError) as e:
        parse(doc, None)
    assert e.value.code is codes.MANIFEST_INVALID
