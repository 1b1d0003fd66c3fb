"""The Notary v1 server's HTTP API under ``/v2/<gun>/_trust/`` (spec/notary.md §2).

Routes only parse the request and shape the response; the rules are in ``TrustService``.
They sit before the registry's routes: a GUN starts with a host, never a repository name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from ..registry import codes
from ..registry.errors import error_response
from .errors import InvalidParameters, MalformedUpload, MetadataNotFound, NoFilename, TrustError
from .service import TrustService

CURRENT_CACHE = "public, max-age=300, s-maxage=300, must-revalidate"
CONSISTENT_CACHE = "public, max-age=2592000, s-maxage=2592000"
MAX_UPLOAD_BYTES = 64 << 20  # all roles of one update together; notary's own roles are far smaller

# <role>.json, <role>.<sha256 hex>.json, <version>.<role>.json, <role>.key
_ROLE = r"(?:root|targets(?:/[-a-z0-9_/]+)?|snapshot|timestamp)"
_CURRENT = re.compile(rf"({_ROLE})\.json")
_BY_CHECKSUM = re.compile(rf"({_ROLE})\.([0-9a-f]{{64}}|[0-9a-f]{{96}}|[0-9a-f]{{128}})\.json")
_BY_VERSION = re.compile(rf"([1-9][0-9]*)\.({_ROLE})\.json")

# (method, what) -> the actions a token must carry for the GUN (spec §8).
PULL = ("pull",)
PUSH = ("push", "pull")
ADMIN = ("*",)


def _service(request: Request) -> TrustService:
    service: TrustService = request.app.state.trust
    return service


def trust_error(err: TrustError, method: str = "GET") -> Response:
    body = b"" if method == "HEAD" else json.dumps({"errors": [err.entry()]}).encode()
    return Response(body, status_code=err.status, media_type="application/json")


class TrustRoute(Route):
    """A route that resolves the GUN, checks it is one of ours, and asks the gate first."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, methods: list[str], need: tuple[str, ...]) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.need = need

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            gun = scope["path_params"]["gun"]
            repository = _service(request).resolve(gun, request.headers.get("host", ""))
            gate = scope["app"].state.gate
            if gate is not None:
                await gate.check_trust(scope, gun, repository, self.need)
            scope["path_params"]["repository"] = repository
        except codes.RegistryError as err:
            await error_response(err, scope["method"])(scope, receive, send)
            return
        except TrustError as err:
            await trust_error(err, scope["method"])(scope, receive, send)
            return
        try:
            await super().handle(scope, receive, send)
        except TrustError as err:
            await trust_error(err, scope["method"])(scope, receive, send)


def _file_response(content: bytes, created_at: float, cache: str) -> Response:
    headers = {"Cache-Control": cache, "Last-Modified": formatdate(created_at, usegmt=True)}
    return Response(content, media_type="application/json", headers=headers)


async def get_file(request: Request) -> Response:
    gun, name = request.path_params["gun"], request.path_params["file"]
    service = _service(request)
    if m := _CURRENT.fullmatch(name):
        f = await service.current(gun, m.group(1))
        return _file_response(f.content, f.created_at, CURRENT_CACHE)
    if m := _BY_CHECKSUM.fullmatch(name):
        f = await service.by_checksum(gun, m.group(1), m.group(2))
        return _file_response(f.content, f.created_at, CONSISTENT_CACHE)
    if m := _BY_VERSION.fullmatch(name):
        f = await service.by_version(gun, m.group(2), int(m.group(1)))
        return _file_response(f.content, f.created_at, CONSISTENT_CACHE)
    raise MetadataNotFound(f"{name}: not a TUF metadata file name")


async def get_key(request: Request) -> Response:
    key = await _service(request).public_key(request.path_params["gun"], request.path_params["role"])
    return JSONResponse(key)


async def rotate_key(request: Request) -> Response:
    key = await _service(request).rotate_key(request.path_params["gun"], request.path_params["role"])
    return JSONResponse(key)


async def post_update(request: Request) -> Response:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise MalformedUpload("the update must be multipart/form-data, one part per role")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise MalformedUpload(f"the update is larger than {MAX_UPLOAD_BYTES} bytes")
    try:
        form = await request.form(max_files=64, max_fields=64)
    except Exception as e:  # the multipart parser's own errors: the body is not a valid form
        raise MalformedUpload(f"cannot read the multipart body: {e}") from None
    parts: dict[str, bytes] = {}
    total = 0
    try:
        for _, value in form.multi_items():
            if not isinstance(value, UploadFile) or not value.filename:
                raise NoFilename("each part needs a filename naming its role")
            content = await value.read()
            total += len(content)
            if total > MAX_UPLOAD_BYTES:
                raise MalformedUpload(f"the update is larger than {MAX_UPLOAD_BYTES} bytes")
            role = value.filename.removesuffix(".json")
            parts[role] = content
    finally:
        await form.close()
    if not parts:
        raise MalformedUpload("the update holds no role files")
    await _service(request).update(request.path_params["gun"], request.path_params["repository"], parts)
    return Response(b"", status_code=200)


async def delete_gun(request: Request) -> Response:
    await _service(request).delete(request.path_params["gun"])
    return Response(b"", status_code=200)


def _feed_params(request: Request) -> tuple[int, int]:
    records = request.query_params.get("records")
    change_id = request.query_params.get("change_id", "0")
    try:
        if records is None:
            raise ValueError("records is required")
        return int(change_id), int(records)
    except ValueError as e:
        raise InvalidParameters(f"changefeed: change_id and records must be integers ({e})") from None


async def changefeed(request: Request) -> Response:
    change_id, records = _feed_params(request)
    return JSONResponse(await _service(request).changefeed(request.path_params["gun"], change_id, records))


async def global_changefeed(request: Request) -> Response:
    try:
        gate = request.app.state.gate
        if gate is not None:
            await gate.check(request.scope, "catalog")
        change_id, records = _feed_params(request)
    except codes.RegistryError as err:
        return error_response(err, request.method)
    except TrustError as err:
        return trust_error(err, request.method)
    return JSONResponse(await _service(request).changefeed(None, change_id, records))


async def health(request: Request) -> Response:
    return JSONResponse({})


_TUF = "/v2/{gun:path}/_trust/tuf"
ROUTES: list[BaseRoute] = [
    Route("/_notary_server/health", health, methods=["GET"]),
    Route("/v2/_trust/changefeed", global_changefeed, methods=["GET"]),
    TrustRoute(_TUF + "/", post_update, methods=["POST"], need=PUSH),
    TrustRoute(_TUF + "/", delete_gun, methods=["DELETE"], need=ADMIN),
    TrustRoute(_TUF + "/{role:str}.key", get_key, methods=["GET"], need=PUSH),
    TrustRoute(_TUF + "/{role:str}.key", rotate_key, methods=["POST"], need=ADMIN),
    TrustRoute(_TUF + "/{file:path}", get_file, methods=["GET", "HEAD"], need=PULL),
    TrustRoute("/v2/{gun:path}/_trust/changefeed", changefeed, methods=["GET"], need=PULL),
]
