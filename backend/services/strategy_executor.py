"""StrategyExecutor: runs a strategy over symbols on bars from the data-source policy in force."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from loguru import logger

from backend.config.settings import normalize_symbol
from backend.models.market_data import BarSize
from backend.models.workflow import ExecutionStatus, WorkflowExecution
from backend.repositories.workflow import WorkflowRepository
from backend.services import market_calendar
from backend.services.errors import MarketDataError
from backend.services.ibkr_service import DataSourcePolicy, IBKRService, MarketDataResult
from backend.services.lineage import lineage_metadata
from backend.services.strategies import Strategy, StrategyInputError, StrategyRegistry, bars_frame

STEP_START = "start"
STEP_FETCH = "fetch_market_data"
STEP_INDICATORS = "compute_indicators"
STEP_SIGNALS = "generate_signals"
STEP_FINISH = "finish"

MAX_LOOKBACK_DAYS = 3650
# A symbol whose data has not arrived by then fails alone; the execution never hangs on it.
DEFAULT_SYMBOL_DEADLINE_S = 300.0
DEBUG_PREFIX = "DEBUG MODE: "


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
        market_data_service: IBKRService,
        repository: WorkflowRepository,
        strategies: StrategyRegistry,
        exchange: str,
        debug_mode: bool,
        clock: Callable[[], datetime],
        symbol_deadline_s: float = DEFAULT_SYMBOL_DEADLINE_S,
    ) -> None:
        if debug_mode and market_data_service.policy is not DataSourcePolicy.CACHE_ONLY:
            raise ValueError("DEBUG_MODE needs the cache-only market data service")
        self.market_data_service = market_data_service
        self.repository = repository
        self.strategies = strategies
        self.exchange = exchange
        self.debug_mode = debug_mode
        self.clock = clock
        self.symbol_deadline_s = symbol_deadline_s

    async def execute(
        self,
        strategy: str,
        symbols: Sequence[str],
        data_type: str,
        lookback_days: int,
        params: Mapping[str, object] | None = None,
    ) -> WorkflowExecution:
        """Run to the end and return the finished execution: completed, partial or failed.

        Bad input raises StrategyInputError before anything is recorded. After that, a failing
        symbol fails only its own steps, and the execution always ends in a final status.
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

        execution = await asyncio.to_thread(
            self.repository.create_execution,
            chosen.name,
            symbols,
            bar_size.value,
            resolved,
            self.debug_mode,
            self.clock(),
        )
        assert execution.id is not None
        execution_id = execution.id
        try:
            await asyncio.to_thread(
                self.repository.set_status, execution_id, ExecutionStatus.RUNNING
            )
            await self._log(
                execution_id,
                STEP_START,
                "INFO",
                self._start_message(chosen, resolved, symbols, bar_size, start, end),
            )
            per_symbol: dict[str, dict[str, Any]] = {}
            signals: dict[str, list[dict[str, Any]]] = {}
            for symbol in symbols:
                per_symbol[symbol], signals[symbol] = await self._run_symbol(
                    execution_id, chosen, resolved, symbol, bar_size, start, end
                )
            status, error = _final_status(per_symbol)
            result: dict[str, Any] | None = {"signals": signals, "per_symbol": per_symbol}
            ok = sum(item["status"] == "ok" for item in per_symbol.values())
        except Exception as exc:
            # The database or a bug failed the run itself; record that instead of staying "running".
            logger.opt(exception=exc).bind(execution_id=execution_id).error("workflow crashed")
            status, result, error, ok = ExecutionStatus.FAILED, None, f"workflow crashed: {exc}", 0

        await self._log(
            execution_id,
            STEP_FINISH,
            {"completed": "INFO", "partial": "WARNING"}.get(status.value, "ERROR"),
            f"finished {status.value}: {ok} of {len(symbols)} symbols ok",
        )
        return await asyncio.to_thread(
            self.repository.finish_execution, execution_id, status, result, error, self.clock()
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
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """One symbol's steps. Returns its per-symbol entry and its signals."""
        try:
            result = await self._fetch_market_data(execution_id, symbol, bar_size, start, end)
        except Exception as exc:
            error = self._describe_fetch_error(symbol, exc)
            await self._log(execution_id, STEP_FETCH, "ERROR", self._mode(f"{symbol}: {error}"))
            return {"status": "error", "bars": 0, "error": error}, []

        frame = bars_frame(result.bars)
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
        return {"status": "ok", "bars": len(result.bars)}, [s.to_json() for s in output.signals]

    async def _fetch_market_data(
        self, execution_id: int, symbol: str, bar_size: BarSize, start: datetime, end: datetime
    ) -> MarketDataResult:
        """Bars through the container's policy (cache only in DEBUG_MODE), recorded as lineage."""
        result = await asyncio.wait_for(
            self.market_data_service.get_or_fetch_market_data(
                symbol, self.exchange, bar_size, start, end
            ),
            timeout=self.symbol_deadline_s,
        )
        meta = lineage_metadata(result, self.debug_mode)
        await asyncio.to_thread(
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
                f"(cache {result.outcome.value}), checksum {meta['checksum'][:12]}"
            ),
        )
        if result.missing:
            await self._log(
                execution_id,
                STEP_FETCH,
                "WARNING",
                self._mode(
                    f"{symbol}: {len(result.missing)} ranges are still missing from the data"
                ),
            )
        return result

    def _describe_fetch_error(self, symbol: str, exc: Exception) -> str:
        if isinstance(exc, MarketDataError):
            # Typed errors already say what to do; CacheMissInDebugMode names the populate command.
            return str(exc)
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
        await asyncio.to_thread(
            self.repository.add_log, execution_id, step, level, message, self.clock()
        )


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


def _final_status(
    per_symbol: Mapping[str, Mapping[str, Any]],
) -> tuple[ExecutionStatus, str | None]:
    failed = {
        symbol: item["error"] for symbol, item in per_symbol.items() if item["status"] != "ok"
    }
    if not failed:
        return ExecutionStatus.COMPLETED, None
    summary = "; ".join(f"{symbol}: {error}" for symbol, error in failed.items())
    if len(failed) == len(per_symbol):
        return ExecutionStatus.FAILED, f"every symbol failed. {summary}"
    return ExecutionStatus.PARTIAL, f"{len(failed)} of {len(per_symbol)} symbols failed. {summary}"
