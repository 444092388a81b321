"""reqHistoricalData semantics: validate the request, work out its window, produce its bars.

Interpretation (IB documents little of this; the simulator keeps it simple and consistent):
- Bar sizes: `1 secs`, `5 secs`, `10 secs`, `15 secs`, `30 secs`, IB's minute and hour spellings
  (`1 min`, `5 mins`, ..., `1 hour`, `2 hours`, ...), `1 day`, `1 week` (or `1W`) and `1 month`
  (or `1M`). Anything else is error 321.
- Durations: `N S`, `N D`, `N W`, `N M`, `N Y` with N >= 1. `N D` means the last N trading sessions
  that opened before endDateTime (so `1 D` on a Saturday is Friday's session, as with IB). S, W, M
  and Y are calendar spans counted back from endDateTime.
- Limits (error 321): `N S` up to 86400; D/W/M up to 365 days (counting 7 days a week and 30 a
  month), longer spans must be given in years; intraday bars at most `1 Y`, bars under a minute at
  most one day.
- An intraday bar is returned when window start <= bar start < endDateTime; a daily bar when its
  session opened in that range; a weekly or monthly bar holds the daily bars of its calendar week
  (Monday to Sunday) or month, the whole period even when the window starts inside it, and is
  dated by the last session it holds. endDateTime later than now is cut to now, and bars hold only
  minutes that started before now. Nothing starts before the head timestamp, and bars of 30
  seconds or less are not kept for longer than six months.
- Stocks' bars are split-adjusted as of now (price_model.PriceModel.on_basis_of_now), and
  ADJUSTED_LAST is dividend-adjusted as of now on top of that.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .bars import BarArrays
from .ibtime import InvalidDateTime, parse_end_datetime
from .instruments import CONTINUOUS_FUTURE, CRYPTO, FX, INDEX, STOCK, ContractQuery, Instrument
from .paths import round_to_tick, tick_decimals
from .price_model import ADJUSTED_EXTRA_DECIMALS, PriceModel

DAY_SECONDS = 86_400
WEEK_SECONDS = 7 * DAY_SECONDS
MONTH_SECONDS = 31 * DAY_SECONDS
MAX_SECONDS_DURATION = 86_400
MAX_DAYS_DURATION = 365
DAYS_PER_UNIT = {"D": 1, "W": 7, "M": 30}
# IBKR keeps bars of 30 seconds or less for six months only.
SMALL_BAR_SECONDS = 30
SMALL_BARS_KEPT = pd.DateOffset(months=6)

BAR_SIZES = {
    "1 secs": 1, "5 secs": 5, "10 secs": 10, "15 secs": 15, "30 secs": 30,
    "1 min": 60, "2 mins": 120, "3 mins": 180, "5 mins": 300, "10 mins": 600, "15 mins": 900,
    "20 mins": 1200, "30 mins": 1800, "1 hour": 3600, "2 hours": 7200, "3 hours": 10800,
    "4 hours": 14400, "8 hours": 28800, "1 day": DAY_SECONDS,
    "1 week": WEEK_SECONDS, "1W": WEEK_SECONDS, "1 month": MONTH_SECONDS, "1M": MONTH_SECONDS,
}

TRADES, MIDPOINT, BID, ASK, BID_ASK = "TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK"
ADJUSTED_LAST, AGGTRADES = "ADJUSTED_LAST", "AGGTRADES"
# whatToShow -> (label of IB's "no data" message, name of the series in IB's data service)
WHAT_TO_SHOW = {
    TRADES: ("Trades", "Last"), MIDPOINT: ("Midpoint", "MidPoint"), BID: ("Bid", "Bid"),
    ASK: ("Ask", "Ask"), BID_ASK: ("Bid_Ask", "BidAsk"),
    ADJUSTED_LAST: ("Adjusted_Last", "AdjustedLast"), AGGTRADES: ("AggTrades", "AggLast"),
}
QUOTES = {MIDPOINT, BID, ASK, BID_ASK}
# The series each product has, after IB's "Available Data per Product" table; crypto trades
# come aggregated (AGGTRADES).
SERIES_BY_SEC_TYPE = {
    STOCK: {TRADES, ADJUSTED_LAST} | QUOTES,
    "FUT": {TRADES} | QUOTES,
    CONTINUOUS_FUTURE: {TRADES} | QUOTES,
    FX: QUOTES,
    INDEX: {TRADES},
    CRYPTO: {AGGTRADES} | QUOTES,
}

_DURATION = re.compile(r"^(\d+) ([SDWMY])$")

CONTINUOUS_FUTURE_END_DATE = (
    10339, "Setting end date/time for continuous future security type is not allowed.")


class RequestRejected(Exception):
    """The request gets an error message (code, text) instead of data."""

    def __init__(self, code: int, text: str):
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


def validation_error(tag: str, cause: str) -> RequestRejected:
    return RequestRejected(321, f"Error validating request.-'{tag}' : cause - {cause}")


def no_data_error(instrument: Instrument, exchange: str, what_to_show: str) -> RequestRejected:
    label = WHAT_TO_SHOW.get(what_to_show, WHAT_TO_SHOW[TRADES])[0]
    where = exchange or instrument.primary_exchange or instrument.exchange
    return RequestRejected(
        162,
        "Historical Market Data Service error message:HMDS query returned no data: "
        f"{instrument.display_symbol}@{where} {label}",
    )


def series_unavailable_error(instrument: Instrument, what_to_show: str,
                             bar_seconds: int) -> RequestRejected:
    """IB's answer for a series the product does not have, e.g. TRADES for an FX pair:
    `No historical market data for EUR/CASH@FXSUBPIP Last 1d`."""
    service = WHAT_TO_SHOW[what_to_show][1]
    # IDEALPRO quotes come from IB's sub-pip FX feed.
    exchange = ("FXSUBPIP" if instrument.exchange == "IDEALPRO"
                else instrument.exchange or instrument.primary_exchange)
    return RequestRejected(
        162,
        "Historical Market Data Service error message:No historical market data for "
        f"{instrument.symbol}/{instrument.sec_type}@{exchange} {service} {_step(bar_seconds)}",
    )


def _step(bar_seconds: int) -> str:
    return {DAY_SECONDS: "1d", WEEK_SECONDS: "1W", MONTH_SECONDS: "1M"}.get(
        bar_seconds, str(bar_seconds))


@dataclass(frozen=True)
class Duration:
    count: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = _DURATION.match(text.strip())
        if not match or int(match.group(1)) < 1:
            raise validation_error("bK", "Historical data duration format is invalid.")
        return cls(int(match.group(1)), match.group(2))


@dataclass(frozen=True)
class HistoricalRequest:
    req_id: int
    contract: ContractQuery
    end_datetime: str
    bar_size: str
    duration: str
    use_rth: bool
    what_to_show: str
    format_date: int
    keep_up_to_date: bool
    include_expired: bool = False

    @classmethod
    def from_fields(cls, fields: list[str]) -> HistoricalRequest:
        """Fields after the message id: reqId, 12 contract fields, includeExpired, ..."""
        req_id = int(fields[0])
        contract = ContractQuery.from_fields(fields[1:13])
        include_expired = flag(fields[13])
        end, bar_size, duration, use_rth, what_to_show, format_date = fields[14:20]
        rest = fields[20:]
        if contract.sec_type.upper() == "BAG" and rest:
            # Combo legs (4 fields each) come before keepUpToDate; skip them.
            rest = rest[1 + 4 * int(rest[0] or 0):]
        keep_up_to_date = bool(rest) and rest[0] in ("1", "True", "true")
        return cls(req_id, contract, end, bar_size, duration, flag(use_rth),
                   what_to_show.upper(), int(format_date or 1), keep_up_to_date,
                   include_expired)

    def pacing_key(self) -> tuple:
        """Two requests are identical for IB's pacing rule when every parameter matches."""
        return (self.contract, self.end_datetime, self.bar_size, self.duration, self.use_rth,
                self.what_to_show, self.format_date)

    @property
    def pacing_weight(self) -> int:
        # IBKR counts every BID_ASK request twice towards its pacing limits.
        return 2 if self.what_to_show == BID_ASK else 1


