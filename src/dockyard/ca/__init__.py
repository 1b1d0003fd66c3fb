"""The built-in certificate authority: a root made on first start, the server certificate it
issues (reissued when names change or expiry nears), and leaves issued on request.

Files are laid out in ``authority.py``'s docstring; the HTTPS listener is in ``cli/serve.py``.
"""

from __future__ import annotations

from .authority import CertificateAuthority, IssuedCertificate, fingerprint, kek_for, sans_of
from .server import (
    ServerCredentials,
    ensure_server_certificate,
    issue_server_certificate,
    served_ca_certificate,
    wanted_sans,
)

__all__ = [
    "CertificateAuthority",
    "IssuedCertificate",
    "ServerCredentials",
    "ensure_server_certificate",
    "fingerprint",
    "issue_server_certificate",
    "kek_for",
    "sans_of",
    "served_ca_certificate",
    "wanted_sans",
]
