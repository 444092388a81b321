"""Cache tables: bar segments, confirmed-empty ranges, per-series contents, lookup counts and
head timestamps."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from backend.storage.types import JSONType, UTCDateTime, utc_now

# An open segment holds a bar whose session had not closed when it was fetched; only open
# segments expire. The cache holds few of them (a series' last session), so a partial index over
# just those answers "what has expired" without reading the final ones. Queries repeat this
# predicate word for word, as literal SQL: the planners use a partial index only when the query's
# condition matches the index's own. A real column, not a JSON field, so that the planners have
# statistics for it and know how few rows it selects.
OPEN_SEGMENT_PREDICATE = "NOT is_final"


# What names a series besides symbol, exchange and bar size (domain.SeriesKey), in the order of
# every unique key: the defaults are a US stock's TRADES in regular hours, what every row held
# before these columns existed.
SERIES_IDENTITY_COLUMNS = ("sec_type", "currency", "expiry", "what_to_show", "use_rth")
SERIES_KEY_COLUMNS = ("symbol", "exchange", "data_type", *SERIES_IDENTITY_COLUMNS)


class SeriesIdentity(SQLModel):
    """The contract and series fields of a series key. Not a table."""

    sec_type: str = Field(default="STK", max_length=7, nullable=False)
    currency: str = Field(default="USD", max_length=3, nullable=False)
    # A future's lastTradeDateOrContractMonth (YYYYMM or YYYYMMDD); "" for other contracts, so
    # that it can sit in unique keys (NULLs never compare equal there).
    expiry: str = Field(default="", max_length=8, nullable=False)
    what_to_show: str = Field(default="TRADES", max_length=13, nullable=False)
    use_rth: bool = Field(default=True, nullable=False)


class MarketData(SeriesIdentity):
    """Fields every market-data record shares. Not a table."""

    symbol: str = Field(max_length=12, nullable=False)
    exchange: str = Field(max_length=12, nullable=False)
    # Start of the record's first bar in UTC. Daily bars use midnight UTC of the session date.
    timestamp: datetime = Field(sa_type=UTCDateTime, nullable=False)


class MarketDataCache(MarketData, table=True):
    """One segment: a series' bars of one trading session (a calendar month for daily bars).

    Bars travel in segments because one row per bar costs ~7x the space and ~20x the read time
    of a Parquet file; one row per session costs about what the file does (see the README's
    benchmarks). A segment is fetched, written and expired whole; (series, segment_date) is its
    upsert key, and segments of a series never overlap.
    """

    __tablename__ = "market_data_cache"
    __table_args__ = (
        UniqueConstraint(*SERIES_KEY_COLUMNS, "segment_date", name="uq_market_data_cache_segment"),
        UniqueConstraint(*SERIES_KEY_COLUMNS, "timestamp", name="uq_market_data_cache_bar"),
        Index("ix_market_data_cache_symbol_timestamp", "symbol", "timestamp"),
        Index("ix_market_data_cache_symbol_data_type", "symbol", "data_type"),
        # The series' first three key columns and time lead, the contract and series columns
        # follow: SQLite, which keeps no statistics, then prefers this index to the unique key's
        # for the few open segments of a series.
        Index(
            "ix_market_data_cache_open_segments",
            "symbol",
            "exchange",
            "data_type",
            "timestamp",
            "expires_at",
            *SERIES_IDENTITY_COLUMNS,
            postgresql_where=text(OPEN_SEGMENT_PREDICATE),
            sqlite_where=text(OPEN_SEGMENT_PREDICATE),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    data_type: str = Field(max_length=4, nullable=False)
    # The session's date for intraday bars, the month's first day for daily bars.
    segment_date: date = Field(sa_type=Date, nullable=False)
    # Start of the segment's last bar: with `timestamp`, the span a range read looks at.
    last_bar_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    bar_count: int = Field(nullable=False)
    # Every bar's session had closed when it was fetched: settled history that never expires.
    is_final: bool = Field(nullable=False)
    # The bars as typed columns (backend/storage/segment_codec.py): bytea on PostgreSQL, BLOB on
    # SQLite.
    ohlcv_data: bytes = Field(sa_type=LargeBinary, nullable=False)
    indicators: dict[str, Any] | None = Field(default=None, sa_type=JSONType, nullable=True)
    # Provenance: {"fetches": [{source, what_to_show, use_rth, request, fetched_at, expires_at}],
    # "format": codec version}. Each bar names its fetch, and says whether it is final, in the
    # segment's columns. SQLAlchemy reserves `metadata` on declarative classes; the column keeps
    # the name.
    meta: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONType,
        nullable=False,
        sa_column_kwargs={"name": "metadata"},
    )
    # The earliest and the latest fetch that supplied one of the bars: a range read takes its
    # fetched_at range from these without reading the metadata.
    first_fetched_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    fetched_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # When the first not-final bar expires (for an all-final segment, the latest fetch's expiry).
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)


class SeriesRecord(SeriesIdentity):
    """Fields of a record about one series, keyed by SERIES_KEY_COLUMNS. Not a table."""

    id: int | None = Field(default=None, primary_key=True)
    symbol: str = Field(max_length=12, nullable=False)
    exchange: str = Field(max_length=12, nullable=False)
    data_type: str = Field(max_length=4, nullable=False)


class CacheCoverage(SeriesRecord, table=True):
    """A range IBKR confirmed has no bars (e.g. before the listing); it is not asked for again."""

    __tablename__ = "market_data_coverage"
    __table_args__ = (
        UniqueConstraint(*SERIES_KEY_COLUMNS, "range_start", name="uq_market_data_coverage_range"),
    )

    range_start: datetime = Field(sa_type=UTCDateTime, nullable=False)
    range_end: datetime = Field(sa_type=UTCDateTime, nullable=False)
    reason: str = Field(max_length=200, nullable=False)
    checked_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)


class CacheSeriesSummary(SeriesRecord, table=True):
    """What the cache holds for one series, kept in the transaction that writes or deletes its bars.

    A row exists exactly while the series has bars. Writers of a series lock its row first, so
    the figures stay exact with several writers at once (other processes included).

    Apart from the lookup counters (CacheSeriesStats) on purpose: every cache lookup updates
    those, and on a shared row each lookup would wait for the series' chunk write to commit.
    """

    __tablename__ = "market_data_series_summary"
    __table_args__ = (
        UniqueConstraint(*SERIES_KEY_COLUMNS, name="uq_market_data_series_summary_series"),
    )

    bar_count: int = Field(default=0, nullable=False)
    first_bar_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_bar_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    # The latest fetched_at among the series' bars.
    last_fetched_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    # IBKR's id of the contract the bars came from (a continuous future's: the latest front
    # contract's), set by the first fetch; None for bars cached before it was recorded.
    con_id: int | None = Field(default=None, nullable=True)
    # The price basis of every bar of the series: IBKR adjusts history for splits (and
    # ADJUSTED_LAST for dividends) as of the moment of the request, and the cache keeps all its
    # bars adjusted as of this moment (the latest fetch that found the cached bars unchanged, or
    # the healing of a corporate action). None for bars cached before it was recorded.
    basis_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class CacheSeriesStats(SeriesRecord, table=True):
    """How often one series was served from the cache; persisted so it survives a restart."""

    __tablename__ = "market_data_cache_stats"
    __table_args__ = (
        UniqueConstraint(*SERIES_KEY_COLUMNS, name="uq_market_data_cache_stats_series"),
    )

    hits: int = Field(default=0, nullable=False)
    misses: int = Field(default=0, nullable=False)
    partial_hits: int = Field(default=0, nullable=False)
    stale_serves: int = Field(default=0, nullable=False)
    last_hit_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    last_refresh_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class CorporateAction(SeriesRecord, table=True):
    """A change of a series' price basis the cache detected (a split, or a dividend on
    ADJUSTED_LAST) and how it brought its cached bars to the new basis."""

    __tablename__ = "market_data_corporate_action"

    detected_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # The cached bar compared with IBKR's answer.
    anchor_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # Cached price over IBKR's price for the anchor: 10 for a 10:1 split.
    factor: float = Field(nullable=False)
    kind: str = Field(max_length=10, nullable=False)  # "split" or "adjustment"
    healed: str = Field(max_length=10, nullable=False)  # "rescaled" or "refetched"
    bars_changed: int = Field(nullable=False)
    basis_from: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    basis_to: datetime = Field(sa_type=UTCDateTime, nullable=False)


class HeadTimestamp(SQLModel, table=True):
    """The earliest bar IBKR has of a contract's series (reqHeadTimeStamp), asked once: a range
    before it is known to be empty without a request."""

    __tablename__ = "market_data_head_timestamp"
    __table_args__ = (
        UniqueConstraint("con_id", "what_to_show", "use_rth", name="uq_market_data_head_timestamp"),
    )

    id: int | None = Field(default=None, primary_key=True)
    con_id: int = Field(nullable=False)
    what_to_show: str = Field(max_length=13, nullable=False)
    use_rth: bool = Field(nullable=False)
    head_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    checked_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)
