"""Splits and dividends as of the simulator's clock, moved through the control API, seen through
the real ib_insync client."""

from __future__ import annotations

import datetime as dt
import math

import exchange_calendars as xcals
import pytest
from ib_insync import IB, RequestError, Stock

from backend.ibkr_simulator import SimulatedGateway, load_instruments
from backend.ibkr_simulator.corporate_actions import DIVIDENDS, SPLITS

from .conftest import connect, control

UTC = dt.UTC
NVDA = Stock("NVDA", "SMART", "USD")
TSLA = Stock("TSLA", "SMART", "USD")
MSFT = Stock("MSFT", "SMART", "USD")
KO = Stock("KO", "SMART", "USD")
RDDT = Stock("RDDT", "SMART", "USD")

# Evenings after the close (16:00 ET is 20:00 UTC in summer).
BEFORE_NVDA_SPLIT = dt.datetime(2024, 5, 31, 21, tzinfo=UTC)
AFTER_NVDA_SPLIT = dt.datetime(2024, 7, 31, 21, tzinfo=UTC)
MUCH_LATER = dt.datetime(2025, 12, 1, 21, tzinfo=UTC)
# Prices a split adjusted keep four decimals more than the cent tick.
ADJUSTED_DECIMALS = 6
LN_3 = math.log(3)


@pytest.fixture(scope="module")
def gw():
    gateway = SimulatedGateway(seed=7, pacing_scale=0, now=BEFORE_NVDA_SPLIT).start_in_thread()
    yield gateway
    gateway.stop()


@pytest.fixture(autouse=True)
def clock_before_the_nvda_split(gw):
    set_clock(gw, BEFORE_NVDA_SPLIT)


@pytest.fixture
async def ib(gw):
    client = await connect(gw)
    client.RaiseRequestErrors = True
    yield client
    client.disconnect()


def set_clock(gw: SimulatedGateway, now: dt.datetime | str) -> dict:
    text = now if isinstance(now, str) else now.isoformat()
    status, body = control(gw, "POST", "/clock", {"now": text})
    assert status == 200, body
    return body


async def daily(ib: IB, contract, end, duration="1 M", what="TRADES", rth=True):
    return await ib.reqHistoricalDataAsync(
        contract, end, duration, "1 day", what, rth, formatDate=2
    )


def in_range(bars, first: dt.date, last: dt.date):
    return [b for b in bars if first <= b.date <= last]


def log_returns(bars) -> list[float]:
    return [abs(math.log(b.close / a.close)) for a, b in zip(bars, bars[1:], strict=False)]


# ----- the clock


async def test_post_clock_moves_now_and_get_clock_reports_it(gw, ib):
    assert control(gw, "GET", "/clock") == (
        200,
        {"now": BEFORE_NVDA_SPLIT.isoformat(), "fixed": True},
    )
    assert set_clock(gw, "2024-07-31T17:00:00-04:00") == {
        "now": "2024-07-31T21:00:00+00:00",
        "fixed": True,
    }
    assert control(gw, "GET", "/clock")[1]["now"] == "2024-07-31T21:00:00+00:00"
    assert await ib.reqCurrentTimeAsync() == AFTER_NVDA_SPLIT
    # The last bar follows the clock.
    [last] = await ib.reqHistoricalDataAsync(NVDA, "", "1 D", "1 day", "TRADES", True)
    assert last.date == dt.date(2024, 7, 31)
    # null: back to the real time.
    status, body = control(gw, "POST", "/clock", {"now": None})
    assert status == 200 and body["fixed"] is False
    real = dt.datetime.fromisoformat(body["now"])
    assert abs(real - dt.datetime.now(UTC)) < dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"now": "2024-07-31T21:00:00"}, "now", "no time zone"),
        ({"now": "2024-07-31"}, "now", "no time zone"),
        ({"now": "yesterday"}, "now", "ISO-8601"),
        ({"now": 1722459600}, "now", "must be a string"),
        ({"now": "2031-01-01T00:00:00Z"}, "now", "before 2031-01-01"),
        ({}, "now", "required"),
        ({"now": "2024-07-31T21:00:00Z", "speed": 2}, "speed", "unknown field"),
        (["2024-07-31T21:00:00Z"], "body", "JSON object"),
    ],
)
def test_a_bad_clock_is_400_naming_the_field_and_keeps_the_clock(gw, body, field, fragment):
    before = control(gw, "GET", "/clock")
    status, payload = control(gw, "POST", "/clock", body)
    assert (status, payload["field"]) == (400, field)
    assert fragment in payload["error"]
    assert control(gw, "GET", "/clock") == before


