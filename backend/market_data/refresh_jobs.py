"""Refresh jobs: fill the cache from IBKR in asyncio tasks on the app's loop, tracked in memory.

Jobs live in this process's memory only: a restart forgets the jobs (never the bars they cached),
and only the most recent finished jobs are kept. ib_insync is bound to the app's event loop, so
jobs must be submitted from it (from an async route), never from a worker thread.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from loguru import logger

from backend.ibkr.connection import IBConnection
from backend.market_data import calendar as market_calendar
from backend.market_data.domain import DEFAULT_DAYS_BACK, BarSize, SecType, SeriesKey, WhatToShow
from backend.market_data.errors import GatewayUnavailable, MarketDataError
from backend.market_data.request_budget import RequestEstimate, RequestPlanner
from backend.market_data.service import CacheOutcome, FetchProgress, MarketDataService

JobStatus = Literal["queued", "running", "completed", "partial", "failed", "cancelled"]
FINISHED: tuple[JobStatus, ...] = ("completed", "partial", "failed", "cancelled")


@dataclass
class SymbolRefresh:
    """How one series' refresh ended. `error` is the typed error the API maps to a status.

    Both counts come from the database: bars_fetched is what this job committed for the series
    (also when it then failed or was cancelled), bars_cached what the cache holds for the range.
    """

    series: SeriesKey
    status: Literal["ok", "error", "cancelled"]
    bars_fetched: int = 0
    bars_cached: int = 0
    error: Exception | None = None
    # IBKR's contract id, once the cache holds bars of the series.
    con_id: int | None = None

    @property
    def symbol(self) -> str:
        return self.series.symbol

    @property
    def data_type(self) -> BarSize:
        return self.series.bar_size


@dataclass(frozen=True)
class JobRequest:
    """The request as the job runs it: defaults filled in and the range resolved.

    An FX pair is listed as BASE.QUOTE (EUR.USD); currency is null when the pairs have
    different quote currencies (each result names its own). expiry is null but for futures.
    """

    symbols: list[str]
    exchange: str
    data_type: BarSize
    sec_type: SecType
    currency: str | None
    expiry: str | None
    what_to_show: WhatToShow
    use_rth: bool
    days_back: int
    force: bool
    start: datetime
    end: datetime

    @classmethod
    def of(
        cls,
        series: list[SeriesKey],
        days_back: int,
        force: bool,
        start: datetime,
        end: datetime,
    ) -> JobRequest:
        """The request that refreshes `series`: one asset class, bar size and exchange."""
        first = series[0]
        currencies = {one.currency for one in series}
        return cls(
            symbols=[_shown_symbol(one) for one in series],
            exchange=first.exchange,
            data_type=first.bar_size,
            sec_type=SecType(first.sec_type),
            currency=currencies.pop() if len(currencies) == 1 else None,
            expiry=first.expiry or None,
            what_to_show=WhatToShow(first.what_to_show),
            use_rth=first.use_rth,
            days_back=days_back,
            force=force,
            start=start,
            end=end,
        )


def _shown_symbol(series: SeriesKey) -> str:
    if series.sec_type == SecType.CASH:
        return f"{series.symbol}.{series.currency}"
    return series.symbol


@dataclass
class RefreshJob:
    job_id: str
    created_at: datetime
    request: JobRequest
    # What the job fills, one series per symbol, in the request's order.
    series: list[SeriesKey]
    estimate: RequestEstimate
    status: JobStatus = "queued"
    finished_at: datetime | None = None
    results: list[SymbolRefresh] = field(default_factory=list)
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class RefreshJobs:
    """Refreshes through the read-through service (allowed in DEBUG_MODE), one symbol at a time."""

    def __init__(
        self,
        service: MarketDataService,
        connection: IBConnection,
        planner: RequestPlanner,
        clock: Callable[[], datetime],
        default_exchange: str,
        keep_finished: int = 100,
    ) -> None:
        self.service = service
        self.connection = connection
        self.planner = planner
        self.clock = clock
        self.default_exchange = default_exchange
        self.keep_finished = keep_finished
        self._jobs: dict[str, RefreshJob] = {}

    async def submit(
        self,
        series: list[SeriesKey],
        days_back: int | None = None,
        force: bool = False,
    ) -> RefreshJob:
        """Plan and queue a job for series of one asset class, bar size and exchange (as
        parse_series gives them); raise UnsupportedExchange or RequestBudgetExceeded first.

        days_back defaults to the bar size's DEFAULT_DAYS_BACK. A series named twice is
        fetched once.
        """
        series = list(dict.fromkeys(series))
        if not series:
            raise ValueError("a refresh job needs at least one series")
        first = series[0]
        # A market without a trading calendar cannot be planned: refused before anything else.
        market_calendar.calendar_for(first.market)
        days_back = days_back or DEFAULT_DAYS_BACK[first.bar_size]
        now = self.clock()
        start, end = now - timedelta(days=days_back), now
        estimate = await self.planner.check_series(
            series, start, end, force=force, what="this refresh"
        )
        request = JobRequest.of(series, days_back, force, start, end)
        job = RefreshJob(
            job_id=uuid.uuid4().hex,
            created_at=now,
            request=request,
            series=series,
            estimate=estimate,
        )
        self._jobs[job.job_id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job))
        self._forget_old_jobs()
        return job

    def get(self, job_id: str) -> RefreshJob | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[RefreshJob]:
        return list(self._jobs.values())

    async def wait(self, job: RefreshJob, timeout_s: float) -> RefreshJob:
        """Wait up to timeout_s for the job to finish; the job keeps running if it does not."""
        if job.task is not None and not job.finished:
            await asyncio.wait([job.task], timeout=timeout_s)
        return job

    async def cancel(self, job_id: str) -> RefreshJob | None:
        """Stop a job: no request is sent after the one in flight. A finished job stays as is."""
        job = self._jobs.get(job_id)
        if job is None or job.finished or job.task is None:
            return job
        job.task.cancel()
        # The task ends at its next await; committing a chunk in progress finishes first.
        await asyncio.wait([job.task])
        return job

    async def cancel_running(self) -> None:
        """On shutdown: stop unfinished jobs rather than leave tasks on a closing loop."""
        tasks = [job.task for job in self._jobs.values() if job.task and not job.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: RefreshJob) -> None:
        job.status = "running"
        log = logger.bind(job_id=job.job_id, data_type=job.request.data_type.value)
        log.info(
            "refresh job started: {} series on {}, ~{} requests",
            len(job.series),
            job.request.exchange,
            job.estimate.requests,
        )
        try:
            try:
                # Checked once up front: with the gateway down every symbol fails the same way,
                # and finding that out per symbol would first plan each one's range for nothing.
                await self.connection.ensure_connected()
            except GatewayUnavailable as exc:
                log.warning("refresh job cannot start: {}", exc)
                for series in job.series:
                    job.results.append(
                        await self._ended(job, series, "error", FetchProgress(), exc)
                    )
            else:
                for series in job.series:
                    job.results.append(await self._refresh_one(job, series))
        except asyncio.CancelledError:
            await self._record_cancelled(job)
            log.info(
                "refresh job cancelled after {} of {} symbols",
                len(job.results),
                len(job.series),
            )
            return
        succeeded = sum(result.status == "ok" for result in job.results)
        if succeeded == len(job.results):
            job.status = "completed"
        else:
            job.status = "failed" if succeeded == 0 else "partial"
        job.finished_at = self.clock()
        log.info("refresh job {}: {} of {} symbols ok", job.status, succeeded, len(job.results))
        self._forget_old_jobs()

    async def _refresh_one(self, job: RefreshJob, series: SeriesKey) -> SymbolRefresh:
        log = logger.bind(job_id=job.job_id, symbol=series.symbol, series=series.label())
        progress = FetchProgress()
        try:
            result = await self.service.read_series(
                series,
                job.request.start,
                job.request.end,
                force_refresh=job.request.force,
                progress=progress,
            )
        except MarketDataError as exc:
            log.warning("refresh failed: {}", exc)
            return await self._ended(job, series, "error", progress, exc)
        except asyncio.CancelledError:
            job.results.append(await self._ended(job, series, "cancelled", progress))
            raise
        except Exception as exc:
            # A bug must not end the job silently or hide the other symbols' results.
            log.opt(exception=exc).error("refresh failed unexpectedly")
            return await self._ended(job, series, "error", progress, exc)
        if result.outcome is CacheOutcome.STALE:
            # stale-if-error serves readers, but a refresh that reached nothing did not refresh.
            error = GatewayUnavailable(
                self.connection.host,
                self.connection.port,
                f"nothing could be fetched; the cache keeps its {len(result.bars)} older bars",
            )
            return await self._ended(job, series, "error", progress, error, len(result.bars))
        return await self._ended(job, series, "ok", progress, cached=len(result.bars))

    async def _ended(
        self,
        job: RefreshJob,
        series: SeriesKey,
        status: Literal["ok", "error", "cancelled"],
        progress: FetchProgress,
        error: Exception | None = None,
        cached: int | None = None,
    ) -> SymbolRefresh:
        """`cached`: the bars the service just read for the range, when it got that far."""
        repository = self.service.repository
        try:
            if cached is None:
                coverage = await repository.database.run(
                    repository.summarize, series, job.request.start, job.request.end, None
                )
                cached = coverage.bars
            summary = await repository.database.run(repository.series_summary, series)
        except Exception as exc:
            # The database failing now must not turn a finished symbol into a crashed job.
            logger.bind(job_id=job.job_id, symbol=series.symbol).warning(
                "cannot count cached bars: {}", exc
            )
            return SymbolRefresh(series, status, progress.bars_committed, cached or 0, error)
        con_id = summary.con_id if summary else None
        return SymbolRefresh(series, status, progress.bars_committed, cached, error, con_id)

    async def _record_cancelled(self, job: RefreshJob) -> None:
        done = {result.series for result in job.results}
        for series in job.series:
            if series not in done:
                job.results.append(await self._ended(job, series, "cancelled", FetchProgress()))
        job.status = "cancelled"
        job.finished_at = self.clock()
        self._forget_old_jobs()

    def _forget_old_jobs(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job.finished]
        for job_id in finished[: max(0, len(finished) - self.keep_finished)]:
            del self._jobs[job_id]
