"""Signatures and attestations pushed as OCI artifacts (cosign, Notation): found, read, verified.

Discovery, for a manifest digest D of repository R (sigstore/cosign ``specs/SIGNATURE_SPEC.md``,
notaryproject/specifications ``specs/signing-and-verification-workflow.md``):
    - the referrers of D: manifests of R whose ``subject`` is D;
    - cosign's tag scheme: the tags ``sha256-<hex>.sig`` (signatures) and ``.att`` (attestations) of R.

Every layer of those manifests is judged by its media type:
    application/vnd.dev.cosign.simplesigning.v1+json   kind "cosign": the layer annotation
        ``dev.cosignproject.cosign/signature`` is base64 of a signature over the payload blob
        (ECDSA DER, RSA PKCS#1 v1.5 or PSS, Ed25519); the payload's
        ``critical.image.docker-manifest-digest`` must be D.
    application/vnd.dsse.envelope.v1+json              kind "attestation": a DSSE envelope of an
        in-toto statement; its signature covers PAE(payloadType, payload), one subject must be D.
    application/jose+json (artifactType application/vnd.cncf.notary.signature)   kind "notation":
        a flattened JWS (``specs/signature-envelope-jws.md``): ``alg`` must match the leaf key,
        the payload's ``targetArtifact.digest`` must be D, the x5c chain must link up to a
        certificate configured for R and be valid at the signing time, and not past ``expiry``.
    application/cose (Notation) and sigstore bundles   listed, never verified (said in the reason).

Cosign signatures and attestations verify with the repository's "cosign" signers (PEM public
keys); Notation signatures with its "notation" signers (PEM certificates, usually root CAs).
The verifiers are pure functions of bytes; ``ArtifactSignatures`` does the registry reading.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..metadata import queries
from ..metadata import signers as signers_q
from ..metadata.db import Database
from ..metadata.signers import Signer
from ..storage.driver import PathNotFound, StorageDriver
from ..storage.paths import blob_path

COSIGN_SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_SIGNATURE_TYPE = "cosign container image signature"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SIGSTORE_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature"
NOTATION_PAYLOAD = "application/vnd.cncf.notary.payload.v1+json"
JWS = "application/jose+json"
COSE = "application/cose"

SIGNER_KINDS = ("cosign", "notation")
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class InvalidSigner(ValueError):
    """A signer's PEM is not what its kind needs; the message says why, for the API's 400."""


@dataclass(frozen=True, slots=True)
class Verdict:
    verified: bool
    signer: str | None = None  # the name of the repository signer that verified it
    reason: str | None = None  # why it is not verified
    details: dict[str, str] = field(default_factory=dict)


def _no(reason: str, details: dict[str, str] | None = None) -> Verdict:
    return Verdict(False, None, reason, details or {})


@dataclass(frozen=True, slots=True)
class Found:
    """One signature or attestation of a manifest, as listed by the API."""

    kind: str  # "cosign" | "attestation" | "notation"
    artifact: str  # digest of the artifact manifest holding it
    layer: str  # digest of the layer holding the signed payload or envelope
    media_type: str  # that layer's media type
    discovered_by: str  # "referrers" | "tag"
    verdict: Verdict


# --- signer material ------------------------------------------------------------------------


def load_public_key(pem: str) -> PublicKey:
    """A cosign signer: one PEM public key (ECDSA, RSA or Ed25519)."""
    text = pem.strip()
    if "BEGIN CERTIFICATE" in text:
        raise InvalidSigner("a cosign signer is a PEM public key (-----BEGIN PUBLIC KEY-----), not a certificate")
    if "PRIVATE KEY" in text:
        raise InvalidSigner("this is a private key: give the public key (cosign.pub), never the private one")
    try:
        key = serialization.load_pem_public_key(text.encode())
    except (ValueError, UnsupportedAlgorithm) as e:
        raise InvalidSigner(f"not a PEM public key: {e}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise InvalidSigner(f"unsupported key type {type(key).__name__}: use ECDSA, RSA or Ed25519")
    return key


def load_certificate(pem: str) -> x509.Certificate:
    """A Notation signer: one PEM certificate (a root or intermediate CA, or the signing certificate)."""
    text = pem.strip()
    if "PRIVATE KEY" in text:
        raise InvalidSigner("this is a private key: give the CA certificate, never a private key")
    if "BEGIN PUBLIC KEY" in text:
        raise InvalidSigner("a notation signer is a PEM certificate (-----BEGIN CERTIFICATE-----), not a public key")
    try:
        certs = x509.load_pem_x509_certificates(text.encode())
    except ValueError as e:
        raise InvalidSigner(f"not a PEM certificate: {e}") from None
    if len(certs) != 1:
        raise InvalidSigner(f"give one certificate per signer; this PEM holds {len(certs)}")
    return certs[0]


def check_signer(kind: str, pem: str) -> None:
    if kind == "cosign":
        load_public_key(pem)
    elif kind == "notation":
        load_certificate(pem)
    else:
        raise InvalidSigner(f"unknown signer kind {kind!r}: use one of {', '.join(SIGNER_KINDS)}")


# --- primitives -----------------------------------------------------------------------------


def _b64(value: str) -> bytes:
    """Standard or URL-safe base64, padded or not."""
    s = value.strip()
    s += "=" * (-len(s) % 4)
    try:
        if "-" in s or "_" in s:
            return base64.urlsafe_b64decode(s)
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


def _verify_with_key(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """Verify a signature as cosign makes them: ECDSA (ASN.1 DER) with the curve's hash
    (SHA-256 tried first, as cosign's default), RSA PKCS#1 v1.5 or PSS with SHA-256, Ed25519."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            algorithms: list[hashes.HashAlgorithm] = [hashes.SHA256()]
            if key.curve.key_size > 256:
                algorithms.append(hashes.SHA384() if key.curve.key_size <= 384 else hashes.SHA512())
            for algorithm in algorithms:
                try:
                    key.verify(signature, data, ec.ECDSA(algorithm))
                    return True
                except InvalidSignature:
                    continue
            return False
        for pad in (
            padding.PKCS1v15(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
        ):
            try:
                key.verify(signature, data, pad, hashes.SHA256())
                return True
            except InvalidSignature:
                continue
        return False
    except (InvalidSignature, ValueError):
        return False


def _cosign_keys(signers: Iterable[Signer]) -> list[tuple[str, PublicKey]]:
    out = []
    for s in signers:
        if s.kind == "cosign":
            try:
                out.append((s.name, load_public_key(s.pem)))
            except InvalidSigner:
                continue  # validated when added; never let one bad row hide the others
    return out


def _signed_by(keys: list[tuple[str, PublicKey]], signature: bytes, data: bytes) -> str | None:
    for name, key in keys:
        if _verify_with_key(key, signature, data):
            return name
    return None


def _get_ci(mapping: Any, key: str) -> Any:
    """A JSON object member, with the key compared case-insensitively (cosign reads its payload
    with Go's encoding/json, which matches keys that way: the spec shows Docker-manifest-digest)."""
    if not isinstance(mapping, dict):
        return None
    if key in mapping:
        return mapping[key]
    lowered = key.lower()
    for k, v in mapping.items():
        if isinstance(k, str) and k.lower() == lowered:
            return v
    return None


# --- cosign ---------------------------------------------------------------------------------


def verify_cosign(payload: bytes, signature_b64: str | None, digest: str, signers: Iterable[Signer]) -> Verdict:
    """A cosign simple-signing signature of the manifest ``digest``."""
    if not signature_b64:
        return _no(f"the payload layer has no {COSIGN_SIGNATURE_ANNOTATION} annotation")
    try:
        doc = json.loads(payload)
    except ValueError:
        return _no("the signed payload is not JSON")
    critical = _get_ci(doc, "critical")
    signed_type = _get_ci(critical, "type")
    named = _get_ci(_get_ci(critical, "image"), "docker-manifest-digest")
    details = {"signedDigest": named} if isinstance(named, str) else {}
    if signed_type != COSIGN_SIGNATURE_TYPE:
        return _no(f"the payload's critical.type is {signed_type!r}, not {COSIGN_SIGNATURE_TYPE!r}", details)
    if named != digest:
        return _no(f"the payload signs {named}, not this manifest ({digest})", details)
    try:
        signature = _b64(signature_b64)
    except ValueError:
        return _no("the signature annotation is not base64", details)
    keys = _cosign_keys(signers)
    if not keys:
        return _no("no cosign public key is configured for this repository", details)
    name = _signed_by(keys, signature, payload)
    if name is None:
        return _no(f"the signature does not verify with any cosign key of this repository ({_names(keys)})", details)
    return Verdict(True, name, None, details)


def _names(keys: Sequence[tuple[str, object]]) -> str:
    return ", ".join(n for n, _ in keys)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a DSSE signature covers."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def verify_dsse(envelope: bytes, digest: str, signers: Iterable[Signer]) -> Verdict:
    """A DSSE-enveloped in-toto statement (cosign attestation) about the manifest ``digest``."""
    try:
        env = json.loads(envelope)
        payload_type = env["payloadType"]
        payload = _b64(env["payload"])
        sigs = env.get("signatures") or []
        if not isinstance(payload_type, str) or not isinstance(sigs, list):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        return _no("not a DSSE envelope (payloadType, payload, signatures)")
    details = {"payloadType": payload_type}
    if payload_type != IN_TOTO:
        return _no(f"the envelope holds {payload_type}, not an in-toto statement", details)
    try:
        statement = json.loads(payload)
    except ValueError:
        return _no("the in-toto statement is not JSON", details)
    if not isinstance(statement, dict):
        return _no("the in-toto statement is not a JSON object", details)
    for key, name in (("_type", "statementType"), ("predicateType", "predicateType")):
        if isinstance(statement.get(key), str):
            details[name] = statement[key]
    algorithm, _, hex_digest = digest.partition(":")
    raw_subjects = statement.get("subject")
    subjects: list[Any] = raw_subjects if isinstance(raw_subjects, list) else []
    if not any(isinstance(s, dict) and (s.get("digest") or {}).get(algorithm) == hex_digest for s in subjects):
        return _no(f"no subject of the statement is this manifest ({digest})", details)
    keys = _cosign_keys(signers)
    if not keys:
        return _no("no cosign public key is configured for this repository", details)
    signed = pae(payload_type, payload)
    for entry in sigs:
        try:
            signature = _b64(entry["sig"])
        except (ValueError, KeyError, TypeError):
            continue
        signer = _signed_by(keys, signature, signed)
        if signer is not None:
            return Verdict(True, signer, None, details)
    return _no(f"no signature of the envelope verifies with a cosign key of this repository ({_names(keys)})", details)


# --- Notation (JWS) -------------------------------------------------------------------------

# alg → (hash, key check); the Notary Project's subset of JWS algorithms.
_JWS_ALGS: dict[str, tuple[type[hashes.HashAlgorithm], str, int]] = {
    "ES256": (hashes.SHA256, "ec", 256),
    "ES384": (hashes.SHA384, "ec", 384),
    "ES512": (hashes.SHA512, "ec", 521),
    "PS256": (hashes.SHA256, "rsa", 0),
    "PS384": (hashes.SHA384, "rsa", 0),
    "PS512": (hashes.SHA512, "rsa", 0),
}
_KNOWN_CRITICAL = {
    "io.cncf.notary.signingScheme",
    "io.cncf.notary.authenticSigningTime",
    "io.cncf.notary.expiry",
}
_SIGNING_SCHEMES = {
    "notary.x509": "io.cncf.notary.signingTime",
    "notary.x509.signingAuthority": "io.cncf.notary.authenticSigningTime",
}


def _time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def _jws_check(alg: str, key: Any, signature: bytes, data: bytes) -> bool:
    hash_type, family, curve_bits = _JWS_ALGS[alg]
    try:
        if family == "ec":
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.key_size != curve_bits:
                return False
            size = (curve_bits + 7) // 8
            if len(signature) != 2 * size:
                return False
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hash_type()))
            return True
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        key.verify(
            signature,
            data,
            padding.PSS(mgf=padding.MGF1(hash_type()), salt_length=padding.PSS.DIGEST_LENGTH),
            hash_type(),
        )
        return True
    except (InvalidSignature, ValueError):
        return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False


