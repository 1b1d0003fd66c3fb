"""/v2/<name>/manifests/<reference> — GET, HEAD, PUT, DELETE."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .. import mediatypes
from . import _common as c


async def get(request: Request) -> Response:
    name = c.repo_name(request)
    accepted = mediatypes.parse_accept(request.headers.getlist("accept"))
    rec = await c.registry(request).manifests.get(
        name, request.path_params["reference"], accepted, pull=request.method == "GET"
    )
    headers = {
        "Docker-Content-Digest": rec.digest,
        "ETag": f'"{rec.digest}"',
        "Content-Length": str(rec.size),
        "Content-Type": rec.media_type,
    }
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(b"" if request.method == "HEAD" else rec.content, status_code=200, headers=headers)


async def put(request: Request) -> Response:
    name = c.repo_name(request)
    service = c.registry(request).manifests
    body = await c.read_capped(request, service.max_manifest_bytes)
    principal = request.scope.get(c.PRINCIPAL)
    pushed_by = None if principal is None or principal.anonymous else principal.name
    result = await service.put(
        name, request.path_params["reference"], body, request.headers.get("content-type"), pushed_by
    )
    headers = {
        "Location": f"/v2/{name}/manifests/{result.digest}",
        "Docker-Content-Digest": result.digest,
        "Content-Length": "0",
    }
    if result.subject:
        headers["OCI-Subject"] = result.subject
    return Response(status_code=201, headers=headers)


async def delete(request: Request) -> Response:
    name = c.repo_name(request)
    await c.registry(request).manifests.delete(name, request.path_params["reference"])
    return Response(status_code=202, headers={"Content-Length": "0"})
