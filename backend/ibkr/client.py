"""Historical bars from IBKR: qualified contracts, calendar-sized chunks, pacing, retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ib_insync import Contract, Stock
from ib_insync.wrapper import RequestError
from loguru import logger
from tenacity import RetryCallState, RetryError, retry_base, retry_if_exception_type

from backend.core import metrics
from backend.core.retry import Backoff
from backend.ibkr import chunking, error_codes
from backend.ibkr.chunking import DEFAULT_SESSIONS_PER_REQUEST, ChunkPlan
from backend.ibkr.connection import IBConnection
from backend.ibkr.pacing import PacingScheduler
from backend.market_data import calendar as market_calendar
from backend.market_data.domain import Bar, BarSize
from backend.market_data.errors import (
    GatewayTimeout,
    GatewayUnavailable,
    InvalidBar,
    NoDataReturned,
    PacingViolation,
    UnknownContract,
)
from backend.storage.types import utc_now

IB_BAR_SIZE = {
    BarSize.M1: "1 min",
    BarSize.M5: "5 mins",
    BarSize.M15: "15 mins",
    BarSize.M30: "30 mins",
    BarSize.H1: "1 hour",
    BarSize.D1: "1 day",
}

WHAT_TO_SHOW = "TRADES"
USE_RTH = True


@dataclass(frozen=True)
class FetchedChunk:
    plan: ChunkPlan
    bars: list[Bar]
    # Expected bars IBKR did not return in a successful answer, or the whole chunk when IBKR
    # confirmed there is nothing before the instrument's first trade.
    confirmed_empty: list[tuple[datetime, datetime]]
    empty_reason: str | None
    request: dict[str, Any]
    fetched_at: datetime


class IBKRClient:
    """Fetches validated UTC bars, one pacing-approved request per calendar chunk."""

    def __init__(
        self,
        connection: IBConnection,
        pacing: PacingScheduler,
        clock: Callable[[], datetime] = utc_now,
        request_timeout_s: float = 60.0,
        retry_attempts: int = 4,
        retry_base_s: float = 2.0,
        retry_max_s: float = 30.0,
        sessions_per_request: dict[BarSize, int] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.connection = connection
        self.pacing = pacing
        self.clock = clock
        self.request_timeout_s = request_timeout_s
        self.backoff = Backoff(retry_attempts, retry_base_s, retry_max_s, sleep)
        self.sessions_per_request = sessions_per_request or DEFAULT_SESSIONS_PER_REQUEST
        self._contracts: dict[tuple[str, str], Contract] = {}
        self._head_timestamps: dict[int, datetime] = {}

    # -- contracts ------------------------------------------------------------------------------

    async def qualify(self, symbol: str, exchange: str) -> Contract:
        """Qualified stock contract; conIds are cached for the life of the process."""
        key = (symbol, exchange)
        if key in self._contracts:
            return self._contracts[key]
        ib = await self.connection.ensure_connected()
        contract = Stock(symbol, "SMART", "USD", primaryExchange=exchange)
        metrics.GATEWAY_REQUESTS.labels("contract_details").inc()
        try:
            qualified = await asyncio.wait_for(
                ib.qualifyContractsAsync(contract), self.request_timeout_s
            )
        except RequestError as exc:
            raise error_codes.contract_error(exc.code, exc.message, symbol, exchange) from None
        except TimeoutError:
            raise self._timeout(f"contract details for {symbol}") from None
        except ConnectionError as exc:
            raise self._unavailable(exc) from None
        if not qualified:
            raise UnknownContract(symbol, exchange)
        self._contracts[key] = qualified[0]
        return qualified[0]

    async def head_timestamp(self, contract: Contract) -> datetime:
        if contract.conId in self._head_timestamps:
            return self._head_timestamps[contract.conId]
        ib = await self.connection.ensure_connected()
        await self.pacing.acquire(self._contract_key(contract), f"head:{contract.conId}")
        metrics.GATEWAY_REQUESTS.labels("head_timestamp").inc()
        try:
            raw = await asyncio.wait_for(
                ib.reqHeadTimeStampAsync(contract, WHAT_TO_SHOW, USE_RTH, formatDate=2),
                self.request_timeout_s,
            )
        except TimeoutError:
            raise self._timeout(f"head timestamp of {contract.symbol}") from None
        except ConnectionError as exc:
            raise self._unavailable(exc) from None
        head = _as_utc(raw)
        self._head_timestamps[contract.conId] = head
        return head

    # -- planning -------------------------------------------------------------------------------

    def plan_chunks(
        self, exchange: str, bar_size: BarSize, start: datetime, end: datetime
    ) -> list[ChunkPlan]:
        """Split [start, end) into requests of whole sessions within IBKR's duration limits."""
        return chunking.plan_chunks(
            exchange, bar_size, start, end, self.sessions_per_request[bar_size], self.clock()
        )

    def count_chunks(
        self, exchange: str, bar_size: BarSize, ranges: list[tuple[datetime, datetime]]
    ) -> int:
        """How many requests plan_chunks would make for the ranges, at most."""
        return chunking.count_chunks(
            exchange, bar_size, ranges, self.sessions_per_request[bar_size]
        )

    # -- fetching -------------------------------------------------------------------------------

    async def fetch_bars(
        self, symbol: str, exchange: str, bar_size: BarSize, start: datetime, end: datetime
    ) -> list[Bar]:
        bars: list[Bar] = []
        async for chunk in self.fetch_chunks(symbol, exchange, bar_size, start, end):
            bars.extend(chunk.bars)
        return bars

    async def fetch_chunks(
        self,
        symbol: str,
        exchange: str,
        bar_size: BarSize,
        start: datetime,
        end: datetime,
        plans: list[ChunkPlan] | None = None,
    ) -> AsyncIterator[FetchedChunk]:
        contract = await self.qualify(symbol, exchange)
        for plan in (
            plans if plans is not None else self.plan_chunks(exchange, bar_size, start, end)
        ):
            yield await self.fetch_chunk(contract, exchange, bar_size, plan)

    async def fetch_chunk(
        self, contract: Contract, exchange: str, bar_size: BarSize, plan: ChunkPlan
    ) -> FetchedChunk:
        """One chunk, retried with back-off on pacing violations, timeouts and disconnects."""
        retrying = self.backoff.retrying(
            retry_if_exception_type((PacingViolation, GatewayTimeout, _Disconnected))
            | _retry_no_data_once,
            before_sleep=lambda state: logger.bind(symbol=contract.symbol).warning(
                "historical request failed, retrying: {}", state.outcome.exception()
            ),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._request_chunk(contract, exchange, bar_size, plan)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            if isinstance(last, _Disconnected):
                raise self._unavailable(last.__cause__ or last) from None
            raise last from None
        except _Disconnected as exc:
            raise self._unavailable(exc.__cause__ or exc) from None
        raise AssertionError("unreachable")

    async def _request_chunk(
        self, contract: Contract, exchange: str, bar_size: BarSize, plan: ChunkPlan
    ) -> FetchedChunk:
        ib = await self.connection.ensure_connected()
        request = {
            "end_date_time": plan.end_date_time.isoformat()
            if isinstance(plan.end_date_time, datetime)
            else plan.end_date_time,
            "duration": plan.duration,
            "bar_size": IB_BAR_SIZE[bar_size],
            "what_to_show": WHAT_TO_SHOW,
            "use_rth": USE_RTH,
        }
        request_key = f"{contract.conId}|{request['end_date_time']}|{plan.duration}|{bar_size}"
        contract_key = self._contract_key(contract)
        await self.pacing.acquire(contract_key, request_key)
        metrics.GATEWAY_REQUESTS.labels("historical").inc()

        async def send():
            # Runs when wait_for's task starts; ib_insync writes the request before its first
            # await, so this is when the request leaves.
            self.pacing.sent(contract_key, request_key)
            # timeout=0: ib_insync's own timeout returns [] silently; ours raises instead.
            return await ib.reqHistoricalDataAsync(
                contract,
                endDateTime=plan.end_date_time,
                durationStr=plan.duration,
                barSizeSetting=IB_BAR_SIZE[bar_size],
                whatToShow=WHAT_TO_SHOW,
                useRTH=USE_RTH,
                formatDate=2,
                timeout=0,
            )

        try:
            raw = await asyncio.wait_for(send(), self.request_timeout_s)
        except TimeoutError:
            raise self._timeout(f"{contract.symbol} {bar_size} bars") from None
        except ConnectionError as exc:
            raise _Disconnected(str(exc)) from exc
        except RequestError as exc:
            return await self._handle_request_error(
                exc, contract, exchange, bar_size, plan, request
            )
        fetched_at = self.clock()
        if not raw:
            # The real gateway answers 162 when there is nothing; an empty list is not an answer.
            raise self._timeout(f"{contract.symbol} {bar_size} bars (empty answer)")
        sessions = market_calendar.sessions_between(
            exchange, plan.start - timedelta(days=1), plan.end + timedelta(days=1)
        )
        bars = self._to_bars(raw, bar_size, plan, sessions, fetched_at)
        returned = {bar.timestamp for bar in bars}
        # Only a closed session's missing bars are settled; a forming session may still get them.
        absent = [
            stamp
            for stamp in plan.expected
            if stamp not in returned
            and (close := _session_close(stamp, bar_size, sessions)) is not None
            and close <= fetched_at
        ]
        return FetchedChunk(
            plan=plan,
            bars=bars,
            confirmed_empty=market_calendar.group_into_ranges(
                absent, plan.expected, bar_size, exchange
            ),
            empty_reason="not in IBKR's answer for the range" if absent else None,
            request=request,
            fetched_at=fetched_at,
        )

    async def _handle_request_error(
        self,
        exc: RequestError,
        contract: Contract,
        exchange: str,
        bar_size: BarSize,
        plan: ChunkPlan,
        request: dict[str, Any],
    ) -> FetchedChunk:
        if error_codes.is_no_data(exc.code, exc.message):
            head = await self.head_timestamp(contract)
            if plan.end <= head:
                # Nothing exists before the first trade: remember it instead of asking again.
                return FetchedChunk(
                    plan=plan,
                    bars=[],
                    confirmed_empty=[(plan.start, plan.end)],
                    empty_reason=f"before first trade {head.isoformat()}",
                    request=request,
                    fetched_at=self.clock(),
                )
            raise NoDataReturned(
                f"IBKR returned no data for {contract.symbol} {bar_size} "
                f"{plan.start.isoformat()} to {plan.end.isoformat()}: {exc.message}"
            )
        raise error_codes.historical_error(exc.code, exc.message, contract.symbol, exchange)

    def _to_bars(
        self,
        raw,
        bar_size: BarSize,
        plan: ChunkPlan,
        sessions: list[market_calendar.Session],
        fetched_at: datetime,
    ) -> list[Bar]:
        bars: list[Bar] = []
        previous: datetime | None = None
        expected = set(plan.expected)
        for item in raw:
            stamp = _bar_timestamp(item.date)
            if previous is not None and stamp <= previous:
                raise InvalidBar(f"bars out of order or repeated at {stamp.isoformat()}")
            previous = stamp
            if not plan.start <= stamp < plan.end:
                continue
            if stamp not in expected:
                # The cache holds the calendar's regular-hours bars only; coverage relies on it.
                logger.warning("ignoring bar at {} outside the trading calendar", stamp.isoformat())
                continue
            _check_bar(stamp, item)
            close_at = _session_close(stamp, bar_size, sessions)
            bars.append(
                Bar(
                    timestamp=stamp,
                    open=float(item.open),
                    high=float(item.high),
                    low=float(item.low),
                    close=float(item.close),
                    volume=float(item.volume),
                    wap=float(item.average)
                    if item.average is not None and item.average >= 0
                    else None,
                    bar_count=int(item.barCount) if item.barCount and item.barCount > 0 else None,
                    # A bar can still change until its session has closed (Lean#4428).
                    is_final=close_at is not None and fetched_at >= close_at,
                )
            )
        return bars

    # -- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _contract_key(contract: Contract) -> str:
        return f"{contract.conId}:{contract.primaryExchange or contract.exchange}:{WHAT_TO_SHOW}"

    def _unavailable(self, exc: BaseException) -> GatewayUnavailable:
        return GatewayUnavailable(
            self.connection.host, self.connection.port, f"connection lost ({exc or 'disconnected'})"
        )

    def _timeout(self, what: str) -> GatewayTimeout:
        return GatewayTimeout(
            self.connection.host,
            self.connection.port,
            f"no answer for {what} within {self.request_timeout_s:g} s",
        )


class _RetryNoDataOnce(retry_base):
    """IBKR now and then answers "no data" for a range it serves on the next try; a second
    "no data" is believed."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        return (
            retry_state.attempt_number == 1
            and outcome is not None
            and isinstance(outcome.exception(), NoDataReturned)
        )


_retry_no_data_once = _RetryNoDataOnce()


class _Disconnected(Exception):
    """The socket dropped mid-request; retried after reconnecting."""


def _as_utc(value: datetime | date | str) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return datetime.fromtimestamp(int(value), UTC)


def _bar_timestamp(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidBar(f"bar time {value} has no time zone; request formatDate=2")
        return value.astimezone(UTC)
    return market_calendar.daily_bar_timestamp(value)


def _check_bar(stamp: datetime, item) -> None:
    problems = []
    if not item.low <= min(item.open, item.close):
        problems.append("low above open or close")
    if not item.high >= max(item.open, item.close):
        problems.append("high below open or close")
    if item.volume is not None and item.volume < 0:
        problems.append("negative volume")
    if problems:
        raise InvalidBar(f"bar at {stamp.isoformat()} is inconsistent: {', '.join(problems)}")


def _session_close(
    stamp: datetime, bar_size: BarSize, sessions: list[market_calendar.Session]
) -> datetime | None:
    """Close of the session a bar belongs to; None when the calendar has no such session."""
    for session in sessions:
        if bar_size is BarSize.D1:
            if session.day == stamp.date():
                return session.close_at
        elif session.open_at <= stamp < session.close_at:
            return session.close_at
    return None
