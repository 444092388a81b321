"""get_or_fetch_market_data on real databases, with the real client against the simulator."""

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backend.market_data import calendar as market_calendar
from backend.market_data.domain import BarSize, SeriesKey
from backend.market_data.errors import CacheMissInDebugMode, GatewayUnavailable
from backend.market_data.service import CacheOutcome, DataSource
from tests.support.bars import stored_bar_count, stored_bar_keys, stored_bars
from tests.support.gateway import FIXED_NOW, FakeClock, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
YEAR_AGO = FIXED_NOW - timedelta(days=365)


def bar_rows(database_url: str, symbol: str | None = None) -> int:
    """Bars stored (summed over the segments that hold them)."""
    return stored_bar_count(database_url, symbol)


def distinct_bars(database_url: str) -> int:
    """Distinct (series, timestamp) among the stored bars: equal to bar_rows when none repeats."""
    return len(set(stored_bar_keys(database_url)))


async def test_populating_nvda_and_tsla_stores_exactly_the_calendar_bars(
    migrated_database_url, sim, build_container
):
    container = build_container(migrated_database_url, sim.port, FakeClock())
    service = container.market_data_service()
    expected = market_calendar.expected_bar_timestamps("NASDAQ", BarSize.D1, YEAR_AGO, FIXED_NOW)
    for _ in range(2):
        for symbol in ("NVDA", "TSLA"):
            result = await service.get_or_fetch_market_data(
                symbol, "NASDAQ", "1d", YEAR_AGO, FIXED_NOW
            )
            assert result.bars.timestamps() == expected
    assert bar_rows(migrated_database_url, "NVDA") == len(expected) == 250
    assert bar_rows(migrated_database_url, "TSLA") == len(expected)
    assert distinct_bars(migrated_database_url) == 2 * len(expected)
    # The second round was served from the cache: one request per symbol in all.
    assert sim.stats()["historical_requests"] == 2


async def test_hit_makes_no_gateway_request(sqlite_url, sim, build_container):
    from tests.support.migrations import migrate_to_head

    migrate_to_head(sqlite_url)
    service = build_container(sqlite_url, sim.port, FakeClock()).market_data_service()
    first = await service.get_or_fetch_market_data("AAPL", "NASDAQ", "1h", YEAR_AGO, FIXED_NOW)
    assert (first.source, first.outcome) == (DataSource.IBKR, CacheOutcome.MISS)
    before = sim.stats()["historical_requests"]
    second = await service.get_or_fetch_market_data("AAPL", "NASDAQ", "1h", YEAR_AGO, FIXED_NOW)
    assert (second.source, second.outcome) == (DataSource.CACHE, CacheOutcome.HIT)
    assert second.bars == first.bars
    assert second.bars_fetched == 0 and second.missing == []
    assert sim.stats()["historical_requests"] == before


async def test_partial_hit_fetches_only_the_gap(migrated_database_url, sim, build_container):
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()
    start = datetime(2025, 11, 17, tzinfo=UTC)
    middle = datetime(2025, 11, 24, tzinfo=UTC)
    await service.get_or_fetch_market_data("MSFT", "NASDAQ", "1m", start, middle)
    sim.reset()
    result = await service.get_or_fetch_market_data("MSFT", "NASDAQ", "1m", start, FIXED_NOW)
    gap = market_calendar.expected_bar_timestamps("NASDAQ", BarSize.M1, middle, FIXED_NOW)
    assert result.outcome is CacheOutcome.PARTIAL and result.source is DataSource.MIXED
    assert result.bars_fetched == len(gap) == 4 * 390 + 210
    assert result.bars_from_cache == 5 * 390
    # One request per gap session (24, 25, 26, 28 Nov and 1 Dec), none for the cached week (and
    # none to check the price basis: no session opened since the week was fetched).
    assert sim.stats()["historical_requests"] == 5


