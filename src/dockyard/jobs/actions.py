"""The registry's own actions: ``gc``, ``prune`` and ``upload-cleanup``.

Each checks its parameters strictly (a job or schedule with a wrong one is refused when it
is made, with a message saying which), logs what it does, reports progress and stops at a
checkpoint when cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..registry.services import Registry
from ..webhooks import WebhookService
from .registry import ActionRegistry, BadParameters, flag_param, number_param, only_params
from .runner import JobContext


def _non_negative(parameters: dict[str, Any], key: str, default: float) -> float:
    value = number_param(parameters, key, default)
    if value < 0:
        raise BadParameters(f"parameter {key}: expected 0 or more, got {value:g}")
    return value


@dataclass(frozen=True)
class GcOptions:
    grace_period_seconds: float
    untagged_retention_seconds: float | None  # None: untagged manifests are kept
    dry_run: bool

    @classmethod
    def parse(cls, p: dict[str, Any]) -> GcOptions:
        only_params(p, "gc", ("grace_period_seconds", "untagged_retention_seconds", "dry_run"))
        retention = p.get("untagged_retention_seconds")
        return cls(
            _non_negative(p, "grace_period_seconds", 3600),
            None if retention is None else _non_negative(p, "untagged_retention_seconds", 0),
            flag_param(p, "dry_run", False),
        )


def _prune_options(p: dict[str, Any]) -> bool:
    only_params(p, "prune", ("dry_run",))
    return flag_param(p, "dry_run", False)


def register_registry_actions(
    actions: ActionRegistry, registry: Registry, events: WebhookService | None, settings: Settings
) -> None:
    def upload_options(p: dict[str, Any]) -> float:
        only_params(p, "upload-cleanup", ("max_age_seconds",))
        return _non_negative(p, "max_age_seconds", settings.registry.upload_expiry_seconds)

    async def gc(ctx: JobContext) -> dict[str, Any]:
        """Online garbage collection; the summary is the GC report."""
        options = GcOptions.parse(ctx.parameters)
        dry_run = options.dry_run
        # The collector's log and progress are plain callbacks; what they report is written
        # out at its checkpoints (one per batch) and at the end.
        lines: list[str] = []
        phases: set[str] = set()
        pending: list[tuple[int, int]] = []  # the newest (done, total) not yet written

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in phases:
                phases.add(phase)
                lines.append(f"{phase}: {total} to go through")
            pending[:] = [(done, total)]

        async def flush() -> None:
            while lines:
                await ctx.log(lines.pop(0))
            if pending:
                await ctx.progress(*pending.pop())

        async def checkpoint() -> None:
            await flush()
            await ctx.checkpoint()

        report = await registry.gc.run(
            grace_period_seconds=options.grace_period_seconds,
            untagged_retention_seconds=options.untagged_retention_seconds,
            upload_timeout_seconds=None if dry_run else settings.registry.upload_expiry_seconds,
            dry_run=dry_run,
            log=lines.append,
            progress=progress,
            checkpoint=checkpoint,
        )
        await flush()
        summary = report.as_json()
        if not dry_run and events is not None:
            await events.emit("gc.done", None, summary)
        return summary

    async def prune(ctx: JobContext) -> dict[str, Any]:
        """Delete the tags the prune policies select (their manifests become untagged)."""
        dry_run = _prune_options(ctx.parameters)
        await ctx.checkpoint()
        pruned = await registry.lifecycle.prune(dry_run=dry_run)
        for repository, tag, rule in pruned:
            await ctx.log(f"{'would prune' if dry_run else 'pruned'} {repository}:{tag} ({rule})")
        await ctx.progress(len(pruned), len(pruned))
        return {
            "dry_run": dry_run,
            "tags_deleted": len(pruned),
            "tags": [{"repository": r, "tag": t, "rule": rule} for r, t, rule in pruned],
        }

    async def upload_cleanup(ctx: JobContext) -> dict[str, Any]:
        """Remove upload sessions untouched for longer than max_age_seconds (default:
        registry.upload_expiry_seconds), with their partial data."""
        max_age = upload_options(ctx.parameters)
        await ctx.checkpoint()
        removed = await registry.uploads.expire(max_age)
        await ctx.log(f"removed {removed} upload sessions untouched for {max_age:g} s")
        return {"uploads_removed": removed, "max_age_seconds": max_age}

    actions.register(
        "gc",
        gc,
        max_attempts=3,
        description="online garbage collection (grace_period_seconds, untagged_retention_seconds, dry_run)",
        check=GcOptions.parse,
    )
    actions.register(
        "prune",
        prune,
        max_attempts=3,
        description="delete tags by the prune policies (dry_run)",
        check=_prune_options,
    )
    actions.register(
        "upload-cleanup",
        upload_cleanup,
        max_attempts=3,
        description="remove abandoned upload sessions (max_age_seconds)",
        check=upload_options,
    )
