"""The "only signed content" policy: a tag pulls only when a valid signature of its digest exists.

Notary signatures: the current targets role (or a delegation under it) of a GUN naming the
repository lists the tag with the manifest's SHA-256 and has not expired. Every stored file
was verified when it was accepted, so only expiry is left to check here.

cosign and Notation signatures (OCI artifacts, ``trust/artifacts.py``): a signature of the
manifest's digest, found through the referrers or cosign's tag scheme, verifies with a key or
certificate configured for the repository. Attestations never count as signatures here.

A repository without signed_only costs one cached settings lookup (the manifest GET hot path).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from ..metadata import trust as q
from ..metadata.db import Database
from ..storage.driver import StorageDriver
from ..ttlcache import TtlCache
from . import tuf
from .artifacts import ArtifactSignatures, StorageBlobs

SETTINGS_CACHE_SECONDS = 5.0
ARTIFACT_KINDS = ("cosign", "notation")  # signature kinds stored as OCI artifacts


@dataclass(frozen=True)
class NotarySignature:
    gun: str
    role: str  # "targets" or a delegation such as "targets/releases"
    keyids: tuple[str, ...]  # the keys whose signatures the role carries
    digest: str
    size: int
    expires: str


def _digest_of(meta: Any) -> str | None:
    try:
        _, hashes = tuf.file_meta(meta, "target")
    except ValueError:
        return None
    raw = hashes.get("sha256")
    return f"sha256:{raw.hex()}" if raw else None


def _signed_targets(files: dict[str, q.TrustFile], now: datetime.datetime) -> list[tuple[str, tuf.Signed]]:
    out = []
    for role, f in files.items():
        if tuf.base_role(role) != "targets":
            continue
        signed = tuf.parse_signed(role, f.content)
        if signed.expires > now:
            out.append((role, signed))
    return out


class SignaturePolicy:
    def __init__(self, db: Database, storage: StorageDriver | None = None) -> None:
        """Without ``storage`` (blob access) cosign and Notation signatures cannot be read, and
        a repository accepting only those refuses every pull by tag."""
        self.db = db
        self.artifacts = ArtifactSignatures(db, StorageBlobs(db, storage)) if storage is not None else None
        self._cache: TtlCache[str, tuple[bool, str] | None] = TtlCache(SETTINGS_CACHE_SECONDS)
        # (repository, digest) -> the kinds of verified artifact signatures, briefly cached
        self._verified: TtlCache[tuple[str, str], tuple[frozenset[str], list[str]]] = TtlCache(SETTINGS_CACHE_SECONDS)

    def forget(self, repository: str | None = None) -> None:
        """Drop cached settings (and verification results) after the API changes them."""
        if repository is None:
            self._cache.clear()
            self._verified.clear()
        else:
            self._cache.discard(lambda name: name != repository)
            self._verified.discard(lambda key: key[0] != repository)

    async def artifact_signatures(self, repository: str, digest: str) -> tuple[frozenset[str], list[str]]:
        """The kinds of verified cosign/Notation signatures of ``digest``, and why the others failed."""

        async def verify() -> tuple[frozenset[str], list[str]]:
            assert self.artifacts is not None
            found = [f for f in await self.artifacts.find(repository, digest) if f.kind in ARTIFACT_KINDS]
            kinds = frozenset(f.kind for f in found if f.verdict.verified)
            reasons = [f"{f.kind} {f.artifact}: {f.verdict.reason}" for f in found if not f.verdict.verified]
            return kinds, reasons

        return await self._verified.get_or_load((repository, digest), verify)

    async def _settings(self, repository: str) -> tuple[bool, str] | None:
        return await self._cache.get_or_load(repository, lambda: self.db.read(q.signature_policy, repository))

    async def notary_signatures(self, repository: str) -> dict[str, list[NotarySignature]]:
        """Tag → the valid Notary signatures of it, over every GUN naming the repository."""
        now = datetime.datetime.now(datetime.UTC)
        out: dict[str, list[NotarySignature]] = {}
        for gun in await self.db.read(q.guns_of, repository):
            files = await self.db.read(q.latest_of_each, gun)
            for role, signed in _signed_targets(files, now):
                targets = signed.signed.get("targets") or {}
                keyids = tuple(sorted({s.keyid for s in signed.signatures}))
                for tag, meta in targets.items():
                    digest = _digest_of(meta)
                    if digest is None:
                        continue
                    size = meta.get("length", 0) if isinstance(meta, dict) else 0
                    out.setdefault(tag, []).append(
                        NotarySignature(gun, role, keyids, digest, size, tuf.format_time(signed.expires))
                    )
        return out

    async def check(self, repository: str, tag: str, digest: str) -> str | None:
        """None when ``repository:tag`` (at ``digest``) may be pulled by tag; else the reason."""
        settings = await self._settings(repository)
        if settings is None or not settings[0]:
            return None
        accepted = [k.strip() for k in settings[1].split(",") if k.strip()]
        notary_refusal: str | None = None
        if "notary" in accepted:
            signatures = (await self.notary_signatures(repository)).get(tag, [])
            if any(s.digest == digest for s in signatures):
                return None
            if signatures:
                notary_refusal = (
                    f"the repository accepts only signed content, and the signed digest of this tag "
                    f"({signatures[0].digest}) is not the one it points to ({digest})"
                )
        wanted = [k for k in accepted if k in ARTIFACT_KINDS]
        unverified: list[str] = []
        if wanted and self.artifacts is not None:
            kinds, unverified = await self.artifact_signatures(repository, digest)
            if kinds.intersection(wanted):
                return None
        if notary_refusal is not None:
            return notary_refusal
        refusal = (
            f"the repository accepts only signed content ({', '.join(accepted) or 'no signature kinds'}),"
            f" and no valid signature of {digest} exists for this tag"
        )
        if wanted and self.artifacts is None:
            refusal += "; this server cannot read artifact signatures (no blob storage given to the policy)"
        if unverified:
            refusal += f"; unverified: {'; '.join(unverified[:3])}"
        return refusal
