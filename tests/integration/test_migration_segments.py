"""Revision 0004 on SQLite and PostgreSQL: a per-bar cache becomes segments and comes back.

The cache is filled at revision 0003 by that revision's own writer (tests/support/per_bar_cache.py)
with bars fetched the way the service fetched them: several series, sessions fetched more than
once (a bar replaced by a later fetch, a session still open), wap and bar_count missing for some.
"""

import bisect
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, update

from alembic import command
from backend.market_data import calendar as market_calendar
from backend.market_data.bar_columns import datetime_to_ns
from backend.market_data.domain import Bar, BarSize, SeriesKey
from backend.storage.database import Database, create_db_engine
from backend.storage.market_data_repository import Fetch, MarketDataCacheRepository
from backend.storage.market_data_tables import MarketDataCache
from backend.storage.segment_codec import FORMAT_VERSION
from backend.workflows.lineage import bars_checksum
from tests.support import per_bar_cache
from tests.support.migrations import alembic_config

PER_BAR_REVISION = "0003_series_summaries"
SEGMENTS_REVISION = "0004_bar_segments"
SEGMENTS = MarketDataCache.__table__
TTL = timedelta(minutes=30)
# When the expiry counts are compared: after every fetch below.
NOW = datetime(2025, 11, 28, 20, 0, tzinfo=UTC)
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))

NVDA_1M = SeriesKey("NVDA", "NASDAQ", "1m")
NVDA_1H = SeriesKey("NVDA", "NASDAQ", "1h")
IBM_1D = SeriesKey("IBM", "NYSE", "1d")
IBM_SMART_1M = SeriesKey("IBM", "SMART", "1m")

IB_BAR_SIZE = {"1m": "1 min", "1h": "1 hour", "1d": "1 day"}
OHLCV_KEYS = ("open", "high", "low", "close", "volume")


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@dataclass(frozen=True)
class Chunk:
    """One request's answer: the series' calendar bars in [start, end), fetched at fetched_at."""

    series: SeriesKey
    start: datetime
    end: datetime
    fetched_at: datetime


CHUNKS = [
    # Three whole sessions, on both sides of the end of daylight saving time (2 November).
    Chunk(NVDA_1M, _utc(2025, 10, 31), _utc(2025, 11, 5), _utc(2025, 11, 4, 22, 0)),
    # 5 November fetched three times: twice while open, the second fetch replacing an hour of the
    # first one's bars, then the rest of the session after the close.
    Chunk(NVDA_1M, _utc(2025, 11, 5, 14, 30), _utc(2025, 11, 5, 17), _utc(2025, 11, 5, 17, 0, 30)),
    Chunk(
        NVDA_1M,
        _utc(2025, 11, 5, 16),
        _utc(2025, 11, 5, 19),
        datetime(2025, 11, 5, 19, 0, 0, 250_000, tzinfo=UTC),
    ),
    Chunk(NVDA_1M, _utc(2025, 11, 5, 19), _utc(2025, 11, 6), _utc(2025, 11, 5, 21, 30)),
    # A week with Thanksgiving (closed) and its early close.
    Chunk(NVDA_1H, _utc(2025, 11, 24), _utc(2025, 11, 29), _utc(2025, 11, 28, 20, 0)),
    # Daily bars over two months; the last days fetched again while 14 November was trading.
    Chunk(IBM_1D, _utc(2025, 10, 1), _utc(2025, 11, 14), _utc(2025, 11, 13, 23, 0)),
    Chunk(IBM_1D, _utc(2025, 11, 10), _utc(2025, 11, 15), _utc(2025, 11, 14, 18, 0)),
    # The same symbol on a second exchange, fetched the moment the session closed.
    Chunk(IBM_SMART_1M, _utc(2025, 11, 3), _utc(2025, 11, 4), _utc(2025, 11, 3, 21, 0)),
]


def _request(chunk: Chunk) -> dict[str, Any]:
    """The request dictionary the IBKR client recorded for a chunk."""
    days = max(1, (chunk.end - chunk.start).days)
    return {
        "end_date_time": chunk.end.isoformat(),
        "duration": f"{days} D",
        "bar_size": IB_BAR_SIZE[chunk.series.data_type],
        "what_to_show": "TRADES",
        "use_rth": True,
    }


