"""SQL for the bar cache: segment reads and upserts, confirmed-empty ranges, deletes, statistics.

A row of market_data_cache is one segment (see MarketDataCache): the bars of one session, or of
one month for daily bars, as typed columns. Reads select the segments overlapping a range and
cut the first and last one to it; writes merge fetched bars into their segments, one upsert per
segment, all of a chunk in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np
from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from backend.market_data import calendar as market_calendar
from backend.market_data.bar_columns import BarColumns, datetime_to_ns
from backend.market_data.domain import BarSize, SeriesKey
from backend.storage.database import Database
from backend.storage.market_data_tables import (
    OPEN_SEGMENT_PREDICATE,
    SERIES_IDENTITY_COLUMNS,
    SERIES_KEY_COLUMNS,
    CacheCoverage,
    CacheSeriesStats,
    CacheSeriesSummary,
    CorporateAction,
    HeadTimestamp,
    MarketDataCache,
)
from backend.storage.segment_codec import (
    FORMAT_VERSION,
    decode_segment,
    decode_segments,
    encode_segment,
    encode_segments,
)

SEGMENTS = MarketDataCache.__table__
COVERAGE = CacheCoverage.__table__
STATS = CacheSeriesStats.__table__
SUMMARIES = CacheSeriesSummary.__table__
HEADS = HeadTimestamp.__table__
ACTIONS = CorporateAction.__table__

# No segment spans more than this (a month of daily bars; a year of weekly or monthly ones), so a
# range read can bound its index scan from below as well as above.
MAX_SEGMENT_SPAN = timedelta(days=32)
LONG_SEGMENT_SPAN = timedelta(days=367)
YEAR_SEGMENTS = ("1w", "1mo")


@dataclass(frozen=True)
class Fetch:
    """Where bars came from: one IBKR request and when it was answered."""

    source: str
    what_to_show: str
    use_rth: bool
    request: dict[str, Any]
    fetched_at: datetime
    expires_at: datetime
    # IBKR's id of the contract the request named (qualified), when known.
    con_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.provenance(),
            "fetched_at": self.fetched_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Fetch:
        return cls(
            value["source"],
            value["what_to_show"],
            value["use_rth"],
            value["request"],
            datetime.fromisoformat(value["fetched_at"]),
            datetime.fromisoformat(value["expires_at"]),
            value.get("con_id"),
        )

    def provenance(self) -> dict[str, Any]:
        """What a bar's metadata says about where it came from (its times have columns)."""
        return {
            "source": self.source,
            "what_to_show": self.what_to_show,
            "use_rth": self.use_rth,
            "request": self.request,
            # Only where known: bars cached before contracts were recorded keep their shape.
            **({"con_id": self.con_id} if self.con_id is not None else {}),
        }


@dataclass(frozen=True)
class Segment:
    """One stored segment, decoded: its bars, and for each bar the fetch it came from."""

    id: int
    series: SeriesKey
    segment_date: date
    columns: BarColumns
    fetch_index: np.ndarray
    fetches: list[Fetch]
    indicators: dict[str, Any] | None
    # The instant IBKR's adjustment of these prices is as of: the latest fetch, or the healing of
    # a split after it. Every segment of a series is on the basis the series' summary names.
    price_basis_at: datetime

    def expires_at_ns(self) -> np.ndarray:
        return _per_bar([f.expires_at for f in self.fetches], self.fetch_index)


@dataclass(frozen=True)
class SegmentSlice:
    """Bars [first, stop) of a segment: what one page of a listing shows of it."""

    segment: Segment
    first: int
    stop: int

    @property
    def columns(self) -> BarColumns:
        return self.segment.columns.take(np.arange(self.first, self.stop))

    @property
    def fetch_index(self) -> np.ndarray:
        return self.segment.fetch_index[self.first : self.stop]

    def fetched_range(self) -> tuple[datetime, datetime]:
        """When the slice's bars were fetched: the earliest and the latest fetch."""
        used = [self.segment.fetches[int(i)].fetched_at for i in np.unique(self.fetch_index)]
        return min(used), max(used)


@dataclass(frozen=True)
class SeriesSummary:
    """What the cache holds for a whole series, from its summary row (no bar is read)."""

    bar_count: int
    first_bar_at: datetime | None
    last_bar_at: datetime | None
    last_fetched_at: datetime | None
    con_id: int | None = None
    basis_at: datetime | None = None


@dataclass(frozen=True)
class CacheSummary:
    """What the cache holds for a series and range."""

    bars: int
    # Bars still good to serve: those of segments that are final or within their TTL (every bar
    # when expiry is ignored). A segment expires whole, and is fetched again whole.
    fresh_bars: int
    fetched_from: datetime | None
    fetched_to: datetime | None


@dataclass(frozen=True)
class BarFilter:
    """Which cached bars a list or a delete means; None matches anything."""

    symbol: str | None = None
    exchange: str | None = None
    data_type: str | None = None
    # Both ends inclusive.
    date_from: datetime | None = None
    date_to: datetime | None = None
    sec_type: str | None = None
    currency: str | None = None
    expiry: str | None = None
    what_to_show: str | None = None
    use_rth: bool | None = None

    @property
    def is_empty(self) -> bool:
        return all(value is None for value in vars(self).values())


def _per_bar(times: list[datetime], fetch_index: np.ndarray) -> np.ndarray:
    stamps = np.array([datetime_to_ns(moment) for moment in times], dtype=np.int64)
    return stamps[fetch_index] if len(stamps) else np.empty(0, dtype=np.int64)


