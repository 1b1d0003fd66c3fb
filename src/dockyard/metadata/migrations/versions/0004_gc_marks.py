"""gc marks (superseded before any release: GC now sweeps each blob in one transaction)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 07:20:00

Kept as an empty step so the revision chain stays intact.
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