def verify_notation_jws(
    envelope: bytes, digest: str, signers: Iterable[Signer], now: datetime.datetime | None = None
) -> Verdict:
    """A Notary Project JWS signature of the manifest ``digest``."""
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        env = json.loads(envelope)
        protected_b64, payload_b64, signature_b64 = env["protected"], env["payload"], env["signature"]
        header = env.get("header") or {}
        protected = json.loads(_b64(protected_b64))
        payload = json.loads(_b64(payload_b64))
        signature = _b64(signature_b64)
        if not isinstance(protected, dict) or not isinstance(header, dict):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        return _no("not a flattened JWS JSON envelope (protected, payload, signature)")
    alg = protected.get("alg")
    scheme = protected.get("io.cncf.notary.signingScheme")
    details = {k: str(v) for k, v in (("alg", alg), ("signingScheme", scheme)) if v}
    if alg not in _JWS_ALGS:
        return _no(f"unsupported alg {alg!r} (Notary Project JWS allows {', '.join(_JWS_ALGS)})", details)
    if protected.get("cty") != NOTATION_PAYLOAD:
        return _no(f"the content type (cty) is {protected.get('cty')!r}, not {NOTATION_PAYLOAD}", details)
    critical = protected.get("crit")
    if not isinstance(critical, list) or "io.cncf.notary.signingScheme" not in critical:
        return _no("the crit header must list io.cncf.notary.signingScheme", details)
    unknown = [c for c in critical if c not in _KNOWN_CRITICAL]
    if unknown:
        return _no(f"critical headers Dockyard cannot process: {', '.join(map(str, unknown))}", details)
    if scheme not in _SIGNING_SCHEMES:
        return _no(f"unsupported signing scheme {scheme!r}", details)
    signing_time = _time(protected.get(_SIGNING_SCHEMES[scheme]))
    if signing_time is None:
        return _no(f"{_SIGNING_SCHEMES[scheme]} is missing or not an RFC 3339 time", details)
    details["signingTime"] = signing_time.isoformat()
    target = payload.get("targetArtifact") if isinstance(payload, dict) else None
    named = target.get("digest") if isinstance(target, dict) else None
    if isinstance(named, str):
        details["signedDigest"] = named
    if named != digest:
        return _no(f"the payload signs {named}, not this manifest ({digest})", details)
    if "io.cncf.notary.expiry" in protected:
        expiry = _time(protected["io.cncf.notary.expiry"])
        if expiry is None:
            return _no("io.cncf.notary.expiry is not an RFC 3339 time", details)
        if expiry <= now:
            return _no(f"the signature expired at {expiry.isoformat()}", details)
    chain_b64 = header.get("x5c")
    if not isinstance(chain_b64, list) or not chain_b64:
        return _no("the unprotected header has no x5c certificate chain", details)
    try:
        chain = [x509.load_der_x509_certificate(_b64(c)) for c in chain_b64]
    except (ValueError, TypeError):
        return _no("the x5c chain holds something that is not a DER certificate", details)
    signing_input = f"{protected_b64}.{payload_b64}".encode("ascii", "replace")
    if not _jws_check(alg, chain[0].public_key(), signature, signing_input):
        return _no(f"the JWS signature does not verify with its signing certificate as {alg}", details)
    for i, cert in enumerate(chain):
        if not cert.not_valid_before_utc <= signing_time <= cert.not_valid_after_utc:
            return _no(
                f"certificate {i} of the chain ({cert.subject.rfc4514_string()}) was not valid at the "
                f"signing time {signing_time.isoformat()}",
                details,
            )
        if i + 1 < len(chain) and not _issued_by(cert, chain[i + 1]):
            return _no(f"certificate {i} of the chain is not issued by certificate {i + 1}", details)
    trusted: list[tuple[str, x509.Certificate]] = []
    for s in signers:
        if s.kind == "notation":
            try:
                trusted.append((s.name, load_certificate(s.pem)))
            except InvalidSigner:
                continue
    if not trusted:
        return _no("no notation certificate is configured for this repository", details)
    for name, anchor in trusted:
        if any(anchor == cert for cert in chain) or _issued_by(chain[-1], anchor):
            if not anchor.not_valid_before_utc <= signing_time <= anchor.not_valid_after_utc:
                return _no(f"the configured certificate {name} was not valid at the signing time", details)
            return Verdict(True, name, None, details)
    return _no(
        f"the certificate chain does not lead to a notation certificate of this repository ({_names(trusted)})",
        details,
    )


