"""The cache's writer from when market_data_cache held one row per bar (schema revision 0003).

A frozen copy of that MarketDataCacheRepository.store_chunk, trimmed to writing bars and their
series' summary (no confirmed-empty ranges, no lookup counters). On both databases it upserts
the way the SQLite path did; PostgreSQL's COPY path wrote the very same rows. Migration tests
fill a database through it, so what they convert is what that code wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, func, select
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql, sqlite

from backend.market_data.domain import Bar, SeriesKey
from backend.storage.types import JSONType, UTCDateTime

_METADATA = MetaData()

BARS = Table(
    "market_data_cache",
    _METADATA,
    Column("id", Integer, primary_key=True),
    Column("symbol", String(12), nullable=False),
    Column("exchange", String(12), nullable=False),
    Column("timestamp", UTCDateTime, nullable=False),
    Column("data_type", String(4), nullable=False),
    Column("ohlcv_data", JSONType, nullable=False),
    Column("indicators", JSONType, nullable=True),
    Column("metadata", JSONType, nullable=False),
    Column("fetched_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

SUMMARIES = Table(
    "market_data_series_summary",
    _METADATA,
    Column("id", Integer, primary_key=True),
    Column("symbol", String(12), nullable=False),
    Column("exchange", String(12), nullable=False),
    Column("data_type", String(4), nullable=False),
    Column("bar_count", Integer, nullable=False),
    Column("first_bar_at", UTCDateTime, nullable=True),
    Column("last_bar_at", UTCDateTime, nullable=True),
    Column("last_fetched_at", UTCDateTime, nullable=True),
)

_SUMMARY_COLUMNS = (
    SUMMARIES.c.bar_count,
    SUMMARIES.c.first_bar_at,
    SUMMARIES.c.last_bar_at,
    SUMMARIES.c.last_fetched_at,
)


@dataclass(frozen=True)
class NewBar:
    timestamp: datetime
    ohlcv: dict[str, Any]
    is_final: bool


def fetch_meta(request: dict[str, Any]) -> dict[str, Any]:
    """The metadata the service stored with each bar of a chunk fetched by `request`."""
    return {
        "source": "ibkr",
        "what_to_show": request["what_to_show"],
        "use_rth": request["use_rth"],
        "request": request,
    }


def new_bar(bar: Bar) -> NewBar:
    """A fetched bar as the service handed it to store_chunk."""
    return NewBar(
        timestamp=bar.timestamp,
        ohlcv={
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": bar.volume,
            "wap": bar.wap,
            "bar_count": bar.bar_count,
        },
        is_final=bar.is_final,
    )


def store_chunk(
    engine: Engine,
    series: SeriesKey,
    bars: Sequence[NewBar],
    meta: dict[str, Any],
    fetched_at: datetime,
    expires_at: datetime,
) -> int:
    """Upsert one fetched chunk's bars and bring the series' summary up to date, in one
    transaction."""
    with engine.begin() as connection:
        if bars:
            summary = _lock_summary(connection, series)
            inserted = _upsert_bars(connection, series, bars, meta, fetched_at, expires_at)
            _summarize_upsert(connection, series, summary, bars, inserted, fetched_at)
    return len(bars)


def _insert(connection: Connection, table: Table):
    return (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(table)


def _series_conditions(series: SeriesKey, table: Table) -> list:
    return [
        table.c.symbol == series.symbol,
        table.c.exchange == series.exchange,
        table.c.data_type == series.data_type,
    ]


def _upsert_bars(
    connection: Connection,
    series: SeriesKey,
    bars: Sequence[NewBar],
    meta: dict[str, Any],
    fetched_at: datetime,
    expires_at: datetime,
) -> int:
    """Upsert the bars; return how many were new (the others replaced cached bars)."""
    rows = [
        {
            "symbol": series.symbol,
            "exchange": series.exchange,
            "data_type": series.data_type,
            "timestamp": bar.timestamp,
            "ohlcv_data": bar.ohlcv,
            "metadata": {**meta, "is_final": bar.is_final},
            "fetched_at": fetched_at,
            "expires_at": expires_at,
            "created_at": fetched_at,
            "updated_at": fetched_at,
        }
        for bar in bars
    ]
    # The series' summary row is locked, so the writers of a series take turns and the bars in
    # the chunk's span before and after the upsert differ by exactly the new ones.
    timestamps = [bar.timestamp for bar in bars]
    span = [BARS.c.timestamp >= min(timestamps), BARS.c.timestamp <= max(timestamps)]
    count = select(func.count()).select_from(BARS).where(*_series_conditions(series, BARS), *span)
    before = connection.execute(count).scalar_one()
    insert = _insert(connection, BARS)
    statement = insert.on_conflict_do_update(
        index_elements=["symbol", "exchange", "data_type", "timestamp"],
        set_={
            "ohlcv_data": insert.excluded.ohlcv_data,
            "metadata": insert.excluded.metadata,
            "fetched_at": insert.excluded.fetched_at,
            "expires_at": insert.excluded.expires_at,
            "updated_at": insert.excluded.updated_at,
        },
    )
    connection.execute(statement, rows)
    return connection.execute(count).scalar_one() - before


def _lock_summary(connection: Connection, series: SeriesKey) -> tuple:
    """The series' summary row, created if missing and locked until the transaction ends."""
    insert = _insert(connection, SUMMARIES).values(
        symbol=series.symbol, exchange=series.exchange, data_type=series.data_type, bar_count=0
    )
    statement = insert.on_conflict_do_update(
        index_elements=["symbol", "exchange", "data_type"],
        set_={"bar_count": SUMMARIES.c.bar_count},
    ).returning(*_SUMMARY_COLUMNS)
    return tuple(connection.execute(statement).one())


def _summarize_upsert(
    connection: Connection,
    series: SeriesKey,
    summary: tuple,
    bars: Sequence[NewBar],
    inserted: int,
    fetched_at: datetime,
) -> None:
    bar_count, first_bar_at, last_bar_at, summary_fetched_at = summary
    timestamps = [bar.timestamp for bar in bars]
    first = min(timestamps)
    last = max(timestamps)
    last_fetched_at = fetched_at
    if bar_count:
        first = min(first, first_bar_at or first)
        last = max(last, last_bar_at or last)
        if summary_fetched_at is not None and summary_fetched_at > fetched_at:
            # Written with an older fetch time than the series already had: the bars it
            # replaced may have held the latest one, so look.
            last_fetched_at = connection.execute(
                select(func.max(BARS.c.fetched_at)).where(*_series_conditions(series, BARS))
            ).scalar_one()
    connection.execute(
        sql_update(SUMMARIES)
        .where(*_series_conditions(series, SUMMARIES))
        .values(
            bar_count=bar_count + inserted,
            first_bar_at=first,
            last_bar_at=last,
            last_fetched_at=last_fetched_at,
        )
    )


def read_rows(engine: Engine, table: Table) -> list[dict[str, Any]]:
    """Every row of a table keyed by series and time, but its id, in key order."""
    columns = [column for column in table.columns if column.name != "id"]
    order = [table.c.symbol, table.c.exchange, table.c.data_type]
    if "timestamp" in table.c:
        order.append(table.c.timestamp)
    with engine.connect() as connection:
        rows = connection.execute(select(*columns).order_by(*order)).mappings().all()
    return [dict(row) for row in rows]
