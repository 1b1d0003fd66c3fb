"""/repositories/{namespace}/{repo}/signers and …/manifests/{digest}/signatures: the keys and
certificates that verify a repository's cosign and Notation signatures, and the signatures
(and attestations) pushed for a manifest, each verified against them.

Repository readers list; repository admins add and delete signers (``Caller.repository``).
"""

from __future__ import annotations

import datetime
import hashlib
import re

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Response, status
from pydantic import Field

from ..metadata import queries
from ..metadata import signers as q
from ..trust import artifacts
from .deps import Anyone, User
from .errors import BadRequest, Conflict, NotFound
from .schemas import Body, Schema, timestamp

router = APIRouter(tags=["signatures"])

SIGNER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$")


class NewSigner(Body):
    name: str = Field(description="unique in the repository: letters, digits, '.', '_', '-'")
    kind: str = Field(description='"cosign" (a PEM public key) or "notation" (a PEM certificate, usually a root CA)')
    pem: str = Field(description="the PEM text", max_length=65536)


class Signer(Schema):
    name: str
    kind: str
    pem: str
    fingerprint: str = Field(description="SHA-256 of the public key (cosign) or of the certificate (notation)")
    created_at: datetime.datetime


class Signature(Schema):
    kind: str = Field(description='"cosign", "notation" or "attestation"')
    artifact_digest: str = Field(description="the signature artifact's manifest")
    layer_digest: str = Field(description="its layer holding the signed payload or envelope")
    media_type: str
    discovered_by: str = Field(description='"referrers" (subject) or "tag" (cosign sha256-<hex>.sig / .att)')
    verified: bool
    signer: str | None = Field(None, description="the repository signer that verified it")
    reason: str | None = Field(None, description="why it is not verified")
    details: dict[str, str] = Field(default_factory=dict)


class SignatureList(Schema):
    digest: str
    signatures: list[Signature]


def _fingerprint(kind: str, pem: str) -> str:
    try:
        if kind == "cosign":
            der = artifacts.load_public_key(pem).public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        else:
            der = artifacts.load_certificate(pem).public_bytes(serialization.Encoding.DER)
    except artifacts.InvalidSigner:
        return ""
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _signer_out(s: q.Signer) -> Signer:
    created = timestamp(s.created_at)
    assert created is not None
    return Signer(name=s.name, kind=s.kind, pem=s.pem, fingerprint=_fingerprint(s.kind, s.pem), created_at=created)


@router.get("/repositories/{namespace}/{repo}/signers", response_model=list[Signer], summary="Signers of a repository")
async def list_signers(caller: Anyone, namespace: str, repo: str) -> list[Signer]:
    """The cosign public keys and Notation certificates that verify its signatures."""
    row = await caller.repository(namespace, repo)
    return [_signer_out(s) for s in await caller.ctx.db.read(q.signers, row.id)]


@router.post(
    "/repositories/{namespace}/{repo}/signers",
    response_model=Signer,
    status_code=status.HTTP_201_CREATED,
    summary="Add a signer",
)
async def add_signer(caller: User, namespace: str, repo: str, body: NewSigner) -> Signer:
    """Repository admins only. A cosign signer is a PEM public key; a notation signer a PEM
    certificate that signature chains must lead to."""
    row = await caller.repository(namespace, repo, "admin")
    if not SIGNER_NAME.fullmatch(body.name):
        raise BadRequest(
            f"invalid signer name {body.name[:100]!r}: letters, digits, '.', '_' and '-', at most 128 characters"
        )
    try:
        artifacts.check_signer(body.kind, body.pem)
    except artifacts.InvalidSigner as e:
        raise BadRequest(f"signer {body.name}: {e}") from None
    added = await caller.ctx.db.write(q.add_signer, row.id, body.name, body.kind, body.pem.strip() + "\n")
    if added is None:
        raise Conflict(f"repository {row.name} already has a signer named {body.name}")
    await caller.audit("repository.signer.add", row.name, {"name": body.name, "kind": body.kind})
    return _signer_out(added)


@router.delete(
    "/repositories/{namespace}/{repo}/signers/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a signer",
)
async def delete_signer(caller: User, namespace: str, repo: str, name: str) -> Response:
    """Repository admins only. Signatures it verified stop counting (within a few seconds for
    the signed-only policy, which caches verification results briefly)."""
    row = await caller.repository(namespace, repo, "admin")
    if not await caller.ctx.db.write(q.delete_signer, row.id, name):
        raise NotFound(f"repository {row.name} has no signer named {name}")
    await caller.audit("repository.signer.delete", row.name, {"name": name})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/repositories/{namespace}/{repo}/manifests/{digest}/signatures",
    response_model=SignatureList,
    summary="Signatures of a manifest",
)
async def list_signatures(caller: Anyone, namespace: str, repo: str, digest: str) -> SignatureList:
    """Every cosign and Notation signature and cosign attestation of the manifest, found through
    the referrers API and cosign's tag scheme, each verified against the repository's signers.
    COSE envelopes and sigstore bundles are listed as not verified."""
    row = await caller.repository(namespace, repo)
    if not DIGEST.fullmatch(digest):
        raise BadRequest(f"invalid digest {digest[:200]!r}: expected sha256:<64 hex> or sha512:<128 hex>")
    if await queries.manifest_by_digest(caller.ctx.db, row.name, digest) is None:
        raise NotFound(f"manifest {digest} is unknown to repository {row.name}")
    blobs = caller.ctx.registry.blobs
    finder = artifacts.ArtifactSignatures(caller.ctx.db, artifacts.StorageBlobs(caller.ctx.db, blobs.storage))
    found = await finder.find(row.name, digest)
    return SignatureList(
        digest=digest,
        signatures=[
            Signature(
                kind=f.kind,
                artifact_digest=f.artifact,
                layer_digest=f.layer,
                media_type=f.media_type,
                discovered_by=f.discovered_by,
                verified=f.verdict.verified,
                signer=f.verdict.signer,
                reason=f.verdict.reason,
                details=f.verdict.details,
            )
            for f in found
        ],
    )
