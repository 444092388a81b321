"""Cache benchmarks, each figure beside a baseline measured in the same run; one JSON line each.

Run with `make bench`. Uses throwaway PostgreSQL databases next to TEST_DATABASE_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), a SQLite file in a temporary directory, a
Parquet file beside it and an in-process simulated gateway.

The bars: a trading year of 1-minute bars (the 252 sessions up to 31 October 2025, as the
exchange calendar has them: early closes hold 210 bars), random-walk prices with two decimals,
wap with four, whole volumes and trade counts, written into the cache through the repository's
store_chunk one session per chunk (the chunks the IBKR client asks for), each fetched in a
backfill after the year's last close: a month before the benchmark's clock, and final. The
Parquet file holds the same bars (BarColumns.to_arrow(), pyarrow's default compression).

Figures (target: an upper bound, PASS or MISS):
  warm_read_vs_parquet          get_or_fetch_market_data(...).to_pandas() over the year, warm, on
                                PostgreSQL, over pyarrow.parquet.read_table(file).to_pandas()
                                (target <= 1.5); the detail has where the read's time goes
  warm_read_vs_parquet_sqlite   the same on SQLite
  bytes_per_bar_vs_parquet      pg_total_relation_size('market_data_cache') (heap, TOAST and
                                indexes) per bar, over the Parquet file's size per bar
                                (target <= 1.5); the SQLite file's in the detail
  write_vs_parquet              the year stored into an empty cache through store_chunk as one
                                chunk (one transaction of 252 segment upserts), over
                                pyarrow.parquet.write_table of the same bars (target <= 3); the
                                detail has where the write's time goes
  write_by_session_vs_parquet   the same year in the chunks the IBKR client delivers, one session
                                and one transaction each (reported, no target)
  write_vs_parquet_sqlite       the same on SQLite
  cold_vs_warm                  the year of NVDA fetched cold from the simulator (pacing windows
                                scaled x0.001), over the same read warm
  daily_warm_read_ms            a year of daily bars, read warm, median of 50
  stats_ms_100k, stats_ms_10m   the /stats service over 100 series of 1-minute bars (~100k
                                bars, then ~10M with a year more of history), beside a GROUP BY
                                over every segment row at the same size
  stats_ratio                   stats_ms_10m over stats_ms_100k (target <= 1.5)
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import psycopg
import pyarrow.parquet as pq
from dependency_injector import providers
from sqlalchemy import event, text

from backend.config.settings import load_settings
from backend.containers import build_container
from backend.core.logging import configure_logging
from backend.core.memory import keep_freed_memory
from backend.devtools import bench
from backend.devtools.bench import median, parse_help, seconds
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
from backend.devtools.migrations import migrate_to_head
from backend.devtools.postgres import throwaway_postgres_database
from backend.ibkr.pacing import PacingLimits, PacingScheduler
from backend.ibkr_simulator import SimulatedGateway
from backend.market_data import calendar as market_calendar
from backend.market_data.bar_columns import BarColumns
from backend.market_data.domain import BarSize, SeriesKey
from backend.market_data.service import CacheOutcome
from backend.storage.database import Database
from backend.storage.market_data_repository import READ_RANGE, _range_params
from backend.storage.segment_codec import decode_segments, encode_segments

NOW = datetime(2025, 12, 1, 22, 0, tzinfo=UTC)
YEAR_CLOSED_BY = datetime(2025, 10, 31, 21, 0, tzinfo=UTC)
# The backfill that fetched the year, a month before NOW: every TTL long past, every bar final.
BACKFILLED_AT = datetime(2025, 10, 31, 23, 0, tzinfo=UTC)
SERIES = SeriesKey("BENCH", "NASDAQ", "1m")
SEED = 20251031
PACING_SCALE = 0.001
# Interleaved rounds of each read (medians reported), after WARMUP rounds left out.
ROUNDS = 21
WARMUP = 3
# Interleaved rounds of the write and the Parquet write (medians reported): a Parquet write takes
# 20-50 ms, so three rounds let one quick or slow one swing the ratio by a third.
WRITE_ROUNDS = 7
emit = partial(bench.emit, digits=4)
emit_ratio = bench.emit_ratio


def main(argv: Sequence[str] | None = None) -> None:
    parse_help(__doc__, argv)
    asyncio.run(benchmark())


async def benchmark() -> None:
    configure_logging("WARNING")
    # As the server and the CLI run: both reads compared here allocate their frames under it.
    keep_freed_memory()
    year = TradingYear.ending(YEAR_CLOSED_BY)
    bars = random_walk_bars(year.timestamps, SEED)
    gateway = SimulatedGateway(seed=11, pacing_scale=PACING_SCALE, now=NOW)
    await gateway.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench_cache_") as scratch:
            parquet = Path(scratch) / "bars.parquet"
            with throwaway_postgres_database("mdc_bench") as url:
                migrate_to_head(url)
                async with cache_container(url, gateway.port, client_id=71) as container:
                    await year_figures(container, year, bars, parquet, "")
                    await simulator_figures(container, year)
            sqlite_url = f"sqlite:///{scratch}/cache.db"
            migrate_to_head(sqlite_url)
            async with cache_container(sqlite_url, gateway.port, client_id=72) as container:
                await year_figures(container, year, bars, parquet, "_sqlite")
        with throwaway_postgres_database("mdc_bench") as url:
            migrate_to_head(url)
            stats_figures(url)
    finally:
        await gateway.stop()


@asynccontextmanager
async def cache_container(url: str, gateway_port: int, client_id: int) -> AsyncIterator:
    """The app's container on this database and a gateway, its clock stopped at NOW."""
    settings = load_settings(
        DATABASE_URL=url, IB_PORT=gateway_port, IB_CLIENT_ID=client_id, LOG_LEVEL="WARNING"
    )
    container = build_container(settings)
    container.clock.override(providers.Object(lambda: NOW))
    container.pacing.override(
        providers.Singleton(PacingScheduler, limits=PacingLimits().scaled(PACING_SCALE))
    )
    try:
        yield container
    finally:
        await container.ib_connection().close()
        container.lookup_counts().close()
        container.database().dispose()