@dataclass
class HistoricalAnswer:
    start: dt.datetime
    end: dt.datetime
    daily: bool  # bars of a day or longer, dated yyyyMMdd
    bars: BarArrays
    session_dates: list[dt.date] | None  # daily and longer bars: the date of each bar


@dataclass(frozen=True)
class Plan:
    """A validated request: what to fetch, before pacing decides whether to fetch it."""

    bar_seconds: int
    duration: Duration
    end: dt.datetime


def plan(request: HistoricalRequest, now: dt.datetime) -> Plan:
    """Validate a request as IB does (error 321), resolving endDateTime against now."""
    bar_seconds = BAR_SIZES.get(request.bar_size)
    if bar_seconds is None:
        raise validation_error("bX", "Historical data bar size setting is invalid.")
    duration = Duration.parse(request.duration)
    _check_span(duration, bar_seconds)
    if request.what_to_show not in WHAT_TO_SHOW:
        raise validation_error("bW", "Historical data whatToShow setting is invalid.")
    if request.what_to_show == ADJUSTED_LAST:
        # Adjusted prices are anchored at today: IB refuses a past end and multi-day bars.
        if request.end_datetime.strip():
            raise validation_error("bM", "End date not supported with adjusted last")
        if bar_seconds > DAY_SECONDS:
            raise validation_error("bM", "Multi day bar size not supported with adjusted last")
    try:
        end = min(parse_end_datetime(request.end_datetime, now), now)
    except InvalidDateTime as exc:
        raise validation_error("bR", "Historical data end date/time format is invalid.") from exc
    return Plan(bar_seconds, duration, end)


