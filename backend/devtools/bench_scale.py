"""The cache at scale on PostgreSQL: 500 symbols x a trading year of 1-minute bars.

Run with `make bench-scale` (not part of `make bench`: it loads ~49M bars, ~1.4 GB, in about
two minutes on two cores). Two throwaway databases next to TEST_DATABASE_URL: one holds a single
series, written through store_chunk one session per chunk as the service writes what IBKR
sends; the other holds 500 series of realistic bars (bench_cache's), that one among them, loaded
by COPY of the very rows store_chunk writes (built by the repository's own _segment_values,
checked equal to the single-series database's rows) with the summaries and statistics beside
them.

Figures (target: an upper bound, PASS or MISS):
  scale_load_s                   generating, encoding and COPYing the 500 series, beside the
                                 single series written through store_chunk
  scale_bytes_per_bar            pg_total_relation_size('market_data_cache') per bar at 500
                                 series, beside the single-series database's; Parquet's in the
                                 detail
  scale_warm_read_vs_one_series  get_or_fetch_market_data(...).to_pandas() of one series-year at
                                 500 series, over the same read on the single-series database,
                                 round by round (target <= 1.2)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path

import psycopg
import pyarrow.parquet as pq

from backend.core.logging import configure_logging
from backend.devtools.bench import emit, emit_ratio, median, parse_help, seconds
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
from backend.devtools.bench_cache import (
    BACKFILLED_AT,
    ROUNDS,
    SEED,
    SERIES,
    WARMUP,
    YEAR_CLOSED_BY,
    cache_container,
)
from backend.devtools.migrations import migrate_to_head
from backend.devtools.postgres import throwaway_postgres_database
from backend.market_data.domain import SeriesKey
from backend.market_data.service import CacheOutcome
from backend.storage.database import Database
from backend.storage.market_data_repository import MarketDataCacheRepository

SYMBOLS = 500
# Series generated ahead of the COPY, by the worker processes.
AHEAD = 8
# Series per transaction of the load.
COMMIT_EVERY = 50
# No gateway is reached: every read is a cache hit (checked), so the client never connects.
UNUSED_GATEWAY_PORT = 4002

# Every column but the id, in one order, to compare a series' rows across the two databases.
SERIES_ROWS = """
SELECT symbol, exchange, data_type, segment_date, timestamp, last_bar_at, bar_count, is_final,
    ohlcv_data, indicators, metadata, first_fetched_at, fetched_at, expires_at, created_at,
    updated_at
FROM market_data_cache WHERE symbol = %(symbol)s ORDER BY timestamp
"""
SERIES_SUMMARY = """
SELECT s.bar_count, s.first_bar_at, s.last_bar_at, s.last_fetched_at, t.last_refresh_at
FROM market_data_series_summary s JOIN market_data_cache_stats t USING (symbol, exchange, data_type)
WHERE symbol = %(symbol)s
"""
SIZES = """
SELECT pg_total_relation_size('market_data_cache'), pg_database_size(current_database()),
    (SELECT sum(bar_count) FROM market_data_cache), (SELECT count(*) FROM market_data_cache)
"""


def scale_series(index: int) -> SeriesKey:
    """The benchmark's series first (with bench_cache's bars), then S0001, S0002, ..."""
    return SERIES if index == 0 else SeriesKey(f"S{index:04d}", SERIES.exchange, SERIES.data_type)


def series_bars(index: int):
    return random_walk_bars(_year().timestamps, SEED if index == 0 else (SEED, index))


@cache
def _year() -> TradingYear:
    return TradingYear.ending(YEAR_CLOSED_BY)


def series_rows(index: int) -> list[dict]:
    """One series' segment rows; runs in a worker process."""
    year = _year()
    chunks = chunks_of(year, series_bars(index), year.fetches(BACKFILLED_AT))
    return list(segment_rows(scale_series(index), chunks))


def bulk_load(url: str, symbols: int) -> tuple[float, int]:
    """COPY `symbols` series into the cache, built by worker processes while this one copies;
    then the summaries and statistics. Returns the seconds it took and the bars loaded."""
    started = time.perf_counter()
    bars = copied = 0
    # Spawned, not forked: a forked worker would share the open database connection's socket.
    spawn = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=spawn) as workers,
        psycopg.connect(psycopg_dsn(url)) as connection,
    ):
        pending: deque = deque()
        for index in range(symbols):
            pending.append(workers.submit(series_rows, index))
            while pending and (len(pending) > AHEAD or index == symbols - 1):
                bars += copy_segments(connection, iter(pending.popleft().result()))
                copied += 1
                if copied % COMMIT_EVERY == 0:
                    connection.commit()
                    elapsed = time.perf_counter() - started
                    print(f"loaded {copied} series in {elapsed:.0f} s", file=sys.stderr)
        connection.execute(FILL_SUMMARIES)
        connection.execute(FILL_STATS)
        connection.commit()
    return time.perf_counter() - started, bars


