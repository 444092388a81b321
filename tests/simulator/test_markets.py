"""Futures, indices, ETFs, FX and crypto through the real client: contracts, sessions, refusals."""

from __future__ import annotations

import calendar
import datetime as dt
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pytest
from ib_insync import IB, ContFuture, Crypto, Forex, Future, Index, RequestError, Stock

from backend.ibkr_simulator import SimulatedGateway, load_instruments

from .conftest import FIXED_NOW, connect

UTC = dt.UTC
CENTRAL = ZoneInfo("US/Central")
EASTERN = ZoneInfo("US/Eastern")
# The shared gateway's clock is Monday 2025-12-01 21:00 UTC: ESZ5 (expiring Friday 2025-12-19)
# is the front ES contract, ESU5 expired on 2025-09-19, ESU3 more than two years ago.
ES_DEC_25 = Future("ES", "202512", "CME")
SPY = Stock("SPY", "SMART", "USD")
EURUSD = Forex("EURUSD")
USDJPY = Forex("USDJPY")
BTC = Crypto("BTC", "PAXOS", "USD")
SPX = Index("SPX", "CBOE", "USD")
VIX = Index("VIX", "CBOE", "USD")


def third_friday(year: int, month: int) -> dt.date:
    fridays = [
        week[calendar.FRIDAY]
        for week in calendar.monthcalendar(year, month)
        if week[calendar.FRIDAY]
    ]
    return dt.date(year, month, fridays[2])


async def qualified(ib: IB, contract):
    [found] = await ib.qualifyContractsAsync(contract)
    return found


async def bars(ib: IB, contract, end="", duration="1 D", size="1 hour", what="TRADES", rth=False):
    return await ib.reqHistoricalDataAsync(contract, end, duration, size, what, rth, formatDate=2)


@pytest.fixture
def raising(ib):
    ib.RaiseRequestErrors = True
    return ib


async def refusal(ib: IB, contract, **request) -> RequestError:
    with pytest.raises(RequestError) as error:
        await bars(ib, contract, **request)
    return error.value


# ----- the security master


@pytest.mark.parametrize(
    ("contract", "sec_type", "exchange", "currency", "local_symbol"),
    [
        (SPY, "STK", "SMART", "USD", "SPY"),
        (Stock("QQQ", "SMART", "USD"), "STK", "SMART", "USD", "QQQ"),
        (SPX, "IND", "CBOE", "USD", "SPX"),
        (VIX, "IND", "CBOE", "USD", "VIX"),
        (ES_DEC_25, "FUT", "CME", "USD", "ESZ5"),
        (Future("NQ", "202603", "CME"), "FUT", "CME", "USD", "NQH6"),
        (EURUSD, "CASH", "IDEALPRO", "USD", "EUR.USD"),
        (Forex("GBPUSD"), "CASH", "IDEALPRO", "USD", "GBP.USD"),
        (USDJPY, "CASH", "IDEALPRO", "JPY", "USD.JPY"),
        (BTC, "CRYPTO", "PAXOS", "USD", "BTC.USD"),
        (Crypto("ETH", "PAXOS", "USD"), "CRYPTO", "PAXOS", "USD", "ETH.USD"),
    ],
)
async def test_every_market_qualifies(ib, contract, sec_type, exchange, currency, local_symbol):
    found = await qualified(ib, contract)
    assert found.conId > 0
    assert (found.secType, found.exchange, found.currency, found.localSymbol) == (
        sec_type,
        exchange,
        currency,
        local_symbol,
    )
    again = await qualified(ib, type(contract)(**{"conId": found.conId}))
    assert again.localSymbol == local_symbol  # a conId alone finds the same contract


async def test_etfs_are_stocks_on_their_primary_exchange(ib):
    [spy] = await ib.reqContractDetailsAsync(SPY)
    [qqq] = await ib.reqContractDetailsAsync(Stock("QQQ", "SMART", "USD"))
    assert (spy.contract.primaryExchange, spy.stockType) == ("ARCA", "ETF")
    assert (qqq.contract.primaryExchange, qqq.stockType) == ("NASDAQ", "ETF")
    assert await ib.reqContractDetailsAsync(Stock("SPY", "NASDAQ", "USD")) == []


