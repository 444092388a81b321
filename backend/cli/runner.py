"""Runs one cache population, in-process or through a running backend, and returns the exit code."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from backend.cli.api_client import UNFINISHED, BackendError, RefreshApiClient
from backend.cli.renderers import Output
from backend.containers import Container, close_command_parts
from backend.market_data.domain import SecType, SeriesKey
from backend.market_data.errors import GatewayUnavailable
from backend.market_data.population import (
    PopulationRequest,
    SeriesFinished,
    SeriesResult,
    SeriesStatus,
    failed,
)
from backend.market_data.refresh_jobs import JobNotResumable, SymbolRefresh

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def populate_in_process(
    request: PopulationRequest, container: Container, output: Output, *, dry_run: bool = False
) -> int:
    try:
        return asyncio.run(_populate(request, container, output, dry_run))
    except KeyboardInterrupt:
        # Each chunk is its own transaction: what was committed before Ctrl-C stays cached.
        output.interrupted(f"interrupted; {output.chunks_stored} chunks committed are kept")
        return EXIT_INTERRUPTED


async def _populate(
    request: PopulationRequest, container: Container, output: Output, dry_run: bool
) -> int:
    # ib_insync looks its loop up through get_event_loop(); make that the loop asyncio.run made.
    asyncio.set_event_loop(asyncio.get_running_loop())
    service = container.cache_population_service()
    try:
        if dry_run:
            output.dry_run(await service.plan(request), container.pacing().limits)
            return EXIT_OK
        with output.live():
            results = await service.populate(request, output.handle)
        exit_code = EXIT_FAILED if failed(results) else EXIT_OK
        output.summary(results, exit_code)
        return exit_code
    except GatewayUnavailable as exc:
        output.fatal(str(exc), exc.code)
        return EXIT_FAILED
    except SQLAlchemyError as exc:
        output.fatal(_database_problem(container.database().url, exc), "database_error")
        return EXIT_FAILED
    finally:
        await close_command_parts(container)


def _database_problem(url: str, exc: SQLAlchemyError) -> str:
    shown = make_url(url).render_as_string(hide_password=True)
    first_line = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return (
        f"the database {shown} cannot be used ({first_line}). Check DATABASE_URL and that it is "
        "migrated (make migrate)."
    )


def populate_via_api(
    request: PopulationRequest,
    api_url: str,
    token: str | None,
    output: Output,
    *,
    first_poll_s: float = 0.2,
    max_poll_s: float = 2.0,
) -> int:
    """One backend refresh job per bar size and kind of series, polled until each has finished."""
    try:
        with RefreshApiClient(api_url, token) as client, output.live():
            groups = job_groups(request.series)
            jobs = [client.start(group, request.days_back, request.force) for group in groups]
            results = _follow_jobs(
                client, jobs, [group[0] for group in groups], output, first_poll_s, max_poll_s
            )
    except BackendError as exc:
        output.fatal(str(exc), exc.code)
        return exc.exit_code
    except KeyboardInterrupt:
        output.interrupted(
            "interrupted; the backend's refresh jobs keep running and keep what they commit"
        )
        return EXIT_INTERRUPTED
    failed_jobs = [job for job in jobs if job["status"] == "failed"]
    exit_code = EXIT_FAILED if failed(results) or failed_jobs else EXIT_OK
    output.summary(results, exit_code)
    return exit_code


def job_groups(series: tuple[SeriesKey, ...]) -> list[list[SeriesKey]]:
    """The series one refresh request can name together: the same bar size, asset class,
    exchange, expiry, whatToShow and hours (and currency, but for FX pairs), in request order."""
    groups: dict[tuple, list[SeriesKey]] = {}
    for one in series:
        currency = None if one.sec_type == SecType.CASH else one.currency
        key = (
            one.data_type,
            one.sec_type,
            one.exchange,
            currency,
            one.expiry,
            one.what_to_show,
            one.use_rth,
        )
        groups.setdefault(key, []).append(one)
    return list(groups.values())


def _follow_jobs(
    client: RefreshApiClient,
    jobs: list[dict[str, Any]],
    asked: list[SeriesKey],
    output: Output,
    first_poll_s: float,
    max_poll_s: float,
) -> list[SeriesResult]:
    """`asked`: a series of each job, for what a result row does not say itself."""
    reported: dict[SeriesKey, SeriesResult] = {}
    # Short jobs finish after a poll or two; long ones are asked at most every max_poll_s.
    poll_s = first_poll_s
    while True:
        for job, like in zip(jobs, asked, strict=True):
            for entry in job.get("results") or []:
                result = _result_from_api(entry, like)
                if result.series not in reported:
                    reported[result.series] = result
                    output.handle(SeriesFinished(result))
        output.job_progress(
            sum(job["progress"]["done"] for job in jobs),
            sum(job["progress"]["total"] for job in jobs),
        )
        if all(job["status"] not in UNFINISHED for job in jobs):
            return list(reported.values())
        time.sleep(poll_s)
        poll_s = min(poll_s * 1.5, max_poll_s)
        # Update in place so the caller sees each job's final status.
        for index, job in enumerate(jobs):
            if job["status"] in UNFINISHED:
                jobs[index] = client.job(job["job_id"])


def _series_from_api(entry: dict[str, Any], like: SeriesKey) -> SeriesKey:
    """The series an API body names; what it leaves out is `like`'s."""
    return SeriesKey(
        symbol=entry.get("symbol") or like.symbol,
        exchange=entry.get("exchange") or like.exchange,
        data_type=entry.get("data_type") or like.data_type,
        sec_type=entry.get("sec_type") or like.sec_type,
        currency=entry.get("currency") or like.currency,
        expiry=entry.get("expiry") or like.expiry,
        what_to_show=entry.get("what_to_show") or like.what_to_show,
        use_rth=entry.get("use_rth", like.use_rth),
    )


