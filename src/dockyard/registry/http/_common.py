"""Small parsing helpers shared by the /v2/ handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.requests import ClientDisconnect, Request

from .. import codes
from ..reference import check_name

if TYPE_CHECKING:
    from ..services import Registry

# Set on the ASGI scope by the auth gate: who is asking, and whether a mount is allowed.
PRINCIPAL = "dockyard.principal"
MOUNT_DENIED = "dockyard.mount_denied"


def registry(request: Request) -> Registry:
    reg: Registry = request.app.state.registry
    return reg


def visibility_filter(request: Request) -> Callable[[list[str]], Awaitable[list[str]]] | None:
    """What the caller may see of a list of repositories (None: everything, auth is off)."""
    auth = request.app.state.auth
    principal = request.scope.get(PRINCIPAL)
    if auth is None or principal is None:
        return None

    async def visible(names: list[str]) -> list[str]:
        result: list[str] = await auth.access.visible(principal, names)
        return result

    return visible


def repo_name(request: Request) -> str:
    return check_name(request.path_params["name"])


def content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise codes.RegistryError(codes.SIZE_INVALID, f"invalid Content-Length {raw[:50]!r}")
    return int(raw)


def has_body(request: Request) -> bool:
    length = content_length(request)
    return bool(length) or "chunked" in request.headers.get("transfer-encoding", "").lower()


async def body_stream(request: Request) -> AsyncIterator[bytes]:
    """The request body; a client that goes away mid-body ends the stream with an error."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise codes.RegistryError(
            codes.BLOB_UPLOAD_INVALID, "client disconnected before the body was complete"
        ) from None


async def read_capped(request: Request, limit: int) -> bytes:
    length = content_length(request)
    if length is not None and length > limit:
        raise codes.RegistryError(codes.SIZE_TOO_LARGE, f"body of {length} bytes is larger than the {limit} allowed")
    buf = bytearray()
    async for chunk in body_stream(request):
        buf += chunk
        if len(buf) > limit:
            raise codes.RegistryError(codes.SIZE_TOO_LARGE, f"body is larger than the {limit} bytes allowed")
    return bytes(buf)


def page_size(request: Request) -> int | None:
    raw = request.query_params.get("n")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise codes.RegistryError(
            codes.PAGINATION_NUMBER_INVALID, f"n must be a non-negative integer, got {raw[:20]!r}"
        )
    return int(raw)


def next_link(path: str, last: str, n: int) -> str:
    return f'<{path}?last={quote(last, safe="")}&n={n}>; rel="next"'


def upload_location(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def upload_range(size: int) -> str:
    # "0-<last byte>", no "bytes=": docker's client parses it with "%d-%d".
    return f"0-{max(size - 1, 0)}"
