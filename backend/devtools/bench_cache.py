"""Cache benchmarks on PostgreSQL; prints one JSON object per line, each beside its baseline.

Run with `make bench`. Uses a throwaway database next to TEST_DATABASE_URL
(default postgresql+psycopg://postgres@127.0.0.1:5432/test) and an in-process simulated gateway.

Figures:
  warm_read_ratio       get_or_fetch_market_data over one year of cached 1-minute bars, divided by
                        the fastest raw psycopg query returning the same tuples (target <= 1.5)
  cold_vs_warm          the same range fetched cold through the simulator, divided by the warm read
  upsert_ratio          bulk upsert of those bars into an empty cache, divided by COPY of the same
                        rows into an empty table of the same shape and indexes (target <= 2)
  upsert_conflict_ratio the same upsert when every row already exists (a refresh), divided by COPY
  daily_warm_read_ms    one year of daily bars, read warm, median of 50
  stats_ms_100k         the /stats service over a cache of 100k 1-minute bars in 100 series, beside
                        the full-scan GROUP BY /stats used to run on the same cache (baseline)
  stats_ms_10m          the same over 10M bars (the same series, with years more history)
  stats_ratio           stats_ms_10m / stats_ms_100k (target <= 1.5); the detail has the ratio of
                        the old full scan
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

import psycopg
from dependency_injector import providers
from sqlalchemy.engine import make_url

from backend.config.settings import load_settings
from backend.containers import build_container
from backend.core.logging import configure_logging
from backend.devtools import bench
from backend.devtools.bench import parse_help
from backend.devtools.migrations import migrate_to_head
from backend.devtools.postgres import throwaway_postgres_database
from backend.ibkr.pacing import PacingLimits, PacingScheduler
from backend.ibkr_simulator import SimulatedGateway
from backend.market_data.domain import SeriesKey
from backend.market_data.stats import CacheStatsService
from backend.storage.market_data_repository import NewBar

NOW = datetime(2025, 12, 1, 22, 0, tzinfo=UTC)
YEAR_AGO = NOW - timedelta(days=365)
PACING_SCALE = 0.001
ROUNDS = 9
# Figures here are given to four decimals.
emit = partial(bench.emit, digits=4)


def psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


RAW_READ = """
SELECT timestamp,
       (ohlcv_data->>'open')::float8, (ohlcv_data->>'high')::float8,
       (ohlcv_data->>'low')::float8, (ohlcv_data->>'close')::float8,
       (ohlcv_data->>'volume')::float8
