"""What the populate CLI shows (and its --verify): rich progress bars on a terminal, else plain
lines or JSON lines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from backend.ibkr.pacing import PacingLimits, PacingStats
from backend.market_data.domain import DEFAULT_WHAT_TO_SHOW, SecType, SeriesKey
from backend.market_data.population import (
    ChunkStored,
    ProgressEvent,
    SeriesFinished,
    SeriesPlan,
    SeriesPlanned,
    SeriesResult,
    SeriesRetrying,
    SeriesStatus,
)

if TYPE_CHECKING:
    from backend.cli.verify import VerifyOutcome


def instrument_name(series: SeriesKey) -> str:
    """NVDA, EUR.USD, ES 202503 FUT, BTC CRYPTO: the contract, as the progress rows name it."""
    kind = SecType(series.sec_type)
    if kind is SecType.CASH:
        return f"{series.symbol}.{series.currency}"
    parts = [series.symbol]
    if series.expiry:
        parts.append(series.expiry)
    if kind is not SecType.STK:
        parts.append(kind.value)
    return " ".join(parts)


def series_detail(series: SeriesKey) -> str:
    """1d, or 1m MIDPOINT all hours: the bar size, with whatToShow and hours when not the
    asset class's default."""
    parts = [series.data_type]
    if series.what_to_show != DEFAULT_WHAT_TO_SHOW[SecType(series.sec_type)]:
        parts.append(series.what_to_show)
    if not series.use_rth:
        parts.append("all hours")
    return " ".join(parts)


def series_name(series: SeriesKey) -> str:
    """NVDA 1d, ES 202503 FUT 1m MIDPOINT all hours: one series, as lines and tables name it."""
    return f"{instrument_name(series)} {series_detail(series)}"


@dataclass
class _SeriesProgress:
    requests: int = 0
    chunks_done: int = 0
    finished: bool = False


@dataclass
class _Tally:
    """Counts every output needs: chunks planned and stored, bars fetched, per series and per
    instrument (instrument_name: a symbol, or a future's contract, or an FX pair)."""

    series: dict[SeriesKey, _SeriesProgress] = field(default_factory=dict)
    bars_by_symbol: dict[str, int] = field(default_factory=dict)
    chunks_stored: int = 0

    def planned(self, plan: SeriesPlan) -> None:
        self.series[plan.series] = _SeriesProgress(plan.requests)
        self.bars_by_symbol.setdefault(instrument_name(plan.series), 0)

    def stored(self, event: ChunkStored) -> None:
        self.series[event.series].chunks_done += 1
        self.bars_by_symbol[instrument_name(event.series)] += event.bars_fetched
        self.chunks_stored += 1

    def finished(self, result: SeriesResult) -> None:
        progress = self.series.setdefault(result.series, _SeriesProgress())
        progress.finished = True

    def done(self, symbol: str | None = None) -> tuple[int, int]:
        """(chunks done or no longer needed, chunks planned); a finished series counts as done."""
        rows = [p for s, p in self.series.items() if symbol is None or instrument_name(s) == symbol]
        planned = sum(p.requests for p in rows)
        done = sum(p.requests if p.finished else p.chunks_done for p in rows)
        return done, planned

    def symbol_finished(self, symbol: str) -> bool:
        return all(p.finished for s, p in self.series.items() if instrument_name(s) == symbol)


class Output:
    """Receives the population's events and results; subclasses decide how they look."""

    def __init__(self, stdout: TextIO, stderr: TextIO, pacing: PacingStats | None = None) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.pacing = pacing
        self.tally = _Tally()
        self.started = time.monotonic()

    @property
    def chunks_stored(self) -> int:
        return self.tally.chunks_stored

    def handle(self, event: ProgressEvent) -> None:
        if isinstance(event, SeriesPlanned):
            self.tally.planned(event.plan)
        elif isinstance(event, ChunkStored):
            self.tally.stored(event)
        elif isinstance(event, SeriesFinished):
            self.tally.finished(event.result)
        self.show(event)

    @contextmanager
    def live(self) -> Iterator[None]:
        """While the population runs (rich keeps its bars on screen for this long)."""
        yield

    def show(self, event: ProgressEvent) -> None:
        """Render one event; silent by default."""

    def job_progress(self, done: int, total: int) -> None:
        """Progress of the backend's refresh jobs (--api-url mode)."""

    def dry_run(self, plans: Sequence[SeriesPlan], limits: PacingLimits) -> None:
        raise NotImplementedError

    def summary(self, results: Sequence[SeriesResult], exit_code: int) -> None:
        raise NotImplementedError

    def verified(self, outcome: VerifyOutcome) -> None:
        """One series verified (--verify, --repair)."""
        raise NotImplementedError

    def verify_summary(self, outcomes: Sequence[VerifyOutcome], exit_code: int) -> None:
        raise NotImplementedError

    def fatal(self, message: str, code: str) -> None:
        self.stderr.write(f"error: {message}\n")
        self.stderr.flush()

    def interrupted(self, message: str) -> None:
        self.stderr.write(f"{message}\n")
        self.stderr.flush()

    def log_sink(self, message: str) -> None:
        """Where log records go while this output owns the terminal."""
        self.stderr.write(str(message))
        self.stderr.flush()

    # -- helpers shared by the human-readable outputs -------------------------------------------

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def eta_s(self) -> float | None:
        done, planned = self.tally.done()
        if not done or done >= planned:
            return None
        return self.elapsed_s() / done * (planned - done)


