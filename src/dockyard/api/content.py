"""/repositories/{namespace}/{repo}/manifests/{reference}: what a tag or digest holds, for
people (the web UI's tag page): the manifest, its layers, its image config and history, its
platforms when it is an index, and the artifacts that refer to it (signatures, SBOMs)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from pydantic import Field

from ..metadata import admin, queries
from ..registry import codes, mediatypes
from ..registry import digest as digests
from ..registry.reference import check_tag
from .deps import Anyone
from .errors import BadRequest, NotFound
from .schemas import Schema, platforms_of

router = APIRouter(tags=["repositories"])

CONFIG_MAX = 1 << 20  # larger configs are not shown (they are JSON; a real one is a few kB)


class Descriptor(Schema):
    media_type: str = ""
    digest: str
    size: int
    platform: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, Any] | None = None


class ManifestDetail(Schema):
    repository: str
    reference: str
    digest: str
    media_type: str
    size: int
    total_size: int = Field(
        description="bytes a pull fetches: an image's manifest, config and layers; an index's sum of its images'"
    )
    manifest: Any = Field(description="the manifest as pushed, parsed")
    layers: list[Descriptor]
    config: Any = Field(None, description="the image configuration (with its history), when an image")
    platforms: list[str] = Field(description="of an index: the platforms it lists")
    children: list[Descriptor] = Field(description="of an index: its manifests")
    referrers: list[Descriptor] = Field(description="artifacts whose subject is this manifest")


def _descriptor(d: Any) -> Descriptor | None:
    if not isinstance(d, dict) or not isinstance(d.get("digest"), str):
        return None
    p = d.get("platform")
    platform = None
    if isinstance(p, dict) and p.get("os"):
        platform = f"{p.get('os')}/{p.get('architecture', '')}" + (f"/{p['variant']}" if p.get("variant") else "")
    size = d.get("size")
    return Descriptor(
        media_type=str(d.get("mediaType", "")),
        digest=d["digest"],
        size=size if isinstance(size, int) else 0,
        platform=platform,
        artifact_type=d.get("artifactType") if isinstance(d.get("artifactType"), str) else None,
        annotations=d.get("annotations") if isinstance(d.get("annotations"), dict) else None,
    )


@router.get(
    "/repositories/{namespace}/{repo}/manifests/{reference}",
    response_model=ManifestDetail,
    summary="A tag's or digest's manifest, layers, config and referrers",
)
async def manifest(caller: Anyone, namespace: str, repo: str, reference: str) -> ManifestDetail:
    row = await caller.repository(namespace, repo)
    ctx = caller.ctx
    try:
        if digests.is_digest(reference):
            digests.parse(reference)
            rec = await queries.manifest_by_digest(ctx.db, row.name, reference)
        else:
            check_tag(reference)
            rec = await queries.manifest_by_tag(ctx.db, row.name, reference)
    except codes.RegistryError as e:
        raise BadRequest(f"invalid reference {reference[:100]!r}: {e}") from None
    if rec is None:
        raise NotFound(f"{row.name} has no manifest {reference}")
    try:
        doc = json.loads(rec.content)
    except ValueError:
        doc = None
    doc_map: dict[str, Any] = doc if isinstance(doc, dict) else {}
    layers = [d for d in map(_descriptor, doc_map.get("layers") or []) if d is not None]
    children = [d for d in map(_descriptor, doc_map.get("manifests") or []) if d is not None]
    config = None
    config_desc = _descriptor(doc_map.get("config"))
    if rec.media_type in mediatypes.IMAGE_TYPES and config_desc is not None and config_desc.size <= CONFIG_MAX:
        config = await _read_json(caller, row.name, config_desc.digest)
    referrers = await ctx.registry.manifests.referrers(row.name, rec.digest, None)
    total = await ctx.db.read(admin.pull_size, row.id, rec.digest)
    return ManifestDetail(
        repository=row.name,
        reference=reference,
        digest=rec.digest,
        media_type=rec.media_type,
        size=rec.size,
        total_size=total if total is not None else rec.size,
        manifest=doc,
        layers=layers,
        config=config,
        platforms=platforms_of(rec.content),
        children=children,
        referrers=[d for d in map(_descriptor, referrers) if d is not None],
    )


async def _read_json(caller: Anyone, repo: str, digest: str) -> Any:
    """A small JSON blob of the repository, or None when missing or not JSON."""
    blobs = caller.ctx.registry.blobs
    try:
        info = await blobs.stat(repo, digest)
        chunks = [chunk async for chunk in await blobs.open(info, 0, CONFIG_MAX)]
        return json.loads(b"".join(chunks))
    except (codes.RegistryError, ValueError):
        return None
