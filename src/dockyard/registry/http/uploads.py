"""/v2/<name>/blobs/uploads/ — parse, call the upload service, shape the response."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..reference import NAME_RE
from . import _common as c


def _session_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": c.upload_location(name, upload_id),
        "Range": c.upload_range(size),
        "Docker-Upload-UUID": upload_id,
        "Content-Length": "0",
    }


def _created(name: str, digest: str) -> Response:
    return Response(
        status_code=201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": digest,
            "Content-Length": "0",
        },
    )


async def start(request: Request) -> Response:
    name = c.repo_name(request)
    uploads = c.registry(request).uploads
    q = request.query_params
    mount = q.get("mount")
    if mount and not request.scope.get(c.MOUNT_DENIED):
        source = q.get("from")
        # A mount that cannot happen is not an error: the client just uploads.
        if source is None or NAME_RE.fullmatch(source):
            blob = await uploads.mount(name, mount, source)
            if blob is not None:
                return _created(name, blob.digest)
    digest = q.get("digest")
    if digest is not None:
        blob = await uploads.monolithic(name, digest, c.body_stream(request), c.content_length(request))
        return _created(name, blob.digest)
    state = await uploads.start(name)
    return Response(status_code=202, headers=_session_headers(name, state.id, state.size))


async def patch(request: Request) -> Response:
    name = c.repo_name(request)
    upload_id = request.path_params["upload_id"]
    state = await c.registry(request).uploads.append(
        name,
        upload_id,
        c.body_stream(request),
        request.headers.get("content-range"),
        c.content_length(request),
    )
    return Response(status_code=202, headers=_session_headers(name, upload_id, state.size))


async def finish(request: Request) -> Response:
    name = c.repo_name(request)
    upload_id = request.path_params["upload_id"]
    body = c.body_stream(request) if c.has_body(request) else None
    blob = await c.registry(request).uploads.finish(
        name,
        upload_id,
        request.query_params.get("digest"),
        body,
        request.headers.get("content-range"),
        c.content_length(request),
    )
    return _created(name, blob.digest)


async def status(request: Request) -> Response:
    name = c.repo_name(request)
    upload_id = request.path_params["upload_id"]
    state = await c.registry(request).uploads.status(name, upload_id)
    return Response(status_code=204, headers=_session_headers(name, upload_id, state.size))


async def cancel(request: Request) -> Response:
    name = c.repo_name(request)
    upload_id = request.path_params["upload_id"]
    await c.registry(request).uploads.cancel(name, upload_id)
    return Response(status_code=204, headers={"Content-Length": "0"})