# -- human-readable -----------------------------------------------------------------------------


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def summary_table(results: Sequence[SeriesResult]) -> Table:
    table = Table(title="populate-cache summary", title_justify="left")
    for name in (
        "symbol",
        "data_type",
        "status",
        "bars before",
        "bars after",
        "fetched",
        "skipped as fresh",
    ):
        table.add_column(
            name,
            justify="right" if name.startswith(("bars", "fetched", "skipped")) else "left",
            no_wrap=True,
        )
    table.add_column("error", overflow="fold")
    for result in results:
        table.add_row(
            instrument_name(result.series),
            series_detail(result.series),
            result.status.value,
            _count(result.bars_before),
            _count(result.bars_after),
            str(result.bars_fetched),
            _count(result.bars_skipped_fresh),
            f"{result.error_code}: {result.error}" if result.error_code else "",
        )
    return table


def summary_line(results: Sequence[SeriesResult], seconds: float) -> str:
    by_status = {status: sum(r.status is status for r in results) for status in SeriesStatus}
    fetched = sum(r.bars_fetched for r in results)
    return (
        f"{_plural(len(results), 'series', 'series')}: {by_status[SeriesStatus.OK]} fetched, "
        f"{by_status[SeriesStatus.FRESH]} already fresh, {by_status[SeriesStatus.ERROR]} failed; "
        f"{_plural(fetched, 'bar')} fetched in {seconds:.1f} s"
    )


def dry_run_table(plans: Sequence[SeriesPlan]) -> Table:
    table = Table(title="dry run: nothing is fetched", title_justify="left")
    for name in ("symbol", "data_type", "bars cached", "fresh", "missing ranges", "requests"):
        table.add_column(
            name, justify="left" if name in ("symbol", "data_type", "missing ranges") else "right"
        )
    for plan in plans:
        table.add_row(
            instrument_name(plan.series),
            series_detail(plan.series),
            str(plan.bars_cached),
            str(plan.bars_fresh),
            describe_ranges(plan.missing),
            str(plan.requests),
        )
    return table


def describe_ranges(ranges: Sequence[tuple[Any, Any]], shown: int = 3) -> str:
    if not ranges:
        return "none"
    parts = [f"{a:%Y-%m-%d %H:%M} to {b:%Y-%m-%d %H:%M}" for a, b in ranges[:shown]]
    more = f" (+{len(ranges) - shown} more)" if len(ranges) > shown else ""
    return "; ".join(parts) + more


def pacing_estimate(requests: int, limits: PacingLimits) -> str:
    """The least time IBKR's 10-minute request budget allows for this many requests."""
    windows = max(0, requests - 1) // limits.global_max
    if not windows:
        return f"{_plural(requests, 'request')} fit in one pacing window"
    minutes = windows * limits.global_window_s / 60
    return (
        f"{_plural(requests, 'request')} need at least {minutes:.0f} min at IBKR's limit of "
        f"{limits.global_max} per {limits.global_window_s / 60:.0f} min"
    )


def describe_verify(outcome: VerifyOutcome) -> str:
    """What verifying one series found, in a few words."""
    if outcome.error_code:
        return f"error {outcome.error_code}: {outcome.error}"
    if not outcome.segments_checked:
        return "nothing cached to verify"
    checked = (
        f"{_plural(outcome.bars_compared, 'bar')} compared in "
        f"{_plural(outcome.segments_checked, 'segment')}"
    )
    if not outcome.drift:
        return f"no drift: {checked}"
    factor = f"{outcome.factor:.6g}" if outcome.factor is not None else "?"
    found = f"drift: {outcome.bars_drifted} of {checked} differ, cached/IBKR = {factor}"
    if outcome.healed:
        return f"{found}; repaired ({outcome.healed})"
    return f"{found}; not repaired (run with --repair)"


