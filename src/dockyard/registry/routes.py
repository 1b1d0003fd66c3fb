"""The whole /v2/ route table. Repository names contain slashes, so ``name`` is a path
parameter; handlers validate it against the grammar before anything else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from . import codes
from .errors import error_response
from .http import blobs, listing, manifests, uploads


class Gate(Protocol):
    """Authorization (auth.gate.AuthGate); None on app.state.gate when auth is off."""

    async def check(self, scope: Scope, resource: str) -> None: ...


class RegistryRoute(Route):
    """A route that asks the gate first, with the path parameters the router extracted."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, methods: list[str], resource: str) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.resource = resource

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate: Gate | None = scope["app"].state.gate
        if gate is not None and scope["method"] in (self.methods or ()):
            try:
                await gate.check(scope, self.resource)
            except codes.RegistryError as err:
                await error_response(err, scope["method"])(scope, receive, send)
                return
        await super().handle(scope, receive, send)


def _repo(path: str, endpoint: Callable[..., Any], methods: list[str]) -> RegistryRoute:
    return RegistryRoute(path, endpoint, methods=methods, resource="repository")


ROUTES: list[BaseRoute] = [
    RegistryRoute("/v2/", listing.base, methods=["GET", "HEAD"], resource="base"),
    RegistryRoute("/v2/_catalog", listing.catalog, methods=["GET"], resource="catalog"),
    _repo("/v2/{name:path}/manifests/{reference}", manifests.get, ["GET", "HEAD"]),
    _repo("/v2/{name:path}/manifests/{reference}", manifests.put, ["PUT"]),
    _repo("/v2/{name:path}/manifests/{reference}", manifests.delete, ["DELETE"]),
    _repo("/v2/{name:path}/blobs/uploads/", uploads.start, ["POST"]),
    _repo("/v2/{name:path}/blobs/uploads/{upload_id}", uploads.patch, ["PATCH"]),
    _repo("/v2/{name:path}/blobs/uploads/{upload_id}", uploads.finish, ["PUT"]),
    _repo("/v2/{name:path}/blobs/uploads/{upload_id}", uploads.status, ["GET", "HEAD"]),
    _repo("/v2/{name:path}/blobs/uploads/{upload_id}", uploads.cancel, ["DELETE"]),
    _repo("/v2/{name:path}/blobs/{digest}", blobs.get, ["GET", "HEAD"]),
    _repo("/v2/{name:path}/blobs/{digest}", blobs.delete, ["DELETE"]),
    _repo("/v2/{name:path}/tags/list", listing.tags, ["GET"]),
    _repo("/v2/{name:path}/referrers/{digest}", listing.referrers, ["GET"]),
]
