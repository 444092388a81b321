"""Cache tables: bars, ranges IBKR confirmed empty, per-series contents and lookup counts."""

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from backend.storage.types import JSONType, UTCDateTime, utc_now

# An open bar is one whose session had not closed when it was fetched (metadata.is_final not
# true); only open bars expire. The cache holds few of them (a series' last session), so a partial
# index over just those answers "how many bars have expired" without reading the final bars.
# Queries repeat this predicate word for word, as literal SQL: the planners use a partial index
# only when the query's condition matches the index's own.
OPEN_BAR_PREDICATE = {
    "postgresql": "(metadata ->> 'is_final') IS DISTINCT FROM 'true'",
    "sqlite": "json_extract(metadata, '$.is_final') IS NOT 1",
}


class MarketData(SQLModel):
    """Fields every market-data record shares. Not a table."""

    symbol: str = Field(max_length=12, nullable=False)
    exchange: str = Field(max_length=12, nullable=False)
    # Start of the bar in UTC. Daily bars use midnight UTC of the session date.
    timestamp: datetime = Field(sa_type=UTCDateTime, nullable=False)


class MarketDataCache(MarketData, table=True):
    """One cached bar. (symbol, exchange, data_type, timestamp) is unique, so writes are upserts."""

    __tablename__ = "market_data_cache"
    __table_args__ = (
        UniqueConstraint(
            "symbol", "exchange", "data_type", "timestamp", name="uq_market_data_cache_bar"
        ),
        Index("ix_market_data_cache_symbol_timestamp", "symbol", "timestamp"),
        Index("ix_market_data_cache_symbol_data_type", "symbol", "data_type"),
        Index(
            "ix_market_data_cache_open_bars",
            "symbol",
            "exchange",
            "data_type",
            "timestamp",
            "expires_at",
            postgresql_where=text(OPEN_BAR_PREDICATE["postgresql"]),
            sqlite_where=text(OPEN_BAR_PREDICATE["sqlite"]),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    data_type: str = Field(max_length=4, nullable=False)
    # open, high, low, close, volume; wap and bar_count when IBKR sends them.
    ohlcv_data: dict[str, Any] = Field(sa_type=JSONType, nullable=False)
    indicators: dict[str, Any] | None = Field(default=None, sa_type=JSONType, nullable=True)
    # SQLAlchemy reserves `metadata` on declarative classes; the column keeps the name.
    meta: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONType,
        nullable=False,
        sa_column_kwargs={"name": "metadata"},
    )
    fetched_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)


class CacheCoverage(SQLModel, table=True):
    """A range IBKR confirmed has no bars (e.g. before the listing); it is not asked for again."""

    __tablename__ = "market_data_coverage"
    __table_args__ = (
        UniqueConstraint(
            "symbol", "exchange", "data_type", "range_start", name="uq_market_data_coverage_range"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    symbol: str = Field(max_length=12, nullable=False)
    exchange: str = Field(max_length=12, nullable=False)
    data_type: str = Field(max_length=4, nullable=False)
    range_start: datetime = Field(sa_type=UTCDateTime, nullable=False)
    range_end: datetime = Field(sa_type=UTCDateTime, nullable=False)
    reason: str = Field(max_length=200, nullable=False)
    checked_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)


class CacheSeriesSummary(SQLModel, table=True):
    """What the cache holds for one series, kept in the transaction that writes or deletes its bars.

    A row exists exactly while the series has bars. Writers of a series lock its row first, so
    the figures stay exact with several writers at once (other processes included).

    Apart from the lookup counters (CacheSeriesStats) on purpose: every cache lookup updates
    those, and on a shared row each lookup would wait for the series' chunk write to commit.
    """

    __tablename__ = "market_data_series_summary"
    __table_args__ = (
        UniqueConstraint(
            "symbol", "exchange", "data_type", name="uq_market_data_series_summary_series"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    symbol: str = Field(max_length=12, nullable=False)
    exchange: str = Field(max_length=12, nullable=False)
    data_type: str = Field(max_length=4, nullable=False)
    bar_count: int = Field(default=0, nullable=False)
    first_bar_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_bar_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    # The latest fetched_at among the series' bars.
    last_fetched_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class CacheSeriesStats(SQLModel, table=True):
    """How often one series was served from the cache; persisted so it survives a restart."""

    __tablename__ = "market_data_cache_stats"
    __table_args__ = (
        UniqueConstraint(
            "symbol", "exchange", "data_type", name="uq_market_data_cache_stats_series"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    symbol: str = Field(max_length=12, nullable=False)
    exchange: str = Field(max_length=12, nullable=False)
    data_type: str = Field(max_length=4, nullable=False)
    hits: int = Field(default=0, nullable=False)
    misses: int = Field(default=0, nullable=False)
    partial_hits: int = Field(default=0, nullable=False)
    stale_serves: int = Field(default=0, nullable=False)
    last_hit_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_refresh_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