def verify_table(outcomes: Sequence[VerifyOutcome]) -> Table:
    table = Table(title="verify summary", title_justify="left")
    for name in ("series", "segments", "compared", "drifted", "factor", "healed", "status"):
        numeric = name in ("segments", "compared", "drifted", "factor")
        table.add_column(name, justify="right" if numeric else "left", no_wrap=True)
    for outcome in outcomes:
        if outcome.error_code:
            status = f"error {outcome.error_code}"
        elif outcome.unrepaired:
            status = "drift"
        else:
            status = "repaired" if outcome.healed else "ok"
        table.add_row(
            series_name(outcome.series),
            str(outcome.segments_checked),
            str(outcome.bars_compared),
            str(outcome.bars_drifted),
            "-" if outcome.factor is None else f"{outcome.factor:.6g}",
            outcome.healed or "-",
            status,
        )
    return table


def verify_line(outcomes: Sequence[VerifyOutcome]) -> str:
    drifted = sum(outcome.drift for outcome in outcomes)
    unrepaired = sum(outcome.unrepaired for outcome in outcomes)
    failed = sum(bool(outcome.error_code) for outcome in outcomes)
    parts = [f"{_plural(len(outcomes), 'series', 'series')} verified", f"{drifted} with drift"]
    if drifted:
        parts.append(f"{unrepaired} not repaired")
    if failed:
        parts.append(f"{failed} failed")
    return ", ".join(parts)


