"""Chunk plans: within IBKR's duration limits for every bar size and market, covering exactly the
calendar's bars, and answered with exactly those bars by the simulated gateway."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from backend.ibkr import chunking
from backend.ibkr.chunking import (
    DEFAULT_SESSIONS_PER_REQUEST,
    MAX_DURATION_DAYS,
    MAX_MONTHS,
    MAX_SECONDS_PER_REQUEST,
    MAX_WEEKS,
    count_chunks,
    plan_chunks,
)
from backend.ibkr_simulator import historical, load_instruments
from backend.ibkr_simulator.instruments import ContractQuery
from backend.ibkr_simulator.price_model import PriceModel
from backend.market_data import calendar as market_calendar
from backend.market_data.domain import BarSize, Market, SecType, WhatToShow

STOCK = Market(SecType.STK, "NASDAQ", True)
STOCK_ALL_HOURS = Market(SecType.STK, "ARCA", False)
VIX = Market(SecType.IND, "CBOE", True, "VIX")
ES = Market(SecType.FUT, "CME", True)
ES_ALL_HOURS = Market(SecType.FUT, "GLOBEX", False)
ES_CONTINUOUS = Market(SecType.CONTFUT, "CME", False)
FX = Market(SecType.CASH, "IDEALPRO", True)
CRYPTO = Market(SecType.CRYPTO, "PAXOS", True)
MARKETS = [STOCK, STOCK_ALL_HOURS, VIX, ES, ES_ALL_HOURS, FX, CRYPTO]

DURATION = re.compile(r"^(\d+) ([SDWMY])$")
# Wednesday, mid-session for stocks, futures, FX and crypto: a week and a month in progress.
WEDNESDAY = datetime(2025, 11, 26, 18, 7, 3, tzinfo=UTC)
# Monday after the stock close (the simulated gateway's default clock in its own tests).
MONDAY = datetime(2025, 12, 1, 21, 0, tzinfo=UTC)


def market_id(market: Market) -> str:
    hours = "rth" if market.use_rth else "all"
    return f"{market.sec_type}-{market.exchange}-{market.symbol or hours}"


def span_for(bar_size: BarSize) -> timedelta:
    """A range as long as people ask for the size (several requests' worth)."""
    if bar_size.is_seconds:
        return timedelta(days=3)
    if bar_size.is_intraday:
        return timedelta(days=45)
    return timedelta(days=3 * 365)


def plan(market, bar_size, start, end, now, **kwargs):
    return plan_chunks(
        market, bar_size, start, end, DEFAULT_SESSIONS_PER_REQUEST[bar_size], now, **kwargs
    )


def duration_of(text: str) -> tuple[int, str]:
    match = DURATION.match(text)
    assert match, text
    return int(match.group(1)), match.group(2)


def assert_within_limits(market: Market, bar_size: BarSize, chunk, now: datetime) -> None:
    count, unit = duration_of(chunk.duration)
    if bar_size.is_seconds:
        # Inside one session, in seconds, within the step-size table.
        assert unit == "S" and count <= MAX_SECONDS_PER_REQUEST[bar_size]
        [session] = market_calendar.sessions_between(market, chunk.start, chunk.end)
        assert session.open_at <= chunk.start and chunk.end <= session.close_at
        assert chunk.end - chunk.start <= timedelta(seconds=count)
    elif bar_size is BarSize.W1:
        assert unit == "W" and count <= MAX_WEEKS
    elif bar_size is BarSize.MO1:
        assert (unit, count) == ("Y", 1) or (unit == "M" and count < MAX_MONTHS)
    else:
        assert unit == "D" and count <= MAX_DURATION_DAYS
        if bar_size.is_intraday:
            sessions = market_calendar.sessions_between(market, chunk.start, chunk.end)
            assert len(sessions) <= DEFAULT_SESSIONS_PER_REQUEST[bar_size]
    if chunk.end_date_time != "":
        assert chunk.end_date_time < now
    assert all(chunk.start <= stamp < chunk.end for stamp in chunk.expected)


@pytest.mark.parametrize("market", MARKETS, ids=market_id)
@pytest.mark.parametrize("bar_size", list(BarSize))
def test_plans_stay_within_the_limits_and_cover_every_expected_bar_once(market, bar_size):
    for now in (WEDNESDAY, MONDAY - timedelta(days=200)):
        start, end = now - span_for(bar_size), now
        plans = plan(market, bar_size, start, end, now)
        for chunk in plans:
            assert_within_limits(market, bar_size, chunk, now)
        covered = [stamp for chunk in plans for stamp in chunk.expected]
        assert covered == market_calendar.expected_bar_timestamps(
            market, bar_size, start, end, now=now
        )
        assert len(plans) > 1
        counted = count_chunks(
            market, bar_size, [(start, end)], DEFAULT_SESSIONS_PER_REQUEST[bar_size], now=now
        )
        assert counted == len(plans)


def test_second_bars_are_asked_in_pieces_of_at_most_an_hour_or_eight_hours():
    # A 6.5-hour regular session: 7 requests of 5-second bars, one of 30-second bars.
    start, end = datetime(2025, 11, 24, tzinfo=UTC), datetime(2025, 11, 25, tzinfo=UTC)
    five = plan(STOCK, BarSize.S5, start, end, MONDAY)
    assert [chunk.duration for chunk in five] == ["3600 S"] * 6 + ["1800 S"]
    assert sum(len(chunk.expected) for chunk in five) == 6.5 * 720
    thirty = plan(STOCK, BarSize.S30, start, end, MONDAY)
    assert [chunk.duration for chunk in thirty] == ["23400 S"]
    # A 23-hour futures session (Monday's, from 17:00 CT Sunday): 3 requests of 30-second bars.
    session_start = datetime(2025, 11, 23, 23, tzinfo=UTC)
    session_end = datetime(2025, 11, 24, 22, tzinfo=UTC)
    globex = plan(ES_ALL_HOURS, BarSize.S30, session_start, session_end, MONDAY)
    assert [chunk.duration for chunk in globex] == ["28800 S", "28800 S", "25200 S"]


def test_a_piece_reaching_now_is_asked_without_an_end_and_reaches_back_far_enough():
    now = WEDNESDAY
    [last] = plan(STOCK, BarSize.S5, now - timedelta(minutes=10), now, now)
    assert last.end_date_time == ""
    seconds, _ = duration_of(last.duration)
    # The request counts back from when it is sent, a little after now.
    assert now - timedelta(seconds=seconds) < last.start - timedelta(seconds=30)


@pytest.mark.parametrize(
    "bar_size", [BarSize.S5, BarSize.M1, BarSize.H1, BarSize.D1, BarSize.W1, BarSize.MO1]
)
def test_continuous_futures_and_adjusted_last_are_asked_back_from_now_without_an_end(bar_size):
    start, end = WEDNESDAY - span_for(bar_size), WEDNESDAY - timedelta(days=2)
    for market, what in ((ES_CONTINUOUS, WhatToShow.TRADES), (STOCK, WhatToShow.ADJUSTED_LAST)):
        plans = plan(market, bar_size, start, end, WEDNESDAY, what_to_show=what)
        count = count_chunks(
            market,
            bar_size,
            [(start, end)],
            DEFAULT_SESSIONS_PER_REQUEST[bar_size],
            what_to_show=what,
        )
        if bar_size.is_seconds:
            # Bars under a minute reach an hour back from now: nothing of two days ago.
            assert plans == []
            continue
        [chunk] = plans
        assert count == 1
        assert chunk.end_date_time == ""
        assert chunk.expected == market_calendar.expected_bar_timestamps(
            market, bar_size, start, end, now=WEDNESDAY
        )
        amount, unit = duration_of(chunk.duration)
        if unit == "D":
            reach = timedelta(days=amount)
            assert amount <= MAX_DURATION_DAYS
        elif unit == "W":
            reach = timedelta(weeks=amount)
        else:
            reach = timedelta(days=amount * (365 if unit == "Y" else 28))
        assert WEDNESDAY - reach <= chunk.start


def test_continuous_intraday_bars_reach_a_year_back_at_most():
    now = WEDNESDAY
    [chunk] = plan(ES_CONTINUOUS, BarSize.H1, now - timedelta(days=900), now, now)
    assert chunk.duration == f"{MAX_DURATION_DAYS} D"
    assert now - timedelta(days=366) < chunk.start < now - timedelta(days=360)


def test_a_plain_exchange_still_plans_a_us_stock_in_regular_hours():
    start, end = MONDAY - timedelta(days=20), MONDAY
    assert plan("NASDAQ", BarSize.M5, start, end, MONDAY) == plan(
        STOCK, BarSize.M5, start, end, MONDAY
    )
    assert count_chunks("NASDAQ", BarSize.M5, [(start, end)], 5) == count_chunks(
        STOCK, BarSize.M5, [(start, end)], 5
    )


def test_requests_of_whole_weeks_and_months_stay_within_a_year():
    now = MONDAY
    weekly = plan(CRYPTO, BarSize.W1, now - timedelta(days=1000), now, now)
    assert [duration_of(c.duration)[1] for c in weekly] == ["W"] * len(weekly)
    assert max(duration_of(c.duration)[0] for c in weekly) <= MAX_WEEKS
    monthly = plan(STOCK, BarSize.MO1, now - timedelta(days=3650), now, now)
    # Ten years of months in ten requests of a year (the last also holds the month begun).
    assert len(monthly) == 10
    assert {c.duration for c in monthly} == {"1 Y"}
    assert sum(len(c.expected) for c in monthly) == 121
    assert chunking.DEFAULT_SESSIONS_PER_REQUEST.keys() == set(BarSize)


# -- against the simulated gateway ------------------------------------------------------------

# (symbol, secType, expiry, exchange, whatToShow) of a simulated contract in each market.
CONTRACTS = {
    STOCK: ("AAPL", "STK", "", "NASDAQ", "TRADES"),
    STOCK_ALL_HOURS: ("SPY", "STK", "", "ARCA", "TRADES"),
    VIX: ("VIX", "IND", "", "CBOE", "TRADES"),
    ES: ("ES", "FUT", "202512", "CME", "TRADES"),
    ES_ALL_HOURS: ("ES", "FUT", "202512", "GLOBEX", "TRADES"),
    ES_CONTINUOUS: ("ES", "CONTFUT", "", "CME", "TRADES"),
    FX: ("EUR", "CASH", "", "IDEALPRO", "MIDPOINT"),
    CRYPTO: ("BTC", "CRYPTO", "", "PAXOS", "AGGTRADES"),
}
IB_BAR_SIZES = {
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


@pytest.fixture(scope="module")
def simulated():
    registry = load_instruments()
    return registry, PriceModel(7, registry.all_instruments())


def simulated_answer(simulated, market, bar_size, chunk, now) -> list[datetime]:
    """The bar times the simulated gateway answers a chunk's request with (IBKR's own
    validation included: a duration it refuses raises RequestRejected)."""
    registry, model = simulated
    symbol, sec_type, expiry, exchange, what = CONTRACTS[market]
    query = ContractQuery(0, symbol, sec_type, expiry, "", "", "", exchange, "", "USD", "", "")
    [instrument] = registry.matches(query, now, False)
    end = chunk.end_date_time
    request = historical.HistoricalRequest(
        1,
        query,
        "" if end == "" else end.strftime("%Y%m%d-%H:%M:%S"),
        IB_BAR_SIZES[bar_size],
        chunk.duration,
        market.use_rth,
        what,
        2,
        False,
    )
    validated = historical.plan(request, now)
    historical.check_contract(request, validated, instrument)
    answer = historical.answer(request, validated, instrument, model, now)
    if answer.session_dates is not None:
        return [market_calendar.daily_bar_timestamp(day) for day in answer.session_dates]
    return [datetime.fromtimestamp(second, UTC) for second in answer.bars.start.tolist()]


@pytest.mark.parametrize("market", list(CONTRACTS), ids=market_id)
@pytest.mark.parametrize("bar_size", list(BarSize))
def test_the_simulated_gateway_answers_each_chunk_with_exactly_its_expected_bars(
    simulated, market, bar_size
):
    for now in (WEDNESDAY, MONDAY):
        if bar_size.is_seconds:
            span = timedelta(days=1)
        elif bar_size.is_intraday:
            span = timedelta(days=8)
        else:
            span = timedelta(days=200 if bar_size is not BarSize.D1 else 45)
        start, end = now - span, now
        plans = plan(market, bar_size, start, end, now)
        assert plans
        for chunk in plans:
            answered = simulated_answer(simulated, market, bar_size, chunk, now)
            assert [s for s in answered if chunk.start <= s < chunk.end] == chunk.expected, chunk
        if market is not ES_CONTINUOUS or not bar_size.is_seconds:
            covered = [stamp for chunk in plans for stamp in chunk.expected]
            assert covered == market_calendar.expected_bar_timestamps(
                market, bar_size, start, end, now=now
            )
