"""Corporate actions: the price basis of each series, and the actions detected and healed.

Also rebuilds the partial index over open segments with the contract and series columns after
its first five (the model says why).

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
OPEN_SEGMENTS_INDEX = "ix_market_data_cache_open_segments"
OPEN_SEGMENT_PREDICATE = "NOT is_final"
OLD_KEY = ("symbol", "exchange", "data_type")
SERIES_KEY = (*OLD_KEY, "sec_type", "currency", "expiry", "what_to_show", "use_rth")


def _open_segments_index(key: Sequence[str]) -> None:
    op.drop_index(OPEN_SEGMENTS_INDEX, table_name="market_data_cache")
    op.create_index(
        OPEN_SEGMENTS_INDEX,
        "market_data_cache",
        [*OLD_KEY, "timestamp", "expires_at", *key[len(OLD_KEY) :]],
        postgresql_where=sa.text(OPEN_SEGMENT_PREDICATE),
        sqlite_where=sa.text(OPEN_SEGMENT_PREDICATE),
    )


def upgrade() -> None:
    _open_segments_index(SERIES_KEY)
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
    _open_segments_index(OLD_KEY)
    op.drop_table("market_data_corporate_action")
    with op.batch_alter_table("market_data_series_summary") as batch:
        batch.drop_column("basis_at")
