"""pulls per repository and UTC day, and the last pull of each tag

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pulls_per_day",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_pulled_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_pulls_per_day_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "day", name=op.f("pk_pulls_per_day")),
    )
    op.create_index("ix_pulls_per_day_day", "pulls_per_day", ["day"], unique=False)
    op.create_table(
        "tag_pulls",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("last_pulled_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_tag_pulls_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "tag", name=op.f("pk_tag_pulls")),
    )


def downgrade() -> None:
    op.drop_table("tag_pulls")
    op.drop_index("ix_pulls_per_day_day", table_name="pulls_per_day")
    op.drop_table("pulls_per_day")
