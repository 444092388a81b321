"""Bars for the benchmarks: a trading year of realistic 1-minute bars, the chunks the IBKR client
would deliver them in, and the cache rows store_chunk writes for them, built without it.

Realistic means what the codec and Parquet meet in practice: random-walk prices with two
decimals, wap with four, whole volumes and trade counts, every bar final.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

from backend.ibkr.chunking import DEFAULT_SESSIONS_PER_REQUEST, plan_chunks
from backend.ibkr.client import IB_BAR_SIZE
from backend.market_data import calendar as market_calendar
from backend.market_data.bar_columns import BarColumns, datetime_to_ns
from backend.market_data.domain import BarSize, SeriesKey
from backend.storage.market_data_repository import Fetch, _segment_values
from backend.storage.market_data_tables import SERIES_KEY_COLUMNS

EXCHANGE = "NASDAQ"
SESSIONS_PER_YEAR = 252
# The TTL a fetch gets by default (CACHE_TTL_HOURS); final bars outlive it.
TTL = timedelta(hours=24)
# A backfill asks for one chunk after the other; the gateway's pacing spaces the answers.
SECONDS_BETWEEN_CHUNKS = 2


def psycopg_dsn(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as the DSN psycopg takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True)
class TradingYear:
    """The last `sessions` sessions closing by a moment: their bar times and IBKR's chunks."""

    start: datetime  # the first session's open
    end: datetime  # the last session's close
    bar_size: BarSize
    timestamps: np.ndarray  # every expected bar start, ns since the epoch
    # Per chunk the IBKR client would request: [first, stop) into timestamps, and its request.
    chunks: list[tuple[int, int, dict[str, Any]]]

    @classmethod
    def ending(
        cls, closed_by: datetime, sessions: int = SESSIONS_PER_YEAR, bar_size=BarSize.M1
    ) -> TradingYear:
        candidates = market_calendar.sessions_between(
            EXCHANGE, closed_by - timedelta(days=2 * sessions), closed_by
        )
        chosen = [session for session in candidates if session.close_at <= closed_by][-sessions:]
        start, end = chosen[0].open_at, chosen[-1].close_at
        # The chunks plan_chunks gives the client: one session each for 1-minute bars.
        plans = plan_chunks(
            EXCHANGE, bar_size, start, end, DEFAULT_SESSIONS_PER_REQUEST[bar_size], closed_by
        )
        timestamps = np.array(
            [datetime_to_ns(stamp) for plan in plans for stamp in plan.expected], dtype=np.int64
        )
        chunks, first = [], 0
        for plan in plans:
            # The request the client records with every chunk it fetches (IBKRClient).
            request = {
                "end_date_time": plan.end_date_time.isoformat()
                if isinstance(plan.end_date_time, datetime)
                else plan.end_date_time,
                "duration": plan.duration,
                "bar_size": IB_BAR_SIZE[bar_size],
                "what_to_show": "TRADES",
                "use_rth": True,
                "sec_type": "STK",
            }
            chunks.append((first, first + len(plan.expected), request))
            first += len(plan.expected)
        return cls(start, end, bar_size, timestamps, chunks)

    @property
    def sessions(self) -> int:
        return len(self.chunks)

    def __len__(self) -> int:
        return len(self.timestamps)

    def fetches(self, fetched_from: datetime, *, ttl: timedelta = TTL) -> list[Fetch]:
        """One fetch per chunk, answered one after the other from `fetched_from`."""
        return [
            Fetch(
                source="ibkr",
                what_to_show=request["what_to_show"],
                use_rth=request["use_rth"],
                request=request,
                fetched_at=fetched_at,
                expires_at=fetched_at + ttl,
            )
            for index, (_, _, request) in enumerate(self.chunks)
            for fetched_at in [fetched_from + timedelta(seconds=SECONDS_BETWEEN_CHUNKS * index)]
        ]


