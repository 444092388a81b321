"""Historical bars through the real client: calendar, alignment, formats, determinism, errors."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pytest
from ib_insync import IB, RequestError, Stock

from backend.ibkr_simulator import SimulatedGateway

from .conftest import FIXED_NOW, connect

UTC = dt.UTC
EASTERN = ZoneInfo("America/New_York")
NVDA = Stock("NVDA", "SMART", "USD")
JPM = Stock("JPM", "SMART", "USD")
RDDT = Stock("RDDT", "SMART", "USD")  # listed 2024-03-21, head timestamp 16:00 UTC

# Wednesday 2025-11-26 is a full session; Thursday is Thanksgiving; Friday closes at 13:00 ET.
FULL_SESSION_CLOSE = dt.datetime(2025, 11, 26, 21, 0, tzinfo=UTC)
EARLY_CLOSE = dt.datetime(2025, 11, 28, 18, 0, tzinfo=UTC)
AFTER_THANKSGIVING_WEEK = dt.datetime(2025, 11, 29, 12, 0, tzinfo=UTC)


async def bars(ib: IB, contract=NVDA, end=FULL_SESSION_CLOSE, duration="1 D", size="1 min",
               rth=True, what="TRADES", format_date=2):
    return await ib.reqHistoricalDataAsync(contract, end, duration, size, what, rth,
                                           formatDate=format_date)


def local(bar) -> dt.datetime:
    return bar.date.astimezone(EASTERN)


@pytest.fixture
def raising(ib):
    ib.RaiseRequestErrors = True
    return ib


@pytest.mark.parametrize(("size", "count", "first", "last"), [
    ("1 min", 390, "09:30", "15:59"),
    ("5 mins", 78, "09:30", "15:55"),
    ("15 mins", 26, "09:30", "15:45"),
    ("30 mins", 13, "09:30", "15:30"),
    # Hour bars align to the 09:30 open like the real gateway; the last one is half an hour.
    ("1 hour", 7, "09:30", "15:30"),
])
async def test_intraday_bar_sizes_over_a_full_session(ib, size, count, first, last):
    result = await bars(ib, size=size)
    assert len(result) == count
    assert f"{local(result[0]):%H:%M}" == first
    assert f"{local(result[-1]):%H:%M}" == last
    assert {local(b).date() for b in result} == {dt.date(2025, 11, 26)}
    assert all(b.date.tzinfo is not None and b.date.utcoffset() == dt.timedelta(0)
               for b in result)


async def test_daily_bars_follow_the_xnys_calendar(ib):
    result = await bars(ib, end=AFTER_THANKSGIVING_WEEK, duration="3 M", size="1 day")
    calendar = xcals.get_calendar("XNYS", start="2025-08-01", end="2025-11-29")
    expected = [s.date() for s in calendar.sessions_in_range("2025-08-29", "2025-11-28")]
    assert [b.date for b in result] == expected
    assert dt.date(2025, 11, 27) not in [b.date for b in result]
    assert all(isinstance(b.date, dt.date) and not isinstance(b.date, dt.datetime)
               for b in result)


async def test_early_close_session_has_210_minutes(ib):
    result = await bars(ib, end=EARLY_CLOSE)
    assert len(result) == 210
    assert f"{local(result[-1]):%H:%M}" == "12:59"
    hours = await bars(ib, end=EARLY_CLOSE, size="1 hour")
    assert [f"{local(b):%H:%M}" for b in hours] == ["09:30", "10:30", "11:30", "12:30"]


async def test_july_3rd_early_close(ib):
    result = await bars(ib, end=dt.datetime(2025, 7, 3, 23, 0, tzinfo=UTC), size="30 mins")
    assert {local(b).date() for b in result} == {dt.date(2025, 7, 3)}
    assert f"{local(result[-1]):%H:%M}" == "12:30"


async def test_week_of_minutes_skips_holiday_and_weekend(ib):
    result = await bars(ib, end=AFTER_THANKSGIVING_WEEK, duration="1 W")
    days = sorted({local(b).date() for b in result})
    assert days == [dt.date(2025, 11, d) for d in (24, 25, 26, 28)]
    assert len(result) == 3 * 390 + 210


async def test_n_days_counts_trading_sessions(ib):
    # Saturday end: "2 D" means the last two sessions, Wednesday and Friday.
    result = await bars(ib, end=AFTER_THANKSGIVING_WEEK, duration="2 D", size="1 hour")
    assert sorted({local(b).date() for b in result}) == [dt.date(2025, 11, 26),
                                                        dt.date(2025, 11, 28)]


async def test_extended_hours_when_use_rth_is_off(ib):
    full = await bars(ib, end=FULL_SESSION_CLOSE + dt.timedelta(hours=4), rth=False)
    assert len(full) == 960  # 04:00-20:00 ET
    assert f"{local(full[0]):%H:%M}" == "04:00" and f"{local(full[-1]):%H:%M}" == "19:59"
    early = await bars(ib, end=dt.datetime(2025, 11, 28, 23, 0, tzinfo=UTC), rth=False)
    assert len(early) == 780  # 04:00-17:00 ET on an early-close day
    regular = await bars(ib)
    by_date = {b.date: b for b in full}
    # Regular-hours minutes are the same bars whichever useRTH asked for them ...
    assert all(by_date[b.date] == b for b in regular)
    # ... and the extended hours trade far less.
    pre_market = [b for b in full if local(b).hour < 9]
    assert sum(b.volume for b in pre_market) < sum(b.volume for b in regular) / 10


async def test_extended_hour_bars_are_on_the_hour(ib):
    result = await bars(ib, end=FULL_SESSION_CLOSE + dt.timedelta(hours=4), rth=False,
                        size="1 hour")
    assert [local(b).hour for b in result] == list(range(4, 20))
    assert all(local(b).minute == 0 for b in result)


async def test_bars_are_consistent(ib):
    for size, rth in (("1 min", False), ("1 hour", True), ("1 day", True)):
        duration = "1 Y" if size == "1 day" else "5 D"
        for b in await bars(ib, end=FIXED_NOW, duration=duration, size=size, rth=rth):
            assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
            assert b.low <= b.average <= b.high
            assert b.volume > 0 and b.barCount > 0
            assert b.low > 0


async def test_format_date_1_gives_the_same_instants_in_eastern_time(ib):
    epoch_bars = await bars(ib, size="5 mins")
    text_bars = await bars(ib, size="5 mins", format_date=1)
    assert [b.date.tzinfo.key for b in text_bars[:1]] == ["US/Eastern"]
    assert [b.date for b in text_bars] == [b.date for b in epoch_bars]
    assert [(b.open, b.close, b.volume) for b in text_bars] == [
        (b.open, b.close, b.volume) for b in epoch_bars]


async def test_refetch_is_identical(ib):
    first = await bars(ib, duration="2 D", size="15 mins")
    second = await bars(ib, duration="2 D", size="15 mins")
    assert list(first) == list(second)
    assert len(first) == 2 * 26


async def test_overlapping_windows_agree(ib):
    one_day = await bars(ib, end=dt.datetime(2025, 11, 25, 21, 0, tzinfo=UTC), duration="1 D")
    five_days = await bars(ib, end=FULL_SESSION_CLOSE, duration="5 D")
    by_date = {b.date: b for b in five_days}
    assert len(one_day) == 390
    assert all(by_date[b.date] == b for b in one_day)
    # A window ending mid-session holds exactly the earlier bars of the same session.
    morning = await bars(ib, end=dt.datetime(2025, 11, 26, 16, 0, tzinfo=UTC), duration="3600 S")
    assert [b.date for b in morning] == [
        dt.datetime(2025, 11, 26, 15, 0, tzinfo=UTC) + dt.timedelta(minutes=m)
        for m in range(60)]
    assert all(by_date[b.date] == b for b in morning)


async def test_coarser_bars_aggregate_the_minutes(ib):
    minutes = await bars(ib)
    fives = await bars(ib, size="5 mins")
    for i, five in enumerate(fives):
        group = minutes[5 * i:5 * i + 5]
        assert five.date == group[0].date
        assert five.open == group[0].open and five.close == group[-1].close
        assert five.high == max(b.high for b in group)
        assert five.low == min(b.low for b in group)
        assert five.volume == sum(b.volume for b in group)
        assert five.barCount == sum(b.barCount for b in group)
    [day] = await bars(ib, size="1 day")
    assert day.date == dt.date(2025, 11, 26)
    assert (day.open, day.close) == (minutes[0].open, minutes[-1].close)
    assert day.high == max(b.high for b in minutes) and day.low == min(b.low for b in minutes)
    assert day.volume == sum(b.volume for b in minutes)
    vwap = sum(b.average * b.volume for b in minutes) / day.volume
    assert day.average == pytest.approx(vwap, abs=1e-3)


async def test_symbols_and_seeds_give_different_paths(ib):
    nvda = await bars(ib, size="1 hour")
    jpm = await bars(ib, contract=JPM, size="1 hour")
    assert [b.close for b in nvda] != [b.close for b in jpm]
    other_seed = SimulatedGateway(seed=8, pacing_scale=0, now=FIXED_NOW,
                                  control_port=None).start_in_thread()
    try:
        client = await connect(other_seed)
        reseeded = await bars(client, size="1 hour")
        client.disconnect()
    finally:
        other_seed.stop()
    assert [b.close for b in reseeded] != [b.close for b in nvda]


@pytest.mark.parametrize("end", [
    "20251126 21:00:00 UTC",
    "20251126-21:00:00",
    "20251126 16:00:00 US/Eastern",
    FULL_SESSION_CLOSE,
])
async def test_end_datetime_spellings(ib, end):
    result = await bars(ib, end=end, size="30 mins")
    assert len(result) == 13
    assert result[-1].date == dt.datetime(2025, 11, 26, 20, 30, tzinfo=UTC)


async def test_empty_end_means_now_and_nothing_starts_after_now(ib):
    result = await bars(ib, end="", size="1 min")
    assert result[-1].date == FIXED_NOW - dt.timedelta(minutes=1)
    later = await bars(ib, end=FIXED_NOW + dt.timedelta(days=3), duration="5 D", rth=False)
    assert max(b.date for b in later) < FIXED_NOW


async def test_clock_in_mid_session_cuts_the_last_bar():
    now = dt.datetime(2025, 12, 1, 15, 7, 30, tzinfo=UTC)  # 10:07:30 ET
    gw = SimulatedGateway(seed=7, pacing_scale=0, now=now, control_port=None).start_in_thread()
    try:
        client = await connect(gw)
        minutes = await bars(client, end="", size="1 min")
        fives = await bars(client, end="", size="5 mins")
        [today] = await bars(client, end="", size="1 day")
        client.disconnect()
    finally:
        gw.stop()
    assert minutes[-1].date == dt.datetime(2025, 12, 1, 15, 7, tzinfo=UTC)
    assert len(minutes) == 38
    assert fives[-1].date == dt.datetime(2025, 12, 1, 15, 5, tzinfo=UTC)
    assert fives[-1].volume == sum(b.volume for b in minutes[-3:])
    assert today.date == dt.date(2025, 12, 1) and today.volume == sum(b.volume for b in minutes)


async def test_quote_series_report_no_volume(ib):
    trades = await bars(ib, size="1 hour")
    mid = await bars(ib, size="1 hour", what="MIDPOINT")
    assert [b.date for b in mid] == [b.date for b in trades]
    assert all(b.volume == -1 and b.barCount == -1 for b in mid)
    assert all(b.low <= b.open <= b.high for b in mid)


async def test_head_timestamp_in_both_formats(ib):
    assert await ib.reqHeadTimeStampAsync(NVDA, "TRADES", True, 2) == dt.datetime(
        1999, 1, 22, 14, 30, tzinfo=UTC)
    # formatDate=1 is `yyyyMMdd-HH:mm:ss` (UTC), which ib_insync parses as a naive datetime.
    assert await ib.reqHeadTimeStampAsync(RDDT, "TRADES", True, 1) == dt.datetime(
        2024, 3, 21, 16, 0)


async def test_window_before_head_timestamp_is_no_data(raising):
    with pytest.raises(RequestError) as error:
        await bars(raising, contract=RDDT, end=dt.datetime(2024, 3, 1, tzinfo=UTC),
                   duration="1 M", size="1 day")
    assert error.value.code == 162
    assert error.value.message == (
        "Historical Market Data Service error message:HMDS query returned no data: "
        "RDDT@SMART Trades")


async def test_window_partly_before_head_returns_only_later_bars(ib):
    minutes = await bars(ib, contract=RDDT, end=dt.datetime(2024, 3, 22, tzinfo=UTC),
                         duration="5 D")
    head = dt.datetime(2024, 3, 21, 16, 0, tzinfo=UTC)
    assert minutes[0].date == head
    assert len(minutes) == 240  # 12:00-16:00 EDT
    hours = await bars(ib, contract=RDDT, end=dt.datetime(2024, 3, 22, tzinfo=UTC),
                       duration="5 D", size="1 hour")
    assert all(b.date >= head for b in hours)
    days = await bars(ib, contract=RDDT, end=dt.datetime(2024, 4, 1, tzinfo=UTC),
                      duration="1 M", size="1 day")
    assert days[0].date == dt.date(2024, 3, 21)


async def test_weekend_only_window_is_no_data(raising):
    with pytest.raises(RequestError) as error:
        await bars(raising, end=dt.datetime(2025, 11, 30, 12, 0, tzinfo=UTC),
                   duration="86400 S", rth=False)
    assert error.value.code == 162
    assert "HMDS query returned no data: NVDA@SMART Trades" in error.value.message


async def test_errors_return_empty_lists_without_raise_request_errors(ib):
    assert list(await bars(ib, size="7 mins")) == []


@pytest.mark.parametrize(("size", "duration", "fragment"), [
    ("7 mins", "1 D", "'bX' : cause - Historical data bar size setting is invalid."),
    ("1 minute", "1 D", "Historical data bar size setting is invalid."),
    ("1 min", "3 X", "duration format is invalid"),
    ("1 min", "0 D", "duration format is invalid"),
    ("1 min", "1D", "duration format is invalid"),
    ("1 min", "2 Y", "Time length exceed max"),
    ("1 day", "400 D", "must be made in years"),
    ("1 day", "90000 S", "must be made in days"),
])
async def test_invalid_requests_get_321(raising, size, duration, fragment):
    with pytest.raises(RequestError) as error:
        await bars(raising, size=size, duration=duration)
    assert error.value.code == 321
    assert error.value.message.startswith("Error validating request.-'b")
    assert fragment in error.value.message


async def test_unknown_contract_in_historical_request_is_200(raising):
    with pytest.raises(RequestError) as error:
        await bars(raising, contract=Stock("NOPE", "SMART", "USD"))
    assert error.value.code == 200


async def test_a_year_of_daily_and_ten_days_of_minutes_are_fast(ib):
    started = dt.datetime.now()
    daily = await bars(ib, contract=Stock("KO", "SMART", "USD"), end=FIXED_NOW,
                       duration="1 Y", size="1 day")
    minutes = await bars(ib, contract=Stock("KO", "SMART", "USD"), end=FIXED_NOW,
                         duration="10 D", rth=False)
    elapsed = dt.datetime.now() - started
    assert 245 <= len(daily) <= 255
    # Eight full extended sessions, the 17:00 early close, and Monday up to 16:00 (now).
    assert len(minutes) == 8 * 960 + 780 + 720
    assert elapsed < dt.timedelta(seconds=1)


async def test_historical_requests_are_counted_by_symbol(ib, gateway):
    before = gateway.get_stats()
    await bars(ib, contract=JPM, size="1 hour")
    await bars(ib, contract=JPM, size="1 day")
    after = gateway.get_stats()
    assert after["historical_requests"] == before["historical_requests"] + 2
    assert after["requests_by_symbol"]["JPM"] == before["requests_by_symbol"].get("JPM", 0) + 2


async def test_bars_do_not_depend_on_what_was_generated_before(ib):
    # A fresh gateway with the same seed, asked for a single day cold, matches the shared
    # gateway's bars from a wider window: prices depend on (seed, symbol, time) only.
    wide = await bars(ib, end=AFTER_THANKSGIVING_WEEK, duration="1 W", rth=False)
    fresh = SimulatedGateway(seed=7, pacing_scale=0, now=FIXED_NOW,
                             control_port=None).start_in_thread()
    try:
        client = await connect(fresh)
        narrow = await bars(client, end=dt.datetime(2025, 11, 26, 12, tzinfo=UTC),
                            duration="7200 S", rth=False)
        client.disconnect()
    finally:
        fresh.stop()
    by_date = {b.date: b for b in wide}
    assert len(narrow) == 120
    assert all(by_date[b.date] == b for b in narrow)