async def test_futures_chain_lists_the_quarterly_contracts_trading_now(ib):
    details = await ib.reqContractDetailsAsync(Future("ES", exchange="CME"))
    expiries = [dt.date.fromisoformat(d.contract.lastTradeDateOrContractMonth) for d in details]
    assert expiries == sorted(expiries)
    assert all(e == third_friday(e.year, e.month) and e.month in (3, 6, 9, 12) for e in expiries)
    assert expiries[0] == third_friday(2025, 12)  # the front: nothing expired is listed
    assert len(expiries) == 5  # five quarters ahead
    assert len({d.contract.conId for d in details}) == len(details)
    # Without a month the root is ambiguous to ib_insync's qualification.
    assert await ib.qualifyContractsAsync(Future("ES", exchange="CME")) == []


async def test_future_contract_details(ib):
    [details] = await ib.reqContractDetailsAsync(ES_DEC_25)
    contract = details.contract
    assert contract.lastTradeDateOrContractMonth == "20251219"
    assert details.lastTradeTime == "08:30:00"  # in the contract's zone, US/Central
    assert details.realExpirationDate == "20251219" and details.contractMonth == "202512"
    assert (contract.multiplier, contract.tradingClass, details.minTick) == ("50", "ES", 0.25)
    assert details.timeZoneId == "US/Central" and details.underSymbol == "ES"
    nq = (await ib.reqContractDetailsAsync(Future("NQ", "202512", "CME")))[0]
    assert (nq.contract.multiplier, nq.contract.tradingClass) == ("20", "NQ")
    assert nq.contract.conId != contract.conId
    # The same month can be named by its date, its local symbol, or through GLOBEX.
    for other in (
        Future("ES", "20251219", "CME"),
        Future(localSymbol="ESZ5", exchange="CME"),
        Future("ES", "202512", "GLOBEX"),
    ):
        assert (await qualified(ib, other)).conId == contract.conId


async def test_futures_hours_are_cme_globex_sessions_dated_by_their_close(ib):
    [details] = await ib.reqContractDetailsAsync(ES_DEC_25)
    trading = details.tradingSessions()
    liquid = details.liquidSessions()
    cmes = xcals.get_calendar("CMES", start="2025-11-20", end="2025-12-31")
    expected_days = [s.date() for s in cmes.sessions_in_range("2025-12-01", "2025-12-07")]
    assert [s.end.date() for s in trading] == expected_days
    monday = trading[0]
    # Opens Sunday evening, stops for the maintenance hour at 16:00 CT.
    assert monday.start == dt.datetime(2025, 11, 30, 17, 0, tzinfo=CENTRAL)
    assert monday.end == dt.datetime(2025, 12, 1, 16, 0, tzinfo=CENTRAL)
    assert all(
        later.start - earlier.end == dt.timedelta(hours=1)
        for earlier, later in zip(trading, trading[1:], strict=False)
        if later.start.weekday() != 6
    )
    assert liquid[0].start == dt.datetime(2025, 12, 1, 8, 30, tzinfo=CENTRAL)
    assert liquid[0].end == dt.datetime(2025, 12, 1, 15, 0, tzinfo=CENTRAL)


async def test_expired_futures_need_include_expired_and_are_kept_two_years(ib):
    assert await ib.reqContractDetailsAsync(Future("ES", "202509", "CME")) == []
    [expired] = await ib.reqContractDetailsAsync(Future("ES", "202509", "CME", includeExpired=True))
    assert expired.contract.lastTradeDateOrContractMonth == "20250919"
    assert (
        await ib.reqContractDetailsAsync(Future("ES", "202309", "CME", includeExpired=True)) == []
    )
    # A contract that is not listed yet is unknown too.
    assert await ib.reqContractDetailsAsync(Future("ES", "202703", "CME")) == []


async def test_continuous_future_is_the_front_contract_under_contfut(ib):
    front = await qualified(ib, ES_DEC_25)
    continuous = await qualified(ib, ContFuture("ES", "CME"))
    assert continuous.secType == "CONTFUT"
    assert continuous.conId == front.conId
    assert continuous.localSymbol == "ESZ5"


