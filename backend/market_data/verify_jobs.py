"""Verify jobs: a sample of each series' cached segments asked for again, drift counted (and with
repair healed), in asyncio tasks on the app's loop, tracked in memory like refresh jobs.

A verify needs IBKR, so DEBUG_MODE refuses it before anything is queued (VerifyNeedsIBKR).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from loguru import logger

from backend.market_data.domain import SeriesKey
from backend.market_data.errors import MarketDataError
from backend.market_data.refresh_jobs import FINISHED, JobStatus
from backend.market_data.service import Drift, MarketDataService

DEFAULT_SAMPLES = 3
MAX_SAMPLES = 20


class VerifyNeedsIBKR(MarketDataError):
    """DEBUG_MODE never contacts IBKR, and verifying is asking IBKR again."""

    code = "verify_in_debug_mode"

    def __init__(self) -> None:
        super().__init__(
            "verify asks IBKR for cached bars again, and DEBUG_MODE never contacts IBKR: the "
            "cache serves the price basis it has (each series' basis_at says as of when). "
            "Run the backend with DEBUG_MODE=false to verify."
        )


@dataclass
class SeriesVerified:
    """How one series' verify ended: its drift when it was checked, else the error."""

    series: SeriesKey
    status: Literal["ok", "error", "cancelled"]
    drift: Drift | None = None
    error: Exception | None = None


@dataclass
class VerifyJob:
    job_id: str
    created_at: datetime
    series: list[SeriesKey]
    samples: int
    repair: bool
    status: JobStatus = "queued"
    finished_at: datetime | None = None
    results: list[SeriesVerified] = field(default_factory=list)
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class VerifyJobs:
    """Verifies through the refresh service, so a repair shares its locks and pacing budget."""

    def __init__(
        self,
        service: MarketDataService,
        clock: Callable[[], datetime],
        debug_mode: bool,
        default_exchange: str,
        keep_finished: int = 100,
    ) -> None:
        self.service = service
        self.default_exchange = default_exchange
        self.clock = clock
        self.debug_mode = debug_mode
        self.keep_finished = keep_finished
        self._jobs: dict[str, VerifyJob] = {}

    async def submit(
        self, series: list[SeriesKey], samples: int = DEFAULT_SAMPLES, repair: bool = False
    ) -> VerifyJob:
        """Queue a verify of each series (a series named twice is verified once)."""
        if self.debug_mode:
            raise VerifyNeedsIBKR()
        series = list(dict.fromkeys(series))
        if not series:
            raise ValueError("a verify job needs at least one series")
        job = VerifyJob(uuid.uuid4().hex, self.clock(), series, samples, repair)
        self._jobs[job.job_id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job))
        self._forget_old_jobs()
        return job

    def get(self, job_id: str) -> VerifyJob | None:
        return self._jobs.get(job_id)

    async def wait(self, job: VerifyJob, timeout_s: float) -> VerifyJob:
        """Wait up to timeout_s for the job to finish; the job keeps running if it does not."""
        if job.task is not None and not job.finished:
            await asyncio.wait([job.task], timeout=timeout_s)
        return job

    async def cancel(self, job_id: str) -> VerifyJob | None:
        """Stop a job after the request in flight; a finished job stays as it is."""
        job = self._jobs.get(job_id)
        if job is None or job.finished or job.task is None:
            return job
        job.task.cancel()
        await asyncio.wait([job.task])
        return job

    async def cancel_running(self) -> None:
        """On shutdown: stop unfinished jobs rather than leave tasks on a closing loop."""
        tasks = [job.task for job in self._jobs.values() if job.task and not job.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: VerifyJob) -> None:
        job.status = "running"
        log = logger.bind(job_id=job.job_id)
        log.info("verify job started: {} series, {} samples each", len(job.series), job.samples)
        try:
            for series in job.series:
                job.results.append(await self._verify_one(job, series))
        except asyncio.CancelledError:
            done = {result.series for result in job.results}
            job.results.extend(
                SeriesVerified(series, "cancelled") for series in job.series if series not in done
            )
            job.status = "cancelled"
            job.finished_at = self.clock()
            return
        succeeded = sum(result.status == "ok" for result in job.results)
        if succeeded == len(job.results):
            job.status = "completed"
        else:
            job.status = "failed" if succeeded == 0 else "partial"
        job.finished_at = self.clock()
        drifted = sum(1 for result in job.results if result.drift and result.drift.drift)
        log.info("verify job {}: {} series drifted", job.status, drifted)
        self._forget_old_jobs()

    async def _verify_one(self, job: VerifyJob, series: SeriesKey) -> SeriesVerified:
        log = logger.bind(job_id=job.job_id, symbol=series.symbol, series=series.label())
        try:
            drift = await self.service.verify_series(series, job.samples, job.repair)
        except MarketDataError as exc:
            log.warning("verify failed: {}", exc)
            return SeriesVerified(series, "error", error=exc)
        except asyncio.CancelledError:
            job.results.append(SeriesVerified(series, "cancelled"))
            raise
        except Exception as exc:
            # A bug must not end the job silently or hide the other series' results.
            log.opt(exception=exc).error("verify failed unexpectedly")
            return SeriesVerified(series, "error", error=exc)
        return SeriesVerified(series, "ok", drift=drift)

    def _forget_old_jobs(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job.finished]
        for job_id in finished[: max(0, len(finished) - self.keep_finished)]:
            del self._jobs[job_id]
