"""The trust server's rules: what is stored for a GUN, what an update must satisfy, and the
server-generated snapshot and timestamp (spec/notary.md §4, §6).

Private keys never come here: the signer creates the timestamp and snapshot keys and signs
the canonical bytes this service builds. Every update is validated in full and stored in
one transaction (every role file and its changefeed row, or nothing).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError

from ..metadata import queries
from ..metadata import trust as q
from ..metadata.db import Database
from ..ttlcache import TtlCache
from . import gun as guns
from . import tuf, validation
from .errors import InvalidGun, InvalidRole, InvalidUpdate, MetadataNotFound, OldVersion, ServerFault, TrustError
from .signer.service import KeyNotFound, Signer, SignerUnavailable

log = logging.getLogger("dockyard.trust")

SERVER_ROLES = ("timestamp", "snapshot")
RECOVER_AT_MOST = 4  # key IDs per role asked of the signer when a root lists keys we have no row for
_NEVER = datetime.datetime.min.replace(tzinfo=datetime.UTC)  # a timestamp that must not be served as is


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_json(public_der: bytes) -> dict[str, Any]:
    return {"keytype": "ecdsa", "keyval": {"private": None, "public": base64.b64encode(public_der).decode()}}


class TrustService:
    def __init__(
        self,
        db: Database,
        signer: Signer,
        *,
        hostnames: tuple[str, ...],
        refresh_before_seconds: float,
        clock: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self.db = db
        self.signer = signer
        # Host names (ports ignored) a GUN may start with, besides the Host header the client used.
        self.hostnames = {h.lower() for h in hostnames}
        self.refresh_before_seconds = refresh_before_seconds
        self.clock = clock
        self._served_until: TtlCache[tuple[str, str], datetime.datetime] = TtlCache(seconds=3600)

    # --- names ------------------------------------------------------------------------------

    def resolve(self, gun: str, host_header: str) -> str:
        """The repository a GUN names, if its host is this registry's; INVALID_GUN otherwise."""
        parts = guns.split(gun)
        if parts is None:
            raise InvalidGun(f"{gun!r} is not <registry host>/<repository>")
        host, repository = parts
        if host.lower() != host_header.lower() and _hostname(host).lower() not in self.hostnames:
            raise InvalidGun(f"{gun}: {host} is not this registry (it answers as {host_header or 'unknown'})")
        return repository

    async def _require_repository(self, gun: str, repository: str) -> None:
        if await queries.fetch_repository_id(self.db, repository) is None:
            raise InvalidGun(f"{gun}: repository {repository} does not exist; push an image first")

    # --- reading ----------------------------------------------------------------------------

    async def current(self, gun: str, role: str) -> q.TrustFile:
        if role == "timestamp":
            return await self._fresh_timestamp(gun)
        if role == "snapshot":
            await self._fresh_timestamp(gun)  # regenerates an expired server-held snapshot first
        found = await q.fetch_latest(self.db, gun, role)
        if found is None:
            raise MetadataNotFound(f"{gun} has no {role} metadata")
        return found

    async def by_checksum(self, gun: str, role: str, checksum: str) -> q.TrustFile:
        if len(checksum) != 64:  # stored files are indexed by SHA-256 only, as notary's stores are
            raise MetadataNotFound(f"{role}.{checksum}: only SHA-256 checksums are indexed")
        found = await q.fetch_by_checksum(self.db, gun, role, checksum)
        if found is None:
            raise MetadataNotFound(f"{gun} has no {role} with checksum {checksum}")
        return found

    async def by_version(self, gun: str, role: str, version: int) -> q.TrustFile:
        found = await q.fetch_by_version(self.db, gun, role, version)
        if found is None:
            raise MetadataNotFound(f"{gun} has no version {version} of {role}")
        return found

    # --- server keys ------------------------------------------------------------------------

    async def public_key(self, gun: str, role: str) -> dict[str, Any]:
        """The server's key for timestamp or snapshot: the one the root lists if held, else the
        newest, else a new one (notary creates it on first request)."""
        if role not in SERVER_ROLES:
            raise InvalidRole(f"{role}: the server holds keys for timestamp and snapshot only")
        repository = self.resolve_repository(gun)
        await self._require_repository(gun, repository)
        key = await self._signing_key(gun, role)
        if key is None:
            key = await self._create_key(gun, role)
        return _key_json(key.public)

    async def rotate_key(self, gun: str, role: str) -> dict[str, Any]:
        """A new key; it signs once a new root lists it (the old one signs until then)."""
        if role not in SERVER_ROLES:
            raise InvalidRole(f"{role}: the server holds keys for timestamp and snapshot only")
        await self._require_repository(gun, self.resolve_repository(gun))
        return _key_json((await self._create_key(gun, role)).public)

    def resolve_repository(self, gun: str) -> str:
        repository = guns.repository_of(gun)
        if repository is None:
            raise InvalidGun(f"{gun!r} is not <registry host>/<repository>")
        return repository

    async def _create_key(self, gun: str, role: str) -> q.ServerKey:
        try:
            info = await self.signer.create_key(gun, role)
        except SignerUnavailable as e:
            raise ServerFault("NO_CRYPTOSERVICE", f"the signer cannot create a {role} key: {e}") from None
        key = q.ServerKey(info.key_id, role, info.algorithm, info.public_der, time.time())
        # Unsynced: the signer has already stored the key durably, and a row lost to a power
        # failure is recorded again from the signer when a root lists the key (_recover_keys).
        await self.db.write_unsynced(q.add_server_key, gun, key)
        return key

    async def _signing_key(self, gun: str, role: str, root: tuf.Root | None = None) -> q.ServerKey | None:
        """The key to sign ``role`` with: listed by the root (if there is one) and held by us."""
        held = await q.fetch_server_keys(self.db, gun, role)
        if root is None:
            stored = await q.fetch_latest(self.db, gun, "root")
            root = tuf.parse_root(stored.content) if stored else None
        if root is None:
            return held[0] if held else None
        listed = set(root.role_keyids(role))
        for key in held:
            if key.key_id in listed:
                return key
        return None

    # --- writing ----------------------------------------------------------------------------

    async def update(self, gun: str, repository: str, uploads: dict[str, bytes]) -> None:
        await self._require_repository(gun, repository)
        stored = await q.fetch_latest_of_each(self.db, gun)
        now = self.clock()
        contents = {role: f.content for role, f in stored.items()}
        held = await self._server_held(gun)
        try:
            result = validation.validate_update(gun, uploads, contents, now, server_held=held)
        except InvalidUpdate:
            if not await self._recover_keys(gun, uploads.get("root") or contents.get("root"), held):
                raise
            result = validation.validate_update(gun, uploads, contents, now, server_held=held)
        files = [(f.role, f.version, f.sha256, f.content) for f in result.files]
        root = result.root
        if result.needs_snapshot:
            files.append(await self._sign_snapshot(gun, root, stored, result, now))
        snapshot_bytes = (
            next(c for r, _, _, c in files if r == "snapshot")
            if any(r == "snapshot" for r, *_ in files)
            else stored["snapshot"].content
        )
        files.append(await self._sign_timestamp(gun, root, stored.get("timestamp"), snapshot_bytes, now))
        await self._store(gun, repository, files, {role: f.version for role, f in stored.items()})

    async def _recover_keys(self, gun: str, root_bytes: bytes | None, held: dict[str, set[str]]) -> bool:
        """Record the server keys ``root_bytes`` lists that the signer holds for this GUN but this
        database does not (their rows are written unsynced); whether any were found."""
        if root_bytes is None:
            return False
        try:
            root = tuf.parse_root(root_bytes)
        except (ValueError, TrustError):
            return False  # validation names what is wrong with it
        found = False
        for role in SERVER_ROLES:
            unknown = sorted(set(root.role_keyids(role)) - held[role])
            for key_id in unknown[:RECOVER_AT_MOST]:
                try:
                    info = await self.signer.get_key(key_id)
                except (KeyNotFound, SignerUnavailable):
                    continue
                if info.gun != gun or info.role != role:
                    continue  # another GUN's key, or another role's: never borrowed
                key = q.ServerKey(key_id, role, info.algorithm, info.public_der, time.time())
                with contextlib.suppress(IntegrityError):  # a concurrent update recorded it first
                    await self.db.write(q.add_server_key, gun, key)
                held[role].add(key_id)
                found = True
        return found

    async def _server_held(self, gun: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for role in SERVER_ROLES:
            out[role] = {k.key_id for k in await q.fetch_server_keys(self.db, gun, role)}
        return out

    async def _store(
        self, gun: str, repository: str, files: list[tuple[str, int, str, bytes]], seen: dict[str, int]
    ) -> None:
        def write(conn: Any) -> None:
            # Versions only increase: re-check inside the transaction, against a racing update.
            current = q.max_versions(conn, gun)
            for role, version, _, _ in files:
                if version <= current.get(role, 0):
                    raise OldVersion(f"{role} version {version} is not newer than stored version {current[role]}")
            if current != seen:
                raise OldVersion("the trust data changed while this update was validated; send it again")
            q.store(conn, gun, repository, files)

        try:
            await self.db.write(write)
        except IntegrityError:
            raise OldVersion("a role version in this update is already stored") from None

    async def _sign(self, gun: str, role: str, root: tuf.Root, signed: dict[str, Any]) -> bytes:
        key = await self._signing_key(gun, role, root)
        if key is None:
            raise validation.missing_server_key(role)
        payload = tuf.canonical_json(signed)
        try:
            signature = await self.signer.sign(key.key_id, payload)
        except (SignerUnavailable, KeyNotFound) as e:
            raise ServerFault("NO_CRYPTOSERVICE", f"the signer cannot sign the {role}: {e}") from None
        return tuf.envelope(signed, [(key.key_id, "ecdsa", signature)])

    async def _sign_snapshot(
        self,
        gun: str,
        root: tuf.Root,
        stored: dict[str, q.TrustFile],
        result: validation.ValidatedUpdate,
        now: datetime.datetime,
    ) -> tuple[str, int, str, bytes]:
        roles = {role: f.content for role, f in stored.items() if role not in SERVER_ROLES}
        roles.update({f.role: f.content for f in result.files})
        previous = stored.get("snapshot")
        signed = validation.build_snapshot(previous.content if previous else None, roles, now)
        content = await self._sign(gun, "snapshot", root, signed)
        return ("snapshot", signed["version"], hashlib.sha256(content).hexdigest(), content)

    async def _sign_timestamp(
        self,
        gun: str,
        root: tuf.Root,
        previous: q.TrustFile | None,
        snapshot: bytes,
        now: datetime.datetime,
    ) -> tuple[str, int, str, bytes]:
        signed = validation.build_timestamp(previous.content if previous else None, snapshot, now)
        content = await self._sign(gun, "timestamp", root, signed)
        return ("timestamp", signed["version"], hashlib.sha256(content).hexdigest(), content)

    async def _fresh_timestamp(self, gun: str, force: bool = False) -> q.TrustFile:
        """The stored timestamp, or a new one when it expired or no longer names the snapshot."""
        stored = await q.fetch_latest_of_each(self.db, gun)
        if "root" not in stored or "snapshot" not in stored:
            raise MetadataNotFound(f"{gun} has no trust data")
        now = self.clock()
        timestamp = stored.get("timestamp")
        snapshot = stored["snapshot"]
        if not force and timestamp is not None and await self._current_until(timestamp, snapshot) > now:
            return timestamp  # the common case, decided without parsing a file (see _current_until)
        root = tuf.parse_root(stored["root"].content)
        files: list[tuple[str, int, str, bytes]] = []
        if tuf.expires_of(snapshot.content) <= now and await self._signing_key(gun, "snapshot", root):
            roles = {role: f.content for role, f in stored.items() if role not in SERVER_ROLES}
            signed = validation.build_snapshot(snapshot.content, roles, now)
            content = await self._sign(gun, "snapshot", root, signed)
            files.append(("snapshot", signed["version"], hashlib.sha256(content).hexdigest(), content))
            snapshot = q.TrustFile("snapshot", signed["version"], files[-1][2], content, time.time())
        if (
            not force
            and not files
            and timestamp is not None
            and tuf.expires_of(timestamp.content) > now
            and validation.names_snapshot(timestamp.content, snapshot.content)
        ):
            return timestamp
        files.append(await self._sign_timestamp(gun, root, timestamp, snapshot.content, now))
        try:
            await self._store(gun, self.resolve_repository(gun), files, {r: f.version for r, f in stored.items()})
        except TrustError:
            # Another request regenerated it first: serve what is stored now.
            latest = await q.fetch_latest(self.db, gun, "timestamp")
            assert latest is not None
            return latest
        role, version, sha, content = files[-1]
        return q.TrustFile(role, version, sha, content, time.time())

    async def _current_until(self, timestamp: q.TrustFile, snapshot: q.TrustFile) -> datetime.datetime:
        """Until when ``timestamp`` may be served as it is: it names ``snapshot`` and neither has
        expired. Files never change, so the answer is remembered by their checksums."""

        async def decide() -> datetime.datetime:
            if not validation.names_snapshot(timestamp.content, snapshot.content):
                return _NEVER
            return min(tuf.expires_of(timestamp.content), tuf.expires_of(snapshot.content))

        return await self._served_until.get_or_load((timestamp.sha256, snapshot.sha256), decide)

    async def refresh_expiring(self) -> int:
        """Re-sign every timestamp that expires soon (run periodically); returns how many."""
        soon = self.clock() + datetime.timedelta(seconds=self.refresh_before_seconds)
        refreshed = 0
        for gun in await self.db.read(q.all_guns):
            latest = await q.fetch_latest(self.db, gun, "timestamp")
            if latest is None or tuf.expires_of(latest.content) > soon:
                continue
            try:
                await self._fresh_timestamp(gun, force=True)
                refreshed += 1
            except TrustError as e:
                log.warning("could not re-sign the timestamp of %s: %s", gun, e)
        return refreshed

    async def delete(self, gun: str) -> None:
        """Delete all metadata of a GUN (the signer keeps its keys, as notary's does)."""
        await self.db.write(q.delete_gun, gun)

    async def changefeed(self, gun: str | None, change_id: int, records: int) -> dict[str, Any]:
        if records == 0:
            records = 100
        newest_first = records < 0
        rows = await self.db.read(q.changes, gun, change_id, min(abs(records), 1000), newest_first)
        return {
            "count": len(rows),
            "records": [
                {
                    "ID": str(c.id),
                    "CreatedAt": datetime.datetime.fromtimestamp(c.created_at, datetime.UTC).isoformat(),
                    "GUN": c.gun,
                    "Version": c.version,
                    "SHA256": c.sha256,
                    "Category": c.category,
                }
                for c in rows
            ],
        }


def _hostname(host: str) -> str:
    """``registry.example:5000`` → ``registry.example``; ``[::1]:5000`` → ``::1``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else host
