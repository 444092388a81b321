"""Sessions and expected bars for every asset class, against exchange_calendars and against the
sessions the simulated gateway serves."""

import datetime as dt
import random
from datetime import UTC, date, datetime, timedelta

import exchange_calendars as xcals
import numpy as np
import pytest

from backend.ibkr_simulator import sessions as simulator_sessions
from backend.market_data import calendar as market_calendar
from backend.market_data.calendar import UnsupportedExchange
from backend.market_data.domain import BarSize, Market, SecType

STOCK = Market(SecType.STK, "NASDAQ", True)
STOCK_ALL_HOURS = Market(SecType.STK, "ARCA", False)
SPX = Market(SecType.IND, "CBOE", True, "SPX")
VIX = Market(SecType.IND, "CBOE", True, "VIX")
ES = Market(SecType.FUT, "CME", True)
ES_ALL_HOURS = Market(SecType.FUT, "GLOBEX", False)
ES_CONTINUOUS = Market(SecType.CONTFUT, "CME", False)
FX = Market(SecType.CASH, "IDEALPRO", True)
CRYPTO = Market(SecType.CRYPTO, "PAXOS", True)
MARKETS = [STOCK, STOCK_ALL_HOURS, SPX, VIX, ES, ES_ALL_HOURS, ES_CONTINUOUS, FX, CRYPTO]

# Each market, the simulator's session rule for it and the hours asked for.
SIMULATED = [
    (STOCK, "XNYS", True),
    (STOCK_ALL_HOURS, "XNYS", False),
    (SPX, "XNYS_INDEX", True),
    (Market(SecType.IND, "CBOE", False, "SPX"), "XNYS_INDEX", False),
    (VIX, "XCBF_INDEX", True),
    (ES, "CME_GLOBEX", True),
    (ES_ALL_HOURS, "CME_GLOBEX", False),
    (FX, "IDEALPRO", True),
    (Market(SecType.CASH, "IDEALPRO", False), "IDEALPRO", False),
    (CRYPTO, "CRYPTO_24_7", True),
]


def at(*fields) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def hours(market: Market, start: datetime, end: datetime) -> list[tuple[date, datetime, datetime]]:
    return [
        (s.day, s.open_at, s.close_at) for s in market_calendar.sessions_between(market, start, end)
    ]


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# -- sessions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("market", "rule", "rth"), SIMULATED, ids=lambda v: str(v))
def test_every_session_equals_the_simulated_gateways(market, rule, rth):
    table = simulator_sessions.session_table(dt.date(2015, 1, 2), rule)
    ours = market_calendar.sessions_between(market, at(2015, 1, 2), at(2027, 6, 1))
    theirs = [
        (day, int(table.day_open(rth)[i]), int(table.day_close(rth)[i]))
        for i, day in enumerate(table.dates)
        if ours[0].day <= day <= ours[-1].day
    ]
    assert len(ours) > 2500
    assert [
        (s.day, int(s.open_at.timestamp()), int(s.close_at.timestamp())) for s in ours
    ] == theirs


@pytest.mark.parametrize(
    ("market", "code"),
    [
        (STOCK, "XNYS"),
        (STOCK_ALL_HOURS, "XNYS"),
        (SPX, "XNYS"),
        (VIX, "XCBF"),
        (ES, "CMES"),
        (ES_ALL_HOURS, "CMES"),
        (FX, "24/5"),
        (CRYPTO, "24/7"),
    ],
)
def test_session_dates_are_the_exchange_calendars_sessions(market, code):
    calendar = xcals.get_calendar(code)
    expected = [ts.date() for ts in calendar.sessions_in_range("2020-01-01", "2025-12-31")]
    days = [s.day for s in market_calendar.sessions_between(market, at(2020, 1, 1), at(2026, 1, 1))]
    # A session overlapping the range's first moment may be dated the day before.
    assert [day for day in days if day >= date(2020, 1, 1)][: len(expected)] == expected
    assert market_calendar.calendar_for(market).name == code