async def test_expired_bars_are_fetched_again_and_final_bars_are_kept(
    migrated_database_url, sim, build_container
):
    # Mid-session on 2025-12-01: that day's daily bar is still forming when fetched.
    clock = FakeClock(datetime(2025, 12, 1, 18, 0, tzinfo=UTC))
    container = build_container(migrated_database_url, sim.port, clock)
    service = container.market_data_service()
    start, end = datetime(2025, 11, 24, tzinfo=UTC), datetime(2025, 12, 2, tzinfo=UTC)

    def stored():
        return stored_bars(
            container.market_data_repository(), SeriesKey("TSLA", "NASDAQ", "1d"), start, end
        )

    first = await service.get_or_fetch_market_data("TSLA", "NASDAQ", "1d", start, end)
    assert len(first.bars) == 5
    assert [bar.is_final for bar in stored()] == [True, True, True, True, False]

    clock.advance(hours=23)  # within the 24 h TTL: nothing is fetched
    sim.reset()
    within_ttl = await service.get_or_fetch_market_data("TSLA", "NASDAQ", "1d", start, end)
    assert within_ttl.outcome is CacheOutcome.HIT
    assert sim.stats()["historical_requests"] == 0

    clock.advance(hours=2)  # past the TTL: the forming bar is fetched again, the final ones are not
    refreshed = await service.get_or_fetch_market_data("TSLA", "NASDAQ", "1d", start, end)
    assert (refreshed.outcome, refreshed.source) == (CacheOutcome.PARTIAL, DataSource.MIXED)
    assert (refreshed.bars_fetched, refreshed.bars_from_cache) == (1, 4)
    # The expired session, and the cached bars before it asked again to check the price basis.
    assert sim.stats()["historical_requests"] == 2
    assert refreshed.fetched_at_range == (FIXED_NOW - timedelta(hours=4), clock.now)
    last = stored()[-1]
    assert last.timestamp == datetime(2025, 12, 1, tzinfo=UTC)
    assert (last.is_final, last.fetched_at) == (True, clock.now)
    assert last.expires_at == clock.now + timedelta(hours=24)
    assert bar_rows(migrated_database_url, "TSLA") == 5

    clock.advance(hours=48)  # final bars are settled history: past their TTL, still a hit
    assert (
        await service.get_or_fetch_market_data("TSLA", "NASDAQ", "1d", start, end)
    ).outcome is CacheOutcome.HIT
    assert sim.stats()["historical_requests"] == 2


async def test_debug_mode_hit_and_miss_never_connect(migrated_database_url, sim, build_container):
    live = build_container(migrated_database_url, sim.port, FakeClock())
    await live.market_data_service().get_or_fetch_market_data(
        "NVDA", "NASDAQ", "1d", YEAR_AGO, FIXED_NOW
    )
    live.ib_connection().ib.disconnect()
    sim.reset()

    debug_clock = FakeClock(FIXED_NOW + timedelta(days=30))  # expiry is ignored in debug mode
    debug = build_container(migrated_database_url, sim.port, debug_clock, DEBUG_MODE=True)
    service = debug.market_data_service()
    assert service.client is None
    hit = await service.get_or_fetch_market_data("NVDA", "NASDAQ", "1d", YEAR_AGO, FIXED_NOW)
    assert (hit.source, hit.outcome, len(hit.bars)) == (DataSource.CACHE, CacheOutcome.HIT, 250)

    with pytest.raises(CacheMissInDebugMode) as raised:
        await service.get_or_fetch_market_data("TSLA", "NASDAQ", "1h", YEAR_AGO, FIXED_NOW)
    message = str(raised.value)
    assert "TSLA" in message and "1h" in message
    assert raised.value.missing[0][0] >= YEAR_AGO
    assert "make populate-cache SYMBOLS=TSLA EXCHANGE=NASDAQ DATA_TYPES=1h" in message
    assert sim.stats()["connections_total"] == 0


async def test_cache_disabled_fetches_live_and_stores_nothing(
    migrated_database_url, sim, build_container
):
    service = build_container(
        migrated_database_url, sim.port, FakeClock(), CACHE_ENABLED=False
    ).market_data_service()
    for _ in range(2):
        result = await service.get_or_fetch_market_data("AMD", "NASDAQ", "1d", YEAR_AGO, FIXED_NOW)
        assert (result.source, result.outcome, len(result.bars)) == (
            DataSource.IBKR,
            CacheOutcome.BYPASS,
            250,
        )
    assert sim.stats()["historical_requests"] == 2
    assert bar_rows(migrated_database_url) == 0


async def test_stale_if_error_serves_expired_cache_and_raises_when_nothing_cached(
    migrated_database_url, sim, build_container
):
    clock = FakeClock(datetime(2025, 12, 1, 18, 0, tzinfo=UTC))
    start = datetime(2025, 11, 3, tzinfo=UTC)
    live = build_container(migrated_database_url, sim.port, clock)
    await live.market_data_service().get_or_fetch_market_data(
        "INTC", "NASDAQ", "1d", start, clock.now
    )
    clock.advance(hours=30)

    down = build_container(migrated_database_url, free_port(), clock).market_data_service()
    stale = await down.get_or_fetch_market_data("INTC", "NASDAQ", "1d", start, clock.now)
    assert (stale.source, stale.outcome) == (DataSource.STALE_CACHE, CacheOutcome.STALE)
    assert stale.bars.last_at() == datetime(2025, 12, 1, tzinfo=UTC)
    assert stale.missing  # 2025-12-02 could not be fetched and is reported, not hidden

    with pytest.raises(GatewayUnavailable, match="connection refused"):
        await down.get_or_fetch_market_data("CSCO", "NASDAQ", "1d", start, clock.now)


async def test_twenty_concurrent_calls_share_one_fetch(migrated_database_url, sim, build_container):
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()
    results = await asyncio.gather(
        *(
            service.get_or_fetch_market_data("GOOGL", "NASDAQ", "1d", YEAR_AGO, FIXED_NOW)
            for _ in range(20)
        )
    )
    assert sim.stats()["historical_requests"] == 1
    assert all(len(result.bars) == 250 for result in results)
    assert all(result.bars == results[0].bars for result in results)