def _fetched_bars(chunk: Chunk) -> list[Bar]:
    """Plausible bars at the calendar's times; a bar fetched again comes back changed."""
    series = chunk.series
    bar_size = BarSize(series.data_type)
    rng = random.Random(f"{series}|{chunk.fetched_at.isoformat()}")
    price = rng.uniform(50, 500)
    # The calendar's sessions for the chunk, looked up by their opening (a daily bar's time is
    # midnight UTC of its session, before the opening).
    sessions = market_calendar.sessions_between(series.exchange, chunk.start, chunk.end)
    openings = [
        market_calendar.daily_bar_timestamp(session.day)
        if bar_size is BarSize.D1
        else session.open_at
        for session in sessions
    ]
    bars = []
    for stamp in market_calendar.expected_bar_timestamps(
        series.exchange, bar_size, chunk.start, chunk.end
    ):
        open_ = price
        close = open_ * (1 + rng.gauss(0, 0.002))
        high = max(open_, close) * (1 + rng.random() / 1000)
        low = min(open_, close) * (1 - rng.random() / 1000)
        price = close
        session_close = sessions[bisect.bisect_right(openings, stamp) - 1].close_at
        bars.append(
            Bar(
                timestamp=stamp,
                open=open_,
                high=high,
                low=low,
                close=close,
                volume=float(rng.randrange(100_000)) if rng.random() < 0.8 else rng.uniform(0, 9),
                wap=None if rng.random() < 0.15 else rng.uniform(low, high),
                bar_count=None if rng.random() < 0.15 else rng.randrange(1, 5_000),
                is_final=chunk.fetched_at >= session_close,
            )
        )
    return bars


def _fill_per_bar_cache(engine) -> None:
    for chunk in CHUNKS:
        bars = [per_bar_cache.new_bar(bar) for bar in _fetched_bars(chunk)]
        assert bars, chunk
        per_bar_cache.store_chunk(
            engine,
            chunk.series,
            bars,
            per_bar_cache.fetch_meta(_request(chunk)),
            chunk.fetched_at,
            chunk.fetched_at + TTL,
        )


def _series_of(row: dict[str, Any]) -> SeriesKey:
    return SeriesKey(row["symbol"], row["exchange"], row["data_type"])