def test_reset_keeps_the_clock(gw):
    set_clock(gw, AFTER_NVDA_SPLIT)
    assert control(gw, "POST", "/reset") == (200, {"ok": True})
    assert control(gw, "GET", "/clock")[1]["now"] == AFTER_NVDA_SPLIT.isoformat()


async def test_head_timestamps_and_bars_follow_the_clock(gw, ib):
    set_clock(gw, "2024-03-21T12:00:00Z")  # RDDT lists at 16:00 UTC that day
    with pytest.raises(RequestError) as error:
        await ib.reqHeadTimeStampAsync(RDDT, "TRADES", True, 2)
    assert error.value.code == 162
    set_clock(gw, "2024-03-22T21:00:00Z")
    assert await ib.reqHeadTimeStampAsync(RDDT, "TRADES", True, 2) == dt.datetime(
        2024, 3, 21, 16, tzinfo=UTC
    )
    set_clock(gw, BEFORE_NVDA_SPLIT)
    # A window reaching past now ends with now's session.
    result = await daily(ib, NVDA, AFTER_NVDA_SPLIT, duration="3 M")
    assert result[-1].date == dt.date(2024, 5, 31)


async def test_a_session_cached_as_final_is_cut_again_when_the_clock_moves_back(gw, ib):
    set_clock(gw, AFTER_NVDA_SPLIT)
    [whole_day] = await daily(ib, MSFT, dt.datetime(2024, 6, 11, tzinfo=UTC), duration="1 D")
    set_clock(gw, "2024-06-10T15:00:00Z")  # 11:00 ET
    [morning] = await daily(ib, MSFT, "", duration="1 D")
    minutes = await ib.reqHistoricalDataAsync(MSFT, "", "1 D", "1 min", "TRADES", True)
    assert morning.date == whole_day.date == dt.date(2024, 6, 10)
    assert morning.volume == sum(b.volume for b in minutes) < whole_day.volume
    assert minutes[-1].date == dt.datetime(2024, 6, 10, 14, 59, tzinfo=UTC)


# ----- splits


async def test_nvda_closes_are_a_tenth_once_the_split_has_passed(gw, ib):
    end = dt.datetime(2024, 6, 1, tzinfo=UTC)
    set_clock(gw, BEFORE_NVDA_SPLIT)
    before = await daily(ib, NVDA, end)
    set_clock(gw, AFTER_NVDA_SPLIT)
    after = await daily(ib, NVDA, end)

    may = [dt.date(2024, 5, 1), dt.date(2024, 5, 31)]
    assert [b.date for b in before] == [b.date for b in after]
    assert (before[0].date, before[-1].date) == tuple(may) and len(before) == 22
    for old, new in zip(before, after, strict=True):
        for field in ("open", "high", "low", "close"):
            assert getattr(new, field) == round(getattr(old, field) / 10, ADJUSTED_DECIMALS)
        assert new.average == pytest.approx(old.average / 10, abs=1e-6)
        assert new.volume == 10 * old.volume  # volumes move the other way
        assert new.barCount == old.barCount  # trades are counted as they happened
    # The pre-split scale is ten times the post-split one, whatever the path's level.
    assert sum(b.close for b in before) == pytest.approx(10 * sum(b.close for b in after))


async def test_bars_keep_their_basis_while_no_split_passes_between_two_clocks(gw, ib):
    end = dt.datetime(2024, 8, 1, tzinfo=UTC)
    set_clock(gw, dt.datetime(2024, 6, 10, 21, tzinfo=UTC))  # the split day's evening
    split_day = await daily(ib, NVDA, "", duration="5 D")
    set_clock(gw, AFTER_NVDA_SPLIT)
    july = await daily(ib, NVDA, end, duration="3 M")
    set_clock(gw, MUCH_LATER)  # no NVDA split between 2024-07-31 and 2025-12-01
    later = await daily(ib, NVDA, end, duration="3 M")
    # Both clocks are after the split: every bar is the same, before and after 06-10.
    assert list(later) == list(july)
    # The split day's evening already has the new basis, for the days before it too.
    by_date = {b.date: b for b in july}
    assert [by_date[b.date] for b in split_day] == list(split_day)
    # Before the split took effect its session does not exist yet; the days before it were
    # on the old basis (see test_nvda_closes_are_a_tenth_once_the_split_has_passed).
    set_clock(gw, dt.datetime(2024, 6, 7, 21, tzinfo=UTC))
    assert (await daily(ib, NVDA, end, duration="1 M"))[-1].date == dt.date(2024, 6, 7)


