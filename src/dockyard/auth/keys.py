"""Key material kept in ``<data_dir>/config``, private keys encrypted at rest.

The key-encryption key (``master.key``, 32 random bytes, mode 0600) is made on first start,
or given as ``DOCKYARD_MASTER_KEY`` (base64) so it can live outside the data folder. Private
keys are stored as PKCS#8 PEM encrypted with it (cryptography's BestAvailableEncryption).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def master_key(config_dir: Path, environ_value: str | None = None) -> bytes:
    if environ_value:
        key = base64.b64decode(environ_value)
        if len(key) < 32:
            raise ValueError("DOCKYARD_MASTER_KEY must be at least 32 bytes, base64-encoded")
        return key
    path = config_dir / "master.key"
    if not path.exists():
        write_private(path, base64.b64encode(secrets.token_bytes(32)))
    return base64.b64decode(path.read_bytes())


def libtrust_kid(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key id docker/distribution 2.8 expects: base32 of the SPKI SHA-256, 4-char groups."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


class SigningKey:
    """The ES256 key that signs registry tokens, with a self-signed certificate for x5c."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.public_key = key.public_key()
        self.cert = cert
        self.kid = libtrust_kid(self.public_key)
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]

    @classmethod
    def load_or_create(cls, config_dir: Path, kek: bytes, issuer: str) -> SigningKey:
        key_path, cert_path = config_dir / "token-signing.key", config_dir / "token-signing.crt"
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=kek)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path} is not an EC key")
            return cls(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{issuer} token signing")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(kek),
        )
        write_private(key_path, pem)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(key, cert)