def _by_series(rows: list[dict[str, Any]]) -> dict[SeriesKey, list[dict[str, Any]]]:
    grouped: dict[SeriesKey, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[_series_of(row)].append(row)
    return grouped


def _segments_of(
    series: SeriesKey, bars: list[dict[str, Any]]
) -> list[tuple[date, list[dict[str, Any]]]]:
    """Each segment's date and per-bar rows (in time order), as the cache's writer segments
    bars."""
    starts = np.array([datetime_to_ns(bar["timestamp"]) for bar in bars], dtype=np.int64)
    runs = market_calendar.segment_runs(series.exchange, BarSize(series.data_type), starts)
    return [(segment_date, bars[first:stop]) for segment_date, first, stop in runs]


def _fetch_of(bar: dict[str, Any]) -> Fetch:
    meta = bar["metadata"]
    return Fetch(
        meta["source"],
        meta["what_to_show"],
        meta["use_rth"],
        meta["request"],
        bar["fetched_at"],
        bar["expires_at"],
    )


def _distinct(values: list) -> list:
    """The values in first-seen order, once each (by equality: a Fetch is not hashable)."""
    distinct = []
    for value in values:
        if value not in distinct:
            distinct.append(value)
    return distinct


def _as_read(bar: Bar, fetch: Fetch) -> dict[str, Any]:
    """A bar read through the repository, in the per-bar rows' words."""
    return {
        "timestamp": bar.timestamp,
        "ohlcv_data": {
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": bar.volume,
            "wap": bar.wap,
            "bar_count": bar.bar_count,
        },
        "metadata": {**fetch.provenance(), "is_final": bar.is_final},
        "fetched_at": fetch.fetched_at,
        "expires_at": fetch.expires_at,
    }


READ_FIELDS = ("timestamp", "ohlcv_data", "metadata", "fetched_at", "expires_at")


def _assert_the_data_covers_the_cases(originals: list[dict[str, Any]]) -> None:
    """The cases the migration must carry over are really in the cache."""
    assert {bar["ohlcv_data"]["wap"] is None for bar in originals} == {True, False}
    assert {bar["ohlcv_data"]["bar_count"] is None for bar in originals} == {True, False}
    assert {bar["metadata"]["is_final"] for bar in originals} == {True, False}
    # Bars a later fetch replaced keep their first creation time.
    assert any(bar["created_at"] < bar["updated_at"] for bar in originals)
    segments = [
        segment
        for series, bars in _by_series(originals).items()
        for _, segment in _segments_of(series, bars)
    ]
    fetch_counts = [len(_distinct([_fetch_of(bar) for bar in segment])) for segment in segments]
    assert max(fetch_counts) >= 3
    assert len({series.exchange for series in _by_series(originals)}) >= 2


def test_per_bar_cache_becomes_segments_and_comes_back(database_url):
    config = alembic_config(database_url)
    command.upgrade(config, PER_BAR_REVISION)
    engine = create_db_engine(database_url)
    _fill_per_bar_cache(engine)
    originals = per_bar_cache.read_rows(engine, per_bar_cache.BARS)
    summaries = per_bar_cache.read_rows(engine, per_bar_cache.SUMMARIES)
    _assert_the_data_covers_the_cases(originals)
    by_series = _by_series(originals)

    command.upgrade(config, "head")
    command.check(config)

    # Every bar, read through the repository, with the fetch it came from.
    database = Database(database_url)
    repository = MarketDataCacheRepository(database)
    for series, bars in by_series.items():
        read = [
            _as_read(bar, segment.fetches[int(fetch)])
            for segment in repository.read_segments(series, *EVER)
            for bar, fetch in zip(segment.columns.bars(), segment.fetch_index, strict=True)
        ]
        assert read == [{name: bar[name] for name in READ_FIELDS} for bar in bars], series

    # Each segment row: one session (one month of daily bars), described by its bars.
    segment_rows = per_bar_cache.read_rows(engine, SEGMENTS)
    assert set(_by_series(segment_rows)) == set(by_series)
    for series, rows in _by_series(segment_rows).items():
        expected = _segments_of(series, by_series[series])
        assert [row["segment_date"] for row in rows] == [day for day, _ in expected]
        for row, (_, bars) in zip(rows, expected, strict=True):
            fetches = _distinct([_fetch_of(bar) for bar in bars])
            open_fetches = _distinct(
                [_fetch_of(bar) for bar in bars if not bar["metadata"]["is_final"]]
            )
            latest = max(fetches, key=lambda fetch: fetch.fetched_at)
            assert row["timestamp"] == bars[0]["timestamp"]
            assert row["last_bar_at"] == bars[-1]["timestamp"]
            assert row["bar_count"] == len(bars)
            assert row["metadata"] == {
                "fetches": [fetch.to_json() for fetch in fetches],
                "format": FORMAT_VERSION,
            }
            assert row["is_final"] == (not open_fetches)
            assert row["fetched_at"] == latest.fetched_at
            assert row["first_fetched_at"] == min(fetch.fetched_at for fetch in fetches)
            assert row["expires_at"] == (
                min(fetch.expires_at for fetch in open_fetches)
                if open_fetches
                else latest.expires_at
            )
            assert row["created_at"] == min(bar["created_at"] for bar in bars)
            assert row["updated_at"] == max(bar["updated_at"] for bar in bars)
            assert row["indicators"] is None

    # The summaries were not touched, and still describe the segments.
    assert per_bar_cache.read_rows(engine, per_bar_cache.SUMMARIES) == summaries
    for summary in summaries:
        rows = _by_series(segment_rows)[_series_of(summary)]
        assert summary["bar_count"] == sum(row["bar_count"] for row in rows)
        assert summary["first_bar_at"] == rows[0]["timestamp"]
        assert summary["last_bar_at"] == rows[-1]["last_bar_at"]
        assert summary["last_fetched_at"] == max(row["fetched_at"] for row in rows)
    expired = {_series_of(row): row["expired_count"] for row in repository.series_summaries(NOW)}
    assert expired == {
        series: sum(
            1 for bar in bars if not bar["metadata"]["is_final"] and bar["expires_at"] <= NOW
        )
        for series, bars in by_series.items()
    }
    assert any(expired.values())
    database.dispose()

    command.downgrade(config, PER_BAR_REVISION)

    # Every per-bar row as it was. A segment keeps one creation time, its earliest, so a bar a
    # later fetch of its session first wrote comes back created with the session's first bars.
    restored = per_bar_cache.read_rows(engine, per_bar_cache.BARS)
    expected_rows = []
    for series, bars in by_series.items():
        for _, segment in _segments_of(series, bars):
            created_at = min(bar["created_at"] for bar in segment)
            expected_rows.extend({**bar, "created_at": created_at} for bar in segment)
    assert restored == expected_rows
    assert expected_rows != originals  # such a bar is among them
    assert per_bar_cache.read_rows(engine, per_bar_cache.SUMMARIES) == summaries

    # And up again, to the same segments.
    command.upgrade(config, "head")
    assert per_bar_cache.read_rows(engine, SEGMENTS) == segment_rows
    engine.dispose()


def test_an_empty_cache_migrates(database_url):
    config = alembic_config(database_url)
    command.upgrade(config, PER_BAR_REVISION)
    command.upgrade(config, "head")
    command.check(config)
    engine = create_db_engine(database_url)
    assert per_bar_cache.read_rows(engine, SEGMENTS) == []
    command.downgrade(config, PER_BAR_REVISION)
    assert per_bar_cache.read_rows(engine, per_bar_cache.BARS) == []
    engine.dispose()


def test_a_bar_the_segments_would_lose_something_of_stops_the_upgrade(database_url):
    config = alembic_config(database_url)
    command.upgrade(config, PER_BAR_REVISION)
    engine = create_db_engine(database_url)
    _fill_per_bar_cache(engine)
    with engine.begin() as connection:
        first_id = connection.execute(select(func.min(per_bar_cache.BARS.c.id))).scalar_one()
        connection.execute(
            update(per_bar_cache.BARS)
            .where(per_bar_cache.BARS.c.id == first_id)
            .values(indicators={"sma_20": 1.5})
        )
    originals = per_bar_cache.read_rows(engine, per_bar_cache.BARS)

    with pytest.raises(ValueError, match="indicators"):
        command.upgrade(config, "head")

    assert per_bar_cache.read_rows(engine, per_bar_cache.BARS) == originals
    with engine.begin() as connection:
        connection.execute(update(per_bar_cache.BARS).values(indicators=None))
    # A failed attempt leaves nothing in the way of the next one.
    command.upgrade(config, "head")
    with engine.connect() as connection:
        bars = connection.execute(select(func.sum(SEGMENTS.c.bar_count))).scalar_one()
    engine.dispose()
    assert bars == len(originals)


def test_a_cache_bigger_than_the_migrations_batches_converts_whole(database_url):
    config = alembic_config(database_url)
    migration = ScriptDirectory.from_config(config).get_revision(SEGMENTS_REVISION).module
    # One series longer than a page of bars read, and more segments than a page of them read.
    long_series = Chunk(NVDA_1M, _utc(2025, 9, 1), _utc(2025, 10, 8), _utc(2025, 10, 8))
    many_segments = Chunk(NVDA_1H, _utc(2025, 4, 1), _utc(2025, 10, 1), _utc(2025, 10, 1))
    command.upgrade(config, PER_BAR_REVISION)
    engine = create_db_engine(database_url)
    for chunk in (long_series, many_segments):
        per_bar_cache.store_chunk(
            engine,
            chunk.series,
            [per_bar_cache.new_bar(bar) for bar in _fetched_bars(chunk)],
            per_bar_cache.fetch_meta(_request(chunk)),
            chunk.fetched_at,
            chunk.fetched_at + TTL,
        )
    originals = per_bar_cache.read_rows(engine, per_bar_cache.BARS)
    by_series = _by_series(originals)
    assert len(by_series[NVDA_1M]) > migration.BARS_PER_READ
    assert len(originals) > migration.BARS_PER_WRITE

    command.upgrade(config, "head")

    segments = _by_series(per_bar_cache.read_rows(engine, SEGMENTS))
    assert len(segments[NVDA_1H]) > migration.SEGMENTS_PER_READ
    database = Database(database_url)
    repository = MarketDataCacheRepository(database)
    for series, bars in by_series.items():
        assert [row["segment_date"] for row in segments[series]] == [
            day for day, _ in _segments_of(series, bars)
        ]
        columns = repository.read_columns(series, *EVER)
        assert columns.timestamps() == [bar["timestamp"] for bar in bars]
    database.dispose()

    command.downgrade(config, PER_BAR_REVISION)
    # One fetch per segment: every bar comes back exactly, its creation time too.
    assert per_bar_cache.read_rows(engine, per_bar_cache.BARS) == originals
    engine.dispose()


def test_lineage_checksums_are_the_same_before_and_after_segments(database_url):
    """A workflow run's checksum names its bars: the storage change must not change it."""
    config = alembic_config(database_url)
    command.upgrade(config, PER_BAR_REVISION)
    engine = create_db_engine(database_url)
    _fill_per_bar_cache(engine)
    # As the per-bar schema read them for a strategy: OHLCV out of each row's JSON, in time order.
    before = {
        series: bars_checksum(
            [
                (
                    bar["timestamp"],
                    *(float(bar["ohlcv_data"][key]) for key in OHLCV_KEYS),
                )
                for bar in bars
            ]
        )
        for series, bars in _by_series(per_bar_cache.read_rows(engine, per_bar_cache.BARS)).items()
    }
    engine.dispose()

    command.upgrade(config, "head")
    database = Database(database_url)
    repository = MarketDataCacheRepository(database)
    after = {
        series: bars_checksum(repository.read_columns(series, *EVER).ohlcv()) for series in before
    }
    database.dispose()
    assert len(before) == 4
    assert after == before
