"""The audit log: every login, token decision and change to accounts or permissions."""

from __future__ import annotations

from typing import Any

from ..metadata import accounts as q
from ..metadata.db import Database


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self, actor: str, action: str, target: str = "", outcome: str = "ok", address: str = "", detail: Any = None
    ) -> None:
        await self.db.write(q.add_audit, actor, action, target, outcome, address, detail)

    async def list(
        self, limit: int = 100, before_id: int | None = None, actor: str | None = None
    ) -> list[dict[str, Any]]:
        return await self.db.read(q.list_audit, min(max(limit, 1), 1000), before_id, actor)
