"""reqHistoricalData semantics: validate the request, work out its window, produce its bars.

Interpretation (IB documents little of this; the simulator keeps it simple and consistent):
- Bar sizes: IB's minute and hour spellings (`1 min`, `5 mins`, ..., `1 hour`, `2 hours`, ...) and
  `1 day`. Anything else is error 321.
- Durations: `N S`, `N D`, `N W`, `N M`, `N Y` with N >= 1. `N D` means the last N trading sessions
  that opened before endDateTime (so `1 D` on a Saturday is Friday's session, as with IB). S, W, M
  and Y are calendar spans counted back from endDateTime.
- Limits (error 321): `N S` up to 86400; D/W/M up to 365 days (counting 7 days a week and 30 a
  month), longer spans must be given in years; intraday bars at most `1 Y`.
- An intraday bar is returned when window start <= bar start < endDateTime; a daily bar when its
  session opened in that range. endDateTime later than now is cut to now, and bars hold only
  minutes that started before now. Nothing starts before the head timestamp.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .bars import BarArrays
from .ibtime import InvalidDateTime, parse_end_datetime
from .instruments import ContractQuery, Instrument
from .price_model import PriceModel

DAY_SECONDS = 86_400
MAX_SECONDS_DURATION = 86_400
MAX_DAYS_DURATION = 365
DAYS_PER_UNIT = {"D": 1, "W": 7, "M": 30}

BAR_SIZES = {
    "1 min": 60, "2 mins": 120, "3 mins": 180, "5 mins": 300, "10 mins": 600, "15 mins": 900,
    "20 mins": 1200, "30 mins": 1800, "1 hour": 3600, "2 hours": 7200, "3 hours": 10800,
    "4 hours": 14400, "8 hours": 28800, "1 day": DAY_SECONDS,
}

# whatToShow -> (label IB uses in its "no data" message, price offset of the series)
WHAT_TO_SHOW = {"TRADES": ("Trades", 0.0), "MIDPOINT": ("Midpoint", 0.0),
                "BID": ("Bid", -0.01), "ASK": ("Ask", 0.01)}

_DURATION = re.compile(r"^(\d+) ([SDWMY])$")


class RequestRejected(Exception):
    """The request gets an error message (code, text) instead of data."""

    def __init__(self, code: int, text: str):
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


def validation_error(tag: str, cause: str) -> RequestRejected:
    return RequestRejected(321, f"Error validating request.-'{tag}' : cause - {cause}")


def no_data_error(instrument: Instrument, exchange: str, what_to_show: str) -> RequestRejected:
    label = WHAT_TO_SHOW.get(what_to_show, WHAT_TO_SHOW["TRADES"])[0]
    return RequestRejected(
        162,
        "Historical Market Data Service error message:HMDS query returned no data: "
        f"{instrument.symbol}@{exchange or instrument.primary_exchange} {label}",
    )


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

    @classmethod
    def from_fields(cls, fields: list[str]) -> HistoricalRequest:
        """Fields after the message id: reqId, 12 contract fields, includeExpired, ..."""
        req_id = int(fields[0])
        contract = ContractQuery.from_fields(fields[1:13])
        end, bar_size, duration, use_rth, what_to_show, format_date = fields[14:20]
        rest = fields[20:]
        if contract.sec_type.upper() == "BAG" and rest:
            # Combo legs (4 fields each) come before keepUpToDate; skip them.
            rest = rest[1 + 4 * int(rest[0] or 0):]
        keep_up_to_date = bool(rest) and rest[0] in ("1", "True", "true")
        return cls(req_id, contract, end, bar_size, duration, _flag(use_rth),
                   what_to_show.upper(), int(format_date or 1), keep_up_to_date)

    def pacing_key(self) -> tuple:
        """Two requests are identical for IB's pacing rule when every parameter matches."""
        return (self.contract, self.end_datetime, self.bar_size, self.duration, self.use_rth,
                self.what_to_show, self.format_date)


@dataclass
class HistoricalAnswer:
    start: dt.datetime
    end: dt.datetime
    daily: bool
    bars: BarArrays
    session_dates: list[dt.date] | None  # daily bars: the session of each bar


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
    try:
        end = min(parse_end_datetime(request.end_datetime, now), now)
    except InvalidDateTime as exc:
        raise validation_error("bR", "Historical data end date/time format is invalid.") from exc
    return Plan(bar_seconds, duration, end)


def answer(request: HistoricalRequest, plan_: Plan, instrument: Instrument, model: PriceModel,
           now: dt.datetime) -> HistoricalAnswer:
    """The bars of a validated request, or RequestRejected(162) when there are none."""
    rth = request.use_rth
    end_epoch, now_epoch = int(plan_.end.timestamp()), int(now.timestamp())
    start_epoch = _window_start(plan_.duration, plan_.end, model, rth)
    daily = plan_.bar_seconds == DAY_SECONDS
    if daily:
        bars = model.daily_bars(instrument, start_epoch, end_epoch, now_epoch, rth)
    else:
        bars = model.intraday_bars(instrument, start_epoch, end_epoch, now_epoch,
                                   plan_.bar_seconds, rth)
    if len(bars) == 0:
        raise no_data_error(instrument, request.contract.exchange, request.what_to_show)
    bars = _as_series(bars, request.what_to_show)
    dates = [model.sessions.dates[i] for i in bars.start.tolist()] if daily else None
    start = dt.datetime.fromtimestamp(start_epoch, dt.UTC)
    return HistoricalAnswer(start, plan_.end, daily, bars, dates)


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


def _window_start(duration: Duration, end: dt.datetime, model: PriceModel, rth: bool) -> int:
    sessions = model.sessions
    end_epoch = int(end.timestamp())
    if duration.unit == "D":
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


def _as_series(bars: BarArrays, what_to_show: str) -> BarArrays:
    """TRADES as generated; quote series shift prices and, as IB does, report -1 volume."""
    if what_to_show == "TRADES":
        return bars
    offset = WHAT_TO_SHOW[what_to_show][1]
    minus_one = np.full(len(bars), -1, dtype=np.int64)

    def shift(prices: np.ndarray) -> np.ndarray:
        return np.maximum(np.round(prices + offset, 2), 0.01)

    return BarArrays(bars.start, shift(bars.open), shift(bars.high), shift(bars.low),
                     shift(bars.close), minus_one, np.full(len(bars), -1.0), minus_one)


def _flag(text: str) -> bool:
    return text.strip() in ("1", "True", "true")
