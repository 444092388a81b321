"""Batch cache population: plan and fill many series through the service, reporting progress."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from loguru import logger
from tenacity import retry_if_exception_type

from backend.core.retry import Backoff
from backend.ibkr.client import ChunkPlan, IBKRClient
from backend.market_data.domain import DEFAULT_DAYS_BACK, SeriesKey
from backend.market_data.errors import GatewayTimeout, MarketDataError, PacingViolation
from backend.market_data.service import CacheOutcome, MarketDataService
from backend.storage.market_data_repository import BarFilter, MarketDataCacheRepository


class ChunkNotRefreshed(MarketDataError):
    """The gateway failed mid-chunk and the refresh service served the cached bars instead."""

    code = "not_refreshed"


# Worth another attempt for the whole series once the client's per-chunk retries are used up.
TRANSIENT_ERRORS = (GatewayTimeout, PacingViolation, ChunkNotRefreshed)


@dataclass(frozen=True)
class PopulationRequest:
    """The series to fill (each a contract, bar size, whatToShow and hours) over the last
    days_back days; None: each bar size's DEFAULT_DAYS_BACK."""

    series: tuple[SeriesKey, ...]
    days_back: int | None = None
    force: bool = False


class _OfSeries:
    """The words of the series an event or result is about."""

    series: SeriesKey

    @property
    def symbol(self) -> str:
        return self.series.symbol

    @property
    def exchange(self) -> str:
        return self.series.exchange

    @property
    def data_type(self) -> str:
        return self.series.data_type


@dataclass(frozen=True)
class SeriesPlan(_OfSeries):
    """What one series needs: its window, what is cached, and the IBKR requests still to send."""

    series: SeriesKey
    start: datetime
    end: datetime
    bars_cached: int
    # Cached bars that are final or within their TTL, so they are not fetched again.
    bars_fresh: int
    missing: list[tuple[datetime, datetime]]
    chunks: list[ChunkPlan] = field(repr=False)

    @property
    def requests(self) -> int:
        return len(self.chunks)


class SeriesStatus(StrEnum):
    OK = "ok"  # fetched what was missing
    FRESH = "fresh"  # nothing to fetch: skipped as fresh
    ERROR = "error"


@dataclass(frozen=True)
class SeriesResult(_OfSeries):
    series: SeriesKey
    status: SeriesStatus
    bars_fetched: int
    # None when not known (the backend's refresh API does not report them).
    bars_before: int | None = None
    bars_after: int | None = None
    bars_skipped_fresh: int | None = None
    error_code: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SeriesPlanned:
    plan: SeriesPlan


@dataclass(frozen=True)
class ChunkStored(_OfSeries):
    series: SeriesKey
    bars_fetched: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class SeriesRetrying(_OfSeries):
    series: SeriesKey
    attempt: int
    error: str


@dataclass(frozen=True)
class SeriesFinished:
    result: SeriesResult


ProgressEvent = SeriesPlanned | ChunkStored | SeriesRetrying | SeriesFinished
OnEvent = Callable[[ProgressEvent], None]


def _ignore(_event: ProgressEvent) -> None:
    return None


