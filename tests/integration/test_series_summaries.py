"""Series summaries stay equal to a full recount of the bars through upserts and deletes."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from backend.market_data.bar_columns import datetime_to_ns
from backend.market_data.domain import SeriesKey
from backend.storage.database import Database
from backend.storage.market_data_repository import (
    SEGMENTS,
    BarFilter,
    MarketDataCacheRepository,
    SeriesSummary,
)
from tests.support.bars import make_bars
from tests.support.bars import store as store_bars

NOW = datetime(2025, 12, 1, 22, 0, tzinfo=UTC)
DAY = timedelta(days=1)
NVDA = SeriesKey("NVDA", "NASDAQ", "1d")
TSLA = SeriesKey("TSLA", "NASDAQ", "1d")
IBM = SeriesKey("IBM", "NYSE", "1h")
EARLIEST, LATEST = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)


@pytest.fixture
def repository(migrated_database_url):
    database = Database(migrated_database_url)
    yield MarketDataCacheRepository(database)
    database.dispose()


def bars(first: datetime, count: int, step: timedelta = DAY, is_final: bool = True):
    return make_bars(first, count, step, is_final=is_final)


def store(repository, series, new_bars, fetched_at=NOW, ttl=timedelta(hours=24)):
    store_bars(repository, series, new_bars, fetched_at, ttl)


def recount(repository: MarketDataCacheRepository, now: datetime) -> dict:
    """What the summaries must say, from every stored bar and the fetch it came from."""
    with repository.database.engine.connect() as connection:
        keys = connection.execute(
            select(SEGMENTS.c.symbol, SEGMENTS.c.exchange, SEGMENTS.c.data_type).distinct()
        ).all()
    figures = {}
    for key in keys:
        segments = repository.read_segments(SeriesKey(*key), EARLIEST, LATEST)
        stamps = [stamp for s in segments for stamp in s.columns.timestamps()]
        fetched = [f.fetched_at for s in segments for f in s.fetches]
        expired = sum(
            int(((~s.columns.is_final) & (s.expires_at_ns() <= datetime_to_ns(now))).sum())
            for s in segments
        )
        assert stamps == sorted(set(stamps)), "segments overlap or are out of order"
        figures[tuple(key)] = {
            "bar_count": len(stamps),
            "first": min(stamps),
            "last": max(stamps),
            "last_updated": max(fetched),
            "expired_count": expired,
        }
    return figures


def summaries(repository: MarketDataCacheRepository, now: datetime) -> dict:
    return {
        (row["symbol"], row["exchange"], row["data_type"]): {
            name: row[name]
            for name in ("bar_count", "first", "last", "last_updated", "expired_count")
        }
        for row in repository.series_summaries(now)
    }


def assert_summaries_match(repository, now=NOW):
    expected = recount(repository, now)
    assert summaries(repository, now) == expected
    for key, figures in expected.items():
        summary = repository.series_summary(SeriesKey(*key))
        # The basis is the first fetch's (no corporate action here): not part of the recount.
        assert summary == SeriesSummary(
            figures["bar_count"],
            figures["first"],
            figures["last"],
            figures["last_updated"],
            basis_at=summary.basis_at,
        )
    return expected


def test_summaries_match_a_recount_after_inserts(repository):
    assert repository.series_summaries(NOW) == []
    start = datetime(2025, 1, 2, tzinfo=UTC)
    store(repository, NVDA, bars(start, 30))
    store(repository, NVDA, bars(start + 30 * DAY, 20), fetched_at=NOW + timedelta(hours=1))
    # Bars before the first ones, overlapping some already cached.
    store(repository, NVDA, bars(start - 10 * DAY, 15))
    store(repository, TSLA, bars(start, 5))
    store(repository, IBM, bars(start, 48, step=timedelta(hours=1)))
    figures = assert_summaries_match(repository)
    assert figures[NVDA.symbol, NVDA.exchange, NVDA.data_type]["bar_count"] == 60
    assert figures["IBM", "NYSE", "1h"]["bar_count"] == 48


def test_upserting_the_same_chunk_again_does_not_count_its_bars_twice(repository):
    chunk = bars(datetime(2025, 3, 3, tzinfo=UTC), 40)
    store(repository, NVDA, chunk)
    store(repository, NVDA, chunk)
    store(repository, NVDA, chunk, fetched_at=NOW + timedelta(minutes=5))
    # Half old, half new; the bars it leaves alone keep the later fetch time.
    store(repository, NVDA, bars(datetime(2025, 3, 23, tzinfo=UTC), 40))
    figures = assert_summaries_match(repository)
    assert figures["NVDA", "NASDAQ", "1d"]["bar_count"] == 60
    assert figures["NVDA", "NASDAQ", "1d"]["last_updated"] == NOW + timedelta(minutes=5)


def test_an_older_fetch_time_over_the_newest_bars_moves_last_updated_back(repository):
    chunk = bars(datetime(2025, 3, 3, tzinfo=UTC), 10)
    store(repository, NVDA, chunk, fetched_at=NOW)
    store(repository, NVDA, chunk.take(slice(5, None)), fetched_at=NOW - timedelta(days=2))
    assert assert_summaries_match(repository)["NVDA", "NASDAQ", "1d"]["last_updated"] == NOW
    store(repository, NVDA, chunk, fetched_at=NOW - timedelta(days=3))
    figures = assert_summaries_match(repository)
    assert figures["NVDA", "NASDAQ", "1d"]["last_updated"] == NOW - timedelta(days=3)


def test_expired_bars_are_counted_exactly_at_any_time(repository):
    start = datetime(2025, 11, 3, 14, 30, tzinfo=UTC)
    store(repository, IBM, bars(start, 20, step=timedelta(hours=1)))
    # The open session's bars, fetched twice with different expiry times.
    store(
        repository,
        IBM,
        bars(start + timedelta(days=1), 3, step=timedelta(hours=1), is_final=False),
        fetched_at=NOW - timedelta(hours=3),
        ttl=timedelta(hours=1),
    )
    store(
        repository,
        IBM,
        bars(start + timedelta(days=1, hours=3), 2, step=timedelta(hours=1), is_final=False),
        fetched_at=NOW,
        ttl=timedelta(hours=1),
    )
    expected_at = {
        NOW - timedelta(hours=3): 0,
        NOW - timedelta(hours=2): 3,
        NOW: 3,
        NOW + timedelta(hours=1): 5,
    }
    for now, expired in expected_at.items():
        assert assert_summaries_match(repository, now)["IBM", "NYSE", "1h"]["expired_count"] == (
            expired
        )
    # The session closes; fetched again, its bars are final and no longer expire.
    store(repository, IBM, bars(start + timedelta(days=1), 5, step=timedelta(hours=1)))
    later = NOW + timedelta(days=5)
    assert assert_summaries_match(repository, later)["IBM", "NYSE", "1h"]["expired_count"] == 0


def test_date_range_deletes_keep_counts_first_and_last_exact(repository):
    start = datetime(2025, 1, 1, tzinfo=UTC)
    store(repository, NVDA, bars(start, 30), fetched_at=NOW - timedelta(days=1))
    store(repository, NVDA, bars(start + 30 * DAY, 30), fetched_at=NOW)
    store(repository, TSLA, bars(start, 60))

    # The middle of NVDA only.
    middle = BarFilter("NVDA", date_from=start + 10 * DAY, date_to=start + 19 * DAY)
    assert repository.delete_bars(middle) == 10
    assert_summaries_match(repository)
    # Its newest bars, which held the latest fetch time, then its oldest.
    assert repository.delete_bars(BarFilter("NVDA", date_from=start + 30 * DAY)) == 30
    figures = assert_summaries_match(repository)
    assert figures["NVDA", "NASDAQ", "1d"]["last_updated"] == NOW - timedelta(days=1)
    assert figures["NVDA", "NASDAQ", "1d"]["last"] == start + 29 * DAY
    assert repository.delete_bars(BarFilter("NVDA", date_to=start + 4 * DAY)) == 5
    figures = assert_summaries_match(repository)
    assert figures["NVDA", "NASDAQ", "1d"]["first"] == start + 5 * DAY
    assert figures["NVDA", "NASDAQ", "1d"]["bar_count"] == 15

    # Across series: a date filter alone.
    assert repository.delete_bars(BarFilter(date_from=start + 25 * DAY)) == 5 + 35
    figures = assert_summaries_match(repository)
    assert figures["TSLA", "NASDAQ", "1d"]["last"] == start + 24 * DAY


def test_whole_series_deletes_drop_their_summaries(repository):
    start = datetime(2025, 1, 1, tzinfo=UTC)
    store(repository, NVDA, bars(start, 10))
    store(repository, TSLA, bars(start, 10))
    store(repository, IBM, bars(start, 10, step=timedelta(hours=1), is_final=False))

    assert repository.delete_bars(BarFilter("NVDA")) == 10
    assert set(assert_summaries_match(repository)) == {
        ("TSLA", "NASDAQ", "1d"),
        ("IBM", "NYSE", "1h"),
    }
    # A range covering the whole series deletes it too.
    assert repository.delete_bars(BarFilter("TSLA", date_from=start, date_to=start + 9 * DAY)) == 10
    assert set(assert_summaries_match(repository)) == {("IBM", "NYSE", "1h")}
    assert repository.delete_bars(BarFilter()) == 10
    assert repository.series_summaries(NOW) == []
    assert recount(repository, NOW) == {}

    # A series cached again after its deletion starts from nothing.
    store(repository, NVDA, bars(start, 3))
    assert assert_summaries_match(repository)["NVDA", "NASDAQ", "1d"]["bar_count"] == 3


def test_the_list_total_without_dates_comes_from_the_summaries_and_stays_right(repository):
    start = datetime(2025, 1, 1, tzinfo=UTC)
    store(repository, NVDA, bars(start, 30))
    store(repository, NVDA, bars(start, 40))
    store(repository, TSLA, bars(start, 5))
    store(repository, IBM, bars(start, 7, step=timedelta(hours=1)))
    repository.delete_bars(BarFilter("NVDA", date_from=start + 35 * DAY))

    def total(**filters) -> int:
        return repository.list_bars(BarFilter(**filters), limit=1, offset=0)[1]

    assert total() == 35 + 5 + 7
    assert total(symbol="NVDA") == 35
    assert total(exchange="NASDAQ") == 40
    assert total(data_type="1h") == 7
    assert total(symbol="AAPL") == 0
    assert total(symbol="NVDA", date_from=start + 30 * DAY) == 5
    assert total(date_to=start + 2 * DAY) == 3 + 3 + 7
