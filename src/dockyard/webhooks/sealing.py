"""Subscription secrets at rest: AES-256-GCM under a key derived from the master key
(``dockyard.auth.keys.master_key``), so a copy of the database alone does not reveal them."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_AAD = b"dockyard webhook secret v1"


class SecretBox:
    """``master_key`` is the key or a function returning it, called on first use (so a server
    whose webhooks never need a secret does not create one)."""

    def __init__(self, master_key: bytes | Callable[[], bytes]) -> None:
        self._master = master_key
        self._cached: AESGCM | None = None

    @property
    def _aead(self) -> AESGCM:
        if self._cached is None:
            key = self._master() if callable(self._master) else self._master
            self._cached = AESGCM(hmac.new(key, b"dockyard webhook secrets", hashlib.sha256).digest())
        return self._cached

    def seal(self, secret: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, secret.encode(), _AAD)

    def open(self, sealed: bytes) -> str:
        """The secret; ValueError when it was sealed with another master key or altered."""
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], _AAD).decode()
        except InvalidTag:
            raise ValueError("webhook secret cannot be decrypted (was the master key changed?)") from None
