"""Chunk planning: which historical requests cover a range, in whole sessions within IBKR's limits.

Pure calendar arithmetic: no connection, no clock of its own (the caller says what "now" is).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from backend.market_data import calendar as market_calendar
from backend.market_data.domain import BarSize

# Sessions per request. IBKR's guideline steps (1 D for 1-min bars, 1 W for 3-min to 30-min, 1 M for
# 30-min to hourly, 1 Y for daily) keep requests small enough not to time out (ib_insync#268).
DEFAULT_SESSIONS_PER_REQUEST = {
    BarSize.M1: 1,
    BarSize.M5: 5,
    BarSize.M15: 5,
    BarSize.M30: 20,
    BarSize.H1: 20,
    BarSize.D1: 250,
}
# "N D" durations above 365 days are refused by IBKR.
MAX_DURATION_DAYS = 365


@dataclass(frozen=True)
class ChunkPlan:
    """One historical-data request: the [start, end) it must cover and how IBKR is asked for it."""

    start: datetime
    end: datetime
    end_date_time: datetime | str
    duration: str
    expected: list[datetime] = field(repr=False)


def plan_chunks(
    exchange: str,
    bar_size: BarSize,
    start: datetime,
    end: datetime,
    sessions_per_request: int,
    now: datetime,
) -> list[ChunkPlan]:
    """Split [start, end) into requests of whole sessions within IBKR's duration limits."""
    plans: list[ChunkPlan] = []
    for group in _session_groups(exchange, start, end, sessions_per_request):
        chunk_start = max(start, _session_floor(group[0], bar_size))
        chunk_end = min(end, _session_ceiling(group[-1], bar_size))
        expected = market_calendar.expected_bar_timestamps(
            exchange, bar_size, chunk_start, chunk_end
        )
        if not expected:
            continue
        # Asking up to the session close (a minute past it for daily bars) covers the last bar
        # whether the gateway counts "N D" in sessions or in calendar days.
        request_end = group[-1].close_at + (
            timedelta(minutes=1) if bar_size is BarSize.D1 else timedelta(0)
        )
        end_date_time: datetime | str = "" if request_end >= now else request_end
        duration_days = (group[-1].day - group[0].day).days + 1
        plans.append(
            ChunkPlan(chunk_start, chunk_end, end_date_time, f"{duration_days} D", expected)
        )
    return plans


def count_chunks(
    exchange: str,
    bar_size: BarSize,
    ranges: list[tuple[datetime, datetime]],
    sessions_per_request: int,
) -> int:
    """How many requests plan_chunks would make for the ranges, at most, without planning them.

    Counts the same session groups, but skips listing every expected bar, so estimating ten
    years of 1-minute bars costs milliseconds instead of seconds.
    """
    return sum(
        1
        for range_start, range_end in ranges
        for _ in _session_groups(exchange, range_start, range_end, sessions_per_request)
    )


def _session_groups(
    exchange: str, start: datetime, end: datetime, per_request: int
) -> Iterator[list[market_calendar.Session]]:
    """The sessions of [start, end), in groups of one request each."""
    sessions = market_calendar.sessions_between(exchange, start, end)
    index = 0
    while index < len(sessions):
        group = sessions[index : index + per_request]
        while (group[-1].day - group[0].day).days + 1 > MAX_DURATION_DAYS:
            group = group[:-1]
        index += len(group)
        yield group


def _session_floor(session: market_calendar.Session, bar_size: BarSize) -> datetime:
    if bar_size is BarSize.D1:
        return market_calendar.daily_bar_timestamp(session.day)
    return session.open_at


def _session_ceiling(session: market_calendar.Session, bar_size: BarSize) -> datetime:
    if bar_size is BarSize.D1:
        return market_calendar.daily_bar_timestamp(session.day) + timedelta(days=1)
    return session.close_at
