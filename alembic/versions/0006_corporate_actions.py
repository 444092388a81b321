"""Corporate actions: the price basis of each series, and the actions detected and healed.

Revision ID: 0006_corporate_actions
Revises: 0005_series_identity
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006_corporate_actions"
down_revision: str | None = "0005_series_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("market_data_series_summary") as batch:
        batch.add_column(sa.Column("basis_at", UTC_DATETIME, nullable=True))
    op.create_table(
        "market_data_corporate_action",
        sa.Column("sec_type", sa.String(length=7), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("expiry", sa.String(length=8), nullable=False),
        sa.Column("what_to_show", sa.String(length=13), nullable=False),
        sa.Column("use_rth", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=12), nullable=False),
        sa.Column("exchange", sa.String(length=12), nullable=False),
        sa.Column("data_type", sa.String(length=4), nullable=False),
        sa.Column("detected_at", UTC_DATETIME, nullable=False),
        sa.Column("anchor_at", UTC_DATETIME, nullable=False),
        sa.Column("factor", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("healed", sa.String(length=10), nullable=False),
        sa.Column("bars_changed", sa.Integer(), nullable=False),
        sa.Column("basis_from", UTC_DATETIME, nullable=True),
        sa.Column("basis_to", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_data_corporate_action")),
    )


def downgrade() -> None:
    op.drop_table("market_data_corporate_action")
    with op.batch_alter_table("market_data_series_summary") as batch:
        batch.drop_column("basis_at")
