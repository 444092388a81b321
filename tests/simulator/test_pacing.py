"""IBKR's pacing rules: the guard on a fake clock, then end to end with the real client."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from ib_insync import RequestError, Stock

from backend.ibkr_simulator import SimulatedGateway
from backend.ibkr_simulator.pacing import PacingGuard

from .conftest import FIXED_NOW, PACING_TEXT, connect, control

SCALE = 0.1  # identical 1.5 s, burst 0.2 s, overall 60 s


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_identical_request_within_15_seconds_is_refused():
    clock = FakeClock()
    guard = PacingGuard(clock=clock)
    assert guard.admit("req", "NVDA") is None
    clock.now += 14.9
    assert guard.admit("req", "NVDA") == "identical request"
    clock.now += 0.2  # 15.1 s after the accepted one
    assert guard.admit("req", "NVDA") is None


def test_sixth_request_for_one_contract_within_2_seconds_is_refused():
    clock = FakeClock()
    guard = PacingGuard(clock=clock)
    for n in range(5):
        assert guard.admit(f"req{n}", "NVDA") is None
        clock.now += 0.1
    assert guard.admit("req5", "NVDA") == "burst for one contract"
    assert guard.admit("req5", "TSLA") is None  # other contracts are unaffected
    clock.now += 2.0
    assert guard.admit("req6", "NVDA") is None


def test_more_than_60_requests_in_10_minutes_are_refused():
    clock = FakeClock()
    guard = PacingGuard(clock=clock)
    for n in range(60):
        assert guard.admit(f"req{n}", f"contract{n}") is None
        clock.now += 5
    assert guard.admit("one more", "fresh") == "too many requests"
    clock.now += 600 - 60 * 5 + 5  # the first few requests have left the window
    assert guard.admit("one more", "fresh") is None


def test_a_request_of_weight_two_counts_twice():
    clock = FakeClock()
    guard = PacingGuard(clock=clock)
    assert guard.admit("bid_ask 1", "ES", weight=2) is None
    assert guard.admit("bid_ask 2", "ES", weight=2) is None
    # Four counted: another BID_ASK would be the 5th and 6th, a plain request only the 5th.
    assert guard.admit("bid_ask 3", "ES", weight=2) == "burst for one contract"
    assert guard.admit("trades", "ES") is None
    for n in range(27):
        assert guard.admit(f"other {n}", f"contract {n}", weight=2) is None
    # 59 counted in the 10-minute window: room for one more, not for two.
    assert guard.admit("bid_ask", "fresh", weight=2) == "too many requests"
    assert guard.admit("trades again", "fresh") is None


def test_scale_shrinks_the_windows_and_zero_disables_pacing():
    clock = FakeClock()
    scaled = PacingGuard(scale=0.01, clock=clock)
    assert scaled.admit("req", "NVDA") is None
    clock.now += 0.16
    assert scaled.admit("req", "NVDA") is None
    off = PacingGuard(scale=0, clock=clock)
    assert all(off.admit("same", "same") is None for _ in range(100))


@pytest.fixture(scope="module")
def paced():
    gw = SimulatedGateway(seed=7, pacing_scale=SCALE, now=FIXED_NOW).start_in_thread()
    yield gw
    gw.stop()


@pytest.fixture
async def client(paced):
    control(paced, "POST", "/reset")
    ib = await connect(paced)
    ib.RaiseRequestErrors = True
    yield ib
    ib.disconnect()


def fetch(ib, duration="1 D", symbol="NVDA"):
    return ib.reqHistoricalDataAsync(Stock(symbol, "SMART", "USD"),
                                     dt.datetime(2025, 11, 26, 21, tzinfo=dt.UTC), duration,
                                     "1 hour", "TRADES", True, formatDate=2)


async def test_identical_request_twice_is_a_pacing_violation(client, paced):
    assert len(await fetch(client)) == 7
    with pytest.raises(RequestError) as error:
        await fetch(client)
    assert error.value.code == 162
    assert error.value.message == PACING_TEXT
    assert control(paced, "GET", "/stats")[1]["pacing_violations"] == 1
    # Once the (scaled) 15 s window has passed, the same request is served again.
    await asyncio.sleep(15 * SCALE + 0.1)
    assert len(await fetch(client)) == 7


async def test_burst_of_six_for_one_contract_gets_one_violation(client, paced):
    client.RaiseRequestErrors = False
    codes = []
    client.errorEvent += lambda req_id, code, text, contract: codes.append((code, text))
    results = await asyncio.gather(*(fetch(client, f"{n} D") for n in range(1, 7)))
    assert sorted(len(r) for r in results) == [0, 7, 14, 21, 28, 35]
    assert codes == [(162, PACING_TEXT)]
    assert control(paced, "GET", "/stats")[1]["pacing_violations"] == 1


async def test_bid_ask_requests_count_twice_for_one_contract(client, paced):
    client.RaiseRequestErrors = False
    codes = []
    client.errorEvent += lambda req_id, code, text, contract: codes.append((code, text))
    nvda = Stock("NVDA", "SMART", "USD")
    end = dt.datetime(2025, 11, 26, 21, tzinfo=dt.UTC)
    results = await asyncio.gather(*(
        client.reqHistoricalDataAsync(nvda, end, f"{n} D", "1 hour", "BID_ASK", True,
                                      formatDate=2)
        for n in range(1, 4)))
    assert sorted(len(r) for r in results) == [0, 7, 14]  # the third is the 5th and 6th
    assert codes == [(162, PACING_TEXT)]


async def test_pacing_counts_every_connection_of_the_gateway_together(client, paced):
    # Three requests for NVDA from each of two clients: the sixth within 2 s is refused,
    # whichever connection sent it.
    other = await connect(paced)
    try:
        codes = []
        for ib in (client, other):
            ib.RaiseRequestErrors = False
            ib.errorEvent += lambda req_id, code, text, contract: codes.append((code, text))
        results = await asyncio.gather(
            *(fetch(client, f"{n} D") for n in range(1, 4)),
            *(fetch(other, f"{n} D") for n in range(4, 7)))
        assert sorted(len(r) for r in results) == [0, 7, 14, 21, 28, 35]
        assert codes == [(162, PACING_TEXT)]
        stats = control(paced, "GET", "/stats")[1]
        assert stats["pacing_violations"] == 1
        assert stats["pacing"]["requests_per_window"] == [5]
        assert stats["pacing"]["max_in_any_window"] == 5
    finally:
        other.disconnect()


def test_the_overall_window_is_counted_window_by_window():
    clock = FakeClock()
    guard = PacingGuard(clock=clock)
    for n in range(60):
        assert guard.admit(f"a{n}", f"c{n}") is None
        clock.now += 1
    clock.now = 1000.0 + 600 + 30
    for n in range(3):
        assert guard.admit(f"b{n}", f"d{n}", weight=2) is None
    report = guard.to_json()
    assert report["overall_window_seconds"] == 600 and report["overall_limit"] == 60
    assert report["requests_per_window"] == [60, 6]
    assert report["max_in_any_window"] == 60
    guard.reset()
    assert guard.to_json()["requests_per_window"] == []


TOO_MANY_OPEN_TEXT = (
    "Error processing request:Only 50 simultaneous API historical data requests allowed.")


@pytest.fixture
async def unpaced():
    gw = SimulatedGateway(seed=7, pacing_scale=0, now=FIXED_NOW).start_in_thread()
    yield gw
    gw.stop()


async def test_fifty_open_requests_at_most_over_every_connection(unpaced):
    first, second = await connect(unpaced), await connect(unpaced)
    try:
        codes = []
        for ib in (first, second):
            ib.RaiseRequestErrors = False
            ib.errorEvent += lambda req_id, code, text, contract: codes.append((code, text))
        # Fifty requests held open by a delay, split over two connections; then one more.
        control(unpaced, "POST", "/faults", {"kind": "delay", "count": 50, "seconds": 3})
        held = [asyncio.ensure_future(fetch(first if n % 2 else second, f"{n + 1} D"))
                for n in range(50)]
        for _ in range(100):
            if control(unpaced, "GET", "/stats")[1]["open_historical_requests"] == 50:
                break
            await asyncio.sleep(0.05)
        refused = await fetch(first, "60 D")
        assert len(refused) == 0
        assert codes == [(322, TOO_MANY_OPEN_TEXT)]
        assert all(len(bars) > 0 for bars in await asyncio.gather(*held))
        stats = control(unpaced, "GET", "/stats")[1]
        assert stats["simultaneous_limit_rejections"] == 1
        assert stats["max_open_historical_requests"] == 50
        assert stats["open_historical_requests"] == 0
        # Answered, they are no longer open: the next request is served.
        assert len(await fetch(second, "60 D")) > 0
    finally:
        first.disconnect()
        second.disconnect()


async def test_a_cancelled_request_is_no_longer_open(unpaced):
    ib = await connect(unpaced)
    try:
        control(unpaced, "POST", "/faults", {"kind": "timeout", "count": 1})
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(fetch(ib), 0.5)
        assert control(unpaced, "GET", "/stats")[1]["open_historical_requests"] == 1
        # The request id ib_insync gave it: the last one it issued.
        ib.client.cancelHistoricalData(ib.client._reqIdSeq - 1)
        for _ in range(50):
            if control(unpaced, "GET", "/stats")[1]["open_historical_requests"] == 0:
                break
            await asyncio.sleep(0.02)
        assert control(unpaced, "GET", "/stats")[1]["open_historical_requests"] == 0
    finally:
        ib.disconnect()
