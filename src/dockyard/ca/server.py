"""The server certificate: issued by the built-in CA for the configured names, or brought by the operator.

Reissued at start when the wanted SANs differ from the certificate's, when it has fewer than
30 days left, or when it was not issued by the current CA (after ``dockyard ca rotate``).
Its key is encrypted at rest like the CA's; the password handed to the TLS library is the
base64 text of the key-encryption key (OpenSSL takes a text password, the KEK is raw bytes).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..auth.keys import write_private
from ..config import Settings
from .authority import CertificateAuthority, ca_dir, canonical_sans, encrypted_pem, kek_for, sans_of

RENEW_BEFORE = datetime.timedelta(days=30)
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class ServerCredentials:
    """What uvicorn needs: certificate and key files, and the key's password (None if plain)."""

    cert_file: Path
    key_file: Path
    password: str | None


def key_password(kek: bytes) -> str:
    return base64.b64encode(kek).decode()


def distinct_names(names: list[str], extra_host: str = "") -> list[str]:
    """Names deduplicated (IP addresses by value, DNS names ignoring case), with ``extra_host``
    appended when it names one host (not a wildcard)."""
    host = extra_host.strip("[]")
    candidates = [*names, host] if host and host not in WILDCARD_HOSTS else list(names)
    seen: set[str] = set()
    out: list[str] = []
    for name in candidates:
        try:
            key = str(ipaddress.ip_address(name))
        except ValueError:
            key = name.lower()
        if key not in seen:
            seen.add(key)
            out.append(name)
    return out


def wanted_sans(settings: Settings) -> list[str]:
    """``tls.hostnames`` plus the listen host when it names one host (not a wildcard), deduplicated."""
    return distinct_names(list(settings.tls.hostnames), settings.server.host)


def needs_reissue(cert: x509.Certificate, ca: CertificateAuthority, sans: list[str], now: datetime.datetime) -> str:
    """Why the certificate must be reissued, or "" if it can stay."""
    if canonical_sans(sans_of(cert)) != canonical_sans(sans):
        return "its names changed"
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return "it expires within 30 days"
    if not ca.signed(cert):
        return "the CA changed"
    return ""


def issue_server_certificate(ca: CertificateAuthority, settings: Settings, kek: bytes) -> x509.Certificate:
    sans = wanted_sans(settings)
    issued = ca.issue(sans[0] if sans else "dockyard", sans)
    write_private(ca.directory / "server.key", encrypted_pem(issued.key, key_password(kek).encode()))
    write_private(ca.directory / "server.crt", issued.cert.public_bytes(serialization.Encoding.PEM))
    return issued.cert


def ensure_server_certificate(settings: Settings, ca: CertificateAuthority | None = None) -> ServerCredentials:
    """The operator's files if configured; else the built-in CA's, (re)issued when needed."""
    if settings.tls.cert_file:
        return ServerCredentials(Path(settings.tls.cert_file), Path(settings.tls.key_file), None)
    kek = kek_for(settings.data_dir)
    ca = ca or CertificateAuthority.load_or_create(settings.data_dir, kek)
    cert_path, key_path = ca.directory / "server.crt", ca.directory / "server.key"
    current = x509.load_pem_x509_certificate(cert_path.read_bytes()) if cert_path.exists() else None
    now = datetime.datetime.now(datetime.UTC)
    if current is None or not key_path.exists() or needs_reissue(current, ca, wanted_sans(settings), now):
        issue_server_certificate(ca, settings, kek)
    return ServerCredentials(cert_path, key_path, key_password(kek))


def served_ca_certificate(settings: Settings) -> bytes | None:
    """What ``GET /ca`` serves: the built-in CA (made on the first HTTPS start), or None when the
    operator brings their own certificate or plain HTTP runs on a data folder without a CA."""
    if settings.tls.cert_file:
        return None
    if settings.tls.enabled:
        return CertificateAuthority.load_or_create(settings.data_dir, kek_for(settings.data_dir)).pem
    path = ca_dir(settings.data_dir) / "ca.crt"
    return path.read_bytes() if path.exists() else None
