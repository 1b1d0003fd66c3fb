"""/v2/<name>/blobs/<digest> — GET (with Range), HEAD, DELETE."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from .. import codes
from ..services.blobs import BlobInfo, BlobService
from . import _common as c

SMALL_BLOB = 256 << 10
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# The prefix a front proxy asks for (see dockyard.ops.nginx): always inside /_dockyard…/.
_ACCEL_PREFIX = re.compile(r"^/_dockyard[A-Za-z0-9_-]*/$")
_BLOBS = "/blobs/"


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) for one satisfiable range; None to serve the whole blob."""
    if not header:
        return None
    m = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if not m or (not m.group(1) and not m.group(2)):
        return None  # several ranges or a form we do not serve: RFC 9110 lets us ignore it
    first, last = m.group(1), m.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
    else:
        suffix = int(last)
        if suffix == 0:
            start, end = size, size - 1  # unsatisfiable
        else:
            start, end = max(size - suffix, 0), size - 1
    if start >= size:
        raise codes.RegistryError(
            codes.RANGE_INVALID,
            f"range {header[:100]!r} is outside the blob's {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


def _headers(info: BlobInfo) -> dict[str, str]:
    return {
        "Docker-Content-Digest": info.digest,
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "ETag": f'"{info.digest}"',
        "Cache-Control": "max-age=31536000",
    }


def _accel_redirect(request: Request, blobs: BlobService, info: BlobInfo) -> str | None:
    """Where a front proxy should send the bytes from (X-Accel-Redirect), or None to serve them.

    Only when the request carries ``X-Dockyard-Accel: <prefix>`` and the blob is a local file.
    The generated nginx config always sets that header itself, replacing any a client sent.
    A client that reaches Dockyard directly and sends it gains nothing: this runs after the
    request was authorized for this blob, and the answer is the same headers with an empty
    body and a path built from the digest the client asked for. The prefix must lie in
    ``/_dockyard…/``, so even a foreign proxy that passed a client's header through and obeyed
    X-Accel-Redirect could only be sent into Dockyard's own reserved location, never elsewhere.
    """
    prefix = request.headers.get("x-dockyard-accel")
    if not prefix or not _ACCEL_PREFIX.fullmatch(prefix) or not info.path.startswith(_BLOBS):
        return None
    if blobs.local_path(info) is None:
        return None
    return prefix + info.path[len(_BLOBS) :]


async def get(request: Request) -> Response:
    name = c.repo_name(request)
    blobs = c.registry(request).blobs
    info = await blobs.stat(name, request.path_params["digest"])
    headers = _headers(info)
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    byte_range = _byte_range(request.headers.get("range"), info.size)
    if request.method == "HEAD":
        headers["Content-Length"] = str(info.size)
        return Response(status_code=200, headers=headers)
    accel = _accel_redirect(request, blobs, info)
    if accel is not None:
        # nginx serves the file, Range included, and ignores this response's body.
        del headers["Accept-Ranges"]  # nginx says it for the file it serves
        return Response(status_code=200, headers={**headers, "X-Accel-Redirect": accel})
    redirect = await blobs.redirect_url(info)
    if redirect is not None:
        return RedirectResponse(redirect, status_code=307, headers={"Docker-Content-Digest": info.digest})
    status, start, length = 200, 0, info.size
    if byte_range is not None:
        status, start, length = 206, byte_range[0], byte_range[1] - byte_range[0] + 1
        headers["Content-Range"] = f"bytes {start}-{byte_range[1]}/{info.size}"
    headers["Content-Length"] = str(length)
    stream = await blobs.open(info, start, length)
    if length <= SMALL_BLOB:
        # Small blobs go out in one piece: a streaming response costs more than the read.
        return Response(b"".join([chunk async for chunk in stream]), status_code=status, headers=headers)
    return StreamingResponse(stream, status_code=status, headers=headers)


async def delete(request: Request) -> Response:
    name = c.repo_name(request)
    await c.registry(request).blobs.delete(name, request.path_params["digest"])
    return Response(status_code=202, headers={"Content-Length": "0"})