def _result_from_api(entry: dict[str, Any], like: SeriesKey) -> SeriesResult:
    """A job's result row as a SeriesResult; fields the row leaves out (a backend from before
    results named their series) are those of the job's request."""
    error = entry.get("error") or ({"code": "error"} if entry.get("status") != "ok" else None)
    fetched = int(entry.get("bars_fetched") or 0)
    cached = int(entry.get("bars_cached") or 0)
    if entry.get("status") != "ok":
        status = SeriesStatus.ERROR
    else:
        status = SeriesStatus.OK if fetched else SeriesStatus.FRESH
    return SeriesResult(
        series=_series_from_api(entry, like),
        status=status,
        bars_fetched=fetched,
        # The backend reports the bars in the range after the refresh (not before) and how many it
        # fetched; after a failure it does not say what the cache holds.
        bars_after=None if status is SeriesStatus.ERROR else cached,
        bars_skipped_fresh=None if status is SeriesStatus.ERROR else max(0, cached - fetched),
        error_code=error.get("code", "error") if error else None,
        error=error.get("detail") if error else None,
    )


# -- --resume --------------------------------------------------------------------------------


def resume_in_process(job_id: str, container: Container, output: Output) -> int:
    """Take a stored job over in this process and run what it had not finished."""
    try:
        return asyncio.run(_resume(job_id, container, output))
    except KeyboardInterrupt:
        output.interrupted(
            f"interrupted; the job's committed chunks are kept; --resume {job_id} goes on"
        )
        return EXIT_INTERRUPTED


async def _resume(job_id: str, container: Container, output: Output) -> int:
    asyncio.set_event_loop(asyncio.get_running_loop())
    jobs = container.refresh_jobs()
    try:
        try:
            job = await jobs.resume(job_id)
        except JobNotResumable as exc:
            output.fatal(str(exc), exc.code)
            return EXIT_USAGE
        if job is None:
            output.fatal(f"no refresh job {job_id} in the database", "not_found")
            return EXIT_USAGE
        with output.live():
            while not job.finished and job.status != "interrupted":
                job = await jobs.wait(job, 1.0)
                output.job_progress(len(job.results), len(job.series))
        results = [_result_of(result) for result in job.results]
        for result in results:
            output.handle(SeriesFinished(result))
        run = job.runs[-1]
        output.log_sink(
            f"resumed job {job_id}: {run.requests_sent} requests sent for what was missing "
            f"({run.estimated_requests} planned)\n"
        )
        exit_code = EXIT_OK if job.status == "completed" else EXIT_FAILED
        output.summary(results, exit_code)
        return exit_code
    except GatewayUnavailable as exc:
        output.fatal(str(exc), exc.code)
        return EXIT_FAILED
    except SQLAlchemyError as exc:
        output.fatal(_database_problem(container.database().url, exc), "database_error")
        return EXIT_FAILED
    finally:
        await jobs.cancel_running()
        await close_command_parts(container)


def _result_of(result: SymbolRefresh) -> SeriesResult:
    if result.status != "ok":
        status = SeriesStatus.ERROR
    else:
        status = SeriesStatus.OK if result.bars_fetched else SeriesStatus.FRESH
    error = result.error
    return SeriesResult(
        series=result.series,
        status=status,
        bars_fetched=result.bars_fetched,
        bars_after=None if status is SeriesStatus.ERROR else result.bars_cached,
        error_code=(error.code if error else "cancelled") if status is SeriesStatus.ERROR else None,
        error=(error.detail if error else "cancelled") if status is SeriesStatus.ERROR else None,
    )


def resume_via_api(
    job_id: str,
    api_url: str,
    token: str | None,
    output: Output,
    *,
    first_poll_s: float = 0.2,
    max_poll_s: float = 2.0,
) -> int:
    """POST the backend's resume route, then follow the job as populate_via_api does."""
    try:
        with RefreshApiClient(api_url, token) as client, output.live():
            job = client.resume(job_id)
            request = job.get("request") or {}
            # A stock's defaults for what the request leaves out (SeriesKey's own).
            like = _series_from_api(
                {**request, "symbol": (request.get("symbols") or ["?"])[0]},
                SeriesKey("?", "", "1d"),
            )
            jobs = [job]
            results = _follow_jobs(client, jobs, [like], output, first_poll_s, max_poll_s)
    except BackendError as exc:
        output.fatal(str(exc), exc.code)
        return exc.exit_code
    except KeyboardInterrupt:
        output.interrupted("interrupted; the backend's resumed job keeps running")
        return EXIT_INTERRUPTED
    runs = jobs[0].get("runs") or []
    if runs:
        output.log_sink(
            f"resumed job {job_id}: {runs[-1].get('requests_sent')} requests sent for what was "
            f"missing ({runs[-1].get('estimated_requests')} planned)\n"
        )
    exit_code = EXIT_OK if jobs[0]["status"] == "completed" and not failed(results) else EXIT_FAILED
    output.summary(results, exit_code)
    return exit_code
