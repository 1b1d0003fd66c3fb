"""Which signer a server uses, and the passphrase that opens the keystore."""

from __future__ import annotations

import os
from pathlib import Path

from ...ca.authority import kek_for
from ...config import ConfigError, Settings
from .keystore import KeyStore, LocalSigner, default_passphrase, keystore_path
from .service import Signer


def passphrase(settings: Settings) -> str:
    """From trust.signer_passphrase_file, else DOCKYARD_SIGNER_PASSPHRASE, else the master key."""
    if settings.trust.signer_passphrase_file:
        try:
            text = Path(settings.trust.signer_passphrase_file).read_text().strip()
        except OSError as e:
            raise ConfigError(f"trust.signer_passphrase_file: cannot read it: {e}") from None
        if not text:
            raise ConfigError("trust.signer_passphrase_file: the file is empty")
        return text
    from_env = os.environ.get("DOCKYARD_SIGNER_PASSPHRASE", "")
    return from_env or default_passphrase(kek_for(settings.data_dir))


def open_keystore(settings: Settings) -> KeyStore:
    return KeyStore(keystore_path(settings.data_dir), passphrase(settings))


def build_signer(settings: Settings) -> Signer:
    if settings.trust.signer_url:
        from .remote import RemoteSigner

        return RemoteSigner.for_settings(settings)
    return LocalSigner(keystore_path(settings.data_dir), lambda: passphrase(settings))
