"""The signer's keys, encrypted at rest in their own SQLite file.

Each private key is sealed with AES-256-GCM (its key ID as associated data, so a sealed key
cannot be swapped for another) under a key-encryption key derived with scrypt from a
passphrase. A check value sealed under the same KEK tells a wrong passphrase apart from
damage. Rotating the passphrase re-seals every key in one transaction.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..tuf import canonical_json
from .service import KeyNotFound, PublicKeyInfo, SignerUnavailable

CHECK = b"dockyard-signer-keystore"
T = TypeVar("T")
SCRYPT_N = 2**15  # ~50 ms on a small machine: paid once per process start and per rotation
# Unsealed keys kept in memory, newest use last. The process holds the KEK anyway, so this
# weakens nothing at rest; it saves a read, a decryption and a key parse per signature.
CACHED_KEYS = 4096


def keystore_path(data_dir: Path) -> Path:
    return data_dir / "trust" / "signer" / "keys.db"


def default_passphrase(master_key: bytes) -> str:
    """With no passphrase configured, one derived from the data folder's master key."""
    return base64.b64encode(hmac.new(master_key, b"dockyard signer passphrase", hashlib.sha256).digest()).decode()


def tuf_key_id(public_der: bytes) -> str:
    doc = {"keytype": "ecdsa", "keyval": {"private": None, "public": base64.b64encode(public_der).decode()}}
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def _derive(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=8, p=1).derive(passphrase.encode())


class WrongPassphrase(SignerUnavailable):
    pass


