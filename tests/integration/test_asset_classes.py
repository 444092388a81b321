"""Every asset class through the real client against the simulator, on both databases: a
populate, a warm read without a gateway request, exact coverage against the class's calendar,
IBKR's refusals as typed errors, and series that differ only in whatToShow or hours kept apart."""

import math
from datetime import UTC, datetime

import pytest

from backend.market_data import calendar as market_calendar
from backend.market_data.domain import InvalidSeries, parse_series
from backend.market_data.errors import BeyondIBKRHistory, UnknownContract
from backend.market_data.service import CacheOutcome, DataSource
from tests.support.bars import stored_bar_count
from tests.support.gateway import FakeClock


def day(year: int, month: int, date: int, hour: int = 0) -> datetime:
    return datetime(year, month, date, hour, tzinfo=UTC)


# (what is asked, range): each crosses what its class's calendar makes hard.
CASES = {
    # Globex sessions from 17:00 CT the evening before, across midnight UTC, with the
    # Thanksgiving early close of 2025-11-28 (dated by the day each session closes).
    "future all hours": (
        parse_series("ES", "1m", sec_type="FUT", expiry="202512", use_rth=False),
        (day(2025, 11, 23), day(2025, 11, 29)),
    ),
    # The week US clocks went back (2025-11-02): the sessions move by an hour in UTC.
    "future DST week": (
        parse_series("NQ", "1h", sec_type="FUT", expiry="202512", use_rth=False),
        (day(2025, 10, 29), day(2025, 11, 6)),
    ),
    "continuous future": (
        parse_series("ES", "1h", sec_type="CONTFUT"),
        (day(2025, 11, 17), day(2025, 11, 29)),
    ),
    "FX DST week": (
        parse_series("EUR.USD", "1h", sec_type="CASH"),
        (day(2025, 10, 29), day(2025, 11, 6)),
    ),
    "FX yen": (
        parse_series("USDJPY", "30m", sec_type="CASH"),
        (day(2025, 11, 20), day(2025, 11, 26)),
    ),
    "crypto every day": (
        parse_series("BTC", "1h", sec_type="CRYPTO"),
        (day(2025, 11, 21), day(2025, 11, 25)),
    ),
    "index": (parse_series("SPX", "1d", sec_type="IND"), (day(2025, 9, 1), day(2025, 12, 1))),
    "volatility index": (
        parse_series("VIX", "15m", sec_type="IND"),
        (day(2025, 11, 24), day(2025, 11, 29)),
    ),
    "ETF": (parse_series("SPY", "1h", exchange="ARCA"), (day(2025, 11, 17), day(2025, 11, 29))),
    # The day after Thanksgiving: regular hours to 13:00 ET, all hours to 17:00 ET.
    "stock all hours, half-day": (
        parse_series("NVDA", "5m", use_rth=False),
        (day(2025, 11, 26), day(2025, 11, 29)),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_each_asset_class_is_cached_exactly_and_read_warm_without_a_request(
    case, migrated_database_url, sim, build_container
):
    series, (start, end) = CASES[case]
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()
    expected = market_calendar.expected_bar_timestamps(series.market, series.bar_size, start, end)
    assert expected, "the case must span some sessions"

    cold = await service.read_series(series, start, end)

    assert cold.bars.timestamps() == expected
    assert cold.missing == []
    assert stored_bar_count(migrated_database_url, series.symbol) == len(expected)
    requests = sim.stats()["historical_requests"]
    warm = await service.read_series(series, start, end)
    assert (warm.source, warm.outcome) == (DataSource.CACHE, CacheOutcome.HIT)
    assert warm.bars == cold.bars
    assert sim.stats()["historical_requests"] == requests


async def test_a_future_session_is_dated_by_the_day_it_closes(
    migrated_database_url, sim, build_container
):
    series = parse_series("ES", "1d", sec_type="FUT", expiry="202512", use_rth=False)
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()

    result = await service.read_series(series, day(2025, 11, 17), day(2025, 11, 22))

    # Sunday evening's session closes on Monday: the first daily bar is Monday's.
    assert [stamp.date().isoformat() for stamp in result.bars.timestamps()] == [
        "2025-11-17",
        "2025-11-18",
        "2025-11-19",
        "2025-11-20",
        "2025-11-21",
    ]


async def test_quote_series_store_no_volume_and_stay_apart_from_trades(
    migrated_database_url, sim, build_container
):
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()
    start, end = day(2025, 11, 24), day(2025, 11, 26)
    shown = {}
    for what in ("TRADES", "BID", "ASK", "MIDPOINT"):
        series = parse_series("NVDA", "15m", what_to_show=what)
        shown[what] = (await service.read_series(series, start, end)).bars

    assert len({tuple(bars.timestamps()) for bars in shown.values()}) == 1
    assert not any(math.isnan(v) for v in shown["TRADES"].volume.tolist())
    # IBKR sends -1 for a quote bar's volume: not a number of shares.
    for what in ("BID", "ASK", "MIDPOINT"):
        assert all(math.isnan(v) for v in shown[what].volume.tolist()), what
    assert (shown["BID"].close < shown["ASK"].close).all()
    # Read again, each is its own series, from the cache.
    requests = sim.stats()["historical_requests"]
    for what, bars in shown.items():
        again = await service.read_series(
            parse_series("NVDA", "15m", what_to_show=what), start, end
        )
        assert again.outcome is CacheOutcome.HIT and again.bars == bars
    assert sim.stats()["historical_requests"] == requests


async def test_regular_and_all_hours_are_two_series(migrated_database_url, sim, build_container):
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()
    # Monday's all-hours session ends at 20:00 New York, 01:00 UTC on Tuesday.
    start, end = day(2025, 11, 24), day(2025, 11, 25, 6)
    regular = await service.read_series(parse_series("AAPL", "1m"), start, end)
    extended = await service.read_series(parse_series("AAPL", "1m", use_rth=False), start, end)

    assert len(regular.bars) == 390
    # 04:00 to 20:00 New York.
    assert len(extended.bars) == 16 * 60
    assert set(regular.bars.timestamps()) < set(extended.bars.timestamps())
    warm = await service.read_series(parse_series("AAPL", "1m"), start, end)
    assert warm.outcome is CacheOutcome.HIT and len(warm.bars) == 390


@pytest.mark.parametrize(
    "asked, field",
    [
        (dict(symbol="EUR.USD", sec_type="CASH", what_to_show="TRADES"), "what_to_show"),
        (dict(symbol="BTC", sec_type="CRYPTO", what_to_show="TRADES"), "what_to_show"),
        (dict(symbol="SPX", sec_type="IND", what_to_show="MIDPOINT"), "what_to_show"),
        (dict(symbol="ES", sec_type="FUT"), "expiry"),
        (dict(symbol="NVDA", expiry="202512"), "expiry"),
        (dict(symbol="NVDA", sec_type="BOND"), "sec_type"),
    ],
)
async def test_series_ibkr_refuses_are_typed_errors_before_any_request(
    asked, field, migrated_database_url, sim, build_container
):
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()
    asked = dict(asked)  # the parameters are shared by both databases' runs
    symbol = asked.pop("symbol")
    with pytest.raises(InvalidSeries) as refused:
        await service.get_or_fetch_market_data(
            symbol, None, "1h", day(2025, 11, 24), day(2025, 11, 25), **asked
        )
    assert refused.value.field == field
    assert sim.stats()["historical_requests"] == 0


async def test_beyond_what_ibkr_serves_is_an_error_not_an_empty_answer(
    migrated_database_url, sim, build_container
):
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()
    # Five-second bars of March: more than six months before 2025-12-01.
    with pytest.raises(BeyondIBKRHistory, match="IBKR serves these bars from 2025-06"):
        await service.read_series(parse_series("NVDA", "5s"), day(2025, 3, 3), day(2025, 3, 4))
    # A future that expired more than two years ago.
    with pytest.raises(BeyondIBKRHistory):
        await service.read_series(
            parse_series("ES", "1d", sec_type="FUT", expiry="202203"),
            day(2022, 1, 3),
            day(2022, 3, 1),
        )
    assert sim.stats()["historical_requests"] == 0


async def test_an_expired_future_within_two_years_is_served(
    migrated_database_url, sim, build_container
):
    series = parse_series("ES", "1d", sec_type="FUT", expiry="202503")
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()

    result = await service.read_series(series, day(2025, 2, 3), day(2025, 3, 1))

    assert len(result.bars) == len(
        market_calendar.expected_bar_timestamps(
            series.market, series.bar_size, day(2025, 2, 3), day(2025, 3, 1)
        )
    )


async def test_an_unlisted_future_is_an_unknown_contract(
    migrated_database_url, sim, build_container
):
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()
    with pytest.raises(UnknownContract):
        await service.read_series(
            parse_series("ES", "1d", sec_type="FUT", expiry="203512"),
            day(2025, 11, 3),
            day(2025, 11, 8),
        )


async def test_head_timestamp_is_asked_once_and_ranges_before_it_are_not_requested(
    migrated_database_url, sim, build_container
):
    # ES 202603 is listed five quarters before its expiry: 2024-12-22 evening.
    series = parse_series("ES", "1d", sec_type="FUT", expiry="202603")
    container = build_container(migrated_database_url, sim.port, FakeClock())
    service = container.market_data_service()

    result = await service.read_series(series, day(2024, 6, 3), day(2025, 1, 31))

    assert result.missing == []
    assert result.bars.timestamps()[0] >= day(2024, 12, 20)
    stats = sim.stats()
    assert stats["head_timestamp_requests"] == 1
    historical = stats["historical_requests"]
    # Asked again in a new process (a new client): the head comes from the cache, and the
    # months before it are confirmed empty.
    again = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()
    warm = await again.read_series(series, day(2024, 6, 3), day(2025, 1, 31))
    assert warm.outcome is CacheOutcome.HIT
    assert sim.stats()["head_timestamp_requests"] == 1
    assert sim.stats()["historical_requests"] == historical


async def test_bid_ask_takes_two_pacing_slots_per_request(
    migrated_database_url, sim, build_container
):
    container = build_container(migrated_database_url, sim.port, FakeClock())
    service = container.market_data_service()
    pacing = container.pacing()
    start, end = day(2025, 11, 24), day(2025, 11, 26)

    before = pacing.stats.requests
    await service.read_series(parse_series("NVDA", "1h", what_to_show="TRADES"), start, end)
    trades_slots = pacing.stats.requests - before
    before = pacing.stats.requests
    await service.read_series(parse_series("NVDA", "1h", what_to_show="BID_ASK"), start, end)
    bid_ask_slots = pacing.stats.requests - before

    # One chunk each, plus one head-timestamp request each.
    assert (trades_slots, bid_ask_slots) == (2, 3)
    assert sim.stats()["pacing_violations"] == 0


async def test_adjusted_last_is_asked_without_an_end_date_and_cut_to_the_range(
    migrated_database_url, sim, build_container
):
    series = parse_series("KO", "1d", exchange="NYSE", what_to_show="ADJUSTED_LAST")
    service = build_container(migrated_database_url, sim.port, FakeClock()).market_data_service()
    start, end = day(2025, 9, 1), day(2025, 10, 1)

    result = await service.read_series(series, start, end)

    assert result.bars.timestamps() == market_calendar.expected_bar_timestamps(
        series.market, series.bar_size, start, end
    )
    trades = await service.read_series(parse_series("KO", "1d", exchange="NYSE"), start, end)
    # Adjusted for the dividends paid since: below the traded prices.
    assert (result.bars.close < trades.bars.close).all()


async def test_the_week_in_progress_is_replaced_by_its_later_bar(
    migrated_database_url, sim, build_container
):
    from tests.support.gateway import start_simulator

    series = parse_series("NVDA", "1w")
    start = day(2025, 11, 3)
    monday_evening = FakeClock()  # 2025-12-01 22:00 UTC: the week holds Monday's session so far
    first = (
        await build_container(migrated_database_url, sim.port, monday_evening)
        .market_data_service()
        .read_series(series, start, monday_evening.now)
    )
    assert first.bars.timestamps()[-1] == day(2025, 12, 1)
    assert not first.bars.is_final[-1] and first.bars.is_final[:-1].all()

    # Two days later (the simulator's clock too), the week's bar is dated Wednesday.
    wednesday_evening = FakeClock(day(2025, 12, 3, 22))
    later = start_simulator(now=wednesday_evening.now)
    try:
        service = build_container(
            migrated_database_url, later.port, wednesday_evening
        ).market_data_service()
        result = await service.read_series(series, start, wednesday_evening.now)
    finally:
        later.gateway.stop()

    weeks = result.bars.timestamps()
    assert weeks[-1] == day(2025, 12, 3)
    assert day(2025, 12, 1) not in weeks
    assert weeks == first.bars.timestamps()[:-1] + [day(2025, 12, 3)]
    assert stored_bar_count(migrated_database_url, "NVDA") == len(weeks)


async def test_a_forced_refresh_keeps_bars_only_the_cache_still_holds(
    migrated_database_url, sim, build_container
):
    series = parse_series("NVDA", "30s")
    start, end = day(2025, 11, 24, 14), day(2025, 11, 24, 16)
    clock = FakeClock()
    service = build_container(migrated_database_url, sim.port, clock).market_data_service()
    cached = await service.read_series(series, start, end)
    assert len(cached.bars) == 180  # the session opens at 14:30 UTC

    # Seven months on, IBKR serves those 30-second bars no more: the cache holds the only copy.
    clock.advance(days=210)
    requests = sim.stats()["historical_requests"]
    forced = await service.read_series(series, start, end, force_refresh=True)

    assert forced.bars == cached.bars
    assert sim.stats()["historical_requests"] == requests
    assert stored_bar_count(migrated_database_url, "NVDA") == 180
