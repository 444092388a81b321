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
from backend.market_data.domain import DEFAULT_DAYS_BACK, BarSize, SeriesKey
from backend.market_data.errors import GatewayUnavailable, MarketDataError
from backend.market_data.request_budget import RequestEstimate, RequestPlanner
from backend.market_data.service import CacheOutcome, FetchProgress, MarketDataService

JobStatus = Literal["queued", "running", "completed", "partial", "failed", "cancelled"]
FINISHED: tuple[JobStatus, ...] = ("completed", "partial", "failed", "cancelled")


@dataclass
class SymbolRefresh:
    """How one symbol's refresh ended. `error` is the typed error the API maps to a status.

    Both counts come from the database: bars_fetched is what this job committed for the symbol
    (also when it then failed or was cancelled), bars_cached what the cache holds for the range.
    """

    symbol: str
    data_type: BarSize
    status: Literal["ok", "error", "cancelled"]
    bars_fetched: int = 0
    bars_cached: int = 0
    error: Exception | None = None


@dataclass(frozen=True)
class JobRequest:
    """The request as the job runs it: defaults filled in and the range resolved."""

    symbols: list[str]
    exchange: str
    data_type: BarSize
    days_back: int
    force: bool
    start: datetime
    end: datetime


@dataclass
class RefreshJob:
    job_id: str
    created_at: datetime
    request: JobRequest
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
        symbols: list[str],
        data_type: BarSize,
        exchange: str | None = None,
        days_back: int | None = None,
        force: bool = False,
    ) -> RefreshJob:
        """Plan and queue a job; raise UnsupportedExchange or RequestBudgetExceeded first.

        exchange defaults to CACHE_EXCHANGE, days_back to the bar size's DEFAULT_DAYS_BACK.
        """
        exchange = exchange or self.default_exchange
        market_calendar.calendar_for(exchange)
        days_back = days_back or DEFAULT_DAYS_BACK[data_type]
        symbols = list(dict.fromkeys(symbols))
        now = self.clock()
        start, end = now - timedelta(days=days_back), now
        estimate = await self.planner.check(
            symbols,
            exchange,
            data_type,
            start,
            end,
            force=force,
            what="this refresh",
        )
        request = JobRequest(symbols, exchange, data_type, days_back, force, start, end)
        job = RefreshJob(
            job_id=uuid.uuid4().hex, created_at=now, request=request, estimate=estimate
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
            "refresh job started: {} symbols on {}, ~{} requests",
            len(job.request.symbols),
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
                for symbol in job.request.symbols:
                    job.results.append(
                        await self._ended(job, symbol, "error", FetchProgress(), exc)
                    )
            else:
                for symbol in job.request.symbols:
                    job.results.append(await self._refresh_one(job, symbol))
        except asyncio.CancelledError:
            await self._record_cancelled(job)
            log.info(
                "refresh job cancelled after {} of {} symbols",
                len(job.results),
                len(job.request.symbols),
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

    async def _refresh_one(self, job: RefreshJob, symbol: str) -> SymbolRefresh:
        log = logger.bind(job_id=job.job_id, symbol=symbol, data_type=job.request.data_type.value)
        progress = FetchProgress()
        try:
            result = await self.service.get_or_fetch_market_data(
                symbol,
                job.request.exchange,
                job.request.data_type,
                job.request.start,
                job.request.end,
                force_refresh=job.request.force,
                progress=progress,
            )
        except MarketDataError as exc:
            log.warning("refresh failed: {}", exc)
            return await self._ended(job, symbol, "error", progress, exc)
        except asyncio.CancelledError:
            job.results.append(await self._ended(job, symbol, "cancelled", progress))
            raise
        except Exception as exc:
            # A bug must not end the job silently or hide the other symbols' results.
            log.opt(exception=exc).error("refresh failed unexpectedly")
            return await self._ended(job, symbol, "error", progress, exc)
        if result.outcome is CacheOutcome.STALE:
            # stale-if-error serves readers, but a refresh that reached nothing did not refresh.
            error = GatewayUnavailable(
                self.connection.host,
                self.connection.port,
                f"nothing could be fetched; the cache keeps its {len(result.bars)} older bars",
            )
            return await self._ended(job, symbol, "error", progress, error, len(result.bars))
        return await self._ended(job, symbol, "ok", progress, cached=len(result.bars))

    async def _ended(
        self,
        job: RefreshJob,
        symbol: str,
        status: Literal["ok", "error", "cancelled"],
        progress: FetchProgress,
        error: Exception | None = None,
        cached: int | None = None,
    ) -> SymbolRefresh:
        """`cached`: the bars the service just read for the range, when it got that far."""
        if cached is None:
            cached = await self._count_cached(job, symbol)
        return SymbolRefresh(
            symbol, job.request.data_type, status, progress.bars_committed, cached, error
        )

    async def _count_cached(self, job: RefreshJob, symbol: str) -> int:
        series = SeriesKey(symbol, job.request.exchange, job.request.data_type.value)
        repository = self.service.repository
        try:
            summary = await repository.database.run(
                repository.summarize, series, job.request.start, job.request.end, None
            )
        except Exception as exc:
            # The database failing now must not turn a finished symbol into a crashed job.
            logger.bind(job_id=job.job_id, symbol=symbol).warning(
                "cannot count cached bars: {}", exc
            )
            return 0
        return summary.bars

    async def _record_cancelled(self, job: RefreshJob) -> None:
        done = {result.symbol for result in job.results}
        for symbol in job.request.symbols:
            if symbol not in done:
                job.results.append(await self._ended(job, symbol, "cancelled", FetchProgress()))
        job.status = "cancelled"
        job.finished_at = self.clock()
        self._forget_old_jobs()

    def _forget_old_jobs(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job.finished]
        for job_id in finished[: max(0, len(finished) - self.keep_finished)]:
            del self._jobs[job_id]
