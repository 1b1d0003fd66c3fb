"""Content discovery: /v2/<name>/tags/list, /v2/_catalog, /v2/<name>/referrers/<digest>."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import mediatypes
from . import _common as c


async def tags(request: Request) -> Response:
    name = c.repo_name(request)
    n = c.page_size(request)
    page = await c.registry(request).manifests.tags(name, n, request.query_params.get("last"))
    headers = {}
    if page.more and page.items:
        headers["Link"] = c.next_link(request.url.path, page.items[-1], n or len(page.items))
    return JSONResponse({"name": name, "tags": page.items}, headers=headers)


async def catalog(request: Request) -> Response:
    n = c.page_size(request)
    page = await c.registry(request).manifests.catalog(
        n, request.query_params.get("last"), c.visibility_filter(request)
    )
    headers = {}
    if page.more and page.items:
        headers["Link"] = c.next_link(request.url.path, page.items[-1], n or len(page.items))
    return JSONResponse({"repositories": page.items}, headers=headers)


async def referrers(request: Request) -> Response:
    name = c.repo_name(request)
    artifact_type = request.query_params.get("artifactType")
    entries = await c.registry(request).manifests.referrers(name, request.path_params["digest"], artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type is not None else {}
    body = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": entries}
    return JSONResponse(body, headers=headers, media_type=mediatypes.OCI_INDEX)


async def base(request: Request) -> Response:
    return JSONResponse({})