def test_stocks_keep_the_half_day_after_thanksgiving_in_both_hours():
    # 2024-11-28 closed; 2024-11-29 closes at 13:00 New York (18:00 UTC), after-hours to 17:00.
    assert hours(STOCK, at(2024, 11, 28), at(2024, 11, 30)) == [
        (date(2024, 11, 29), at(2024, 11, 29, 14, 30), at(2024, 11, 29, 18)),
    ]
    assert hours(STOCK_ALL_HOURS, at(2024, 11, 28, 2), at(2024, 11, 30)) == [
        (date(2024, 11, 29), at(2024, 11, 29, 9), at(2024, 11, 29, 22)),
    ]
    assert (
        market_calendar.expected_bar_count(
            STOCK_ALL_HOURS, BarSize.M1, at(2024, 11, 29), at(2024, 11, 30)
        )
        == 13 * 60
    )


def test_futures_all_hours_cross_midnight_dated_by_the_closing_day_across_dst():
    # US daylight saving time starts Sunday 2024-03-10: 17:00 CT is 23:00 UTC before, 22:00 after.
    assert hours(ES_ALL_HOURS, at(2024, 3, 8), at(2024, 3, 12)) == [
        (date(2024, 3, 8), at(2024, 3, 7, 23), at(2024, 3, 8, 22)),
        (date(2024, 3, 11), at(2024, 3, 10, 22), at(2024, 3, 11, 21)),
        (date(2024, 3, 12), at(2024, 3, 11, 22), at(2024, 3, 12, 21)),
    ]
    assert hours(ES, at(2024, 3, 8), at(2024, 3, 12)) == [
        (date(2024, 3, 8), at(2024, 3, 8, 14, 30), at(2024, 3, 8, 21)),
        (date(2024, 3, 11), at(2024, 3, 11, 13, 30), at(2024, 3, 11, 20)),
    ]
    # 23 hourly bars from 17:00 CT; the Sunday-evening bars belong to Monday's session.
    monday = market_calendar.expected_bar_timestamps(
        ES_ALL_HOURS, BarSize.H1, at(2024, 3, 10), at(2024, 3, 11, 21)
    )
    assert len(monday) == 23
    assert monday[0] == at(2024, 3, 10, 22)
    assert market_calendar.expected_bar_timestamps(
        ES_ALL_HOURS, BarSize.D1, at(2024, 3, 9), at(2024, 3, 12)
    ) == [at(2024, 3, 11)]


def test_futures_thanksgiving_closes_at_noon_central():
    assert hours(ES_ALL_HOURS, at(2024, 11, 28), at(2024, 11, 28, 12)) == [
        (date(2024, 11, 28), at(2024, 11, 27, 23), at(2024, 11, 28, 18)),
    ]
    assert hours(ES, at(2024, 11, 28), at(2024, 11, 29)) == [
        (date(2024, 11, 28), at(2024, 11, 28, 14, 30), at(2024, 11, 28, 18)),
    ]


def test_fx_runs_24_5_with_the_weekend_gap_across_dst():
    # 17:15 ET the evening before to 17:00 ET; nothing from Friday 17:00 to Sunday 17:15.
    assert hours(FX, at(2024, 3, 8, 12), at(2024, 3, 11, 12)) == [
        (date(2024, 3, 8), at(2024, 3, 7, 22, 15), at(2024, 3, 8, 22)),
        (date(2024, 3, 11), at(2024, 3, 10, 21, 15), at(2024, 3, 11, 21)),
    ]
    assert hours(FX, at(2024, 3, 9), at(2024, 3, 10, 21, 15)) == []
    hourly = market_calendar.expected_bar_timestamps(
        FX, BarSize.H1, at(2024, 3, 10), at(2024, 3, 11, 21)
    )
    # Hour bars start at :15; the last one of the session is 45 minutes long.
    assert hourly[0] == at(2024, 3, 10, 21, 15) and len(hourly) == 24
    assert market_calendar.bar_end(FX, BarSize.H1, hourly[-1]) == at(2024, 3, 11, 21)
    # FX keeps the same hours with useRTH=0.
    all_hours = Market(SecType.CASH, "IDEALPRO", False)
    assert hours(all_hours, at(2024, 3, 1), at(2024, 3, 20)) == hours(
        FX, at(2024, 3, 1), at(2024, 3, 20)
    )


