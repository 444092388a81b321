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

from backend.models.market_data import BarSize
from backend.models.market_data_api import DEFAULT_DAYS_BACK, RefreshRequest
from backend.services import market_calendar
from backend.services.errors import GatewayUnavailable, MarketDataError
from backend.services.ib_connection import IBConnection
from backend.services.ibkr_service import CacheOutcome, IBKRService

JobStatus = Literal["queued", "running", "completed", "partial", "failed"]
FINISHED: tuple[JobStatus, ...] = ("completed", "partial", "failed")


@dataclass
class SymbolRefresh:
    """How one symbol's refresh ended. `error` is the typed error the API maps to a status."""

    symbol: str
    data_type: BarSize
    status: Literal["ok", "error"]
    bars_fetched: int = 0
    bars_cached: int = 0
    error: Exception | None = None


@dataclass
class RefreshJob:
    job_id: str
    created_at: datetime
    symbols: list[str]
    exchange: str
    data_type: BarSize
    days_back: int
    force: bool
    start: datetime
    end: datetime
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
        service: IBKRService,
        connection: IBConnection,
        clock: Callable[[], datetime],
        default_exchange: str,
        keep_finished: int = 100,
    ) -> None:
        self.service = service
        self.connection = connection
        self.clock = clock
        self.default_exchange = default_exchange
        self.keep_finished = keep_finished
        self._jobs: dict[str, RefreshJob] = {}

    def submit(self, request: RefreshRequest) -> RefreshJob:
        """Queue a job for the request; raise UnsupportedExchange before queuing anything."""
        exchange = request.exchange or self.default_exchange
        market_calendar.calendar_for(exchange)
        days_back = request.days_back or DEFAULT_DAYS_BACK[request.data_type]
        now = self.clock()
        job = RefreshJob(
            job_id=uuid.uuid4().hex,
            created_at=now,
            symbols=list(dict.fromkeys(request.symbols)),
            exchange=exchange,
            data_type=request.data_type,
            days_back=days_back,
            force=request.force,
            start=now - timedelta(days=days_back),
            end=now,
        )
        self._jobs[job.job_id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job))
        self._forget_old_jobs()
        return job

    def get(self, job_id: str) -> RefreshJob | None:
        return self._jobs.get(job_id)

    async def wait(self, job: RefreshJob, timeout_s: float) -> RefreshJob:
        """Wait up to timeout_s for the job to finish; the job keeps running if it does not."""
        if job.task is not None and not job.finished:
            await asyncio.wait([job.task], timeout=timeout_s)
        return job

    async def cancel_running(self) -> None:
        """On shutdown: stop unfinished jobs rather than leave tasks on a closing loop."""
        tasks = [job.task for job in self._jobs.values() if job.task and not job.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: RefreshJob) -> None:
        job.status = "running"
        log = logger.bind(job_id=job.job_id, data_type=job.data_type.value)
        log.info("refresh job started: {} symbols on {}", len(job.symbols), job.exchange)
        try:
            # Checked once up front: with the gateway down every symbol fails the same way, and
            # finding that out per symbol would first plan each one's whole range for nothing.
            await self.connection.ensure_connected()
        except GatewayUnavailable as exc:
            log.warning("refresh job cannot start: {}", exc)
            job.results = [
                SymbolRefresh(symbol, job.data_type, "error", error=exc) for symbol in job.symbols
            ]
        else:
            for symbol in job.symbols:
                job.results.append(await self._refresh_one(job, symbol))
        succeeded = sum(result.status == "ok" for result in job.results)
        if succeeded == len(job.results):
            job.status = "completed"
        else:
            job.status = "failed" if succeeded == 0 else "partial"
        job.finished_at = self.clock()
        log.info("refresh job {}: {} of {} symbols ok", job.status, succeeded, len(job.results))
        self._forget_old_jobs()

    async def _refresh_one(self, job: RefreshJob, symbol: str) -> SymbolRefresh:
        log = logger.bind(job_id=job.job_id, symbol=symbol, data_type=job.data_type.value)
        try:
            result = await self.service.get_or_fetch_market_data(
                symbol, job.exchange, job.data_type, job.start, job.end, force_refresh=job.force
            )
        except MarketDataError as exc:
            log.warning("refresh failed: {}", exc)
            return SymbolRefresh(symbol, job.data_type, "error", error=exc)
        except Exception as exc:
            # A bug must not end the job silently or hide the other symbols' results.
            log.opt(exception=exc).error("refresh failed unexpectedly")
            return SymbolRefresh(symbol, job.data_type, "error", error=exc)
        if result.outcome is CacheOutcome.STALE:
            # stale-if-error serves readers, but a refresh that reached nothing did not refresh.
            error = GatewayUnavailable(
                self.connection.host,
                self.connection.port,
                f"nothing could be fetched; the cache keeps its {len(result.bars)} older bars",
            )
            return SymbolRefresh(
                symbol, job.data_type, "error", result.bars_fetched, len(result.bars), error
            )
        return SymbolRefresh(symbol, job.data_type, "ok", result.bars_fetched, len(result.bars))

    def _forget_old_jobs(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job.finished]
        for job_id in finished[: max(0, len(finished) - self.keep_finished)]:
            del self._jobs[job_id]
