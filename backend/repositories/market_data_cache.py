"""SQL for the bar cache: range reads, bulk upserts, confirmed-empty ranges, deletes, statistics."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, bindparam, case, delete, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite

from backend.core.db import Database
from backend.models.market_data import CacheCoverage, CacheSeriesStats, MarketDataCache

BARS = MarketDataCache.__table__
COVERAGE = CacheCoverage.__table__
STATS = CacheSeriesStats.__table__


@dataclass(frozen=True)
class SeriesKey:
    symbol: str
    exchange: str
    data_type: str


# (timestamp, open, high, low, close, volume): the bars strategies and checksums read. Plain tuples,
# because an object per bar would double the cost of a warm read of a year of 1-minute bars.
OhlcvBar = tuple[datetime, float, float, float, float, float]


@dataclass(frozen=True)
class CacheSummary:
    """What the cache holds for a series and range, without reading the bars themselves."""

    bars: int
    # Bars still good to serve: final, or within their TTL (every bar when expiry is ignored).
    fresh_bars: int
    fetched_from: datetime | None
    fetched_to: datetime | None


class CachedBar(NamedTuple):
    """A bar as read from the cache. A tuple, because a year of 1-minute bars is ~98k of them."""

    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float | None
    bar_count: int | None
    is_final: bool
    fetched_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class BarFilter:
    symbol: str | None = None
    exchange: str | None = None
    data_type: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None

    @property
    def is_empty(self) -> bool:
        return all(value is None for value in vars(self).values())


@dataclass(frozen=True)
class NewBar:
    timestamp: datetime
    ohlcv: dict[str, Any]
    is_final: bool


_OHLCV = BARS.c.ohlcv_data
# One series' bars in [start, end), as bound parameters so each read compiles once.
_SERIES_RANGE = (
    BARS.c.symbol == bindparam("symbol"),
    BARS.c.exchange == bindparam("exchange"),
    BARS.c.data_type == bindparam("data_type"),
    BARS.c.timestamp >= bindparam("start", type_=BARS.c.timestamp.type),
    BARS.c.timestamp < bindparam("end", type_=BARS.c.timestamp.type),
)
READ_BARS = (
    select(
        BARS.c.timestamp,
        _OHLCV["open"].as_float(),
        _OHLCV["high"].as_float(),
        _OHLCV["low"].as_float(),
        _OHLCV["close"].as_float(),
        _OHLCV["volume"].as_float(),
        _OHLCV["wap"].as_float(),
        _OHLCV["bar_count"].as_integer(),
        BARS.c.metadata["is_final"].as_boolean(),
        BARS.c.fetched_at,
        BARS.c.expires_at,
    )
    .where(*_SERIES_RANGE)
    .order_by(BARS.c.timestamp)
)

READ_OHLCV = (
    select(
        BARS.c.timestamp,
        _OHLCV["open"].as_float(),
        _OHLCV["high"].as_float(),
        _OHLCV["low"].as_float(),
        _OHLCV["close"].as_float(),
        _OHLCV["volume"].as_float(),
    )
    .where(*_SERIES_RANGE)
    .order_by(BARS.c.timestamp)
)


def _is_fresh(now):
    """Final bars never expire; the others are fresh until expires_at."""
    is_final = BARS.c.metadata["is_final"].as_boolean()
    return or_(is_final.is_(True), BARS.c.expires_at > now)


OUTCOME_COLUMNS = {
    "hit": "hits",
    "miss": "misses",
    "partial": "partial_hits",
    "stale": "stale_serves",
}


class MarketDataCacheRepository:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._compiled_reads: dict[int, tuple[str, dict[str, Any]]] = {}

    def _compiled(self, connection: Connection, statement) -> tuple[str, dict[str, Any]]:
        """A read compiled once: its SQL text and its fixed parameters (the JSON keys)."""
        key = id(statement)
        if key not in self._compiled_reads:
            compiled = statement.compile(dialect=connection.dialect)
            self._compiled_reads[key] = (str(compiled), dict(compiled.params))
        return self._compiled_reads[key]

    @staticmethod
    def _range_params(series: SeriesKey, start: datetime, end: datetime) -> dict[str, Any]:
        return {
            "symbol": series.symbol,
            "exchange": series.exchange,
            "data_type": series.data_type,
            "start": start,
            "end": end,
        }

    @staticmethod
    def _range_conditions(series: SeriesKey, start: datetime, end: datetime) -> list:
        return [
            BARS.c.symbol == series.symbol,
            BARS.c.exchange == series.exchange,
            BARS.c.data_type == series.data_type,
            BARS.c.timestamp >= start,
            BARS.c.timestamp < end,
        ]

    # -- reads ----------------------------------------------------------------------------------

    def read_bars(self, series: SeriesKey, start: datetime, end: datetime) -> list[CachedBar]:
        """Bars in [start, end) in time order; JSON fields are extracted in SQL, not in Python."""
        params = self._range_params(series, start, end)
        with self.database.read_engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # Straight from psycopg, as in read_ohlcv.
                sql, fixed_params = self._compiled(connection, READ_BARS)
                cursor = connection.connection.driver_connection.cursor(binary=True)
                rows = cursor.execute(sql, {**fixed_params, **params}).fetchall()
            else:
                rows = connection.execute(READ_BARS, params).all()
        return list(map(CachedBar._make, rows))

    def read_ohlcv(self, series: SeriesKey, start: datetime, end: datetime) -> list[OhlcvBar]:
        """OHLCV tuples in [start, end), in time order: the hot path of every warm read."""
        params = self._range_params(series, start, end)
        with self.database.read_engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # Straight from psycopg, in binary: SQLAlchemy's per-row result processing would
                # cost more than the query itself for a year of 1-minute bars, and a UTC session
                # returns aware UTC datetimes already.
                sql, fixed_params = self._compiled(connection, READ_OHLCV)
                cursor = connection.connection.driver_connection.cursor(binary=True)
                return cursor.execute(sql, {**fixed_params, **params}).fetchall()
            return [tuple(row) for row in connection.execute(READ_OHLCV, params)]

    def summarize(
        self, series: SeriesKey, start: datetime, end: datetime, now: datetime | None
    ) -> CacheSummary:
        """Counts and fetched_at range of the cached bars in [start, end); fresh at `now`."""
        fresh = func.count() if now is None else func.count().filter(_is_fresh(now))
        statement = select(
            func.count(), fresh, func.min(BARS.c.fetched_at), func.max(BARS.c.fetched_at)
        ).where(*self._range_conditions(series, start, end))
        with self.database.read_engine.connect() as connection:
            return CacheSummary(*connection.execute(statement).one())

    def fresh_timestamps(
        self, series: SeriesKey, start: datetime, end: datetime, now: datetime | None
    ) -> set[datetime]:
        """Start times of the fresh cached bars in [start, end) (all of them when now is None)."""
        conditions = self._range_conditions(series, start, end)
        if now is not None:
            conditions.append(_is_fresh(now))
        with self.database.read_engine.connect() as connection:
            return set(connection.execute(select(BARS.c.timestamp).where(*conditions)).scalars())

    def empty_ranges(
        self, series: SeriesKey, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        statement = (
            select(COVERAGE.c.range_start, COVERAGE.c.range_end)
            .where(
                COVERAGE.c.symbol == series.symbol,
                COVERAGE.c.exchange == series.exchange,
                COVERAGE.c.data_type == series.data_type,
                COVERAGE.c.range_end > start,
                COVERAGE.c.range_start < end,
            )
            .order_by(COVERAGE.c.range_start)
        )
        with self.database.read_engine.connect() as connection:
            return [(row[0], row[1]) for row in connection.execute(statement)]

    def list_bars(
        self, bar_filter: BarFilter, limit: int, offset: int
    ) -> tuple[list[MarketDataCache], int]:
        conditions = self._conditions(bar_filter)
        with self.database.session() as session:
            total = session.execute(
                select(func.count()).select_from(BARS).where(*conditions)
            ).scalar_one()
            rows = (
                session.execute(
                    select(MarketDataCache)
                    .where(*conditions)
                    .order_by(
                        MarketDataCache.symbol,
                        MarketDataCache.data_type,
                        MarketDataCache.timestamp,
                        MarketDataCache.exchange,
                    )
                    .limit(limit)
                    .offset(offset)
                )
                .scalars()
                .all()
            )
        return list(rows), total

    def cached_exchanges(self, symbol: str, data_type: str) -> list[str]:
        """Exchanges the cache holds bars of this symbol and bar size for, alphabetically."""
        statement = (
            select(BARS.c.exchange)
            .where(BARS.c.symbol == symbol, BARS.c.data_type == data_type)
            .distinct()
            .order_by(BARS.c.exchange)
        )
        with self.database.read_engine.connect() as connection:
            return list(connection.execute(statement).scalars())

    def series_summaries(self, now: datetime) -> list[dict[str, Any]]:
        """Per series: bar count, first and last bar, last update, and bars expired at `now`."""
        is_final = BARS.c.metadata["is_final"].as_boolean()
        expired = case((and_(BARS.c.expires_at <= now, is_final.is_not(True)), 1), else_=0)
        statement = (
            select(
                BARS.c.symbol,
                BARS.c.exchange,
                BARS.c.data_type,
                func.count().label("bar_count"),
                func.min(BARS.c.timestamp).label("first"),
                func.max(BARS.c.timestamp).label("last"),
                func.max(BARS.c.fetched_at).label("last_updated"),
                func.sum(expired).label("expired_count"),
            )
            .group_by(BARS.c.symbol, BARS.c.exchange, BARS.c.data_type)
            .order_by(BARS.c.symbol, BARS.c.data_type)
        )
        with self.database.read_engine.connect() as connection:
            rows = connection.execute(statement).mappings().all()
        return [{**row, "expired_count": int(row["expired_count"] or 0)} for row in rows]

    # -- writes ---------------------------------------------------------------------------------

    def store_chunk(
        self,
        series: SeriesKey,
        bars: Sequence[NewBar],
        meta: dict[str, Any],
        fetched_at: datetime,
        expires_at: datetime,
        empty_ranges: Sequence[tuple[datetime, datetime]] = (),
        empty_reason: str | None = None,
    ) -> int:
        """Upsert one fetched chunk and its confirmed-empty ranges in a single transaction."""
        with self.database.engine.begin() as connection:
            self._upsert_bars(connection, series, bars, meta, fetched_at, expires_at)
            if empty_ranges:
                self._record_empty(connection, series, empty_ranges, empty_reason or "", fetched_at)
            self._bump_stats(connection, series, {"last_refresh_at": fetched_at})
        return len(bars)

    def _upsert_bars(
        self,
        connection: Connection,
        series: SeriesKey,
        bars: Sequence[NewBar],
        meta: dict[str, Any],
        fetched_at: datetime,
        expires_at: datetime,
    ) -> None:
        if not bars:
            return
        rows = [
            {
                "symbol": series.symbol,
                "exchange": series.exchange,
                "data_type": series.data_type,
                "timestamp": bar.timestamp,
                "ohlcv_data": bar.ohlcv,
                "metadata": {**meta, "is_final": bar.is_final},
                "fetched_at": fetched_at,
                "expires_at": expires_at,
                "created_at": fetched_at,
                "updated_at": fetched_at,
            }
            for bar in bars
        ]
        if self._dialect == "postgresql":
            self._copy_upsert_bars(connection, rows)
            return
        insert = self._insert(BARS)
        statement = insert.on_conflict_do_update(
            index_elements=["symbol", "exchange", "data_type", "timestamp"],
            set_={
                "ohlcv_data": insert.excluded.ohlcv_data,
                "metadata": insert.excluded.metadata,
                "fetched_at": insert.excluded.fetched_at,
                "expires_at": insert.excluded.expires_at,
                "updated_at": insert.excluded.updated_at,
            },
        )
        connection.execute(statement, rows)

    @staticmethod
    def _copy_upsert_bars(connection: Connection, rows: list[dict[str, Any]]) -> None:
        """COPY into a transaction-scoped staging table, then one INSERT ... ON CONFLICT.

        A year of 1-minute bars is ~98k rows; row-by-row VALUES upserts take several times as
        long as COPY, while this stays close to it. Runs inside the caller's transaction.
        """
        cursor = connection.connection.driver_connection.cursor()
        cursor.execute(
            "CREATE TEMP TABLE incoming_bars (symbol text, exchange text, data_type text,"
            " timestamp timestamptz, ohlcv_data jsonb, metadata jsonb, fetched_at timestamptz,"
            " expires_at timestamptz) ON COMMIT DROP"
        )
        with cursor.copy(
            "COPY incoming_bars (symbol, exchange, data_type, timestamp, ohlcv_data, metadata,"
            " fetched_at, expires_at) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(
                    (
                        row["symbol"],
                        row["exchange"],
                        row["data_type"],
                        row["timestamp"],
                        json.dumps(row["ohlcv_data"]),
                        json.dumps(row["metadata"]),
                        row["fetched_at"],
                        row["expires_at"],
                    )
                )
        cursor.execute(
            "INSERT INTO market_data_cache (symbol, exchange, data_type, timestamp, ohlcv_data,"
            " metadata, fetched_at, expires_at, created_at, updated_at)"
            " SELECT symbol, exchange, data_type, timestamp, ohlcv_data, metadata, fetched_at,"
            " expires_at, fetched_at, fetched_at FROM incoming_bars"
            " ON CONFLICT (symbol, exchange, data_type, timestamp) DO UPDATE SET"
            " ohlcv_data = EXCLUDED.ohlcv_data, metadata = EXCLUDED.metadata,"
            " fetched_at = EXCLUDED.fetched_at, expires_at = EXCLUDED.expires_at,"
            " updated_at = EXCLUDED.updated_at"
        )
        cursor.execute("DROP TABLE incoming_bars")

    def _record_empty(
        self,
        connection: Connection,
        series: SeriesKey,
        ranges: Sequence[tuple[datetime, datetime]],
        reason: str,
        checked_at: datetime,
    ) -> None:
        insert = self._insert(COVERAGE)
        statement = insert.on_conflict_do_update(
            index_elements=["symbol", "exchange", "data_type", "range_start"],
            set_={
                "range_end": insert.excluded.range_end,
                "reason": insert.excluded.reason,
                "checked_at": insert.excluded.checked_at,
            },
        )
        connection.execute(
            statement,
            [
                {
                    "symbol": series.symbol,
                    "exchange": series.exchange,
                    "data_type": series.data_type,
                    "range_start": start,
                    "range_end": end,
                    "reason": reason[:200],
                    "checked_at": checked_at,
                }
                for start, end in ranges
            ],
        )

    def delete_bars(self, bar_filter: BarFilter) -> int:
        """Delete matching bars (and, for whole series, their empty-range records)."""
        with self.database.engine.begin() as connection:
            deleted = connection.execute(delete(BARS).where(*self._conditions(bar_filter))).rowcount
            if bar_filter.date_from is None and bar_filter.date_to is None:
                coverage = [
                    getattr(COVERAGE.c, name) == value
                    for name, value in (
                        ("symbol", bar_filter.symbol),
                        ("exchange", bar_filter.exchange),
                        ("data_type", bar_filter.data_type),
                    )
                    if value is not None
                ]
                connection.execute(delete(COVERAGE).where(*coverage))
        return int(deleted or 0)

    # -- statistics -----------------------------------------------------------------------------

    def record_outcome(self, series: SeriesKey, outcome: str, at: datetime) -> None:
        """Count a hit, miss, partial hit or stale serve for the series."""
        column = OUTCOME_COLUMNS[outcome]
        with self.database.engine.begin() as connection:
            values: dict[str, Any] = {column: 1}
            if outcome in ("hit", "partial", "stale"):
                values["last_hit_at"] = at
            self._bump_stats(connection, series, values)

    def _bump_stats(
        self, connection: Connection, series: SeriesKey, values: dict[str, Any]
    ) -> None:
        counters = {name: values.get(name, 0) for name in OUTCOME_COLUMNS.values()}
        times = {
            name: values[name] for name in ("last_hit_at", "last_refresh_at") if name in values
        }
        insert = self._insert(STATS).values(
            symbol=series.symbol,
            exchange=series.exchange,
            data_type=series.data_type,
            **counters,
            **times,
        )
        updates: dict[str, Any] = {name: STATS.c[name] + insert.excluded[name] for name in counters}
        updates.update({name: insert.excluded[name] for name in times})
        connection.execute(
            insert.on_conflict_do_update(
                index_elements=["symbol", "exchange", "data_type"], set_=updates
            )
        )

    def all_stats(self) -> list[CacheSeriesStats]:
        with self.database.session() as session:
            return list(
                session.execute(
                    select(CacheSeriesStats).order_by(
                        CacheSeriesStats.symbol, CacheSeriesStats.data_type
                    )
                ).scalars()
            )

    # -- cross-process single-flight ------------------------------------------------------------

    @contextmanager
    def series_lock(self, series: SeriesKey) -> Iterator[None]:
        """Hold a PostgreSQL advisory lock on the series: other processes wait, then read the cache.

        SQLite serialises writers itself and has no advisory locks, so there it is a no-op.
        """
        if self._dialect != "postgresql":
            yield
            return
        key = _lock_key(series)
        with self.database.engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()

    # -- internals ------------------------------------------------------------------------------

    @property
    def _dialect(self) -> str:
        return self.database.dialect

    def _insert(self, table):
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    @staticmethod
    def _conditions(bar_filter: BarFilter) -> list:
        conditions = []
        if bar_filter.symbol is not None:
            conditions.append(BARS.c.symbol == bar_filter.symbol)
        if bar_filter.exchange is not None:
            conditions.append(BARS.c.exchange == bar_filter.exchange)
        if bar_filter.data_type is not None:
            conditions.append(BARS.c.data_type == bar_filter.data_type)
        if bar_filter.date_from is not None:
            conditions.append(BARS.c.timestamp >= bar_filter.date_from)
        if bar_filter.date_to is not None:
            conditions.append(BARS.c.timestamp <= bar_filter.date_to)
        return conditions


def _lock_key(series: SeriesKey) -> int:
    digest = hashlib.blake2b(
        f"{series.symbol}|{series.exchange}|{series.data_type}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)