def random_walk_bars(timestamps: np.ndarray, seed: Sequence[int] | int) -> BarColumns:
    """Final bars at these times: a random walk in cents, wicks around it, wap in 1/10,000ths
    between low and high, whole volumes and trade counts."""
    rng = np.random.default_rng(seed)
    count = len(timestamps)
    # Prices are made in whole cents and divided once, the way the codec decodes them.
    first_cents = int(rng.integers(2_000, 50_000))
    walk = first_cents + np.cumsum(np.rint(rng.normal(0, 6, count)).astype(np.int64))
    close = np.maximum(walk, 100)  # never below a dollar
    open_ = np.concatenate([[first_cents], close[:-1]])
    high = np.maximum(open_, close) + np.rint(np.abs(rng.normal(0, 4, count))).astype(np.int64)
    low = np.minimum(open_, close) - np.rint(np.abs(rng.normal(0, 4, count))).astype(np.int64)
    low = np.maximum(low, 1)
    wap = low * 100 + (rng.random(count) * (high - low) * 100).astype(np.int64)
    volume = np.rint(rng.lognormal(8, 1, count)) + 1
    bar_count = np.maximum(1, volume // rng.integers(20, 120, count)).astype(np.int64)
    return BarColumns(
        timestamp=timestamps.copy(),
        open=open_ / 100.0,
        high=high / 100.0,
        low=low / 100.0,
        close=close / 100.0,
        volume=volume,
        wap=wap / 10_000.0,
        bar_count=bar_count,
        is_final=np.ones(count, dtype=bool),
    )


def chunks_of(
    year: TradingYear, bars: BarColumns, fetches: list[Fetch]
) -> Iterator[tuple[BarColumns, Fetch]]:
    """The bars as the IBKR client delivers them: one chunk per request, with its fetch."""
    for (first, stop, _), fetch in zip(year.chunks, fetches, strict=True):
        yield bars.take(slice(first, stop)), fetch


# -- the rows store_chunk writes, for bulk loading ----------------------------------------------

# market_data_cache's columns as store_chunk inserts them (indicators stays NULL, id is the
# sequence's), in COPY's binary format.
SEGMENT_COLUMNS = {
    "symbol": "varchar",
    "exchange": "varchar",
    "data_type": "varchar",
    "sec_type": "varchar",
    "currency": "varchar",
    "expiry": "varchar",
    "what_to_show": "varchar",
    "use_rth": "bool",
    "segment_date": "date",
    "timestamp": "timestamptz",
    "last_bar_at": "timestamptz",
    "bar_count": "int4",
    "is_final": "bool",
    "ohlcv_data": "bytea",
    "metadata": "jsonb",
    "first_fetched_at": "timestamptz",
    "fetched_at": "timestamptz",
    "expires_at": "timestamptz",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
}
COPY_SEGMENTS = f"COPY market_data_cache ({', '.join(SEGMENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"

# The series summaries and statistics store_chunk keeps beside the segments, for rows loaded
# without it.
# The series key's columns (market_data_tables.SERIES_KEY_COLUMNS), as SQL.
_KEY = ", ".join(SERIES_KEY_COLUMNS)
FILL_SUMMARIES = f"""
INSERT INTO market_data_series_summary
    ({_KEY}, bar_count, first_bar_at, last_bar_at, last_fetched_at)
SELECT {_KEY}, sum(bar_count), min(timestamp), max(last_bar_at), max(fetched_at)
FROM market_data_cache GROUP BY {_KEY}
ON CONFLICT ({_KEY}) DO UPDATE SET
    bar_count = excluded.bar_count, first_bar_at = excluded.first_bar_at,
    last_bar_at = excluded.last_bar_at, last_fetched_at = excluded.last_fetched_at
"""
FILL_STATS = f"""
INSERT INTO market_data_cache_stats
    ({_KEY}, hits, misses, partial_hits, stale_serves, last_refresh_at)
SELECT {_KEY}, 0, 0, 0, 0, max(fetched_at)
FROM market_data_cache GROUP BY {_KEY}
ON CONFLICT ({_KEY}) DO UPDATE SET last_refresh_at = excluded.last_refresh_at
"""


def segment_rows(
    series: SeriesKey, chunks: Iterator[tuple[BarColumns, Fetch]]
) -> Iterator[dict[str, Any]]:
    """The rows store_chunk inserts for these chunks into a cache without the series: one per
    segment, its values from the repository's own _segment_values."""
    bar_size = BarSize(series.data_type)
    for bars, fetch in chunks:
        for segment_date, first, stop in market_calendar.segment_runs(
            series.market, bar_size, bars.timestamp
        ):
            part = bars.take(slice(first, stop))
            yield {
                "symbol": series.symbol,
                "exchange": series.exchange,
                "data_type": series.data_type,
                "sec_type": series.sec_type,
                "currency": series.currency,
                "expiry": series.expiry,
                "what_to_show": series.what_to_show,
                "use_rth": series.use_rth,
                "segment_date": segment_date,
                **_segment_values(
                    part, np.zeros(len(part), dtype=np.uint16), [fetch], fetch.fetched_at
                ),
                "created_at": fetch.fetched_at,
            }


def copy_segments(connection: psycopg.Connection, rows: Iterator[dict[str, Any]]) -> int:
    """COPY segment rows into market_data_cache; returns the bars written. The caller commits,
    then runs FILL_SUMMARIES and FILL_STATS once the load is complete."""
    bars = 0
    with connection.cursor() as cursor, cursor.copy(COPY_SEGMENTS) as copy:
        copy.set_types(list(SEGMENT_COLUMNS.values()))
        for row in rows:
            bars += row["bar_count"]
            copy.write_row(
                [Jsonb(row[name]) if name == "metadata" else row[name] for name in SEGMENT_COLUMNS]
            )
    return bars
