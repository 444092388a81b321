"""The CLI's --verify and --repair: each series' sampled segments asked for again, in-process or
through a running backend, and the exit code (1 while drift is left unhealed)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from backend.cli.api_client import UNFINISHED, BackendError, RefreshApiClient
from backend.containers import Container, close_command_parts
from backend.market_data.domain import SeriesKey
from backend.market_data.errors import GatewayUnavailable, MarketDataError
from backend.market_data.service import Drift
from backend.market_data.verify_jobs import VerifyNeedsIBKR

if TYPE_CHECKING:
    from backend.cli.renderers import Output

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class VerifyOutcome:
    """What verifying one series found, or why it could not be verified."""

    series: SeriesKey
    segments_checked: int = 0
    bars_compared: int = 0
    bars_drifted: int = 0
    # Cached price over IBKR's for the drifted bars: 10 after a 10:1 split the cache missed.
    factor: float | None = None
    healed: str | None = None
    error_code: str | None = None
    error: str | None = None

    @property
    def drift(self) -> bool:
        return self.bars_drifted > 0

    @property
    def unrepaired(self) -> bool:
        return self.drift and self.healed is None

    @classmethod
    def of(cls, drift: Drift) -> VerifyOutcome:
        return cls(
            drift.series,
            drift.segments_checked,
            drift.bars_compared,
            drift.bars_drifted,
            drift.factor,
            drift.healed,
        )


def exit_code_of(outcomes: list[VerifyOutcome]) -> int:
    """1 when drift is left unhealed or a series could not be verified, else 0."""
    bad = any(outcome.unrepaired or outcome.error_code for outcome in outcomes)
    return EXIT_FAILED if bad else EXIT_OK


def verify_in_process(
    series: tuple[SeriesKey, ...], samples: int, repair: bool, container: Container, output: Output
) -> int:
    try:
        return asyncio.run(_verify(series, samples, repair, container, output))
    except KeyboardInterrupt:
        output.interrupted("interrupted; series already repaired stay repaired")
        return EXIT_INTERRUPTED


async def _verify(
    series: tuple[SeriesKey, ...],
    samples: int,
    repair: bool,
    container: Container,
    output: Output,
) -> int:
    # ib_insync looks its loop up through get_event_loop(); make that the loop asyncio.run made.
    asyncio.set_event_loop(asyncio.get_running_loop())
    try:
        if container.config.DEBUG_MODE():
            # DEBUG_MODE never contacts IBKR, and verifying is asking IBKR again.
            error = VerifyNeedsIBKR()
            output.fatal(str(error), error.code)
            return EXIT_USAGE
        service = container.refresh_service()
        outcomes: list[VerifyOutcome] = []
        for one in series:
            try:
                outcome = VerifyOutcome.of(await service.verify_series(one, samples, repair))
            except GatewayUnavailable as exc:
                output.fatal(str(exc), exc.code)
                return EXIT_FAILED
            except MarketDataError as exc:
                outcome = VerifyOutcome(one, error_code=exc.code, error=str(exc))
            outcomes.append(outcome)
            output.verified(outcome)
        exit_code = exit_code_of(outcomes)
        output.verify_summary(outcomes, exit_code)
        return exit_code
    except SQLAlchemyError as exc:
        first_line = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        output.fatal(
            f"the cache database cannot be used ({first_line}). Check DATABASE_URL and that it "
            "is migrated (make migrate).",
            "database_error",
        )
        return EXIT_FAILED
    finally:
        await close_command_parts(container)


def verify_via_api(
    groups: list[list[SeriesKey]],
    samples: int,
    repair: bool,
    api_url: str,
    token: str | None,
    output: Output,
    *,
    first_poll_s: float = 0.2,
    max_poll_s: float = 2.0,
) -> int:
    """One backend verify job per kind of series (as job_groups makes them), polled to the end."""
    try:
        with RefreshApiClient(api_url, token) as client:
            jobs = [client.start_verify(group, samples, repair) for group in groups]
            poll_s = first_poll_s
            while any(job["status"] in UNFINISHED for job in jobs):
                time.sleep(poll_s)
                poll_s = min(poll_s * 1.5, max_poll_s)
                jobs = [
                    client.verify_job(job["job_id"]) if job["status"] in UNFINISHED else job
                    for job in jobs
                ]
    except BackendError as exc:
        output.fatal(str(exc), exc.code)
        return exc.exit_code
    except KeyboardInterrupt:
        output.interrupted("interrupted; the backend's verify jobs keep running")
        return EXIT_INTERRUPTED
    outcomes = [_outcome_from_api(entry) for job in jobs for entry in job["results"]]
    for outcome in outcomes:
        output.verified(outcome)
    exit_code = exit_code_of(outcomes)
    output.verify_summary(outcomes, exit_code)
    return exit_code


def _outcome_from_api(entry: dict[str, Any]) -> VerifyOutcome:
    series = SeriesKey(
        symbol=entry["symbol"],
        exchange=entry["exchange"],
        data_type=entry["data_type"],
        sec_type=entry["sec_type"],
        currency=entry["currency"],
        expiry=entry.get("expiry") or "",
        what_to_show=entry["what_to_show"],
        use_rth=entry["use_rth"],
    )
    error = entry.get("error") or ({"code": "error"} if entry.get("status") != "ok" else None)
    return VerifyOutcome(
        series,
        int(entry.get("segments_checked") or 0),
        int(entry.get("bars_compared") or 0),
        int(entry.get("bars_drifted") or 0),
        entry.get("factor"),
        entry.get("healed"),
        error.get("code", "error") if error else None,
        error.get("detail") if error else None,
    )
