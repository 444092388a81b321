"""Chunk planning: which historical requests cover a range, in whole sessions within IBKR's limits.

Pure calendar arithmetic: no connection, no clock of its own (the caller says what "now" is).

IBKR's step sizes (historical data limitations) bound each request by its bar size: 3600 S of
5-second bars, 28800 S of 30-second bars, and for minute bars and longer "1 D" of 1-minute bars,
"2 D" of 2-minute, "1 W" of 3- to 20-minute, "1 M" of 30-minute to 4-hour and "1 Y" of daily to
monthly bars. Requests are planned in whole sessions within those (bars under a minute in "N S"
pieces of one session), weekly and monthly bars in whole weeks and months.

CONTFUT and ADJUSTED_LAST requests cannot name an end (IBKR answers 10339 and 321): for them one
request per range reaches back from now, as far as the bar size allows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd

from backend.market_data import calendar as market_calendar
from backend.market_data.domain import BarSize, Market, SecType, WhatToShow

# Sessions per request: the step-size table above, with room for a weekend or a holiday inside a
# request (5 sessions of 5-minute stock bars span 7 calendar days, "1 W"). Bars under a minute
# are further split by MAX_SECONDS_PER_REQUEST; weekly and monthly requests hold whole periods.
DEFAULT_SESSIONS_PER_REQUEST = {
    BarSize.S5: 1,
    BarSize.S30: 1,
    BarSize.M1: 1,
    BarSize.M2: 2,
    BarSize.M3: 5,
    BarSize.M5: 5,
    BarSize.M10: 5,
    BarSize.M15: 5,
    BarSize.M20: 5,
    BarSize.M30: 20,
    BarSize.H1: 20,
    BarSize.H2: 20,
    BarSize.H4: 20,
    BarSize.D1: 250,
    # A year of sessions even for crypto (365 a year); MAX_WEEKS / MAX_MONTHS bind first.
    BarSize.W1: 366,
    BarSize.MO1: 366,
}
# "N D" durations above 365 days are refused by IBKR ("must be made in years").
MAX_DURATION_DAYS = 365
# "N S" durations for bars under a minute, from IBKR's step-size table.
MAX_SECONDS_PER_REQUEST = {BarSize.S5: 3600, BarSize.S30: 28800}
# Weekly and monthly requests stay within a year ("N W" and "N M" count 7 and 30 days).
MAX_WEEKS = 52
MAX_MONTHS = 12
# A request without an end ("now") leaves a moment after it is planned; bars under a minute are
# asked this many seconds further back so the first ones are not missed.
SEND_SLACK_SECONDS = 60


@dataclass(frozen=True)
class ChunkPlan:
    """One historical-data request: the [start, end) it must cover and how IBKR is asked for it."""

    start: datetime
    end: datetime
    end_date_time: datetime | str
    duration: str
    expected: list[datetime] = field(repr=False)


def _as_market(value: Market | str) -> Market:
    # Transition: a plain exchange means a US stock there in regular hours.
    return value if isinstance(value, Market) else Market(SecType.STK, value, True)


def _without_end(market: Market, what_to_show: str) -> bool:
    """IBKR refuses an endDateTime for continuous futures and for ADJUSTED_LAST."""
    return SecType(market.sec_type) is SecType.CONTFUT or what_to_show == WhatToShow.ADJUSTED_LAST


def plan_chunks(
    market: Market | str,
    bar_size: BarSize,
    start: datetime,
    end: datetime,
    sessions_per_request: int,
    now: datetime,
    *,
    what_to_show: str = WhatToShow.TRADES,
) -> list[ChunkPlan]:
    """Split [start, end) into requests of whole sessions within IBKR's duration limits."""
    market = _as_market(market)
    if _without_end(market, what_to_show):
        plan = _plan_from_now(market, bar_size, start, end, now)
        return [plan] if plan else []
    if bar_size.is_seconds:
        return list(_second_pieces(market, bar_size, start, end, now))
    if bar_size in market_calendar.PERIOD_SIZES:
        return [
            _period_plan(market, bar_size, group, start, end, now)
            for group in _period_groups(market, bar_size, start, end, sessions_per_request, now)
        ]
    plans: list[ChunkPlan] = []
    for group in _session_groups(market, start, end, sessions_per_request):
        chunk_start = max(start, _session_floor(group[0], bar_size))
        chunk_end = min(end, _session_ceiling(group[-1], bar_size))
        expected = market_calendar.expected_bar_timestamps(market, bar_size, chunk_start, chunk_end)
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
    market: Market | str,
    bar_size: BarSize,
    ranges: list[tuple[datetime, datetime]],
    sessions_per_request: int,
    *,
    what_to_show: str = WhatToShow.TRADES,
    now: datetime | None = None,
) -> int:
    """How many requests plan_chunks would make for the ranges, at most, without planning them.

    Counts the same session groups, but skips listing every expected bar, so estimating ten
    years of 1-minute bars costs milliseconds instead of seconds.
    """
    market = _as_market(market)
    if _without_end(market, what_to_show):
        return sum(1 for a, b in ranges if market_calendar.sessions_between(market, a, b))
    if bar_size.is_seconds:
        return sum(
            1
            for a, b in ranges
            for session in market_calendar.sessions_between(market, a, b)
            for _ in _piece_bounds(session, bar_size, a, b)
        )
    if bar_size in market_calendar.PERIOD_SIZES:
        return sum(
            1
            for a, b in ranges
            for _ in _period_groups(market, bar_size, a, b, sessions_per_request, now)
        )
    return sum(
        1
        for range_start, range_end in ranges
        for _ in _session_groups(market, range_start, range_end, sessions_per_request)
    )