def test_crypto_trades_every_day_around_the_clock():
    sessions = hours(CRYPTO, at(2024, 3, 8), at(2024, 3, 12))
    assert [day for day, _, _ in sessions] == [date(2024, 3, d) for d in range(8, 12)]
    assert all(close - opened == timedelta(days=1) for _, opened, close in sessions)
    assert (
        market_calendar.expected_bar_count(CRYPTO, BarSize.M1, at(2024, 3, 9), at(2024, 3, 11))
        == 2 * 1440
    )


def test_indices_keep_regular_hours_vix_those_of_cfe():
    assert hours(VIX, at(2024, 11, 29), at(2024, 11, 30)) == [
        (date(2024, 11, 29), at(2024, 11, 29, 14, 30), at(2024, 11, 29, 18, 15)),
    ]
    spx_all_hours = Market(SecType.IND, "CBOE", False, "SPX")
    assert hours(spx_all_hours, at(2024, 3, 1), at(2024, 3, 9)) == hours(
        STOCK, at(2024, 3, 1), at(2024, 3, 9)
    )


def test_an_unknown_exchange_names_the_allowed_ones():
    with pytest.raises(UnsupportedExchange, match="'NYSE' has no trading calendar.*CME, GLOBEX"):
        market_calendar.sessions_between(
            Market(SecType.FUT, "NYSE", True), at(2024, 1, 1), at(2024, 2, 1)
        )
    with pytest.raises(UnsupportedExchange, match="use one of IDEALPRO"):
        market_calendar.calendar_for(Market(SecType.CASH, "PAXOS", True))
    with pytest.raises(UnsupportedExchange, match="'LSE' has no trading calendar"):
        market_calendar.expected_bar_count("LSE", BarSize.D1, at(2024, 1, 1), at(2024, 2, 1))


def test_a_plain_exchange_still_means_a_us_stock_in_regular_hours():
    start, end = at(2024, 1, 1), at(2024, 3, 1)
    assert market_calendar.sessions_between("NYSE", start, end) == (
        market_calendar.sessions_between(STOCK, start, end)
    )
    expected = market_calendar.expected_bar_timestamps("NASDAQ", BarSize.M30, start, end)
    assert expected == market_calendar.expected_bar_timestamps(STOCK, BarSize.M30, start, end)
    selected = expected[5:20] + expected[40:41]
    assert market_calendar.group_into_ranges(selected, expected, BarSize.M30, "NASDAQ") == (
        market_calendar.group_into_ranges(STOCK, BarSize.M30, selected, expected)
    )


# -- counting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("market", MARKETS, ids=lambda m: f"{m.sec_type}-{m.symbol}-{m.use_rth}")
def test_the_count_equals_the_listed_bars_in_every_market_and_size(market):
    rng = random.Random(f"{market}")
    for bar_size in BarSize:
        # A day of bars under a minute, 20 days of minute bars, 400 of daily and longer ones.
        days = 1 if bar_size.is_seconds else 20 if bar_size.is_intraday else 400
        longest = days * 86400
        for _ in range(25):
            start = at(2022, 1, 1) + timedelta(seconds=rng.randrange(3 * 365 * 86400))
            if rng.random() < 0.3:
                start = start.replace(minute=rng.choice([0, 15, 30]), second=0)
            end = start + timedelta(seconds=rng.randrange(1, longest))
            now = (
                end - timedelta(seconds=rng.randrange(0, 86400 * 10))
                if rng.random() < 0.5
                else None
            )
            listed = market_calendar.expected_bar_timestamps(market, bar_size, start, end, now=now)
            counted = market_calendar.expected_bar_count(market, bar_size, start, end, now=now)
            assert counted == len(listed), (bar_size, start, end, now)
            assert listed == sorted(set(listed))
            assert all(start <= stamp < end for stamp in listed)