class PlainOutput(Output):
    """One line per event, for logs and pipes (stdout is not a terminal)."""

    def __init__(self, stdout: TextIO, stderr: TextIO, pacing: PacingStats | None = None) -> None:
        super().__init__(stdout, stderr, pacing)
        self.console = Console(file=stdout, width=160, no_color=True, highlight=False)
        self._last_job_progress: tuple[int, int] | None = None

    def _line(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def show(self, event: ProgressEvent) -> None:
        if isinstance(event, SeriesPlanned):
            plan = event.plan
            self._line(
                f"plan {series_name(plan.series)}: {plan.bars_cached} bars cached "
                f"({plan.bars_fresh} fresh), {_plural(len(plan.missing), 'missing range')}, "
                f"{_plural(plan.requests, 'request')}"
            )
        elif isinstance(event, ChunkStored):
            done, planned = self.tally.done()
            eta = self.eta_s()
            parts = [f"{done}/{planned} chunks"]
            if eta is not None:
                parts.append(f"eta {eta:.0f} s")
            if self.pacing is not None and self.pacing.waited_s:
                parts.append(f"pacing waits {self.pacing.waited_s:.1f} s so far")
            self._line(
                f"{series_name(event.series)}: +{event.bars_fetched} bars "
                f"{event.start:%Y-%m-%d} to {event.end:%Y-%m-%d} ({', '.join(parts)})"
            )
        elif isinstance(event, SeriesRetrying):
            self._line(
                f"{series_name(event.series)}: attempt {event.attempt} failed, retrying: "
                f"{event.error}"
            )
        elif isinstance(event, SeriesFinished):
            result = event.result
            if result.status is SeriesStatus.ERROR:
                self._line(
                    f"{series_name(result.series)}: error {result.error_code}: {result.error}"
                )
            else:
                self._line(
                    f"{series_name(result.series)}: {result.status.value}, "
                    f"{result.bars_fetched} bars fetched, {_count(result.bars_skipped_fresh)} "
                    f"skipped as fresh, {_count(result.bars_after)} cached"
                )

    def job_progress(self, done: int, total: int) -> None:
        if (done, total) != self._last_job_progress:
            self._last_job_progress = (done, total)
            self._line(f"backend refresh: {done}/{total} done")

    def dry_run(self, plans: Sequence[SeriesPlan], limits: PacingLimits) -> None:
        self.console.print(dry_run_table(plans))
        self._line(pacing_estimate(sum(plan.requests for plan in plans), limits))

    def summary(self, results: Sequence[SeriesResult], exit_code: int) -> None:
        self.console.print(summary_table(results))
        self._line(summary_line(results, self.elapsed_s()))

    def verified(self, outcome: VerifyOutcome) -> None:
        self._line(f"{series_name(outcome.series)}: {describe_verify(outcome)}")

    def verify_summary(self, outcomes: Sequence[VerifyOutcome], exit_code: int) -> None:
        self.console.print(verify_table(outcomes))
        self._line(verify_line(outcomes))


class _PacingWaitColumn(ProgressColumn):
    """Shows, on the overall row, how long the pacing limiter is holding the next request."""

    def __init__(self, pacing: PacingStats | None) -> None:
        super().__init__()
        self.pacing = pacing

    def render(self, task: Task) -> Text:
        wait = self.pacing.current_wait_s if self.pacing is not None else 0.0
        if task.fields.get("overall") and wait >= 0.05:
            return Text(f"pacing: waiting {wait:.1f} s", style="yellow")
        return Text("")


class RichOutput(Output):
    """Progress bars on a terminal: one per symbol and one overall, then the summary table."""

    def __init__(
        self,
        stdout: TextIO,
        stderr: TextIO,
        pacing: PacingStats | None = None,
        console: Console | None = None,
    ) -> None:
        super().__init__(stdout, stderr, pacing)
        self.console = console or Console(file=stdout)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[bars]} bars"),
            TimeRemainingColumn(),
            _PacingWaitColumn(pacing),
            console=self.console,
            transient=False,
        )
        self._overall: TaskID | None = None
        self._symbols: dict[str, TaskID] = {}
        self._failed: set[str] = set()

    @contextmanager
    def live(self) -> Iterator[None]:
        self._overall = self.progress.add_task("all", total=None, bars=0, overall=True)
        with self.progress:
            yield

    def log_sink(self, message: str) -> None:
        self.console.print(Text(str(message).rstrip()))

    def _refresh_rows(self, symbol: str | None) -> None:
        if symbol is not None:
            if symbol not in self._symbols:
                self._symbols[symbol] = self.progress.add_task(symbol, total=None, bars=0)
            done, planned = self.tally.done(symbol)
            finished = self.tally.symbol_finished(symbol)
            total = max(planned, 1)
            failed = symbol in self._failed
            self.progress.update(
                self._symbols[symbol],
                description=f"[red]{symbol} failed[/]" if failed else symbol,
                total=total,
                completed=total if finished else done,
                bars=self.tally.bars_by_symbol.get(symbol, 0),
            )
        if self._overall is not None:
            done, planned = self.tally.done()
            self.progress.update(
                self._overall,
                total=max(planned, 1),
                completed=done,
                bars=sum(self.tally.bars_by_symbol.values()),
            )

    def show(self, event: ProgressEvent) -> None:
        if isinstance(event, SeriesPlanned):
            self._refresh_rows(instrument_name(event.plan.series))
        elif isinstance(event, ChunkStored):
            self._refresh_rows(instrument_name(event.series))
        elif isinstance(event, SeriesRetrying):
            self.console.print(
                f"[yellow]{series_name(event.series)}: attempt {event.attempt} failed, "
                f"retrying:[/] {event.error}",
                markup=True,
                highlight=False,
            )
        elif isinstance(event, SeriesFinished):
            result = event.result
            name = instrument_name(result.series)
            if result.status is SeriesStatus.ERROR:
                self._failed.add(name)
                self.console.print(
                    f"[red]{series_name(result.series)} failed:[/] {result.error}",
                    highlight=False,
                )
            self._refresh_rows(name)

    def job_progress(self, done: int, total: int) -> None:
        if self._overall is not None:
            self.progress.update(self._overall, total=max(total, 1), completed=done)

    def dry_run(self, plans: Sequence[SeriesPlan], limits: PacingLimits) -> None:
        self.console.print(dry_run_table(plans))
        self.console.print(pacing_estimate(sum(plan.requests for plan in plans), limits))

    def summary(self, results: Sequence[SeriesResult], exit_code: int) -> None:
        self.console.print(summary_table(results))
        style = "red" if exit_code else "green"
        self.console.print(Text(summary_line(results, self.elapsed_s()), style=style))

    def verified(self, outcome: VerifyOutcome) -> None:
        style = "red" if outcome.unrepaired or outcome.error_code else None
        self.console.print(
            Text(f"{series_name(outcome.series)}: {describe_verify(outcome)}", style=style or "")
        )

    def verify_summary(self, outcomes: Sequence[VerifyOutcome], exit_code: int) -> None:
        self.console.print(verify_table(outcomes))
        style = "red" if exit_code else "green"
        self.console.print(Text(verify_line(outcomes), style=style))