# -- minute bars and daily bars: groups of whole sessions ----------------------------------------


def _session_groups(
    market: Market, start: datetime, end: datetime, per_request: int
) -> Iterator[list[market_calendar.Session]]:
    """The sessions of [start, end), in groups of one request each."""
    sessions = market_calendar.sessions_between(market, start, end)
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


# -- bars under a minute: "N S" pieces inside one session ---------------------------------------


def _piece_bounds(
    session: market_calendar.Session, bar_size: BarSize, start: datetime, end: datetime
) -> Iterator[tuple[int, int]]:
    """The session's part of [start, end) in pieces of at most MAX_SECONDS_PER_REQUEST (epoch
    seconds), starting on the session's bar grid so each piece holds whole bars, at least one."""
    step = int(market_calendar.BAR_LENGTH[bar_size].total_seconds())
    limit = MAX_SECONDS_PER_REQUEST[bar_size]
    open_s = int(session.open_at.timestamp())
    low = max(start.timestamp(), open_s)
    piece_start = open_s + math.ceil((low - open_s) / step) * step
    stop = min(end, session.close_at).timestamp()
    while piece_start < stop:
        piece_end = min(piece_start + limit, math.ceil(stop))
        yield piece_start, piece_end
        piece_start = piece_end


def _second_pieces(
    market: Market, bar_size: BarSize, start: datetime, end: datetime, now: datetime
) -> Iterator[ChunkPlan]:
    """Requests of bars under a minute: "N S" pieces inside one session each."""
    limit = MAX_SECONDS_PER_REQUEST[bar_size]
    for session in market_calendar.sessions_between(market, start, end):
        for piece_start, piece_end in _piece_bounds(session, bar_size, start, end):
            piece_from = datetime.fromtimestamp(piece_start, UTC)
            piece_to = min(end, datetime.fromtimestamp(piece_end, UTC))
            expected = market_calendar.expected_bar_timestamps(
                market, bar_size, piece_from, piece_to
            )
            seconds = piece_end - piece_start
            end_date_time: datetime | str = piece_to
            if piece_to >= now:
                # Counted back from the moment the request is sent, a little after now.
                end_date_time = ""
                reach = math.ceil(now.timestamp() - piece_start) + SEND_SLACK_SECONDS
                seconds = min(limit, max(seconds, reach))
            yield ChunkPlan(piece_from, piece_to, end_date_time, f"{seconds} S", expected)


# -- weekly and monthly bars: groups of whole periods -------------------------------------------


def _period_groups(
    market: Market,
    bar_size: BarSize,
    start: datetime,
    end: datetime,
    per_request: int,
    now: datetime | None,
) -> Iterator[list[market_calendar.Period]]:
    """The weeks or months dated in [start, end), in groups of one request each: whole periods,
    at most per_request sessions and MAX_WEEKS or MAX_MONTHS long."""
    periods = market_calendar.periods_between(market, bar_size, start, end, now=now)
    index = 0
    while index < len(periods):
        group = [periods[index]]
        sessions = periods[index].session_count
        for period in periods[index + 1 :]:
            sessions += period.session_count
            if sessions > per_request or _period_duration(bar_size, group[0], period) is None:
                break
            group.append(period)
        index += len(group)
        yield group


def _request_end(period: market_calendar.Period) -> datetime:
    # A minute past the last session's close, as for daily bars.
    return period.last.close_at + timedelta(minutes=1)