# One series' segments overlapping [start, end), oldest first, as bound parameters so each read
# compiles once. The lower bound on `timestamp` keeps the index scan to the range.
_OVERLAPPING = (
    *(SEGMENTS.c[name] == bindparam(name) for name in SERIES_KEY_COLUMNS),
    SEGMENTS.c.timestamp >= bindparam("scan_from", type_=SEGMENTS.c.timestamp.type),
    SEGMENTS.c.timestamp < bindparam("end", type_=SEGMENTS.c.timestamp.type),
    SEGMENTS.c.last_bar_at >= bindparam("start", type_=SEGMENTS.c.timestamp.type),
)
READ_DATA = select(SEGMENTS.c.ohlcv_data).where(*_OVERLAPPING).order_by(SEGMENTS.c.timestamp)
# A warm read in one statement: the bars, and what coverage needs of each segment. Only a
# segment the range cuts through brings its metadata, for the fetch times of the bars in range.
_CUT_BY_RANGE = or_(
    SEGMENTS.c.timestamp < bindparam("start", type_=SEGMENTS.c.timestamp.type),
    SEGMENTS.c.last_bar_at >= bindparam("end", type_=SEGMENTS.c.timestamp.type),
)
READ_RANGE = (
    select(
        SEGMENTS.c.ohlcv_data,
        SEGMENTS.c.bar_count,
        SEGMENTS.c.is_final,
        SEGMENTS.c.expires_at,
        SEGMENTS.c.first_fetched_at,
        SEGMENTS.c.fetched_at,
        case((_CUT_BY_RANGE, SEGMENTS.c.metadata), else_=null()),
    )
    .where(*_OVERLAPPING)
    .order_by(SEGMENTS.c.timestamp)
)
# A segment rewritten with its merged bars; executemany-able, parameters named new_<column>.
_REWRITTEN = (
    "timestamp",
    "last_bar_at",
    "bar_count",
    "is_final",
    "ohlcv_data",
    "metadata",
    "first_fetched_at",
    "fetched_at",
    "expires_at",
    "updated_at",
)
UPDATE_SEGMENT = (
    update(SEGMENTS)
    .where(SEGMENTS.c.id == bindparam("segment_id"))
    .values({name: bindparam(f"new_{name}") for name in _REWRITTEN})
)
# What decoding a segment needs (see _decode).
_SEGMENT_COLUMNS = (
    SEGMENTS.c.id,
    SEGMENTS.c.segment_date,
    SEGMENTS.c.ohlcv_data,
    SEGMENTS.c.metadata,
    SEGMENTS.c.indicators,
)
READ_SEGMENTS = (
    select(SEGMENTS.c.timestamp, *_SEGMENT_COLUMNS)
    .where(*_OVERLAPPING)
    .order_by(SEGMENTS.c.timestamp)
)
# The most segments a page reads at a time.
PAGE_SEGMENTS = 16
READ_SEGMENTS_PAGE = READ_SEGMENTS.limit(bindparam("segments"))
# What a coverage check needs of each segment, without its bars.
READ_SPANS = (
    select(
        SEGMENTS.c.id,
        SEGMENTS.c.timestamp,
        SEGMENTS.c.last_bar_at,
        SEGMENTS.c.bar_count,
        SEGMENTS.c.metadata,
        SEGMENTS.c.is_final,
        SEGMENTS.c.expires_at,
    )
    .where(*_OVERLAPPING)
    .order_by(SEGMENTS.c.timestamp)
)


def _open_segments():
    """Segments with a bar not final, as the partial index ix_market_data_cache_open_segments
    lists them."""
    return text(OPEN_SEGMENT_PREDICATE)


_SUMMARY_COLUMNS = (
    SUMMARIES.c.bar_count,
    SUMMARIES.c.first_bar_at,
    SUMMARIES.c.last_bar_at,
    SUMMARIES.c.last_fetched_at,
    SUMMARIES.c.con_id,
    SUMMARIES.c.basis_at,
)

_KEY_COLUMNS = SERIES_KEY_COLUMNS
_STATS_TIMES = ("last_hit_at", "last_refresh_at")

OUTCOME_COLUMNS = {
    "hit": "hits",
    "miss": "misses",
    "partial": "partial_hits",
    "stale": "stale_serves",
}


