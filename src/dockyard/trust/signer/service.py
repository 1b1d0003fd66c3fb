"""The four operations of a signer (notary-signer's KeyManagement and Signer services)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PublicKeyInfo:
    key_id: str  # the TUF key ID of the public key
    algorithm: str  # "ecdsa"
    public_der: bytes  # DER SubjectPublicKeyInfo
    gun: str
    role: str


class KeyNotFound(LookupError):
    pass


class SignerUnavailable(RuntimeError):
    """The signer cannot be reached or cannot open its keys (e.g. a wrong passphrase)."""


class Signer(Protocol):
    async def create_key(self, gun: str, role: str, algorithm: str = "ecdsa") -> PublicKeyInfo: ...

    async def get_key(self, key_id: str) -> PublicKeyInfo: ...

    async def delete_key(self, key_id: str) -> None: ...

    async def sign(self, key_id: str, content: bytes) -> bytes:
        """Raw R||S ECDSA P-256 signature over SHA-256 of ``content`` (TUF method "ecdsa")."""
        ...

    async def health(self) -> None:
        """Raise SignerUnavailable when signing would fail."""
        ...

    async def close(self) -> None: ...
