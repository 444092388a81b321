"""/stats answers from the series summaries: the work the database does does not grow with bars."""

import json
from datetime import UTC, datetime, timedelta

from backend.market_data.domain import SeriesKey
from tests.support.bars import make_bars
from tests.support.bars import store as store_bars
from tests.support.cache_api import api_client
from tests.support.gateway import FIXED_NOW
from tests.support.sql_work import statements_of, work_on_bars

STATS = "/api/market-data/cache/stats"
NVDA = SeriesKey("NVDA", "NASDAQ", "1d")
IBM = SeriesKey("IBM", "NYSE", "1h")


def store(container, series, first, count, step, is_final=True, fetched_at=FIXED_NOW, ttl=None):
    bars = make_bars(first, count, step, is_final=is_final)
    store_bars(
        container.market_data_repository(), series, bars, fetched_at, ttl or timedelta(hours=24)
    )


def test_stats_read_no_more_of_the_bars_when_the_cache_grows(migrated_database_url):
    with api_client(migrated_database_url) as (client, container):
        store(container, NVDA, datetime(2024, 11, 3, tzinfo=UTC), 370, timedelta(days=1))
        store(container, IBM, datetime(2025, 11, 18, 14, tzinfo=UTC), 240, timedelta(hours=1))
        # Today's open session: two bars that expired an hour ago, one still fresh.
        today = datetime(2025, 12, 1, 14, 30, tzinfo=UTC)
        store(
            container,
            IBM,
            today,
            2,
            timedelta(hours=1),
            is_final=False,
            fetched_at=FIXED_NOW - timedelta(hours=3),
            ttl=timedelta(hours=2),
        )
        store(container, IBM, today + timedelta(hours=2), 1, timedelta(hours=1), is_final=False)

        with statements_of(container) as small_statements:
            small = client.get(STATS).json()
        small_work = work_on_bars(migrated_database_url, small_statements)

        # Years more of final bars in the same two series.
        store(container, NVDA, datetime(2014, 1, 2, tzinfo=UTC), 3000, timedelta(days=1))
        store(container, IBM, datetime(2025, 5, 2, 13, tzinfo=UTC), 4000, timedelta(hours=1))

        with statements_of(container) as large_statements:
            large = client.get(STATS).json()
        large_work = work_on_bars(migrated_database_url, large_statements)

    counts = {
        row["symbol"]: (row["bar_count"], row["expired_count"], row["first"], row["last"])
        for row in large["series"]
    }
    assert counts == {
        "IBM": (240 + 3 + 4000, 2, "2025-05-02T13:00:00Z", "2025-12-01T16:30:00Z"),
        "NVDA": (370 + 3000, 0, "2014-01-02T00:00:00Z", "2025-11-07T00:00:00Z"),
    }
    small_counts = {row["symbol"]: row["bar_count"] for row in small["series"]}
    assert small_counts == {"IBM": 243, "NVDA": 370}
    assert len(large_statements) == len(small_statements)
    # The bars added are final: /stats reads the summaries and only the open segments' index.
    # (With few rows a planner may read the small table whole rather than use the index, so the
    # larger cache may cost less; it must never cost more.)
    assert large_work <= small_work, (small_work, large_work)


def test_stats_statements_are_few_and_fixed(migrated_database_url):
    # Not one query per series: a cache of many series costs the same number of round trips.
    with api_client(migrated_database_url) as (client, container):
        for number in range(12):
            series = SeriesKey(f"S{number}", "NASDAQ", "1d")
            store(container, series, datetime(2025, 11, 3, tzinfo=UTC), 3, timedelta(days=1))
        with statements_of(container) as statements:
            body = client.get(STATS).json()
    assert len(body["series"]) == 12
    assert len(statements) <= 2, json.dumps([statement for statement, _ in statements])
