"""Bars for tests: built in memory, written straight into the cache, and counted as stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, select

from backend.market_data.bar_columns import BarColumns
from backend.market_data.domain import Bar, SeriesKey
from backend.storage.database import Database
from backend.storage.market_data_repository import (
    SEGMENTS,
    Fetch,
    MarketDataCacheRepository,
)


def make_bars(
    first: datetime,
    count: int,
    step: timedelta = timedelta(days=1),
    *,
    is_final: bool = True,
    open_: float = 1.0,
    high: float = 2.0,
    low: float = 0.5,
    close: float = 1.5,
    volume: float = 1000.0,
) -> BarColumns:
    """`count` bars `step` apart from `first`, all with the same values."""
    return BarColumns.from_bars(
        Bar(first + step * i, open_, high, low, close, volume, None, None, is_final)
        for i in range(count)
    )


def fetch_at(fetched_at: datetime, ttl: timedelta = timedelta(hours=24), **request) -> Fetch:
    """A fetch answered at fetched_at, expiring ttl later."""
    return Fetch(
        source="ibkr",
        what_to_show="TRADES",
        use_rth=True,
        request=request,
        fetched_at=fetched_at,
        expires_at=fetched_at + ttl,
    )


def store(
    repository: MarketDataCacheRepository,
    series: SeriesKey,
    bars: BarColumns,
    fetched_at: datetime,
    ttl: timedelta = timedelta(hours=24),
    empty_ranges=(),
    empty_reason: str | None = None,
) -> int:
    """Write bars as one fetched chunk, as the service does."""
    return repository.store_chunk(
        series, bars, fetch_at(fetched_at, ttl), empty_ranges, empty_reason
    )


def stored_bar_count(database_url: str, symbol: str | None = None, data_type: str | None = None):
    """Bars held in the cache's segments (a row is a segment, so rows are not bars)."""
    database = Database(database_url)
    statement = select(func.coalesce(func.sum(SEGMENTS.c.bar_count), 0))
    if symbol:
        statement = statement.where(SEGMENTS.c.symbol == symbol)
    if data_type:
        statement = statement.where(SEGMENTS.c.data_type == data_type)
    with database.engine.connect() as connection:
        count = connection.execute(statement).scalar_one()
    database.dispose()
    return int(count)


def stored_bar_keys(database_url: str) -> list[tuple[str, str, str, datetime]]:
    """(symbol, exchange, data_type, timestamp) of every stored bar, duplicates included."""
    database = Database(database_url)
    repository = MarketDataCacheRepository(database)
    with database.engine.connect() as connection:
        series = connection.execute(
            select(SEGMENTS.c.symbol, SEGMENTS.c.exchange, SEGMENTS.c.data_type).distinct()
        ).all()
    earliest, latest = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    keys = [
        (key.symbol, key.exchange, key.data_type, stamp)
        for row in series
        for key in [SeriesKey(*row)]
        for segment in repository.read_segments(key, earliest, latest)
        for stamp in segment.columns.timestamps()
    ]
    database.dispose()
    return keys


class StoredBar(NamedTuple):
    """A stored bar with the fetch it came from, for assertions on provenance."""

    timestamp: datetime
    close: float
    is_final: bool
    fetched_at: datetime
    expires_at: datetime


def stored_bars(
    repository: MarketDataCacheRepository, series: SeriesKey, start: datetime, end: datetime
) -> list[StoredBar]:
    """The series' stored bars in [start, end), each with its fetch's times."""
    return [
        StoredBar(bar.timestamp, bar.close, bar.is_final, fetch.fetched_at, fetch.expires_at)
        for segment in repository.read_segments(series, start, end)
        for bar, index in zip(segment.columns.bars(), segment.fetch_index.tolist(), strict=True)
        for fetch in [segment.fetches[index]]
        if start <= bar.timestamp < end
    ]