@pytest.mark.parametrize(
    ("symbol", "effective", "ratio"),
    [
        ("NVDA", dt.date(2024, 6, 10), 10),
        ("NVDA", dt.date(2021, 7, 20), 4),
        ("TSLA", dt.date(2022, 8, 25), 3),
        ("TSLA", dt.date(2020, 8, 31), 5),
        ("AAPL", dt.date(2020, 8, 31), 4),
        ("AAPL", dt.date(2014, 6, 9), 7),
        ("AMZN", dt.date(2022, 6, 6), 20),
        ("GOOGL", dt.date(2022, 7, 18), 20),
    ],
)
async def test_as_traded_the_price_drops_by_the_ratio_and_adjusted_it_is_continuous(
    gw, ib, symbol, effective, ratio
):
    contract = Stock(symbol, "SMART", "USD")
    evening = dt.time(23, 0)
    set_clock(gw, dt.datetime.combine(effective - dt.timedelta(days=1), evening, UTC))
    [day_before] = await daily(ib, contract, "", duration="1 D")
    set_clock(gw, dt.datetime.combine(effective, evening, UTC))
    two_days = await daily(ib, contract, "", duration="2 D")
    set_clock(gw, MUCH_LATER)
    adjusted = await daily(ib, contract, dt.datetime.combine(effective, evening, UTC), "3 M")

    previous, split_day = two_days
    assert split_day.date == effective and previous.date == day_before.date
    # As traded (what a cache that never rescales holds): down by the ratio overnight.
    assert abs(math.log(day_before.close / split_day.open / ratio)) < 0.15
    # As of the split day's evening the day before is on the new basis ...
    assert previous.close == round(day_before.close / ratio, ADJUSTED_DECIMALS)
    assert previous.volume == ratio * day_before.volume
    # ... and no day of the adjusted series moves by a factor of three.
    assert max(log_returns(adjusted)) < LN_3
    assert abs(math.log(split_day.open / previous.close)) < 0.15
    # Volume: as traded it jumps by the ratio (more, cheaper shares), adjusted it does not.
    assert abs(math.log(split_day.volume / day_before.volume / ratio)) < 0.7
    assert abs(math.log(split_day.volume / previous.volume)) < 0.7


async def test_tsla_three_for_one_and_both_splits_together(gw, ib):
    end = dt.datetime(2022, 8, 25, tzinfo=UTC)
    set_clock(gw, "2022-08-24T21:00:00Z")
    before = await daily(ib, TSLA, end)
    set_clock(gw, "2022-08-31T21:00:00Z")
    after = await daily(ib, TSLA, end)
    assert [b.date for b in before] == [b.date for b in after] and len(before) >= 20
    for old, new in zip(before, after, strict=True):
        assert new.close == round(old.close / 3, ADJUSTED_DECIMALS)
        assert new.volume == 3 * old.volume
    # August 2020, before the 5:1: fifteen times its price as of now.
    august_2020 = dt.datetime(2020, 8, 29, tzinfo=UTC)
    set_clock(gw, "2020-08-28T21:00:00Z")
    traded = await daily(ib, TSLA, august_2020, duration="2 W")
    set_clock(gw, MUCH_LATER)
    today = await daily(ib, TSLA, august_2020, duration="2 W")
    assert [new.close for new in today] == [
        round(old.close / 15, ADJUSTED_DECIMALS) for old in traded
    ]
    assert [new.volume for new in today] == [15 * old.volume for old in traded]


async def test_a_stock_without_actions_is_the_same_under_both_clocks(gw, ib):
    end = dt.datetime(2024, 6, 1, tzinfo=UTC)
    requests = [("1 M", "1 day", "TRADES"), ("5 D", "1 hour", "TRADES"), ("2 D", "1 hour", "BID")]
    set_clock(gw, BEFORE_NVDA_SPLIT)
    before = [await ib.reqHistoricalDataAsync(MSFT, end, *r, True) for r in requests]
    set_clock(gw, AFTER_NVDA_SPLIT)
    after = [await ib.reqHistoricalDataAsync(MSFT, end, *r, True) for r in requests]
    assert [list(b) for b in before] == [list(a) for a in after]
    assert all(len(b) > 0 for b in before)