class CachePopulationService:
    """Fills the cache for a list of series over the last N days, one chunk at a time.

    Every chunk goes through the refresh service (read-through, so fresh bars are skipped and
    nothing is duplicated) and therefore through the process's one pacing scheduler. Series run
    concurrently so that the scheduler always has the next request ready.
    """

    def __init__(
        self,
        refresh_service: MarketDataService,
        client: IBKRClient,
        repository: MarketDataCacheRepository,
        clock: Callable[[], datetime],
        max_concurrency: int = 4,
        retry_attempts: int = 3,
        retry_base_s: float = 5.0,
        retry_max_s: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.refresh_service = refresh_service
        self.client = client
        self.repository = repository
        self.clock = clock
        self.max_concurrency = max_concurrency
        self.backoff = Backoff(retry_attempts, retry_base_s, retry_max_s, sleep)

    def window(self, days_back: int) -> tuple[datetime, datetime]:
        """From midnight UTC `days_back` days ago up to now, so re-runs on one day ask alike."""
        end = self.clock()
        start = (end - timedelta(days=days_back)).replace(hour=0, minute=0, second=0, microsecond=0)
        return start, end

    # -- planning (never contacts IBKR) ---------------------------------------------------------

    async def plan(self, request: PopulationRequest) -> list[SeriesPlan]:
        plans = []
        for series in dict.fromkeys(request.series):
            start, end = self.window(request.days_back or DEFAULT_DAYS_BACK[series.bar_size])
            plans.append(
                await asyncio.to_thread(self._plan_series, series, start, end, request.force)
            )
        return plans

    def _plan_series(
        self, series: SeriesKey, start: datetime, end: datetime, force: bool
    ) -> SeriesPlan:
        bar_size = series.bar_size
        # The refresh service's own gap finder, so the plan is exactly what it will fetch.
        coverage = self.refresh_service.find_gaps(series, bar_size, start, end, force=force)
        chunks = [
            chunk
            for range_start, range_end in coverage.missing
            for chunk in self.client.plan_chunks(series, bar_size, range_start, range_end)
        ]
        # Forced, every cached bar is fetched again, so none counts as skipped for being fresh.
        fresh = 0 if force else coverage.summary.fresh_bars
        return SeriesPlan(
            series,
            start,
            end,
            coverage.summary.bars,
            fresh,
            coverage.missing,
            chunks,
        )

    # -- filling --------------------------------------------------------------------------------

    async def populate(
        self, request: PopulationRequest, on_event: OnEvent = _ignore
    ) -> list[SeriesResult]:
        """Plan every series, check the gateway once, then fill them; results in request order.

        A series that fails is reported in its result and the others carry on. An unreachable
        gateway raises GatewayUnavailable before anything is fetched.
        """
        plans = await self.plan(request)
        for plan in plans:
            on_event(SeriesPlanned(plan))
        if any(plan.requests for plan in plans):
            await self.client.connection.ensure_connected()
        slots = asyncio.Semaphore(self.max_concurrency)

        async def run(plan: SeriesPlan) -> SeriesResult:
            async with slots:
                result = await self.populate_series(plan, request.force, on_event)
            on_event(SeriesFinished(result))
            return result

        return list(await asyncio.gather(*(run(plan) for plan in plans)))

    async def populate_series(
        self, plan: SeriesPlan, force: bool, on_event: OnEvent = _ignore
    ) -> SeriesResult:
        log = logger.bind(symbol=plan.symbol, series=plan.series.label())
        if not plan.requests:
            return self._result(plan, SeriesStatus.FRESH, 0, plan.bars_cached)
        remaining = list(plan.chunks)
        fetched = 0

        def before_retry(state) -> None:
            error = state.outcome.exception()
            log.warning("{} failed, retrying the series: {}", plan.series.label(), error)
            on_event(SeriesRetrying(plan.series, state.attempt_number, str(error)))

        retrying = self.backoff.retrying(
            retry_if_exception_type(TRANSIENT_ERRORS), before_sleep=before_retry, reraise=True
        )
        try:
            async for attempt in retrying:
                with attempt:
                    # A retry resumes at the first chunk not yet stored; stored chunks are kept.
                    while remaining:
                        fetched += await self._fill_chunk(plan, remaining[0], force, on_event)
                        remaining.pop(0)
        except MarketDataError as exc:
            log.warning("{} failed: {}", plan.series.label(), exc)
            after = await asyncio.to_thread(self._count_bars, plan)
            return self._result(
                plan, SeriesStatus.ERROR, fetched, after, error_code=exc.code, error=str(exc)
            )
        after = await asyncio.to_thread(self._count_bars, plan)
        return self._result(plan, SeriesStatus.OK, fetched, after)

    async def _fill_chunk(
        self, plan: SeriesPlan, chunk: ChunkPlan, force: bool, on_event: OnEvent
    ) -> int:
        result = await self.refresh_service.read_series(
            plan.series, chunk.start, chunk.end, force_refresh=force
        )
        if result.outcome is CacheOutcome.STALE:
            raise ChunkNotRefreshed(
                f"IBKR did not deliver {plan.series.label()} "
                f"{chunk.start.isoformat()} to {chunk.end.isoformat()}; the cached bars were kept"
            )
        on_event(ChunkStored(plan.series, result.bars_fetched, chunk.start, chunk.end))
        return result.bars_fetched

    def _count_bars(self, plan: SeriesPlan) -> int:
        series = plan.series
        bar_filter = BarFilter(
            series.symbol,
            series.exchange,
            series.data_type,
            plan.start,
            plan.end,
            sec_type=series.sec_type,
            currency=series.currency,
            expiry=series.expiry,
            what_to_show=series.what_to_show,
            use_rth=series.use_rth,
        )
        return self.repository.list_bars(bar_filter, limit=0, offset=0)[1]

    @staticmethod
    def _result(
        plan: SeriesPlan,
        status: SeriesStatus,
        fetched: int,
        after: int,
        error_code: str | None = None,
        error: str | None = None,
    ) -> SeriesResult:
        return SeriesResult(
            series=plan.series,
            status=status,
            bars_fetched=fetched,
            bars_before=plan.bars_cached,
            bars_after=after,
            bars_skipped_fresh=plan.bars_fresh,
            error_code=error_code,
            error=error,
        )


def failed(results: Sequence[SeriesResult]) -> list[SeriesResult]:
    return [result for result in results if result.status is SeriesStatus.ERROR]
