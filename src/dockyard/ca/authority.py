"""The root CA: an EC P-256 key and a self-signed certificate valid 10 years.

Kept in ``<data_dir>/ca``::

    ca/
      ca.crt              the root certificate (PEM), what clients trust; served at GET /ca
      ca.key              its private key, PKCS#8 PEM encrypted with the key-encryption key
      previous/           the CA that ``dockyard ca rotate`` replaced (ca-<time>.crt/.key)
      server.crt          the server certificate (see dockyard.ca.server)
      server.key          its private key, encrypted (password: see server.key_password)
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..auth.keys import master_key, write_private

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
BACKDATE = datetime.timedelta(minutes=5)  # tolerate clients whose clocks run a little behind


def ca_dir(data_dir: Path) -> Path:
    return data_dir / "ca"


def kek_for(data_dir: Path) -> bytes:
    """The key-encryption key shared with the token-signing key (``<data_dir>/config/master.key``)."""
    return master_key(data_dir / "config", os.environ.get("DOCKYARD_MASTER_KEY"))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def general_names(sans: list[str]) -> list[x509.GeneralName]:
    """Each entry becomes an IP address SAN if it parses as one, else a DNS name."""
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san.strip("[]"))))
        except ValueError:
            names.append(x509.DNSName(san.lower()))
    return names


def sans_of(cert: x509.Certificate) -> list[str]:
    """The certificate's DNS names and IP addresses as strings, in certificate order."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out: list[str] = [str(n.value) for n in ext if isinstance(n, (x509.DNSName, x509.IPAddress))]
    return out


def canonical_sans(sans: list[str]) -> set[str]:
    """SANs compared as the certificate would hold them (case-folded names, normalised addresses)."""
    out = set()
    for n in general_names(sans):
        out.add(str(n.value))
    return out


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def encrypted_pem(key: ec.EllipticCurvePrivateKey, password: bytes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(password)
    )


def plain_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_ec_key(path: Path, password: bytes | None) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=password)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


@dataclass(frozen=True)
class IssuedCertificate:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


class CertificateAuthority:
    """Issues leaf certificates (the server's, and any an operator asks for) under one root."""

    def __init__(self, directory: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.directory = directory
        self.key = key
        self.cert = cert

    @property
    def cert_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def load_or_create(cls, data_dir: Path, kek: bytes, name: str = "Dockyard") -> CertificateAuthority:
        directory = ca_dir(data_dir)
        key_path, cert_path = directory / "ca.key", directory / "ca.crt"
        if key_path.exists() and cert_path.exists():
            return cls(directory, load_ec_key(key_path, kek), x509.load_pem_x509_certificate(cert_path.read_bytes()))
        return cls.create(data_dir, kek, name)

    @classmethod
    def create(cls, data_dir: Path, kek: bytes, name: str = "Dockyard") -> CertificateAuthority:
        """Make a new root, moving any existing one to ``previous/``."""
        directory = ca_dir(data_dir)
        key_path, cert_path = directory / "ca.key", directory / "ca.crt"
        if key_path.exists() or cert_path.exists():
            stamp = _now().strftime("%Y%m%dT%H%M%SZ")
            previous = directory / "previous"
            previous.mkdir(parents=True, exist_ok=True, mode=0o700)
            for path in (key_path, cert_path):
                if path.exists():
                    os.replace(path, previous / f"ca-{stamp}{path.suffix}")
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} root CA {_now():%Y-%m-%d}"),
            ]
        )
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_private(key_path, encrypted_pem(key, kek))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(directory, key, cert)

    def issue(
        self, common_name: str, sans: list[str], validity: datetime.timedelta = LEAF_VALIDITY
    ) -> IssuedCertificate:
        """A leaf for TLS servers and clients (serverAuth + clientAuth), with a fresh P-256 key."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        not_after = min(now + validity, self.cert.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(general_names(sans)), critical=False)
        return IssuedCertificate(builder.sign(self.key, hashes.SHA256()), key)

    def signed(self, cert: x509.Certificate) -> bool:
        """Whether ``cert`` was issued by this CA (same issuer name and a valid signature)."""
        if cert.issuer != self.cert.subject:
            return False
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True
