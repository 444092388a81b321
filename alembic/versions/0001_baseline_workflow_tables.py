"""Baseline: the host platform's workflow executions, logs and lineage records.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workflow_executions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("debug_mode", sa.Boolean(), nullable=False),
        sa.Column("symbols", JSON, nullable=False),
        sa.Column("data_type", sa.String(length=4), nullable=False),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_executions")),
    )
    op.create_index("ix_workflow_executions_started_at", "workflow_executions", ["started_at"])

    op.create_table(
        "workflow_logs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["workflow_executions.id"],
            name=op.f("fk_workflow_logs_execution_id_workflow_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_logs")),
    )
    op.create_index("ix_workflow_logs_execution_id", "workflow_logs", ["execution_id"])

    op.create_table(
        "lineage_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=12), nullable=False),
        sa.Column("data_type", sa.String(length=4), nullable=False),
        sa.Column("range_start", UTC_DATETIME, nullable=False),
        sa.Column("range_end", UTC_DATETIME, nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["workflow_executions.id"],
            name=op.f("fk_lineage_records_execution_id_workflow_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lineage_records")),
    )
    op.create_index("ix_lineage_records_execution_id", "lineage_records", ["execution_id"])


def downgrade() -> None:
    op.drop_index("ix_lineage_records_execution_id", table_name="lineage_records")
    op.drop_table("lineage_records")
    op.drop_index("ix_workflow_logs_execution_id", table_name="workflow_logs")
    op.drop_table("workflow_logs")
    op.drop_index("ix_workflow_executions_started_at", table_name="workflow_executions")
    op.drop_table("workflow_executions")
