"""/repositories: listing, creating, editing and deleting repositories, and their tags.

Lists are paged by name: ``pageSize`` (1-1000, default 100) and ``pageStart`` (the last name
of the previous page); when more follow, the answer's ``X-Next-Page-Start`` header says where.
"""

from __future__ import annotations

import contextlib
import re
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from ..metadata import accounts as q
from ..metadata import admin
from ..registry import codes
from ..registry.reference import NAME_MAX
from .deps import Anyone, Caller, User
from .errors import BadRequest, Conflict
from .schemas import (
    NewRepository,
    Repository,
    RepositoryList,
    RepositoryPatch,
    Tag,
    Visibility,
    repository_out,
    tag_out,
)

router = APIRouter(tags=["repositories"])

# One path component of the distribution grammar: DTR repositories are "<namespace>/<name>".
REPOSITORY_NAME = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")
NEXT_PAGE = "X-Next-Page-Start"
PageSize = Annotated[int, Query(alias="pageSize", ge=1, le=1000, description="at most this many")]
PageStart = Annotated[str | None, Query(alias="pageStart", description="the last name of the previous page")]
Search = Annotated[str | None, Query(max_length=255, description="only names containing this")]
VisibilityFilter = Annotated[Visibility | None, Query(description="only public or only private repositories")]


async def _visible_page(
    caller: Caller,
    namespace: str | None,
    start: str | None,
    size: int,
    search: str | None = None,
    visibility: str | None = None,
) -> tuple[list[admin.RepositoryRow], bool]:
    """A page of the repositories the caller may read: one query, the visibility rules in SQL
    (metadata/visibility.py) for everyone but administrators."""
    reader = caller.ctx.auth.access.reader(caller.principal)
    rows = await caller.ctx.db.read(admin.repositories_page, namespace, start, size + 1, search, visibility, reader)
    return rows[:size], len(rows) > size


def _page_headers(response: Response, items: list[str], more: bool) -> None:
    if more and items:
        response.headers[NEXT_PAGE] = items[-1]


@router.get("/repositories", response_model=RepositoryList, summary="Repositories visible to the caller")
async def list_all(
    caller: Anyone,
    response: Response,
    page_size: PageSize = 100,
    page_start: PageStart = None,
    search: Search = None,
    visibility: VisibilityFilter = None,
) -> RepositoryList:
    """Anonymous callers see the public repositories."""
    rows, more = await _visible_page(caller, None, page_start, page_size, search, visibility)
    _page_headers(response, [r.name for r in rows], more)
    return RepositoryList(repositories=[repository_out(r) for r in rows])


@router.get("/repositories/{namespace}", response_model=RepositoryList, summary="Repositories of a namespace")
async def list_namespace(
    caller: Anyone,
    namespace: str,
    response: Response,
    page_size: PageSize = 100,
    page_start: PageStart = None,
    search: Search = None,
    visibility: VisibilityFilter = None,
) -> RepositoryList:
    await caller.ctx.auth.accounts.get(namespace)
    start = page_start if page_start is None or "/" in page_start else f"{namespace}/{page_start}"
    rows, more = await _visible_page(caller, namespace, start, page_size, search, visibility)
    _page_headers(response, [r.short_name for r in rows], more)
    return RepositoryList(repositories=[repository_out(r) for r in rows])


@router.post(
    "/repositories/{namespace}",
    response_model=Repository,
    status_code=status.HTTP_201_CREATED,
    summary="Create a repository",
)
async def create(caller: User, namespace: str, body: NewRepository) -> Repository:
    """The caller must manage the namespace: the user itself, an owner of the organization (or a
    team with an admin grant on its namespace), or an administrator."""
    await caller.require_namespace_manager(namespace)
    name = f"{namespace}/{body.name}"
    if not REPOSITORY_NAME.fullmatch(body.name) or len(name) > NAME_MAX:
        raise BadRequest(
            f"invalid repository name {body.name[:100]!r}: lowercase letters and digits, "
            f"joined by '.', '_', '__' or '-', and at most {NAME_MAX} characters with the namespace"
        )
    row = await caller.ctx.db.write(admin.create_repository, name, body.visibility, body.short_description)
    if row is None:
        raise Conflict(f"repository {name} already exists")
    await caller.audit("repository.create", name, {"visibility": body.visibility})
    caller.ctx.auth.access.forget()
    return repository_out(row)


@router.get("/repositories/{namespace}/{repo}", response_model=Repository, summary="Get a repository")
async def get(caller: Anyone, namespace: str, repo: str) -> Repository:
    return repository_out(await caller.repository(namespace, repo))


@router.patch("/repositories/{namespace}/{repo}", response_model=Repository, summary="Edit a repository")
async def update(caller: User, namespace: str, repo: str, body: RepositoryPatch) -> Repository:
    """visibility, shortDescription, and the "only signed content" policy: signedOnly (a pull
    by tag needs a valid signature of the tag's digest) with acceptedSignatures (which kinds
    count: notary, cosign, notation). Repository admins only."""
    row = await caller.repository(namespace, repo, "admin")
    given: dict[str, object] = {}
    if body.visibility is not None:
        given["visibility"] = body.visibility
    if body.short_description is not None:
        given["short_description"] = body.short_description
    if given:
        await caller.ctx.db.write(q.set_repository_settings, row.id, **given)
        caller.ctx.auth.access.forget()
    accepted = list(dict.fromkeys(body.accepted_signatures)) if body.accepted_signatures is not None else None
    if body.signed_only is not None or accepted is not None:
        await caller.ctx.db.write(admin.set_signing_policy, row.id, signed_only=body.signed_only, accepted=accepted)
        caller.ctx.signature_policy.forget(row.name)
        if body.signed_only is not None:
            given["signed_only"] = body.signed_only
        if accepted is not None:
            given["accepted_signatures"] = accepted
    if given:
        await caller.audit("repository.update", row.name, given)
    updated = await caller.ctx.db.read(admin.repository, row.name)
    assert updated is not None
    return repository_out(updated)


@router.delete("/repositories/{namespace}/{repo}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete")
async def delete(caller: User, namespace: str, repo: str) -> Response:
    """The repository with its tags, manifests, blob links, uploads in progress and grants.
    The blobs stay until garbage collection finds no repository links them. Repository
    admins only."""
    row = await caller.repository(namespace, repo, "admin")
    uploads = caller.ctx.registry.uploads
    for upload_id in await caller.ctx.db.read(admin.upload_ids, row.id):
        with contextlib.suppress(codes.RegistryError):  # finished or cancelled meanwhile
            await uploads.cancel(row.name, upload_id)
    await caller.ctx.db.write(admin.delete_repository, row.id)
    await caller.audit("repository.delete", row.name)
    caller.ctx.auth.access.forget()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/repositories/{namespace}/{repo}/tags", response_model=list[Tag], summary="Tags of a repository")
async def tags(
    caller: Anyone,
    namespace: str,
    repo: str,
    response: Response,
    page_size: PageSize = 100,
    page_start: PageStart = None,
) -> list[Tag]:
    """Each tag with its digest and its valid Notary signatures; ``signed`` when one of them
    signs the digest the tag points to now."""
    row = await caller.repository(namespace, repo)
    rows = await caller.ctx.db.read(admin.tags_page, row.id, page_start, page_size + 1)
    _page_headers(response, [t.name for t in rows[:page_size]], len(rows) > page_size)
    signatures = await caller.ctx.signature_policy.notary_signatures(row.name)
    return [tag_out(t, signatures.get(t.name)) for t in rows[:page_size]]
