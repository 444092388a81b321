"""StrategyExecutor: runs a strategy over symbols on bars from the data-source policy in force."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from loguru import logger

from backend.market_data import calendar as market_calendar
from backend.market_data.bar_columns import BarColumns
from backend.market_data.domain import MAX_DAYS_BACK, BarSize, SeriesKey, normalize_symbol
from backend.market_data.errors import MarketDataError
from backend.market_data.service import DataSourcePolicy, MarketDataResult, MarketDataService
from backend.storage.refresh_job_repository import stale_before
from backend.storage.workflow_repository import WorkflowRepository
from backend.storage.workflow_tables import ExecutionStatus, WorkflowExecution
from backend.workflows.lineage import lineage_metadata
from backend.workflows.strategies import Strategy, StrategyInputError, StrategyRegistry

if TYPE_CHECKING:
    from backend.market_data.request_budget import RequestPlanner

STEP_START = "start"
STEP_FETCH = "fetch_market_data"
STEP_INDICATORS = "compute_indicators"
STEP_SIGNALS = "generate_signals"
STEP_FINISH = "finish"

# A workflow reaches back as far as a refresh may.
MAX_LOOKBACK_DAYS = MAX_DAYS_BACK
# A symbol whose data has not arrived by then fails alone; the execution never hangs on it.
DEFAULT_SYMBOL_DEADLINE_S = 300.0
# The whole execution's budget: 50 symbols at the symbol deadline would hold a request for hours.
DEFAULT_WORKFLOW_DEADLINE_S = 900.0
# A per-symbol entry lists at most this many missing ranges; missing_bars always counts them all.
MAX_LISTED_MISSING_RANGES = 100
DEBUG_PREFIX = "DEBUG MODE: "

INTERRUPTED_ERROR = (
    "interrupted: the backend process stopped (restart, crash or kill) while this execution "
    "was running, so it never finished. Run it again; bars it stored are still cached."
)
CANCELLED_SYMBOL_ERROR = "not run: the execution was cancelled because the caller went away"


def analysis_range(exchange: str, now: datetime, lookback_days: int) -> tuple[datetime, datetime]:
    """[end - lookback_days, end), where end is the close of the last session completed by `now`.

    Ending at a closed session keeps runs on the same day repeatable and free of a forming bar.
    """
    recent = market_calendar.sessions_between(exchange, now - timedelta(days=14), now)
    closed = [session for session in recent if session.close_at <= now]
    if not closed:
        raise ValueError(f"no completed {exchange} session in the 14 days before {now.isoformat()}")
    end = closed[-1].close_at
    return end - timedelta(days=lookback_days), end


class StrategyExecutor:
    """Fetches each symbol's bars, computes indicators and signals, and records logs and lineage.

    The container builds it with the market-data service its policy calls for: in DEBUG_MODE
    that service has no IBKR client at all, so a run cannot reach the gateway.
    """

    def __init__(
        self,
        market_data_service: MarketDataService,
        repository: WorkflowRepository,
        strategies: StrategyRegistry,
        exchange: str,
        debug_mode: bool,
        clock: Callable[[], datetime],
        symbol_deadline_s: float = DEFAULT_SYMBOL_DEADLINE_S,
        workflow_deadline_s: float = DEFAULT_WORKFLOW_DEADLINE_S,
        timer: Callable[[], float] = time.monotonic,
        request_planner: RequestPlanner | None = None,
        instance_id: str | None = None,
        heartbeat_s: float = 5.0,
        missed_heartbeats: int = 3,
    ) -> None:
        if debug_mode and market_data_service.policy is not DataSourcePolicy.CACHE_ONLY:
            raise ValueError("DEBUG_MODE needs the cache-only market data service")
        self.market_data_service = market_data_service
        self.repository = repository
        self.strategies = strategies
        self.exchange = exchange
        self.debug_mode = debug_mode
        self.clock = clock
        # Database work runs on the database's own bounded threads, never the default executor.
        self._db = repository.database.run
        self.symbol_deadline_s = symbol_deadline_s
        self.workflow_deadline_s = workflow_deadline_s
        # Deadlines are durations: a monotonic timer, not the wall clock, measures them.
        self.timer = timer
        # None in DEBUG_MODE, where runs read the cache only and cost no IBKR requests.
        self.request_planner = request_planner
        # This process, as the owner its executions name; replicas sharing the database tell
        # a run that is still going from one whose process stopped by its heartbeat.
        self.instance_id = instance_id
        self.heartbeat_s = heartbeat_s
        self.missed_heartbeats = missed_heartbeats
        self._running: set[int] = set()
        self._heartbeat_task: asyncio.Task | None = None

    async def execute(
        self,
        strategy: str,
        symbols: Sequence[str],
        data_type: str,
        lookback_days: int,
        params: Mapping[str, object] | None = None,
    ) -> WorkflowExecution:
        """Run to the end and return the finished execution: completed, partial or failed.

        Bad input raises StrategyInputError, and a run over the request ceiling
        RequestBudgetExceeded, before anything is recorded. After that, a failing
        symbol fails only its own steps, and the execution always ends in a final status, by
        WORKFLOW_DEADLINE_S at the latest. Cancelling the task records the execution as
        cancelled, then lets the cancellation go on.
        """
        chosen = self.strategies.get(strategy)
        resolved = chosen.resolve_parameters(params)
        bar_size = _bar_size(data_type)
        symbols = _symbols(symbols)
        if not 1 <= lookback_days <= MAX_LOOKBACK_DAYS:
            raise StrategyInputError(
                "lookback_days",
                f"lookback_days must be 1 to {MAX_LOOKBACK_DAYS} (got {lookback_days})",
            )
        start, end = analysis_range(self.exchange, self.clock(), lookback_days)
        if self.request_planner is not None and not self.debug_mode:
            # Refused over REQUEST_CEILING before anything is sent or recorded. Without the cache
            # (live policy) every bar is fetched, so the whole range counts.
            await self.request_planner.check(
                symbols,
                self.exchange,
                bar_size,
                start,
                end,
                force=self.market_data_service.policy is DataSourcePolicy.LIVE,
            )

        creating = asyncio.ensure_future(
            self._db(
                self.repository.create_execution,
                chosen.name,
                symbols,
                bar_size.value,
                resolved,
                self.debug_mode,
                self.clock(),
                self.instance_id,
            )
        )
        try:
            execution = await asyncio.shield(creating)
        except asyncio.CancelledError:
            # The row is written all the same; finish it as cancelled rather than leave it pending.
            execution = await creating
            assert execution.id is not None
            await self._record_cancelled(execution.id, symbols, {}, {})
            raise
        assert execution.id is not None
        execution_id = execution.id
        self._keep_alive(execution_id)
        per_symbol: dict[str, dict[str, Any]] = {}
        signals: dict[str, list[dict[str, Any]]] = {}
        try:
            await self._db(self.repository.set_status, execution_id, ExecutionStatus.RUNNING)
            await self._log(
                execution_id,
                STEP_START,
                "INFO",
                self._start_message(chosen, resolved, symbols, bar_size, start, end),
            )
            await self._run_symbols(
                execution_id, chosen, resolved, symbols, bar_size, start, end, per_symbol, signals
            )
            status, error = _final_status(per_symbol)
            result: dict[str, Any] | None = {"signals": signals, "per_symbol": per_symbol}
        except asyncio.CancelledError:
            # Nothing more goes to IBKR; record what was done, then let the cancellation go on.
            await self._record_cancelled(execution_id, symbols, per_symbol, signals)
            raise
        except Exception as exc:
            # The database or a bug failed the run itself; record that instead of staying "running".
            logger.opt(exception=exc).bind(execution_id=execution_id).error("workflow crashed")
            status, result, error = ExecutionStatus.FAILED, None, f"workflow crashed: {exc}"
        # Shielded: a cancellation now cannot stop the record of how the run ended.
        return await asyncio.shield(self._finish(execution_id, symbols, status, result, error))

    async def _record_cancelled(
        self,
        execution_id: int,
        symbols: list[str],
        per_symbol: dict[str, dict[str, Any]],
        signals: dict[str, list[dict[str, Any]]],
    ) -> None:
        """Finish the execution as cancelled; the symbols not done yet are marked not run."""
        done = len(per_symbol)
        for symbol in symbols[done:]:
            per_symbol[symbol] = {"status": "error", "bars": 0, "error": CANCELLED_SYMBOL_ERROR}
            signals[symbol] = []
        error = (
            f"cancelled: the caller went away after {done} of {len(symbols)} symbols; nothing "
            "more was asked of IBKR. Run it again to finish; bars already fetched are cached."
        )
        result = {"signals": signals, "per_symbol": per_symbol}
        # Shielded, so that the record is written even if the caller cancels again meanwhile.
        await asyncio.shield(
            self._finish(execution_id, symbols, ExecutionStatus.CANCELLED, result, error)
        )

    async def interrupt_unfinished(self) -> list[int]:
        """Executions left pending or running by a stopped process are interrupted: at start-up,
        and at each heartbeat while this process runs executions of its own.

        Other replicas' executions whose heartbeat is fresh are running, and are left alone.
        """
        now = self.clock()
        try:
            ids = await self._db(
                self.repository.interrupt_unfinished,
                STEP_FINISH,
                INTERRUPTED_ERROR,
                now,
                stale_before(now, self.heartbeat_s, self.missed_heartbeats),
                self.instance_id,
            )
        except Exception as exc:
            # A database that is down or not migrated yet must not stop the start-up.
            logger.warning(
                "could not mark unfinished workflow executions interrupted; they keep their "
                "status until the next start: {}",
                exc,
            )
            return []
        if ids:
            logger.warning(
                "marked {} workflow executions interrupted (left running by a stopped process): {}",
                len(ids),
                ", ".join(map(str, ids)),
            )
        return ids

    async def close(self) -> None:
        """At shutdown: stop heartbeating; executions still running then are interrupted by the
        next sweep of any replica."""
        task, self._heartbeat_task = self._heartbeat_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _keep_alive(self, execution_id: int) -> None:
        self._running.add(execution_id)
        if self.instance_id is not None and (
            self._heartbeat_task is None or self._heartbeat_task.done()
        ):
            self._heartbeat_task = asyncio.get_running_loop().create_task(self._heartbeats())

    async def _heartbeats(self) -> None:
        """While this process runs executions: stamp them, and interrupt other replicas' that
        stopped heartbeating."""
        assert self.instance_id is not None
        while self._running:
            await asyncio.sleep(self.heartbeat_s)
            if not self._running:
                return
            try:
                await self._db(self.repository.heartbeat, self.instance_id, self.clock())
            except Exception as exc:  # the run goes on; a lapse shows it interrupted, no worse
                logger.warning("could not heartbeat this process's workflow executions: {}", exc)
            await self.interrupt_unfinished()

    async def _finish(
        self,
        execution_id: int,
        symbols: list[str],
        status: ExecutionStatus,
        result: dict[str, Any] | None,
        error: str | None,
    ) -> WorkflowExecution:
        self._running.discard(execution_id)
        per_symbol = (result or {}).get("per_symbol", {})
        ok = sum(item["status"] == "ok" for item in per_symbol.values())
        level = {"completed": "INFO", "partial": "WARNING", "cancelled": "WARNING"}
        message = f"finished {status.value}: {ok} of {len(symbols)} symbols ok"
        if status is ExecutionStatus.CANCELLED:
            message += "; the caller went away, so the remaining symbols were not run"
        await self._log(execution_id, STEP_FINISH, level.get(status.value, "ERROR"), message)
        return await self._db(
            self.repository.finish_execution, execution_id, status, result, error, self.clock()
        )

    async def _run_symbols(
        self,
        execution_id: int,
        strategy: Strategy,
        params: Mapping[str, Any],
        symbols: list[str],
        bar_size: BarSize,
        start: datetime,
        end: datetime,
        per_symbol: dict[str, dict[str, Any]],
        signals: dict[str, list[dict[str, Any]]],
    ) -> None:
        """Each symbol in turn, within the symbol deadline and what is left of the run's."""
        deadline = self.timer() + self.workflow_deadline_s
        for index, symbol in enumerate(symbols):
            time_left = deadline - self.timer()
            if time_left <= 0:
                not_run = symbols[index:]
                error = (
                    f"not run: the execution's deadline of {self.workflow_deadline_s:g} s "
                    "(WORKFLOW_DEADLINE_S) passed first. Fill the cache first "
                    "(make populate-cache), run fewer symbols at a time, or raise "
                    "WORKFLOW_DEADLINE_S."
                )
                for later in not_run:
                    per_symbol[later] = {"status": "error", "bars": 0, "error": error}
                    signals[later] = []
                await self._log(
                    execution_id, STEP_FETCH, "ERROR", self._mode(f"{', '.join(not_run)}: {error}")
                )
                return
            per_symbol[symbol], signals[symbol] = await self._run_symbol(
                execution_id, strategy, params, symbol, bar_size, start, end, time_left
            )

    async def _run_symbol(
        self,
        execution_id: int,
        strategy: Strategy,
        params: Mapping[str, Any],
        symbol: str,
        bar_size: BarSize,
        start: datetime,
        end: datetime,
        time_left: float,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """One symbol's steps. Returns its per-symbol entry and its signals."""
        # The run's deadline cuts the symbol's own short when less time is left than that.
        timeout = min(self.symbol_deadline_s, time_left)
        try:
            result = await self._fetch_market_data(
                execution_id, symbol, bar_size, start, end, timeout
            )
        except Exception as exc:
            error = self._describe_fetch_error(
                symbol, exc, cut_by_run=timeout < self.symbol_deadline_s
            )
            await self._log(execution_id, STEP_FETCH, "ERROR", self._mode(f"{symbol}: {error}"))
            return {"status": "error", "bars": 0, "error": error}, []
        entry = await self._served_entry(execution_id, symbol, bar_size, result)

        # Strategies see open, high, low, close and volume on a UTC DatetimeIndex.
        frame = result.to_pandas()[["open", "high", "low", "close", "volume"]]
        try:
            output = strategy.run(frame, params)
        except Exception as exc:
            logger.opt(exception=exc).bind(symbol=symbol).error("strategy step failed")
            error = f"{strategy.name} failed: {type(exc).__name__}: {exc}"
            await self._log(execution_id, STEP_INDICATORS, "ERROR", f"{symbol}: {error}")
            return {"status": "error", "bars": len(result.bars), "error": error}, []
        needed = strategy.minimum_bars(params)
        if len(frame) < needed:
            await self._log(
                execution_id,
                STEP_INDICATORS,
                "WARNING",
                f"{symbol}: only {len(frame)} bars; {strategy.name} needs {needed} for a signal. "
                "Use a longer lookback or a smaller bar size.",
            )
        else:
            columns = ", ".join(output.indicators.columns)
            await self._log(
                execution_id, STEP_INDICATORS, "INFO", f"{symbol}: {columns} over {len(frame)} bars"
            )
        buys = sum(1 for signal in output.signals if signal.signal == "buy")
        sells = len(output.signals) - buys
        await self._log(
            execution_id,
            STEP_SIGNALS,
            "INFO",
            f"{symbol}: {len(output.signals)} signals ({buys} buy, {sells} sell)",
        )
        return entry, [s.to_json() for s in output.signals]

    async def _fetch_market_data(
        self,
        execution_id: int,
        symbol: str,
        bar_size: BarSize,
        start: datetime,
        end: datetime,
        timeout: float,
    ) -> MarketDataResult:
        """Bars through the container's policy (cache only in DEBUG_MODE), recorded as lineage."""
        result = await asyncio.wait_for(
            self.market_data_service.get_or_fetch_market_data(
                symbol, self.exchange, bar_size, start, end
            ),
            timeout,
        )
        basis_at = await self.market_data_service.price_basis(
            SeriesKey(symbol, self.exchange, bar_size.value)
        )
        meta = lineage_metadata(result, self.debug_mode, basis_at)
        await self._db(
            self.repository.add_lineage,
            execution_id,
            STEP_FETCH,
            symbol,
            bar_size.value,
            start,
            end,
            meta,
            self.clock(),
        )
        await self._log(
            execution_id,
            STEP_FETCH,
            "INFO",
            self._mode(
                f"{symbol} {bar_size.value}: {len(result.bars)} bars from {result.source.value} "
                f"(cache {result.outcome.value}), checksum {meta['checksum'][:12]}, prices as of "
                f"{meta['price_basis_at'] or 'their fetch'}"
            ),
        )
        return result

    async def _served_entry(
        self, execution_id: int, symbol: str, bar_size: BarSize, result: MarketDataResult
    ) -> dict[str, Any]:
        """The symbol's entry: ok, or partial when the calendar expects bars that were not served.

        Counted against the calendar rather than taken from the cache's gap list, so bars IBKR
        left out of its answer (recorded as confirmed empty) or a live fetch's holes count too.
        """
        bars = len(result.bars)
        until = min(result.end, self.clock())
        missing = await asyncio.to_thread(
            _missing_ranges, self.exchange, bar_size, result.start, until, result.bars
        )
        if missing is None:
            return {"status": "ok", "bars": bars}
        missing_bars, ranges = missing
        shown = ", ".join(f"{a.isoformat()} to {b.isoformat()}" for a, b in ranges[:3])
        more = f" and {len(ranges) - 3} more ranges" if len(ranges) > 3 else ""
        await self._log(
            execution_id,
            STEP_FETCH,
            "WARNING",
            self._mode(
                f"{symbol}: {missing_bars} of {missing_bars + bars} expected bars are missing "
                f"({shown}{more}); the signals use the {bars} bars served. IBKR had none for "
                "those bars: check for a halt or a listing after the start, or refresh the range "
                "(POST /api/market-data/cache/refresh with force) and run again."
            ),
        )
        entry: dict[str, Any] = {
            "status": "partial",
            "bars": bars,
            "missing_bars": missing_bars,
            "missing_ranges": [
                [a.isoformat(), b.isoformat()] for a, b in ranges[:MAX_LISTED_MISSING_RANGES]
            ],
        }
        if len(ranges) > MAX_LISTED_MISSING_RANGES:
            entry["missing_ranges_total"] = len(ranges)
        return entry

    def _describe_fetch_error(self, symbol: str, exc: Exception, *, cut_by_run: bool) -> str:
        if isinstance(exc, MarketDataError):
            # Typed errors already say what to do; CacheMissInDebugMode names the populate command.
            return str(exc)
        if isinstance(exc, TimeoutError) and cut_by_run:
            return (
                f"stopped: the execution's deadline of {self.workflow_deadline_s:g} s "
                "(WORKFLOW_DEADLINE_S) passed while fetching. Fill the cache first "
                "(make populate-cache), run fewer symbols at a time, or raise WORKFLOW_DEADLINE_S."
            )
        if isinstance(exc, TimeoutError):
            return (
                f"no data within {self.symbol_deadline_s:g} s; the gateway is slow or paced. "
                "Fill the cache first (make populate-cache) or use a shorter lookback."
            )
        logger.opt(exception=exc).bind(symbol=symbol).error("market data step failed")
        return f"unexpected error: {type(exc).__name__}: {exc}"

    def _start_message(
        self,
        strategy: Strategy,
        params: Mapping[str, Any],
        symbols: list[str],
        bar_size: BarSize,
        start: datetime,
        end: datetime,
    ) -> str:
        shown = ", ".join(f"{name}={value}" for name, value in params.items())
        source = (
            "bars come from the cache only; IBKR is not contacted"
            if self.debug_mode
            else f"bars via the {self.market_data_service.policy.value} policy"
        )
        return self._mode(
            f"running {strategy.name} ({shown}) on {', '.join(symbols)} {bar_size.value} bars "
            f"from {start.isoformat()} to {end.isoformat()}; {source}"
        )

    def _mode(self, message: str) -> str:
        return DEBUG_PREFIX + message if self.debug_mode else message

    async def _log(self, execution_id: int, step: str, level: str, message: str) -> None:
        logger.bind(execution_id=execution_id, step=step, debug_mode=self.debug_mode).log(
            level, message
        )
        await self._db(self.repository.add_log, execution_id, step, level, message, self.clock())


def _bar_size(data_type: str) -> BarSize:
    try:
        return BarSize(data_type)
    except ValueError:
        allowed = ", ".join(size.value for size in BarSize)
        raise StrategyInputError(
            "data_type", f"data_type must be one of {allowed} (got {data_type!r})"
        ) from None


def _symbols(raw: Sequence[str]) -> list[str]:
    if not raw:
        raise StrategyInputError("symbols", "name at least one symbol, e.g. NVDA")
    symbols: list[str] = []
    for index, item in enumerate(raw):
        try:
            symbol = normalize_symbol(item)
        except ValueError as exc:
            raise StrategyInputError(f"symbols.{index}", str(exc)) from None
        if symbol not in symbols:
            symbols.append(symbol)
    return symbols


def _missing_ranges(
    exchange: str, bar_size: BarSize, start: datetime, until: datetime, bars: BarColumns
) -> tuple[int, list[tuple[datetime, datetime]]] | None:
    """(missing bar count, their ranges) of the calendar's bars in [start, until) not in `bars`.

    None when none is missing. The count check first spares building a datetime per bar.
    """
    if until <= start:
        return None
    if len(bars) >= market_calendar.expected_bar_count(exchange, bar_size, start, until):
        return None
    expected = market_calendar.expected_bar_timestamps(exchange, bar_size, start, until)
    served = set(bars.timestamps())
    absent = [stamp for stamp in expected if stamp not in served]
    if not absent:
        return None
    return len(absent), market_calendar.group_into_ranges(absent, expected, bar_size, exchange)


def _final_status(
    per_symbol: Mapping[str, Mapping[str, Any]],
) -> tuple[ExecutionStatus, str | None]:
    problems = {
        symbol: _problem(item) for symbol, item in per_symbol.items() if item["status"] != "ok"
    }
    if not problems:
        return ExecutionStatus.COMPLETED, None
    summary = "; ".join(f"{symbol}: {problem}" for symbol, problem in problems.items())
    failed = sum(item["status"] == "error" for item in per_symbol.values())
    if failed == len(per_symbol):
        return ExecutionStatus.FAILED, f"every symbol failed. {summary}"
    counts = []
    if failed:
        counts.append(f"{failed} of {len(per_symbol)} symbols failed")
    if short := len(problems) - failed:
        counts.append(f"{short} of {len(per_symbol)} symbols have missing bars")
    return ExecutionStatus.PARTIAL, f"{', '.join(counts)}. {summary}"


def _problem(item: Mapping[str, Any]) -> str:
    if item["status"] == "partial":
        return f"{item['missing_bars']} expected bars missing ({item['bars']} served)"
    return item["error"]
