"""reports: one row per error fingerprint, for flood control

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "error_reports",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("first_at", sa.Float(), nullable=False),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("mailed_at", sa.Float(), nullable=True),
        sa.Column("unsent", sa.Integer(), nullable=False),
        sa.Column("unsent_since", sa.Float(), nullable=True),
        sa.Column("summary_due_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_error_reports")),
    )
    op.create_index("ix_error_reports_summary_due_at", "error_reports", ["summary_due_at"])
    op.create_index("ix_error_reports_last_at", "error_reports", ["last_at"])


def downgrade() -> None:
    op.drop_index("ix_error_reports_last_at", table_name="error_reports")
    op.drop_index("ix_error_reports_summary_due_at", table_name="error_reports")
    op.drop_table("error_reports")
