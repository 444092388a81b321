"""The benchmarks' bulk load writes exactly the rows store_chunk writes for the same chunks."""

from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from backend.devtools.bench_bars import (
    FILL_STATS,
    FILL_SUMMARIES,
    TradingYear,
    chunks_of,
    copy_segments,
    psycopg_dsn,
    random_walk_bars,
    segment_rows,
)
from backend.market_data import calendar as market_calendar
from backend.market_data.bar_columns import datetime_to_ns
from backend.market_data.domain import BarSize, SeriesKey
from backend.storage.database import Database
from backend.storage.market_data_repository import MarketDataCacheRepository
from tests.support.migrations import migrate_to_head

# A few sessions around an early close (Friday 28 November 2025) and a holiday.
CLOSED_BY = datetime(2025, 12, 2, 22, 0, tzinfo=UTC)
SESSIONS = 5
STORED = SeriesKey("STORED", "NASDAQ", "1m")
LOADED = SeriesKey("LOADED", "NASDAQ", "1m")

SEGMENTS = """
SELECT exchange, data_type, segment_date, timestamp, last_bar_at, bar_count, is_final,
    ohlcv_data, indicators, metadata, fetched_at, expires_at, created_at, updated_at
FROM market_data_cache WHERE symbol = %s ORDER BY timestamp
"""
SUMMARY = """
SELECT s.exchange, s.data_type, s.bar_count, s.first_bar_at, s.last_bar_at, s.last_fetched_at,
    t.hits, t.misses, t.partial_hits, t.stale_serves, t.last_hit_at, t.last_refresh_at
FROM market_data_series_summary s JOIN market_data_cache_stats t USING (symbol, exchange, data_type)
WHERE symbol = %s
"""


def test_a_trading_year_is_the_calendars_bars_in_one_chunk_per_session():
    year = TradingYear.ending(CLOSED_BY, SESSIONS)
    expected = market_calendar.expected_bar_timestamps("NASDAQ", BarSize.M1, year.start, year.end)

    assert year.sessions == SESSIONS
    assert year.timestamps.tolist() == [datetime_to_ns(stamp) for stamp in expected]
    assert [stop - first for first, stop, _ in year.chunks] == [
        len(market_calendar.expected_bar_timestamps("NASDAQ", BarSize.M1, s.open_at, s.close_at))
        for s in market_calendar.sessions_between("NASDAQ", year.start, year.end)
    ]


def test_random_walk_bars_have_two_decimal_prices_and_whole_volumes():
    year = TradingYear.ending(CLOSED_BY, SESSIONS)
    bars = random_walk_bars(year.timestamps, 3)

    for prices, decimals in ((bars.open, 2), (bars.close, 2), (bars.wap, 4)):
        assert np.array_equal(np.round(prices, decimals), prices)
    assert (bars.low <= np.minimum(bars.open, bars.close)).all()
    assert (bars.high >= np.maximum(bars.open, bars.close)).all()
    assert ((bars.low <= bars.wap) & (bars.wap <= bars.high)).all()
    assert np.array_equal(np.floor(bars.volume), bars.volume)
    assert bars.is_final.all()


def test_bulk_loaded_rows_are_the_rows_store_chunk_writes(postgres_url):
    migrate_to_head(postgres_url)
    year = TradingYear.ending(CLOSED_BY, SESSIONS)
    bars = random_walk_bars(year.timestamps, 5)
    fetches = year.fetches(CLOSED_BY + timedelta(hours=1))
    database = Database(postgres_url)
    repository = MarketDataCacheRepository(database)
    for chunk, fetch in chunks_of(year, bars, fetches):
        repository.store_chunk(STORED, chunk, fetch)
    database.dispose()

    with psycopg.connect(psycopg_dsn(postgres_url), options="-c timezone=UTC") as connection:
        # Read first: the load's summaries are computed over every series, STORED's too.
        stored = [connection.execute(q, (STORED.symbol,)).fetchall() for q in (SEGMENTS, SUMMARY)]
        loaded_bars = copy_segments(
            connection, segment_rows(LOADED, chunks_of(year, bars, fetches))
        )
        connection.execute(FILL_SUMMARIES)
        connection.execute(FILL_STATS)
        connection.commit()
        loaded = [connection.execute(q, (LOADED.symbol,)).fetchall() for q in (SEGMENTS, SUMMARY)]

    assert loaded_bars == len(bars)
    assert len(stored[0]) == SESSIONS and len(stored[1]) == 1
    assert loaded == stored
