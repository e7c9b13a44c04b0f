"""Findings say where their position came from (the photo or the uploading device) and how exact it is.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("position_source", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("position_accuracy_m", sa.Float(), nullable=True))
    # Until now every stored position came from the photo itself (EXIF GPS or a scan's ground position).
    op.execute("UPDATE findings SET position_source = 'photo' WHERE lat IS NOT NULL AND lon IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.drop_column("position_accuracy_m")
        batch.drop_column("position_source")