# --- reading them from the registry ---------------------------------------------------------


class BlobReader(Protocol):
    async def read(self, repository: str, digest: str, limit: int) -> bytes | None:
        """The blob's bytes if the repository links it and it is at most ``limit`` bytes."""
        ...


class StorageBlobs:
    """Blobs of a repository straight from storage, checked against their digest."""

    def __init__(self, db: Database, storage: StorageDriver) -> None:
        self.db = db
        self.storage = storage

    async def read(self, repository: str, digest: str, limit: int) -> bytes | None:
        algorithm, _, hex_digest = digest.partition(":")
        if algorithm != "sha256" or len(hex_digest) != 64:
            return None
        size = await queries.blob_size_in_repository(self.db, repository, digest)
        if size is None or size > limit:
            return None
        chunks = []
        try:
            async for chunk in self.storage.read(blob_path(algorithm, hex_digest), 0, None):
                chunks.append(chunk)
        except PathNotFound:
            return None
        data = b"".join(chunks)
        return data if hashlib.sha256(data).hexdigest() == hex_digest else None


def legacy_tags(digest: str) -> list[str]:
    """cosign's tag-scheme names for the signatures and attestations of ``digest``."""
    base = digest.replace(":", "-")
    return [f"{base}.sig", f"{base}.att"]


