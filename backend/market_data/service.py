"""MarketDataService.get_or_fetch_market_data: the cache policy (read-through, cache-only, live)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Any

import pandas as pd
import pyarrow as pa
from loguru import logger

from backend.core.metrics import CACHE_LOOKUPS
from backend.ibkr.client import ChunkPlan, FetchedChunk, IBKRClient
from backend.market_data import calendar as market_calendar
from backend.market_data.bar_columns import BarColumns
from backend.market_data.domain import (
    EXPIRED_FUTURES_MAX_AGE_DAYS,
    SECONDS_BARS_MAX_AGE_DAYS,
    Bar,
    BarSize,
    SecType,
    SeriesKey,
    WhatToShow,
    parse_series,
)
from backend.market_data.errors import (
    BeyondIBKRHistory,
    CacheMissInDebugMode,
    GatewayUnavailable,
    PacingViolation,
)
from backend.market_data.lookup_counts import LookupCounts
from backend.storage.market_data_repository import (
    CacheSummary,
    Fetch,
    MarketDataCacheRepository,
    SeriesSummary,
)
from backend.storage.series_lock import SeriesLocks


class DataSourcePolicy(StrEnum):
    """Where bars may come from; the container picks one from DEBUG_MODE and CACHE_ENABLED."""

    CACHE_ONLY = "cache_only"  # DEBUG_MODE: only-if-cached, expiry ignored, IBKR never contacted
    READ_THROUGH = "read_through"  # cache first, fetch what is missing or expired, store it
    LIVE = "live"  # CACHE_ENABLED=false: always IBKR, the cache is neither read nor written


class DataSource(StrEnum):
    CACHE = "cache"
    IBKR = "ibkr"
    MIXED = "mixed"
    STALE_CACHE = "stale_cache"


class CacheOutcome(StrEnum):
    HIT = "hit"
    MISS = "miss"
    PARTIAL = "partial"
    STALE = "stale"
    BYPASS = "bypass"


@dataclass(frozen=True)
class Drift:
    """What a verify run found for one series."""

    series: SeriesKey
    segments_checked: int
    bars_compared: int
    bars_drifted: int
    # Cached price over IBKR's for the drifted bars (their median), None without drift.
    factor: float | None
    # How the drift was healed ("rescaled", "refetched"), None when not repaired.
    healed: str | None

    @property
    def drift(self) -> bool:
        return self.bars_drifted > 0


@dataclass(frozen=True)
class MarketDataResult:
    symbol: str
    exchange: str
    data_type: str
    start: datetime
    end: datetime
    # The bars in time order, as columns (see BarColumns).
    bars: BarColumns
    source: DataSource
    outcome: CacheOutcome
    bars_from_cache: int
    bars_fetched: int
    missing: list[tuple[datetime, datetime]] = field(default_factory=list)
    # When the bars served were fetched from IBKR: (earliest, latest), or (None, None) if no bars.
    fetched_at_range: tuple[datetime | None, datetime | None] = (None, None)

    def to_pandas(self) -> pd.DataFrame:
        """The bars as a DataFrame: a UTC DatetimeIndex and float64 columns."""
        return self.bars.to_pandas()

    def to_arrow(self) -> pa.Table:
        return self.bars.to_arrow()


@dataclass
class FetchProgress:
    """What one call has committed so far; the caller's copy stays right if the call fails."""

    bars_committed: int = 0
    # Historical requests whose answers were committed (one per chunk stored).
    requests_committed: int = 0


@dataclass(frozen=True)
class Coverage:
    """What the cache holds for a range, and the ranges that must still be fetched."""

    summary: CacheSummary
    missing: list[tuple[datetime, datetime]]