@pytest.mark.parametrize("market", MARKETS, ids=lambda m: f"{m.sec_type}-{m.symbol}-{m.use_rth}")
@pytest.mark.parametrize("bar_size", [b for b in BarSize if b.is_intraday])
def test_intraday_bars_step_from_each_sessions_open_and_stop_before_its_close(market, bar_size):
    step = market_calendar.BAR_LENGTH[bar_size]
    start, end = at(2024, 11, 25), at(2024, 12, 3)
    stamps = market_calendar.expected_bar_timestamps(market, bar_size, start, end)
    expected = []
    for session in market_calendar.sessions_between(market, start, end):
        stamp = session.open_at
        while stamp < session.close_at:
            if start <= stamp < end:
                expected.append(stamp)
            stamp += step
    assert stamps == expected
    # The last bar of each session ends at the close, not past it.
    for session in market_calendar.sessions_between(market, start + timedelta(days=1), end):
        last = max(s for s in stamps if s < session.close_at)
        assert market_calendar.bar_end(market, bar_size, last) == min(last + step, session.close_at)
        assert market_calendar.session_close_for_bar(market, bar_size, last) == session.close_at


# -- weeks and months -------------------------------------------------------------------------


def test_a_week_ending_on_good_friday_is_dated_thursday():
    # Good Friday 2024-03-29: stocks, indices and CME are closed; FX and crypto are not.
    weeks = {
        market: market_calendar.expected_bar_timestamps(
            market, BarSize.W1, at(2024, 3, 18), at(2024, 4, 1)
        )
        for market in (STOCK, SPX, ES_ALL_HOURS, FX, CRYPTO)
    }
    assert weeks[STOCK] == [at(2024, 3, 22), at(2024, 3, 28)]
    assert weeks[SPX] == weeks[ES_ALL_HOURS] == weeks[STOCK]
    assert weeks[FX] == [at(2024, 3, 22), at(2024, 3, 29)]
    assert weeks[CRYPTO] == [at(2024, 3, 24), at(2024, 3, 31)]
    # The month ends on Good Friday too.
    assert market_calendar.expected_bar_timestamps(
        STOCK, BarSize.MO1, at(2024, 1, 1), at(2024, 5, 1)
    ) == [at(2024, 1, 31), at(2024, 2, 29), at(2024, 3, 28), at(2024, 4, 30)]


def test_a_week_in_progress_is_dated_by_its_last_session_so_far():
    # Wednesday 2024-04-03 15:00 UTC: Wednesday's session opened at 13:30.
    now = at(2024, 4, 3, 15)
    weekly = market_calendar.expected_bar_timestamps(
        STOCK, BarSize.W1, at(2024, 3, 25), now, now=now
    )
    assert weekly == [at(2024, 3, 28), at(2024, 4, 3)]
    # Before Wednesday's open, the week so far ends on Tuesday.
    early = at(2024, 4, 3, 12)
    assert market_calendar.expected_bar_timestamps(
        STOCK, BarSize.W1, at(2024, 3, 25), early, now=early
    ) == [at(2024, 3, 28), at(2024, 4, 2)]
    monthly = market_calendar.expected_bar_timestamps(
        STOCK, BarSize.MO1, at(2024, 3, 1), now, now=now
    )
    assert monthly == [at(2024, 3, 28), at(2024, 4, 3)]
    # Without `now` a period is whole: April's bar is dated April 30, outside the range.
    assert market_calendar.expected_bar_timestamps(STOCK, BarSize.MO1, at(2024, 3, 1), now) == [
        at(2024, 3, 28)
    ]
    # Its bar stays open until the week's last session closes.
    assert market_calendar.session_close_for_bar(STOCK, BarSize.W1, at(2024, 4, 3)) == at(
        2024, 4, 5, 20
    )