async def test_fx_hours_run_from_sunday_evening_to_friday_evening(ib):
    [details] = await ib.reqContractDetailsAsync(EURUSD)
    assert details.timeZoneId == "US/Eastern"
    assert details.minTick == 0.00005
    sessions = details.tradingSessions()
    assert [s.end.weekday() for s in sessions] == [0, 1, 2, 3, 4]  # Mon-Fri, weekend closed
    assert sessions[0].start == dt.datetime(2025, 11, 30, 17, 15, tzinfo=EASTERN)
    assert sessions[-1].end == dt.datetime(2025, 12, 5, 17, 0, tzinfo=EASTERN)
    assert details.liquidHours == details.tradingHours
    assert "20251206:CLOSED" in details.tradingHours


async def test_crypto_trades_every_day_in_fractions_of_a_coin(ib):
    [details] = await ib.reqContractDetailsAsync(BTC)
    assert len(details.tradingSessions()) == 7
    assert float(details.minSize) < 1 and float(details.sizeIncrement) < 1


async def test_index_hours_are_the_exchange_regular_hours(ib):
    [spx] = await ib.reqContractDetailsAsync(SPX)
    [vix] = await ib.reqContractDetailsAsync(VIX)
    assert spx.liquidHours == spx.tradingHours
    assert spx.liquidSessions()[0].start == dt.datetime(2025, 12, 1, 9, 30, tzinfo=EASTERN)
    assert vix.liquidSessions()[0].start == dt.datetime(2025, 12, 1, 8, 30, tzinfo=CENTRAL)
    assert vix.liquidSessions()[0].end == dt.datetime(2025, 12, 1, 15, 15, tzinfo=CENTRAL)


async def test_matching_symbols(ib):
    found = await ib.reqMatchingSymbolsAsync("SP")
    assert {(d.contract.symbol, d.contract.secType) for d in found} == {
        ("SPY", "STK"),
        ("SPX", "IND"),
    }
    [es] = [d for d in await ib.reqMatchingSymbolsAsync("ES") if d.contract.symbol == "ES"]
    assert es.contract.secType == "IND" and es.derivativeSecTypes == ["FUT"]
    [btc] = await ib.reqMatchingSymbolsAsync("bitc")  # by name, any case
    assert (btc.contract.symbol, btc.contract.secType) == ("BTC", "CRYPTO")


def test_conids_are_unique_and_stable():
    first, second = load_instruments(), load_instruments()
    con_ids = [i.con_id for i in first]
    assert len(set(con_ids)) == len(con_ids)
    assert con_ids == [i.con_id for i in second]
    assert {i.sec_type for i in first} == {"STK", "IND", "FUT", "CASH", "CRYPTO"}


# ----- sessions in bars


async def test_futures_all_hours_skip_the_maintenance_hour(ib):
    contract = await qualified(ib, ES_DEC_25)
    hours = await bars(
        ib, contract, end=dt.datetime(2025, 11, 26, 23, 0, tzinfo=UTC), duration="2 D"
    )
    local = [b.date.astimezone(CENTRAL) for b in hours]
    assert local[0] == dt.datetime(2025, 11, 24, 17, 0, tzinfo=CENTRAL)  # Tuesday's session
    assert all(t.hour != 16 for t in local)  # 16:00-17:00 CT is the maintenance break
    assert len(hours) == 2 * 23
    regular = await bars(
        ib,
        contract,
        end=dt.datetime(2025, 11, 26, 23, 0, tzinfo=UTC),
        duration="1 D",
        size="30 mins",
        rth=True,
    )
    assert regular[0].date.astimezone(CENTRAL).time() == dt.time(8, 30)
    assert regular[-1].date.astimezone(CENTRAL).time() == dt.time(14, 30)
    assert len(regular) == 13


async def test_daily_futures_bars_follow_the_cmes_calendar(ib):
    contract = await qualified(ib, ES_DEC_25)
    days = await bars(
        ib, contract, end=dt.datetime(2025, 11, 29, tzinfo=UTC), duration="1 M", size="1 day"
    )
    cmes = xcals.get_calendar("CMES", start="2025-10-01", end="2025-12-31")
    assert [b.date for b in days] == [
        s.date() for s in cmes.sessions_in_range("2025-10-30", "2025-11-28")
    ]
    # Thanksgiving: the session dated Thursday closes early at 12:00 CT.
    thanksgiving = await bars(
        ib, contract, end=dt.datetime(2025, 11, 27, 20, tzinfo=UTC), duration="1 D", size="1 min"
    )
    assert thanksgiving[-1].date.astimezone(CENTRAL) == dt.datetime(
        2025, 11, 27, 11, 59, tzinfo=CENTRAL
    )