@dataclass
class LookupTally:
    """Lookup outcomes of one series not yet added to its stored counters."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_COLUMNS, 0))
    last_hit_at: datetime | None = None

    def add(self, outcome: str, served_at: datetime | None) -> None:
        if outcome not in OUTCOME_COLUMNS:
            raise ValueError(f"unknown lookup outcome {outcome!r}; one of {list(OUTCOME_COLUMNS)}")
        self.counts[outcome] += 1
        self._served(served_at)

    def merge(self, other: LookupTally) -> None:
        for outcome, count in other.counts.items():
            self.counts[outcome] += count
        self._served(other.last_hit_at)

    def _served(self, at: datetime | None) -> None:
        if at is not None and (self.last_hit_at is None or at > self.last_hit_at):
            self.last_hit_at = at


class MarketDataCacheRepository:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._compiled_reads: dict[int, str] = {}

    # -- reads ----------------------------------------------------------------------------------

    def read_columns(self, series: SeriesKey, start: datetime, end: datetime) -> BarColumns:
        """The bars in [start, end) in time order: the hot path of every warm read."""
        with self.database.read_engine.connect() as connection:
            rows = self._fetch_rows(connection, READ_DATA, _range_params(series, start, end))
        columns, _ = decode_segments([blob for (blob,) in rows])
        return _cut(columns, start, end)

    def read_range(
        self, series: SeriesKey, start: datetime, end: datetime, now: datetime | None
    ) -> tuple[BarColumns, CacheSummary]:
        """The bars in [start, end) and what summarize() would say of them, from one statement.

        The warm read's path: a hit needs nothing more.
        """
        with self.database.read_engine.connect() as connection:
            rows = self._fetch_rows(connection, READ_RANGE, _range_params(series, start, end))
        columns, fetch_index = decode_segments([row[0] for row in rows])
        in_range = _range_mask(columns, start, end)
        counts = np.array([row[1] for row in rows], dtype=np.int64)
        fresh = np.array([_is_fresh(row[2], row[3], now) for row in rows], dtype=bool)
        fresh_bars = int((np.repeat(fresh, counts) & in_range).sum())
        fetched: list[datetime] = []
        first = 0
        for row, count in zip(rows, counts.tolist(), strict=True):
            metadata = row[6]
            if metadata is None:  # inside the range: its own fetch times
                fetched += [row[4], row[5]]
            else:
                held = fetch_index[first : first + count][in_range[first : first + count]]
                fetches = metadata["fetches"]
                fetched += [
                    datetime.fromisoformat(fetches[int(i)]["fetched_at"]) for i in np.unique(held)
                ]
            first += count
        summary = CacheSummary(
            int(in_range.sum()),
            fresh_bars,
            min(fetched) if fetched else None,
            max(fetched) if fetched else None,
        )
        return _cut(columns, start, end), summary

    def read_page(
        self, series: SeriesKey, start: datetime, end: datetime, limit: int
    ) -> list[SegmentSlice]:
        """The first `limit` bars in [start, end), as slices of their segments.

        Segments are read a few at a time, so a page costs the same however long the series.
        """
        page: list[SegmentSlice] = []
        held = 0
        # One segment first (a session of 1-minute bars fills a page of hundreds), then twice
        # as many each time, up to PAGE_SEGMENTS.
        params = {**_range_params(series, start, end), "segments": 1}
        with self.database.read_engine.connect() as connection:
            while held < limit:
                rows = connection.execute(READ_SEGMENTS_PAGE, params).all()
                for row in rows:
                    segment = _decode(series, row)
                    inside = np.flatnonzero(_range_mask(segment.columns, start, end))
                    chosen = inside[: limit - held]
                    if len(chosen):
                        page.append(SegmentSlice(segment, int(chosen[0]), int(chosen[-1]) + 1))
                        held += len(chosen)
                if len(rows) < params["segments"]:
                    break
                # Keyset paging over segments: the next batch starts after the last one read.
                params["scan_from"] = rows[-1].timestamp + timedelta(microseconds=1)
                params["segments"] = min(2 * params["segments"], PAGE_SEGMENTS)
        return page

    def read_segments(self, series: SeriesKey, start: datetime, end: datetime) -> list[Segment]:
        """The decoded segments overlapping [start, end), whole (not cut to the range)."""
        with self.database.read_engine.connect() as connection:
            rows = connection.execute(READ_SEGMENTS, _range_params(series, start, end)).all()
        return [_decode(series, row) for row in rows]

    def series_summary(self, series: SeriesKey) -> SeriesSummary | None:
        """The series' summary row; None when the cache holds none of its bars."""
        statement = select(*_SUMMARY_COLUMNS).where(*_key(series, SUMMARIES))
        with self.database.read_engine.connect() as connection:
            row = connection.execute(statement).one_or_none()
        return None if row is None else SeriesSummary(*row)

    def count_bars(self, series: SeriesKey, start: datetime, end: datetime) -> int:
        """Bars in [start, end), from the segments' counts; only the two ends are decoded."""
        return self.summarize(series, start, end, None).bars

    def any_expired(self, series: SeriesKey, start: datetime, end: datetime, now: datetime) -> bool:
        """Whether a not-final bar in [start, end) has expired at `now` (open segments only)."""
        # Equal on the first three key columns only, the rest compared here: with the whole key
        # SQLite (which has no statistics) takes the unique key's index instead of the partial
        # one, and reads every segment of the series; the open ones are a few.
        statement = (
            select(SEGMENTS.c.id, *(SEGMENTS.c[name] for name in SERIES_IDENTITY_COLUMNS))
            .where(
                _open_segments(),
                SEGMENTS.c.symbol == series.symbol,
                SEGMENTS.c.exchange == series.exchange,
                SEGMENTS.c.data_type == series.data_type,
                SEGMENTS.c.timestamp >= _minus(start, _segment_span(series)),
                SEGMENTS.c.timestamp < end,
                SEGMENTS.c.last_bar_at >= start,
                SEGMENTS.c.expires_at <= now,
            )
            .order_by(SEGMENTS.c.timestamp)
        )
        with self.database.read_engine.connect() as connection:
            ids = [
                row.id
                for row in connection.execute(statement)
                if all(getattr(row, n) == getattr(series, n) for n in SERIES_IDENTITY_COLUMNS)
            ]
        if not ids:
            return False
        for segment in self._segments_by_id(series, ids):
            inside = _range_mask(segment.columns, start, end)
            if np.any(_expired_mask(segment, datetime_to_ns(now)) & inside):
                return True
        return False

    def summarize(
        self, series: SeriesKey, start: datetime, end: datetime, now: datetime | None
    ) -> CacheSummary:
        """Counts and fetched_at range of the cached bars in [start, end); fresh at `now`.

        A segment inside the range is counted from its row; one the range cuts through is
        decoded. Most ranges cut at most the first and the last segment.
        """
        with self.database.read_engine.connect() as connection:
            spans = self._fetch_rows(connection, READ_SPANS, _range_params(series, start, end))
        bars = fresh = 0
        fetched: list[datetime] = []
        cut_ids = []
        for segment_id, first_at, last_at, count, meta, is_final, expires_at in spans:
            if first_at < start or last_at >= end:
                cut_ids.append(segment_id)
                continue
            bars += count
            if _is_fresh(is_final, expires_at, now):
                fresh += count
            fetched.extend(datetime.fromisoformat(f["fetched_at"]) for f in meta["fetches"])
        if cut_ids:
            expiry = {row[0]: (row[5], row[6]) for row in spans}
            for segment in self._segments_by_id(series, cut_ids):
                inside = _range_mask(segment.columns, start, end)
                held = int(inside.sum())
                if not held:
                    continue
                bars += held
                if _is_fresh(*expiry[segment.id], now):
                    fresh += held
                used = np.unique(segment.fetch_index[inside])
                fetched.extend(segment.fetches[int(i)].fetched_at for i in used)
        return CacheSummary(
            bars, fresh, min(fetched) if fetched else None, max(fetched) if fetched else None
        )

    def fresh_timestamps(
        self, series: SeriesKey, start: datetime, end: datetime, now: datetime | None
    ) -> set[datetime]:
        """Start times of the fresh cached bars in [start, end) (all of them when now is None)."""
        with self.database.read_engine.connect() as connection:
            rows = connection.execute(
                select(SEGMENTS.c.ohlcv_data, SEGMENTS.c.is_final, SEGMENTS.c.expires_at)
                .where(*_overlapping(series, start, end))
                .order_by(SEGMENTS.c.timestamp)
            ).all()
        columns, _ = decode_segments(
            [blob for blob, is_final, expires_at in rows if _is_fresh(is_final, expires_at, now)]
        )
        return set(_cut(columns, start, end).timestamps())

    def empty_ranges(
        self, series: SeriesKey, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        statement = (
            select(COVERAGE.c.range_start, COVERAGE.c.range_end)
            .where(
                *_key(series, COVERAGE),
                COVERAGE.c.range_end > start,
                COVERAGE.c.range_start < end,
            )
            .order_by(COVERAGE.c.range_start)
        )
        with self.database.read_engine.connect() as connection:
            return [(row[0], row[1]) for row in connection.execute(statement)]

    def list_bars(
        self, bar_filter: BarFilter, limit: int, offset: int
    ) -> tuple[list[SegmentSlice], int]:
        """One page of matching bars, as slices of their segments, and the total that match.

        Bars are ordered by symbol, bar size, exchange and time. The segments' rows give the
        counts; only segments the date filter cuts through, and those on the page, are decoded.
        """
        conditions = [*_key_filter(bar_filter, SEGMENTS), *_date_overlap(bar_filter)]
        statement = (
            select(
                SEGMENTS.c.id,
                *(SEGMENTS.c[name] for name in SERIES_KEY_COLUMNS),
                SEGMENTS.c.timestamp,
                SEGMENTS.c.last_bar_at,
                SEGMENTS.c.bar_count,
            )
            .where(*conditions)
            .order_by(
                SEGMENTS.c.symbol,
                SEGMENTS.c.data_type,
                SEGMENTS.c.exchange,
                *(SEGMENTS.c[name] for name in SERIES_IDENTITY_COLUMNS),
                SEGMENTS.c.timestamp,
            )
        )
        page: list[SegmentSlice] = []
        total = 0
        with self.database.read_engine.connect() as connection:
            spans = connection.execute(statement).all()
            for span in spans:
                cut = _cut_by_filter(bar_filter, span.timestamp, span.last_bar_at)
                segment = None
                if cut or (total + span.bar_count > offset and total < offset + limit):
                    segment = self._segment_by_id(connection, span)
                if segment is None:
                    total += span.bar_count
                    continue
                positions = np.flatnonzero(_filter_mask(segment.columns, bar_filter))
                wanted_from = max(0, offset - total)
                wanted_to = max(0, offset + limit - total)
                chosen = positions[wanted_from:wanted_to]
                if len(chosen):
                    page.append(SegmentSlice(segment, int(chosen[0]), int(chosen[-1]) + 1))
                total += len(positions)
        return page, total

    def cached_exchanges(self, symbol: str, data_type: str, **identity: Any) -> list[str]:
        """Exchanges the cache holds bars of this symbol and bar size for, alphabetically;
        identity (sec_type=..., what_to_show=..., as BarFilter names them) narrows the series."""
        bar_filter = BarFilter(symbol=symbol, data_type=data_type, **identity)
        statement = (
            select(SUMMARIES.c.exchange)
            .where(*_key_filter(bar_filter, SUMMARIES))
            .distinct()
            .order_by(SUMMARIES.c.exchange)
        )
        with self.database.read_engine.connect() as connection:
            return list(connection.execute(statement).scalars())

    def series_summaries(self, now: datetime) -> list[dict[str, Any]]:
        """Per series: bar count, first and last bar, last update, and bars expired at `now`.

        Read from the summary rows and the open segments' index: the cost grows with the number
        of series and of segments not yet final, not with the bars cached.
        """
        expired_segments = (
            select(*(SEGMENTS.c[name] for name in SERIES_KEY_COLUMNS), *_SEGMENT_COLUMNS)
            .where(_open_segments(), SEGMENTS.c.expires_at <= now)
            .subquery("expired")
        )
        # Joined on the first three key columns, the rest compared below: on the whole key
        # SQLite (no statistics) leaves the open-segments index and reads every segment.
        same_series = and_(
            *(SUMMARIES.c[name] == expired_segments.c[name] for name in _KEY_COLUMNS[:3])
        )
        # One statement, so the counts and the expiry come from the same snapshot: a row per
        # series, and one more per expired segment it has.
        statement = (
            select(
                *(SUMMARIES.c[name] for name in SERIES_KEY_COLUMNS),
                SUMMARIES.c.con_id,
                SUMMARIES.c.bar_count,
                SUMMARIES.c.first_bar_at.label("first"),
                SUMMARIES.c.last_bar_at.label("last"),
                SUMMARIES.c.last_fetched_at.label("last_updated"),
                *(expired_segments.c[column.name] for column in _SEGMENT_COLUMNS),
                *(
                    expired_segments.c[name].label(f"segment_{name}")
                    for name in SERIES_IDENTITY_COLUMNS
                ),
            )
            .select_from(SUMMARIES.outerjoin(expired_segments, same_series))
            .order_by(
                SUMMARIES.c.symbol,
                SUMMARIES.c.data_type,
                SUMMARIES.c.exchange,
                *(SUMMARIES.c[name] for name in SERIES_IDENTITY_COLUMNS),
            )
        )
        summaries: dict[tuple, dict[str, Any]] = {}
        with self.database.read_engine.connect() as connection:
            for row in connection.execute(statement):
                series = _series_of(row)
                summary = summaries.setdefault(
                    series,
                    {
                        **_key_values(series),
                        "con_id": row.con_id,
                        "bar_count": row.bar_count,
                        "first": row.first,
                        "last": row.last,
                        "last_updated": row.last_updated,
                        "expired_count": 0,
                    },
                )
                if row.id is not None and all(
                    getattr(row, f"segment_{name}") == getattr(series, name)
                    for name in SERIES_IDENTITY_COLUMNS
                ):
                    segment = _decode(series, row)
                    expired = _expired_mask(segment, datetime_to_ns(now))
                    summary["expired_count"] += int(expired.sum())
        return list(summaries.values())

    # -- writes ---------------------------------------------------------------------------------

    def store_chunk(
        self,
        series: SeriesKey,
        bars: BarColumns,
        fetch: Fetch,
        empty_ranges: Sequence[tuple[datetime, datetime]] = (),
        empty_reason: str | None = None,
    ) -> int:
        """Merge one fetched chunk into its segments, and record its confirmed-empty ranges, in a
        single transaction; return the bars stored.

        A fetched bar replaces the cached bar with its start time; other cached bars of the
        segment stay. The series' summary is brought up to date in the same transaction.
        """
        with self.database.engine.begin() as connection:
            if len(bars):
                # Locked first: the writers of a series then take turns, so the figures stay exact.
                summary = self._lock_summary(connection, series)
                _check_same_contract(series, summary, fetch)
                added = self._merge_segments(connection, series, bars, fetch)
                self._summarize_upsert(
                    connection, series, summary, bars, added, fetch.fetched_at, fetch.con_id
                )
            if empty_ranges:
                self._record_empty(
                    connection, series, empty_ranges, empty_reason or "", fetch.fetched_at
                )
            self._bump_stats(connection, series, {"last_refresh_at": fetch.fetched_at})
        return len(bars)

    def _merge_segments(
        self, connection: Connection, series: SeriesKey, bars: BarColumns, fetch: Fetch
    ) -> int:
        """Upsert each segment the bars fall in, with them merged into what it held: one
        statement reads the segments, one inserts the new ones, one updates the others. Returns
        how many bars are new."""
        runs: dict[date, list[tuple[int, int]]] = {}
        for segment_date, first, stop in market_calendar.segment_runs(
            series.market, BarSize(series.data_type), bars.timestamp
        ):
            runs.setdefault(segment_date, []).append((first, stop))
        held = {
            row.segment_date: _decode(series, row)
            for row in connection.execute(
                select(*_SEGMENT_COLUMNS).where(
                    *_key(series, SEGMENTS), SEGMENTS.c.segment_date.in_(list(runs))
                )
            )
        }
        # Bars in time order give each new segment one run of them: those are encoded together.
        new_dates = [day for day, parts in runs.items() if day not in held and len(parts) == 1]
        new_bounds = [runs[day][0] for day in new_dates]
        encoded = dict(
            zip(
                new_dates,
                encode_segments(bars, np.zeros(len(bars), np.uint16), new_bounds),
                strict=True,
            )
        )
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        added = 0
        for segment_date, parts in runs.items():
            part = bars.take(np.concatenate([np.arange(first, stop) for first, stop in parts]))
            old = held.get(segment_date)
            if old is None:
                values = _segment_values(
                    part,
                    np.zeros(len(part), dtype=np.uint16),
                    [fetch],
                    fetch.fetched_at,
                    encoded.get(segment_date),
                )
                inserts.append(
                    {
                        **_key_values(series),
                        "segment_date": segment_date,
                        "indicators": None,
                        "created_at": fetch.fetched_at,
                        **values,
                    }
                )
                added += len(part)
                continue
            # The fetched bars replace cached ones with the same start; each bar keeps naming
            # its fetch, and only the fetches some bar still comes from are kept.
            replaced = np.isin(old.columns.timestamp, part.timestamp)
            if series.data_type in YEAR_SEGMENTS:
                replaced |= _superseded_period_bars(old.columns, part)
            merged = old.columns.take(~replaced).merged_with(part)
            tags = np.full(len(merged), len(old.fetches), dtype=np.uint16)
            tags[~np.isin(merged.timestamp, part.timestamp)] = old.fetch_index[~replaced]
            fetches, tags = _prune_fetches([*old.fetches, fetch], tags)
            # The bars it kept are on this fetch's basis too: the service compared them with
            # IBKR's answer (or no session opened, so no action took effect) before storing.
            values = _segment_values(merged, tags, fetches, fetch.fetched_at)
            updates.append({"segment_id": old.id, **{f"new_{k}": v for k, v in values.items()}})
            added += len(merged) - len(old.columns)
        if inserts:
            connection.execute(insert(SEGMENTS), inserts)
        if updates:
            connection.execute(UPDATE_SEGMENT, updates)
        return added

    def _update_segment(
        self,
        connection: Connection,
        segment_id: int,
        bars: BarColumns,
        fetch_index: np.ndarray,
        fetches: list[Fetch],
        price_basis_at: datetime,
    ) -> None:
        values = _segment_values(bars, fetch_index, fetches, price_basis_at)
        connection.execute(
            UPDATE_SEGMENT,
            {"segment_id": segment_id, **{f"new_{k}": v for k, v in values.items()}},
        )

    # -- series summaries -----------------------------------------------------------------------

    def _lock_summary(self, connection: Connection, series: SeriesKey) -> SeriesSummary:
        """The series' summary row, created if missing and locked until the transaction ends."""
        insert_summary = self._insert(SUMMARIES).values(**_key_values(series), bar_count=0)
        statement = insert_summary.on_conflict_do_update(
            index_elements=list(SERIES_KEY_COLUMNS),
            set_={"bar_count": SUMMARIES.c.bar_count},
        ).returning(*_SUMMARY_COLUMNS)
        return SeriesSummary(*connection.execute(statement).one())

    def _summarize_upsert(
        self,
        connection: Connection,
        series: SeriesKey,
        summary: SeriesSummary,
        bars: BarColumns,
        added: int,
        fetched_at: datetime,
        con_id: int | None = None,
    ) -> None:
        first, last = bars.first_at(), bars.last_at()
        last_fetched_at = fetched_at
        if summary.bar_count:
            first = min(first, summary.first_bar_at or first)
            last = max(last, summary.last_bar_at or last)
            if summary.last_fetched_at is not None and summary.last_fetched_at > fetched_at:
                # Written with an older fetch time than the series already had (a clock set
                # back): the bars it replaced may have held the latest one, so look.
                last_fetched_at = self._latest_fetch(connection, series)
        connection.execute(
            update(SUMMARIES)
            .where(*_key(series, SUMMARIES))
            .values(
                bar_count=summary.bar_count + added,
                first_bar_at=first,
                last_bar_at=last,
                last_fetched_at=last_fetched_at,
                con_id=con_id if con_id is not None else summary.con_id,
                # The first bars of a series set its basis; later fetches keep it until the
                # service confirms the cached bars unchanged (confirm_basis) or heals them.
                basis_at=summary.basis_at if summary.bar_count else fetched_at,
            )
        )

    @staticmethod
    def _latest_fetch(connection: Connection, series: SeriesKey) -> datetime | None:
        return connection.execute(
            select(func.max(SEGMENTS.c.fetched_at)).where(*_key(series, SEGMENTS))
        ).scalar_one()

    def _lock_summaries(self, connection: Connection, bar_filter: BarFilter) -> list[Row]:
        """Lock the summaries of the series that may hold matching bars; returned in key order.

        An UPDATE, not a SELECT: on SQLite the first statement of a transaction must write for
        the transaction to hold the write lock from the start.
        """
        statement = (
            update(SUMMARIES)
            .where(*_summary_conditions(bar_filter))
            .values(bar_count=SUMMARIES.c.bar_count)
            .returning(*(SUMMARIES.c[name] for name in SERIES_KEY_COLUMNS), *_SUMMARY_COLUMNS)
        )
        rows = connection.execute(statement).all()
        return sorted(rows, key=lambda row: tuple(getattr(row, n) for n in SERIES_KEY_COLUMNS))

    def _delete_series_bars(self, connection: Connection, row: Row, bar_filter: BarFilter) -> int:
        """Delete one series' matching bars and correct its summary; return the bars deleted.

        Segments the filter covers are deleted whole; one it cuts through is rewritten with the
        bars outside the filter.
        """
        series = _series_of(row)
        conditions = [*_key(series, SEGMENTS), *_date_overlap(bar_filter)]
        spans = connection.execute(
            select(
                SEGMENTS.c.id, SEGMENTS.c.timestamp, SEGMENTS.c.last_bar_at, SEGMENTS.c.bar_count
            ).where(*conditions)
        ).all()
        deleted = 0
        whole = {
            span.id: span.bar_count for span in spans if not _cut_by_filter(bar_filter, *span[1:3])
        }
        if whole:
            deleted += sum(whole.values())
            connection.execute(delete(SEGMENTS).where(SEGMENTS.c.id.in_(list(whole))))
        for span in spans:
            if span.id in whole:
                continue
            segment = self._segment_by_id(connection, span, series)
            keep = ~_filter_mask(segment.columns, bar_filter)
            removed = int((~keep).sum())
            if not removed:
                continue
            deleted += removed
            if not keep.any():
                connection.execute(delete(SEGMENTS).where(SEGMENTS.c.id == segment.id))
                continue
            fetches, tags = _prune_fetches(segment.fetches, segment.fetch_index[keep])
            self._update_segment(
                connection,
                segment.id,
                segment.columns.take(keep),
                tags,
                fetches,
                segment.price_basis_at,
            )
        if deleted == 0:
            return 0
        key = _key(series, SUMMARIES)
        if deleted >= row.bar_count:
            connection.execute(delete(SUMMARIES).where(*key))
            return deleted
        in_series = _key(series, SEGMENTS)
        # min and max one at a time: each is then one step down an index.
        first = connection.execute(
            select(func.min(SEGMENTS.c.timestamp)).where(*in_series)
        ).scalar()
        last = connection.execute(
            select(func.max(SEGMENTS.c.last_bar_at)).where(*in_series)
        ).scalar()
        connection.execute(
            update(SUMMARIES)
            .where(*key)
            .values(
                bar_count=row.bar_count - deleted,
                first_bar_at=first,
                last_bar_at=last,
                last_fetched_at=self._latest_fetch(connection, series),
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
        insert_range = self._insert(COVERAGE)
        statement = insert_range.on_conflict_do_update(
            index_elements=[*SERIES_KEY_COLUMNS, "range_start"],
            set_={
                "range_end": insert_range.excluded.range_end,
                "reason": insert_range.excluded.reason,
                "checked_at": insert_range.excluded.checked_at,
            },
        )
        connection.execute(
            statement,
            [
                {
                    **_key_values(series),
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
                coverage = _key_filter(bar_filter, COVERAGE)
                connection.execute(delete(COVERAGE).where(*coverage))
        return int(deleted or 0)

    def matches_every_bar(self, bar_filter: BarFilter) -> bool:
        """Whether the cache holds bars and the filter matches each one (from the summaries)."""
        inside = _key_filter(bar_filter, SUMMARIES)
        if bar_filter.date_from is not None:
            inside.append(SUMMARIES.c.first_bar_at >= bar_filter.date_from)
        if bar_filter.date_to is not None:
            inside.append(SUMMARIES.c.last_bar_at <= bar_filter.date_to)
        count = select(func.count()).select_from(SUMMARIES)
        with self.database.read_engine.connect() as connection:
            held = connection.execute(count).scalar_one()
            matched = connection.execute(count.where(*inside)).scalar_one()
        return held > 0 and matched == held

    # -- price basis: corporate actions ---------------------------------------------------------

    def anchor_bars(self, series: SeriesKey, before: datetime, count: int = 2) -> BarColumns:
        """Up to `count` of the series' latest final bars starting before `before`: what the
        service asks IBKR for again to see whether the price basis changed."""
        statement = (
            select(*_SEGMENT_COLUMNS)
            .where(*_key(series, SEGMENTS), SEGMENTS.c.timestamp < before)
            .order_by(SEGMENTS.c.timestamp.desc())
            .limit(2)
        )
        with self.database.read_engine.connect() as connection:
            segments = [_decode(series, row) for row in connection.execute(statement)]
        if not segments:
            return BarColumns.empty()
        columns = BarColumns.concat([segment.columns for segment in reversed(segments)])
        final = columns.take(columns.is_final & (columns.timestamp < datetime_to_ns(before)))
        return final.take(np.arange(max(0, len(final) - count), len(final)))

    def sample_segments(self, series: SeriesKey, count: int) -> list[Segment]:
        """Up to `count` of the series' final segments spread over its cached range (the first,
        the last and evenly between): what a verify run asks IBKR for again."""
        spans = (
            select(SEGMENTS.c.id)
            .where(*_key(series, SEGMENTS), SEGMENTS.c.is_final)
            .order_by(SEGMENTS.c.timestamp)
        )
        with self.database.read_engine.connect() as connection:
            ids = list(connection.execute(spans).scalars())
        if not ids or count < 1:
            return []
        spread = {round(i * (len(ids) - 1) / max(1, count - 1)) for i in range(count)}
        return list(self._segments_by_id(series, [ids[i] for i in sorted(spread)]))

    def confirm_basis(self, series: SeriesKey, at: datetime) -> None:
        """The series' cached bars were found unchanged by IBKR's answer at `at`."""
        with self.database.engine.begin() as connection:
            connection.execute(
                update(SUMMARIES).where(*_key(series, SUMMARIES)).values(basis_at=at)
            )

    def rescale_series(self, series: SeriesKey, factor: float, action: dict[str, Any]) -> int:
        """Bring every cached bar of the series to a new basis after a split of `factor`
        (prices divided by it, volumes multiplied), record the action, all in one transaction;
        return the bars rewritten."""
        with self.database.engine.begin() as connection:
            summary = self._lock_summary(connection, series)
            rows = connection.execute(
                select(*_SEGMENT_COLUMNS).where(*_key(series, SEGMENTS))
            ).all()
            updates, changed = [], 0
            for row in rows:
                segment = _decode(series, row)
                held = segment.columns
                scaled = replace(
                    held,
                    open=_rescaled(held.open / factor),
                    high=_rescaled(held.high / factor),
                    low=_rescaled(held.low / factor),
                    close=_rescaled(held.close / factor),
                    wap=_rescaled(held.wap / factor),
                    volume=_rescaled(held.volume * factor),
                )
                values = _segment_values(
                    scaled, segment.fetch_index, segment.fetches, action["detected_at"]
                )
                updates.append(
                    {"segment_id": segment.id, **{f"new_{k}": v for k, v in values.items()}}
                )
                changed += len(scaled)
            if updates:
                connection.execute(UPDATE_SEGMENT, updates)
            self._record_action(connection, series, summary, action, changed)
        return changed

    def drop_for_refetch(self, series: SeriesKey, action: dict[str, Any]) -> SeriesSummary | None:
        """Delete every cached bar of the series (its basis changed by a factor that cannot be
        trusted: they are fetched again) and record the action, in one transaction; returns
        what the series held."""
        with self.database.engine.begin() as connection:
            summary = self._lock_summary(connection, series)
            connection.execute(delete(SEGMENTS).where(*_key(series, SEGMENTS)))
            connection.execute(delete(COVERAGE).where(*_key(series, COVERAGE)))
            self._record_action(connection, series, summary, action, summary.bar_count)
            connection.execute(delete(SUMMARIES).where(*_key(series, SUMMARIES)))
        return summary

    def _record_action(
        self,
        connection: Connection,
        series: SeriesKey,
        summary: SeriesSummary,
        action: dict[str, Any],
        bars_changed: int,
    ) -> None:
        connection.execute(
            insert(ACTIONS).values(
                **_key_values(series),
                **action,
                bars_changed=bars_changed,
                basis_from=summary.basis_at,
                basis_to=action["detected_at"],
            )
        )
        connection.execute(
            update(SUMMARIES).where(*_key(series, SUMMARIES)).values(basis_at=action["detected_at"])
        )

    def corporate_actions(self, bar_filter: BarFilter | None = None) -> list[CorporateAction]:
        """Every action detected, newest first (of the filter's series)."""
        conditions = _key_filter(bar_filter, ACTIONS) if bar_filter else []
        with self.database.session() as session:
            return list(
                session.execute(
                    select(CorporateAction)
                    .where(*conditions)
                    .order_by(CorporateAction.detected_at.desc(), CorporateAction.id.desc())
                ).scalars()
            )

    # -- head timestamps ------------------------------------------------------------------------

    def head_timestamp(self, con_id: int, what_to_show: str, use_rth: bool) -> datetime | None:
        """The first bar IBKR has of the contract's series, as recorded; None if never asked."""
        statement = select(HEADS.c.head_at).where(
            HEADS.c.con_id == con_id,
            HEADS.c.what_to_show == what_to_show,
            HEADS.c.use_rth == use_rth,
        )
        with self.database.read_engine.connect() as connection:
            return connection.execute(statement).scalar_one_or_none()

    def record_head_timestamp(
        self, con_id: int, what_to_show: str, use_rth: bool, head_at: datetime, checked_at: datetime
    ) -> None:
        insert_head = self._insert(HEADS).values(
            con_id=con_id,
            what_to_show=what_to_show,
            use_rth=use_rth,
            head_at=head_at,
            checked_at=checked_at,
        )
        statement = insert_head.on_conflict_do_update(
            index_elements=["con_id", "what_to_show", "use_rth"],
            set_={"head_at": insert_head.excluded.head_at, "checked_at": checked_at},
        )
        with self.database.engine.begin() as connection:
            connection.execute(statement)

    # -- statistics -----------------------------------------------------------------------------

    def add_lookup_tallies(self, tallies: dict[SeriesKey, LookupTally]) -> None:
        """Add each series' tally to its stored counters, all in one transaction."""
        with self.database.engine.begin() as connection:
            connection.execute(
                self._stats_upsert,
                [
                    {
                        **_key_values(series),
                        **{OUTCOME_COLUMNS[o]: n for o, n in tally.counts.items()},
                        **{name: None for name in _STATS_TIMES},
                        "last_hit_at": tally.last_hit_at,
                    }
                    for series, tally in tallies.items()
                ],
            )

    def _bump_stats(
        self, connection: Connection, series: SeriesKey, values: dict[str, Any]
    ) -> None:
        params = {
            **_key_values(series),
            **{name: values.get(name, 0) for name in OUTCOME_COLUMNS.values()},
            **{name: values.get(name) for name in _STATS_TIMES},
        }
        connection.execute(self._stats_upsert, params)

    @cached_property
    def _stats_upsert(self):
        """Add to a series' counters and move its times to those given if later (None: stays).

        Built once: every cache lookup runs it, and building it costs more than running it."""
        insert_stats = self._insert(STATS).values(
            {name: bindparam(name) for name in (*_KEY_COLUMNS, *OUTCOME_COLUMNS.values())}
            | {name: bindparam(name, type_=STATS.c[name].type) for name in _STATS_TIMES}
        )
        updates: dict[str, Any] = {
            name: STATS.c[name] + insert_stats.excluded[name] for name in OUTCOME_COLUMNS.values()
        }
        # The later of the stored and the given time: writes from several threads or processes
        # arrive in any order, and an older one must not move a "last" time back.
        updates |= {
            name: case(
                (
                    or_(STATS.c[name].is_(None), insert_stats.excluded[name] > STATS.c[name]),
                    insert_stats.excluded[name],
                ),
                else_=STATS.c[name],
            )
            for name in _STATS_TIMES
        }
        return insert_stats.on_conflict_do_update(index_elements=list(_KEY_COLUMNS), set_=updates)

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

    def _fetch_rows(self, connection: Connection, statement, params: dict[str, Any]) -> list:
        if connection.dialect.name != "postgresql":
            return connection.execute(statement, params).all()
        # Straight from psycopg, in binary: SQLAlchemy's per-row result processing costs more
        # than the query for the few hundred segments of a year, and a UTC session returns
        # aware UTC datetimes already.
        key = id(statement)
        if key not in self._compiled_reads:
            self._compiled_reads[key] = str(statement.compile(dialect=connection.dialect))
        cursor = connection.connection.driver_connection.cursor(binary=True)
        return cursor.execute(self._compiled_reads[key], params).fetchall()

    def _segments_by_id(self, series: SeriesKey, ids: list[int]) -> Iterator[Segment]:
        statement = (
            select(*_SEGMENT_COLUMNS).where(SEGMENTS.c.id.in_(ids)).order_by(SEGMENTS.c.timestamp)
        )
        with self.database.read_engine.connect() as connection:
            rows = connection.execute(statement).all()
        return (_decode(series, row) for row in rows)

    @staticmethod
    def _segment_by_id(
        connection: Connection, span: Row, series: SeriesKey | None = None
    ) -> Segment:
        row = connection.execute(select(*_SEGMENT_COLUMNS).where(SEGMENTS.c.id == span.id)).one()
        if series is None:
            series = _series_of(span)
        return _decode(series, row)


# -- helpers ------------------------------------------------------------------------------------


def _range_params(series: SeriesKey, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        **_key_values(series),
        "scan_from": _minus(start, _segment_span(series)),
        "start": start,
        "end": end,
    }


def _minus(moment: datetime, span: timedelta) -> datetime:
    try:
        return moment - span
    except OverflowError:
        return moment


def _overlapping(series: SeriesKey, start: datetime, end: datetime) -> list:
    return [
        *_key(series, SEGMENTS),
        SEGMENTS.c.timestamp >= _minus(start, _segment_span(series)),
        SEGMENTS.c.timestamp < end,
        SEGMENTS.c.last_bar_at >= start,
    ]


class ContractChanged(ValueError):
    """Bars of one series key fetched from another contract than the cached ones: the key now
    names a different instrument (a ticker reassigned), and the two must not be mixed."""


def _check_same_contract(series: SeriesKey, summary: SeriesSummary, fetch: Fetch) -> None:
    # A continuous future's contract is the front one and changes at every roll.
    if series.sec_type == "CONTFUT" or None in (summary.con_id, fetch.con_id):
        return
    if summary.bar_count and summary.con_id != fetch.con_id:
        raise ContractChanged(
            f"{series.label()}: IBKR now answers with contract {fetch.con_id}, the cached bars"
            f" came from contract {summary.con_id}; delete the cached series"
            " (DELETE /api/market-data/cache with its filters) before caching the new one"
        )


def _superseded_period_bars(held: BarColumns, fetched: BarColumns) -> np.ndarray:
    """Held weekly or monthly bars a fetch replaces without sharing their time: the bar of a
    period in progress is dated by its latest session so far (a Wednesday, then the Friday), so
    a later fetch of the period answers with a later date. Only a bar not final can move, and
    only within the fetched span (and a month before it, the longest a period reaches back)."""
    reach = np.int64(31 * 86_400 * 10**9)
    first, last = fetched.timestamp[0] - reach, fetched.timestamp[-1]
    in_span = (held.timestamp >= first) & (held.timestamp <= last)
    return in_span & ~held.is_final & ~np.isin(held.timestamp, fetched.timestamp)


def _segment_span(series: SeriesKey) -> timedelta:
    """The longest a segment of the series can span: a year for weekly and monthly bars."""
    return LONG_SEGMENT_SPAN if series.data_type in YEAR_SEGMENTS else MAX_SEGMENT_SPAN


def _key_values(series: SeriesKey) -> dict[str, Any]:
    return {name: getattr(series, name) for name in SERIES_KEY_COLUMNS}


def _series_of(row: Any) -> SeriesKey:
    """The series a row with the key columns belongs to."""
    return SeriesKey(**{name: getattr(row, name) for name in SERIES_KEY_COLUMNS})


def _key(series: SeriesKey, table) -> list:
    """The series' rows in a table keyed by SERIES_KEY_COLUMNS."""
    return [table.c[name] == getattr(series, name) for name in SERIES_KEY_COLUMNS]


def _key_filter(bar_filter: BarFilter, table) -> list:
    """The key fields the filter names, on a table keyed by SERIES_KEY_COLUMNS."""
    return [
        table.c[name] == getattr(bar_filter, name)
        for name in SERIES_KEY_COLUMNS
        if getattr(bar_filter, name) is not None
    ]


def _summary_conditions(bar_filter: BarFilter) -> list:
    """Summaries of the series that may hold bars matching the filter."""
    conditions = _key_filter(bar_filter, SUMMARIES)
    if bar_filter.date_from is not None:
        conditions.append(SUMMARIES.c.last_bar_at >= bar_filter.date_from)
    if bar_filter.date_to is not None:
        conditions.append(SUMMARIES.c.first_bar_at <= bar_filter.date_to)
    return conditions


def _date_overlap(bar_filter: BarFilter) -> list:
    """Segments holding a bar in the filter's dates (both ends inclusive)."""
    conditions = []
    if bar_filter.date_from is not None:
        conditions.append(SEGMENTS.c.last_bar_at >= bar_filter.date_from)
    if bar_filter.date_to is not None:
        conditions.append(SEGMENTS.c.timestamp <= bar_filter.date_to)
    return conditions


def _cut_by_filter(bar_filter: BarFilter, first_at: datetime, last_at: datetime) -> bool:
    """Whether the filter's dates cut through a segment spanning [first_at, last_at]."""
    return (bar_filter.date_from is not None and first_at < bar_filter.date_from) or (
        bar_filter.date_to is not None and last_at > bar_filter.date_to
    )


def _filter_mask(columns: BarColumns, bar_filter: BarFilter) -> np.ndarray:
    mask = np.ones(len(columns), dtype=bool)
    if bar_filter.date_from is not None:
        mask &= columns.timestamp >= datetime_to_ns(bar_filter.date_from)
    if bar_filter.date_to is not None:
        mask &= columns.timestamp <= datetime_to_ns(bar_filter.date_to)
    return mask


def _range_mask(columns: BarColumns, start: datetime, end: datetime) -> np.ndarray:
    return (columns.timestamp >= datetime_to_ns(start)) & (columns.timestamp < datetime_to_ns(end))


def _cut(columns: BarColumns, start: datetime, end: datetime) -> BarColumns:
    """The bars in [start, end), for the first and last segment of a range read."""
    if not len(columns):
        return columns
    if columns.timestamp[0] >= datetime_to_ns(start) and columns.timestamp[-1] < datetime_to_ns(
        end
    ):
        return columns
    return columns.between(start, end)


def _is_fresh(is_final: bool, expires_at: datetime, now: datetime | None) -> bool:
    """A final segment never expires; an open one is fresh until its expires_at."""
    return now is None or bool(is_final) or expires_at > now


def _expired_mask(segment: Segment, now_ns: int) -> np.ndarray:
    """Bars that were not final when fetched and whose fetch has passed its TTL."""
    return ~segment.columns.is_final & (segment.expires_at_ns() <= now_ns)


def _decode(series: SeriesKey, row: Row) -> Segment:
    columns, fetch_index = decode_segment(row.ohlcv_data)
    fetches = [Fetch.from_json(f) for f in row.metadata["fetches"]]
    return Segment(
        id=row.id,
        series=series,
        segment_date=row.segment_date,
        columns=columns,
        fetch_index=fetch_index,
        fetches=fetches,
        indicators=row.indicators,
        price_basis_at=_price_basis_at(row.metadata, fetches),
    )


def _prune_fetches(fetches: list[Fetch], tags: np.ndarray) -> tuple[list[Fetch], np.ndarray]:
    """Only the fetches some bar still comes from, with the bars' tags renumbered to match."""
    used = np.unique(tags)
    renumber = np.zeros(len(fetches), dtype=np.uint16)
    renumber[used] = np.arange(len(used), dtype=np.uint16)
    return [fetches[int(i)] for i in used], renumber[tags]


def _price_basis_at(metadata: dict[str, Any], fetches: list[Fetch]) -> datetime:
    """The segment's recorded basis; a segment stored before bases were recorded per segment is
    on the basis of its latest fetch (no split was healed since, or it would carry one)."""
    recorded = metadata.get("price_basis_at")
    if recorded is not None:
        return datetime.fromisoformat(recorded)
    return max(f.fetched_at for f in fetches)


def _rescaled(values: np.ndarray) -> np.ndarray:
    """Values divided or multiplied by a split ratio, without the float noise of the operation
    (578.8 / 10 is 57.879999999999995): a healed bar then equals the one IBKR sends after the
    split. Prices carry far fewer than 9 decimals, so rounding there loses nothing."""
    return np.round(values, 9)


def _segment_values(
    bars: BarColumns,
    fetch_index: np.ndarray,
    fetches: list[Fetch],
    price_basis_at: datetime,
    encoded: bytes | None = None,
) -> dict[str, Any]:
    """A segment's stored columns, derived from its bars and their fetches (and the bars'
    encoding, when it was made with other segments')."""
    all_final = bool(bars.is_final.all())
    open_fetches = {int(i) for i in np.unique(fetch_index[~bars.is_final])}
    latest = max(fetches, key=lambda f: f.fetched_at)
    if all_final:
        expires_at = latest.expires_at
    else:
        expires_at = min(fetches[i].expires_at for i in open_fetches)
    return {
        "timestamp": bars.first_at(),
        "last_bar_at": bars.last_at(),
        "bar_count": len(bars),
        "ohlcv_data": encode_segment(bars, fetch_index) if encoded is None else encoded,
        "is_final": all_final,
        "metadata": {
            "fetches": [f.to_json() for f in fetches],
            "format": FORMAT_VERSION,
            "price_basis_at": price_basis_at.isoformat(),
        },
        "first_fetched_at": min(f.fetched_at for f in fetches),
        "fetched_at": latest.fetched_at,
        "expires_at": expires_at,
        "updated_at": latest.fetched_at,
    }