def check_series(instrument: Instrument, what_to_show: str, bar_seconds: int) -> None:
    """Refuse a whatToShow the product does not have, as IB does."""
    if instrument.sec_type == CRYPTO and what_to_show == TRADES:
        raise RequestRejected(
            10299, "Expected what to show is AGGTRADES, please use that instead of TRADES.")
    if what_to_show not in SERIES_BY_SEC_TYPE[instrument.sec_type]:
        raise series_unavailable_error(instrument, what_to_show, bar_seconds)


def check_contract(request: HistoricalRequest, plan_: Plan, instrument: Instrument) -> None:
    """The refusals that depend on the contract as well as on the request."""
    if instrument.sec_type == CONTINUOUS_FUTURE and request.end_datetime.strip():
        raise RequestRejected(*CONTINUOUS_FUTURE_END_DATE)
    check_series(instrument, request.what_to_show, plan_.bar_seconds)


def answer(request: HistoricalRequest, plan_: Plan, instrument: Instrument, model: PriceModel,
           now: dt.datetime) -> HistoricalAnswer:
    """The bars of a validated request, or RequestRejected(162) when there are none."""
    rth = request.use_rth
    end_epoch, now_epoch = int(plan_.end.timestamp()), int(now.timestamp())
    start_epoch = _window_start(plan_.duration, plan_.end, model, instrument, rth)
    bar_seconds = plan_.bar_seconds
    if bar_seconds <= SMALL_BAR_SECONDS:
        start_epoch = max(start_epoch, int((pd.Timestamp(now) - SMALL_BARS_KEPT).timestamp()))
    dates = None
    session_indexes = None  # of each bar, for bars of a session or less
    if bar_seconds > DAY_SECONDS:
        bars, dates, split_factors = model.period_bars(
            instrument, start_epoch, end_epoch, now_epoch, rth,
            monthly=bar_seconds == MONTH_SECONDS)
    elif bar_seconds == DAY_SECONDS:
        bars = model.daily_bars(instrument, start_epoch, end_epoch, now_epoch, rth)
        sessions = model.sessions_for(instrument)
        dates = [sessions.dates[i] for i in bars.start.tolist()]
        session_indexes = bars.start
    else:
        bars = model.intraday_bars(instrument, start_epoch, end_epoch, now_epoch, bar_seconds,
                                   rth)
        session_indexes = model.session_index_of(instrument, bars.start)
    if len(bars) == 0:
        raise no_data_error(instrument, request.contract.exchange, request.what_to_show)
    if session_indexes is not None:
        bars, split_factors = model.on_basis_of_now(instrument, bars, session_indexes,
                                                    now_epoch)
    bars = _as_series(bars, request.what_to_show, instrument, model, now_epoch,
                      session_indexes, split_factors)
    start = dt.datetime.fromtimestamp(start_epoch, dt.UTC)
    return HistoricalAnswer(start, plan_.end, bar_seconds >= DAY_SECONDS, bars, dates)