async def test_fx_bars_cover_the_week_not_the_weekend(ib):
    pair = await qualified(ib, EURUSD)
    week = await bars(
        ib, pair, end=dt.datetime(2025, 11, 30, 12, tzinfo=UTC), duration="1 W", what="MIDPOINT"
    )
    local = [b.date.astimezone(EASTERN) for b in week]
    assert local[0] == dt.datetime(2025, 11, 23, 17, 15, tzinfo=EASTERN)  # Sunday evening
    assert local[-1] == dt.datetime(2025, 11, 28, 16, 15, tzinfo=EASTERN)  # Friday 17:00 close
    assert not any(t.weekday() == 5 for t in local)  # nothing on Saturday
    days = await bars(
        ib,
        pair,
        end=dt.datetime(2025, 11, 30, 12, tzinfo=UTC),
        duration="1 W",
        size="1 day",
        what="MIDPOINT",
    )
    assert [b.date.weekday() for b in days] == [0, 1, 2, 3, 4]  # Thanksgiving trades


async def test_crypto_trades_on_weekends(ib):
    coin = await qualified(ib, BTC)
    weekend = await bars(
        ib, coin, end=dt.datetime(2025, 11, 30, 0, tzinfo=UTC), duration="86400 S", what="AGGTRADES"
    )
    assert len(weekend) == 24
    assert {b.date.weekday() for b in weekend} == {5}
    assert all(0 < b.volume < 100 and b.volume != int(b.volume) for b in weekend)


async def test_index_bars_are_regular_hours_whatever_use_rth_says(ib):
    index = await qualified(ib, SPX)
    regular = await bars(ib, index, end=FIXED_NOW, size="30 mins", rth=True)
    everything = await bars(ib, index, end=FIXED_NOW, size="30 mins", rth=False)
    assert [b.date for b in everything] == [b.date for b in regular]
    assert len(regular) == 13
    assert all(b.volume == 0 for b in regular)


# ----- prices per class


@pytest.mark.parametrize(
    ("contract", "tick", "low", "high"),
    [
        (ES_DEC_25, 0.25, 3000, 9000),
        (Future("NQ", "202512", "CME"), 0.25, 10000, 40000),
        (EURUSD, 0.00005, 0.8, 1.5),
        (USDJPY, 0.005, 100, 200),
        (BTC, 0.25, 40000, 150000),
        (SPX, 0.01, 3000, 9000),
    ],
)
async def test_prices_sit_on_the_tick_at_plausible_levels(ib, contract, tick, low, high):
    what = {"CASH": "MIDPOINT", "CRYPTO": "AGGTRADES"}.get(contract.secType, "TRADES")
    found = await qualified(ib, contract)
    result = await bars(ib, found, end=FIXED_NOW, duration="5 D", size="5 mins", what=what)
    prices = [p for b in result for p in (b.open, b.high, b.low, b.close)]
    assert all(low < p < high for p in prices)
    assert all(abs(p / tick - round(p / tick)) < 1e-6 for p in prices)
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in result)


async def test_futures_contracts_move_with_their_root(ib):
    december = await qualified(ib, ES_DEC_25)
    march = await qualified(ib, Future("ES", "202603", "CME"))
    near = await bars(ib, december, end=FIXED_NOW, duration="5 D", size="1 day")
    far = await bars(ib, march, end=FIXED_NOW, duration="5 D", size="1 day")
    assert [b.date for b in near] == [b.date for b in far]
    ratios = [f.close / n.close for n, f in zip(near, far, strict=True)]
    # The later contract trades at a small, steady premium (carry over three more months).
    assert all(1 < r < 1.02 for r in ratios)
    assert max(ratios) - min(ratios) < 0.0005


async def test_quote_series_report_minus_one_volume(ib):
    contract = await qualified(ib, ES_DEC_25)
    trades = await bars(ib, contract, end=FIXED_NOW)
    for what in ("MIDPOINT", "BID", "ASK", "BID_ASK"):
        quotes = await bars(ib, contract, end=FIXED_NOW, what=what)
        assert [b.date for b in quotes] == [b.date for b in trades]
        assert all(b.volume == -1 and b.average == -1 and b.barCount == -1 for b in quotes)
        assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in quotes)
    bid = await bars(ib, contract, end=FIXED_NOW, what="BID")
    ask = await bars(ib, contract, end=FIXED_NOW, what="ASK")
    assert all(a.close - b.close == pytest.approx(0.5) for a, b in zip(ask, bid, strict=True))


