"""Which bars a market's trading calendar expects, and when each bar's session closes.

Sessions per market, built from exchange_calendars, with the hours IBKR serves (regular hours are
what useRTH=1 returns, all hours what useRTH=0 returns):

- STK on a US exchange, calendar XNYS: regular 09:30-16:00 ET with early closes; all hours from
  04:00 ET to 4 h after the close.
- IND: VIX keeps CFE's hours (calendar XCBF, 08:30-15:15 CT), any other index (SPX) NYSE's
  regular hours; indices are served in regular hours only.
- FUT and CONTFUT on CME or GLOBEX, calendar CMES: regular 08:30-15:00 CT; all hours from
  17:00 CT the evening before to 16:00 CT.
- CASH on IDEALPRO, calendar 24/5: 17:15 ET the evening before to 17:00 ET, in both.
- CRYPTO on PAXOS, calendar 24/7: 00:00-24:00 UTC every day, in both.

A session that crosses midnight is dated by the day it closes, as IBKR dates its daily bars.
Intraday bars start at the session's open in the requested hours and step by the bar length; the
last one may be cut short by the close. Daily bars are dated at midnight UTC of the session date.
A weekly bar holds a Monday-to-Sunday week's sessions and a monthly bar a calendar month's; each is
dated at midnight UTC of the last session it holds (a week whose Friday is a holiday is dated
Thursday), which for the week or month in progress is the last session opened so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from backend.market_data.domain import BarSize, Market, SecType

BAR_LENGTH = {
    BarSize.S5: timedelta(seconds=5),
    BarSize.S30: timedelta(seconds=30),
    BarSize.M1: timedelta(minutes=1),
    BarSize.M2: timedelta(minutes=2),
    BarSize.M3: timedelta(minutes=3),
    BarSize.M5: timedelta(minutes=5),
    BarSize.M10: timedelta(minutes=10),
    BarSize.M15: timedelta(minutes=15),
    BarSize.M20: timedelta(minutes=20),
    BarSize.M30: timedelta(minutes=30),
    BarSize.H1: timedelta(hours=1),
    BarSize.H2: timedelta(hours=2),
    BarSize.H4: timedelta(hours=4),
}
PERIOD_SIZES = (BarSize.W1, BarSize.MO1)

# The exchanges IBKR names for each asset class that the calendars here cover.
EXCHANGES: dict[SecType, tuple[str, ...]] = {
    SecType.STK: ("AMEX", "ARCA", "BATS", "ISLAND", "NASDAQ", "NYSE", "SMART"),
    SecType.IND: ("CBOE",),
    SecType.FUT: ("CME", "GLOBEX"),
    SecType.CONTFUT: ("CME", "GLOBEX"),
    SecType.CASH: ("IDEALPRO",),
    SecType.CRYPTO: ("PAXOS",),
}

# Each way of laying out sessions, and the exchange_calendars calendar it starts from.
_STOCKS, _STOCKS_ALL_HOURS = "XNYS", "XNYS all hours"
_CFE = "XCBF"
_GLOBEX_REGULAR, _GLOBEX = "CMES regular hours", "CMES"
_FX, _CRYPTO = "24/5 FX", "24/7"
_CALENDAR_OF = {
    _STOCKS: "XNYS",
    _STOCKS_ALL_HOURS: "XNYS",
    _CFE: "XCBF",
    _GLOBEX_REGULAR: "CMES",
    _GLOBEX: "CMES",
    _FX: "24/5",
    _CRYPTO: "24/7",
}

NEW_YORK = "America/New_York"
CHICAGO = "America/Chicago"
# Pre-market opens 5.5 h before the 09:30 open; after-hours runs 4 h past the close (20:00 ET,
# 17:00 ET on early-close days), as on the ECNs IBKR routes to.
PRE_MARKET = timedelta(hours=5, minutes=30)
AFTER_HOURS = timedelta(hours=4)
# Globex equity futures: the pit session IBKR calls regular hours, and the daily close before the
# maintenance hour (exchange_calendars' CMES sessions run to 17:00 CT).
GLOBEX_REGULAR_OPEN = timedelta(hours=8, minutes=30)
GLOBEX_REGULAR_CLOSE = timedelta(hours=15)
GLOBEX_DAILY_CLOSE = timedelta(hours=16)
# IDEALPRO trades from 17:15 ET the evening before to 17:00 ET, Sunday evening to Friday.
FX_OPEN = timedelta(hours=17, minutes=15) - timedelta(days=1)
FX_CLOSE = timedelta(hours=17)


class UnsupportedExchange(ValueError):
    field = "exchange"


@dataclass(frozen=True)
class Session:
    day: date
    open_at: datetime
    close_at: datetime


@dataclass(frozen=True)
class Period:
    """A week's or a month's sessions (so far): the bar is dated by `last.day`."""

    first: Session
    last: Session
    session_count: int

    @property
    def stamp(self) -> datetime:
        return daily_bar_timestamp(self.last.day)


def _as_market(value: Market | str) -> Market:
    """The market a caller names. A plain exchange (the old signature) means a US stock there in
    regular hours; it stays accepted until every caller passes series.market."""
    if isinstance(value, Market):
        return value
    if isinstance(value, str):
        return Market(SecType.STK, value, True)
    raise TypeError(f"expected a Market or an exchange name, not {value!r}")


@lru_cache(maxsize=64)
def _layout(market: Market) -> str:
    """Which session layout a market trades in; UnsupportedExchange for an exchange the asset
    class has no calendar for here."""
    try:
        sec_type = SecType(market.sec_type)
    except ValueError:
        known = ", ".join(kind.value for kind in SecType)
        raise UnsupportedExchange(
            f"sec_type {market.sec_type!r} has no trading calendar; use one of {known}"
        ) from None
    exchange = market.exchange.upper()
    allowed = EXCHANGES[sec_type]
    if exchange not in allowed:
        raise UnsupportedExchange(
            f"exchange {market.exchange!r} has no trading calendar for sec_type {sec_type.value};"
            f" use one of {', '.join(allowed)}"
        )
    if sec_type is SecType.STK:
        return _STOCKS if market.use_rth else _STOCKS_ALL_HOURS
    if sec_type is SecType.IND:
        # Indices are served in regular hours only: VIX keeps CFE's hours, the others NYSE's.
        return _CFE if market.symbol.upper() == "VIX" else _STOCKS
    if sec_type in (SecType.FUT, SecType.CONTFUT):
        return _GLOBEX_REGULAR if market.use_rth else _GLOBEX
    return _FX if sec_type is SecType.CASH else _CRYPTO


@lru_cache(maxsize=8)
def _calendar(code: str) -> xcals.ExchangeCalendar:
    return xcals.get_calendar(code)


def calendar_for(market: Market | str) -> xcals.ExchangeCalendar:
    """The exchange_calendars calendar a market's sessions come from; raises
    UnsupportedExchange for a market without one."""
    return _calendar(_CALENDAR_OF[_layout(_as_market(market))])


@dataclass(frozen=True)
class _Schedule:
    """A layout's sessions as plain Python values and epoch-second arrays, built once: pandas
    lookups per call cost milliseconds, which many concurrent coverage checks cannot afford."""

    sessions: list[Session]
    open_seconds: np.ndarray  # ascending, as are the other two
    close_seconds: np.ndarray
    day_seconds: np.ndarray  # midnight UTC of each session's date


@lru_cache(maxsize=len(_CALENDAR_OF))
def _schedule(layout: str) -> _Schedule:
    schedule = _calendar(_CALENDAR_OF[layout]).schedule
    days = schedule.index
    opens = _epoch_seconds(schedule["open"])
    closes = _epoch_seconds(schedule["close"])
    if layout == _STOCKS_ALL_HOURS:
        opens = opens - int(PRE_MARKET.total_seconds())
        closes = closes + int(AFTER_HOURS.total_seconds())
    elif layout in (_GLOBEX, _GLOBEX_REGULAR):
        # Early closes (12:00 CT around holidays) come from the calendar and stay as they are.
        closes = np.minimum(closes, _local_times(days, GLOBEX_DAILY_CLOSE, CHICAGO))
        if layout == _GLOBEX_REGULAR:
            opens = np.maximum(opens, _local_times(days, GLOBEX_REGULAR_OPEN, CHICAGO))
            closes = np.minimum(closes, _local_times(days, GLOBEX_REGULAR_CLOSE, CHICAGO))
    elif layout == _FX:
        opens = _local_times(days, FX_OPEN, NEW_YORK)
        closes = _local_times(days, FX_CLOSE, NEW_YORK)
    day_seconds = days.to_numpy(dtype="datetime64[s]").astype(np.int64)
    sessions = [
        Session(
            label.date(),
            datetime.fromtimestamp(int(open_s), UTC),
            datetime.fromtimestamp(int(close_s), UTC),
        )
        for label, open_s, close_s in zip(days, opens, closes, strict=True)
    ]
    return _Schedule(sessions, opens, closes, day_seconds)


def _local_times(days: pd.DatetimeIndex, offset: timedelta, zone: str) -> np.ndarray:
    """Epoch seconds of each session date plus `offset`, read as a local clock time in `zone`
    (so 17:00 CT is 22:00 or 23:00 UTC depending on the date's daylight saving time)."""
    local = (days + pd.Timedelta(offset)).tz_localize(zone)
    return local.tz_convert(UTC).to_numpy(dtype="datetime64[s]").astype(np.int64)


def _epoch_seconds(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype="datetime64[s]").astype(np.int64)


@dataclass(frozen=True)
class _Periods:
    """A layout's weeks or months, as indexes of their first and last sessions."""

    first: np.ndarray
    last: np.ndarray


@lru_cache(maxsize=2 * len(_CALENDAR_OF))
def _periods(layout: str, bar_size: BarSize) -> _Periods:
    days = _schedule(layout).day_seconds // 86_400  # days since 1970-01-01, a Thursday
    keys = (
        (days + 3) // 7
        if bar_size is BarSize.W1
        else days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    )
    first = np.r_[0, np.flatnonzero(keys[1:] != keys[:-1]) + 1]
    last = np.r_[first[1:] - 1, len(keys) - 1]
    return _Periods(first, last)


def warm_up() -> None:
    """Build every market's schedule now: the first use of one takes a few hundred milliseconds
    of CPU, which must not land on the event loop inside somebody's request."""
    for layout in _CALENDAR_OF:
        _schedule(layout)
        for bar_size in PERIOD_SIZES:
            _periods(layout, bar_size)


def _overlapping(schedule: _Schedule, start_s: float, end_s: float) -> tuple[int, int]:
    # Overlap means close > start and open < end; both columns ascend.
    first = int(np.searchsorted(schedule.close_seconds, start_s, side="right"))
    last = int(np.searchsorted(schedule.open_seconds, end_s, side="left"))
    return first, max(first, last)


def sessions_between(market: Market | str, start: datetime, end: datetime) -> list[Session]:
    """Sessions whose hours (the market's, regular or all) overlap [start, end)."""
    schedule = _schedule(_layout(_as_market(market)))
    first, last = _overlapping(schedule, start.timestamp(), end.timestamp())
    return schedule.sessions[first:last]


def daily_bar_timestamp(day: date) -> datetime:
    """Daily and longer bars are dates; they are stored at midnight UTC of the session date."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _period_bars(
    layout: str, bar_size: BarSize, start: datetime, end: datetime, now: datetime | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stamps in epoch seconds, first session index, last session index) of the weeks or months
    whose bar is dated in [start, end). With `now`, the period in progress holds the sessions
    opened before now, and later periods have no bar yet."""
    schedule = _schedule(layout)
    periods = _periods(layout, bar_size)
    first, last = periods.first, periods.last
    if now is not None:
        opened = int(np.searchsorted(schedule.open_seconds, now.timestamp(), side="left"))
        started = int(np.searchsorted(first, opened, side="left"))
        first, last = first[:started], np.minimum(last[:started], opened - 1)
    stamps = schedule.day_seconds[last]
    low = int(np.searchsorted(stamps, start.timestamp(), side="left"))
    high = int(np.searchsorted(stamps, end.timestamp(), side="left"))
    return stamps[low:high], first[low:high], last[low:high]


def periods_between(
    market: Market | str,
    bar_size: BarSize,
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
) -> list[Period]:
    """The weeks (1w) or months (1mo) whose bar is dated in [start, end), each with its first
    and last session; with `now`, the period in progress ends at the last session opened."""
    if bar_size not in PERIOD_SIZES:
        raise ValueError(f"periods are weekly or monthly bars, not {bar_size.value}")
    layout = _layout(_as_market(market))
    sessions = _schedule(layout).sessions
    _, firsts, lasts = _period_bars(layout, bar_size, start, end, now)
    return [
        Period(sessions[first], sessions[last], last - first + 1)
        for first, last in zip(firsts.tolist(), lasts.tolist(), strict=True)
    ]


def expected_bar_timestamps(
    market: Market | str,
    bar_size: BarSize,
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
) -> list[datetime]:
    """Start times (dates, for daily and longer bars) of every bar in [start, end), aligned like
    IBKR aligns them.

    Intraday bars start at the session open and step by the bar length; the last bar of a short
    session may be shorter (IBKR's hourly bars on a 13:00 early close end with a half-hour bar).
    A daily bar is expected when its date is in the range and its session's hours overlap it.
    `now` matters for weekly and monthly bars only: the one in progress is dated by the last
    session opened before now (without it, every period is taken as complete).
    """
    seconds = _expected_epoch_seconds(_as_market(market), bar_size, start, end, now)
    return [datetime.fromtimestamp(second, UTC) for second in seconds.tolist()]


def expected_bar_count(
    market: Market | str,
    bar_size: BarSize,
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
) -> int:
    """len(expected_bar_timestamps(...)), counted per session without listing the bars: the
    check every warm read makes."""
    market = _as_market(market)
    if not bar_size.is_intraday:
        return len(_expected_epoch_seconds(market, bar_size, start, end, now))
    schedule = _schedule(_layout(market))
    start_s, end_s = start.timestamp(), end.timestamp()
    first, last = _overlapping(schedule, start_s, end_s)
    opens = schedule.open_seconds[first:last]
    closes = schedule.close_seconds[first:last]
    step = int(BAR_LENGTH[bar_size].total_seconds())
    # Bars start at open + k * step, below the close; those starting in [start, end) count.
    below_close = -(-(closes - opens) // step)
    before_start = np.clip(np.ceil((start_s - opens) / step), 0, None)
    before_end = np.clip(np.ceil((end_s - opens) / step), 0, None)
    counts = np.minimum(below_close, before_end) - np.minimum(below_close, before_start)
    return int(np.clip(counts, 0, None).sum())


def _expected_epoch_seconds(
    market: Market, bar_size: BarSize, start: datetime, end: datetime, now: datetime | None
) -> np.ndarray:
    layout = _layout(market)
    if bar_size in PERIOD_SIZES:
        return _period_bars(layout, bar_size, start, end, now)[0]
    schedule = _schedule(layout)
    start_s, end_s = start.timestamp(), end.timestamp()
    first, last = _overlapping(schedule, start_s, end_s)
    if bar_size is BarSize.D1:
        seconds = schedule.day_seconds[first:last]
    else:
        step = int(BAR_LENGTH[bar_size].total_seconds())
        parts = [
            np.arange(open_s, close_s, step, dtype=np.int64)
            for open_s, close_s in zip(
                schedule.open_seconds[first:last].tolist(),
                schedule.close_seconds[first:last].tolist(),
                strict=True,
            )
        ]
        seconds = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return seconds[(seconds >= start_s) & (seconds < end_s)]


def _session_index_of_day(schedule: _Schedule, stamp: datetime) -> int | None:
    day_s = daily_bar_timestamp(stamp.astimezone(UTC).date()).timestamp()
    index = int(np.searchsorted(schedule.day_seconds, day_s, side="left"))
    if index < len(schedule.sessions) and schedule.day_seconds[index] == day_s:
        return index
    return None


def session_close_for_bar(
    market: Market | str, bar_size: BarSize, bar_start: datetime
) -> datetime | None:
    """When the bar can no longer change: the close of its session, or for a weekly or monthly
    bar the close of its period's last session. None if the calendar has no such session."""
    layout = _layout(_as_market(market))
    schedule = _schedule(layout)
    if bar_size.is_intraday:
        second = bar_start.timestamp()
        index = int(np.searchsorted(schedule.close_seconds, second, side="right"))
        if index >= len(schedule.sessions) or schedule.open_seconds[index] > second:
            return None
        return schedule.sessions[index].close_at
    index = _session_index_of_day(schedule, bar_start)
    if index is None:
        return None
    if bar_size in PERIOD_SIZES:
        periods = _periods(layout, bar_size)
        period = int(np.searchsorted(periods.first, index, side="right")) - 1
        index = int(periods.last[period])
    return schedule.sessions[index].close_at


def group_into_ranges(
    market: Market | str,
    bar_size: BarSize,
    selected: list[datetime],
    expected: list[datetime],
) -> list[tuple[datetime, datetime]]:
    """Collapse `selected` (a subset of the calendar's `expected` bars) into [start, end) ranges.

    Two selected bars are consecutive when no expected bar lies between them, so a range can span
    an overnight or weekend gap; callers split ranges further into request-sized chunks.
    """
    if isinstance(market, list):
        # Transition: the old argument order (selected, expected, bar_size, exchange).
        market, bar_size, selected, expected = expected, selected, market, bar_size
    market = _as_market(market)
    chosen = set(selected)
    ranges: list[tuple[datetime, datetime]] = []
    range_start: datetime | None = None
    previous: datetime | None = None
    for stamp in expected:
        if stamp in chosen:
            if range_start is None:
                range_start = stamp
            previous = stamp
        elif range_start is not None and previous is not None:
            ranges.append((range_start, bar_end(market, bar_size, previous)))
            range_start = None
    if range_start is not None and previous is not None:
        ranges.append((range_start, bar_end(market, bar_size, previous)))
    return ranges


def bar_end(market: Market | str, bar_size: BarSize, bar_start: datetime) -> datetime:
    """End of the bar: the next bar boundary, or the session close for a shortened last bar.
    Daily and longer bars are dates, and end with their date."""
    if not bar_size.is_intraday:
        return bar_start + timedelta(days=1)
    end = bar_start + BAR_LENGTH[bar_size]
    close = session_close_for_bar(market, bar_size, bar_start)
    return min(end, close) if close else end


def segment_span(bar_size: BarSize) -> timedelta:
    """The longest time between the first and the last bar of one segment (see segment_runs),
    so a range read can bound its index scan from below."""
    if bar_size in PERIOD_SIZES:
        return timedelta(days=367)
    if bar_size is BarSize.D1:
        return timedelta(days=32)
    # A session is at most a day long, but may start the evening before its date.
    return timedelta(days=2)


def segment_runs(
    market: Market | str, bar_size: BarSize, starts_ns: np.ndarray
) -> list[tuple[date, int, int]]:
    """Split bars in time order into segments: (segment date, first index, index past the last).

    A segment is an intraday bar's trading session (dated like the session), a daily bar's
    calendar month (dated by its first day), or a weekly or monthly bar's calendar year (dated
    January 1). `starts_ns` are bar starts in nanoseconds since the epoch, UTC, ascending, as
    BarColumns hold them. An intraday bar outside every session (which IBKR does not send)
    gets a segment of its UTC day.
    """
    if len(starts_ns) == 0:
        return []
    seconds = starts_ns // 1_000_000_000
    utc_days = seconds.astype("datetime64[s]").astype("datetime64[D]")
    if not bar_size.is_intraday:
        unit = "datetime64[M]" if bar_size is BarSize.D1 else "datetime64[Y]"
        periods = utc_days.astype(unit)
        keys = periods.astype(np.int64)
    else:
        schedule = _schedule(_layout(_as_market(market)))
        position = np.searchsorted(schedule.close_seconds, seconds, side="right")
        in_range = position < len(schedule.sessions)
        opens = schedule.open_seconds[np.minimum(position, len(schedule.sessions) - 1)]
        inside = in_range & (opens <= seconds)
        # Sessions by index; anything outside them by its UTC day, kept apart by the sign.
        keys = np.where(inside, position, -1 - utc_days.astype(np.int64))
    change = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    bounds = [0, *change.tolist(), len(keys)]
    runs = []
    for first, stop in zip(bounds, bounds[1:], strict=False):
        if not bar_size.is_intraday:
            segment_date = periods[first].astype("datetime64[D]").astype(date)
        elif keys[first] >= 0:
            segment_date = schedule.sessions[int(keys[first])].day
        else:
            segment_date = utc_days[first].astype(date)
        runs.append((segment_date, first, stop))
    return runs