async def test_a_caller_going_away_does_not_cancel_a_shared_fetch(
    migrated_database_url, sim, build_container
):
    """Two identical calls share one fetch; cancelling the first leaves the second its bars."""
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()
    sim.arm_fault("delay", count=1, seconds=0.5)
    first = asyncio.create_task(
        service.get_or_fetch_market_data("META", "NASDAQ", "1d", YEAR_AGO, FIXED_NOW)
    )
    second = asyncio.create_task(
        service.get_or_fetch_market_data("META", "NASDAQ", "1d", YEAR_AGO, FIXED_NOW)
    )
    await asyncio.sleep(0.2)
    first.cancel()
    result = await second
    assert first.cancelled()
    assert len(result.bars) == 250
    assert sim.stats()["historical_requests"] == 1


async def test_the_last_caller_going_away_stops_the_fetch(
    migrated_database_url, sim, build_container
):
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()
    sim.arm_fault("delay", count=100, seconds=0.2)
    start = FIXED_NOW - timedelta(days=20)
    call = asyncio.create_task(
        service.get_or_fetch_market_data("XOM", "NASDAQ", "1m", start, FIXED_NOW)
    )
    while sim.stats()["historical_requests"] < 2:
        await asyncio.sleep(0.02)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    sent = sim.stats()["historical_requests"]
    await asyncio.sleep(0.6)
    assert sim.stats()["historical_requests"] == sent < 10


async def test_confirmed_empty_range_is_not_requested_again(
    migrated_database_url, sim, build_container
):
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()
    start = datetime(2024, 1, 2, tzinfo=UTC)  # ALAB listed on 2024-03-20
    first = await service.get_or_fetch_market_data(
        "ALAB", "NASDAQ", "1d", start, datetime(2024, 6, 1, tzinfo=UTC)
    )
    assert first.bars.first_at() == datetime(2024, 3, 20, tzinfo=UTC)
    assert first.missing == []
    sim.reset()
    again = await service.get_or_fetch_market_data(
        "ALAB", "NASDAQ", "1d", start, datetime(2024, 6, 1, tzinfo=UTC)
    )
    assert again.outcome is CacheOutcome.HIT
    assert sim.stats()["historical_requests"] == 0


async def test_statistics_survive_a_restart(migrated_database_url, sim, build_container):
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()
    for _ in range(3):
        await service.get_or_fetch_market_data("KO", "NYSE", "1d", YEAR_AGO, FIXED_NOW)
    restarted = build_container(migrated_database_url, sim.port, FakeClock())
    stats = {
        (row.symbol, row.data_type): row for row in restarted.market_data_repository().all_stats()
    }
    ko = stats[("KO", "1d")]
    assert (ko.misses, ko.hits, ko.partial_hits, ko.stale_serves) == (1, 2, 0, 0)
    assert ko.last_hit_at == FIXED_NOW and ko.last_refresh_at == FIXED_NOW


def test_two_processes_populating_one_series_on_postgresql(postgres_url, sim):
    from tests.support.migrations import migrate_to_head

    migrate_to_head(postgres_url)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "tests.support.populate_worker", postgres_url, str(sim.port)]
    workers = [
        subprocess.Popen(
            command + [str(9000 + n)],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    expected = len(
        market_calendar.expected_bar_timestamps("NASDAQ", BarSize.M5, YEAR_AGO, FIXED_NOW)
    )
    assert bar_rows(postgres_url, "JPM") == distinct_bars(postgres_url) == expected
    # The advisory lock made the second process wait and then read what the first stored.
    outcomes = sorted(output[0].strip() for output in outputs)
    assert outcomes == ["hit", "miss"]


async def test_each_call_logs_one_line_with_its_context(sqlite_url, sim, build_container):
    from loguru import logger

    from tests.support.migrations import migrate_to_head

    migrate_to_head(sqlite_url)
    service = build_container(sqlite_url, sim.port, FakeClock()).market_data_service()
    records = []
    sink = logger.add(records.append, level="INFO", filter="backend.market_data.service")
    try:
        await service.get_or_fetch_market_data("IBM", "NYSE", "1d", YEAR_AGO, FIXED_NOW)
        await service.get_or_fetch_market_data("IBM", "NYSE", "1d", YEAR_AGO, FIXED_NOW)
    finally:
        logger.remove(sink)
    extras = [record.record["extra"] for record in records]
    assert [extra["outcome"] for extra in extras] == ["miss", "hit"]
    assert [(extra["bars_cached"], extra["bars_fetched"]) for extra in extras] == [
        (0, 250),
        (250, 0),
    ]
    assert all(extra["symbol"] == "IBM" and extra["data_type"] == "1d" for extra in extras)
    assert all(extra["range"].startswith(YEAR_AGO.isoformat()) for extra in extras)
    assert all(extra["duration_ms"] >= 0 for extra in extras)


def test_ibkr_service_is_the_market_data_service():
    """The platform's task list calls the service IBKRService; both names are one class."""
    from backend.market_data.service import IBKRService, MarketDataService

    assert IBKRService is MarketDataService
    assert callable(IBKRService.get_or_fetch_market_data)