async def test_same_seed_same_futures_and_fx_bars_in_a_fresh_gateway(ib):
    contract = await qualified(ib, ContFuture("ES", "CME"))
    pair = await qualified(ib, USDJPY)
    shared = (
        await bars(ib, contract, duration="1 M", size="1 day"),
        await bars(ib, pair, end=FIXED_NOW, size="1 min", what="MIDPOINT"),
    )
    fresh = SimulatedGateway(
        seed=7, pacing_scale=0, now=FIXED_NOW, control_port=None
    ).start_in_thread()
    try:
        client = await connect(fresh)
        again = (
            await bars(
                client,
                await qualified(client, ContFuture("ES", "CME")),
                duration="1 M",
                size="1 day",
            ),
            await bars(
                client,
                await qualified(client, USDJPY),
                end=FIXED_NOW,
                size="1 min",
                what="MIDPOINT",
            ),
        )
        client.disconnect()
    finally:
        fresh.stop()
    assert [list(series) for series in again] == [list(series) for series in shared]


# ----- continuous and expired futures


async def test_continuous_future_strings_the_front_contracts_together(ib):
    continuous = await qualified(ib, ContFuture("ES", "CME"))
    year = await bars(ib, continuous, duration="6 M", size="1 day")
    december = await bars(
        ib, await qualified(ib, ES_DEC_25), end=FIXED_NOW, duration="6 M", size="1 day"
    )
    september = Future("ES", "202509", "CME", includeExpired=True)
    september = await qualified(ib, september)
    september.includeExpired = True  # qualifying copies the contract details' default back
    expired = await bars(
        ib, september, end=dt.datetime(2025, 9, 20, tzinfo=UTC), duration="6 M", size="1 day"
    )
    by_date = {b.date: b for b in year}
    # It rolls on expiry day: September's contract from June's expiry to its own.
    june_roll, september_roll = third_friday(2025, 6), third_friday(2025, 9)
    from_december = [b for b in december if b.date >= september_roll]
    from_september = [b for b in expired if june_roll <= b.date < september_roll]
    assert len(from_december) > 50 and len(from_september) > 50
    assert all(by_date[b.date] == b for b in from_december + from_september)
    assert [b.date for b in year if b.date >= june_roll] == [
        b.date for b in from_september + from_december
    ]


async def test_continuous_future_refuses_an_end_date(raising):
    continuous = await qualified(raising, ContFuture("ES", "CME"))
    error = await refusal(raising, continuous, end=dt.datetime(2025, 11, 1, tzinfo=UTC))
    assert (error.code, error.message) == (
        10339,
        "Setting end date/time for continuous future security type is not allowed.",
    )


async def test_expired_future_data_stops_at_its_last_trade(ib):
    september = await qualified(ib, Future("ES", "202509", "CME", includeExpired=True))
    september.includeExpired = True
    minutes = await bars(ib, september, end=dt.datetime(2025, 9, 19, 20, tzinfo=UTC), size="1 min")
    assert minutes[-1].date == dt.datetime(2025, 9, 19, 8, 29, tzinfo=CENTRAL)
    september.includeExpired = False
    ib.RaiseRequestErrors = True
    error = await refusal(ib, september, end=dt.datetime(2025, 9, 19, 20, tzinfo=UTC))
    assert (error.code, error.message) == (
        200,
        "No security definition has been found for the request",
    )


# ----- whatToShow refusals


@pytest.mark.parametrize(("size", "step"), [("1 day", "1d"), ("5 mins", "300"), ("1 hour", "3600")])
async def test_fx_has_no_trades(raising, size, step):
    pair = await qualified(raising, EURUSD)
    error = await refusal(raising, pair, size=size)
    assert (error.code, error.message) == (
        162,
        "Historical Market Data Service error message:No historical market data for "
        f"EUR/CASH@FXSUBPIP Last {step}",
    )