class ArtifactSignatures:
    """Finds and verifies the cosign and Notation signatures (and attestations) of a manifest."""

    def __init__(self, db: Database, blobs: BlobReader) -> None:
        self.db = db
        self.blobs = blobs

    async def find(self, repository: str, digest: str, now: datetime.datetime | None = None) -> list[Found]:
        repo_id = await self.db.read(queries.repository_id, repository)
        if repo_id is None:
            return []
        candidates: dict[str, str] = {}
        for ref in await self.db.read(queries.referrers, repo_id, digest, None):
            candidates.setdefault(ref.digest, "referrers")
        for tag in legacy_tags(digest):
            rec = await queries.manifest_by_tag(self.db, repository, tag)
            if rec is not None:
                candidates.setdefault(rec.digest, "tag")
        if not candidates:
            return []
        signers = await self.db.read(signers_q.signers_of, repository)
        out: list[Found] = []
        for artifact, how in candidates.items():
            rec = await queries.manifest_by_digest(self.db, repository, artifact)
            if rec is None:
                continue
            try:
                doc = json.loads(rec.content)
            except ValueError:
                continue
            if isinstance(doc, dict):
                out += await self._inspect(repository, digest, artifact, how, doc, signers, now)
        return out

    async def _inspect(
        self,
        repository: str,
        digest: str,
        artifact: str,
        how: str,
        doc: dict[str, Any],
        signers: list[Signer],
        now: datetime.datetime | None,
    ) -> list[Found]:
        raw_config = doc.get("config")
        config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
        artifact_type = doc.get("artifactType") or config.get("mediaType")
        out = []
        for layer in doc.get("layers") or []:
            if not isinstance(layer, dict) or not isinstance(layer.get("digest"), str):
                continue
            media_type = str(layer.get("mediaType", ""))
            layer_digest = layer["digest"]
            raw_annotations = layer.get("annotations")
            annotations: dict[str, Any] = raw_annotations if isinstance(raw_annotations, dict) else {}
            if media_type == COSIGN_SIMPLESIGNING:
                kind = "cosign"
            elif media_type == DSSE_ENVELOPE:
                kind = "attestation"
            elif media_type.startswith(SIGSTORE_BUNDLE_PREFIX):
                verdict = _no("sigstore bundles are listed but not verified by Dockyard")
                out.append(Found("cosign", artifact, layer_digest, media_type, how, verdict))
                continue
            elif media_type in (JWS, COSE) and artifact_type == NOTATION_SIGNATURE:
                kind = "notation"
                if media_type == COSE:
                    verdict = _no("COSE signature envelopes are listed but not verified by Dockyard")
                    out.append(Found(kind, artifact, layer_digest, media_type, how, verdict))
                    continue
            else:
                continue  # not a signature (an SBOM, the empty config...)
            data = await self.blobs.read(repository, layer_digest, MAX_ENVELOPE_BYTES)
            if data is None:
                verdict = _no(f"the layer {layer_digest} is missing from the repository or too large")
            elif kind == "cosign":
                signature = annotations.get(COSIGN_SIGNATURE_ANNOTATION)
                verdict = verify_cosign(data, signature if isinstance(signature, str) else None, digest, signers)
            elif kind == "attestation":
                verdict = verify_dsse(data, digest, signers)
            else:
                verdict = verify_notation_jws(data, digest, signers, now)
            out.append(Found(kind, artifact, layer_digest, media_type, how, verdict))
        return out
