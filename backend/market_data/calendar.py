"""Which bars an exchange's real trading calendar expects, and when each bar's session closes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from backend.market_data.domain import BarSize

BAR_LENGTH = {
    BarSize.M1: timedelta(minutes=1),
    BarSize.M5: timedelta(minutes=5),
    BarSize.M15: timedelta(minutes=15),
    BarSize.M30: timedelta(minutes=30),
    BarSize.H1: timedelta(hours=1),
    BarSize.D1: timedelta(days=1),
}

# IBKR's primary exchanges mapped to exchange_calendars codes. NASDAQ and NYSE share sessions.
EXCHANGE_CALENDARS = {
    "NASDAQ": "XNAS",
    "ISLAND": "XNAS",
    "NYSE": "XNYS",
    "ARCA": "XNYS",
    "AMEX": "XNYS",
    "BATS": "XNYS",
    "SMART": "XNYS",
}


class UnsupportedExchange(ValueError):
    pass


@dataclass(frozen=True)
class Session:
    day: date
    open_at: datetime
    close_at: datetime


@lru_cache(maxsize=8)
def _calendar(code: str) -> xcals.ExchangeCalendar:
    return xcals.get_calendar(code)


def calendar_for(exchange: str) -> xcals.ExchangeCalendar:
    code = EXCHANGE_CALENDARS.get(exchange.upper())
    if code is None:
        known = ", ".join(sorted(EXCHANGE_CALENDARS))
        raise UnsupportedExchange(
            f"exchange {exchange!r} has no trading calendar; use one of {known}"
        )
    return _calendar(code)


@dataclass(frozen=True)
class _Schedule:
    """A calendar's sessions as plain Python values, built once: pandas lookups per call cost
    milliseconds, which many concurrent coverage checks cannot afford."""

    sessions: list[Session]
    close_seconds: np.ndarray  # each session's close, epoch seconds, ascending
    open_seconds: np.ndarray


@lru_cache(maxsize=8)
def _schedule(code: str) -> _Schedule:
    calendar = _calendar(code)
    schedule = calendar.schedule
    sessions = [
        Session(label.date(), open_at.to_pydatetime(), close_at.to_pydatetime())
        for label, open_at, close_at in zip(
            schedule.index, schedule["open"], schedule["close"], strict=True
        )
    ]
    return _Schedule(
        sessions,
        np.array([int(s.close_at.timestamp()) for s in sessions], dtype=np.int64),
        np.array([int(s.open_at.timestamp()) for s in sessions], dtype=np.int64),
    )


def warm_up() -> None:
    """Build every calendar now: the first use of one takes a few hundred milliseconds of CPU,
    which must not land on the event loop inside somebody's request."""
    for code in set(EXCHANGE_CALENDARS.values()):
        _schedule(code)


def sessions_between(exchange: str, start: datetime, end: datetime) -> list[Session]:
    """Sessions whose regular hours overlap [start, end)."""
    calendar_for(exchange)  # raises UnsupportedExchange
    schedule = _schedule(EXCHANGE_CALENDARS[exchange.upper()])
    # Overlap means close > start and open < end; both columns ascend.
    first = int(np.searchsorted(schedule.close_seconds, start.timestamp(), side="right"))
    last = int(np.searchsorted(schedule.open_seconds, end.timestamp(), side="left"))
    return schedule.sessions[first:last]


