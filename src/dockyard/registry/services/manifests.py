"""Manifests, tags, the catalog and referrers: the rules, apart from HTTP."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...metadata import gc, queries
from ...metadata.db import Database
from .. import codes, mediatypes
from .. import digest as digests
from .. import manifest as manifests
from ..reference import check_tag
from .lifecycle import LifecycleService
from .pulls import PullCounter


@dataclass(frozen=True, slots=True)
class PutResult:
    digest: str
    subject: str | None


# (repository, tag, digest) -> None to allow a pull by tag, or the reason it is refused
# (the "only signed content" policy of dockyard.trust.policy).
TagPolicy = Callable[[str, str, str], Awaitable[str | None]]


class EventSink(Protocol):
    """Where registry events go (webhooks): kind is "manifest.push", "tag.push",
    "manifest.delete" or "tag.delete"; emit must return quickly and never raise."""

    async def emit(self, kind: str, repository: str, data: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    more: bool  # another page follows


class ManifestService:
    def __init__(
        self,
        db: Database,
        *,
        delete_enabled: bool,
        validate_index_children: bool,
        max_manifest_bytes: int,
        tags_max_entries: int,
        catalog_max_entries: int,
        tag_policy: TagPolicy | None = None,
        events: EventSink | None = None,
        lifecycle: LifecycleService | None = None,
        pulls: PullCounter | None = None,
    ) -> None:
        self.db = db
        self.pulls = pulls
        self.lifecycle = lifecycle
        self.tag_policy = tag_policy
        self.events = events
        self.delete_enabled = delete_enabled
        self.validate_index_children = validate_index_children
        self.max_manifest_bytes = max_manifest_bytes
        self.tags_max = tags_max_entries
        self.catalog_max = catalog_max_entries

    async def _unknown(self, repo: str, reference: str) -> codes.RegistryError:
        if await self.db.read(queries.repository_id, repo) is None:
            return codes.RegistryError(codes.NAME_UNKNOWN, f"repository {repo} is not known", detail={"name": repo})
        return codes.RegistryError(
            codes.MANIFEST_UNKNOWN,
            f"manifest {reference} is unknown to repository {repo}",
            detail={"reference": reference},
        )

    async def get(
        self, repo: str, reference: str, accepted: frozenset[str], *, pull: bool = False
    ) -> queries.ManifestRecord:
        """The manifest a reference names, for the Accept header; ``pull`` (a GET, not a HEAD)
        counts it as a pull of the repository, and of the tag when by tag."""
        rec = await self._get(repo, reference, accepted)
        if pull and self.pulls is not None:
            self.pulls.record(repo, None if digests.is_digest(reference) else reference)
        return rec

    async def _get(self, repo: str, reference: str, accepted: frozenset[str]) -> queries.ManifestRecord:
        by_digest = digests.is_digest(reference)
        if by_digest:
            digests.parse(reference)
            rec = await queries.manifest_by_digest(self.db, repo, reference)
        else:
            check_tag(reference)
            rec = await queries.manifest_by_tag(self.db, repo, reference)
        if rec is None:
            raise await self._unknown(repo, reference)
        if not by_digest and self.tag_policy is not None:
            refused = await self.tag_policy(repo, reference, rec.digest)
            if refused:
                raise codes.RegistryError(
                    codes.DENIED,
                    f"{repo}:{reference} may not be pulled by tag: {refused}",
                    detail={"policy": "signed_only", "tag": reference, "digest": rec.digest},
                )
        if mediatypes.accepts(accepted, rec.media_type):
            return rec
        if not by_digest and rec.media_type in mediatypes.INDEX_TYPES:
            child = await self._legacy_child(repo, rec, accepted)
            if child is not None:
                return child
        raise codes.RegistryError(
            codes.MANIFEST_UNKNOWN,
            f"manifest {reference} is a {rec.media_type}, which the Accept header does not allow",
            detail={"mediaType": rec.media_type},
        )

    async def _legacy_child(
        self, repo: str, index: queries.ManifestRecord, accepted: frozenset[str]
    ) -> queries.ManifestRecord | None:
        """Old clients that do not accept lists get the linux/amd64 image, as the reference does."""
        try:
            doc = json.loads(index.content)
        except ValueError:
            return None
        for entry in doc.get("manifests") or []:
            platform = entry.get("platform") or {}
            if (
                platform.get("os") == "linux"
                and platform.get("architecture") == "amd64"
                and mediatypes.accepts(accepted, entry.get("mediaType", ""))
            ):
                return await queries.manifest_by_digest(self.db, repo, entry.get("digest", ""))
        return None

    async def put(
        self, repo: str, reference: str, body: bytes, content_type: str | None, pushed_by: str | None = None
    ) -> PutResult:
        if len(body) > self.max_manifest_bytes:
            raise codes.RegistryError(codes.SIZE_TOO_LARGE, f"manifest is larger than {self.max_manifest_bytes} bytes")
        tag: str | None = None
        if digests.is_digest(reference):
            wanted = digests.parse(reference)
            computed = digests.of_bytes(body, wanted.algorithm)
            if computed != wanted:
                raise codes.RegistryError(
                    codes.DIGEST_INVALID,
                    f"manifest digest {computed} does not match the digest in the URL {wanted}",
                    detail={"expected": str(wanted), "actual": str(computed)},
                )
        else:
            tag = check_tag(reference)
            computed = digests.of_bytes(body)
        parsed = manifests.parse(body, content_type, computed)
        new = queries.NewManifest(
            digest=parsed.digest,
            media_type=parsed.media_type,
            content=body,
            artifact_type=parsed.effective_artifact_type,
            subject_digest=parsed.subject.digest if parsed.subject else None,
            annotations=parsed.annotations,
            blob_refs=tuple(d.digest for d in ((parsed.config,) if parsed.config else ()) + parsed.layers),
            manifest_refs=tuple(d.digest for d in parsed.children),
            pushed_by=pushed_by,
        )
        immutable = self.lifecycle is not None and (await self.lifecycle.for_repository(repo)).immutable
        await self.db.write(self._store, repo, new, tag, immutable)
        if self.events is not None:
            event = {"digest": parsed.digest, "mediaType": new.media_type, "size": len(body)}
            await self.events.emit("manifest.push", repo, event)
            if tag is not None:
                await self.events.emit("tag.push", repo, {**event, "tag": tag})
        return PutResult(parsed.digest, new.subject_digest)

    def _store(self, conn: Any, repo: str, new: queries.NewManifest, tag: str | None, immutable: bool) -> None:
        # Checked and written in one transaction, so a concurrent delete cannot slip between.
        repo_id = queries.ensure_repository(conn, repo)
        # First: hold the blobs (a GC sweep of them in progress finishes, and the check below
        # sees its result; none starts until this commits).
        gc.hold(conn, new.blob_refs)
        missing = queries.missing_blobs(conn, repo_id, new.blob_refs)
        if self.validate_index_children:
            missing += queries.missing_manifests(conn, repo_id, new.manifest_refs)
        if missing:
            errors = [
                codes.RegistryError(codes.MANIFEST_BLOB_UNKNOWN, f"blob unknown to repository: {d}", detail=d)
                for d in missing
            ]
            first = errors[0]
            for e in errors[1:]:
                first.also(e)
            raise first
        if immutable and tag is not None:
            LifecycleService.check_tag_move(conn, repo_id, repo, tag, new.digest)
        queries.put_manifest(conn, repo_id, new, tag)

    async def delete(self, repo: str, reference: str) -> None:
        if not self.delete_enabled:
            raise codes.RegistryError(codes.UNSUPPORTED, "deletion is disabled on this registry")
        if digests.is_digest(reference):
            digests.parse(reference)
        else:
            check_tag(reference)
        repo_id = await self.db.read(queries.repository_id, repo)
        if repo_id is None:
            raise codes.RegistryError(codes.NAME_UNKNOWN, f"repository {repo} is not known", detail={"name": repo})
        by_digest = digests.is_digest(reference)
        if self.lifecycle is not None:
            if by_digest:
                tagged = await self.db.read(queries.tags_of_digest, repo_id, reference)
            else:
                tagged = [reference] if await self.db.read(queries.tag_digest, repo_id, reference) else []
            await self.lifecycle.check_delete(repo, reference, tagged)
        fn = queries.delete_manifest if by_digest else queries.delete_tag
        if not await self.db.write(fn, repo_id, reference):
            raise codes.RegistryError(
                codes.MANIFEST_UNKNOWN,
                f"manifest {reference} is unknown to repository {repo}",
                detail={"reference": reference},
            )
        if self.events is not None:
            if by_digest:
                await self.events.emit("manifest.delete", repo, {"digest": reference})
            else:
                await self.events.emit("tag.delete", repo, {"tag": reference})

    async def tags(self, repo: str, n: int | None, last: str | None) -> Page:
        repo_id = await self.db.read(queries.repository_id, repo)
        if repo_id is None:
            raise codes.RegistryError(codes.NAME_UNKNOWN, f"repository {repo} is not known", detail={"name": repo})
        limit = self.tags_max if n is None else min(n, self.tags_max)
        if limit == 0:
            return Page([], False)
        rows = await self.db.read(queries.list_tags, repo_id, last, limit + 1)
        return Page(rows[:limit], len(rows) > limit)

    async def catalog(
        self, n: int | None, last: str | None, visible: Callable[[list[str]], Awaitable[list[str]]] | None = None
    ) -> Page:
        """A page of repository names; with ``visible``, only those it keeps (pages are
        filled from further rows, so a caller never sees a short page while more exist)."""
        if n is not None and n > self.catalog_max:
            raise codes.RegistryError(
                codes.PAGINATION_NUMBER_INVALID, f"n must be at most {self.catalog_max}", detail={"n": n}
            )
        limit = min(100, self.catalog_max) if n is None else n
        if limit == 0:
            return Page([], False)
        items: list[str] = []
        cursor = last
        while True:
            rows = await self.db.read(queries.list_repositories, cursor, limit + 1)
            batch = rows[:limit]
            kept = await visible(batch) if visible is not None else batch
            for name in kept:
                if len(items) == limit:
                    return Page(items, True)
                items.append(name)
            if len(rows) <= limit:
                return Page(items, False)
            if len(items) == limit:
                return Page(items, True)
            cursor = batch[-1]

    async def referrers(self, repo: str, digest: str, artifact_type: str | None) -> list[dict[str, Any]]:
        digests.parse(digest)
        repo_id = await self.db.read(queries.repository_id, repo)
        if repo_id is None:
            return []  # the API must answer 200 with an empty index, never 404
        out = []
        for r in await self.db.read(queries.referrers, repo_id, digest, artifact_type):
            desc: dict[str, Any] = {"mediaType": r.media_type, "digest": r.digest, "size": r.size}
            if r.artifact_type:
                desc["artifactType"] = r.artifact_type
            if r.annotations:
                desc["annotations"] = r.annotations
            out.append(desc)
        return out
