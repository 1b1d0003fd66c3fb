"""What an update must satisfy before anything of it is stored (spec/notary.md §4), and the
``signed`` bodies of the snapshot and timestamp the server generates (§6).

Any failure rejects the whole update with Notary's error and a message naming the rule.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from . import tuf
from .errors import (
    BAD_HIERARCHY,
    BAD_ROOT,
    BAD_SNAPSHOT,
    BAD_TARGETS,
    VALIDATION,
    TrustError,
    invalid_role,
    invalid_update,
    old_version,
)

# Default lifetimes (notary's const.go), applied to what the server generates.
SNAPSHOT_LIFETIME = datetime.timedelta(days=3 * 365)
TIMESTAMP_LIFETIME = datetime.timedelta(days=14)
CERT_NOT_BEFORE_SLACK = datetime.timedelta(days=1)


@dataclass(frozen=True)
class ValidatedFile:
    role: str
    version: int
    sha256: str
    content: bytes


@dataclass(frozen=True)
class ValidatedUpdate:
    files: list[ValidatedFile]  # to store, in this order
    needs_snapshot: bool  # the server must generate and sign the snapshot
    root: tuf.Root  # the root in force after the update


def missing_server_key(role: str) -> TrustError:
    if role == "snapshot":
        return invalid_update(
            BAD_HIERARCHY, "no snapshot was uploaded and the server holds no snapshot key", "snapshot"
        )
    return invalid_update(BAD_ROOT, f"no {role} keys exist on the server for this root")


def _check_root_certificates(gun: str, root: tuf.Root, now: datetime.datetime) -> None:
    for kid in root.role_keyids("root"):
        key = root.keys[kid]
        if key.keytype not in tuf.X509_TYPES:
            raise invalid_update(
                BAD_ROOT, f"root key {kid[:12]}… is {key.keytype}; root keys must be x509 certificates"
            )
        try:
            cert = key.certificate()
        except ValueError as e:
            raise invalid_update(BAD_ROOT, f"root key {kid[:12]}… is not a PEM certificate: {e}") from None
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(names[0].value) if names else ""
        if not (cn == gun or (cn.endswith("*") and gun.startswith(cn[:-1]))):
            raise invalid_update(BAD_ROOT, f"root certificate common name {cn!r} does not match the GUN {gun!r}")
        if cert.not_valid_before_utc >= cert.not_valid_after_utc:
            raise invalid_update(BAD_ROOT, "root certificate's validity period is empty")
        if cert.not_valid_after_utc <= now or cert.not_valid_before_utc > now + CERT_NOT_BEFORE_SLACK:
            raise invalid_update(BAD_ROOT, "root certificate is not currently valid")
        algorithm = cert.signature_hash_algorithm
        if algorithm is None or isinstance(algorithm, hashes.SHA1):
            raise invalid_update(BAD_ROOT, "root certificate is signed with SHA-1")
        public = cert.public_key()
        if isinstance(public, rsa.RSAPublicKey) and public.key_size < 2048:
            raise invalid_update(
                BAD_ROOT, f"root certificate's RSA key has {public.key_size} bits; 2048 is the minimum"
            )


def _validate_root(gun: str, raw: bytes, stored: tuf.Root | None, now: datetime.datetime) -> tuf.Root:
    signed = tuf.parse_signed("root", raw)
    try:
        root = tuf.root_from(signed)
    except ValueError as e:
        raise invalid_update(BAD_ROOT, f"root: {e}") from None
    if stored is not None:
        if signed.version < stored.signed.version:
            raise old_version(f"root version {signed.version} is older than stored version {stored.signed.version}")
        if signed.version > stored.signed.version + 1:
            raise invalid_update(
                BAD_ROOT, f"root version {signed.version} skips versions; expected {stored.signed.version + 1}"
            )
    _check_root_certificates(gun, root, now)
    own = root.roles["root"]
    valid = tuf.count_valid(signed, root.keys, own.keyids)
    if valid < own.threshold:
        raise invalid_update(BAD_ROOT, f"root: signed by {valid} of threshold {own.threshold} of its own root keys")
    if stored is not None and stored.signed.sha256 != signed.sha256:
        previous = stored.roles["root"]
        valid = tuf.count_valid(signed, stored.keys, previous.keyids)
        if valid < previous.threshold:
            raise invalid_update(
                BAD_ROOT,
                f"root rotation: signed by {valid} of threshold {previous.threshold} of the previous root's keys",
            )
    if signed.expires <= now:
        raise invalid_update(BAD_ROOT, f"root expired at {tuf.format_time(signed.expires)}")
    return root


def _path_allowed(name: str, paths: tuple[str, ...]) -> bool:
    return any(name.startswith(prefix) for prefix in paths)


def _validate_targets(
    role: str,
    raw: bytes,
    root: tuf.Root,
    parents: Mapping[str, tuf.Targets],
    now: datetime.datetime,
) -> tuf.Targets:
    signed = tuf.parse_signed(role, raw)
    try:
        parsed = tuf.targets_from(signed)
    except ValueError as e:
        raise invalid_update(BAD_TARGETS, f"{role}: {e}") from None
    paths: tuple[str, ...]
    if role == "targets":
        keys: Mapping[str, tuf.Key] = root.keys
        entry = root.roles["targets"]
        keyids, threshold, paths = entry.keyids, entry.threshold, ("",)
    else:
        parent_name = role.rsplit("/", 1)[0]
        parent = parents.get(parent_name)
        if parent is None:
            raise invalid_update(BAD_TARGETS, f"{role}: its parent {parent_name} does not exist")
        delegation = parent.delegations.get(role)
        if delegation is None:
            raise invalid_update(BAD_TARGETS, f"{role} is not declared by its parent {parent_name}")
        keys, keyids, threshold, paths = parent.keys, delegation.keyids, delegation.threshold, delegation.paths
    valid = tuf.count_valid(signed, keys, keyids)
    if valid < threshold:
        raise invalid_update(BAD_TARGETS, f"{role}: signed by {valid} of threshold {threshold} keys")
    if signed.expires <= now:
        raise invalid_update(BAD_TARGETS, f"{role} expired at {tuf.format_time(signed.expires)}")
    for name in parsed.targets:
        if not _path_allowed(name, paths):
            raise invalid_update(BAD_TARGETS, f"{role}: target {name!r} is outside the paths delegated to it")
    for child in parsed.delegations.values():
        outside = [p for p in child.paths if not _path_allowed(p, paths)]
        if outside:
            raise invalid_update(BAD_TARGETS, f"{role}: delegates path {outside[0]!r} it was not delegated itself")
    return parsed


def _hash_matches(meta: Any, data: bytes, where: str) -> bool:
    try:
        _, hashes_ = tuf.file_meta(meta, where)
    except ValueError:
        return False
    if "sha256" not in hashes_:
        return False
    return hashes_["sha256"] == hashlib.sha256(data).digest() and (
        "sha512" not in hashes_ or hashes_["sha512"] == hashlib.sha512(data).digest()
    )


def _validate_snapshot(raw: bytes, root: tuf.Root, files: Mapping[str, bytes], now: datetime.datetime) -> tuf.Signed:
    signed = tuf.parse_signed("snapshot", raw)
    if signed.signed.get("_type") != "Snapshot":
        raise invalid_update(BAD_SNAPSHOT, f"snapshot: _type is {signed.signed.get('_type')!r}")
    entry = root.roles["snapshot"]
    valid = tuf.count_valid(signed, root.keys, entry.keyids)
    if valid < entry.threshold:
        raise invalid_update(BAD_SNAPSHOT, f"snapshot: signed by {valid} of threshold {entry.threshold} keys")
    if signed.expires <= now:
        raise invalid_update(BAD_SNAPSHOT, f"snapshot expired at {tuf.format_time(signed.expires)}")
    meta = signed.signed.get("meta")
    if not isinstance(meta, Mapping):
        raise invalid_update(BAD_SNAPSHOT, "snapshot: meta is missing")
    for role in ("root", "targets"):
        if role not in meta:
            raise invalid_update(BAD_SNAPSHOT, f"snapshot does not list {role}")
    for role, data in files.items():
        if role in meta and not _hash_matches(meta[role], data, f"snapshot meta {role}"):
            raise invalid_update(BAD_SNAPSHOT, f"snapshot: hash of {role} does not match")
        if role not in meta and role in ("root", "targets"):
            raise invalid_update(BAD_SNAPSHOT, f"snapshot does not list {role}")
    return signed


def _load_targets_tree(stored: Mapping[str, bytes]) -> dict[str, tuf.Targets]:
    out = {}
    for role, raw in stored.items():
        if tuf.base_role(role) == "targets":
            try:
                out[role] = tuf.targets_from(tuf.parse_signed(role, raw))
            except (ValueError, TrustError):
                continue  # stored data was valid when accepted; a bad parent is reported where needed
    return out


def validate_update(
    gun: str,
    uploads: Mapping[str, bytes],
    stored: Mapping[str, bytes],
    now: datetime.datetime,
    server_held: Mapping[str, set[str]],
) -> ValidatedUpdate:
    """Check an update (role name → file bytes) against the stored files (role → current bytes).

    ``server_held`` maps "snapshot"/"timestamp" to the key IDs whose private halves the
    signer holds for this GUN."""
    for role in uploads:
        if not tuf.is_role_name(role):
            raise invalid_role(f"{role!r} is not a TUF role name")
    uploads = {role: raw for role, raw in uploads.items() if role != "timestamp"}  # the server makes timestamps
    parsed = {role: tuf.parse_signed(role, raw) for role, raw in uploads.items()}
    for role, signed in parsed.items():
        expected = tuf.ROLE_TYPES[tuf.base_role(role)]
        if signed.signed.get("_type") != expected:
            name = {"root": BAD_ROOT, "snapshot": BAD_SNAPSHOT}.get(role, BAD_TARGETS)
            raise invalid_update(name, f"{role}: _type is {signed.signed.get('_type')!r}, not {expected}")
        previous = stored.get(role)
        if previous is not None:
            old = tuf.parse_signed(role, previous).version
            if signed.version <= old and role != "root":
                raise old_version(f"{role} version {signed.version} is not newer than stored version {old}")
            if role == "root" and signed.version == old:
                raise old_version(f"root version {signed.version} is already stored")

    stored_root = tuf.parse_root(stored["root"]) if "root" in stored else None
    if "root" in uploads:
        root = _validate_root(gun, uploads["root"], stored_root, now)
    elif stored_root is None:
        raise invalid_update(VALIDATION, "no pre-existing root and no root in the update")
    else:
        root = stored_root

    # Targets and delegations, parents before children; parents come from the update or the store.
    tree = _load_targets_tree(stored)
    order = sorted((r for r in uploads if tuf.base_role(r) == "targets"), key=lambda r: r.count("/"))
    for role in order:
        tree[role] = _validate_targets(role, uploads[role], root, tree, now)
    if "root" in uploads and "targets" not in uploads and "targets" in stored:
        # A new root may change the targets keys: the stored targets must still verify.
        _validate_targets("targets", stored["targets"], root, tree, now)

    current = {role: raw for role, raw in stored.items() if role not in ("snapshot", "timestamp")}
    current.update({role: raw for role, raw in uploads.items() if role != "snapshot"})
    needs_snapshot = "snapshot" not in uploads
    if needs_snapshot:
        if not set(root.role_keyids("snapshot")) & set(server_held.get("snapshot", ())):
            raise missing_server_key("snapshot")
    else:
        _validate_snapshot(uploads["snapshot"], root, current, now)
    if not set(root.role_keyids("timestamp")) & set(server_held.get("timestamp", ())):
        raise missing_server_key("timestamp")

    order_all = (["root"] if "root" in uploads else []) + order + ([] if needs_snapshot else ["snapshot"])
    files = [ValidatedFile(r, parsed[r].version, parsed[r].sha256, uploads[r]) for r in order_all]
    return ValidatedUpdate(files, needs_snapshot, root)


def build_snapshot(previous: bytes | None, roles: Mapping[str, bytes], now: datetime.datetime) -> dict[str, Any]:
    """The ``signed`` body of a server-made snapshot naming the current root, targets and delegations."""
    version = tuf.parse_signed("snapshot", previous).version + 1 if previous else 1
    return {
        "_type": "Snapshot",
        "version": version,
        "expires": tuf.format_time(now + SNAPSHOT_LIFETIME),
        "meta": {role: tuf.make_file_meta(data) for role, data in sorted(roles.items())},
    }


def build_timestamp(previous: bytes | None, snapshot: bytes, now: datetime.datetime) -> dict[str, Any]:
    version = tuf.parse_signed("timestamp", previous).version + 1 if previous else 1
    return {
        "_type": "Timestamp",
        "version": version,
        "expires": tuf.format_time(now + TIMESTAMP_LIFETIME),
        "meta": {"snapshot": tuf.make_file_meta(snapshot)},
    }


def names_snapshot(timestamp: bytes, snapshot: bytes) -> bool:
    """Whether a stored timestamp names exactly these snapshot bytes."""
    meta = tuf.parse_signed("timestamp", timestamp).signed.get("meta")
    if not isinstance(meta, Mapping) or "snapshot" not in meta:
        return False
    return _hash_matches(meta["snapshot"], snapshot, "timestamp meta snapshot")
