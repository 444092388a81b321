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
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as `python scripts/bench_cache.py` from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from alembic.config import Config  # noqa: E402
from dependency_injector import providers  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from alembic import command  # noqa: E402
from backend.config.settings import load_settings  # noqa: E402
from backend.containers import build_container  # noqa: E402
from backend.core.logging import configure_logging  # noqa: E402
from backend.ibkr_simulator import SimulatedGateway  # noqa: E402
from backend.repositories.market_data_cache import NewBar, SeriesKey  # noqa: E402
from backend.services.pacing import PacingLimits, PacingScheduler  # noqa: E402

NOW = datetime(2025, 12, 1, 22, 0, tzinfo=UTC)
YEAR_AGO = NOW - timedelta(days=365)
PACING_SCALE = 0.001
ROUNDS = 9
ROOT = Path(__file__).resolve().parents[1]


def emit(name: str, value: float, unit: str, baseline: float | None, **detail) -> None:
    print(
        json.dumps(
            {
                "name": name,
                "value": round(value, 4),
                "unit": unit,
                "baseline": baseline,
                "detail": detail,
            }
        ),
        flush=True,
    )


@contextmanager
def throwaway_database():
    admin_url = make_url(
        os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    name = f"mdc_bench_{uuid.uuid4().hex[:8]}"
    dsn = admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(url: str) -> None:
    config = Config(str(ROOT / "alembic" / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


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


async def main() -> None:
    configure_logging("WARNING")
    gateway = SimulatedGateway(seed=11, pacing_scale=PACING_SCALE, now=NOW)
    await gateway.start()
    try:
        with throwaway_database() as url:
            migrate(url)
            await run(url, gateway)
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
    asyncio.run(main())
