"""Processes sharing a cache and a gateway ask IBKR for a series' first bar once between them."""

import asyncio
from datetime import timedelta

from dependency_injector import providers

from backend.ibkr.pacing import PacingLimits, PacingScheduler
from backend.market_data.domain import parse_series
from tests.support.gateway import PACING_SCALE, FakeClock


async def test_two_processes_reading_a_new_series_at_once_ask_its_head_once(
    migrated_database_url, sim, build_container
):
    # Two containers are two processes: their own client ids, connections and pacing queues,
    # one database and so one pacing ledger. Both wait on the identical-request rule for the
    # head timestamp; the one that waited finds the other's answer in the cache.
    clock = FakeClock()
    first = build_container(migrated_database_url, sim.port, clock)
    second = build_container(migrated_database_url, sim.port, clock)
    for container in (first, second):
        # The app's pacing: the database's ledger (the test containers pace in memory).
        container.pacing.override(
            providers.Singleton(
                PacingScheduler,
                limits=PacingLimits().scaled(PACING_SCALE),
                ledger=container.pacing_ledger,
            )
        )
    # Two bar sizes: two series (no series lock between them), one first bar (per contract,
    # whatToShow and hours).
    daily, hourly = parse_series("NVDA", "1d"), parse_series("NVDA", "1h")
    start = clock.now - timedelta(days=20)
    before = sim.stats()

    read = await asyncio.gather(
        first.market_data_service().read_series(daily, start, clock.now),
        second.market_data_service().read_series(hourly, start, clock.now),
    )

    after = sim.stats()
    assert after["head_timestamp_requests"] - before["head_timestamp_requests"] == 1
    assert after["pacing_violations"] == before["pacing_violations"]
    assert 10 < len(read[0].bars) < len(read[1].bars)
    for container in (first, second):
        container.pacing_ledger().close()