async def test_quotes_are_split_adjusted_like_the_trades(gw, ib):
    end = dt.datetime(2024, 6, 1, tzinfo=UTC)
    series = {}
    for clock in (BEFORE_NVDA_SPLIT, AFTER_NVDA_SPLIT):
        set_clock(gw, clock)
        for what in ("MIDPOINT", "BID", "ASK", "BID_ASK"):
            series[clock, what] = await ib.reqHistoricalDataAsync(
                NVDA, end, "2 D", "1 hour", what, True
            )
    for what in ("MIDPOINT", "BID", "ASK"):
        old, new = series[BEFORE_NVDA_SPLIT, what], series[AFTER_NVDA_SPLIT, what]
        assert len(old) == len(new) == 14
        for a, b in zip(old, new, strict=True):
            assert (b.open, b.high, b.low, b.close) == tuple(
                round(p / 10, ADJUSTED_DECIMALS) for p in (a.open, a.high, a.low, a.close)
            )
            assert b.volume == a.volume == -1
    # The spread was a cent then: a tenth of a cent on today's basis.
    bid, ask = series[AFTER_NVDA_SPLIT, "BID"], series[AFTER_NVDA_SPLIT, "ASK"]
    assert all(a.close - b.close == pytest.approx(0.002) for a, b in zip(ask, bid, strict=True))
    # BID_ASK's average bid and ask round to the cent of their day at half-cents either way.
    old, new = series[BEFORE_NVDA_SPLIT, "BID_ASK"], series[AFTER_NVDA_SPLIT, "BID_ASK"]
    for a, b in zip(old, new, strict=True):
        for p, q in zip(
            (a.open, a.high, a.low, a.close), (b.open, b.high, b.low, b.close), strict=True
        ):
            assert q == pytest.approx(p / 10, abs=0.0011)


async def test_minute_bars_over_the_nvda_split(gw, ib):
    friday_close = dt.datetime(2024, 6, 7, 20, tzinfo=UTC)
    set_clock(gw, dt.datetime(2024, 6, 7, 21, tzinfo=UTC))
    traded = await ib.reqHistoricalDataAsync(NVDA, friday_close, "1 D", "1 min", "TRADES", True)
    set_clock(gw, AFTER_NVDA_SPLIT)
    adjusted = await ib.reqHistoricalDataAsync(NVDA, friday_close, "1 D", "1 min", "TRADES", True)
    over = await ib.reqHistoricalDataAsync(
        NVDA, dt.datetime(2024, 6, 10, 20, tzinfo=UTC), "2 D", "1 min", "TRADES", True
    )
    hours = await ib.reqHistoricalDataAsync(
        NVDA, dt.datetime(2024, 6, 10, 20, tzinfo=UTC), "2 D", "1 hour", "TRADES", True
    )
    days = await daily(ib, NVDA, dt.datetime(2024, 6, 11, tzinfo=UTC), duration="2 D")

    assert len(traded) == len(adjusted) == 390
    for old, new in zip(traded, adjusted, strict=True):
        assert new.date == old.date
        assert new.close == round(old.close / 10, ADJUSTED_DECIMALS)
        assert new.volume == 10 * old.volume
    # Friday's minutes are the first half of the two days, on the same basis as Monday's.
    assert over[:390] == list(adjusted)
    assert max(log_returns(over)) < 0.05
    # Hours and days still add up from the minutes.
    assert [d.volume for d in days] == [
        sum(b.volume for b in over[:390]),
        sum(b.volume for b in over[390:]),
    ]
    assert [d.close for d in days] == [over[389].close, over[-1].close]
    assert sum(h.volume for h in hours) == sum(b.volume for b in over)
    assert max(h.high for h in hours) == max(b.high for b in over)


async def test_weekly_bars_hold_a_split_week_on_one_basis(gw, ib):
    set_clock(gw, "2022-09-30T21:00:00Z")
    weeks = await ib.reqHistoricalDataAsync(TSLA, "", "3 M", "1 week", "TRADES", True, formatDate=2)
    days = await daily(ib, TSLA, "", duration="3 M")
    # The week of Monday 2022-08-22 holds Monday to Wednesday before the split, Thursday and
    # Friday after it.
    [week] = [w for w in weeks if w.date == dt.date(2022, 8, 26)]
    held = in_range(days, dt.date(2022, 8, 22), dt.date(2022, 8, 26))
    assert (week.open, week.close) == (held[0].open, held[-1].close)
    assert week.high == max(d.high for d in held) and week.low == min(d.low for d in held)
    assert week.volume == sum(d.volume for d in held)
    assert max(log_returns(weeks)) < LN_3


