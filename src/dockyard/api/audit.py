"""/audit: the audit log (logins, token decisions, changes to accounts, teams and grants)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from .deps import User
from .schemas import MAX_ROW_ID, AuditEvent, AuditList, utc

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=AuditList, summary="Read the audit log, newest first")
async def audit(
    caller: User,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many events")] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="only events with a smaller id (the next page)")
    ] = None,
    actor: Annotated[str | None, Query(max_length=255, description="only events by this account")] = None,
) -> AuditList:
    """Administrators only."""
    caller.require_admin()
    rows = await caller.ctx.auth.audit.list(limit, before, actor)
    return AuditList(
        events=[
            AuditEvent(
                id=r["id"],
                at=utc(r["at"]),
                actor=r["actor"],
                action=r["action"],
                target=r["target"],
                outcome=r["outcome"],
                address=r["address"],
                detail=r["detail"],
            )
            for r in rows
        ]
    )
