"""Refresh jobs in the database: every replica answers for every job, and a job survives the
process that ran it (interrupted, resumable).

Revision ID: 0008_refresh_jobs
Revises: 0007_pacing_ledger
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0008_refresh_jobs"
down_revision: str | None = "0007_pacing_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "market_data_refresh_job",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("heartbeat_at", UTC_DATETIME, nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("estimated_requests", sa.Integer(), nullable=False),
        sa.Column("request", JSON, nullable=False),
        sa.Column("series", JSON, nullable=False),
        sa.Column("estimate", JSON, nullable=False),
        sa.Column("results", JSON, nullable=False),
        sa.Column("runs", JSON, nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_market_data_refresh_job")),
    )
    op.create_index(
        "ix_market_data_refresh_job_status_created_at",
        "market_data_refresh_job",
        ["status", "created_at"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_market_data_refresh_job_status_created_at", table_name="market_data_refresh_job"
    )
    op.drop_table("market_data_refresh_job")
