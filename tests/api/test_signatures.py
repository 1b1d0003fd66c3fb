"""Signers and the cosign/Notation signatures of manifests, against a real server: signatures
built with ``cryptography`` (no cosign/notation binaries here), pushed as OCI artifacts with a
``subject`` (and one under cosign's legacy tag), listed and verified through /api/v0, and the
signed-only policy enforced on pulls by tag."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.metadata import queries
from dockyard.metadata.db import Database
from dockyard.metadata.signers import set_signature_policy
from dockyard.trust import artifacts
from tests.api.conftest import ADMIN, Api, errors_of
from tests.helpers import (
    EMPTY_CONFIG,
    OCI_CONFIG,
    OCI_MANIFEST,
    descriptor,
    push_blob,
    push_image,
    put_manifest,
    sha256,
)
from tests.helpers import errors_of as registry_errors
from tests.trust.unit.test_artifacts import (
    ca_chain,
    cert_pem,
    cosign_payload,
    cosign_sign,
    dsse_envelope,
    in_toto,
    notation_jws,
    public_pem,
)


@pytest.fixture
def registry(api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.server.url, auth=ADMIN, timeout=60) as c:
        yield c


def push_artifact(
    registry: httpx.Client,
    repo: str,
    layers: list[tuple[str, bytes, dict[str, str]]],
    *,
    artifact_type: str | None,
    subject: str | None,
    tag: str | None = None,
) -> str:
    """Push an OCI artifact manifest (empty config, the given layers, a subject); its digest."""
    push_blob(registry, repo, b"{}")
    descs = []
    for media_type, data, notes in layers:
        push_blob(registry, repo, data)
        descs.append(descriptor(media_type, data, **({"annotations": notes} if notes else {})))
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        # cosign's tag-scheme manifests carry an image config, artifacts the empty one
        "config": descriptor(EMPTY_CONFIG if artifact_type else OCI_CONFIG, b"{}"),
        "layers": descs,
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
    if subject:
        manifest = registry.get(f"/v2/{repo}/manifests/{subject}", headers={"Accept": OCI_MANIFEST})
        doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(manifest.content)}
    body = json.dumps(doc).encode()
    r = put_manifest(registry, repo, tag or sha256(body), body, OCI_MANIFEST)
    assert r.status_code == 201, r.text
    return sha256(body)


def cosign_signature(
    registry: httpx.Client, repo: str, key: Any, digest: str, names: str | None = None, **kw: Any
) -> str:
    payload = cosign_payload(names or digest)
    layer = (
        artifacts.COSIGN_SIMPLESIGNING,
        payload,
        {artifacts.COSIGN_SIGNATURE_ANNOTATION: cosign_sign(key, payload)},
    )
    return push_artifact(registry, repo, [layer], **kw)


def set_policy(api: Api, repo: str, accepted: str) -> None:
    """signed_only on, with these kinds, written straight to the server's database."""
    db = Database(f"sqlite:///{api.server.data_dir / 'db' / 'dockyard.db'}")
    try:
        repo_id = db.read_sync(queries.repository_id, repo)
        assert repo_id is not None
        db.write_sync(set_signature_policy, repo_id, True, accepted)
    finally:
        db.dispose()


def signatures(api: Api, repo: str, digest: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api.ok("GET", f"/repositories/{repo}/manifests/{digest}/signatures")["signatures"]
    return result


def pull(registry: httpx.Client, repo: str, tag: str) -> httpx.Response:
    return registry.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})