FROM market_data_cache
WHERE symbol = %s AND exchange = %s AND data_type = %s AND timestamp >= %s AND timestamp < %s
ORDER BY timestamp
"""


def main(argv: Sequence[str] | None = None) -> None:
    parse_help(__doc__, argv)
    asyncio.run(benchmark())


async def benchmark() -> None:
    configure_logging("WARNING")
    gateway = SimulatedGateway(seed=11, pacing_scale=PACING_SCALE, now=NOW)
    await gateway.start()
    try:
        with throwaway_postgres_database("mdc_bench") as url:
            migrate_to_head(url)
            await run(url, gateway)
        with throwaway_postgres_database("mdc_bench") as url:
            migrate_to_head(url)
            stats_figures(url)
    finally:
        await gateway.stop()


async def run(url: str, gateway: SimulatedGateway) -> None:
    settings = load_settings(
        DATABASE_URL=url, IB_PORT=gateway.port, IB_CLIENT_ID=71, LOG_LEVEL="WARNING"
    )
    container = build_container(settings)
    container.clock.override(providers.Object(lambda: NOW))
    container.pacing.override(
        providers.Singleton(PacingScheduler, limits=PacingLimits().scaled(PACING_SCALE))
    )
    service = container.market_data_service()
    repository = container.market_data_repository()

    started = time.perf_counter()
    cold = await service.get_or_fetch_market_data("NVDA", "NASDAQ", "1m", YEAR_AGO, NOW)
    cold_s = time.perf_counter() - started
    bars = len(cold.bars)

    read_series = SeriesKey("NVDA", "NASDAQ", "1m")
    warm_samples, raw_samples, repository_samples = [], [], []
    # A UTC session, as the app uses: psycopg then returns datetime.timezone.utc, the cheapest tz.
    with psycopg.connect(psycopg_dsn(url), options="-c timezone=UTC") as connection:
        # Interleaved, so a busy moment on the machine weighs on all three alike.
        for _ in range(ROUNDS):
            started = time.perf_counter()
            warm = await service.get_or_fetch_market_data("NVDA", "NASDAQ", "1m", YEAR_AGO, NOW)
            warm_samples.append(time.perf_counter() - started)
            assert warm.bars_fetched == 0 and len(warm.bars) == bars

            # Binary results: the fastest plain psycopg read of these columns measured here.
            started = time.perf_counter()
            cursor = connection.cursor(binary=True)
            rows = cursor.execute(RAW_READ, ("NVDA", "NASDAQ", "1m", YEAR_AGO, NOW)).fetchall()
            raw_samples.append(time.perf_counter() - started)
            assert len(rows) == bars

            # The repository's OHLCV read alone, to show what the service adds around it.
            started = time.perf_counter()
            repository.read_ohlcv(read_series, YEAR_AGO, NOW)
            repository_samples.append(time.perf_counter() - started)
    warm_s = statistics.median(warm_samples)
    raw_s = statistics.median(raw_samples)
    repository_s = statistics.median(repository_samples)
    emit(
        "warm_read_ratio",
        warm_s / raw_s,
        "ratio",
        1.5,
        warm_s=round(warm_s, 4),
        raw_psycopg_s=round(raw_s, 4),
        repository_read_s=round(repository_s, 4),
        bars=bars,
    )
    emit(
        "cold_vs_warm",
        cold_s / warm_s,
        "factor",
        None,
        cold_s=round(cold_s, 3),
        warm_s=round(warm_s, 4),
        bars=bars,
        pacing_scale=PACING_SCALE,
    )

    # Bulk upsert versus COPY, on the rows just fetched.
    new_bars = [
        NewBar(
            bar.timestamp,
            {
                "open": bar.open,
                "high": bar.high,
                "low": bar.low,
                "close": bar.close,
                "volume": bar.volume,
                "wap": bar.wap,
                "bar_count": bar.bar_count,
            },
            bar.is_final,
        )
        for bar in repository.read_bars(read_series, YEAR_AGO, NOW)
    ]
    series = SeriesKey("BENCH", "NASDAQ", "1m")
    meta = {"source": "ibkr", "what_to_show": "TRADES", "use_rth": True}
    expires = NOW + timedelta(hours=24)
    started = time.perf_counter()
    repository.store_chunk(series, new_bars, meta, NOW, expires)
    upsert_s = time.perf_counter() - started
    started = time.perf_counter()
    repository.store_chunk(series, new_bars, meta, NOW, expires)
    conflict_s = time.perf_counter() - started
    copy_s = copy_into_twin_table(url, new_bars, meta, expires)
    emit(
        "upsert_ratio",
        upsert_s / copy_s,
        "ratio",
        2.0,
        upsert_s=round(upsert_s, 3),
        copy_s=round(copy_s, 3),
        rows=len(new_bars),
    )
    emit(
        "upsert_conflict_ratio",
        conflict_s / copy_s,
        "ratio",
        None,
        upsert_conflict_s=round(conflict_s, 3),
        copy_s=round(copy_s, 3),
        rows=len(new_bars),
    )

    await service.get_or_fetch_market_data("NVDA", "NASDAQ", "1d", YEAR_AGO, NOW)
    daily = []
    for _ in range(50):
        started = time.perf_counter()
        result = await service.get_or_fetch_market_data("NVDA", "NASDAQ", "1d", YEAR_AGO, NOW)
        daily.append(time.perf_counter() - started)
    emit(
        "daily_warm_read_ms",
        statistics.median(daily) * 1000,
        "ms",
        None,
        bars=len(result.bars),
        p90_ms=round(sorted(daily)[44] * 1000, 3),
    )
    await container.ib_connection().close()
    container.database().dispose()


STATS_SERIES = 100
STATS_SMALL_BARS = 100_000
STATS_LARGE_BARS = 10_000_000
# The last session of ten series is still open: 390 bars each, not final, half of them expired.
OPEN_SERIES = 10
OPEN_BARS = 390

# Bars minutes [lo, hi) before NOW, for series S000..S099, straight into the table in SQL.
FILL_BARS = """
INSERT INTO market_data_cache (symbol, exchange, data_type, timestamp, ohlcv_data, metadata,
    fetched_at, expires_at, created_at, updated_at)
SELECT 'S' || lpad(s::text, 3, '0'), 'NASDAQ', '1m', %(now)s - k * interval '1 minute',
    '{"open": 101.25, "high": 101.5, "low": 101.0, "close": 101.4, "volume": 1200.0,
      "wap": 101.3, "bar_count": 12}'::jsonb,
    jsonb_build_object('source', 'ibkr', 'what_to_show', 'TRADES', 'use_rth', true,
        'is_final', NOT (s < %(open_series)s AND k < %(open_bars)s)),
    %(now)s - interval '1 hour',
    %(now)s - interval '1 hour' + CASE WHEN k %% 2 = 0 THEN interval '30 minutes'
        ELSE interval '2 hours' END,
    %(now)s - interval '1 hour', %(now)s - interval '1 hour'
FROM generate_series(%(first_series)s::int, %(last_series)s::int) AS s,
    generate_series(%(lo)s::int, %(hi)s::int - 1) AS k
"""

# The summaries the repository keeps, for bars written around it: the migration's backfill.
REFRESH_SUMMARIES = """
DELETE FROM market_data_series_summary;
INSERT INTO market_data_series_summary
    (symbol, exchange, data_type, bar_count, first_bar_at, last_bar_at, last_fetched_at)
