"""Batch jobs remember their tiling mode, so a job resumed after a restart tiles as it began.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs queued before tiling existed would have run untiled: keep them so.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("tile", sa.String(length=8), nullable=False, server_default="off"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("tile")