def _period_duration(
    bar_size: BarSize, first: market_calendar.Period, last: market_calendar.Period
) -> str | None:
    """ "N W" or "N M" reaching from the last period's request end back to the first period's
    first open; None when that is longer than a request may be."""
    back_to = first.first.open_at
    request_end = _request_end(last)
    if bar_size is BarSize.W1:
        weeks = math.ceil((request_end - back_to) / timedelta(weeks=1))
        return f"{weeks} W" if weeks <= MAX_WEEKS else None
    months = _months_back(request_end, back_to)
    if months > MAX_MONTHS:
        return None
    return "1 Y" if months == MAX_MONTHS else f"{months} M"


def _months_back(moment: datetime, back_to: datetime) -> int:
    """The fewest months counted back from `moment` that reach `back_to`."""
    months = 1
    while pd.Timestamp(moment) - pd.DateOffset(months=months) > pd.Timestamp(back_to):
        months += 1
    return months


def _period_plan(
    market: Market,
    bar_size: BarSize,
    group: list[market_calendar.Period],
    start: datetime,
    end: datetime,
    now: datetime,
) -> ChunkPlan:
    request_end = _request_end(group[-1])
    duration = _period_duration(bar_size, group[0], group[-1])
    assert duration is not None  # one period always fits; groups only grow while they fit
    stamps = [period.stamp for period in group]
    return ChunkPlan(
        max(start, stamps[0]),
        min(end, stamps[-1] + timedelta(days=1)),
        "" if request_end >= now else request_end,
        duration,
        stamps,
    )


# -- requests without an end: one per range, reaching back from now -----------------------------


def _plan_from_now(
    market: Market, bar_size: BarSize, start: datetime, end: datetime, now: datetime
) -> ChunkPlan | None:
    """One request counted back from now that covers [start, end), or as much of its recent
    end as IBKR serves in one request of the bar size (older bars cannot be had this way)."""
    if bar_size in market_calendar.PERIOD_SIZES:
        periods = market_calendar.periods_between(market, bar_size, start, end, now=now)
        if not periods:
            return None
        back_to = periods[0].first.open_at
        chunk_start = max(start, periods[0].stamp)
        chunk_end = min(end, periods[-1].stamp + timedelta(days=1))
        if bar_size is BarSize.W1:
            weeks = math.ceil((now - back_to) / timedelta(weeks=1))
            duration = f"{weeks} W" if weeks <= MAX_WEEKS else f"{_years_back(now, back_to)} Y"
        else:
            months = _months_back(now, back_to)
            duration = f"{months} M" if months < MAX_MONTHS else f"{_years_back(now, back_to)} Y"
        expected = [period.stamp for period in periods]
        return ChunkPlan(chunk_start, chunk_end, "", duration, expected)
    sessions = market_calendar.sessions_between(market, start, end)
    if not sessions:
        return None
    chunk_start = max(start, _session_floor(sessions[0], bar_size))
    chunk_end = min(end, _session_ceiling(sessions[-1], bar_size))
    if bar_size.is_seconds:
        limit = MAX_SECONDS_PER_REQUEST[bar_size]
        earliest = now - timedelta(seconds=limit - SEND_SLACK_SECONDS)
        chunk_start = max(chunk_start, earliest)
        seconds = math.ceil((now - chunk_start).total_seconds()) + SEND_SLACK_SECONDS
        duration = f"{min(limit, seconds)} S"
    else:
        latest = market_calendar.sessions_between(market, sessions[-1].open_at, now)
        last_day = latest[-1].day if latest else sessions[-1].day
        days = (last_day - sessions[0].day).days + 1
        if days <= MAX_DURATION_DAYS:
            duration = f"{days} D"
        elif bar_size is BarSize.D1:
            duration = f"{_years_back(now, sessions[0].open_at)} Y"
        else:
            # Intraday bars come at most a year ("365 D") back from now.
            first_day = last_day - timedelta(days=MAX_DURATION_DAYS - 1)
            reachable = [s for s in sessions if s.day >= first_day]
            if not reachable:
                return None
            chunk_start = max(chunk_start, _session_floor(reachable[0], bar_size))
            duration = f"{MAX_DURATION_DAYS} D"
    if chunk_start >= chunk_end:
        return None
    expected = market_calendar.expected_bar_timestamps(market, bar_size, chunk_start, chunk_end)
    if not expected:
        return None
    return ChunkPlan(chunk_start, chunk_end, "", duration, expected)


def _years_back(moment: datetime, back_to: datetime) -> int:
    return math.ceil(_months_back(moment, back_to) / 12)