class MarketDataService:
    """Bars for a range, from the cache or IBKR as the policy allows, with provenance."""

    def __init__(
        self,
        repository: MarketDataCacheRepository,
        policy: DataSourcePolicy,
        client: IBKRClient | None,
        ttl_hours: int,
        clock: Callable[[], datetime],
        locks: SeriesLocks | None = None,
        lookups: LookupCounts | None = None,
    ) -> None:
        if policy is not DataSourcePolicy.CACHE_ONLY and client is None:
            raise ValueError(f"policy {policy} needs an IBKR client")
        self.repository = repository
        self.policy = policy
        # None in DEBUG_MODE: this path has no way to reach IBKR at all.
        self.client = client if policy is not DataSourcePolicy.CACHE_ONLY else None
        self.ttl = timedelta(hours=ttl_hours)
        self.clock = clock
        self.locks = locks or SeriesLocks(repository.database)
        self.lookups = lookups or LookupCounts(repository)
        # Database work runs on the database's own threads, never on the loop's default executor.
        self._run = repository.database.run
        self._in_flight: dict[tuple, _SharedFetch] = {}

    async def get_or_fetch_market_data(
        self,
        symbol: str,
        exchange: str,
        data_type: str | BarSize,
        start: datetime,
        end: datetime,
        *,
        force_refresh: bool = False,
        progress: FetchProgress | None = None,
        sec_type: str = SecType.STK,
        currency: str | None = None,
        expiry: str | None = None,
        what_to_show: str | None = None,
        use_rth: bool = True,
    ) -> MarketDataResult:
        """Bars in [start, end) as the policy allows; `progress` counts what gets committed.

        The series is a US stock's TRADES in regular hours unless the keywords say otherwise
        (InvalidSeries, naming the field, for a series IBKR does not have)."""
        series = parse_series(
            symbol,
            data_type,
            sec_type=sec_type,
            exchange=exchange,
            currency=currency,
            expiry=expiry,
            what_to_show=what_to_show,
            use_rth=use_rth,
        )
        return await self.read_series(
            series, start, end, force_refresh=force_refresh, progress=progress
        )

    async def read_series(
        self,
        series: SeriesKey,
        start: datetime,
        end: datetime,
        *,
        force_refresh: bool = False,
        progress: FetchProgress | None = None,
    ) -> MarketDataResult:
        """get_or_fetch_market_data for a series already parsed (parse_series)."""
        bar_size = series.bar_size
        _check_range(start, end)
        started = time.perf_counter()
        if self.policy is DataSourcePolicy.LIVE:
            result = await self._fetch_live(series, bar_size, start, end)
        elif self.policy is DataSourcePolicy.CACHE_ONLY:
            result = await self._cache_only(series, bar_size, start, end)
        else:
            result = await self._single_flight(
                series, bar_size, start, end, force_refresh, progress or FetchProgress()
            )
        self._log(result, time.perf_counter() - started)
        return result

    @staticmethod
    def _session_opened(series: SeriesKey, since: datetime, now: datetime) -> bool:
        sessions = market_calendar.sessions_between(series.market, since, now)
        return any(since < session.open_at <= now for session in sessions)

    async def verify_series(
        self, series: SeriesKey, samples: int = 3, repair: bool = False
    ) -> Drift:
        """Ask IBKR again for `samples` cached segments of the series (one request or a few
        each, through the pacing scheduler) and count the bars whose prices differ beyond a
        tick: drift from a corporate action the cache has not seen, or a revision. With
        `repair`, drift is healed as a detected action is (rescaled for a split, else the series
        fetched again). Never in DEBUG_MODE: it needs IBKR."""
        if self.client is None:
            raise CacheMissInDebugMode(series.symbol, series.exchange, series.data_type, [], 1)
        segments = await self._run(self.repository.sample_segments, series, samples)
        drifted_pairs: list[tuple[float, float]] = []
        compared = 0
        for segment in segments:
            pairs = await self._asked_again(series, segment.columns)
            compared += len(pairs)
            drifted_pairs += [
                pair for pair in pairs if basis_change([pair], series.what_to_show) is not None
            ]
        change = basis_change(drifted_pairs, series.what_to_show) if drifted_pairs else None
        healed = None
        if repair and change is not None:
            held = await self._heal(series, change, segments[-1].columns.last_at())
            if held is not None and held.first_bar_at is not None:
                await self.read_series(series, held.first_bar_at, self.clock())
            healed = "rescaled" if change[1] else "refetched"
        return Drift(
            series,
            len(segments),
            compared,
            len(drifted_pairs),
            change[0] if change else None,
            healed,
        )

    async def price_basis(self, series: SeriesKey) -> datetime | None:
        """As of when the series' cached prices are adjusted (IBKR adjusts history for splits,
        and ADJUSTED_LAST for dividends, as of each request): the latest fetch that found the
        cached bars unchanged, or the healing of a corporate action. None without bars. In
        DEBUG_MODE it is the basis the cache has, never checked against IBKR."""
        summary = await self._run(self.repository.series_summary, series)
        return summary.basis_at if summary is not None else None

    # -- cache only (DEBUG_MODE) ----------------------------------------------------------------

    async def _cache_only(
        self, series: SeriesKey, bar_size: BarSize, start: datetime, end: datetime
    ) -> MarketDataResult:
        hit = await self._run(self._try_hit, series, bar_size, start, end, False)
        if hit is not None:
            return hit
        coverage = await self._run(
            self.find_gaps, series, bar_size, start, end, honour_expiry=False
        )
        if coverage.missing:
            await self._run(self._record_outcome, series, CacheOutcome.MISS)
            days_back = max(1, (self.clock() - start).days + 1)
            raise CacheMissInDebugMode(
                series.symbol, series.exchange, series.data_type, coverage.missing, days_back
            )
        return await self._run(self._serve_hit, series, start, end, coverage)

    # -- read-through ---------------------------------------------------------------------------

    async def _single_flight(
        self,
        series: SeriesKey,
        bar_size: BarSize,
        start: datetime,
        end: datetime,
        force: bool,
        progress: FetchProgress,
    ) -> MarketDataResult:
        # Concurrent identical calls share one fetch, and every waiter gets the full result.
        # The fetch runs as a task of its own: a caller that goes away (a cancelled job, a
        # client that disconnected) stops waiting, and the fetch stops only when nobody waits.
        key = (series, start, end, force)
        shared = self._in_flight.get(key)
        if shared is None:
            task = asyncio.get_running_loop().create_task(
                self._read_through(series, bar_size, start, end, force, progress)
            )
            shared = self._in_flight[key] = _SharedFetch(task)
            task.add_done_callback(lambda _done: self._in_flight.pop(key, None))
        shared.waiters += 1
        try:
            return await asyncio.shield(shared.task)
        except asyncio.CancelledError:
            if shared.waiters == 1 and not shared.task.done():
                shared.task.cancel()
                # A chunk being committed finishes first; its bars are counted in `progress`.
                await asyncio.wait([shared.task])
            raise
        finally:
            shared.waiters -= 1

    async def _read_through(
        self,
        series: SeriesKey,
        bar_size: BarSize,
        start: datetime,
        end: datetime,
        force: bool,
        progress: FetchProgress,
    ) -> MarketDataResult:
        if not force:
            hit = await self._run(self._try_hit, series, bar_size, start, end, True)
            if hit is not None:
                return hit
        coverage = await self._run(self.find_gaps, series, bar_size, start, end, force=force)
        if not coverage.missing:
            return await self._run(self._serve_hit, series, start, end, coverage)
        failure: GatewayUnavailable | PacingViolation | None = None
        async with self.locks.hold(series):
            # Whoever held the series before may have filled the gaps while this call waited.
            coverage = await self._run(self.find_gaps, series, bar_size, start, end, force=force)
            coverage = await self._run(self._within_history, series, bar_size, coverage, force)
            if coverage.missing:
                try:
                    await self._fetch_and_store(series, bar_size, coverage.missing, progress)
                except (GatewayUnavailable, PacingViolation) as exc:
                    # stale-if-error: decided below, once we know what the cache holds.
                    failure = exc
        if not coverage.missing:
            return await self._run(self._serve_hit, series, start, end, coverage)

        fetched = progress.bars_committed
        final = await self._run(self.find_gaps, series, bar_size, start, end)
        bars = await self._run(self.repository.read_columns, series, start, end)
        fetched_range = (final.summary.fetched_from, final.summary.fetched_to)
        had_cached_bars = coverage.summary.bars > 0
        if failure is not None:
            if not had_cached_bars:
                await self._run(self._record_outcome, series, CacheOutcome.MISS)
                raise failure
            logger.bind(symbol=series.symbol, data_type=series.data_type).warning(
                "gateway failed; serving stale cache: {}", failure
            )
            await self._run(self._record_outcome, series, CacheOutcome.STALE)
            return MarketDataResult(
                *_ident(series, start, end),
                bars,
                DataSource.STALE_CACHE,
                CacheOutcome.STALE,
                max(0, len(bars) - fetched),
                fetched,
                final.missing,
                fetched_range,
            )
        from_cache = max(0, len(bars) - fetched)
        outcome = CacheOutcome.PARTIAL if had_cached_bars else CacheOutcome.MISS
        if fetched == 0:
            source = DataSource.CACHE
        else:
            source = DataSource.MIXED if from_cache else DataSource.IBKR
        await self._run(self._record_outcome, series, outcome)
        return MarketDataResult(
            *_ident(series, start, end),
            bars,
            source,
            outcome,
            from_cache,
            fetched,
            final.missing,
            fetched_range,
        )

    def _within_history(
        self, series: SeriesKey, bar_size: BarSize, coverage: Coverage, force: bool
    ) -> Coverage:
        """Coverage cut to what IBKR still serves. Bars older than that are never asked for
        (the cache then holds the only copy, so not even a forced refresh replaces them); a
        missing range older than that is an error, not an empty answer."""
        earliest = history_start(series, self.clock())
        if earliest is None or not coverage.missing or coverage.missing[0][0] >= earliest:
            return coverage
        older = [(a, min(b, earliest)) for a, b in coverage.missing if a < earliest]
        if force:
            # A forced refresh lists cached bars as missing too: only truly absent ones count.
            older = self.find_gaps(series, bar_size, older[0][0], older[-1][1]).missing
        if older:
            raise BeyondIBKRHistory(series.label(), earliest, older)
        kept = [(max(a, earliest), b) for a, b in coverage.missing if b > earliest]
        return Coverage(coverage.summary, kept)

    def _try_hit(
        self,
        series: SeriesKey,
        bar_size: BarSize,
        start: datetime,
        end: datetime,
        honour_expiry: bool,
    ) -> MarketDataResult | None:
        """The warm read: the range's bars and their coverage in one statement, served when
        every bar the calendar expects is there and fresh; None when something is missing.

        Only calendar bars are stored, so equal counts mean every expected bar is there.
        """
        now = self.clock()
        bars, summary = self.repository.read_range(
            series, start, end, now if honour_expiry else None
        )
        expected = market_calendar.expected_bar_count(
            series.market, bar_size, start, min(end, now), now=now
        )
        if summary.fresh_bars != expected:
            return None
        return self._hit(series, start, end, bars, summary)

    def _serve_hit(
        self, series: SeriesKey, start: datetime, end: datetime, coverage: Coverage
    ) -> MarketDataResult:
        bars = self.repository.read_columns(series, start, end)
        return self._hit(series, start, end, bars, coverage.summary)

    def _hit(
        self,
        series: SeriesKey,
        start: datetime,
        end: datetime,
        bars: BarColumns,
        summary: CacheSummary,
    ) -> MarketDataResult:
        """A lookup the cache answered whole: counted, and served with its fetch times."""
        self._record_outcome(series, CacheOutcome.HIT)
        return MarketDataResult(
            *_ident(series, start, end),
            bars,
            DataSource.CACHE,
            CacheOutcome.HIT,
            len(bars),
            0,
            fetched_at_range=(summary.fetched_from, summary.fetched_to),
        )

    async def _fetch_and_store(
        self,
        series: SeriesKey,
        bar_size: BarSize,
        needed: list[tuple[datetime, datetime]],
        progress: FetchProgress,
    ) -> None:
        assert self.client is not None
        needed = await self._from_head(series, needed)
        if not needed:
            return
        needed = await self._check_basis(series, needed)
        # Planning years of intraday bars is CPU work; keep it off the event loop.
        plans = await asyncio.to_thread(self._plan, series, bar_size, needed)
        if not plans:
            return
        async for chunk in self.client.fetch_chunks(
            series, needed[0][0], needed[-1][1], plans=plans
        ):
            # One transaction per chunk: a later failure keeps earlier chunks, never half of one.
            await self._run(self._store_chunk, series, chunk, progress)

    async def _from_head(
        self, series: SeriesKey, needed: list[tuple[datetime, datetime]]
    ) -> list[tuple[datetime, datetime]]:
        """The needed ranges from the series' first bar on. What lies before it is recorded as
        confirmed empty, so it is never asked for. The first bar is asked of IBKR once per
        contract, series and hours (one request), then read from the cache."""
        assert self.client is not None
        contract = await self.client.qualify(series)

        async def recorded() -> datetime | None:
            return await self._run(
                self.repository.head_timestamp, contract.conId, series.what_to_show, series.use_rth
            )

        head = await recorded()
        if head is None:
            try:
                head = await self.client.head_timestamp(contract, series, recorded)
            except (GatewayUnavailable, PacingViolation):
                raise
            except Exception as error:  # without it every range is asked for, as before
                logger.bind(symbol=series.symbol).warning(
                    "no head timestamp for {}: {}", series.label(), error
                )
                return needed
            await self._run(
                self.repository.record_head_timestamp,
                contract.conId,
                series.what_to_show,
                series.use_rth,
                head,
                self.clock(),
            )
        if not series.bar_size.is_intraday:
            # Daily and longer bars are stamped at midnight UTC of their session's date, before
            # the session's first trade.
            head = datetime(head.year, head.month, head.day, tzinfo=UTC)
        before = [(start, min(end, head)) for start, end in needed if start < head]
        if before:
            now = self.clock()
            fetch = Fetch("ibkr", series.what_to_show, series.use_rth, {}, now, now + self.ttl)
            await self._run(
                self.repository.store_chunk,
                series,
                BarColumns.empty(),
                fetch,
                before,
                f"before IBKR's first bar {head.isoformat()}",
            )
        return [(max(start, head), end) for start, end in needed if end > head]

    async def _check_basis(
        self, series: SeriesKey, needed: list[tuple[datetime, datetime]]
    ) -> list[tuple[datetime, datetime]]:
        """Before adding bars to a series that holds history, ask IBKR again for its latest
        final cached bars (one request) and compare: IBKR adjusts history as of each request, so
        after a split (or, for ADJUSTED_LAST, a dividend) the cached bars sit on another price
        scale than the new ones. A split is healed by rescaling the whole cached series by the
        ratio, snapped to its simple fraction and checked against a second anchor; a change no
        such fraction explains is healed by fetching the series again. Returns what to fetch."""
        assert self.client is not None
        now = self.clock()
        summary = await self._run(self.repository.series_summary, series)
        # Corporate actions take effect when a session opens: with none opened since the basis
        # was set, the cached bars cannot have moved (a populate's later chunks).
        basis_at = summary.basis_at if summary is not None else None
        if basis_at is not None and not self._session_opened(series, basis_at, now):
            return needed
        anchors = await self._run(self.repository.anchor_bars, series, needed[0][0])
        if not len(anchors):
            return needed
        pairs = await self._asked_again(series, anchors)
        if not pairs:
            logger.bind(symbol=series.symbol).warning(
                "{}: IBKR did not answer the anchor bars; basis not checked", series.label()
            )
            return needed
        change = basis_change(pairs, series.what_to_show)
        if change is None:
            await self._run(self.repository.confirm_basis, series, now)
            return needed
        held = await self._heal(series, change, anchors.last_at())
        if held is None or held.first_bar_at is None:
            return needed
        # Dropped to be fetched again: from the first bar it held.
        return [(min(held.first_bar_at, needed[0][0]), needed[-1][1])]

    async def _asked_again(
        self, series: SeriesKey, cached: BarColumns
    ) -> list[tuple[float, float]]:
        """(cached close, IBKR's close now) for each cached bar IBKR answers again."""
        assert self.client is not None
        end = market_calendar.bar_end(series.market, series.bar_size, cached.last_at())
        answered: dict[datetime, float] = {}
        async for chunk in self.client.fetch_chunks(series, cached.first_at(), end):
            answered.update((bar.timestamp, bar.close) for bar in chunk.bars)
        return [
            (close, answered[stamp])
            for stamp, close in zip(cached.timestamps(), cached.close.tolist(), strict=True)
            if answered.get(stamp, 0) > 0
        ]

    async def _heal(
        self, series: SeriesKey, change: tuple[float, bool], anchor_at: datetime | None
    ) -> SeriesSummary | None:
        """Bring the whole cached series to IBKR's current basis and record the action: a split
        rescales it; anything else drops it, and the caller fetches it again from the first bar
        of what it held (returned; None for a split)."""
        factor, split = change
        action = {
            "detected_at": self.clock(),
            "anchor_at": anchor_at,
            "factor": factor,
            "kind": "split" if split else "adjustment",
            "healed": "rescaled" if split else "refetched",
        }
        log = logger.bind(symbol=series.symbol, data_type=series.data_type)
        if split:
            bars = await self._run(self.repository.rescale_series, series, factor, action)
            log.warning(
                "{}: split of {:g} detected; {} bars rescaled", series.label(), factor, bars
            )
            return None
        held = await self._run(self.repository.drop_for_refetch, series, action)
        log.warning(
            "{}: price basis changed by {:.6f}; {} bars fetched again",
            series.label(),
            factor,
            held.bar_count if held else 0,
        )
        return held

    def _plan(
        self, series: SeriesKey, bar_size: BarSize, needed: list[tuple[datetime, datetime]]
    ) -> list[ChunkPlan]:
        assert self.client is not None
        return [
            plan
            for range_start, range_end in needed
            for plan in self.client.plan_chunks(series, bar_size, range_start, range_end)
        ]

    def _store_chunk(self, series: SeriesKey, chunk: FetchedChunk, progress: FetchProgress) -> None:
        fetch = Fetch(
            source="ibkr",
            what_to_show=chunk.request["what_to_show"],
            use_rth=chunk.request["use_rth"],
            request=chunk.request,
            fetched_at=chunk.fetched_at,
            expires_at=chunk.fetched_at + self.ttl,
            con_id=chunk.request.get("con_id"),
        )
        stored = self.repository.store_chunk(
            series,
            BarColumns.from_bars(chunk.bars),
            fetch,
            chunk.confirmed_empty,
            chunk.empty_reason,
        )
        # Counted only once the transaction has committed.
        progress.bars_committed += stored
        progress.requests_committed += 1

    # -- live (cache disabled) ------------------------------------------------------------------

    async def _fetch_live(
        self, series: SeriesKey, bar_size: BarSize, start: datetime, end: datetime
    ) -> MarketDataResult:
        assert self.client is not None
        fetched: list[Bar] = []
        fetched_at: list[datetime] = []
        plans = await asyncio.to_thread(self._plan, series, bar_size, [(start, end)])
        async for chunk in self.client.fetch_chunks(series, start, end, plans=plans):
            if chunk.bars:
                fetched.extend(chunk.bars)
                fetched_at.append(chunk.fetched_at)
        # Chunks may overlap at their edges; the later one's bars win, as in the cache.
        bars = BarColumns.from_bars(fetched)
        # Nothing is stored with the cache disabled, so the bypass is counted in /metrics only.
        CACHE_LOOKUPS.labels(CacheOutcome.BYPASS.value).inc()
        return MarketDataResult(
            *_ident(series, start, end),
            bars,
            DataSource.IBKR,
            CacheOutcome.BYPASS,
            0,
            len(bars),
            fetched_at_range=(min(fetched_at), max(fetched_at)) if fetched_at else (None, None),
        )

    # -- coverage -------------------------------------------------------------------------------

    def find_gaps(
        self,
        series: SeriesKey,
        bar_size: BarSize,
        start: datetime,
        end: datetime,
        *,
        honour_expiry: bool = True,
        force: bool = False,
    ) -> Coverage:
        """What the cache holds for the range, and the ranges of expected bars still to fetch.

        Expected bars come from the exchange calendar, up to now. A bar is needed when it is not
        cached, or (with expiry honoured) when it was not final when fetched and its TTL has
        passed. Final bars are settled history and are not fetched again unless forced. Ranges
        IBKR confirmed empty are never asked for again, except when forced.
        """
        now = self.clock()
        until = min(end, now)
        summary = self.repository.summarize(series, start, end, now if honour_expiry else None)
        if not force:
            # Only calendar bars are ever stored, so equal counts mean every expected bar is
            # there: the common warm read needs neither the bars' times nor a datetime per bar.
            expected_count = market_calendar.expected_bar_count(
                series.market, bar_size, start, until, now=now
            )
            if summary.fresh_bars == expected_count:
                return Coverage(summary, [])
        expected = market_calendar.expected_bar_timestamps(
            series.market, bar_size, start, until, now=now
        )
        if force:
            needed = expected
        else:
            fresh = self.repository.fresh_timestamps(
                series, start, end, now if honour_expiry else None
            )
            empty = self.repository.empty_ranges(series, start, end)
            needed = [
                stamp
                for stamp in expected
                if stamp not in fresh and not any(a <= stamp < b for a, b in empty)
            ]
        return Coverage(
            summary,
            market_calendar.group_into_ranges(needed, expected, bar_size, series.market),
        )

    def _record_outcome(self, series: SeriesKey, outcome: CacheOutcome) -> None:
        """Count a lookup's outcome: in the series' stored statistics and in /metrics."""
        self.lookups.record(series, outcome.value, self.clock())
        CACHE_LOOKUPS.labels(outcome.value).inc()

    def _log(self, result: MarketDataResult, seconds: float) -> None:
        logger.bind(
            symbol=result.symbol,
            data_type=result.data_type,
            range=f"{result.start.isoformat()}..{result.end.isoformat()}",
            outcome=result.outcome.value,
            bars_cached=result.bars_from_cache,
            bars_fetched=result.bars_fetched,
            duration_ms=round(seconds * 1000, 1),
        ).info(
            "market data {} {} {}: {} from cache, {} fetched in {:.0f} ms",
            result.symbol,
            result.data_type,
            result.outcome.value,
            result.bars_from_cache,
            result.bars_fetched,
            seconds * 1000,
        )


