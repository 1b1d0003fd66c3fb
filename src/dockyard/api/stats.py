"""/stats: the dashboard's figures. Administrators see the whole registry; other callers the
repositories they may read (the visibility rules as one SQL condition, metadata/visibility.py).
Pulls are counted in memory and written every few seconds (registry/services/pulls.py), so the
newest ones show up that much later."""

from __future__ import annotations

import datetime
import time
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from ..metadata import stats as q
from ..metadata.visibility import readable_ids
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
    pulls: list[DayCount] = Field(description="manifest GETs per day (UTC), oldest first, zeros included")


@router.get("/stats", response_model=Stats, summary="Figures for the dashboard")
async def stats(
    caller: User, days: Annotated[int, Query(ge=1, le=366, description="how many days of history")] = 30
) -> Stats:
    db = caller.ctx.db
    today = int(time.time() // q.DAY)
    since = float((today - days + 1) * q.DAY)
    manifests: int | None = None
    reader = caller.ctx.auth.access.reader(caller.principal)
    if reader is None:
        repos, stored, manifests = await db.read(q.totals)
        pushed = await db.read(q.pushes_per_day, since)
        pulled = await db.read(q.pulls_per_day_since, today - days + 1)
    else:
        repos, stored, pushed, pulled = await db.read(q.readable_figures, readable_ids(reader), since, today - days + 1)
    epoch = datetime.date(1970, 1, 1)
    span = range(today - days + 1, today + 1)
    return Stats(
        repositories=repos,
        manifests=manifests,
        storage_bytes=stored,
        pushes=[DayCount(day=epoch + datetime.timedelta(days=d), count=pushed.get(d, 0)) for d in span],
        pulls=[DayCount(day=epoch + datetime.timedelta(days=d), count=pulled.get(d, 0)) for d in span],
    )
