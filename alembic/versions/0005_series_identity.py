"""Series identity: contract and series columns in every series key; head timestamps.

Every cached series so far is a US stock's TRADES in regular hours: its rows get exactly those
values (sec_type STK, currency USD, expiry "", what_to_show TRADES, use_rth true), and every bar
stays where it was. The unique keys of the segment, coverage, summary and lookup-count tables
gain the new columns; the series summaries gain the contract id (unknown for bars cached before
it was recorded); market_data_head_timestamp is new.

Downgrade keeps the stock TRADES regular-hours series and deletes the others, which the older
key cannot tell apart (it says how many segments it drops).

Revision ID: 0005_series_identity
Revises: 0004_bar_segments
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005_series_identity"
down_revision: str | None = "0004_bar_segments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
OLD_KEY = ("symbol", "exchange", "data_type")
IDENTITY = ("sec_type", "currency", "expiry", "what_to_show", "use_rth")
NEW_KEY = (*OLD_KEY, *IDENTITY)
# The unique constraints keyed by a series: (table, constraint, columns after the key).
SERIES_KEYS = (
    ("market_data_cache", "uq_market_data_cache_segment", ("segment_date",)),
    ("market_data_cache", "uq_market_data_cache_bar", ("timestamp",)),
    ("market_data_coverage", "uq_market_data_coverage_range", ("range_start",)),
    ("market_data_series_summary", "uq_market_data_series_summary_series", ()),
    ("market_data_cache_stats", "uq_market_data_cache_stats_series", ()),
)
TABLES = (
    "market_data_cache",
    "market_data_coverage",
    "market_data_series_summary",
    "market_data_cache_stats",
)
# The partial index over open segments (0004), rebuilt around the table changes: SQLite copies a
# table to change its constraints, and a copy must not lose the index's WHERE clause.
OPEN_SEGMENTS_INDEX = "ix_market_data_cache_open_segments"
OPEN_SEGMENT_PREDICATE = "NOT is_final"
def _identity_columns() -> list[sa.Column]:
    return [
        sa.Column("sec_type", sa.String(length=7), nullable=False, server_default="STK"),
        sa.Column("currency", sa.String(length=3), nullable=False, server_default="USD"),
        sa.Column("expiry", sa.String(length=8), nullable=False, server_default=""),
        sa.Column("what_to_show", sa.String(length=13), nullable=False, server_default="TRADES"),
        sa.Column("use_rth", sa.Boolean(), nullable=False, server_default=sa.true()),
    ]


def _open_segments_index(columns: Sequence[str]) -> None:
    op.create_index(
        OPEN_SEGMENTS_INDEX,
        "market_data_cache",
        list(columns),
        postgresql_where=sa.text(OPEN_SEGMENT_PREDICATE),
        sqlite_where=sa.text(OPEN_SEGMENT_PREDICATE),
    )


def upgrade() -> None:
    op.drop_index(OPEN_SEGMENTS_INDEX, table_name="market_data_cache")
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for column in _identity_columns():
                batch.add_column(column)
            for constraint_table, name, rest in SERIES_KEYS:
                if constraint_table == table:
                    batch.drop_constraint(name, type_="unique")
                    batch.create_unique_constraint(name, [*NEW_KEY, *rest])
            if table == "market_data_series_summary":
                batch.add_column(sa.Column("con_id", sa.Integer(), nullable=True))
    _open_segments_index((*OLD_KEY, "timestamp", "expires_at"))
    op.create_table(
        "market_data_head_timestamp",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("con_id", sa.Integer(), nullable=False),
        sa.Column("what_to_show", sa.String(length=13), nullable=False),
        sa.Column("use_rth", sa.Boolean(), nullable=False),
        sa.Column("head_at", UTC_DATETIME, nullable=False),
        sa.Column("checked_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_data_head_timestamp")),
        sa.UniqueConstraint(
            "con_id", "what_to_show", "use_rth", name="uq_market_data_head_timestamp"
        ),
    )


def downgrade() -> None:
    op.drop_table("market_data_head_timestamp")
    connection = op.get_bind()
    not_stock = " OR ".join(
        [
            "sec_type <> 'STK'",
            "currency <> 'USD'",
            "expiry <> ''",
            "what_to_show <> 'TRADES'",
            "NOT use_rth",
        ]
    )
    for table in TABLES:
        dropped = connection.execute(sa.text(f"DELETE FROM {table} WHERE {not_stock}")).rowcount
        if dropped:
            print(f"0005 downgrade: {table}: {dropped} rows of non-stock series deleted")
    op.drop_index(OPEN_SEGMENTS_INDEX, table_name="market_data_cache")
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for constraint_table, name, rest in SERIES_KEYS:
                if constraint_table == table:
                    batch.drop_constraint(name, type_="unique")
                    batch.create_unique_constraint(name, [*OLD_KEY, *rest])
            if table == "market_data_series_summary":
                batch.drop_column("con_id")
            for column in IDENTITY:
                batch.drop_column(column)
    _open_segments_index((*OLD_KEY, "timestamp", "expires_at"))
