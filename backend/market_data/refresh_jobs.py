"""Refresh jobs: fill the cache from IBKR in asyncio tasks on the app's loop, recorded in the
database so that every replica answers for every job.

A job is a row (backend/storage/refresh_job_tables.py) written at each step: queued, running,
each series' result, the end. The process running it is its owner and stamps a heartbeat every
JOB_HEARTBEAT_S; a queued or running job whose heartbeat is JOB_MISSED_HEARTBEATS old is shown
as interrupted (its process died), and so is a job this process stopped on shutdown. Resuming
one, on any replica or from the CLI, re-runs its request through the read-through path for the
series it had not finished: the cache's coverage knows what the first run committed, so only
the rest is fetched. Cancelling a job another replica runs sets a flag in its row that the
owner's heartbeat reads. ib_insync is bound to the app's event loop, so jobs must be submitted
from it (from an async route), never from a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from loguru import logger

from backend.ibkr.connection import IBConnection
from backend.market_data import calendar as market_calendar
from backend.market_data.domain import DEFAULT_DAYS_BACK, BarSize, SecType, SeriesKey, WhatToShow
from backend.market_data.errors import GatewayUnavailable, MarketDataError
from backend.market_data.request_budget import (
    JobQueueFull,
    RequestBudgetExceeded,
    RequestEstimate,
    RequestPlanner,
)
from backend.market_data.service import CacheOutcome, FetchProgress, MarketDataService
from backend.storage.refresh_job_repository import RefreshJobRepository, stale_before
from backend.storage.refresh_job_tables import RefreshJobRow

JobStatus = Literal[
    "queued", "running", "completed", "partial", "failed", "cancelled", "interrupted"
]
FINISHED: tuple[JobStatus, ...] = ("completed", "partial", "failed", "cancelled")
UNFINISHED: tuple[JobStatus, ...] = ("queued", "running")
# What a resume takes over: a job that stopped before all its series were fetched.
RESUMABLE: tuple[JobStatus, ...] = ("interrupted", "cancelled", "failed", "partial")
BudgetPolicy = Literal["refuse", "queue"]
# Shutdown waits this long for a job's task to record that it stopped.
SHUTDOWN_WAIT_S = 5.0
# Old jobs are pruned when a job ends, at most this often: a burst of small jobs ending together
# needs one pruning, not one each.
PRUNE_EVERY_S = 30.0


def new_instance_id() -> str:
    """This process's id as a job owner: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobNotResumable(MarketDataError):
    code = "job_not_resumable"

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(
            f"refresh job {job_id} is {status}: only an interrupted, cancelled, failed or "
            "partial job can be resumed (a running one's process is still heartbeating; a "
            "completed one has nothing left to fetch)"
        )


@dataclass(frozen=True)
class RefreshErrorInfo:
    """A series' error as every replica shows it: the typed error's code, message and HTTP
    status, mapped once when it happened."""

    code: str
    detail: str
    status_code: int


