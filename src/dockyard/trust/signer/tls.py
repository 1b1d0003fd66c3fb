"""Certificates for the signer's mutual TLS, issued by the data folder's CA.

The signer presents a server certificate for the address it listens on and accepts only
clients with a certificate from the same CA; the trust server presents its client
certificate. Private keys are encrypted at rest like the server's (password: the KEK).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ...auth.keys import write_private
from ...ca.authority import CertificateAuthority, canonical_sans, encrypted_pem, kek_for, sans_of
from ...ca.server import key_password

RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class Credentials:
    cert_file: Path
    key_file: Path
    password: str
    ca_file: Path


def _ensure(data_dir: Path, folder: Path, name: str, sans: list[str]) -> Credentials:
    kek = kek_for(data_dir)
    ca = CertificateAuthority.load_or_create(data_dir, kek)
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    current = x509.load_pem_x509_certificate(cert_file.read_bytes()) if cert_file.exists() else None
    now = datetime.datetime.now(datetime.UTC)
    if (
        current is None
        or not key_file.exists()
        or not ca.signed(current)
        or current.not_valid_after_utc - now < RENEW_BEFORE
        or canonical_sans(sans_of(current)) != canonical_sans(sans)
    ):
        issued = ca.issue(name, sans)
        write_private(key_file, encrypted_pem(issued.key, key_password(kek).encode()))
        cert_file.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    return Credentials(cert_file, key_file, key_password(kek), ca.cert_path)


def signer_server_credentials(data_dir: Path, host: str) -> Credentials:
    sans = sorted({host, "localhost", "127.0.0.1"})
    return _ensure(data_dir, data_dir / "trust" / "signer" / "tls", "dockyard-signer", sans)


def trust_client_credentials(data_dir: Path) -> Credentials:
    return _ensure(data_dir, data_dir / "trust" / "client", "dockyard-trust-server", [])