async def test_crypto_trades_must_be_asked_as_aggtrades(raising):
    coin = await qualified(raising, BTC)
    error = await refusal(raising, coin)
    assert (error.code, error.message) == (
        10299,
        "Expected what to show is AGGTRADES, please use that instead of TRADES.",
    )


async def test_indices_have_trades_only(raising):
    index = await qualified(raising, SPX)
    error = await refusal(raising, index, what="MIDPOINT", size="1 day")
    assert (error.code, error.message) == (
        162,
        "Historical Market Data Service error message:No historical market data for "
        "SPX/IND@CBOE MidPoint 1d",
    )


async def test_adjusted_last_is_for_stocks_now_and_daily_bars_at_most(raising):
    error = await refusal(
        raising, SPY, what="ADJUSTED_LAST", size="1 day", end=dt.datetime(2025, 11, 1, tzinfo=UTC)
    )
    assert (error.code, error.message) == (
        321,
        "Error validating request.-'bM' : cause - End date not supported with adjusted last",
    )
    error = await refusal(raising, SPY, what="ADJUSTED_LAST", size="1 week", duration="1 Y")
    assert (error.code, error.message) == (
        321,
        "Error validating request.-'bM' : cause - Multi day bar size not supported with "
        "adjusted last",
    )
    error = await refusal(raising, await qualified(raising, ES_DEC_25), what="ADJUSTED_LAST")
    assert error.code == 162 and "No historical market data for ES/FUT@CME" in error.message


async def test_adjusted_last_scales_older_bars_down_by_the_dividends(ib):
    trades = await bars(ib, SPY, duration="1 Y", size="1 day", rth=True)
    adjusted = await bars(ib, SPY, duration="1 Y", size="1 day", what="ADJUSTED_LAST", rth=True)
    assert [b.date for b in adjusted] == [b.date for b in trades]
    assert [b.volume for b in adjusted] == [b.volume for b in trades]
    factors = [a.close / t.close for a, t in zip(adjusted, trades, strict=True)]
    assert factors[-1] == 1  # nothing paid since the latest bar
    assert factors[0] < 0.995  # four quarterly dividends of a 1.3% yield
    assert factors == sorted(factors, key=lambda f: round(f, 3))  # steps up at each ex-date


# ----- bar sizes


@pytest.mark.parametrize(
    ("size", "count"),
    [
        ("2 mins", 195),
        ("3 mins", 130),
        ("10 mins", 39),
        ("20 mins", 20),
        ("2 hours", 4),
        ("4 hours", 2),
        ("8 hours", 1),
    ],
)
async def test_more_bar_sizes_over_a_full_session(ib, size, count):
    result = await bars(ib, SPY, end=dt.datetime(2025, 11, 26, 21, tzinfo=UTC), size=size, rth=True)
    assert len(result) == count
    assert result[0].date == dt.datetime(2025, 11, 26, 9, 30, tzinfo=EASTERN)


async def test_second_bars_add_up_to_the_minutes(ib):
    end = dt.datetime(2025, 11, 26, 18, 0, tzinfo=UTC)
    minutes = await bars(ib, SPY, end=end, duration="300 S", size="1 min", rth=True)
    fives = await bars(ib, SPY, end=end, duration="300 S", size="5 secs", rth=True)
    thirties = await bars(ib, SPY, end=end, duration="300 S", size="30 secs", rth=True)
    assert (len(minutes), len(fives), len(thirties)) == (5, 60, 10)
    for bigger, smaller, per in ((minutes, thirties, 2), (thirties, fives, 6)):
        for k, bar in enumerate(bigger):
            group = smaller[per * k : per * (k + 1)]
            assert bar.date == group[0].date
            assert (bar.open, bar.close) == (group[0].open, group[-1].close)
            assert bar.high == max(b.high for b in group)
            assert bar.low == min(b.low for b in group)
            assert bar.volume == sum(b.volume for b in group)
            assert bar.barCount == sum(b.barCount for b in group)


async def test_second_bars_are_kept_for_six_months(raising):
    error = await refusal(
        raising,
        SPY,
        end=dt.datetime(2025, 5, 1, 18, tzinfo=UTC),
        duration="60 S",
        size="5 secs",
        rth=True,
    )
    assert error.code == 162
    assert "HMDS query returned no data: SPY@SMART Trades" in error.message
    recent = await bars(
        raising,
        SPY,
        end=dt.datetime(2025, 7, 1, 18, tzinfo=UTC),
        duration="60 S",
        size="5 secs",
        rth=True,
    )
    assert len(recent) == 12