@dataclass
class SymbolRefresh:
    """How one series' refresh ended.

    Both counts come from the database: bars_fetched is what this job committed for the series
    (also when it then failed or was cancelled), bars_cached what the cache holds for the range.
    """

    series: SeriesKey
    status: Literal["ok", "error", "cancelled"]
    bars_fetched: int = 0
    bars_cached: int = 0
    error: RefreshErrorInfo | None = None
    # IBKR's contract id, once the cache holds bars of the series.
    con_id: int | None = None

    @property
    def symbol(self) -> str:
        return self.series.symbol

    @property
    def data_type(self) -> BarSize:
        return self.series.bar_size

    def to_json(self) -> dict[str, Any]:
        return {
            "series": asdict(self.series),
            "status": self.status,
            "bars_fetched": self.bars_fetched,
            "bars_cached": self.bars_cached,
            "error": None if self.error is None else asdict(self.error),
            "con_id": self.con_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SymbolRefresh:
        error = data.get("error")
        return cls(
            series=SeriesKey(**data["series"]),
            status=data["status"],
            bars_fetched=data["bars_fetched"],
            bars_cached=data["bars_cached"],
            error=None if error is None else RefreshErrorInfo(**error),
            con_id=data.get("con_id"),
        )


@dataclass
class JobRun:
    """One run of a job: the first, or a resume. requests_sent counts the historical requests
    whose answers the run committed (the cache's chunks), so a resume's shows what it fetched."""

    owner: str
    started_at: datetime
    estimated_requests: int
    requests_sent: int = 0
    resumed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "started_at": self.started_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRun:
        return cls(**{**data, "started_at": datetime.fromisoformat(data["started_at"])})


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

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "data_type": self.data_type.value,
            "sec_type": self.sec_type.value,
            "what_to_show": self.what_to_show.value,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRequest:
        return cls(
            **{
                **data,
                "data_type": BarSize(data["data_type"]),
                "sec_type": SecType(data["sec_type"]),
                "what_to_show": WhatToShow(data["what_to_show"]),
                "start": datetime.fromisoformat(data["start"]),
                "end": datetime.fromisoformat(data["end"]),
            }
        )


def _shown_symbol(series: SeriesKey) -> str:
    if series.sec_type == SecType.CASH:
        return f"{series.symbol}.{series.currency}"
    return series.symbol


@dataclass
class RefreshJob:
    """A job as the database holds it, with its status as any replica sees it."""

    job_id: str
    created_at: datetime
    request: JobRequest
    # What the job fills, one series per symbol, in the request's order.
    series: list[SeriesKey]
    estimate: RequestEstimate
    status: JobStatus = "queued"
    finished_at: datetime | None = None
    results: list[SymbolRefresh] = field(default_factory=list)
    started_at: datetime | None = None
    owner: str = ""
    heartbeat_at: datetime | None = None
    cancel_requested: bool = False
    runs: list[JobRun] = field(default_factory=list)
    # With REQUEST_BUDGET_POLICY=queue: how long the jobs ahead of it take, when it was queued.
    wait_s: float | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def requests_sent(self) -> int:
        return sum(run.requests_sent for run in self.runs)


@dataclass
class _LocalJob:
    """A job this process runs: its task and what it has done so far."""

    job_id: str
    request: JobRequest
    series: list[SeriesKey]
    to_run: list[SeriesKey]
    estimated_requests: int
    results: list[SymbolRefresh]
    runs: list[JobRun]
    status: JobStatus = "queued"
    current: FetchProgress | None = None
    task: asyncio.Task | None = field(default=None, repr=False)
    # Set when another process took the job over: this one writes nothing more.
    lost: bool = False
    # Set on shutdown: the job is recorded interrupted (resumable), not cancelled.
    stopping: bool = False

    @property
    def run(self) -> JobRun:
        return self.runs[-1]

    def runs_json(self) -> list[dict[str, Any]]:
        # The running series' committed requests count before its result is written.
        current = self.current.requests_committed if self.current else 0
        runs = [run.to_json() for run in self.runs]
        runs[-1]["requests_sent"] += current
        return runs


class RefreshJobs:
    """Refreshes through the read-through service (allowed in DEBUG_MODE), one symbol at a time.

    Every read answers from the database; tasks and heartbeats are this process's own.
    """

    def __init__(
        self,
        service: MarketDataService,
        connection: IBConnection,
        planner: RequestPlanner,
        repository: RefreshJobRepository,
        clock: Callable[[], datetime],
        default_exchange: str,
        instance_id: str,
        describe_error: Callable[[Exception], tuple[str, str, int]],
        budget_policy: BudgetPolicy = "refuse",
        queue_ceiling: int = 4320,
        heartbeat_s: float = 5.0,
        missed_heartbeats: int = 3,
        keep_finished: int = 100,
        keep_days: float = 7.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.service = service
        self.connection = connection
        self.planner = planner
        self.repository = repository
        self.clock = clock
        self.default_exchange = default_exchange
        self.instance_id = instance_id
        self.describe_error = describe_error
        self.budget_policy = budget_policy
        self.queue_ceiling = queue_ceiling
        self.heartbeat_s = heartbeat_s
        self.missed_heartbeats = missed_heartbeats
        self.keep_finished = keep_finished
        self.keep_days = keep_days
        self.sleep = sleep
        self._local: dict[str, _LocalJob] = {}
        self._heartbeat_task: asyncio.Task | None = None
        self._pruned_at: datetime | None = None

    # -- reads (any replica) --------------------------------------------------------------------

    def _run_db(self, function, *args, **kwargs):
        return self.service.repository.database.run(function, *args, **kwargs)

    def _stale_before(self) -> datetime:
        return stale_before(self.clock(), self.heartbeat_s, self.missed_heartbeats)

    async def get(self, job_id: str) -> RefreshJob | None:
        row = await self._run_db(self.repository.get, job_id)
        return None if row is None else self._view(row)

    def _view(self, row: RefreshJobRow) -> RefreshJob:
        status: JobStatus = row.status  # type: ignore[assignment]
        if status in UNFINISHED and row.heartbeat_at < self._stale_before():
            status = "interrupted"
        return RefreshJob(
            job_id=row.job_id,
            created_at=row.created_at,
            request=JobRequest.from_json(row.request),
            series=[SeriesKey(**one) for one in row.series],
            estimate=RequestEstimate(row.estimate["requests"], row.estimate["duration_s"]),
            status=status,
            finished_at=row.finished_at,
            results=[SymbolRefresh.from_json(one) for one in row.results],
            started_at=row.started_at,
            owner=row.owner,
            heartbeat_at=row.heartbeat_at,
            cancel_requested=row.cancel_requested,
            runs=[JobRun.from_json(one) for one in row.runs],
            wait_s=row.estimate.get("wait_s"),
        )

    def jobs(self) -> list[_LocalJob]:
        """The jobs this process runs or ran since it started (for its metrics)."""
        return list(self._local.values())

    async def wait(self, job: RefreshJob, timeout_s: float) -> RefreshJob:
        """Wait up to timeout_s for the job to finish; the job keeps running if it does not."""
        local = self._local.get(job.job_id)
        if local is not None and local.task is not None and not local.task.done():
            await asyncio.wait([local.task], timeout=timeout_s)
        return await self.get(job.job_id) or job

    # -- submit ---------------------------------------------------------------------------------

    async def submit(
        self,
        series: list[SeriesKey],
        days_back: int | None = None,
        force: bool = False,
    ) -> RefreshJob:
        """Plan and record a job for series of one asset class, bar size and exchange (as
        parse_series gives them), then run it here.

        Refused before anything is recorded: UnsupportedExchange; with the refuse policy,
        RequestBudgetExceeded for a job above REQUEST_CEILING and JobQueueFull when the jobs
        unfinished on every replica, with this one, need more than JOB_QUEUE_CEILING. With the
        queue policy the job is recorded queued and waits its turn instead (wait_s).
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
        estimate = await self.planner.estimate_series(series, start, end, force=force)
        backlog = await self._run_db(self.repository.backlog, self._stale_before())
        queued = sum(entry.estimated_requests for entry in backlog)
        wait_s = None
        if self.budget_policy == "refuse":
            if estimate.requests > self.planner.ceiling:
                raise RequestBudgetExceeded(estimate, self.planner.ceiling, "this refresh")
            if queued + estimate.requests > self.queue_ceiling:
                raise JobQueueFull(estimate, queued, self.queue_ceiling)
        elif not self._may_start(estimate.requests, queued, bool(backlog)):
            wait_s = round(self.planner.duration_s(queued), 1)
        request = JobRequest.of(series, days_back, force, start, end)
        job_id = uuid.uuid4().hex
        run = JobRun(self.instance_id, now, estimate.requests)
        row = RefreshJobRow(
            job_id=job_id,
            status="queued",
            created_at=now,
            owner=self.instance_id,
            heartbeat_at=now,
            estimated_requests=estimate.requests,
            request=request.to_json(),
            series=[asdict(one) for one in series],
            estimate={**estimate.to_json(), "wait_s": wait_s},
            results=[],
            runs=[run.to_json()],
        )
        await self._run_db(self.repository.insert, row)
        self._start(_LocalJob(job_id, request, series, series, estimate.requests, [], [run]))
        return self._view(row)

    def _may_start(self, requests: int, ahead: int, anything_ahead: bool) -> bool:
        """Queue policy: a job starts when nothing is ahead of it, or when it is within
        REQUEST_CEILING and fits beside the jobs ahead under JOB_QUEUE_CEILING."""
        if not anything_ahead:
            return True
        return requests <= self.planner.ceiling and ahead + requests <= self.queue_ceiling

    # -- resume ---------------------------------------------------------------------------------

    async def resume(self, job_id: str) -> RefreshJob | None:
        """Take over an interrupted (or cancelled, failed, partial) job and run, here, the
        series it had not fetched; None for an unknown job, JobNotResumable for one that is
        running elsewhere or completed. Its results keep the series that had ended ok."""
        row = await self._run_db(self.repository.get, job_id)
        if row is None:
            return None
        job = self._view(row)
        if job.status not in RESUMABLE or job_id in self._local and not self._ended(job_id):
            raise JobNotResumable(job_id, job.status)
        kept = [result for result in job.results if result.status == "ok"]
        done = {result.series for result in kept}
        to_run = [one for one in job.series if one not in done]
        estimate = await self.planner.estimate_series(
            to_run, job.request.start, job.request.end, force=job.request.force
        )
        now = self.clock()
        runs = [*job.runs, JobRun(self.instance_id, now, estimate.requests, resumed=True)]
        taken = await self._run_db(
            self.repository.take_over,
            job_id,
            self.instance_id,
            now,
            self._stale_before(),
            RESUMABLE,
            status="queued",
            finished_at=None,
            estimated_requests=estimate.requests,
            results=[result.to_json() for result in kept],
            runs=[run.to_json() for run in runs],
        )
        if not taken:
            # Another replica resumed it first, or its owner heartbeat in between.
            fresh = await self.get(job_id)
            raise JobNotResumable(job_id, fresh.status if fresh else "gone")
        logger.bind(job_id=job_id).info(
            "refresh job resumed: {} of {} series left, ~{} requests",
            len(to_run),
            len(job.series),
            estimate.requests,
        )
        self._start(
            _LocalJob(job_id, job.request, job.series, to_run, estimate.requests, list(kept), runs)
        )
        return await self.get(job_id)

    def _ended(self, job_id: str) -> bool:
        task = self._local[job_id].task
        return task is None or task.done()

    # -- cancel ---------------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> RefreshJob | None:
        """Stop a job: no request is sent after the one in flight. A finished job stays as is.

        A job this process runs is stopped at once. One another replica runs is flagged, and
        its owner stops it at its next heartbeat; this waits for that a few heartbeats and
        answers with the job as it then is (cancel_requested shows the flag). A job whose
        owner has stopped is recorded cancelled here.
        """
        local = self._local.get(job_id)
        if local is not None and local.task is not None and not local.task.done():
            local.task.cancel()
            # The task ends at its next await; committing a chunk in progress finishes first.
            await asyncio.wait([local.task])
            return await self.get(job_id)
        job = await self.get(job_id)
        if job is None or job.finished:
            return job
        if job.status == "interrupted":
            return await self._cancel_abandoned(job)
        await self._run_db(self.repository.request_cancel, job_id)
        deadline = asyncio.get_running_loop().time() + self.heartbeat_s * (
            self.missed_heartbeats + 1
        )
        while asyncio.get_running_loop().time() < deadline:
            await self.sleep(min(0.1, self.heartbeat_s / 4))
            job = await self.get(job_id)
            if job is None or job.finished or job.status == "interrupted":
                break
        if job is not None and job.status == "interrupted":
            return await self._cancel_abandoned(job)
        return job

    async def _cancel_abandoned(self, job: RefreshJob) -> RefreshJob | None:
        """An interrupted job cancelled: its series without a result end cancelled."""
        done = {result.series for result in job.results}
        results = [
            *job.results,
            *(SymbolRefresh(one, "cancelled") for one in job.series if one not in done),
        ]
        now = self.clock()
        await self._run_db(
            self.repository.take_over,
            job.job_id,
            self.instance_id,
            now,
            self._stale_before(),
            ("interrupted",),
            status="cancelled",
            finished_at=now,
            results=[result.to_json() for result in results],
        )
        return await self.get(job.job_id)

    async def cancel_running(self) -> None:
        """On shutdown: stop unfinished jobs, recorded interrupted so that any replica (or this
        one after its restart) can resume them."""
        tasks = []
        for local in self._local.values():
            if local.task is not None and not local.task.done():
                local.stopping = True
                local.task.cancel()
                tasks.append(local.task)
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT_S)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)
            self._heartbeat_task = None

    # -- running --------------------------------------------------------------------------------

    def _start(self, local: _LocalJob) -> None:
        self._local[local.job_id] = local
        local.task = asyncio.get_running_loop().create_task(self._run(local))
        if self._heartbeat_task is None or self._heartbeat_task.done():
            self._heartbeat_task = asyncio.get_running_loop().create_task(self._heartbeats())

    async def _write(self, local: _LocalJob, **values: Any) -> None:
        """Record the job's state, unless another process has taken it over."""
        if local.lost:
            return
        try:
            owned = await self._run_db(
                self.repository.update_owned, local.job_id, self.instance_id, **values
            )
        except Exception as exc:
            # The database failing now must not crash the job; its heartbeat will lapse and
            # the job show interrupted if this persists.
            logger.bind(job_id=local.job_id).warning("cannot record the refresh job: {}", exc)
            return
        if not owned:
            local.lost = True

    async def _heartbeats(self) -> None:
        """Stamp this process's unfinished jobs alive; stop those another replica cancelled
        or took over."""
        while True:
            await self.sleep(self.heartbeat_s)
            running = {
                job_id: local
                for job_id, local in self._local.items()
                if local.task is not None and not local.task.done() and not local.lost
            }
            if not running:
                self._heartbeat_task = None
                return
            try:
                beats = await self._run_db(
                    self.repository.heartbeat,
                    self.instance_id,
                    list(running),
                    self.clock(),
                    {job_id: local.runs_json() for job_id, local in running.items()},
                )
            except Exception as exc:
                logger.warning("cannot record the refresh jobs' heartbeat: {}", exc)
                continue
            for beat in beats:
                local = running[beat.job_id]
                if not beat.still_owned:
                    logger.bind(job_id=beat.job_id).warning(
                        "refresh job taken over by another process; stopping it here"
                    )
                    local.lost = True
                if (beat.cancel_requested or local.lost) and local.task is not None:
                    local.task.cancel()

    async def _wait_for_turn(self, local: _LocalJob) -> None:
        """Queue policy: wait until the jobs ahead leave room for this one."""
        if self.budget_policy != "queue":
            return
        while True:
            backlog = await self._run_db(self.repository.backlog, self._stale_before())
            # Oldest first (ties by id): the jobs before this one in the list are ahead of it.
            ids = [entry.job_id for entry in backlog]
            ahead = backlog[: ids.index(local.job_id)] if local.job_id in ids else backlog
            queued = sum(entry.estimated_requests for entry in ahead)
            if self._may_start(local.estimated_requests, queued, bool(ahead)):
                return
            await self.sleep(self.heartbeat_s)

    async def _run(self, local: _LocalJob) -> None:
        log = logger.bind(job_id=local.job_id, data_type=local.request.data_type.value)
        try:
            try:
                await self._wait_for_turn(local)
                local.status = "running"
                await self._write(local, status="running", started_at=self.clock())
                log.info(
                    "refresh job started: {} series on {}, ~{} requests",
                    len(local.to_run),
                    local.request.exchange,
                    local.estimated_requests,
                )
                try:
                    # Checked once up front: with the gateway down every symbol fails the same
                    # way, and finding that out per symbol would first plan each one's range.
                    await self.connection.ensure_connected()
                except GatewayUnavailable as exc:
                    log.warning("refresh job cannot start: {}", exc)
                    for series in local.to_run:
                        await self._add_result(
                            local, await self._ended_one(local, series, "error", None, exc)
                        )
                else:
                    for index, series in enumerate(local.to_run):
                        # The last result is written with the job's end, in one update.
                        last = index == len(local.to_run) - 1
                        result = await self._refresh_one(local, series)
                        await self._add_result(local, result, write=not last)
            except asyncio.CancelledError:
                await self._record_stopped(local)
                log.info(
                    "refresh job {} after {} of {} symbols",
                    local.status,
                    len(local.results),
                    len(local.series),
                )
                return
            succeeded = sum(result.status == "ok" for result in local.results)
            if succeeded == len(local.results):
                local.status = "completed"
            else:
                local.status = "failed" if succeeded == 0 else "partial"
            await self._write(
                local,
                status=local.status,
                finished_at=self.clock(),
                results=[one.to_json() for one in local.results],
                runs=[run.to_json() for run in local.runs],
            )
            log.info(
                "refresh job {}: {} of {} symbols ok", local.status, succeeded, len(local.results)
            )
            await self._prune()
        except Exception as exc:
            # A bug must not leave the job running forever in its row.
            log.opt(exception=exc).error("refresh job failed unexpectedly")
            local.status = "failed"
            await self._write(local, status="failed", finished_at=self.clock())

    async def _add_result(
        self, local: _LocalJob, result: SymbolRefresh, write: bool = True
    ) -> None:
        local.results.append(result)
        local.run.requests_sent += local.current.requests_committed if local.current else 0
        local.current = None
        if not write:
            return
        await self._write(
            local,
            results=[one.to_json() for one in local.results],
            runs=[run.to_json() for run in local.runs],
        )

    async def _refresh_one(self, local: _LocalJob, series: SeriesKey) -> SymbolRefresh:
        log = logger.bind(job_id=local.job_id, symbol=series.symbol, series=series.label())
        progress = local.current = FetchProgress()
        try:
            result = await self.service.read_series(
                series,
                local.request.start,
                local.request.end,
                force_refresh=local.request.force,
                progress=progress,
            )
        except MarketDataError as exc:
            log.warning("refresh failed: {}", exc)
            return await self._ended_one(local, series, "error", progress, exc)
        except asyncio.CancelledError:
            ended = "interrupted" if local.stopping else "cancelled"
            if ended == "cancelled":
                local.results.append(await self._ended_one(local, series, "cancelled", progress))
            local.run.requests_sent += progress.requests_committed
            local.current = None
            raise
        except Exception as exc:
            # A bug must not end the job silently or hide the other symbols' results.
            log.opt(exception=exc).error("refresh failed unexpectedly")
            return await self._ended_one(local, series, "error", progress, exc)
        if result.outcome is CacheOutcome.STALE:
            # stale-if-error serves readers, but a refresh that reached nothing did not refresh.
            error = GatewayUnavailable(
                self.connection.host,
                self.connection.port,
                f"nothing could be fetched; the cache keeps its {len(result.bars)} older bars",
            )
            return await self._ended_one(local, series, "error", progress, error, len(result.bars))
        return await self._ended_one(local, series, "ok", progress, cached=len(result.bars))

    async def _ended_one(
        self,
        local: _LocalJob,
        series: SeriesKey,
        status: Literal["ok", "error", "cancelled"],
        progress: FetchProgress | None,
        error: Exception | None = None,
        cached: int | None = None,
    ) -> SymbolRefresh:
        """`cached`: the bars the service just read for the range, when it got that far."""
        repository = self.service.repository
        fetched = progress.bars_committed if progress else 0
        info = None if error is None else RefreshErrorInfo(*self.describe_error(error))
        try:
            if cached is None:
                coverage = await repository.database.run(
                    repository.summarize, series, local.request.start, local.request.end, None
                )
                cached = coverage.bars
            summary = await repository.database.run(repository.series_summary, series)
        except Exception as exc:
            # The database failing now must not turn a finished symbol into a crashed job.
            logger.bind(job_id=local.job_id, symbol=series.symbol).warning(
                "cannot count cached bars: {}", exc
            )
            return SymbolRefresh(series, status, fetched, cached or 0, info)
        con_id = summary.con_id if summary else None
        return SymbolRefresh(series, status, fetched, cached, info, con_id)

    async def _record_stopped(self, local: _LocalJob) -> None:
        """Cancelled (on request, or from another replica), or interrupted by shutdown."""
        runs = [run.to_json() for run in local.runs]
        if local.stopping:
            local.status = "interrupted"
            await self._write(
                local, status="interrupted", results=[r.to_json() for r in local.results], runs=runs
            )
            return
        done = {result.series for result in local.results}
        for series in local.series:
            if series not in done:
                local.results.append(await self._ended_one(local, series, "cancelled", None))
        local.status = "cancelled"
        await self._write(
            local,
            status="cancelled",
            finished_at=self.clock(),
            results=[result.to_json() for result in local.results],
            runs=runs,
        )
        await self._prune()

    async def _prune(self) -> None:
        now = self.clock()
        if self._pruned_at is not None and abs(now - self._pruned_at).total_seconds() < (
            PRUNE_EVERY_S
        ):
            return
        self._pruned_at = now
        ended_before = now - timedelta(days=self.keep_days)
        try:
            await self._run_db(self.repository.prune, ended_before, self.keep_finished)
        except Exception as exc:
            logger.warning("cannot prune old refresh jobs: {}", exc)