# -- the year of 1-minute bars: write, size, warm read ------------------------------------------


async def year_figures(
    container, year: TradingYear, bars: BarColumns, parquet: Path, suffix: str
) -> None:
    """Write (into an empty cache, WRITE_ROUNDS times), size, then warm reads, on one database."""
    write_figure(container, year, bars, parquet, suffix)
    size_figure(container.database(), len(bars), parquet, suffix)
    warm = await warm_reads(container, year, parquet)
    emit_ratio(
        f"warm_read_vs_parquet{suffix}",
        warm.service_s,
        warm.parquet_s,
        "s",
        target=1.5,
        bars=len(year),
        segments=year.sessions,
        rounds=ROUNDS,
        **warm.breakdown,
    )


def write_figure(container, year: TradingYear, bars: BarColumns, parquet: Path, suffix: str):
    database: Database = container.database()
    repository = container.market_data_repository()
    fetches = year.fetches(BACKFILLED_AT)

    def store_year() -> None:
        # One chunk of the year: one transaction of 252 segment upserts, the storage's own cost.
        repository.store_chunk(SERIES, bars, fetches[-1])

    def store_year_by_session() -> None:
        # The chunks the IBKR client delivers: a transaction per session.
        for chunk, fetch in chunks_of(year, bars, fetches):
            repository.store_chunk(SERIES, chunk, fetch)

    def encode_year() -> None:
        # As store_chunk encodes the year's new segments: together.
        sessions = [(first, stop) for first, stop, _ in year.chunks]
        encode_segments(bars, np.zeros(len(bars), np.uint16), sessions)

    store, parquet_write = [], []
    statements = StatementTimer(database)
    for _ in range(WRITE_ROUNDS):
        empty_cache(database)
        with statements:
            store.append(seconds(store_year))
        parquet_write.append(seconds(lambda: pq.write_table(bars.to_arrow(), parquet)))
    store_s, sql_s, encode_s = (
        median(store),
        statements.seconds / WRITE_ROUNDS,
        seconds(encode_year),
    )
    detail = {
        "bars": len(bars),
        "chunks": 1,
        # Where store_chunk's time goes: its SQL statements (the server's work and the round
        # trip), the codec, and the rest: Python around them (building the statements, merging,
        # the summary) and the commits.
        "sql_statements": statements.count // WRITE_ROUNDS,
        "sql_execute_s": round(sql_s, 4),
        "encode_s": round(encode_s, 4),
        "rest_s": round(store_s - sql_s - encode_s, 4),
        "parquet_write_fsync_s": round(parquet_write_with_fsync(bars, parquet), 4),
    }
    if database.dialect == "postgresql":
        detail["round_trip_ms"] = round(round_trip_s(database) * 1000, 3)
        detail["store_s_synchronous_commit_off"] = round(
            seconds_without_commit_flush(database, store_year), 4
        )
    emit_ratio(
        f"write_vs_parquet{suffix}", store_s, median(parquet_write), "s", target=3.0, **detail
    )
    by_session = []
    for _ in range(WRITE_ROUNDS):
        empty_cache(database)
        by_session.append(seconds(store_year_by_session))
    # Reported, no target: a commit per session is the durability the fetch path asks for, and
    # its cost is the round trips of 252 transactions, not the storage format.
    emit_ratio(
        f"write_by_session_vs_parquet{suffix}",
        median(by_session),
        median(parquet_write),
        "s",
        chunks=year.sessions,
    )