def test_a_futures_week_holds_the_sunday_evening_session_dated_monday():
    [period] = market_calendar.periods_between(
        ES_ALL_HOURS, BarSize.W1, at(2024, 3, 11), at(2024, 3, 16)
    )
    assert period.first.day == date(2024, 3, 11) and period.first.open_at == at(2024, 3, 10, 22)
    assert period.last.day == date(2024, 3, 15) and period.session_count == 5
    assert period.stamp == at(2024, 3, 15)


def test_weekly_and_monthly_bars_close_with_their_periods_last_session():
    assert market_calendar.session_close_for_bar(STOCK, BarSize.W1, at(2024, 3, 28)) == at(
        2024, 3, 28, 20
    )
    assert market_calendar.session_close_for_bar(STOCK, BarSize.MO1, at(2024, 2, 29)) == at(
        2024, 2, 29, 21
    )
    assert market_calendar.session_close_for_bar(FX, BarSize.W1, at(2024, 3, 29)) == at(
        2024, 3, 29, 21
    )
    # No session on the date: no such bar.
    assert market_calendar.session_close_for_bar(STOCK, BarSize.W1, at(2024, 3, 29)) is None
    assert market_calendar.bar_end(STOCK, BarSize.W1, at(2024, 3, 28)) == at(2024, 3, 29)


# -- segments ---------------------------------------------------------------------------------


def nanoseconds(stamps: list[datetime]) -> np.ndarray:
    return np.array([int(s.timestamp()) * 1_000_000_000 for s in stamps], dtype=np.int64)


def test_weekly_and_monthly_bars_are_kept_in_calendar_year_segments():
    for bar_size in (BarSize.W1, BarSize.MO1):
        stamps = market_calendar.expected_bar_timestamps(
            STOCK, bar_size, at(2022, 6, 1), at(2024, 3, 1)
        )
        runs = market_calendar.segment_runs(STOCK, bar_size, nanoseconds(stamps))
        assert [segment_date for segment_date, _, _ in runs] == [
            date(2022, 1, 1),
            date(2023, 1, 1),
            date(2024, 1, 1),
        ]
        for segment_date, first, stop in runs:
            assert {s.year for s in stamps[first:stop]} == {segment_date.year}
        assert runs[-1][2] == len(stamps)
        assert market_calendar.segment_span(bar_size) >= timedelta(days=366)
    assert market_calendar.segment_span(BarSize.D1) >= timedelta(days=31)


def test_an_overnight_session_is_one_segment_dated_by_its_closing_day():
    stamps = market_calendar.expected_bar_timestamps(
        ES_ALL_HOURS, BarSize.M5, at(2024, 3, 10), at(2024, 3, 13)
    )
    runs = market_calendar.segment_runs(ES_ALL_HOURS, BarSize.M5, nanoseconds(stamps))
    assert [(d, stop - first) for d, first, stop in runs] == [
        (date(2024, 3, 11), 23 * 12),
        (date(2024, 3, 12), 23 * 12),
        # 2024-03-13's session opened at 22:00 UTC on the 12th: its first 2 hours are here.
        (date(2024, 3, 13), 2 * 12),
    ]
    # Every segment's bars fit in segment_span, which range reads rely on.
    for _, first, stop in runs:
        assert stamps[stop - 1] - stamps[first] <= market_calendar.segment_span(BarSize.M5)
    # Stocks' after-hours run past midnight UTC in winter; they stay with their session.
    evening = market_calendar.expected_bar_timestamps(
        STOCK_ALL_HOURS, BarSize.M30, at(2024, 11, 26, 2), at(2024, 11, 27, 2)
    )
    [(segment_date, first, stop)] = market_calendar.segment_runs(
        STOCK_ALL_HOURS, BarSize.M30, nanoseconds(evening)
    )
    assert segment_date == date(2024, 11, 26) and evening[-1] == at(2024, 11, 27, 0, 30)


def test_warm_up_builds_every_markets_schedule():
    market_calendar._schedule.cache_clear()
    market_calendar.warm_up()
    assert market_calendar._schedule.cache_info().currsize == len(market_calendar._CALENDAR_OF)
