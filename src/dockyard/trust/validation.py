"""What an update must satisfy before anything of it is stored (spec/notary.md §4), and the
``signed`` bodies of the snapshot and timestamp the server generates (§3.5, §6).

Public API (pure; no I/O):

- ``validate_update(gun, uploads, stored, now, server_held) -> ValidatedUpdate``
- ``build_snapshot(previous, roles, now, *, expires=None, version=None) -> dict``
- ``build_timestamp(previous, snapshot, now, *, expires=None, version=None) -> dict``
- ``names_snapshot(timestamp, snapshot) -> bool``, ``missing_server_key(role) -> TrustError``

Any failure rejects the whole update with Notary's error and a message naming the rule. The
order follows notary-server's ``validateUpdate``: root, then targets and delegations (parents
first), then the snapshot (or the server's snapshot key), then the timestamp key, and only then
the stored versions (``VERSION``), as notary's storage checks them last.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from . import tuf
from .errors import (
    BAD_HIERARCHY,
    BAD_ROOT,
    BAD_SNAPSHOT,
    BAD_TARGETS,
    VALIDATION,
    InvalidRole,
    InvalidUpdate,
    OldVersion,
    TrustError,
)

# Default lifetimes (notary's const.go; a year is 365 days there).
YEAR = datetime.timedelta(days=365)
ROOT_LIFETIME = 10 * YEAR
TARGETS_LIFETIME = 3 * YEAR
SNAPSHOT_LIFETIME = 3 * YEAR
TIMESTAMP_LIFETIME = datetime.timedelta(days=14)
CERT_NOT_BEFORE_SLACK = datetime.timedelta(days=1)  # clocks of the signer's machine may run ahead

_SHA1_SIGNATURES = {
    SignatureAlgorithmOID.RSA_WITH_SHA1,
    SignatureAlgorithmOID.ECDSA_WITH_SHA1,
    SignatureAlgorithmOID.DSA_WITH_SHA1,
}

# The stored side: a mapping role -> current bytes, or a function role -> current bytes or None.
StoredLookup = Mapping[str, bytes] | Callable[[str], bytes | None]


@dataclass(frozen=True)
class ValidatedFile:
    role: str
    version: int
    sha256: str  # hex of ``content``
    content: bytes  # exactly as uploaded


@dataclass(frozen=True)
class ValidatedUpdate:
    files: list[ValidatedFile]  # to store, in this order (root, targets parents first, snapshot)
    needs_snapshot: bool  # no snapshot was uploaded: the server must generate and sign one
    root: tuf.Root  # the root in force after the update


def missing_server_key(role: str) -> TrustError:
    """The refusal when the server cannot sign ``role`` (rules 9 and 10)."""
    if role == "snapshot":
        return InvalidUpdate(
            BAD_HIERARCHY,
            "no snapshot was included in the update and the server does not hold the current snapshot key",
            "snapshot",
        )
    return InvalidUpdate(BAD_ROOT, f"no {role} keys exist on the server")


# --- root (rules 2-6) ------------------------------------------------------------------------


def _cn_matches(cn: str, gun: str) -> bool:
    return cn == gun or (cn.endswith("*") and gun.startswith(cn[:-1]))


def _check_root_certificates(gun: str, root: tuf.Root, now: datetime.datetime) -> None:
    """Rule 4: every root-role key is an x509 certificate for this GUN, valid now, not SHA-1, RSA ≥ 2048."""
    for kid in root.role_keyids("root"):
        key = root.keys[kid]
        short = f"root key {kid[:12]}…"
        if key.keytype not in tuf.X509_TYPES:
            raise InvalidUpdate(BAD_ROOT, f"{short} is {key.keytype}; root keys must be x509 certificates")
        try:
            cert = key.certificate()
            key.public_key()  # the certificate holds the key type it is listed as
        except ValueError as e:
            raise InvalidUpdate(BAD_ROOT, f"{short} is not a usable {key.keytype} certificate: {e}") from None
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(names[0].value) if names else ""
        if not _cn_matches(cn, gun):
            raise InvalidUpdate(BAD_ROOT, f"{short}: certificate common name {cn!r} does not match the GUN {gun!r}")
        if cert.not_valid_before_utc >= cert.not_valid_after_utc:
            raise InvalidUpdate(BAD_ROOT, f"{short}: certificate validity window is empty")
        if cert.not_valid_after_utc < now:
            raise InvalidUpdate(BAD_ROOT, f"{short}: certificate expired at {cert.not_valid_after_utc.isoformat()}")
        if cert.not_valid_before_utc > now + CERT_NOT_BEFORE_SLACK:
            raise InvalidUpdate(
                BAD_ROOT, f"{short}: certificate is not valid before {cert.not_valid_before_utc.isoformat()}"
            )
        if cert.signature_algorithm_oid in _SHA1_SIGNATURES:
            raise InvalidUpdate(BAD_ROOT, f"{short}: certificate is signed with SHA-1")
        public = cert.public_key()
        if isinstance(public, rsa.RSAPublicKey) and public.key_size < tuf.MIN_RSA_BITS:
            raise InvalidUpdate(
                BAD_ROOT, f"{short}: RSA key has {public.key_size} bits; {tuf.MIN_RSA_BITS} is the minimum"
            )


def _count(signed: tuf.Signed, keys: Mapping[str, tuf.Key], keyids: Collection[str], name: str) -> int:
    try:
        return tuf.count_valid(signed, keys, keyids)
    except ValueError as e:
        raise InvalidUpdate(name, f"{signed.role}: {e}") from None


def _validate_root(gun: str, signed: tuf.Signed, stored: tuf.Root | None, now: datetime.datetime) -> tuf.Root:
    # Rule 2. With nothing stored notary takes the current version to be 1, so 1 or 2 may start a GUN.
    current = stored.signed.version if stored is not None else 1
    if stored is not None and signed.version < current:
        raise InvalidUpdate(BAD_ROOT, f"root version {signed.version} is older than stored version {current}")
    if signed.version > current + 1:
        expected = f"it must be {current} or {current + 1}" if stored is not None else "a new repository starts at 1"
        raise InvalidUpdate(BAD_ROOT, f"root version {signed.version} skips versions: {expected}")
    try:
        root = tuf.root_from(signed)  # rule 3
    except ValueError as e:
        raise InvalidUpdate(BAD_ROOT, f"root: {e}") from None
    _check_root_certificates(gun, root, now)
    if stored is not None:  # rule 5, rotation: the keys trusted so far must agree
        previous = stored.roles["root"]
        valid = _count(signed, stored.keys, previous.keyids, BAD_ROOT)
        if valid < previous.threshold:
            raise InvalidUpdate(
                BAD_ROOT,
                f"root rotation: signed by {valid} of threshold {previous.threshold} keys "
                f"of the stored root version {stored.signed.version}",
            )
    own = root.roles["root"]
    valid = _count(signed, root.keys, own.keyids, BAD_ROOT)
    if valid < own.threshold:
        raise InvalidUpdate(BAD_ROOT, f"root: signed by {valid} of threshold {own.threshold} of its own root keys")
    if signed.expired(now):  # rule 6
        raise InvalidUpdate(BAD_ROOT, f"root expired at {tuf.format_time(signed.expires)}")
    return root


# --- targets and delegations (rule 7) --------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    targets: tuf.Targets
    paths: tuple[str, ...]  # what this role may sign for, already narrowed by its ancestors


def _within(name: str, paths: tuple[str, ...]) -> bool:
    return any(name.startswith(prefix) for prefix in paths)


class _TargetsTree:
    """Targets roles loaded so far: uploaded ones, and stored ancestors loaded when needed."""

    def __init__(self, root: tuf.Root, lookup: Callable[[str], bytes | None], now: datetime.datetime) -> None:
        self.root = root
        self.lookup = lookup
        self.now = now
        self.loaded: dict[str, _Loaded] = {}
        self.raw: dict[str, bytes] = {}  # every file loaded, for the snapshot's hashes (rule 8)

    def load(self, role: str, raw: bytes, *, uploaded: bool) -> _Loaded:
        signed = tuf.parse_signed(role, raw)
        where = role if uploaded else f"stored {role}"
        paths: tuple[str, ...]
        if role == "targets":
            entry = self.root.roles["targets"]
            keys, keyids, threshold, paths = self.root.keys, entry.keyids, entry.threshold, ("",)
        else:
            parent_name = tuf.parent_of(role)
            parent = self.parent(parent_name)
            if parent is None:
                raise InvalidUpdate(BAD_TARGETS, f"{role}: its parent {parent_name} does not exist")
            delegation = parent.targets.delegations.get(role)
            if delegation is None:
                raise InvalidUpdate(BAD_TARGETS, f"{role} is not declared as a delegation by its parent {parent_name}")
            keys, keyids, threshold = parent.targets.keys, delegation.keyids, delegation.threshold
            # A child's paths outside its parent's are dropped, as notary's Restrict does.
            paths = tuple(p for p in delegation.paths if _within(p, parent.paths))
        try:
            parsed = tuf.targets_from(signed)
        except ValueError as e:
            raise InvalidUpdate(BAD_TARGETS, f"{where}: {e}") from None
        valid = _count(signed, keys, keyids, BAD_TARGETS)
        if valid < threshold:
            raise InvalidUpdate(BAD_TARGETS, f"{where}: signed by {valid} of threshold {threshold} keys")
        if uploaded:  # stored data is loaded without expiry checks, as notary does
            outside = [name for name in parsed.targets if not _within(name, paths)]
            if outside:
                raise InvalidUpdate(
                    BAD_TARGETS, f"{role}: target {outside[0]!r} is outside the paths delegated to it {list(paths)}"
                )
            if signed.expired(self.now):
                raise InvalidUpdate(BAD_TARGETS, f"{role} expired at {tuf.format_time(signed.expires)}")
        loaded = _Loaded(parsed, paths)
        self.loaded[role] = loaded
        self.raw[role] = raw
        return loaded

    def parent(self, role: str) -> _Loaded | None:
        if role in self.loaded:
            return self.loaded[role]
        raw = self.lookup(role)
        if raw is None:
            return None
        if role != "targets" and self.parent(tuf.parent_of(role)) is None:
            return None
        return self.load(role, raw, uploaded=False)


# --- snapshot (rule 8) -----------------------------------------------------------------------


def _validate_snapshot(
    signed: tuf.Signed, root: tuf.Root, loaded: Mapping[str, bytes], now: datetime.datetime
) -> tuf.Snapshot:
    entry = root.roles["snapshot"]
    valid = _count(signed, root.keys, entry.keyids, BAD_SNAPSHOT)
    if valid < entry.threshold:
        raise InvalidUpdate(BAD_SNAPSHOT, f"snapshot: signed by {valid} of threshold {entry.threshold} keys")
    try:
        snapshot = tuf.snapshot_from(signed)
    except ValueError as e:
        raise InvalidUpdate(BAD_SNAPSHOT, f"snapshot: {e}") from None
    if signed.expired(now):
        raise InvalidUpdate(BAD_SNAPSHOT, f"snapshot expired at {tuf.format_time(signed.expires)}")
    for role, data in loaded.items():
        meta = snapshot.meta.get(role)
        if meta is None:
            raise InvalidUpdate(BAD_SNAPSHOT, f"snapshot does not list {role}")
        if not meta.matches(data):
            raise InvalidUpdate(BAD_SNAPSHOT, f"snapshot: hash of {role} does not match")
    return snapshot


# --- the update ------------------------------------------------------------------------------


def _lookup_of(stored: StoredLookup) -> Callable[[str], bytes | None]:
    if isinstance(stored, Mapping):
        return stored.get
    return stored


def _stored_version(lookup: Callable[[str], bytes | None], role: str) -> int | None:
    raw = lookup(role)
    return None if raw is None else tuf.parse_signed(role, raw).version


def validate_update(
    gun: str,
    uploads: Mapping[str, bytes],
    stored: StoredLookup,
    now: datetime.datetime,
    server_held: Mapping[str, Collection[str]],
) -> ValidatedUpdate:
    """Check an update (role name → uploaded bytes) against what is stored for ``gun``.

    ``stored`` gives the current stored bytes of a role (a mapping, or a function returning
    ``None`` when there are none). ``server_held`` maps ``"snapshot"``/``"timestamp"`` to the
    key IDs whose private halves the signer holds for this GUN. Raises ``TrustError``
    (INVALID_ROLE, MALFORMED_JSON, INVALID_UPDATE or VERSION); returns the files to store and
    whether the server must generate the snapshot. The timestamp is always the server's to make.
    """
    for role in uploads:
        if not tuf.is_role_name(role):
            raise InvalidRole(f"{role!r} is not a TUF role name")
    parsed = {role: tuf.parse_signed(role, raw) for role, raw in uploads.items()}  # rule 12
    parsed.pop("timestamp", None)  # rule 10: an uploaded timestamp is ignored
    lookup = _lookup_of(stored)

    # Rule 1: stored root, loaded without expiry checks.
    stored_raw_root = lookup("root")
    try:
        stored_root = tuf.parse_root(stored_raw_root) if stored_raw_root is not None else None
    except ValueError as e:
        raise InvalidUpdate(VALIDATION, f"the stored root cannot be read: {e}") from None
    if "root" in parsed:
        root = _validate_root(gun, parsed["root"], stored_root, now)
        root_raw = uploads["root"]
    elif stored_root is not None and stored_raw_root is not None:
        root, root_raw = stored_root, stored_raw_root
    else:
        raise InvalidUpdate(VALIDATION, "no pre-existing root and no root in the update")

    # Rule 7: parents before children; a parent comes from this update or from the store.
    tree = _TargetsTree(root, lookup, now)
    order = sorted((r for r in parsed if tuf.base_role(r) == "targets"), key=lambda r: (r.count("/"), r))
    for role in order:
        tree.load(role, uploads[role], uploaded=True)

    # Rules 8 and 9.
    needs_snapshot = "snapshot" not in parsed
    if needs_snapshot:
        if not set(root.role_keyids("snapshot")) & set(server_held.get("snapshot", ())):
            raise missing_server_key("snapshot")
        if lookup("snapshot") is None and "targets" not in tree.raw and lookup("targets") is None:
            raise InvalidUpdate(VALIDATION, "the server cannot make the first snapshot before targets exist")
    else:
        _validate_snapshot(parsed["snapshot"], root, {"root": root_raw, **tree.raw}, now)
    # Rule 10.
    if not set(root.role_keyids("timestamp")) & set(server_held.get("timestamp", ())):
        raise missing_server_key("timestamp")

    # Rule 11: versions only increase.
    to_store = (["root"] if "root" in parsed else []) + order + ([] if needs_snapshot else ["snapshot"])
    for role in to_store:
        previous = _stored_version(lookup, role)
        if previous is not None and parsed[role].version <= previous:
            raise OldVersion(f"{role} version {parsed[role].version} is not newer than stored version {previous}")
    files = [ValidatedFile(r, parsed[r].version, parsed[r].sha256, uploads[r]) for r in to_store]
    return ValidatedUpdate(files, needs_snapshot, root)


# --- what the server generates ---------------------------------------------------------------


def build_snapshot(
    previous: bytes | None,
    roles: Mapping[str, bytes],
    now: datetime.datetime,
    *,
    expires: datetime.datetime | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """The ``signed`` body of a server-made snapshot, as notary's ``GenerateSnapshot`` makes it.

    ``roles`` are the current root/targets/delegation files (role → bytes); entries of the
    previous snapshot for roles not given are kept. Version defaults to previous + 1 (or 1),
    expiry to ``now`` + 3 years."""
    meta: dict[str, Any] = {}
    prev_version = 0
    if previous is not None:
        prev = tuf.parse_signed("snapshot", previous)
        prev_version = prev.version
        old_meta = prev.signed.get("meta")
        if isinstance(old_meta, Mapping):
            meta.update(old_meta)
    for role, data in roles.items():
        if role not in ("snapshot", "timestamp"):
            meta[role] = tuf.make_file_meta(data)
    return {
        "_type": "Snapshot",
        "version": version if version is not None else prev_version + 1,
        "expires": tuf.format_time(expires if expires is not None else now + SNAPSHOT_LIFETIME),
        "meta": dict(sorted(meta.items())),
    }


def build_timestamp(
    previous: bytes | None,
    snapshot: bytes,
    now: datetime.datetime,
    *,
    expires: datetime.datetime | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """The ``signed`` body of a server-made timestamp naming ``snapshot`` (its exact bytes).
    Version defaults to previous + 1 (or 1), expiry to ``now`` + 14 days."""
    prev_version = tuf.parse_signed("timestamp", previous).version if previous is not None else 0
    return {
        "_type": "Timestamp",
        "version": version if version is not None else prev_version + 1,
        "expires": tuf.format_time(expires if expires is not None else now + TIMESTAMP_LIFETIME),
        "meta": {"snapshot": tuf.make_file_meta(snapshot)},
    }


def names_snapshot(timestamp: bytes, snapshot: bytes) -> bool:
    """Whether a stored timestamp names exactly these snapshot bytes."""
    try:
        return tuf.timestamp_from(tuf.parse_signed("timestamp", timestamp)).snapshot.matches(snapshot)
    except (ValueError, TrustError):
        return False
