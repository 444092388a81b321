"""The IBKR client layer: the real ib_insync client against the simulated gateway over loopback."""

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest

from backend.ibkr.client import ChunkPlan, IBKRClient
from backend.ibkr.connection import IBConnection
from backend.ibkr.pacing import PacingLimits, PacingScheduler
from backend.market_data import calendar as market_calendar
from backend.market_data.domain import BarSize, SeriesKey
from backend.market_data.errors import (
    ClientIdInUse,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidHistoricalRequest,
    NoDataReturned,
    PacingViolation,
    UnknownContract,
)
from tests.support.gateway import FIXED_NOW, PACING_SCALE, FakeClock, free_port

# Two full weeks around Thanksgiving 2025 (closed Thu 11-27, early close Fri 11-28 at 13:00 ET).
WEEK_START = datetime(2025, 11, 24, tzinfo=UTC)
WEEK_END = datetime(2025, 12, 2, tzinfo=UTC)
# A regular session is 390 minutes, the early close of 2025-11-28 210; a last bar the close cuts
# short still counts (19.5 bars of 20 minutes are 20 bars).
BARS_PER_FULL_SESSION = {
    BarSize.S5: 4680,
    BarSize.S30: 780,
    BarSize.M1: 390,
    BarSize.M2: 195,
    BarSize.M3: 130,
    BarSize.M5: 78,
    BarSize.M10: 39,
    BarSize.M15: 26,
    BarSize.M20: 20,
    BarSize.M30: 13,
    BarSize.H1: 7,
    BarSize.H2: 4,
    BarSize.H4: 2,
    BarSize.D1: 1,
}
BARS_ON_EARLY_CLOSE = {
    BarSize.S5: 2520,
    BarSize.S30: 420,
    BarSize.M1: 210,
    BarSize.M2: 105,
    BarSize.M3: 70,
    BarSize.M5: 42,
    BarSize.M10: 21,
    BarSize.M15: 14,
    BarSize.M20: 11,
    BarSize.M30: 7,
    BarSize.H1: 4,
    BarSize.H2: 2,
    BarSize.H4: 1,
    BarSize.D1: 1,
}


_client_ids = iter(range(500, 10_000))


def make_client(port: int, clock=None, **options) -> IBKRClient:
    connection = IBConnection("127.0.0.1", port, next(_client_ids), connect_timeout=3)
    pacing = PacingScheduler(PacingLimits().scaled(PACING_SCALE))
    options = {"request_timeout_s": 3.0, "retry_base_s": 0.05, "retry_max_s": 0.2, **options}
    return IBKRClient(connection, pacing, clock=clock or FakeClock(), **options)


@pytest.fixture
async def client(sim):
    ibkr = make_client(sim.port)
    yield ibkr
    await ibkr.connection.close()


async def test_qualify_caches_the_contract(client, sim):
    contract = await client.qualify(SeriesKey("NVDA", "NASDAQ", BarSize.D1))
    assert (
        contract.conId > 0 and contract.primaryExchange == "NASDAQ" and contract.currency == "USD"
    )
    await client.qualify(SeriesKey("NVDA", "NASDAQ", BarSize.D1))
    assert sim.stats()["contract_requests"] == 1


@pytest.mark.parametrize("bar_size", list(BARS_PER_FULL_SESSION))
async def test_every_bar_size_matches_the_trading_calendar(client, bar_size):
    bars = await client.fetch_bars(SeriesKey("AAPL", "NASDAQ", bar_size), WEEK_START, WEEK_END)
    per_day: dict[date, int] = {}
    for bar in bars:
        assert bar.timestamp.tzinfo == UTC
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.volume >= 0
        day = (
            bar.timestamp.date()
            if bar_size is BarSize.D1
            else (bar.timestamp - timedelta(hours=5)).date()
        )
        per_day[day] = per_day.get(day, 0) + 1
    full = BARS_PER_FULL_SESSION[bar_size]
    assert per_day == {
        date(2025, 11, 24): full,
        date(2025, 11, 25): full,
        date(2025, 11, 26): full,
        date(2025, 11, 28): BARS_ON_EARLY_CLOSE[bar_size],
        date(2025, 12, 1): full,
    }
    assert bars == sorted(bars, key=lambda bar: bar.timestamp)
    assert [bar.timestamp for bar in bars] == market_calendar.expected_bar_timestamps(
        "NASDAQ", bar_size, WEEK_START, WEEK_END
    )
    again = await client.fetch_bars(SeriesKey("AAPL", "NASDAQ", bar_size), WEEK_START, WEEK_END)
    assert again == bars