def size_figure(database: Database, bars: int, parquet: Path, suffix: str) -> None:
    parquet_bytes = parquet.stat().st_size
    if database.dialect != "postgresql":
        # The whole file: the other tables hold a few rows.
        file_bytes = sqlite_file_bytes(database)
        emit_ratio(
            f"bytes_per_bar_vs_parquet{suffix}",
            file_bytes / bars,
            parquet_bytes / bars,
            "bytes/bar",
            digits=2,
            file_bytes=file_bytes,
            parquet_bytes=parquet_bytes,
        )
        return
    sizes = postgres_sizes(database)
    emit_ratio(
        "bytes_per_bar_vs_parquet",
        sizes["total"] / bars,
        parquet_bytes / bars,
        "bytes/bar",
        target=1.5,
        digits=2,
        bars=bars,
        cache_bytes=sizes["total"],
        parquet_bytes=parquet_bytes,
        heap_bytes=sizes["heap"],
        toast_bytes=sizes["toast"],
        index_bytes=sizes["indexes"],
        segment_data_bytes_per_bar=round(sizes["data"] / bars, 2),
        parquet_compression="snappy (pyarrow's default)",
    )


@dataclass(frozen=True)
class WarmReads:
    service_s: float
    parquet_s: float
    breakdown: dict[str, float]


async def warm_reads(container, year: TradingYear, parquet: Path) -> WarmReads:
    """The warm read against the Parquet read, round by round, and each step of the warm read
    timed on its own in the same rounds."""
    service = container.market_data_service()
    repository = container.market_data_repository()
    database: Database = container.database()
    start, end = year.start, year.end
    samples: dict[str, list[float]] = {}

    def time_step(name: str, action: Callable, *args):
        started = time.perf_counter()
        result = action(*args)
        samples.setdefault(name, []).append(time.perf_counter() - started)
        return result

    def query():
        with database.read_engine.connect() as connection:
            return repository._fetch_rows(connection, READ_RANGE, _range_params(SERIES, start, end))

    def decode(rows):
        return decode_segments([row[0] for row in rows])

    for round_index in range(WARMUP + ROUNDS):
        if round_index == WARMUP:
            samples.clear()
        started = time.perf_counter()
        result = await service.get_or_fetch_market_data(
            SERIES.symbol, SERIES.exchange, SERIES.data_type, start, end
        )
        frame = result.to_pandas()
        samples.setdefault("service", []).append(time.perf_counter() - started)
        assert result.outcome is CacheOutcome.HIT and len(frame) == len(year), result

        time_step("parquet", lambda: pq.read_table(parquet).to_pandas())

        # The steps of the warm read, one by one (the repository's own statements): one
        # statement brings the bars and their coverage, the calendar says what is expected.
        columns, _ = time_step("read_range", lambda: repository.read_range(SERIES, start, end, NOW))
        time_step(
            "expected_count",
            lambda: market_calendar.expected_bar_count(SERIES.exchange, BarSize.M1, start, end),
        )
        rows = time_step("read_query", query)
        time_step("read_decode", decode, rows)
        time_step("to_pandas", columns.to_pandas)
        time_step("record_outcome", lambda: service._record_outcome(SERIES, CacheOutcome.HIT))

    medians = {name: median(values) for name, values in samples.items()}
    steps = ("read_range", "expected_count", "to_pandas", "record_outcome")
    breakdown = {f"{name}_s": round(value, 5) for name, value in medians.items()}
    # What get_or_fetch_market_data adds around its steps: single-flight task, database
    # thread hand-offs, logging.
    breakdown["service_rest_s"] = round(medians["service"] - sum(medians[s] for s in steps), 5)
    breakdown["service_p90_s"] = round(sorted(samples["service"])[int(0.9 * ROUNDS)], 5)
    breakdown["parquet_p90_s"] = round(sorted(samples["parquet"])[int(0.9 * ROUNDS)], 5)
    return WarmReads(medians["service"], medians["parquet"], breakdown)


