"""Rectification deadlines (整改时限), overdue marks, late rectifications and recurrences (反弹).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Findings ordered before deadlines existed keep none: they are never overdue nor late.
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("deadline", sa.Date(), nullable=True))
        batch.add_column(sa.Column("overdue_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("rectified_late", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("recurrence_of_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_findings_recurrence_of_id", "findings", ["recurrence_of_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_findings_overdue_at", ["overdue_at"])
        batch.create_index("ix_findings_recurrence_of_id", ["recurrence_of_id"])
    with op.batch_alter_table("finding_events") as batch:
        batch.add_column(sa.Column("deadline", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("finding_events") as batch:
        batch.drop_column("deadline")
    with op.batch_alter_table("findings") as batch:
        batch.drop_index("ix_findings_recurrence_of_id")
        batch.drop_index("ix_findings_overdue_at")
        batch.drop_constraint("fk_findings_recurrence_of_id", type_="foreignkey")
        batch.drop_column("recurrence_of_id")
        batch.drop_column("rectified_late")
        batch.drop_column("overdue_at")
        batch.drop_column("deadline")
