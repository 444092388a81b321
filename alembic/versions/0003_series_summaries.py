"""Per-series summaries of the cached bars, and a partial index over the bars that can expire.

Backfills one summary per series from the bars already cached.

Revision ID: 0003_series_summaries
Revises: 0002_market_data_cache
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_series_summaries"
down_revision: str | None = "0002_market_data_cache"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)

# Bars whose session had not closed when fetched; the same text as the model's, so that the
# queries matching it use the index.
OPEN_BAR_PREDICATE = {
    "postgresql": "(metadata ->> 'is_final') IS DISTINCT FROM 'true'",
    "sqlite": "json_extract(metadata, '$.is_final') IS NOT 1",
}


def upgrade() -> None:
    op.create_table(
        "market_data_series_summary",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=12), nullable=False),
        sa.Column("exchange", sa.String(length=12), nullable=False),
        sa.Column("data_type", sa.String(length=4), nullable=False),
        sa.Column("bar_count", sa.Integer(), nullable=False),
        sa.Column("first_bar_at", UTC_DATETIME, nullable=True),
        sa.Column("last_bar_at", UTC_DATETIME, nullable=True),
        sa.Column("last_fetched_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_data_series_summary")),
        sa.UniqueConstraint(
            "symbol", "exchange", "data_type", name="uq_market_data_series_summary_series"
        ),
    )
    op.execute(
        "INSERT INTO market_data_series_summary"
        " (symbol, exchange, data_type, bar_count, first_bar_at, last_bar_at, last_fetched_at)"
        " SELECT symbol, exchange, data_type, count(*), min(timestamp), max(timestamp),"
        " max(fetched_at) FROM market_data_cache GROUP BY symbol, exchange, data_type"
    )
    op.create_index(
        "ix_market_data_cache_open_bars",
        "market_data_cache",
        ["symbol", "exchange", "data_type", "timestamp", "expires_at"],
        postgresql_where=sa.text(OPEN_BAR_PREDICATE["postgresql"]),
        sqlite_where=sa.text(OPEN_BAR_PREDICATE["sqlite"]),
    )


def downgrade() -> None:
    op.drop_index("ix_market_data_cache_open_bars", table_name="market_data_cache")
    op.drop_table("market_data_series_summary")
