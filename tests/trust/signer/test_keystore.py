"""The signer's keystore: keys round-trip, signatures verify, nothing private is stored in clear,
and the passphrase can be rotated (in Python and through `dockyard signer rotate-passphrase`)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dockyard.trust.signer.keystore import KeyStore, WrongPassphrase, _derive, keystore_path, tuf_key_id
from dockyard.trust.signer.service import KeyNotFound

PASSPHRASE = "correct horse battery staple"
NEW_PASSPHRASE = "a brand new passphrase 2"


def verify(public_der: bytes, signature: bytes, message: bytes) -> None:
    """Raise unless ``signature`` (raw R||S) is an ECDSA P-256/SHA-256 signature of ``message``."""
    assert len(signature) == 64
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    public.verify(der, message, ec.ECDSA(hashes.SHA256()))


def unseal_private_keys(path: Path, passphrase: str) -> dict[str, bytes]:
    """Key ID -> PKCS#8 DER, read straight from the file with the right passphrase."""
    conn = sqlite3.connect(path)
    try:
        salt = bytes(conn.execute("SELECT value FROM meta WHERE name = 'salt'").fetchone()[0])
        kek = _derive(passphrase, salt)
        out = {}
        for key_id, sealed in conn.execute("SELECT key_id, sealed FROM keys"):
            sealed = bytes(sealed)
            out[key_id] = AESGCM(kek).decrypt(sealed[:12], sealed[12:], key_id.encode())
        return out
    finally:
        conn.close()


def stored_bytes(path: Path) -> bytes:
    """Every byte the keystore left on disk: the database and any WAL / shared-memory file."""
    return b"".join(p.read_bytes() for p in sorted(path.parent.iterdir()) if p.name.startswith(path.name))


def test_create_get_sign_and_verify(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db", PASSPHRASE)
    info = store.create_key("registry.example/a/b", "timestamp")
    assert info.key_id == tuf_key_id(info.public_der)
    assert (info.algorithm, info.gun, info.role) == ("ecdsa", "registry.example/a/b", "timestamp")
    assert store.get_key(info.key_id) == info
    message = b'{"_type":"Timestamp","version":1}'
    signature = store.sign(info.key_id, message)
    verify(info.public_der, signature, message)
    with pytest.raises(Exception):  # noqa: B017, PT011 - cryptography's InvalidSignature
        verify(info.public_der, signature, message + b" ")
    other = store.create_key("registry.example/a/b", "snapshot")
    assert other.key_id != info.key_id and store.count() == 2
    store.delete_key(other.key_id)
    with pytest.raises(KeyNotFound):
        store.get_key(other.key_id)
    with pytest.raises(KeyNotFound):
        store.sign(other.key_id, message)
    with pytest.raises(ValueError, match="ecdsa only"):
        store.create_key("registry.example/a/b", "snapshot", "rsa")
    store.close()

    reopened = KeyStore(tmp_path / "keys.db", PASSPHRASE)  # round trip through the file
    assert reopened.get_key(info.key_id) == info
    verify(info.public_der, reopened.sign(info.key_id, b"again"), b"again")
    reopened.close()


def test_file_holds_no_private_key_and_refuses_a_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "signer" / "keys.db"
    store = KeyStore(path, PASSPHRASE)
    infos = [store.create_key("registry.example/x", role) for role in ("timestamp", "snapshot", "timestamp")]
    on_disk_while_open = stored_bytes(path)
    store.close()
    assert (path.stat().st_mode & 0o777) == 0o600 and (path.parent.stat().st_mode & 0o777) == 0o700

    private = unseal_private_keys(path, PASSPHRASE)
    assert set(private) == {i.key_id for i in infos}
    on_disk = stored_bytes(path)
    for info in infos:
        der = private[info.key_id]
        key = serialization.load_der_private_key(der, None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        scalar = key.private_numbers().private_value.to_bytes(32, "big")
        assert der not in on_disk and der not in on_disk_while_open
        assert scalar not in on_disk and scalar not in on_disk_while_open  # not even the bare secret
        assert info.public_der in on_disk  # the public halves are stored in clear, as expected

    with pytest.raises(WrongPassphrase):
        KeyStore(path, "not the passphrase")
    with pytest.raises(Exception):  # noqa: B017, PT011 - AES-GCM refuses the wrong KEK
        unseal_private_keys(path, "not the passphrase")


def test_rotate_passphrase_keeps_every_key_and_retires_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = KeyStore(path, PASSPHRASE)
    infos = [store.create_key(f"registry.example/r{i}", "snapshot") for i in range(3)]
    before = unseal_private_keys(path, PASSPHRASE)
    assert store.rotate_passphrase(NEW_PASSPHRASE) == 3
    verify(infos[0].public_der, store.sign(infos[0].key_id, b"same process"), b"same process")
    store.close()

    with pytest.raises(WrongPassphrase):
        KeyStore(path, PASSPHRASE)
    assert unseal_private_keys(path, NEW_PASSPHRASE) == before  # the same keys, re-sealed
    reopened = KeyStore(path, NEW_PASSPHRASE)
    for info in infos:
        verify(info.public_der, reopened.sign(info.key_id, b"after rotation"), b"after rotation")
    reopened.close()


def dockyard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_cli_rotate_passphrase_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old_file, new_file, short_file = tmp_path / "old", tmp_path / "new", tmp_path / "short"
    old_file.write_text(PASSPHRASE + "\n")
    new_file.write_text(NEW_PASSPHRASE + "\n")
    short_file.write_text("short\n")
    path = keystore_path(data)
    store = KeyStore(path, PASSPHRASE)
    infos = [store.create_key("registry.example/cli", role) for role in ("timestamp", "snapshot")]
    store.close()

    base = ("signer", "rotate-passphrase", "--data-dir", str(data))
    r = dockyard(*base, "--passphrase-file", str(old_file), "--new-passphrase-file", str(short_file))
    assert r.returncode == 2 and "at least 12" in r.stderr
    r = dockyard(*base, "--passphrase-file", str(new_file), "--new-passphrase-file", str(new_file))
    assert r.returncode == 2 and "passphrase does not open" in r.stderr  # the current one is needed
    r = dockyard(*base, "--passphrase-file", str(old_file), "--new-passphrase-file", str(new_file))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Re-sealed 2 key(s)" in r.stdout

    with pytest.raises(WrongPassphrase):
        KeyStore(path, PASSPHRASE)
    reopened = KeyStore(path, NEW_PASSPHRASE)
    for info in infos:
        assert reopened.get_key(info.key_id) == info
        verify(info.public_der, reopened.sign(info.key_id, b"cli"), b"cli")
    reopened.close()
    # The old passphrase no longer opens it through the CLI either.
    r = dockyard(*base, "--passphrase-file", str(old_file), "--new-passphrase-file", str(new_file))
    assert r.returncode == 2 and "passphrase does not open" in r.stderr
