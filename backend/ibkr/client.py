"""Historical bars from IBKR: qualified contracts, calendar-sized chunks, pacing, retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from ib_insync import ContFuture, Contract, Crypto, Forex, Future, Index, Stock
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
from backend.market_data.domain import Bar, BarSize, SecType, SeriesKey, WhatToShow
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
    BarSize.S5: "5 secs",
    BarSize.S30: "30 secs",
    BarSize.M1: "1 min",
    BarSize.M2: "2 mins",
    BarSize.M3: "3 mins",
    BarSize.M5: "5 mins",
    BarSize.M10: "10 mins",
    BarSize.M15: "15 mins",
    BarSize.M20: "20 mins",
    BarSize.M30: "30 mins",
    BarSize.H1: "1 hour",
    BarSize.H2: "2 hours",
    BarSize.H4: "4 hours",
    BarSize.D1: "1 day",
    BarSize.W1: "1 week",
    BarSize.MO1: "1 month",
}
# Series IBKR refuses an end date for: they are asked for up to now ("") and cut to the range.
NO_END_DATE = (WhatToShow.ADJUSTED_LAST,)


def ib_contract(series: SeriesKey) -> Contract:
    """The ib_insync contract a series names (before qualification)."""
    kind = SecType(series.sec_type)
    if kind is SecType.STK:
        # SMART routing with the primary exchange: what "NVDA on NASDAQ" means to IBKR.
        return Stock(series.symbol, "SMART", series.currency, primaryExchange=series.exchange)
    if kind is SecType.IND:
        return Index(series.symbol, series.exchange, series.currency)
    if kind is SecType.FUT:
        # includeExpired: an expired future is found only with it (for two years).
        return Future(
            series.symbol,
            series.expiry,
            series.exchange,
            currency=series.currency,
            includeExpired=True,
        )
    if kind is SecType.CONTFUT:
        return ContFuture(series.symbol, series.exchange, currency=series.currency)
    if kind is SecType.CASH:
        return Forex(series.symbol + series.currency, exchange=series.exchange)
    return Crypto(series.symbol, series.exchange, series.currency)


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
        self._contracts: dict[tuple, Contract] = {}
        self._head_timestamps: dict[tuple[int, str, bool], datetime] = {}

    # -- contracts ------------------------------------------------------------------------------

    async def qualify(self, series: SeriesKey) -> Contract:
        """The series' qualified contract; conIds are cached for the life of the process."""
        key = (series.symbol, series.exchange, series.sec_type, series.currency, series.expiry)
        if key in self._contracts:
            return self._contracts[key]
        ib = await self.connection.ensure_connected()
        contract = ib_contract(series)
        metrics.GATEWAY_REQUESTS.labels("contract_details").inc()
        try:
            qualified = await asyncio.wait_for(
                ib.qualifyContractsAsync(contract), self.request_timeout_s
            )
        except RequestError as exc:
            raise error_codes.contract_error(
                exc.code, exc.message, series.symbol, series.exchange
            ) from None
        except TimeoutError:
            raise self._timeout(f"contract details for {series.label()}") from None
        except ConnectionError as exc:
            raise self._unavailable(exc) from None
        if not qualified:
            raise UnknownContract(series.symbol, series.exchange)
        found = qualified[0]
        if series.sec_type == SecType.FUT:
            # Qualifying copies IBKR's answer over the contract, includeExpired included; the
            # historical request needs it again for an expired future.
            found.includeExpired = True
        self._contracts[key] = found
        return found

    async def head_timestamp(
        self,
        contract: Contract,
        series: SeriesKey,
        recorded: Callable[[], Awaitable[datetime | None]] | None = None,
    ) -> datetime:
        """The first bar IBKR has of the contract's series in the series' hours.

        `recorded` reads where another process stores it: processes asking at once all wait for
        the one identical-request slot, and those that waited find the first one's answer there
        instead of asking again (the slot they were granted goes unused, within the budget)."""
        key = (contract.conId, series.what_to_show, series.use_rth)
        if key in self._head_timestamps:
            return self._head_timestamps[key]
        ib = await self.connection.ensure_connected()
        waited = await self.pacing.acquire(self._contract_key(contract, series), f"head:{key}")
        if waited > 0 and recorded is not None:
            known = await recorded()
            if known is not None:
                self._head_timestamps[key] = known
                return known
        metrics.GATEWAY_REQUESTS.labels("head_timestamp").inc()
        try:
            raw = await asyncio.wait_for(
                ib.reqHeadTimeStampAsync(
                    contract, series.what_to_show, series.use_rth, formatDate=2
                ),
                self.request_timeout_s,
            )
        except TimeoutError:
            raise self._timeout(f"head timestamp of {series.label()}") from None
        except ConnectionError as exc:
            raise self._unavailable(exc) from None
        head = _as_utc(raw)
        self._head_timestamps[key] = head
        return head

    # -- planning -------------------------------------------------------------------------------

    def plan_chunks(
        self, series: SeriesKey, bar_size: BarSize, start: datetime, end: datetime
    ) -> list[ChunkPlan]:
        """Split [start, end) into requests of whole sessions within IBKR's duration limits."""
        return chunking.plan_chunks(
            series.market,
            bar_size,
            start,
            end,
            self.sessions_per_request[bar_size],
            self.clock(),
            what_to_show=series.what_to_show,
        )

    def count_chunks(
        self, series: SeriesKey, bar_size: BarSize, ranges: list[tuple[datetime, datetime]]
    ) -> int:
        """How many requests plan_chunks would make for the ranges, at most."""
        return chunking.count_chunks(
            series.market,
            bar_size,
            ranges,
            self.sessions_per_request[bar_size],
            what_to_show=series.what_to_show,
            now=self.clock(),
        )

    # -- fetching -------------------------------------------------------------------------------

    async def fetch_bars(self, series: SeriesKey, start: datetime, end: datetime) -> list[Bar]:
        bars: list[Bar] = []
        async for chunk in self.fetch_chunks(series, start, end):
            bars.extend(chunk.bars)
        return bars

    async def fetch_chunks(
        self,
        series: SeriesKey,
        start: datetime,
        end: datetime,
        plans: list[ChunkPlan] | None = None,
    ) -> AsyncIterator[FetchedChunk]:
        contract = await self.qualify(series)
        bar_size = series.bar_size
        for plan in plans if plans is not None else self.plan_chunks(series, bar_size, start, end):
            yield await self.fetch_chunk(contract, series, plan)

    async def fetch_chunk(
        self, contract: Contract, series: SeriesKey, plan: ChunkPlan
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
                    return await self._request_chunk(contract, series, plan)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            if isinstance(last, _Disconnected):
                raise self._unavailable(last.__cause__ or last) from None
            raise last from None
        except _Disconnected as exc:
            raise self._unavailable(exc.__cause__ or exc) from None
        raise AssertionError("unreachable")

    async def _request_chunk(
        self, contract: Contract, series: SeriesKey, plan: ChunkPlan
    ) -> FetchedChunk:
        ib = await self.connection.ensure_connected()
        bar_size = series.bar_size
        end_date_time, duration = plan.end_date_time, plan.duration
        request = {
            "end_date_time": end_date_time.isoformat()
            if isinstance(end_date_time, datetime)
            else end_date_time,
            "duration": duration,
            "bar_size": IB_BAR_SIZE[bar_size],
            "what_to_show": series.what_to_show,
            "use_rth": series.use_rth,
            "sec_type": series.sec_type,
            "con_id": contract.conId,
        }
        request_key = (
            f"{contract.conId}|{request['end_date_time']}|{duration}|{bar_size}"
            f"|{series.what_to_show}|{series.use_rth}"
        )
        contract_key = self._contract_key(contract, series)
        # BID_ASK counts as two requests against IBKR's limits: two slots, the second under a
        # key of its own (the same key again would wait out the identical-request window).
        slots = [request_key]
        if series.what_to_show == WhatToShow.BID_ASK:
            slots.append(f"{request_key}|second slot")
        for slot in slots:
            await self.pacing.acquire(contract_key, slot)
        metrics.GATEWAY_REQUESTS.labels("historical").inc()

        async def send():
            # Runs when wait_for's task starts; ib_insync writes the request before its first
            # await, so this is when the request leaves.
            for slot in slots:
                self.pacing.sent(contract_key, slot)
            # timeout=0: ib_insync's own timeout returns [] silently; ours raises instead.
            return await ib.reqHistoricalDataAsync(
                contract,
                endDateTime=end_date_time,
                durationStr=duration,
                barSizeSetting=IB_BAR_SIZE[bar_size],
                whatToShow=series.what_to_show,
                useRTH=series.use_rth,
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
            return await self._handle_request_error(exc, contract, series, plan, request)
        fetched_at = self.clock()
        if not raw:
            # The real gateway answers 162 when there is nothing; an empty list is not an answer.
            raise self._timeout(f"{contract.symbol} {bar_size} bars (empty answer)")
        bars = self._to_bars(raw, series, plan, fetched_at)
        returned = {bar.timestamp for bar in bars}
        # Only a closed session's missing bars are settled; a forming session may still get them.
        absent = [
            stamp
            for stamp in plan.expected
            if stamp not in returned
            and (close := market_calendar.session_close_for_bar(series.market, bar_size, stamp))
            is not None
            and close <= fetched_at
        ]
        return FetchedChunk(
            plan=plan,
            bars=bars,
            confirmed_empty=market_calendar.group_into_ranges(
                absent, plan.expected, bar_size, series.market
            ),
            empty_reason="not in IBKR's answer for the range" if absent else None,
            request=request,
            fetched_at=fetched_at,
        )

    async def _handle_request_error(
        self,
        exc: RequestError,
        contract: Contract,
        series: SeriesKey,
        plan: ChunkPlan,
        request: dict[str, Any],
    ) -> FetchedChunk:
        bar_size = series.bar_size
        if error_codes.is_no_data(exc.code, exc.message):
            head = await self.head_timestamp(contract, series)
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
        raise error_codes.historical_error(exc.code, exc.message, series.symbol, series.exchange)

    def _to_bars(self, raw, series: SeriesKey, plan: ChunkPlan, fetched_at: datetime) -> list[Bar]:
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
            close_at = market_calendar.session_close_for_bar(series.market, series.bar_size, stamp)
            bars.append(
                Bar(
                    timestamp=stamp,
                    open=float(item.open),
                    high=float(item.high),
                    low=float(item.low),
                    close=float(item.close),
                    # Quote series (MIDPOINT, BID, ASK, BID_ASK) have no volume: IBKR sends -1.
                    volume=float(item.volume)
                    if item.volume is not None and item.volume >= 0
                    else float("nan"),
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
    def _contract_key(contract: Contract, series: SeriesKey) -> str:
        exchange = contract.primaryExchange or contract.exchange
        return f"{contract.conId}:{exchange}:{series.what_to_show}"

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
    if item.volume is not None and item.volume < 0 and item.volume != -1:
        problems.append("negative volume")
    if problems:
        raise InvalidBar(f"bar at {stamp.isoformat()} is inconsistent: {', '.join(problems)}")
