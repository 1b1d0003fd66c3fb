"""default schedules: upload-cleanup every hour

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 10:20:00

Added once, by this migration, so that an operator who deletes or disables it is not
overruled at the next start.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_schedules = sa.table(
    "schedules",
    sa.column("name", sa.String),
    sa.column("action", sa.String),
    sa.column("parameters", sa.Text),
    sa.column("cron", sa.String),
    sa.column("enabled", sa.Boolean),
    sa.column("next_run_at", sa.Float),
    sa.column("created_at", sa.Float),
)


def upgrade() -> None:
    # Due at once (next_run_at 0): the first server or worker to start sweeps, then hourly.
    op.bulk_insert(
        _schedules,
        [
            {
                "name": "upload-cleanup",
                "action": "upload-cleanup",
                "parameters": "{}",
                "cron": "17 * * * *",
                "enabled": True,
                "next_run_at": 0.0,
                "created_at": time.time(),
            }
        ],
    )


def downgrade() -> None:
    op.execute(_schedules.delete().where(_schedules.c.name == "upload-cleanup"))