class KeyStore:
    def __init__(self, path: Path, passphrase: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        new = not path.exists()
        if new:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        self._unsealed: OrderedDict[str, ec.EllipticCurvePrivateKey] = OrderedDict()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS keys (
                key_id TEXT PRIMARY KEY, gun TEXT NOT NULL, role TEXT NOT NULL, algorithm TEXT NOT NULL,
                public BLOB NOT NULL, sealed BLOB NOT NULL, created_at REAL NOT NULL
            );
            """
        )
        self._kek = self._open(passphrase)

    def _meta(self, name: str) -> bytes | None:
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return bytes(row[0]) if row else None

    def _open(self, passphrase: str) -> bytes:
        salt, check = self._meta("salt"), self._meta("check")
        if salt is None or check is None:
            salt = secrets.token_bytes(16)
            kek = _derive(passphrase, salt)
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('salt', ?)", (salt,))
                self._conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('check', ?)", (self._seal(kek, CHECK, b"check"),)
                )
                self._conn.execute("COMMIT")
            return kek
        kek = _derive(passphrase, salt)
        try:
            self._unseal(kek, check, b"check")
        except InvalidTag:
            raise WrongPassphrase(f"the signer passphrase does not open {self.path}") from None
        return kek

    @staticmethod
    def _seal(kek: bytes, data: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + AESGCM(kek).encrypt(nonce, data, aad)

    @staticmethod
    def _unseal(kek: bytes, sealed: bytes, aad: bytes) -> bytes:
        return AESGCM(kek).decrypt(sealed[:12], sealed[12:], aad)

    def close(self) -> None:
        self._conn.close()

    # --- the four operations (blocking; LocalSigner runs them in a thread) --------------------

    def create_key(self, gun: str, role: str, algorithm: str = "ecdsa") -> PublicKeyInfo:
        if algorithm != "ecdsa":
            raise ValueError(f"unsupported key algorithm {algorithm!r} (ecdsa only)")
        private = ec.generate_private_key(ec.SECP256R1())
        public_der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key_id = tuf_key_id(public_der)
        der = private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        sealed = self._seal(self._kek, der, key_id.encode())
        with self._lock:
            self._conn.execute(
                "INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key_id, gun, role, algorithm, public_der, sealed, time.time()),
            )
            self._remember_locked(key_id, private)
        return PublicKeyInfo(key_id, algorithm, public_der, gun, role)

    def get_key(self, key_id: str) -> PublicKeyInfo:
        row = self._conn.execute("SELECT gun, role, algorithm, public FROM keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            raise KeyNotFound(key_id)
        gun, role, algorithm, public = row
        return PublicKeyInfo(key_id, algorithm, bytes(public), gun, role)

    def delete_key(self, key_id: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM keys WHERE key_id = ?", (key_id,))
            self._unsealed.pop(key_id, None)

    def sign(self, key_id: str, content: bytes) -> bytes:
        private = self.cached(key_id)
        if private is None:
            with self._lock:  # read and remember together, so a concurrent delete_key wins
                row = self._conn.execute("SELECT sealed FROM keys WHERE key_id = ?", (key_id,)).fetchone()
                if row is None:
                    raise KeyNotFound(key_id)
                loaded = serialization.load_der_private_key(
                    self._unseal(self._kek, bytes(row[0]), key_id.encode()), None
                )
                assert isinstance(loaded, ec.EllipticCurvePrivateKey)
                private = loaded
                self._remember_locked(key_id, private)
        return sign_with(private, content)

    def _remember_locked(self, key_id: str, private: ec.EllipticCurvePrivateKey) -> None:
        self._unsealed[key_id] = private
        if len(self._unsealed) > CACHED_KEYS:
            self._unsealed.popitem(last=False)

    def cached(self, key_id: str) -> ec.EllipticCurvePrivateKey | None:
        """The unsealed key if it signed recently (no I/O: safe to call on the event loop)."""
        with self._lock:
            private = self._unsealed.get(key_id)
            if private is not None:
                self._unsealed.move_to_end(key_id)
            return private

    def count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM keys").fetchone()[0])

    def rotate_passphrase(self, new_passphrase: str) -> int:
        """Re-seal every key under a KEK from ``new_passphrase``; returns how many keys."""
        salt = secrets.token_bytes(16)
        kek = _derive(new_passphrase, salt)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                rows = self._conn.execute("SELECT key_id, sealed FROM keys").fetchall()
                for key_id, sealed in rows:
                    der = self._unseal(self._kek, bytes(sealed), key_id.encode())
                    resealed = self._seal(kek, der, key_id.encode())
                    self._conn.execute("UPDATE keys SET sealed = ? WHERE key_id = ?", (resealed, key_id))
                self._conn.execute("UPDATE meta SET value = ? WHERE name = 'salt'", (salt,))
                self._conn.execute(
                    "UPDATE meta SET value = ? WHERE name = 'check'", (self._seal(kek, CHECK, b"check"),)
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        self._kek = kek
        return len(rows)


def sign_with(private: ec.EllipticCurvePrivateKey, content: bytes) -> bytes:
    """Raw R||S (TUF's "ecdsa" method) over SHA-256 of ``content``."""
    r, s = decode_dss_signature(private.sign(content, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class LocalSigner:
    """The in-process signer: the keystore, opened on first use (a registry that never signs
    never derives the KEK or creates the file), its blocking work kept off the event loop."""

    def __init__(self, path: Path, passphrase: Callable[[], str]) -> None:
        self.path = path
        self._passphrase = passphrase
        self._store: KeyStore | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, store: KeyStore) -> LocalSigner:
        signer = cls(store.path, lambda: "")
        signer._store = store
        return signer

    def _open(self) -> KeyStore:
        with self._lock:
            if self._store is None:
                self._store = KeyStore(self.path, self._passphrase())
            return self._store

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        def call() -> T:
            return fn(self._open(), *args)

        return await asyncio.to_thread(call)

    async def create_key(self, gun: str, role: str, algorithm: str = "ecdsa") -> PublicKeyInfo:
        return await self._run(KeyStore.create_key, gun, role, algorithm)

    async def get_key(self, key_id: str) -> PublicKeyInfo:
        return await self._run(KeyStore.get_key, key_id)

    async def delete_key(self, key_id: str) -> None:
        await self._run(KeyStore.delete_key, key_id)

    async def sign(self, key_id: str, content: bytes) -> bytes:
        store = self._store
        private = store.cached(key_id) if store is not None else None
        if private is not None:  # one ECDSA signature: cheaper than the hop to a thread
            return sign_with(private, content)
        return await self._run(KeyStore.sign, key_id, content)

    async def health(self) -> None:
        if self._store is None and not self.path.exists():
            return  # nothing to open yet: the first trust request creates the keystore
        await self._run(KeyStore.count)

    async def close(self) -> None:
        if self._store is not None:
            self._store.close()
