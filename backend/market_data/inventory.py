"""What the cache holds: pages of stored bars, one series by the page or whole, clearing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import numpy as np

from backend.config.settings import cache_symbol_entry
from backend.market_data.bar_columns import BarColumns
from backend.market_data.domain import (
    DEFAULT_DAYS_BACK,
    MAX_DAYS_BACK,
    SERIES_PAGE_SIZE,
    BarSize,
    SeriesKey,
)
from backend.market_data.errors import NotCached
from backend.storage.market_data_repository import (
    BarFilter,
    MarketDataCacheRepository,
    SegmentSlice,
    SeriesSummary,
)

T = TypeVar("T")

EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CachedBarsPage:
    """One page of stored bars (slices of their segments), the total matching the filter, and
    when `expired` is judged."""

    slices: list[SegmentSlice]
    total: int
    as_of: datetime


@dataclass(frozen=True)
class SeriesPage:
    """One page of a series: its bars in time order, and what the whole requested range holds.

    next_after is the last bar's start when more bars follow (the next page starts after it).
    """

    series: SeriesKey
    data_type: BarSize
    bars: BarColumns
    # When the page's bars were fetched: the earliest and the latest fetch.
    fetched_from: datetime
    fetched_to: datetime
    total: int
    expired: bool
    next_after: datetime | None
    # IBKR's contract id, once the contract has been qualified.
    con_id: int | None = None


@dataclass(frozen=True)
class SeriesColumns:
    """Every bar of a series' requested range, in time order."""

    series: SeriesKey
    bars: BarColumns


class RangeTooLarge(Exception):
    """The requested range holds more bars than one answer may carry."""

    def __init__(self, series: SeriesKey, bars: int, max_bars: int) -> None:
        super().__init__(f"{series.label()}: the range holds {bars:,} bars, more than {max_bars:,}")
        self.series = series
        self.bars = bars
        self.max_bars = max_bars


def is_expired(is_final: bool, expires_at: datetime, now: datetime) -> bool:
    """Final bars are settled history and never expire; others expire at expires_at."""
    return not is_final and expires_at <= now


