"""Lookup counts are written off the read path, and none is lost: not under many threads, not
when a write fails, not at shutdown."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from backend.market_data.domain import SeriesKey
from backend.market_data.lookup_counts import LookupCounts
from backend.storage.database import Database
from backend.storage.market_data_repository import MarketDataCacheRepository

NOW = datetime(2025, 12, 1, 22, 0, tzinfo=UTC)
NVDA = SeriesKey("NVDA", "NASDAQ", "1m")
TSLA = SeriesKey("TSLA", "NASDAQ", "1d")


@pytest.fixture
def repository(migrated_database_url):
    database = Database(migrated_database_url)
    yield MarketDataCacheRepository(database)
    database.dispose()


def stored(repository: MarketDataCacheRepository) -> dict:
    return {
        (row.symbol, row.data_type): (
            row.hits,
            row.misses,
            row.partial_hits,
            row.stale_serves,
            row.last_hit_at,
        )
        for row in repository.all_stats()
    }


def test_lookups_from_many_threads_are_all_counted(repository):
    lookups = LookupCounts(repository)
    outcomes = ["hit"] * 5 + ["miss", "partial", "stale"]

    def look(i: int) -> None:
        series = NVDA if i % 2 else TSLA
        lookups.record(series, outcomes[i % len(outcomes)], NOW + timedelta(seconds=i))

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(look, range(800)))
    lookups.flush()

    counts = stored(repository)
    # i odd: NVDA gets outcomes[1,3,5,7] = hit, hit, miss, stale, each 100 times
    hits, misses, partial, stale, last_hit_at = counts[("NVDA", "1m")]
    assert (hits, misses, partial, stale) == (200, 100, 0, 100)
    assert last_hit_at.astimezone(UTC) == NOW + timedelta(seconds=799)
    hits, misses, partial, stale, _ = counts[("TSLA", "1d")]
    assert (hits, misses, partial, stale) == (300, 0, 100, 0)
    lookups.close()


def test_an_older_hit_written_later_does_not_move_the_last_hit_back(repository):
    # Threads record in any order: a hit stamped earlier can reach the writer after a later one.
    lookups = LookupCounts(repository)
    lookups.record(NVDA, "hit", NOW + timedelta(seconds=10))
    lookups.flush()
    lookups.record(NVDA, "stale", NOW + timedelta(seconds=5))
    lookups.flush()

    hits, _, _, stale, last_hit_at = stored(repository)[("NVDA", "1m")]
    assert (hits, stale) == (1, 1)
    assert last_hit_at.astimezone(UTC) == NOW + timedelta(seconds=10)
    lookups.close()


def test_a_miss_alone_sets_no_last_hit_time(repository):
    lookups = LookupCounts(repository)
    lookups.record(NVDA, "miss", NOW)
    lookups.close()  # close stores what is left

    assert stored(repository)[("NVDA", "1m")] == (0, 1, 0, 0, None)


def test_a_failed_write_keeps_its_counts_for_the_next(repository):
    lookups = LookupCounts(repository)
    with repository.database.engine.begin() as connection:
        connection.execute(text("ALTER TABLE market_data_cache_stats RENAME TO stats_away"))
    lookups.record(NVDA, "hit", NOW)
    with pytest.raises(Exception, match="market_data_cache_stats"):
        lookups.flush()

    with repository.database.engine.begin() as connection:
        connection.execute(text("ALTER TABLE stats_away RENAME TO market_data_cache_stats"))
    lookups.record(NVDA, "hit", NOW + timedelta(minutes=1))
    lookups.flush()

    hits, *_, last_hit_at = stored(repository)[("NVDA", "1m")]
    assert hits == 2
    assert last_hit_at.astimezone(UTC) == NOW + timedelta(minutes=1)
    lookups.close()


def test_an_unknown_outcome_is_refused_with_the_known_ones(repository):
    lookups = LookupCounts(repository)
    with pytest.raises(ValueError, match="unknown lookup outcome 'bounce'.*'hit'"):
        lookups.record(NVDA, "bounce", NOW)
    lookups.close()