@dataclass
class _SharedFetch:
    task: asyncio.Task[MarketDataResult]
    waiters: int = 0


def _ident(series: SeriesKey, start: datetime, end: datetime) -> tuple[Any, ...]:
    return series.symbol, series.exchange, series.data_type, start, end


def _check_range(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware (UTC)")
    if start >= end:
        raise ValueError(f"start {start.isoformat()} must be before end {end.isoformat()}")


# The name the platform's task list uses; the same class.
IBKRService = MarketDataService


def history_start(series: SeriesKey, now: datetime) -> datetime | None:
    """The earliest bar IBKR still serves of the series; None where it serves all it has."""
    limits = []
    if series.bar_size.is_seconds:
        limits.append(now - timedelta(days=SECONDS_BARS_MAX_AGE_DAYS))
    if series.sec_type == SecType.FUT and series.expiry:
        expiry = _expiry_date(series.expiry)
        if expiry + timedelta(days=EXPIRED_FUTURES_MAX_AGE_DAYS) < now:
            # Past two years after its expiry IBKR has no bars of the contract at all.
            limits.append(now)
    return max(limits) if limits else None


def _expiry_date(expiry: str) -> datetime:
    """A future's expiry as a UTC moment: its day, or the last day of its month."""
    year, month = int(expiry[:4]), int(expiry[4:6])
    if len(expiry) == 8:
        return datetime(year, month, int(expiry[6:8]), tzinfo=UTC)
    following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return following - timedelta(days=1)


# A price IBKR sends again equals the cached one within a tick or this share of it (its rounding
# to the tick after adjusting); a dividend on ADJUSTED_LAST moves prices by more.
SAME_PRICE_RELATIVE = 2e-4
SAME_PRICE_ABSOLUTE = 0.011
# A split's ratio, snapped to a fraction with at most this denominator (3:2, 10:1, 1:8), within
# this share; both anchors must agree on it.
SPLIT_DENOMINATOR = 20
SPLIT_TOLERANCE = 0.005


def basis_change(pairs: list[tuple[float, float]], what_to_show: str) -> tuple[float, bool] | None:
    """None when IBKR's prices equal the cached ones; else (cached over IBKR's, whether it is a
    split whose snapped ratio can be trusted for rescaling)."""
    if all(
        abs(cached - fresh) <= max(SAME_PRICE_ABSOLUTE, SAME_PRICE_RELATIVE * abs(cached))
        for cached, fresh in pairs
    ):
        return None
    ratios = sorted(cached / fresh for cached, fresh in pairs)
    factor = ratios[len(ratios) // 2]
    snapped = float(Fraction(factor).limit_denominator(SPLIT_DENOMINATOR))
    split = (
        what_to_show != WhatToShow.ADJUSTED_LAST
        and len(pairs) >= 2
        and snapped != 1.0
        and all(abs(ratio / snapped - 1) <= SPLIT_TOLERANCE for ratio in ratios)
    )
    return (snapped, True) if split else (factor, False)
