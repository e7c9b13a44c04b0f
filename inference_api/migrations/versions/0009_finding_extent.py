"""Findings say whether the model located them (`box`) or saw them in the photo as a whole (`photo`).

A v4 model's photo classifier can raise a problem with no box (model/fusion.py); its finding's box
is then the whole photo, and `extent` says so, so no one reads it as a located object.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every finding before v4 came from a detector box.
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("extent", sa.String(length=10), nullable=False, server_default="box"))


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.drop_column("extent")