async def test_first_regular_minute_is_the_open_in_utc(client):
    bars = await client.fetch_bars(
        SeriesKey("MSFT", "NASDAQ", BarSize.M1),
        datetime(2025, 7, 1, tzinfo=UTC),
        datetime(2025, 7, 2, tzinfo=UTC),
    )
    # 09:30 New York in summer (EDT, UTC-4) is 13:30 UTC; the last minute starts 19:59 UTC.
    assert bars[0].timestamp == datetime(2025, 7, 1, 13, 30, tzinfo=UTC)
    assert bars[-1].timestamp == datetime(2025, 7, 1, 19, 59, tzinfo=UTC)


async def test_bars_are_final_only_once_their_session_closed(sim):
    # The client's clock stands mid-session on 2025-12-01: that day's bars may still change.
    clock = FakeClock(datetime(2025, 12, 1, 18, 0, tzinfo=UTC))
    ibkr = make_client(sim.port, clock=clock)
    bars = await ibkr.fetch_bars(SeriesKey("TSLA", "NASDAQ", BarSize.D1), WEEK_START, WEEK_END)
    await ibkr.connection.close()
    finality = {bar.timestamp.date(): bar.is_final for bar in bars}
    assert finality[date(2025, 11, 28)] is True
    assert finality[date(2025, 12, 1)] is False


async def test_unknown_symbol_is_a_typed_error(client):
    with pytest.raises(UnknownContract, match="ZZZZ"):
        await client.fetch_bars(SeriesKey("ZZZZ", "NASDAQ", BarSize.D1), WEEK_START, WEEK_END)


async def test_range_before_first_trade_is_confirmed_empty_not_an_error(client):
    # ALAB listed on 2024-03-20; IBKR answers "no data" for anything before its first trade.
    contract = await client.qualify(SeriesKey("ALAB", "NASDAQ", BarSize.D1))
    head = await client.head_timestamp(contract, SeriesKey("ALAB", "NASDAQ", BarSize.D1))
    assert head.date() == date(2024, 3, 20)
    start, end = head - timedelta(days=30), head - timedelta(days=1)
    chunks = [
        chunk
        async for chunk in client.fetch_chunks(SeriesKey("ALAB", "NASDAQ", BarSize.D1), start, end)
    ]
    assert chunks and all(chunk.bars == [] for chunk in chunks)
    assert all("before first trade" in chunk.empty_reason for chunk in chunks)
    assert chunks[0].confirmed_empty == [(chunks[0].plan.start, chunks[0].plan.end)]


async def test_one_no_data_answer_is_asked_again(client, sim):
    """IBKR now and then answers "no data" for a range it serves on the next try."""
    sim.arm_fault("no_data", count=1)
    bars = await client.fetch_bars(SeriesKey("AMD", "NASDAQ", BarSize.D1), WEEK_START, WEEK_END)
    assert len(bars) == 5
    assert sim.stats()["historical_requests"] == 2


async def test_no_data_twice_inside_the_listing_is_an_error_not_an_empty_answer(client, sim):
    sim.arm_fault("no_data", count=2)
    with pytest.raises(NoDataReturned, match="no data"):
        await client.fetch_bars(SeriesKey("AMD", "NASDAQ", BarSize.D1), WEEK_START, WEEK_END)
    assert sim.stats()["historical_requests"] == 2