async def test_a_three_for_two_split_can_leave_half_shares(gw, ib):
    # NVDA's 3:2 of 2007-09-11: a day before it, on the basis of a week later.
    set_clock(gw, "2007-09-10T21:00:00Z")
    [traded] = await daily(ib, NVDA, "", duration="1 D")
    set_clock(gw, "2007-09-18T21:00:00Z")
    [adjusted] = await daily(ib, NVDA, dt.datetime(2007, 9, 11, tzinfo=UTC), duration="1 D")
    assert adjusted.date == traded.date == dt.date(2007, 9, 10)
    assert adjusted.volume == traded.volume * 1.5  # decoded from the wire as a float
    assert adjusted.close == round(traded.close / 1.5, ADJUSTED_DECIMALS)


# ----- dividends


async def test_adjusted_last_of_ko_moves_when_an_ex_date_passes(gw, ib):
    # KO goes ex a 0.485 dividend on 2024-06-14, between the two clocks.
    set_clock(gw, BEFORE_NVDA_SPLIT)
    trades_then = await daily(ib, KO, dt.datetime(2024, 6, 1, tzinfo=UTC))
    adjusted_then = await daily(ib, KO, "", what="ADJUSTED_LAST")
    set_clock(gw, AFTER_NVDA_SPLIT)
    trades_now = await daily(ib, KO, "", duration="3 M")
    adjusted_now = await daily(ib, KO, "", duration="3 M", what="ADJUSTED_LAST")
    all_hours = await daily(ib, KO, dt.datetime(2024, 6, 14, tzinfo=UTC), "1 D", rth=False)

    may = (dt.date(2024, 5, 1), dt.date(2024, 5, 31))
    # TRADES does not move with dividends.
    assert in_range(trades_now, *may) == in_range(trades_then, *may)
    # Nothing went ex between May and 2024-05-31: adjusted = traded.
    assert in_range(adjusted_then, *may) == in_range(trades_then, *may)
    # By 2024-07-31 every May bar is scaled by 1 - dividend / the close before the ex-date
    # (the last trade of 2024-06-13, extended hours included).
    [thursday] = all_hours
    assert thursday.date == dt.date(2024, 6, 13)
    factor = 1 - 0.485 / thursday.close
    old, new = in_range(adjusted_then, *may), in_range(adjusted_now, *may)
    assert len(old) == len(new) == 22
    for a, b in zip(old, new, strict=True):
        assert b.close == round(a.close * factor, ADJUSTED_DECIMALS)
        assert b.close < a.close
        assert b.volume == a.volume
    # From the ex-date on nothing has gone ex yet: adjusted = traded.
    summer = (dt.date(2024, 6, 14), dt.date(2024, 7, 31))
    assert in_range(adjusted_now, *summer) == in_range(trades_now, *summer)


async def test_adjusted_last_over_a_split_is_continuous(gw, ib):
    set_clock(gw, "2020-09-30T21:00:00Z")
    adjusted = await daily(ib, Stock("AAPL", "SMART", "USD"), "", "3 M", what="ADJUSTED_LAST")
    trades = await daily(ib, Stock("AAPL", "SMART", "USD"), "", "3 M")
    assert max(log_returns(adjusted)) < LN_3
    ratios = [a.close / t.close for a, t in zip(adjusted, trades, strict=True)]
    assert all(0.99 < r <= 1 for r in ratios)


# ----- the table


def test_every_action_is_dated_on_a_session_of_a_listed_stock():
    registry = load_instruments()
    stocks = {i.symbol: i for i in registry if i.sec_type == "STK"}
    calendar = xcals.get_calendar("XNYS", start="1986-01-01", end="2030-12-31")
    for symbol, splits in SPLITS.items():
        assert symbol in stocks
        for split in splits:
            assert calendar.is_session(split.effective.isoformat()), (symbol, split)
            assert split.effective > stocks[symbol].head_timestamp.date()
    for symbol, dividends in DIVIDENDS.items():
        assert symbol in stocks
        days = [d.ex_date for d in dividends]
        assert days == sorted(days) and all(calendar.is_session(d.isoformat()) for d in days)
        assert all(0 < d.amount < 2 for d in dividends)
    # The real ratios: one NVDA share of 1999 is 480 today, one AAPL of 1980 is 224.
    assert math.prod(s.ratio for s in SPLITS["NVDA"]) == 480
    assert math.prod(s.ratio for s in SPLITS["AAPL"]) == 224
    assert math.prod(s.ratio for s in SPLITS["AMZN"]) == 240
