"""/stats: the dashboard's figures. Administrators see the whole registry; other callers the
repositories they may read."""

from __future__ import annotations

import datetime
import time
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from ..metadata import stats as q
from .deps import User
from .schemas import Schema

router = APIRouter(tags=["stats"])


class DayCount(Schema):
    day: datetime.date
    count: int


class Stats(Schema):
    repositories: int = Field(description="repositories the caller may read")
    manifests: int | None = Field(None, description="administrators only: manifests stored")
    storage_bytes: int = Field(description="bytes of the distinct blobs of those repositories")
    pushes: list[DayCount] = Field(description="manifests pushed per day (UTC), oldest first, zeros included")


@router.get("/stats", response_model=Stats, summary="Figures for the dashboard")
async def stats(
    caller: User, days: Annotated[int, Query(ge=1, le=366, description="how many days of history")] = 30
) -> Stats:
    db = caller.ctx.db
    today = int(time.time() // q.DAY)
    since = float((today - days + 1) * q.DAY)
    manifests: int | None = None
    if caller.principal.is_admin:
        repos, stored, manifests = await db.read(q.totals)
        per_day = await db.read(q.pushes_per_day, since)
    else:
        names = await caller.ctx.auth.access.visible(caller.principal, await db.read(q.all_repository_names))
        ids = await db.read(q.repository_ids, names)
        repos = len(ids)
        stored = await db.read(q.stored_bytes_of, ids)
        per_day = await db.read(q.pushes_per_day, since, ids)
    epoch = datetime.date(1970, 1, 1)
    pushes = [
        DayCount(day=epoch + datetime.timedelta(days=d), count=per_day.get(d, 0))
        for d in range(today - days + 1, today + 1)
    ]
    return Stats(repositories=repos, manifests=manifests, storage_bytes=stored, pushes=pushes)