SELECT symbol, exchange, data_type, count(*), min(timestamp), max(timestamp), max(fetched_at)
FROM market_data_cache GROUP BY symbol, exchange, data_type
"""

# What /stats ran before the summaries: every bar, grouped by series.
OLD_STATS = """
SELECT symbol, exchange, data_type, count(*), min(timestamp), max(timestamp), max(fetched_at),
    sum(CASE WHEN expires_at <= %(now)s AND (metadata ->> 'is_final')::boolean IS NOT true
        THEN 1 ELSE 0 END)
FROM market_data_cache GROUP BY symbol, exchange, data_type ORDER BY symbol, data_type
"""


def fill(connection, lo: int, hi: int) -> None:
    """Bars lo..hi-1 minutes old in every series, ten series per statement."""
    for first in range(0, STATS_SERIES, 10):
        connection.execute(
            FILL_BARS,
            {
                "now": NOW,
                "open_series": OPEN_SERIES,
                "open_bars": OPEN_BARS,
                "first_series": first,
                "last_series": first + 9,
                "lo": lo,
                "hi": hi,
            },
        )
    connection.execute(REFRESH_SUMMARIES)
    # What autovacuum does on a live database after a load of this size.
    connection.execute("VACUUM ANALYZE market_data_cache, market_data_series_summary")


def time_stats(service: CacheStatsService, rounds: int) -> tuple[float, int, int]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        result = service.stats()
        samples.append(time.perf_counter() - started)
    bars = sum(series.bar_count for series in result.series)
    expired = sum(series.expired_count for series in result.series)
    return statistics.median(samples), bars, expired


def time_old_stats(connection, rounds: int) -> tuple[float, int, int]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        rows = connection.execute(OLD_STATS, {"now": NOW}).fetchall()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), sum(row[3] for row in rows), sum(row[7] for row in rows)


def stats_figures(url: str) -> None:
    """/stats at 100k and at 10M bars, each beside the full scan it replaced."""
    settings = load_settings(DATABASE_URL=url, LOG_LEVEL="WARNING")
    container = build_container(settings)
    container.clock.override(providers.Object(lambda: NOW))
    service = container.cache_stats_service()
    per_series_small = STATS_SMALL_BARS // STATS_SERIES
    per_series_large = STATS_LARGE_BARS // STATS_SERIES
    figures = {}
    with psycopg.connect(psycopg_dsn(url), autocommit=True, options="-c timezone=UTC") as db:
        for size, lo, hi in (
            ("100k", 0, per_series_small),
            # Years of older history in the same series; the open session stays the same.
            ("10m", per_series_small, per_series_large),
        ):
            started = time.perf_counter()
            fill(db, lo, hi)
            fill_s = time.perf_counter() - started
            new_s, bars, expired = time_stats(service, rounds=21)
            old_s, old_bars, old_expired = time_old_stats(db, rounds=3 if size == "10m" else 9)
            # Both answer the same.
            assert (bars, expired) == (old_bars, old_expired), (
                bars,
                expired,
                old_bars,
                old_expired,
            )
            figures[size] = (new_s, old_s, bars, expired)
            emit(
                f"stats_ms_{size}",
                new_s * 1000,
                "ms",
                round(old_s * 1000, 1),
                bars=bars,
                series=STATS_SERIES,
                expired_bars=expired,
                full_scan_ms=round(old_s * 1000, 1),
                fill_s=round(fill_s, 1),
            )
    (small_s, small_old_s, *_), (large_s, large_old_s, *_) = figures["100k"], figures["10m"]
    emit(
        "stats_ratio",
        large_s / small_s,
        "ratio",
        1.5,
        stats_ms_100k=round(small_s * 1000, 3),
        stats_ms_10m=round(large_s * 1000, 3),
        full_scan_ratio=round(large_old_s / small_old_s, 1),
        full_scan_ms_100k=round(small_old_s * 1000, 1),
        full_scan_ms_10m=round(large_old_s * 1000, 1),
    )
    container.database().dispose()


def copy_into_twin_table(url: str, bars: list[NewBar], meta: dict, expires: datetime) -> float:
    """COPY the same rows into an empty table with the cache's columns, indexes and unique key."""
    with psycopg.connect(psycopg_dsn(url)) as connection:
        connection.execute("CREATE TABLE bench_copy (LIKE market_data_cache INCLUDING ALL)")
        connection.commit()
        started = time.perf_counter()
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY bench_copy (symbol, exchange, data_type, timestamp, ohlcv_data, metadata,"
                " fetched_at, expires_at, created_at, updated_at) FROM STDIN"
            ) as copy,
        ):
            for bar in bars:
                copy.write_row(
                    (
                        "BENCH",
                        "NASDAQ",
                        "1m",
                        bar.timestamp,
                        json.dumps(bar.ohlcv),
                        json.dumps({**meta, "is_final": bar.is_final}),
                        NOW,
                        expires,
                        NOW,
                        NOW,
                    )
                )
        connection.commit()
        return time.perf_counter() - started


if __name__ == "__main__":
    main()
