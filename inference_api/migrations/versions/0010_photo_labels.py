"""Photo labels: an inspector says a stored photo shows, or does not show, a problem type (no box).

What a new problem type is learned from (training/learn.py): who said it, when, and which model
version's results they were looking at, as box labels record. Deleting marks the row, never drops it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
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
        "photo_labels",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("shows", sa.Boolean(), nullable=False),
        sa.Column("shown_model", sa.String(length=100), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_by", sa.String(length=100), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_photo_labels_image_id", "photo_labels", ["image_id"])
    op.create_index("ix_photo_labels_type", "photo_labels", ["type"])


def downgrade() -> None:
    op.drop_index("ix_photo_labels_type", table_name="photo_labels")
    op.drop_index("ix_photo_labels_image_id", table_name="photo_labels")
    op.drop_table("photo_labels")