class StatementTimer:
    """Counts the SQL statements a database runs inside `with`, and the time they take."""

    def __init__(self, database: Database) -> None:
        self.engine = database.engine
        self.count = 0
        self.seconds = 0.0
        self._started: list[float] = []

    def _before(self, *_args) -> None:
        self._started.append(time.perf_counter())

    def _after(self, *_args) -> None:
        self.count += 1
        self.seconds += time.perf_counter() - self._started.pop()

    def __enter__(self) -> StatementTimer:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *_exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


CACHE_TABLES = (
    "market_data_cache",
    "market_data_series_summary",
    "market_data_cache_stats",
    "market_data_coverage",
)


def empty_cache(database: Database) -> None:
    """No bars, summaries or statistics: the cache as a fresh install has it."""
    with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(CACHE_TABLES)} RESTART IDENTITY"))
        else:
            for table in CACHE_TABLES:
                connection.execute(text(f"DELETE FROM {table}"))
    if database.dialect == "sqlite":
        with database.read_engine.connect() as connection:
            connection.execute(text("VACUUM"))


def seconds_without_commit_flush(database: Database, store: Callable[[], None]) -> float:
    """The write again into an empty cache, with synchronous_commit off for the database: what
    the commits' WAL flushes cost. The cache is left holding the year, as the rounds leave it."""
    name = database.engine.url.database
    with database.read_engine.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    database.engine.dispose()  # the setting applies to new sessions
    try:
        empty_cache(database)
        return seconds(store)
    finally:
        with database.read_engine.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" RESET synchronous_commit'))
        database.engine.dispose()


def round_trip_s(database: Database) -> float:
    """One statement's round trip to the server: SELECT 1, median of 50."""
    with database.read_engine.connect() as connection:
        return median(
            [seconds(lambda: connection.execute(text("SELECT 1")).scalar()) for _ in range(50)]
        )


def parquet_write_with_fsync(bars: BarColumns, path: Path) -> float:
    """Writing the Parquet file and flushing it to disk, as a database commit does."""

    def write() -> None:
        pq.write_table(bars.to_arrow(), path)
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    return seconds(write)


def postgres_sizes(database: Database) -> dict[str, int]:
    with database.read_engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT pg_total_relation_size(c.oid), pg_relation_size(c.oid),"
                " coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0),"
                " pg_indexes_size(c.oid),"
                " (SELECT sum(octet_length(ohlcv_data)) FROM market_data_cache)"
                " FROM pg_class c WHERE c.relname = 'market_data_cache'"
            )
        ).one()
    return dict(zip(("total", "heap", "toast", "indexes", "data"), map(int, row), strict=True))


def sqlite_file_bytes(database: Database) -> int:
    with database.read_engine.connect() as connection:
        connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        pages = connection.execute(text("PRAGMA page_count")).scalar_one()
        page_size = connection.execute(text("PRAGMA page_size")).scalar_one()
    return int(pages * page_size)


# -- through the simulator: cold against warm, daily bars ---------------------------------------


async def simulator_figures(container, year: TradingYear) -> None:
    service = container.market_data_service()

    async def read(data_type: str, start: datetime, end: datetime):
        result = await service.get_or_fetch_market_data("NVDA", "NASDAQ", data_type, start, end)
        return result, result.to_pandas()

    started = time.perf_counter()
    cold, _ = await read("1m", year.start, year.end)
    cold_s = time.perf_counter() - started
    warm = []
    for _ in range(WARMUP + ROUNDS):
        started = time.perf_counter()
        result, _ = await read("1m", year.start, year.end)
        warm.append(time.perf_counter() - started)
        assert result.bars_fetched == 0 and len(result.bars) == len(cold.bars)
    warm_s = median(warm[WARMUP:])
    emit_ratio(
        "cold_vs_warm",
        cold_s,
        warm_s,
        "s",
        bars=len(cold.bars),
        sessions=year.sessions,
        pacing_scale=PACING_SCALE,
    )

    year_ago = NOW - timedelta(days=365)
    await service.get_or_fetch_market_data("NVDA", "NASDAQ", "1d", year_ago, NOW)
    daily = []
    for _ in range(50):
        started = time.perf_counter()
        result = await service.get_or_fetch_market_data("NVDA", "NASDAQ", "1d", year_ago, NOW)
        daily.append(time.perf_counter() - started)
    emit(
        "daily_warm_read_ms",
        median(daily) * 1000,
        "ms",
        None,
        bars=len(result.bars),
        segments=len({(stamp.year, stamp.month) for stamp in result.bars.timestamps()}),
        p90_ms=round(sorted(daily)[44] * 1000, 3),
    )


