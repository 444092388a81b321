"""SQL for the bar cache: range reads, bulk upserts, confirmed-empty ranges, deletes, statistics."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from backend.market_data.domain import OhlcvBar, SeriesKey
from backend.storage.database import Database
from backend.storage.market_data_tables import (
    OPEN_BAR_PREDICATE,
    CacheCoverage,
    CacheSeriesStats,
    CacheSeriesSummary,
    MarketDataCache,
)

BARS = MarketDataCache.__table__
COVERAGE = CacheCoverage.__table__
STATS = CacheSeriesStats.__table__
SUMMARIES = CacheSeriesSummary.__table__


@dataclass(frozen=True)
class SeriesSummary:
    """What the cache holds for a whole series, from its summary row (no bar is read)."""

    bar_count: int
    first_bar_at: datetime | None
    last_bar_at: datetime | None
    last_fetched_at: datetime | None


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

# One page of READ_BARS: keyset paging moves `start` past the last bar of the previous page.
READ_BARS_PAGE = READ_BARS.limit(bindparam("limit"))

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


def _open_bars(dialect: str):
    """Bars that are not final, as the partial index ix_market_data_cache_open_bars lists them."""
    return text(OPEN_BAR_PREDICATE[dialect])


_SUMMARY_COLUMNS = (
    SUMMARIES.c.bar_count,
    SUMMARIES.c.first_bar_at,
    SUMMARIES.c.last_bar_at,
    SUMMARIES.c.last_fetched_at,
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

    def read_bars(
        self, series: SeriesKey, start: datetime, end: datetime, limit: int | None = None
    ) -> list[CachedBar]:
        """Bars in [start, end) in time order, the first `limit` of them when given.

        JSON fields are extracted in SQL, not in Python.
        """
        params = self._range_params(series, start, end)
        statement = READ_BARS
        if limit is not None:
            statement = READ_BARS_PAGE
            params["limit"] = limit
        with self.database.read_engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # Straight from psycopg, as in read_ohlcv.
                sql, fixed_params = self._compiled(connection, statement)
                cursor = connection.connection.driver_connection.cursor(binary=True)
                rows = cursor.execute(sql, {**fixed_params, **params}).fetchall()
            else:
                rows = connection.execute(statement, params).all()
        return list(map(CachedBar._make, rows))

    def series_summary(self, series: SeriesKey) -> SeriesSummary | None:
        """The series' summary row; None when the cache holds none of its bars."""
        statement = select(*_SUMMARY_COLUMNS).where(*self._summary_key(series))
        with self.database.read_engine.connect() as connection:
            row = connection.execute(statement).one_or_none()
        return None if row is None else SeriesSummary(*row)

    def count_bars(self, series: SeriesKey, start: datetime, end: datetime) -> int:
        """Bars in [start, end): a range count over the series' unique index."""
        statement = (
            select(func.count())
            .select_from(BARS)
            .where(*self._range_conditions(series, start, end))
        )
        with self.database.read_engine.connect() as connection:
            return connection.execute(statement).scalar_one()

    def any_expired(self, series: SeriesKey, start: datetime, end: datetime, now: datetime) -> bool:
        """Whether a bar in [start, end) has expired at `now`; reads only the open bars' index."""
        statement = select(
            select(BARS.c.id)
            .where(
                _open_bars(self._dialect),
                *self._range_conditions(series, start, end),
                BARS.c.expires_at <= now,
            )
            .exists()
        )
        with self.database.read_engine.connect() as connection:
            return bool(connection.execute(statement).scalar_one())

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
        """One page of matching bars and the total that match.

        Without a date filter the total is summed from the series summaries; with one it is a
        count over the matching range.
        """
        conditions = self._conditions(bar_filter)
        if bar_filter.date_from is None and bar_filter.date_to is None:
            count = select(func.coalesce(func.sum(SUMMARIES.c.bar_count), 0)).where(
                *self._summary_conditions(bar_filter)
            )
        else:
            count = select(func.count()).select_from(BARS).where(*conditions)
        with self.database.session() as session:
            total = session.execute(count).scalar_one()
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
            select(SUMMARIES.c.exchange)
            .where(SUMMARIES.c.symbol == symbol, SUMMARIES.c.data_type == data_type)
            .order_by(SUMMARIES.c.exchange)
        )
        with self.database.read_engine.connect() as connection:
            return list(connection.execute(statement).scalars())

    def series_summaries(self, now: datetime) -> list[dict[str, Any]]:
        """Per series: bar count, first and last bar, last update, and bars expired at `now`.

        Read from the summary rows and the open bars' index: the cost grows with the number of
        series and of bars not yet final, not with the bars cached.
        """
        expired = (
            select(
                BARS.c.symbol,
                BARS.c.exchange,
                BARS.c.data_type,
                func.count().label("expired_count"),
            )
            .where(_open_bars(self._dialect), BARS.c.expires_at <= now)
            .group_by(BARS.c.symbol, BARS.c.exchange, BARS.c.data_type)
            .subquery("expired")
        )
        same_series = and_(
            *(SUMMARIES.c[name] == expired.c[name] for name in ("symbol", "exchange", "data_type"))
        )
        # One statement, so the counts and the expiry come from the same snapshot.
        statement = (
            select(
                SUMMARIES.c.symbol,
                SUMMARIES.c.exchange,
                SUMMARIES.c.data_type,
                SUMMARIES.c.bar_count,
                SUMMARIES.c.first_bar_at.label("first"),
                SUMMARIES.c.last_bar_at.label("last"),
                SUMMARIES.c.last_fetched_at.label("last_updated"),
                func.coalesce(expired.c.expired_count, 0).label("expired_count"),
            )
            .select_from(SUMMARIES.outerjoin(expired, same_series))
            .order_by(SUMMARIES.c.symbol, SUMMARIES.c.data_type, SUMMARIES.c.exchange)
        )
        with self.database.read_engine.connect() as connection:
            return [dict(row) for row in connection.execute(statement).mappings()]

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
        """Upsert one fetched chunk and its confirmed-empty ranges in a single transaction.

        The series' summary is brought up to date in the same transaction.
        """
        with self.database.engine.begin() as connection:
            if bars:
                # Locked first: the writers of a series then take turns, so the figures stay exact.
                summary = self._lock_summary(connection, series)
                inserted = self._upsert_bars(connection, series, bars, meta, fetched_at, expires_at)
                self._summarize_upsert(connection, series, summary, bars, inserted, fetched_at)
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
    ) -> int:
        """Upsert the bars; return how many were new (the others replaced cached bars)."""
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
            return self._copy_upsert_bars(connection, rows)
        # SQLite has no way to tell an inserted row from an updated one, but its writers take
        # turns (this transaction holds the write lock since _lock_summary), so the bars in the
        # chunk's span before and after the upsert differ by exactly the new ones.
        timestamps = [bar.timestamp for bar in bars]
        span = [BARS.c.timestamp >= min(timestamps), BARS.c.timestamp <= max(timestamps)]
        count = (
            select(func.count()).select_from(BARS).where(*self._series_conditions(series), *span)
        )
        before = connection.execute(count).scalar_one()
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
        return connection.execute(count).scalar_one() - before

    @staticmethod
    def _copy_upsert_bars(connection: Connection, rows: list[dict[str, Any]]) -> int:
        """COPY into a transaction-scoped staging table, then one INSERT ... ON CONFLICT.

        A year of 1-minute bars is ~98k rows; row-by-row VALUES upserts take several times as
        long as COPY, while this stays close to it. Runs inside the caller's transaction.
        Returns the rows inserted: a row the upsert inserted has no xmax, one it updated carries
        the updating transaction's id there.
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
        inserted = cursor.execute(
            "WITH upserted AS (INSERT INTO market_data_cache (symbol, exchange, data_type,"
            " timestamp, ohlcv_data, metadata, fetched_at, expires_at, created_at, updated_at)"
            " SELECT symbol, exchange, data_type, timestamp, ohlcv_data, metadata, fetched_at,"
            " expires_at, fetched_at, fetched_at FROM incoming_bars"
            " ON CONFLICT (symbol, exchange, data_type, timestamp) DO UPDATE SET"
            " ohlcv_data = EXCLUDED.ohlcv_data, metadata = EXCLUDED.metadata,"
            " fetched_at = EXCLUDED.fetched_at, expires_at = EXCLUDED.expires_at,"
            " updated_at = EXCLUDED.updated_at"
            " RETURNING xmax = 0 AS inserted)"
            " SELECT count(*) FILTER (WHERE inserted) FROM upserted"
        ).fetchone()
        cursor.execute("DROP TABLE incoming_bars")
        return int(inserted[0])

    # -- series summaries -----------------------------------------------------------------------

    def _lock_summary(self, connection: Connection, series: SeriesKey) -> SeriesSummary:
        """The series' summary row, created if missing and locked until the transaction ends."""
        insert = self._insert(SUMMARIES).values(
            symbol=series.symbol, exchange=series.exchange, data_type=series.data_type, bar_count=0
        )
        statement = insert.on_conflict_do_update(
            index_elements=["symbol", "exchange", "data_type"],
            set_={"bar_count": SUMMARIES.c.bar_count},
        ).returning(*_SUMMARY_COLUMNS)
        return SeriesSummary(*connection.execute(statement).one())

    def _summarize_upsert(
        self,
        connection: Connection,
        series: SeriesKey,
        summary: SeriesSummary,
        bars: Sequence[NewBar],
        inserted: int,
        fetched_at: datetime,
    ) -> None:
        timestamps = [bar.timestamp for bar in bars]
        first = min(timestamps)
        last = max(timestamps)
        last_fetched_at = fetched_at
        if summary.bar_count:
            first = min(first, summary.first_bar_at or first)
            last = max(last, summary.last_bar_at or last)
            if summary.last_fetched_at is not None and summary.last_fetched_at > fetched_at:
                # Written with an older fetch time than the series already had (a clock set
                # back): the bars it replaced may have held the latest one, so look.
                last_fetched_at = connection.execute(
                    select(func.max(BARS.c.fetched_at)).where(*self._series_conditions(series))
                ).scalar_one()
        connection.execute(
            update(SUMMARIES)
            .where(*self._summary_key(series))
            .values(
                bar_count=summary.bar_count + inserted,
                first_bar_at=first,
                last_bar_at=last,
                last_fetched_at=last_fetched_at,
            )
        )

    def _lock_summaries(self, connection: Connection, bar_filter: BarFilter) -> list[Row]:
        """Lock the summaries of the series that may hold matching bars; returned in key order.

        An UPDATE, not a SELECT: on SQLite the first statement of a transaction must write for
        the transaction to hold the write lock from the start.
        """
        statement = (
            update(SUMMARIES)
            .where(*self._summary_conditions(bar_filter))
            .values(bar_count=SUMMARIES.c.bar_count)
            .returning(
                SUMMARIES.c.symbol, SUMMARIES.c.exchange, SUMMARIES.c.data_type, *_SUMMARY_COLUMNS
            )
        )
        rows = connection.execute(statement).all()
        return sorted(rows, key=lambda row: (row.symbol, row.exchange, row.data_type))

    def _delete_series_bars(self, connection: Connection, row: Row, bar_filter: BarFilter) -> int:
        """Delete one series' matching bars and correct its summary; return the bars deleted."""
        series = SeriesKey(row.symbol, row.exchange, row.data_type)
        conditions = self._series_conditions(series) + self._date_conditions(bar_filter)
        whole_series = (
            bar_filter.date_from is None or bar_filter.date_from <= row.first_bar_at
        ) and (bar_filter.date_to is None or bar_filter.date_to >= row.last_bar_at)
        newest_deleted = None
        if not whole_series:
            newest_deleted = connection.execute(
                select(func.max(BARS.c.fetched_at)).where(*conditions)
            ).scalar_one()
        deleted = int(connection.execute(delete(BARS).where(*conditions)).rowcount or 0)
        if deleted == 0:
            return 0
        key = self._summary_key(series)
        if deleted >= row.bar_count:
            connection.execute(delete(SUMMARIES).where(*key))
            return deleted
        in_series = self._series_conditions(series)
        # min and max one at a time: each is then one step down the unique index.
        first = connection.execute(select(func.min(BARS.c.timestamp)).where(*in_series)).scalar()
        last = connection.execute(select(func.max(BARS.c.timestamp)).where(*in_series)).scalar()
        last_fetched_at = row.last_fetched_at
        if newest_deleted is not None and newest_deleted >= row.last_fetched_at:
            last_fetched_at = connection.execute(
                select(func.max(BARS.c.fetched_at)).where(*in_series)
            ).scalar_one()
        connection.execute(
            update(SUMMARIES)
            .where(*key)
            .values(
                bar_count=row.bar_count - deleted,
                first_bar_at=first,
                last_bar_at=last,
                last_fetched_at=last_fetched_at,
            )
        )
        return deleted

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
        """Delete matching bars (and, for whole series, their empty-range records).

        Series by series, each with its summary corrected in the same transaction.
        """
        with self.database.engine.begin() as connection:
            deleted = sum(
                self._delete_series_bars(connection, row, bar_filter)
                for row in self._lock_summaries(connection, bar_filter)
            )
            if bar_filter.date_from is None and bar_filter.date_to is None:
                coverage = self._key_filter(bar_filter, COVERAGE)
                connection.execute(delete(COVERAGE).where(*coverage))
        return int(deleted or 0)

    def matches_every_bar(self, bar_filter: BarFilter) -> bool:
        """Whether the cache holds bars and the filter matches each one (from the summaries)."""
        keys = {name: getattr(bar_filter, name) for name in ("symbol", "exchange", "data_type")}
        inside = [SUMMARIES.c[name] == value for name, value in keys.items() if value is not None]
        if bar_filter.date_from is not None:
            inside.append(SUMMARIES.c.first_bar_at >= bar_filter.date_from)
        if bar_filter.date_to is not None:
            inside.append(SUMMARIES.c.last_bar_at <= bar_filter.date_to)
        count = select(func.count()).select_from(SUMMARIES)
        with self.database.read_engine.connect() as connection:
            held = connection.execute(count).scalar_one()
            matched = connection.execute(count.where(*inside)).scalar_one()
        return held > 0 and matched == held

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

    # -- internals ------------------------------------------------------------------------------

    @property
    def _dialect(self) -> str:
        return self.database.dialect

    def _insert(self, table):
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    @staticmethod
    def _series_conditions(series: SeriesKey, table=BARS) -> list:
        """The series' rows in a table keyed by (symbol, exchange, data_type)."""
        return [
            table.c.symbol == series.symbol,
            table.c.exchange == series.exchange,
            table.c.data_type == series.data_type,
        ]

    @staticmethod
    def _summary_key(series: SeriesKey) -> list:
        return MarketDataCacheRepository._series_conditions(series, SUMMARIES)

    @staticmethod
    def _key_filter(bar_filter: BarFilter, table) -> list:
        """The filter's symbol, exchange and bar size, on a table keyed by them."""
        return [
            table.c[name] == value
            for name, value in (
                ("symbol", bar_filter.symbol),
                ("exchange", bar_filter.exchange),
                ("data_type", bar_filter.data_type),
            )
            if value is not None
        ]

    @staticmethod
    def _summary_conditions(bar_filter: BarFilter) -> list:
        """Summaries of the series that may hold bars matching the filter."""
        conditions = MarketDataCacheRepository._key_filter(bar_filter, SUMMARIES)
        if bar_filter.date_from is not None:
            conditions.append(SUMMARIES.c.last_bar_at >= bar_filter.date_from)
        if bar_filter.date_to is not None:
            conditions.append(SUMMARIES.c.first_bar_at <= bar_filter.date_to)
        return conditions

    @staticmethod
    def _date_conditions(bar_filter: BarFilter) -> list:
        conditions = []
        if bar_filter.date_from is not None:
            conditions.append(BARS.c.timestamp >= bar_filter.date_from)
        if bar_filter.date_to is not None:
            conditions.append(BARS.c.timestamp <= bar_filter.date_to)
        return conditions

    @staticmethod
    def _conditions(bar_filter: BarFilter) -> list:
        return MarketDataCacheRepository._key_filter(
            bar_filter, BARS
        ) + MarketDataCacheRepository._date_conditions(bar_filter)