def store_one_series(url: str) -> float:
    """The benchmark's series through store_chunk, one session per chunk, as the service does."""
    year = _year()
    database = Database(url)
    repository = MarketDataCacheRepository(database)
    chunks = list(chunks_of(year, series_bars(0), year.fetches(BACKFILLED_AT)))
    took = seconds(lambda: [repository.store_chunk(SERIES, *chunk) for chunk in chunks])
    database.dispose()
    return took


def vacuum_analyze(url: str) -> None:
    """What autovacuum does on a live database after a load."""
    with psycopg.connect(psycopg_dsn(url), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def same_rows(stored_url: str, loaded_url: str) -> None:
    """The loaded series' rows, summary and statistics are those store_chunk wrote."""
    found = []
    for url in (stored_url, loaded_url):
        with psycopg.connect(psycopg_dsn(url), options="-c timezone=UTC") as connection:
            rows = connection.execute(SERIES_ROWS, {"symbol": SERIES.symbol}).fetchall()
            summary = connection.execute(SERIES_SUMMARY, {"symbol": SERIES.symbol}).fetchall()
            found.append((rows, summary))
    (stored_rows, stored_summary), (loaded_rows, loaded_summary) = found
    if stored_rows != loaded_rows or stored_summary != loaded_summary:
        raise AssertionError("the bulk-loaded rows differ from those store_chunk wrote")


def sizes(url: str) -> tuple[int, int, int, int]:
    """Cache bytes (indexes and TOAST included), database bytes, bars, segments."""
    with psycopg.connect(psycopg_dsn(url)) as connection:
        total, database, bars, segments = connection.execute(SIZES).fetchone()
    return int(total), int(database), int(bars), int(segments)


async def warm_reads(big_url: str, one_url: str) -> dict[str, list[float]]:
    """The series-year read warm from both databases, taking turns round by round."""
    year = _year()
    samples: dict[str, list[float]] = {"big": [], "one": []}
    async with (
        cache_container(big_url, UNUSED_GATEWAY_PORT, client_id=81) as big,
        cache_container(one_url, UNUSED_GATEWAY_PORT, client_id=82) as one,
    ):
        services = {"big": big.market_data_service(), "one": one.market_data_service()}
        for round_index in range(WARMUP + ROUNDS):
            order = ("big", "one") if round_index % 2 == 0 else ("one", "big")
            for name in order:
                started = time.perf_counter()
                result = await services[name].get_or_fetch_market_data(
                    SERIES.symbol, SERIES.exchange, SERIES.data_type, year.start, year.end
                )
                frame = result.to_pandas()
                took = time.perf_counter() - started
                assert result.outcome is CacheOutcome.HIT and len(frame) == len(year), result
                if round_index >= WARMUP:
                    samples[name].append(took)
    return samples


def main(argv: Sequence[str] | None = None) -> None:
    parse_help(__doc__, argv)
    configure_logging("WARNING")
    year = _year()
    with (
        tempfile.TemporaryDirectory(prefix="bench_scale_") as scratch,
        throwaway_postgres_database("mdc_scale_one") as one_url,
        throwaway_postgres_database("mdc_scale") as big_url,
    ):
        parquet = Path(scratch) / "bars.parquet"
        pq.write_table(series_bars(0).to_arrow(), parquet)
        parquet_per_bar = parquet.stat().st_size / len(year)
        migrate_to_head(one_url)
        migrate_to_head(big_url)
        store_s = store_one_series(one_url)
        load_s, loaded_bars = bulk_load(big_url, SYMBOLS)
        vacuum_analyze(one_url)
        vacuum_analyze(big_url)
        same_rows(one_url, big_url)
        emit(
            "scale_load_s",
            load_s,
            "s",
            round(store_s, 3),
            series=SYMBOLS,
            bars=loaded_bars,
            bars_per_s=round(loaded_bars / load_s),
            baseline_is="one series through store_chunk",
            worker_processes=os.cpu_count(),
        )

        big_bytes, big_database, big_bars, big_segments = sizes(big_url)
        one_bytes, _, one_bars, _ = sizes(one_url)
        emit_ratio(
            "scale_bytes_per_bar",
            big_bytes / big_bars,
            one_bytes / one_bars,
            "bytes/bar",
            digits=2,
            bars=big_bars,
            segments=big_segments,
            cache_bytes=big_bytes,
            database_bytes=big_database,
            parquet_bytes_per_bar=round(parquet_per_bar, 2),
            vs_parquet=round(big_bytes / big_bars / parquet_per_bar, 3),
        )

        samples = asyncio.run(warm_reads(big_url, one_url))
        emit_ratio(
            "scale_warm_read_vs_one_series",
            median(samples["big"]),
            median(samples["one"]),
            "s",
            target=1.2,
            bars=len(year),
            series=SYMBOLS,
            rounds=ROUNDS,
            p90_s=round(sorted(samples["big"])[int(0.9 * ROUNDS)], 4),
            baseline_p90_s=round(sorted(samples["one"])[int(0.9 * ROUNDS)], 4),
        )


if __name__ == "__main__":
    main()