class CacheInventory:
    """Reads the cache only; it never contacts IBKR."""

    def __init__(
        self,
        repository: MarketDataCacheRepository,
        clock: Callable[[], datetime],
        default_exchange: str,
    ) -> None:
        self.repository = repository
        self.clock = clock
        self.default_exchange = default_exchange

    def list_bars(self, bar_filter: BarFilter, limit: int, offset: int) -> CachedBarsPage:
        slices, total = self.repository.list_bars(bar_filter, limit, offset)
        return CachedBarsPage(slices, total, self.clock())

    def delete_bars(self, bar_filter: BarFilter) -> int:
        return self.repository.delete_bars(bar_filter)

    def matches_every_bar(self, bar_filter: BarFilter) -> bool:
        return self.repository.matches_every_bar(bar_filter)

    def series(
        self,
        series: SeriesKey,
        date_from: datetime | None,
        date_to: datetime | None,
        limit: int = SERIES_PAGE_SIZE,
        after: datetime | None = None,
        *,
        any_exchange: bool = False,
    ) -> SeriesPage:
        """One page of a series in time order: at most `limit` bars, starting after `after`.

        Raise NotCached, with the command that fills it, if the range holds no bars. With
        any_exchange (the request named no exchange), the series' own exchange is tried first,
        then any other the symbol is cached for with the same contract, bar size, whatToShow and
        hours (a stock refreshed with exchange=NYSE is still found); a later page passes the
        exchange of the page it follows.
        """
        start, end = _bounds(date_from, date_to)
        page_start = start
        if after is not None:
            # Keyset paging: timestamps are stored to the microsecond.
            page_start = max(start, after + timedelta(microseconds=1))
        # One bar more than the page tells whether another page follows.
        series, slices = self._first_held(
            series,
            any_exchange,
            date_from,
            lambda series: self.repository.read_page(series, page_start, end, limit + 1),
        )
        bars = BarColumns.concat([part.columns for part in slices])
        next_after = None
        if len(bars) > limit:
            bars = bars.take(np.arange(limit))
            next_after = bars.last_at()
            slices = _without_last_bar(slices)
        fetched = [part.fetched_range() for part in slices]
        summary = self.repository.series_summary(series)
        return SeriesPage(
            series,
            series.bar_size,
            bars,
            fetched_from=min(first for first, _ in fetched),
            fetched_to=max(last for _, last in fetched),
            total=self._total(series, summary, date_from, date_to, start, end),
            expired=self.repository.any_expired(series, start, end, self.clock()),
            next_after=next_after,
            con_id=summary.con_id if summary else None,
        )

    def series_columns(
        self,
        series: SeriesKey,
        date_from: datetime | None,
        date_to: datetime | None,
        max_bars: int,
        *,
        any_exchange: bool = False,
    ) -> SeriesColumns:
        """Every bar of the range in one read, for answers that are not paged.

        The exchange is chosen as series() chooses it and NotCached raised alike. RangeTooLarge
        is raised from the segments' counts, before a bar is read, when the range holds more
        than max_bars.
        """
        start, end = _bounds(date_from, date_to)
        series, count = self._first_held(
            series,
            any_exchange,
            date_from,
            lambda series: self._total(
                series, self.repository.series_summary(series), date_from, date_to, start, end
            ),
        )
        if count > max_bars:
            raise RangeTooLarge(series, count, max_bars)
        bars = self.repository.read_columns(series, start, end)
        if not len(bars):
            # Deleted between the count and the read.
            raise self._not_cached(series, date_from)
        return SeriesColumns(series, bars)

    def _first_held(
        self,
        series: SeriesKey,
        any_exchange: bool,
        date_from: datetime | None,
        read: Callable[[SeriesKey], T],
    ) -> tuple[SeriesKey, T]:
        """The first series `read` finds bars in, and what it read; NotCached if none.

        The series as asked first; with any_exchange, then the same series on each other
        exchange the symbol is cached for.
        """
        for candidate in self._exchanges_to_try(series, any_exchange):
            held = read(candidate)
            if held:
                return candidate, held
        raise self._not_cached(series, date_from)

    def _exchanges_to_try(self, series: SeriesKey, any_exchange: bool) -> Iterator[SeriesKey]:
        """The series as asked, then, only if it holds nothing, on the others the symbol is on."""
        yield series
        if any_exchange:
            held_on = self.repository.cached_exchanges(
                series.symbol,
                series.data_type,
                sec_type=series.sec_type,
                currency=series.currency,
                expiry=series.expiry,
                what_to_show=series.what_to_show,
                use_rth=series.use_rth,
            )
            for other in held_on:
                if other != series.exchange:
                    yield replace(series, exchange=other)

    def _not_cached(self, series: SeriesKey, date_from: datetime | None) -> NotCached:
        return NotCached(
            cache_symbol_entry(series),
            series.exchange,
            series.data_type,
            self._days_back(series.bar_size, date_from),
        )

    def _total(
        self,
        series: SeriesKey,
        summary: SeriesSummary | None,
        date_from: datetime | None,
        date_to: datetime | None,
        start: datetime,
        end: datetime,
    ) -> int:
        """Bars in the requested range: the summary's count when the range spans the series."""
        if summary is None or summary.first_bar_at is None or summary.last_bar_at is None:
            return 0
        if (date_from is None or date_from <= summary.first_bar_at) and (
            date_to is None or date_to >= summary.last_bar_at
        ):
            return summary.bar_count
        return self.repository.count_bars(series, start, end)

    def _days_back(self, data_type: BarSize, date_from: datetime | None) -> int:
        if date_from is None:
            return DEFAULT_DAYS_BACK[data_type]
        days = (self.clock() - date_from).days + 1
        return min(max(days, 1), MAX_DAYS_BACK)


def _without_last_bar(slices: list[SegmentSlice]) -> list[SegmentSlice]:
    """The slices less their last bar: the one read only to learn that another page follows."""
    last = slices[-1]
    if last.stop - last.first == 1:
        return slices[:-1]
    return [*slices[:-1], SegmentSlice(last.segment, last.first, last.stop - 1)]


def _bounds(date_from: datetime | None, date_to: datetime | None) -> tuple[datetime, datetime]:
    """The [start, end) the repository reads for an inclusive date_from..date_to."""
    return date_from or EARLIEST, _exclusive_end(date_to) if date_to else LATEST


def _exclusive_end(date_to: datetime) -> datetime:
    # date_to is inclusive; the repository reads [start, end).
    try:
        return date_to + timedelta(microseconds=1)
    except OverflowError:
        return date_to