def daily_bar_timestamp(day: date) -> datetime:
    """Daily bars are dates; they are stored at midnight UTC of the session date."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def expected_bar_timestamps(
    exchange: str, bar_size: BarSize, start: datetime, end: datetime
) -> list[datetime]:
    """Start times of every regular-hours bar in [start, end), aligned like IBKR aligns them.

    Intraday bars start at the session open and step by the bar length; the last bar of a short
    session may be shorter (IBKR's hourly bars on a 13:00 early close end with a half-hour bar).
    """
    return [
        datetime.fromtimestamp(int(second), UTC)
        for second in _expected_epoch_seconds(exchange, bar_size, start, end)
    ]


def expected_bar_count(exchange: str, bar_size: BarSize, start: datetime, end: datetime) -> int:
    """len(expected_bar_timestamps(...)), counted per session without listing the bars: the
    check every warm read makes."""
    if bar_size is BarSize.D1:
        return len(_expected_epoch_seconds(exchange, bar_size, start, end))
    calendar_for(exchange)  # raises UnsupportedExchange
    schedule = _schedule(EXCHANGE_CALENDARS[exchange.upper()])
    start_s, end_s = start.timestamp(), end.timestamp()
    first = int(np.searchsorted(schedule.close_seconds, start_s, side="right"))
    last = int(np.searchsorted(schedule.open_seconds, end_s, side="left"))
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
    exchange: str, bar_size: BarSize, start: datetime, end: datetime
) -> np.ndarray:
    sessions = sessions_between(exchange, start, end)
    if bar_size is BarSize.D1:
        seconds = np.array(
            [int(daily_bar_timestamp(session.day).timestamp()) for session in sessions],
            dtype=np.int64,
        )
    else:
        step = int(BAR_LENGTH[bar_size].total_seconds())
        parts = [
            np.arange(int(s.open_at.timestamp()), int(s.close_at.timestamp()), step, dtype=np.int64)
            for s in sessions
        ]
        seconds = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    start_s, end_s = start.timestamp(), end.timestamp()
    return seconds[(seconds >= start_s) & (seconds < end_s)]


def session_close_for_bar(exchange: str, bar_size: BarSize, bar_start: datetime) -> datetime | None:
    """When the session holding this bar closes; None if the calendar has no such session."""
    calendar = calendar_for(exchange)
    if bar_size is BarSize.D1:
        label = pd.Timestamp(bar_start.date())
        if not calendar.is_session(label):
            return None
        return calendar.session_close(label).to_pydatetime()
    minute = pd.Timestamp(bar_start).tz_convert(UTC).floor("min")
    if not calendar.is_trading_minute(minute):
        return None
    return calendar.session_close(calendar.minute_to_session(minute)).to_pydatetime()


def group_into_ranges(
    selected: list[datetime], expected: list[datetime], bar_size: BarSize, exchange: str
) -> list[tuple[datetime, datetime]]:
    """Collapse `selected` (a subset of the calendar's `expected` bars) into [start, end) ranges.

    Two selected bars are consecutive when no expected bar lies between them, so a range can span
    an overnight or weekend gap; callers split ranges further into request-sized chunks.
    """
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
            ranges.append((range_start, bar_end(exchange, bar_size, previous)))
            range_start = None
    if range_start is not None and previous is not None:
        ranges.append((range_start, bar_end(exchange, bar_size, previous)))
    return ranges


def bar_end(exchange: str, bar_size: BarSize, bar_start: datetime) -> datetime:
    """End of the bar: the next bar boundary, or the session close for a shortened last bar."""
    if bar_size is BarSize.D1:
        return bar_start + timedelta(days=1)
    end = bar_start + BAR_LENGTH[bar_size]
    close = session_close_for_bar(exchange, bar_size, bar_start)
    return min(end, close) if close else end


def segment_runs(
    exchange: str, bar_size: BarSize, starts_ns: np.ndarray
) -> list[tuple[date, int, int]]:
    """Split bars in time order into segments: (segment date, first index, index past the last).

    A segment is an intraday bar's trading session (dated like the session) or a daily bar's
    calendar month (dated by its first day). `starts_ns` are bar starts in nanoseconds since the
    epoch, UTC, ascending, as BarColumns hold them. An intraday bar outside every session (which
    IBKR does not send for regular hours) gets a segment of its UTC day.
    """
    if len(starts_ns) == 0:
        return []
    seconds = starts_ns // 1_000_000_000
    utc_days = seconds.astype("datetime64[s]").astype("datetime64[D]")
    if bar_size is BarSize.D1:
        months = utc_days.astype("datetime64[M]")
        keys = months.astype(np.int64)
    else:
        calendar_for(exchange)  # raises UnsupportedExchange
        schedule = _schedule(EXCHANGE_CALENDARS[exchange.upper()])
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
        if bar_size is BarSize.D1:
            segment_date = months[first].astype("datetime64[D]").astype(date)
        elif keys[first] >= 0:
            segment_date = schedule.sessions[int(keys[first])].day
        else:
            segment_date = utc_days[first].astype(date)
        runs.append((segment_date, first, stop))
    return runs
