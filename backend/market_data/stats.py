"""Cache figures for the UI: per-series summaries merged with lookup counts, and hit rates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backend.market_data.domain import BarSize, SecType, SeriesKey, WhatToShow
from backend.market_data.lookup_counts import LookupCounts
from backend.storage.market_data_repository import MarketDataCacheRepository
from backend.storage.market_data_tables import SERIES_KEY_COLUMNS, CacheSeriesStats


@dataclass(frozen=True)
class SeriesStats:
    """One series: what is cached, and how lookups against it went."""

    symbol: str
    exchange: str
    data_type: BarSize
    sec_type: SecType
    currency: str
    # A future's lastTradeDateOrContractMonth; null for every other asset class.
    expiry: str | None
    what_to_show: WhatToShow
    use_rth: bool
    # IBKR's contract id, once the contract has been qualified; null before.
    con_id: int | None
    bar_count: int
    first: datetime | None
    last: datetime | None
    last_updated: datetime | None
    expired: bool
    expired_count: int
    hits: int
    misses: int
    partial_hits: int
    stale_serves: int
    hit_rate: float | None
    last_hit_at: datetime | None
    last_refresh_at: datetime | None


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    partial_hits: int
    stale_serves: int
    hit_rate: float | None
    series: list[SeriesStats]


def hit_rate(hits: int, misses: int, partial_hits: int, stale_serves: int) -> float | None:
    """Share of lookups answered (at least in part) from fresh cached bars; None without lookups.

    A stale serve counts as a lookup but not as a hit: the gateway failed and the caller got bars
    the cache itself considered out of date.
    """
    lookups = hits + misses + partial_hits + stale_serves
    return None if lookups == 0 else (hits + partial_hits) / lookups


class CacheStatsService:
    def __init__(
        self,
        repository: MarketDataCacheRepository,
        clock: Callable[[], datetime],
        lookups: LookupCounts | None = None,
    ) -> None:
        self.repository = repository
        self.clock = clock
        self.lookups = lookups

    def stats(self) -> CacheStats:
        """Every series that has bars or lookup counts (or both), ordered by symbol and bar size."""
        if self.lookups is not None:
            self.lookups.flush()  # this process's own lookups, counted before they are read
        summaries = {
            _series_key(row.get): row for row in self.repository.series_summaries(self.clock())
        }
        counters = {
            _series_key(lambda name, row=row: getattr(row, name)): row
            for row in self.repository.all_stats()
        }
        series = [
            _series(key, summaries.get(key), counters.get(key))
            for key in sorted(summaries.keys() | counters.keys(), key=_display_order)
        ]
        totals = {
            name: sum(getattr(row, name) for row in series)
            for name in ("hits", "misses", "partial_hits", "stale_serves")
        }
        return CacheStats(**totals, hit_rate=hit_rate(**totals), series=series)


def _series_key(read: Callable[[str], Any]) -> SeriesKey:
    """The series a summary or counter row belongs to (`read` gets one of its key columns)."""
    return SeriesKey(**{name: read(name) for name in SERIES_KEY_COLUMNS})


def _display_order(series: SeriesKey) -> tuple:
    return (
        series.symbol,
        series.data_type,
        series.exchange,
        series.sec_type,
        series.currency,
        series.expiry,
        series.what_to_show,
        not series.use_rth,
    )


def _series(key: SeriesKey, summary: dict | None, counter: CacheSeriesStats | None) -> SeriesStats:
    con_id = summary.get("con_id") if summary else None
    hits = counter.hits if counter else 0
    misses = counter.misses if counter else 0
    partial_hits = counter.partial_hits if counter else 0
    stale_serves = counter.stale_serves if counter else 0
    expired_count = summary["expired_count"] if summary else 0
    return SeriesStats(
        symbol=key.symbol,
        exchange=key.exchange,
        data_type=BarSize(key.data_type),
        sec_type=SecType(key.sec_type),
        currency=key.currency,
        expiry=key.expiry or None,
        what_to_show=WhatToShow(key.what_to_show),
        use_rth=key.use_rth,
        con_id=con_id,
        bar_count=summary["bar_count"] if summary else 0,
        first=summary["first"] if summary else None,
        last=summary["last"] if summary else None,
        last_updated=summary["last_updated"] if summary else None,
        expired=expired_count > 0,
        expired_count=expired_count,
        hits=hits,
        misses=misses,
        partial_hits=partial_hits,
        stale_serves=stale_serves,
        hit_rate=hit_rate(hits, misses, partial_hits, stale_serves),
        last_hit_at=counter.last_hit_at if counter else None,
        last_refresh_at=counter.last_refresh_at if counter else None,
    )