def test_cosign_signatures_and_attestations_are_listed_and_verified(api: Api, registry: httpx.Client) -> None:
    api.repo("admin", "cosigned")
    repo = "admin/cosigned"
    key, stranger = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    api.ok("POST", f"/repositories/{repo}/signers", {"name": "ci", "kind": "cosign", "pem": public_pem(key)})
    _, digest = push_image(registry, repo, "v1", media_type=OCI_MANIFEST)
    _, other_digest = push_image(registry, repo, "v2", media_type=OCI_MANIFEST)

    good = cosign_signature(
        registry, repo, key, digest, artifact_type=artifacts.COSIGN_SIGNATURE_ARTIFACT, subject=digest
    )
    legacy_tag = artifacts.legacy_tags(digest)[0]
    by_stranger = cosign_signature(registry, repo, stranger, digest, artifact_type=None, subject=None, tag=legacy_tag)
    elsewhere = cosign_signature(
        registry,
        repo,
        key,
        digest,
        names=other_digest,
        artifact_type=artifacts.COSIGN_SIGNATURE_ARTIFACT,
        subject=digest,
    )
    attestation = push_artifact(
        registry,
        repo,
        [(artifacts.DSSE_ENVELOPE, dsse_envelope(key, in_toto(digest)), {})],
        artifact_type="application/vnd.dev.cosign.artifact.att.v1+json",
        subject=digest,
    )

    found = {s["artifactDigest"]: s for s in signatures(api, repo, digest)}
    assert set(found) == {good, by_stranger, elsewhere, attestation}
    assert found[good]["kind"] == "cosign" and found[good]["verified"] and found[good]["signer"] == "ci"
    assert found[good]["discoveredBy"] == "referrers" and found[good]["reason"] is None
    assert found[by_stranger]["discoveredBy"] == "tag" and not found[by_stranger]["verified"]
    assert found[by_stranger]["signer"] is None and "does not verify" in found[by_stranger]["reason"]
    assert not found[elsewhere]["verified"] and other_digest in found[elsewhere]["reason"]
    assert found[attestation]["kind"] == "attestation" and found[attestation]["verified"]
    assert found[attestation]["details"]["predicateType"] == "https://slsa.dev/provenance/v1"
    # the other image has no signatures; the signers list shows the key
    assert signatures(api, repo, other_digest) == []
    listed = api.ok("GET", f"/repositories/{repo}/signers")
    assert [(s["name"], s["kind"]) for s in listed] == [("ci", "cosign")]
    assert listed[0]["fingerprint"].startswith("sha256:")


def test_notation_signatures_are_listed_and_verified(api: Api, registry: httpx.Client) -> None:
    api.repo("admin", "notarized")
    repo = "admin/notarized"
    leaf_key, chain = ca_chain()
    foreign_key, foreign_chain = ca_chain()
    api.ok("POST", f"/repositories/{repo}/signers", {"name": "acme", "kind": "notation", "pem": cert_pem(chain[1])})
    _, digest = push_image(registry, repo, "v1", media_type=OCI_MANIFEST)

    def notation(envelope: bytes, media_type: str = artifacts.JWS) -> str:
        return push_artifact(
            registry, repo, [(media_type, envelope, {})], artifact_type=artifacts.NOTATION_SIGNATURE, subject=digest
        )

    good = notation(notation_jws(leaf_key, chain, digest))
    foreign = notation(notation_jws(foreign_key, foreign_chain, digest))
    cose = notation(b"\xd2\x84not really cose", artifacts.COSE)
    found = {s["artifactDigest"]: s for s in signatures(api, repo, digest)}
    assert found[good]["kind"] == "notation" and found[good]["verified"] and found[good]["signer"] == "acme"
    assert found[good]["details"]["signingScheme"] == "notary.x509"
    assert not found[foreign]["verified"] and "does not lead" in found[foreign]["reason"]
    assert not found[cose]["verified"] and "COSE" in found[cose]["reason"]


def test_signed_only_with_cosign_pulls_signed_tags_only(api: Api, registry: httpx.Client) -> None:
    api.repo("admin", "cosign-only")
    repo = "admin/cosign-only"
    key = ec.generate_private_key(ec.SECP256R1())
    api.ok("POST", f"/repositories/{repo}/signers", {"name": "ci", "kind": "cosign", "pem": public_pem(key)})
    _, signed = push_image(registry, repo, "signed", media_type=OCI_MANIFEST)
    _, legacy = push_image(registry, repo, "legacy", media_type=OCI_MANIFEST)
    _, unsigned = push_image(registry, repo, "unsigned", media_type=OCI_MANIFEST)
    cosign_signature(registry, repo, key, signed, artifact_type=artifacts.COSIGN_SIGNATURE_ARTIFACT, subject=signed)
    cosign_signature(
        registry, repo, key, legacy, artifact_type=None, subject=None, tag=artifacts.legacy_tags(legacy)[0]
    )
    set_policy(api, repo, "notary,cosign")

    assert pull(registry, repo, "signed").status_code == 200
    assert pull(registry, repo, "legacy").status_code == 200
    refused = pull(registry, repo, "unsigned")
    assert refused.status_code == 403 and registry_errors(refused) == ["DENIED"]
    message = refused.json()["errors"][0]["message"]
    assert "only signed content" in message and unsigned in message
    assert pull(registry, repo, unsigned).status_code == 200  # by digest the policy does not apply


