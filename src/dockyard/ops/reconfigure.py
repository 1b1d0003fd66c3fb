"""`dockyard reconfigure`: change the data folder's settings file, validated, without losing data.

The settings live in ``<data_dir>/config/dockyard.yml`` (the lowest layer under ``--config``,
the environment and flags). A change is checked as ``serve`` would check it, plus what a
plain validation cannot see: a storage or database change that would strand the images or
accounts already stored is refused unless forced, a certificate must load and match its key,
and the new backend must answer. The file is replaced atomically; the previous one is kept
in ``config/history/``. A running server applies the new file when it is restarted.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from ..auth.ldap import LdapSettings
from ..config import DATA_CONFIG, ConfigError, Settings, load, read_yaml
from ..metadata import models
from ..metadata.db import Database
from ..storage.driver import PathNotFound, StorageError
from ..storage.paths import blob_path
from ._common import OpsError, driver_for

# Settings that reconfigure will not write into the file, and why.
REFUSED = {
    "data_dir": "the data folder cannot move itself: stop Dockyard, move the folder, start with --data-dir",
    "auth.admin_password": "it only seeds the first admin of an empty database; change passwords with the API",
}


@dataclass(frozen=True)
class Change:
    key: str
    before: Any
    after: Any


@dataclass
class ReconfigureResult:
    path: Path
    changes: list[Change] = field(default_factory=list)
    backup: Path | None = None
    warnings: list[str] = field(default_factory=list)


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key.path=value``; the value is read as YAML (``true``, ``5``, ``[a, b]``, ``{}``)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise OpsError(f"--set {text!r}: expected KEY=VALUE, e.g. registry.delete_enabled=false")
    try:
        return key, yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as e:
        raise OpsError(f"--set {key}: the value is not valid YAML: {e}") from None


def _get(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise OpsError(f"{dotted}: {part} is not a block")
        node = child
    node[parts[-1]] = value


def _unset(tree: dict[str, Any], dotted: str) -> bool:
    parts = dotted.split(".")
    node: Any = tree
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and parts[-1] in node:
        del node[parts[-1]]
        return True
    return False


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _count(db: Database, table: Any) -> int:
    return int(db.read_sync(lambda conn: conn.execute(select(func.count()).select_from(table)).scalar_one()))


def _check_tls(new: Settings) -> None:
    if not new.tls.cert_file:
        return
    try:
        cert = x509.load_pem_x509_certificate(Path(new.tls.cert_file).read_bytes())
        key = serialization.load_pem_private_key(Path(new.tls.key_file).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise OpsError(f"tls.cert_file/tls.key_file: cannot load the certificate and its key: {e}") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise OpsError("tls.key_file: the key does not belong to tls.cert_file's certificate")


async def _check_storage(old: Settings, new: Settings, force: bool, result: ReconfigureResult) -> None:
    if (old.storage.driver, old.storage.params) == (new.storage.driver, new.storage.params):
        return
    db = Database(old.effective_database_url)
    try:
        known = db.read_sync(_blob_paths)
    finally:
        db.dispose()
    driver = driver_for(new)
    present: set[str] = set()
    try:
        with contextlib.suppress(PathNotFound):  # an empty bucket or folder is fine: serve creates the root
            await driver.stat("/")
            present = {info.path async for info in driver.walk("/blobs")}
    except (StorageError, OSError) as e:
        raise OpsError(f"storage: the new backend does not answer: {e}") from None
    finally:
        await driver.close()
    missing = len(known - present)
    if missing and not force:
        raise OpsError(
            f"storage: {missing} of {len(known)} blob(s) are not on the new backend;"
            " copy them first (dockyard storage migrate --to FILE) or pass --force to switch anyway"
        )
    if missing:
        result.warnings.append(f"{missing} blob(s) stay on the old backend; pulls of them fail until copied")


def _blob_paths(conn: Any) -> set[str]:
    paths = set()
    for (digest,) in conn.execute(select(models.blobs.c.digest)):
        algorithm, _, hex_digest = digest.partition(":")
        paths.add(blob_path(algorithm, hex_digest))
    return paths


def _check_database(old: Settings, new: Settings, force: bool, result: ReconfigureResult) -> None:
    if old.effective_database_url == new.effective_database_url:
        return
    target = Database(new.effective_database_url)
    try:
        target.read_sync(lambda conn: conn.execute(select(1)).scalar_one())
    except Exception as e:  # any driver error: the point is only to say it does not answer
        raise OpsError(f"database_url: cannot connect: {e}") from None
    finally:
        target.dispose()
    current = Database(old.effective_database_url)
    try:
        repositories = _count(current, models.repositories)
    except Exception:
        repositories = 0  # no current database: nothing to strand
    finally:
        current.dispose()
    if repositories and not force:
        raise OpsError(
            f"database_url: the current database holds {repositories} repositories that the new one"
            " would not have; move the data first or pass --force"
        )
    if repositories:
        result.warnings.append("the new database starts without the current repositories and accounts")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # 0600: the file may hold secrets (an LDAP bind password, object-store credentials).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def render(tree: Mapping[str, Any]) -> str:
    header = (
        "# Dockyard settings for this data folder (see README, Configuration).\n"
        "# Change with `dockyard reconfigure --set KEY=VALUE`; restart `dockyard serve` to apply.\n"
    )
    return header + (yaml.safe_dump(dict(tree), sort_keys=True) if tree else "{}\n")


async def reconfigure(
    data_dir: Path,
    assignments: list[str],
    unsets: list[str],
    force: bool = False,
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
) -> ReconfigureResult:
    """Apply ``KEY=VALUE`` assignments and removals to the folder's settings file."""
    if not (data_dir / "db").exists() and not (data_dir / "config").exists():
        raise OpsError(f"{data_dir} is not an installed data folder: run `dockyard install` first")
    path = data_dir / DATA_CONFIG
    try:
        current = read_yaml(path) if path.is_file() else {}
        old = load(environ=environ or {}, overrides={"data_dir": str(data_dir)}, data_config=current)
    except ConfigError as e:
        raise OpsError(f"the current settings do not validate ({e}); fix {path} by hand") from None
    proposed: dict[str, Any] = yaml.safe_load(yaml.safe_dump(current)) or {}  # deep copy
    for text in assignments:
        key, value = parse_assignment(text)
        if key in REFUSED:
            raise OpsError(f"{key}: not set by reconfigure: {REFUSED[key]}")
        _set(proposed, key, value)
    for key in unsets:
        if not _unset(proposed, key):
            raise OpsError(f"--unset {key}: not set in {path}")
    try:
        new = load(environ=environ or {}, overrides={"data_dir": str(data_dir)}, data_config=proposed)
        if new.auth.ldap:
            LdapSettings.from_parameters(dict(new.auth.ldap))
    except (ConfigError, ValueError) as e:
        raise OpsError(str(e)) from None
    result = ReconfigureResult(path)
    before, after = _flatten(current), _flatten(proposed)
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            result.changes.append(Change(key, before.get(key), after.get(key)))
    _check_tls(new)
    await _check_storage(old, new, force, result)
    _check_database(old, new, force, result)
    if dry_run or not result.changes:
        return result
    if path.is_file():
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        result.backup = path.parent / "history" / f"dockyard-{stamp}.yml"
        _write_atomically(result.backup, path.read_text())
    _write_atomically(path, render(proposed))
    return result


def write_initial(data_dir: Path) -> Path | None:
    """Create the folder's settings file on install (empty: every default applies); keep an existing one."""
    path = data_dir / DATA_CONFIG
    if path.exists():
        return None
    _write_atomically(path, render({}))
    return path
