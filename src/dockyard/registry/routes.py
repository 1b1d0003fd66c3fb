"""The whole /v2/ route table. Repository names contain slashes, so ``name`` is a path
parameter; handlers validate it against the grammar before anything else."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from .http import blobs, listing, manifests, uploads

ROUTES: list[BaseRoute] = [
    Route("/v2/", listing.base, methods=["GET", "HEAD"]),
    Route("/v2/_catalog", listing.catalog, methods=["GET"]),
    Route("/v2/{name:path}/manifests/{reference}", manifests.get, methods=["GET", "HEAD"]),
    Route("/v2/{name:path}/manifests/{reference}", manifests.put, methods=["PUT"]),
    Route("/v2/{name:path}/manifests/{reference}", manifests.delete, methods=["DELETE"]),
    Route("/v2/{name:path}/blobs/uploads/", uploads.start, methods=["POST"]),
    Route("/v2/{name:path}/blobs/uploads/{upload_id}", uploads.patch, methods=["PATCH"]),
    Route("/v2/{name:path}/blobs/uploads/{upload_id}", uploads.finish, methods=["PUT"]),
    Route("/v2/{name:path}/blobs/uploads/{upload_id}", uploads.status, methods=["GET", "HEAD"]),
    Route("/v2/{name:path}/blobs/uploads/{upload_id}", uploads.cancel, methods=["DELETE"]),
    Route("/v2/{name:path}/blobs/{digest}", blobs.get, methods=["GET", "HEAD"]),
    Route("/v2/{name:path}/blobs/{digest}", blobs.delete, methods=["DELETE"]),
    Route("/v2/{name:path}/tags/list", listing.tags, methods=["GET"]),
    Route("/v2/{name:path}/referrers/{digest}", listing.referrers, methods=["GET"]),
]