def _check_span(duration: Duration, bar_seconds: int) -> None:
    if duration.unit == "S" and duration.count > MAX_SECONDS_DURATION:
        raise validation_error(
            "bP", "Historical data requests for durations longer than 86400 seconds must be "
                  "made in days.")
    if duration.count * DAYS_PER_UNIT.get(duration.unit, 0) > MAX_DAYS_DURATION:
        raise validation_error(
            "bP", "Historical data requests for durations longer than 365 days must be made "
                  "in years.")
    if bar_seconds < DAY_SECONDS and duration.unit == "Y" and duration.count > 1:
        raise validation_error("bP", "Time length exceed max.")
    if bar_seconds < 60 and not (duration.unit == "S"
                                 or (duration.unit == "D" and duration.count == 1)):
        raise validation_error("bP", "Time length exceed max.")


def _window_start(duration: Duration, end: dt.datetime, model: PriceModel,
                  instrument: Instrument, rth: bool) -> int:
    end_epoch = int(end.timestamp())
    if duration.unit == "D":
        sessions = model.sessions_for(instrument)
        last = sessions.last_started_before(end_epoch, rth)
        if last < 0:
            return end_epoch
        first = max(last - duration.count + 1, 0)
        return int(sessions.day_open(rth)[first])
    if duration.unit == "S":
        return end_epoch - duration.count
    if duration.unit == "W":
        return int((end - dt.timedelta(weeks=duration.count)).timestamp())
    months = duration.count * (12 if duration.unit == "Y" else 1)
    return int((pd.Timestamp(end) - pd.DateOffset(months=months)).timestamp())


def _as_series(bars: BarArrays, what_to_show: str, instrument: Instrument, model: PriceModel,
               now: int, session_indexes: np.ndarray | None,
               split_factors: np.ndarray) -> BarArrays:
    """The trades path (on the basis of now) as the requested series.

    Quotes sit one tick around the trades path and, as IB sends them, report -1 volume. BID_ASK
    bars open at the average bid and close at the average ask (the bar's average price one tick
    down and up), with the highest ask and the lowest bid. A bar that a split adjusted was
    quoted on the tick of its day, so its quotes sit on that tick divided by its split factor.
    ADJUSTED_LAST scales the trades by the dividends since. Indices report no volume; crypto
    volume is in coins.
    """
    tick = instrument.min_tick
    decimals = tick_decimals(tick) + ADJUSTED_EXTRA_DECIMALS
    adjusted = split_factors != 1
    grid = tick / split_factors  # the tick of the bar's day, on today's basis

    def on_tick(prices: np.ndarray) -> np.ndarray:
        quoted = np.maximum(round_to_tick(prices, tick), tick)
        if not adjusted.any():
            return quoted
        on_grid = np.round(np.maximum(np.rint(prices / grid), 1) * grid, decimals)
        return np.where(adjusted, on_grid, quoted)

    if what_to_show in QUOTES:
        minus_one = np.full(len(bars), -1, dtype=np.int64)
        if what_to_show == BID_ASK:
            prices = (bars.wap - grid, bars.high + grid, bars.low - grid, bars.wap + grid)
        else:
            offset = {MIDPOINT: 0.0, BID: -grid, ASK: grid}[what_to_show]
            prices = (bars.open + offset, bars.high + offset, bars.low + offset,
                      bars.close + offset)
        return BarArrays(bars.start, *(on_tick(p) for p in prices), minus_one,
                         np.full(len(bars), -1.0), minus_one)
    if what_to_show == ADJUSTED_LAST:
        factors = model.dividend_factors(instrument, session_indexes, now)
        paid = factors != 1

        def after_dividends(column: np.ndarray) -> np.ndarray:
            return np.where(paid, np.round(column * factors, decimals), column)

        open_, high, low, close = (after_dividends(column) for column in (
            bars.open, bars.high, bars.low, bars.close))
        wap = np.clip(after_dividends(bars.wap), low, high)
        return BarArrays(bars.start, open_, high, low, close, bars.volume, wap, bars.count)
    if instrument.sec_type == INDEX:
        zeros = np.zeros(len(bars), dtype=np.int64)
        return BarArrays(bars.start, bars.open, bars.high, bars.low, bars.close, zeros,
                         bars.wap, zeros)
    if instrument.volume_unit != 1:
        volume = np.round(bars.volume * instrument.volume_unit, 8)
        return BarArrays(bars.start, bars.open, bars.high, bars.low, bars.close, volume,
                         bars.wap, bars.count)
    return bars


def flag(text: str) -> bool:
    return text.strip() in ("1", "True", "true")
