"""Workflow executions name the process that runs them and its latest heartbeat, so that a
backend starting beside other replicas interrupts only the executions whose process stopped.

Revision ID: 0010_workflow_execution_owner
Revises: 0009_segment_storage
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010_workflow_execution_owner"
down_revision: str | None = "0009_segment_storage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing executions get neither: a pending or running one among them has no process
    # heartbeating it, so the next start-up interrupts it, as before.
    with op.batch_alter_table("workflow_executions") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflow_executions") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner")
