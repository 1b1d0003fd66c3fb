"""The cosign, DSSE and Notation verifiers, on signatures built here with ``cryptography`` the way
the real tools build them (sigstore/cosign SIGNATURE_SPEC.md, Notary Project JWS envelope)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from dockyard.metadata.signers import Signer
from dockyard.trust import artifacts

UTC = datetime.UTC
NOW = datetime.datetime.now(UTC).replace(microsecond=0)
DIGEST = "sha256:" + hashlib.sha256(b"the image manifest").hexdigest()
OTHER = "sha256:" + hashlib.sha256(b"another manifest").hexdigest()

# --- builders (also used by tests/api/test_signatures.py) ------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_pem(key: Any) -> str:
    pem: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def cosign_payload(digest: str) -> bytes:
    doc = {
        "critical": {
            "identity": {"docker-reference": "127.0.0.1/test/app"},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def raw_sign(key: Any, data: bytes) -> bytes:
    """As cosign signs: ECDSA P-256/SHA-256 (DER), RSA PKCS#1 v1.5/SHA-256, or Ed25519."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        sig: bytes = key.sign(data, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        sig = key.sign(data)
    return sig


def cosign_sign(key: Any, payload: bytes) -> str:
    return base64.b64encode(raw_sign(key, payload)).decode()


def in_toto(digest: str, predicate_type: str = "https://slsa.dev/provenance/v1") -> bytes:
    algorithm, _, hex_digest = digest.partition(":")
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "127.0.0.1/test/app", "digest": {algorithm: hex_digest}}],
        "predicateType": predicate_type,
        "predicate": {"builder": {"id": "https://ci.example"}},
    }
    return json.dumps(statement).encode()


def dsse_envelope(key: Any, statement: bytes) -> bytes:
    sig = raw_sign(key, artifacts.pae(artifacts.IN_TOTO, statement))
    env = {
        "payloadType": artifacts.IN_TOTO,
        "payload": base64.b64encode(statement).decode(),
        "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}],
    }
    return json.dumps(env).encode()


def certificate(
    subject: str,
    key: Any,
    issuer: tuple[x509.Certificate, Any] | None = None,
    *,
    ca: bool,
    not_before: datetime.datetime | None = None,
    days: int = 365,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    start = not_before or NOW - datetime.timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CODE_SIGNING]), False)
    return builder.sign(signing_key, hashes.SHA256())


