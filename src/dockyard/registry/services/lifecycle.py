"""Lifecycle policies as the registry enforces them: immutable tags, storage quotas, untagged
retention for GC, and tag pruning (run as a job).

A repository's policies are its own plus its namespace's: a tag is immutable if either says
so, both quotas hold, the repository's untagged retention wins over its namespace's. The
effective policy is cached for a few seconds per process, so a push to a repository without
policies costs one dictionary lookup.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ...metadata import lifecycle as q
from ...metadata import queries
from ...metadata.db import Database
from ...ttlcache import TtlCache
from .. import codes

CACHE_SECONDS = 5.0
QUOTA_WARNING_RATIO = 0.8

# (kind, repository, data): where quota warnings go (webhooks).
Notify = Callable[[str, str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class PruneRule:
    pattern: str  # a glob over tag names ("*" = all)
    keep: int | None  # keep this many newest matching tags
    max_age_seconds: float | None  # delete matching tags not updated for this long

    def describe(self) -> str:
        parts = [f"tags {self.pattern!r}"]
        if self.keep is not None:
            parts.append(f"keep the newest {self.keep}")
        if self.max_age_seconds is not None:
            parts.append(f"older than {self.max_age_seconds:g}s")
        return ", ".join(parts)


@dataclass(frozen=True)
class Effective:
    immutable: bool = False
    repository_quota: int | None = None
    namespace_quota: int | None = None
    untagged_retention_seconds: float | None = None
    prune: tuple[PruneRule, ...] = field(default_factory=tuple)

    @property
    def has_quota(self) -> bool:
        return self.repository_quota is not None or self.namespace_quota is not None


def effective(policies: list[q.Policy]) -> Effective:
    immutable = False
    repo_quota = ns_quota = None
    retention: dict[str, float] = {}
    prune: list[PruneRule] = []
    for p in policies:
        if p.kind == "immutable":
            immutable = True
        elif p.kind == "quota":
            if p.scope == "repository":
                repo_quota = int(p.parameters["bytes"])
            else:
                ns_quota = int(p.parameters["bytes"])
        elif p.kind == "untagged_retention":
            retention[p.scope] = float(p.parameters["seconds"])
        elif p.kind == "prune":
            prune.append(
                PruneRule(
                    str(p.parameters.get("pattern", "*")),
                    p.parameters.get("keep"),
                    p.parameters.get("max_age_seconds"),
                )
            )
    return Effective(
        immutable, repo_quota, ns_quota, retention.get("repository", retention.get("namespace")), tuple(prune)
    )


def validate(kind: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A policy's parameters, checked; ValueError with a readable message otherwise."""

    def number(name: str, minimum: float = 0, integer: bool = True) -> Any:
        value = parameters.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            raise ValueError(f"{kind}.{name}: expected a {'whole ' if integer else ''}number, got {value!r}")
        if value < minimum:
            raise ValueError(f"{kind}.{name}: must be at least {minimum}")
        return value

    if kind == "immutable":
        return {}
    if kind == "quota":
        size = number("bytes", 1)
        if size is None:
            raise ValueError("quota.bytes: required (the largest storage use allowed, in bytes)")
        return {"bytes": size}
    if kind == "untagged_retention":
        seconds = number("seconds", 0, integer=False)
        if seconds is None:
            raise ValueError("untagged_retention.seconds: required")
        return {"seconds": seconds}
    if kind == "prune":
        pattern = parameters.get("pattern", "*")
        if not isinstance(pattern, str) or not pattern or len(pattern) > 128:
            raise ValueError("prune.pattern: a glob over tag names, e.g. 'pr-*' or '*'")
        keep, age = number("keep", 0), number("max_age_seconds", 0, integer=False)
        if keep is None and age is None:
            raise ValueError("prune: give keep (newest tags kept) and/or max_age_seconds")
        unknown = set(parameters) - {"pattern", "keep", "max_age_seconds"}
        if unknown:
            raise ValueError(f"prune: unknown setting {sorted(unknown)[0]}")
        return {"pattern": pattern, "keep": keep, "max_age_seconds": age}
    raise ValueError(f"unknown policy kind {kind!r} (immutable, quota, untagged_retention, prune)")


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"  # pragma: no cover