async def test_weekly_bars_hold_the_week_and_carry_its_last_session(ib):
    weeks = await bars(
        ib, SPY, end=dt.datetime(2025, 5, 1, tzinfo=UTC), duration="3 M", size="1 week", rth=True
    )
    days = await bars(
        ib, SPY, end=dt.datetime(2025, 5, 1, tzinfo=UTC), duration="4 M", size="1 day", rth=True
    )
    xnys = xcals.get_calendar("XNYS", start="2024-12-01", end="2025-05-31")
    # The window starts on Saturday 1 February: the first week is the next one.
    sessions = [s.date() for s in xnys.sessions_in_range("2025-02-03", "2025-04-30")]
    last_of_week = {}
    for day in sessions:
        last_of_week[day.isocalendar()[:2]] = day
    assert [b.date for b in weeks] == list(last_of_week.values())
    assert dt.date(2025, 4, 17) in [b.date for b in weeks]  # Good Friday week ends Thursday
    for week in weeks:
        monday = week.date - dt.timedelta(days=week.date.weekday())
        group = [d for d in days if monday <= d.date <= week.date]
        assert (week.open, week.close) == (group[0].open, group[-1].close)
        assert week.high == max(d.high for d in group) and week.low == min(d.low for d in group)
        assert week.volume == sum(d.volume for d in group)


async def test_monthly_bars_carry_the_last_session_of_the_month(ib):
    months = await bars(
        ib, SPY, end=dt.datetime(2025, 7, 1, tzinfo=UTC), duration="1 Y", size="1 month", rth=True
    )
    xnys = xcals.get_calendar("XNYS", start="2024-06-01", end="2025-07-31")
    last_of_month = {}
    for session in xnys.sessions_in_range("2024-07-01", "2025-06-30"):
        last_of_month[(session.year, session.month)] = session.date()
    assert [b.date for b in months] == list(last_of_month.values())
    june = await bars(
        ib, SPY, end=dt.datetime(2025, 7, 1, tzinfo=UTC), duration="1 M", size="1 day", rth=True
    )
    assert months[-1].volume == sum(d.volume for d in june if d.date.month == 6)


# ----- head timestamps


async def test_head_timestamps_per_market(ib):
    december = await qualified(ib, ES_DEC_25)
    # A contract lists five quarters ahead: the Sunday after September 2024's expiry.
    assert await ib.reqHeadTimeStampAsync(december, "TRADES", False, 2) == dt.datetime(
        2024, 9, 22, 17, 0, tzinfo=CENTRAL
    )
    assert await ib.reqHeadTimeStampAsync(december, "TRADES", True, 2) == dt.datetime(
        2024, 9, 23, 8, 30, tzinfo=CENTRAL
    )
    btc = await ib.reqHeadTimeStampAsync(await qualified(ib, BTC), "AGGTRADES", True, 2)
    assert btc.year == 2021
    spy = await ib.reqHeadTimeStampAsync(SPY, "TRADES", True, 2)
    assert spy == dt.datetime(1993, 1, 29, 9, 30, tzinfo=EASTERN)


async def test_no_bars_before_the_head_timestamp(ib):
    december = await qualified(ib, ES_DEC_25)
    head = await ib.reqHeadTimeStampAsync(december, "TRADES", False, 2)
    around = await bars(ib, december, end=head + dt.timedelta(days=3), duration="1 W", size="1 day")
    assert around and around[0].date == (head + dt.timedelta(days=1)).date()
    ib.RaiseRequestErrors = True
    error = await refusal(ib, december, end=head, duration="1 M", size="1 day")
    assert error.code == 162 and "HMDS query returned no data: ESZ5@CME Trades" in error.message


async def test_head_timestamp_refuses_what_the_market_does_not_have(ib):
    errors = []
    ib.errorEvent += lambda req_id, code, text, contract: errors.append(code)
    assert await ib.reqHeadTimeStampAsync(await qualified(ib, EURUSD), "TRADES", True, 2) == []
    assert await ib.reqHeadTimeStampAsync(await qualified(ib, BTC), "TRADES", True, 2) == []
    assert errors == [162, 10299]