def ca_chain() -> tuple[Any, list[x509.Certificate]]:
    """A root CA and a signing leaf under it: (leaf key, [leaf, root])."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = certificate("Test Root", root_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate("Signer", leaf_key, (root, root_key), ca=False)
    return leaf_key, [leaf, root]


def notation_jws(
    key: Any,
    chain: list[x509.Certificate],
    digest: str,
    *,
    alg: str = "ES256",
    signing_time: datetime.datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    protected = {
        "alg": alg,
        "cty": "application/vnd.cncf.notary.payload.v1+json",
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": (signing_time or NOW).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "crit": ["io.cncf.notary.signingScheme"],
        **(extra or {}),
    }
    payload = {
        "targetArtifact": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 100}
    }
    p64, b64 = b64url(json.dumps(protected).encode()), b64url(json.dumps(payload).encode())
    signing_input = f"{p64}.{b64}".encode()
    if alg.startswith("ES"):
        h = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}[alg]
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(h)))
        size = (key.curve.key_size + 7) // 8
        sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        h = {"PS256": hashes.SHA256(), "PS384": hashes.SHA384(), "PS512": hashes.SHA512()}[alg]
        sig = key.sign(signing_input, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    env = {
        "payload": b64,
        "protected": p64,
        "header": {"x5c": x5c, "io.cncf.notary.signingAgent": "dockyard-tests"},
        "signature": b64url(sig),
    }
    return json.dumps(env).encode()


def signer(name: str, kind: str, pem: str) -> Signer:
    return Signer(name, kind, pem, 0.0)


# --- cosign ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ed25519.Ed25519PrivateKey.generate,
    ],
    ids=["ecdsa-p256", "rsa", "ed25519"],
)
def test_cosign_signature_verifies_with_the_configured_key(make_key: Any) -> None:
    key = make_key()
    payload = cosign_payload(DIGEST)
    signers = [
        signer("other", "cosign", public_pem(ec.generate_private_key(ec.SECP256R1()))),
        signer("ci", "cosign", public_pem(key)),
    ]
    verdict = artifacts.verify_cosign(payload, cosign_sign(key, payload), DIGEST, signers)
    assert verdict.verified and verdict.signer == "ci" and verdict.reason is None


def test_cosign_payload_with_capitalised_digest_key_verifies() -> None:
    # The spec's example writes "Docker-manifest-digest"; cosign reads keys case-insensitively.
    key = ec.generate_private_key(ec.SECP256R1())
    payload = cosign_payload(DIGEST).replace(b"docker-manifest-digest", b"Docker-manifest-digest")
    verdict = artifacts.verify_cosign(
        payload, cosign_sign(key, payload), DIGEST, [signer("k", "cosign", public_pem(key))]
    )
    assert verdict.verified


def test_cosign_signature_by_another_key_is_unverified() -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    payload = cosign_payload(DIGEST)
    verdict = artifacts.verify_cosign(
        payload, cosign_sign(other, payload), DIGEST, [signer("ci", "cosign", public_pem(key))]
    )
    assert not verdict.verified and verdict.signer is None
    assert verdict.reason is not None and "does not verify" in verdict.reason and "ci" in verdict.reason


def test_cosign_tampered_payload_is_unverified() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    payload = cosign_payload(DIGEST)
    signature = cosign_sign(key, payload)
    tampered = payload.replace(b"127.0.0.1/test/app", b"127.0.0.1/test/evil")
    verdict = artifacts.verify_cosign(tampered, signature, DIGEST, [signer("ci", "cosign", public_pem(key))])
    assert not verdict.verified and "does not verify" in (verdict.reason or "")


def test_cosign_payload_naming_another_digest_is_unverified() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    payload = cosign_payload(OTHER)
    verdict = artifacts.verify_cosign(
        payload, cosign_sign(key, payload), DIGEST, [signer("ci", "cosign", public_pem(key))]
    )
    assert not verdict.verified and OTHER in (verdict.reason or "")
    assert verdict.details["signedDigest"] == OTHER


def test_cosign_without_signature_or_keys_or_with_bad_payload() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    payload = cosign_payload(DIGEST)
    keys = [signer("ci", "cosign", public_pem(key))]
    assert "annotation" in (artifacts.verify_cosign(payload, None, DIGEST, keys).reason or "")
    assert "no cosign public key" in (
        artifacts.verify_cosign(payload, cosign_sign(key, payload), DIGEST, []).reason or ""
    )
    assert "not JSON" in (artifacts.verify_cosign(b"{", "AAAA", DIGEST, keys).reason or "")
    wrong_type = payload.replace(b"cosign container image signature", b"something else")
    assert "critical.type" in (
        artifacts.verify_cosign(wrong_type, cosign_sign(key, wrong_type), DIGEST, keys).reason or ""
    )
    # a notation certificate is never a cosign key
    _, chain = ca_chain()
    assert not artifacts.verify_cosign(
        payload, cosign_sign(key, payload), DIGEST, [signer("n", "notation", cert_pem(chain[1]))]
    ).verified


# --- DSSE attestations ------------------------------------------------------------------------


def test_dsse_attestation_verifies_and_reports_the_predicate() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    verdict = artifacts.verify_dsse(
        dsse_envelope(key, in_toto(DIGEST)), DIGEST, [signer("ci", "cosign", public_pem(key))]
    )
    assert verdict.verified and verdict.signer == "ci"
    assert verdict.details["predicateType"] == "https://slsa.dev/provenance/v1"
    assert verdict.details["statementType"] == "https://in-toto.io/Statement/v1"


def test_dsse_wrong_key_other_subject_and_tampering_are_unverified() -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    keys = [signer("ci", "cosign", public_pem(key))]
    assert "no signature" in (artifacts.verify_dsse(dsse_envelope(other, in_toto(DIGEST)), DIGEST, keys).reason or "")
    assert "no subject" in (artifacts.verify_dsse(dsse_envelope(key, in_toto(OTHER)), DIGEST, keys).reason or "")
    env = json.loads(dsse_envelope(key, in_toto(DIGEST)))
    statement = json.loads(base64.b64decode(env["payload"]))
    statement["predicate"] = {"builder": {"id": "https://evil.example"}}
    env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    assert not artifacts.verify_dsse(json.dumps(env).encode(), DIGEST, keys).verified
    assert "not a DSSE" in (artifacts.verify_dsse(b"[]", DIGEST, keys).reason or "")


# --- Notation ---------------------------------------------------------------------------------


def test_notation_jws_verifies_against_the_root_certificate() -> None:
    leaf_key, chain = ca_chain()
    verdict = artifacts.verify_notation_jws(
        notation_jws(leaf_key, chain, DIGEST), DIGEST, [signer("acme-root", "notation", cert_pem(chain[1]))]
    )
    assert verdict.verified and verdict.signer == "acme-root", verdict.reason
    assert verdict.details["signingScheme"] == "notary.x509"


def test_notation_jws_with_rsa_pss_and_a_pinned_leaf() -> None:
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = certificate("RSA Root", root_key, ca=True)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = certificate("RSA Signer", leaf_key, (root, root_key), ca=False)
    envelope = notation_jws(leaf_key, [leaf, root], DIGEST, alg="PS256")
    assert artifacts.verify_notation_jws(envelope, DIGEST, [signer("root", "notation", cert_pem(root))]).verified
    assert artifacts.verify_notation_jws(envelope, DIGEST, [signer("leaf", "notation", cert_pem(leaf))]).verified
    # the chain may stop below the configured root: the last certificate is issued by it
    only_leaf = notation_jws(leaf_key, [leaf], DIGEST, alg="PS384")
    assert artifacts.verify_notation_jws(only_leaf, DIGEST, [signer("root", "notation", cert_pem(root))]).verified


def test_notation_chain_to_another_root_is_unverified() -> None:
    leaf_key, chain = ca_chain()
    _, foreign = ca_chain()
    verdict = artifacts.verify_notation_jws(
        notation_jws(leaf_key, chain, DIGEST), DIGEST, [signer("foreign", "notation", cert_pem(foreign[1]))]
    )
    assert not verdict.verified and "does not lead" in (verdict.reason or "")
    none = artifacts.verify_notation_jws(notation_jws(leaf_key, chain, DIGEST), DIGEST, [])
    assert "no notation certificate" in (none.reason or "")


def test_notation_tampered_payload_and_other_digest_are_unverified() -> None:
    leaf_key, chain = ca_chain()
    trusted = [signer("root", "notation", cert_pem(chain[1]))]
    env = json.loads(notation_jws(leaf_key, chain, DIGEST))
    forged = {"targetArtifact": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": OTHER, "size": 1}}
    env["payload"] = b64url(json.dumps(forged).encode())
    tampered = artifacts.verify_notation_jws(json.dumps(env).encode(), OTHER, trusted)
    assert not tampered.verified and "does not verify" in (tampered.reason or "")
    other = artifacts.verify_notation_jws(notation_jws(leaf_key, chain, OTHER), DIGEST, trusted)
    assert not other.verified and OTHER in (other.reason or "")


def test_notation_certificate_not_valid_at_signing_time() -> None:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = certificate("Root", root_key, ca=True, not_before=NOW - datetime.timedelta(days=1000), days=2000)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate("Old", leaf_key, (root, root_key), ca=False, not_before=NOW - datetime.timedelta(days=400))
    trusted = [signer("root", "notation", cert_pem(root))]
    expired = artifacts.verify_notation_jws(notation_jws(leaf_key, [leaf, root], DIGEST), DIGEST, trusted)
    assert not expired.verified and "not valid at the signing time" in (expired.reason or "")
    # signed while the certificate was valid: still verified (validity is judged at signing time)
    back_then = NOW - datetime.timedelta(days=100)
    assert artifacts.verify_notation_jws(
        notation_jws(leaf_key, [leaf, root], DIGEST, signing_time=back_then), DIGEST, trusted
    ).verified


def test_notation_header_checks() -> None:
    leaf_key, chain = ca_chain()
    trusted = [signer("root", "notation", cert_pem(chain[1]))]

    def reason(**kw: Any) -> str:
        verdict = artifacts.verify_notation_jws(notation_jws(leaf_key, chain, DIGEST, **kw), DIGEST, trusted)
        assert not verdict.verified
        return verdict.reason or ""

    past = (NOW - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "expired" in reason(
        extra={"io.cncf.notary.expiry": past, "crit": ["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"]}
    )
    assert "cannot process" in reason(
        extra={"crit": ["io.cncf.notary.signingScheme", "io.cncf.notary.verificationPlugin"]}
    )
    assert "crit" in reason(extra={"crit": []})
    assert "cty" in reason(extra={"cty": "application/json"})
    assert "unsupported alg" in reason(extra={"alg": "HS256"})
    # alg must match the signing key: an ES384 claim over a P-256 key does not verify
    assert "does not verify" in reason(extra={"alg": "ES384"})
    assert "not a flattened JWS" in (artifacts.verify_notation_jws(b"{}", DIGEST, trusted).reason or "")


# --- signer material ---------------------------------------------------------------------------


def test_signer_validation_messages() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    _, chain = ca_chain()
    artifacts.check_signer("cosign", public_pem(key))
    artifacts.check_signer("notation", cert_pem(chain[1]))
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cases = [
        ("cosign", cert_pem(chain[1]), "not a certificate"),
        ("cosign", private, "private key"),
        ("cosign", "hello", "not a PEM public key"),
        ("notation", public_pem(key), "not a public key"),
        ("notation", cert_pem(chain[0]) + cert_pem(chain[1]), "one certificate"),
        ("notation", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a PEM certificate"),
        ("gpg", "x", "unknown signer kind"),
    ]
    for kind, pem, message in cases:
        with pytest.raises(artifacts.InvalidSigner, match=message):
            artifacts.check_signer(kind, pem)


def test_legacy_tags() -> None:
    hex_digest = DIGEST.partition(":")[2]
    assert artifacts.legacy_tags(DIGEST) == [f"sha256-{hex_digest}.sig", f"sha256-{hex_digest}.att"]