class LifecycleService:
    def __init__(self, db: Database, notify: Notify | None = None) -> None:
        self.db = db
        self.notify = notify
        self._cache: TtlCache[str, Effective] = TtlCache(CACHE_SECONDS)

    def forget(self) -> None:
        self._cache.clear()

    async def for_repository(self, repository: str) -> Effective:
        async def load() -> Effective:
            return effective(await self.db.read(q.policies_for, repository))

        return await self._cache.get_or_load(repository, load)

    # --- immutable tags ---------------------------------------------------------------------

    @staticmethod
    def check_tag_move(conn: Any, repo_id: int, repository: str, tag: str, digest: str) -> None:
        """Inside the manifest's write transaction: an immutable tag may not move."""
        current = queries.tag_digest(conn, repo_id, tag)
        if current is not None and current != digest:
            raise codes.RegistryError(
                codes.DENIED,
                f"tag {tag} of {repository} is immutable: it points at {current}; push under a new tag",
                detail={"policy": "immutable", "tag": tag, "digest": current},
            )

    async def check_delete(self, repository: str, reference: str, tagged: list[str]) -> None:
        if (await self.for_repository(repository)).immutable and tagged:
            raise codes.RegistryError(
                codes.DENIED,
                f"{repository} has immutable tags: {', '.join(tagged[:5])} cannot be deleted",
                detail={"policy": "immutable", "reference": reference},
            )

    # --- quotas -------------------------------------------------------------------------------

    async def check_quota(self, repository: str, incoming: int, digest: str | None = None) -> None:
        """Refuse, before the bytes are stored, a push that would take a repository or its
        namespace over quota. ``digest`` (when known) lets a blob already there count as 0."""
        policy = await self.for_repository(repository)
        if not policy.has_quota or incoming <= 0:
            return
        namespace = repository.split("/", 1)[0]
        in_repo = in_namespace = False
        if digest is not None:
            in_repo, in_namespace = await self.db.read(q.blob_linked, repository, digest)
        checks = []
        if policy.repository_quota is not None and not in_repo:
            used = await self.db.read(q.repository_usage, repository)
            checks.append(("repository", repository, used, policy.repository_quota))
        if policy.namespace_quota is not None and not in_namespace:
            used = await self.db.read(q.namespace_usage, namespace)
            checks.append(("namespace", namespace, used, policy.namespace_quota))
        for scope, name, used, quota in checks:
            if used + incoming > quota:
                raise codes.RegistryError(
                    codes.DENIED,
                    f"quota exceeded: {scope} {name} uses {_human(used)} of its {_human(quota)} quota;"
                    f" this push needs {_human(incoming)} more",
                    detail={"policy": "quota", scope: name, "used": used, "quota": quota, "incoming": incoming},
                )
            if self.notify is not None and used + incoming >= QUOTA_WARNING_RATIO * quota > used:
                await self.notify(
                    "quota.warning",
                    repository,
                    {"scope": scope, "name": name, "used": used + incoming, "quota": quota},
                )

    # --- pruning ------------------------------------------------------------------------------

    async def prune_plan(self, now: float | None = None) -> list[tuple[str, str, str]]:
        """(repository, tag, rule) for every tag the prune policies would delete now."""
        now = time.time() if now is None else now
        plan: list[tuple[str, str, str]] = []
        for policy in await self.db.read(q.all_policies, "prune"):
            rule = effective([policy]).prune[0]
            for repository in await self.db.read(q.repositories_under, policy.scope, policy.target):
                if (await self.for_repository(repository)).immutable:
                    continue  # immutable tags are never pruned
                rows = [
                    (t, at)
                    for t, at in await self.db.read(q.tag_rows, repository)
                    if fnmatch.fnmatchcase(t, rule.pattern)
                ]
                rows.sort(key=lambda r: r[1], reverse=True)
                doomed = set()
                if rule.keep is not None:
                    doomed |= {t for t, _ in rows[rule.keep :]}
                if rule.max_age_seconds is not None:
                    doomed |= {t for t, at in rows if now - at > rule.max_age_seconds}
                plan += [(repository, t, rule.describe()) for t in sorted(doomed)]
        return sorted(set(plan))

    async def prune(self, dry_run: bool = False) -> list[tuple[str, str, str]]:
        """Delete the tags the prune policies select; returns (repository, tag, rule) of each.
        Their manifests become untagged: GC frees them after their retention."""
        plan = await self.prune_plan()
        if dry_run:
            return plan
        done = []
        for repository, tag, rule in plan:
            repo_id = await self.db.read(queries.repository_id, repository)
            if repo_id is not None and await self.db.write(queries.delete_tag, repo_id, tag):
                done.append((repository, tag, rule))
                if self.notify is not None:
                    await self.notify("tag.delete", repository, {"tag": tag, "reason": f"pruned: {rule}"})
        return done