async def test_invalid_duration_is_a_typed_error(client):
    contract = await client.qualify(SeriesKey("INTC", "NASDAQ", BarSize.D1))
    plan = ChunkPlan(WEEK_START, WEEK_END, "", "3 Q", [WEEK_START])
    with pytest.raises(InvalidHistoricalRequest, match="321"):
        await client.fetch_chunk(contract, SeriesKey("INTC", "NASDAQ", BarSize.D1), plan)


async def test_pacing_violation_is_retried_then_succeeds(client, sim):
    sim.arm_fault("pacing", count=2)
    bars = await client.fetch_bars(SeriesKey("NFLX", "NASDAQ", BarSize.D1), WEEK_START, WEEK_END)
    assert len(bars) == 5
    assert sim.stats()["historical_requests"] == 3


async def test_persistent_pacing_violation_raises_typed_error(client, sim):
    sim.arm_fault("pacing", count=10)
    with pytest.raises(PacingViolation):
        await client.fetch_bars(SeriesKey("NFLX", "NASDAQ", BarSize.D1), WEEK_START, WEEK_END)


async def test_unanswered_request_times_out_with_a_typed_error(sim):
    ibkr = make_client(sim.port, request_timeout_s=0.5, retry_attempts=2)
    sim.arm_fault("timeout", count=5)
    with pytest.raises(GatewayTimeout, match=f"127.0.0.1:{sim.port}"):
        await asyncio.wait_for(
            ibkr.fetch_bars(SeriesKey("META", "NASDAQ", BarSize.D1), WEEK_START, WEEK_END),
            timeout=10,
        )
    await ibkr.connection.close()


async def test_disconnect_mid_request_is_survived_by_the_retry(client, sim):
    await client.qualify(SeriesKey("AMZN", "NASDAQ", BarSize.D1))
    sim.arm_fault("disconnect", count=1)
    bars = await client.fetch_bars(SeriesKey("AMZN", "NASDAQ", BarSize.D1), WEEK_START, WEEK_END)
    assert len(bars) == 5
    assert sim.stats()["connections_total"] == 2


async def test_gateway_down_names_host_port_and_what_to_check():
    port = free_port()
    ibkr = make_client(port)
    with pytest.raises(GatewayUnavailable) as raised:
        await ibkr.fetch_bars(SeriesKey("NVDA", "NASDAQ", BarSize.D1), WEEK_START, WEEK_END)
    message = str(raised.value)
    assert f"127.0.0.1:{port}" in message
    assert "connection refused" in message and "API socket" in message


async def test_client_id_already_in_use(sim):
    first = IBConnection("127.0.0.1", sim.port, 4242, connect_timeout=3)
    second = IBConnection("127.0.0.1", sim.port, 4242, connect_timeout=1)
    await first.ensure_connected()
    with pytest.raises(ClientIdInUse, match="IB_CLIENT_ID"):
        await second.ensure_connected()
    assert first.connected
    await first.close()
    await second.close()


async def test_hundred_requests_within_scaled_pacing_windows_cause_no_violation(sim):
    ibkr = make_client(sim.port)
    days = market_calendar.sessions_between(
        "NASDAQ", datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC)
    )
    symbols = ["NVDA", "TSLA", "AAPL", "MSFT"]
    requests = 0
    for index, session in enumerate(days[:25]):
        for symbol in symbols:
            start = market_calendar.daily_bar_timestamp(session.day)
            await ibkr.fetch_bars(
                SeriesKey(symbol, "NASDAQ", BarSize.H1), start, start + timedelta(days=1)
            )
            requests += 1
        assert index < 25
    await ibkr.connection.close()
    stats = sim.stats()
    assert requests == 100 and stats["historical_requests"] >= 100
    assert stats["pacing_violations"] == 0
    assert ibkr.pacing.stats.waits > 0


def test_fixed_now_is_after_the_close():
    # The client tests above rely on the simulator's clock being after 2025-12-01's close.
    assert datetime(2025, 12, 1, 21, 0, tzinfo=UTC) < FIXED_NOW