# -- /stats at two sizes ------------------------------------------------------------------------

STATS_SERIES = 100
# The last three sessions of every series (~100k bars in all), then ~250 sessions more history.
RECENT_SESSIONS = 3
HISTORY_SESSIONS = 253
# Ten series' last session is still open when fetched, not final; five of those have expired.
OPEN_SERIES = 10
EXPIRED_OPEN_SERIES = 5

# What /stats would cost without the summaries: every segment row, grouped by series.
FULL_SCAN = """
SELECT symbol, exchange, data_type, sum(bar_count), min(timestamp), max(last_bar_at),
    max(fetched_at),
    sum(CASE WHEN NOT is_final AND expires_at <= %(now)s THEN bar_count ELSE 0 END)
FROM market_data_cache GROUP BY symbol, exchange, data_type ORDER BY symbol, data_type
"""


def stats_series(index: int) -> SeriesKey:
    return SeriesKey(f"S{index:03d}", "NASDAQ", "1m")


def fill_stats_cache(connection: psycopg.Connection, year: TradingYear, recent: bool) -> None:
    """Every series' bars of the year's sessions, loaded as the rows store_chunk writes."""
    for index in range(STATS_SERIES):
        bars = random_walk_bars(year.timestamps, (SEED, index, recent))
        fetches = year.fetches(year.end + timedelta(hours=2))
        if recent and index < OPEN_SERIES:
            # The last session was fetched while it traded: its bars are not final yet.
            is_final = bars.is_final.copy()
            is_final[year.chunks[-1][0] :] = False
            bars = replace(bars, is_final=is_final)
            ttl = timedelta(minutes=30) if index < EXPIRED_OPEN_SERIES else timedelta(hours=24)
            fetches[-1] = year.fetches(NOW - timedelta(hours=2), ttl=ttl)[-1]
        copy_segments(connection, segment_rows(stats_series(index), chunks_of(year, bars, fetches)))
    connection.execute(FILL_SUMMARIES)
    connection.execute(FILL_STATS)
    # What autovacuum does on a live database after a load of this size.
    connection.execute("VACUUM ANALYZE")


def stats_figures(url: str) -> None:
    """/stats at ~100k and at ~10M bars, each beside a full scan of the segments."""
    settings = load_settings(DATABASE_URL=url, LOG_LEVEL="WARNING")
    container = build_container(settings)
    container.clock.override(providers.Object(lambda: NOW))
    service = container.cache_stats_service()
    recent = TradingYear.ending(NOW, RECENT_SESSIONS)
    history = TradingYear.ending(recent.start, HISTORY_SESSIONS)
    figures = {}
    with psycopg.connect(psycopg_dsn(url), autocommit=True, options="-c timezone=UTC") as db:
        for size, year in (("100k", recent), ("10m", history)):
            fill_s = seconds(lambda year=year: fill_stats_cache(db, year, year is recent))
            stats = [seconds(service.stats) for _ in range(21)]
            result = service.stats()
            bars = sum(series.bar_count for series in result.series)
            expired = sum(series.expired_count for series in result.series)
            scans = [
                seconds(lambda: db.execute(FULL_SCAN, {"now": NOW}).fetchall()) for _ in range(9)
            ]
            rows = db.execute(FULL_SCAN, {"now": NOW}).fetchall()
            # Both answer the same.
            assert (bars, expired) == (sum(r[3] for r in rows), sum(r[7] for r in rows))
            figures[size] = (median(stats), median(scans))
            emit(
                f"stats_ms_{size}",
                median(stats) * 1000,
                "ms",
                round(median(scans) * 1000, 2),
                bars=bars,
                series=STATS_SERIES,
                expired_bars=expired,
                full_scan_ms=round(median(scans) * 1000, 2),
                fill_s=round(fill_s, 1),
            )
    (small_s, small_scan_s), (large_s, large_scan_s) = figures["100k"], figures["10m"]
    emit_ratio(
        "stats_ratio",
        large_s,
        small_s,
        "s",
        target=1.5,
        full_scan_ratio=round(large_scan_s / small_scan_s, 1),
        full_scan_ms_100k=round(small_scan_s * 1000, 2),
        full_scan_ms_10m=round(large_scan_s * 1000, 2),
    )
    container.database().dispose()


if __name__ == "__main__":
    main()
