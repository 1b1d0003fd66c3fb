"""Lifecycle policies of a repository or a namespace: immutable tags, quota, untagged
retention, tag pruning; and storage usage. Repository admins manage a repository's,
namespace managers (the user, an organization's owners, admins) a namespace's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..metadata import lifecycle as q
from ..registry.services.lifecycle import validate
from .deps import Caller, User
from .errors import BadRequest

router = APIRouter(tags=["lifecycle"])


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class PruneRule(_Body):
    pattern: str = Field("*", description="a glob over tag names")
    keep: int | None = Field(None, description="keep this many newest matching tags")
    max_age_seconds: float | None = Field(None, description="delete matching tags not pushed for this long")


class Lifecycle(_Body):
    immutable_tags: bool = False
    quota_bytes: int | None = Field(None, description="refuse pushes that would use more (distinct blobs)")
    untagged_retention_seconds: float | None = Field(
        None, description="GC keeps untagged manifests this long (default: the GC run's setting)"
    )
    prune_rules: list[PruneRule] = Field(default_factory=list)


class LifecycleOut(Lifecycle):
    usage_bytes: int = Field(description="bytes of the distinct blobs stored here")


def _items(body: Lifecycle) -> list[tuple[str, dict[str, Any]]]:
    items: list[tuple[str, dict[str, Any]]] = []
    try:
        if body.immutable_tags:
            items.append(("immutable", {}))
        if body.quota_bytes is not None:
            items.append(("quota", validate("quota", {"bytes": body.quota_bytes})))
        if body.untagged_retention_seconds is not None:
            items.append(
                ("untagged_retention", validate("untagged_retention", {"seconds": body.untagged_retention_seconds}))
            )
        for rule in body.prune_rules:
            items.append(("prune", validate("prune", rule.model_dump(exclude_none=True))))
    except ValueError as e:
        raise BadRequest(str(e)) from None
    return items


def _out(policies: list[q.Policy], usage: int) -> LifecycleOut:
    out = LifecycleOut(usage_bytes=usage, quota_bytes=None, untagged_retention_seconds=None)
    for p in policies:
        if p.kind == "immutable":
            out.immutable_tags = True
        elif p.kind == "quota":
            out.quota_bytes = int(p.parameters["bytes"])
        elif p.kind == "untagged_retention":
            out.untagged_retention_seconds = float(p.parameters["seconds"])
        elif p.kind == "prune":
            out.prune_rules.append(PruneRule.model_validate(p.parameters))
    return out


async def _save(caller: Caller, scope: str, target: str, body: Lifecycle) -> None:
    items = _items(body)
    await caller.ctx.db.write(q.replace_policies, scope, target, items)
    caller.ctx.registry.lifecycle.forget()
    await caller.audit("lifecycle.update", f"{scope}:{target}", body.model_dump(by_alias=True))


@router.get(
    "/repositories/{namespace}/{repo}/lifecycle",
    response_model=LifecycleOut,
    summary="A repository's lifecycle policies and usage",
)
async def get_repository(caller: User, namespace: str, repo: str) -> LifecycleOut:
    row = await caller.repository(namespace, repo, "read-only")
    policies = await caller.ctx.db.read(q.policies_of, "repository", row.name)
    return _out(policies, await caller.ctx.db.read(q.repository_usage, row.name))


@router.put(
    "/repositories/{namespace}/{repo}/lifecycle",
    response_model=LifecycleOut,
    summary="Set a repository's lifecycle policies (repository admins)",
)
async def put_repository(caller: User, namespace: str, repo: str, body: Lifecycle) -> LifecycleOut:
    row = await caller.repository(namespace, repo, "admin")
    await _save(caller, "repository", row.name, body)
    return await get_repository(caller, namespace, repo)


@router.get(
    "/namespaces/{namespace}/lifecycle",
    response_model=LifecycleOut,
    summary="A namespace's lifecycle policies and usage (they apply to each of its repositories)",
)
async def get_namespace(caller: User, namespace: str) -> LifecycleOut:
    await caller.require_namespace_manager(namespace)
    policies = await caller.ctx.db.read(q.policies_of, "namespace", namespace)
    return _out(policies, await caller.ctx.db.read(q.namespace_usage, namespace))


@router.put(
    "/namespaces/{namespace}/lifecycle",
    response_model=LifecycleOut,
    summary="Set a namespace's lifecycle policies (namespace owners)",
)
async def put_namespace(caller: User, namespace: str, body: Lifecycle) -> LifecycleOut:
    await caller.require_namespace_manager(namespace)
    await _save(caller, "namespace", namespace, body)
    return await get_namespace(caller, namespace)