def test_signed_only_with_notation_pulls_signed_tags_only(api: Api, registry: httpx.Client) -> None:
    api.repo("admin", "notation-only")
    repo = "admin/notation-only"
    leaf_key, chain = ca_chain()
    cosign_key = ec.generate_private_key(ec.SECP256R1())
    api.ok("POST", f"/repositories/{repo}/signers", {"name": "acme", "kind": "notation", "pem": cert_pem(chain[1])})
    api.ok("POST", f"/repositories/{repo}/signers", {"name": "ci", "kind": "cosign", "pem": public_pem(cosign_key)})
    _, signed = push_image(registry, repo, "signed", media_type=OCI_MANIFEST)
    _, cosigned = push_image(registry, repo, "cosigned", media_type=OCI_MANIFEST)
    push_artifact(
        registry,
        repo,
        [(artifacts.JWS, notation_jws(leaf_key, chain, signed), {})],
        artifact_type=artifacts.NOTATION_SIGNATURE,
        subject=signed,
    )
    # a valid cosign signature does not count when only notation is accepted
    cosign_signature(
        registry, repo, cosign_key, cosigned, artifact_type=artifacts.COSIGN_SIGNATURE_ARTIFACT, subject=cosigned
    )
    set_policy(api, repo, "notation")

    assert pull(registry, repo, "signed").status_code == 200
    refused = pull(registry, repo, "cosigned")
    assert refused.status_code == 403 and registry_errors(refused) == ["DENIED"]
    assert "(notation)" in refused.json()["errors"][0]["message"]


def test_signer_management_is_validated_and_admin_only(api: Api) -> None:
    api.repo("admin", "keys")
    repo = "admin/keys"
    key = ec.generate_private_key(ec.SECP256R1())
    _, chain = ca_chain()
    url = f"/repositories/{repo}/signers"

    def refused(body: dict[str, str], status: int, auth: tuple[str, str] | None = ADMIN) -> str:
        r = api.call("POST", url, auth, body)
        assert r.status_code == status, r.text
        errors_of(r)
        message: str = r.json()["errors"][0]["message"]
        return message

    assert "not a certificate" in refused({"name": "k", "kind": "cosign", "pem": cert_pem(chain[1])}, 400)
    assert "not a public key" in refused({"name": "k", "kind": "notation", "pem": public_pem(key)}, 400)
    assert "unknown signer kind" in refused({"name": "k", "kind": "gpg", "pem": public_pem(key)}, 400)
    assert "invalid signer name" in refused({"name": "../x", "kind": "cosign", "pem": public_pem(key)}, 400)
    created = api.ok("POST", url, {"name": "k", "kind": "cosign", "pem": public_pem(key)})
    assert created["name"] == "k" and created["createdAt"]
    assert "already has" in refused({"name": "k", "kind": "cosign", "pem": public_pem(key)}, 409)

    api.user("sigrid")
    assert api.call("GET", url, ("sigrid", "sigrid-password")).status_code == 404  # not visible to her
    assert api.call("GET", url, None).status_code == 401
    api.ok("PATCH", f"/repositories/{repo}", {"visibility": "public"})
    assert [s["name"] for s in api.ok("GET", url, auth=("sigrid", "sigrid-password"))] == ["k"]  # readers list
    r = api.call("DELETE", f"{url}/k", ("sigrid", "sigrid-password"))
    assert r.status_code == 403 and errors_of(r) == ["DENIED"]
    refused({"name": "k2", "kind": "cosign", "pem": public_pem(key)}, 403, ("sigrid", "sigrid-password"))

    assert api.call("DELETE", f"{url}/k", ADMIN).status_code == 204
    r = api.call("DELETE", f"{url}/k", ADMIN)
    assert r.status_code == 404 and errors_of(r) == ["NOT_FOUND"]
    assert api.ok("GET", url) == []
    r = api.call("GET", f"/repositories/{repo}/manifests/sha256:nothex/signatures", ADMIN)
    assert r.status_code == 400 and errors_of(r) == ["BAD_REQUEST"]
    missing = "sha256:" + "0" * 64
    r = api.call("GET", f"/repositories/{repo}/manifests/{missing}/signatures", ADMIN)
    assert r.status_code == 404 and errors_of(r) == ["NOT_FOUND"]


def test_base64_of_builders_is_standard() -> None:
    # cosign writes the signature annotation in standard base64; make sure the builders do too.
    key = ec.generate_private_key(ec.SECP256R1())
    assert base64.b64decode(cosign_sign(key, b"x"), validate=True)