# -- JSON lines ---------------------------------------------------------------------------------


def series_json(series: SeriesKey) -> dict[str, Any]:
    """A series' fields as the API's rows name them."""
    return {
        "symbol": series.symbol,
        "exchange": series.exchange,
        "data_type": series.data_type,
        "sec_type": series.sec_type,
        "currency": series.currency,
        "expiry": series.expiry or None,
        "what_to_show": series.what_to_show,
        "use_rth": series.use_rth,
    }


def result_json(result: SeriesResult) -> dict[str, Any]:
    return {
        "event": "series",
        **series_json(result.series),
        "status": result.status.value,
        "bars_before": result.bars_before,
        "bars_after": result.bars_after,
        "bars_fetched": result.bars_fetched,
        "bars_skipped_fresh": result.bars_skipped_fresh,
        "error": {"code": result.error_code, "detail": result.error} if result.error_code else None,
    }


class JsonOutput(Output):
    """One JSON object per line: a result per series, then a summary."""

    def _emit(self, payload: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(payload) + "\n")
        self.stdout.flush()

    def show(self, event: ProgressEvent) -> None:
        if isinstance(event, SeriesFinished):
            self._emit(result_json(event.result))

    def dry_run(self, plans: Sequence[SeriesPlan], limits: PacingLimits) -> None:
        for plan in plans:
            self._emit(
                {
                    "event": "plan",
                    **series_json(plan.series),
                    "start": plan.start.isoformat(),
                    "end": plan.end.isoformat(),
                    "bars_cached": plan.bars_cached,
                    "bars_fresh": plan.bars_fresh,
                    "missing": [[a.isoformat(), b.isoformat()] for a, b in plan.missing],
                    "requests": plan.requests,
                }
            )
        requests = sum(plan.requests for plan in plans)
        self._emit(
            {
                "event": "summary",
                "dry_run": True,
                "series": len(plans),
                "requests": requests,
                "pacing": pacing_estimate(requests, limits),
                "exit_code": 0,
            }
        )

    def summary(self, results: Sequence[SeriesResult], exit_code: int) -> None:
        self._emit(
            {
                "event": "summary",
                "dry_run": False,
                "series": len(results),
                "ok": sum(r.status is SeriesStatus.OK for r in results),
                "fresh": sum(r.status is SeriesStatus.FRESH for r in results),
                "failed": sum(r.status is SeriesStatus.ERROR for r in results),
                "bars_fetched": sum(r.bars_fetched for r in results),
                "duration_s": round(self.elapsed_s(), 3),
                "exit_code": exit_code,
            }
        )

    def verified(self, outcome: VerifyOutcome) -> None:
        self._emit(
            {
                "event": "verify",
                **series_json(outcome.series),
                "segments_checked": outcome.segments_checked,
                "bars_compared": outcome.bars_compared,
                "bars_drifted": outcome.bars_drifted,
                "drift": outcome.drift,
                "factor": outcome.factor,
                "healed": outcome.healed,
                "error": (
                    {"code": outcome.error_code, "detail": outcome.error}
                    if outcome.error_code
                    else None
                ),
            }
        )

    def verify_summary(self, outcomes: Sequence[VerifyOutcome], exit_code: int) -> None:
        self._emit(
            {
                "event": "summary",
                "verify": True,
                "series": len(outcomes),
                "drifted": sum(outcome.drift for outcome in outcomes),
                "unrepaired": sum(outcome.unrepaired for outcome in outcomes),
                "failed": sum(bool(outcome.error_code) for outcome in outcomes),
                "duration_s": round(self.elapsed_s(), 3),
                "exit_code": exit_code,
            }
        )

    def fatal(self, message: str, code: str) -> None:
        self._emit({"event": "error", "code": code, "detail": message})
        super().fatal(message, code)

    def interrupted(self, message: str) -> None:
        self._emit(
            {"event": "interrupted", "chunks_committed": self.chunks_stored, "detail": message}
        )
        super().interrupted(message)


def choose_output(
    stdout: TextIO, stderr: TextIO, *, as_json: bool, pacing: PacingStats | None = None
) -> Output:
    if as_json:
        return JsonOutput(stdout, stderr, pacing)
    if stdout.isatty():
        return RichOutput(stdout, stderr, pacing)
    return PlainOutput(stdout, stderr, pacing)
