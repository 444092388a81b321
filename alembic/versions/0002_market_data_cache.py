"""Market data cache: cached bars, confirmed-empty ranges and per-series statistics.

Revision ID: 0002_market_data_cache
Revises: 0001_baseline
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_market_data_cache"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "market_data_cache",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=12), nullable=False),
        sa.Column("exchange", sa.String(length=12), nullable=False),
        sa.Column("timestamp", UTC_DATETIME, nullable=False),
        sa.Column("data_type", sa.String(length=4), nullable=False),
        sa.Column("ohlcv_data", JSON, nullable=False),
        sa.Column("indicators", JSON, nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("fetched_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_data_cache")),
        sa.UniqueConstraint(
            "symbol", "exchange", "data_type", "timestamp", name="uq_market_data_cache_bar"
        ),
    )
    op.create_index(
        "ix_market_data_cache_symbol_timestamp", "market_data_cache", ["symbol", "timestamp"]
    )
    op.create_index(
        "ix_market_data_cache_symbol_data_type", "market_data_cache", ["symbol", "data_type"]
    )

    op.create_table(
        "market_data_coverage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=12), nullable=False),
        sa.Column("exchange", sa.String(length=12), nullable=False),
        sa.Column("data_type", sa.String(length=4), nullable=False),
        sa.Column("range_start", UTC_DATETIME, nullable=False),
        sa.Column("range_end", UTC_DATETIME, nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("checked_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_data_coverage")),
        sa.UniqueConstraint(
            "symbol", "exchange", "data_type", "range_start", name="uq_market_data_coverage_range"
        ),
    )

    op.create_table(
        "market_data_cache_stats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=12), nullable=False),
        sa.Column("exchange", sa.String(length=12), nullable=False),
        sa.Column("data_type", sa.String(length=4), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.Column("partial_hits", sa.Integer(), nullable=False),
        sa.Column("stale_serves", sa.Integer(), nullable=False),
        sa.Column("last_hit_at", UTC_DATETIME, nullable=True),
        sa.Column("last_refresh_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_data_cache_stats")),
        sa.UniqueConstraint(
            "symbol", "exchange", "data_type", name="uq_market_data_cache_stats_series"
        ),
    )


def downgrade() -> None:
    op.drop_table("market_data_cache_stats")
    op.drop_table("market_data_coverage")
    op.drop_index("ix_market_data_cache_symbol_data_type", table_name="market_data_cache")
    op.drop_index("ix_market_data_cache_symbol_timestamp", table_name="market_data_cache")
    op.drop_table("market_data_cache")
