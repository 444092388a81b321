"""The shared pacing ledger: IBKR historical request slots per gateway, for every process.

Revision ID: 0007_pacing_ledger
Revises: 0006_corporate_actions
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007_pacing_ledger"
down_revision: str | None = "0006_corporate_actions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ibkr_pacing_slot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gateway", sa.String(length=255), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contract_key", sa.String(length=128), nullable=False),
        sa.Column("request_key", sa.String(length=512), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ibkr_pacing_slot")),
    )
    op.create_index(
        "ix_ibkr_pacing_slot_gateway_granted_at",
        "ibkr_pacing_slot",
        ["gateway", "granted_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_ibkr_pacing_slot_gateway_granted_at", table_name="ibkr_pacing_slot")
    op.drop_table("ibkr_pacing_slot")
