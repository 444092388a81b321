"""The JSON control API: stats, faults of every kind, validation, reset."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from ib_insync import RequestError, Stock

from backend.ibkr_simulator import SimulatedGateway

from .conftest import FIXED_NOW, PACING_TEXT, connect, control

STATS_KEYS = {
    "connections_total", "connections_open", "historical_requests", "contract_requests",
    "head_timestamp_requests", "pacing_violations", "errors_sent", "requests_by_symbol",
    "open_historical_requests", "max_open_historical_requests", "simultaneous_limit_rejections",
    "pacing",
}
NO_DATA_TEXT = ("Historical Market Data Service error message:HMDS query returned no data: "
                "NVDA@SMART Trades")


@pytest.fixture(scope="module")
def gw():
    gateway = SimulatedGateway(seed=3, pacing_scale=0, now=FIXED_NOW).start_in_thread()
    yield gateway
    gateway.stop()


@pytest.fixture
async def client(gw):
    assert control(gw, "POST", "/reset") == (200, {"ok": True})
    ib = await connect(gw)
    ib.RaiseRequestErrors = True
    yield ib
    ib.disconnect()


def fetch(ib, symbol="NVDA", timeout=10):
    return ib.reqHistoricalDataAsync(Stock(symbol, "SMART", "USD"),
                                     dt.datetime(2025, 11, 26, 21, tzinfo=dt.UTC), "1 D",
                                     "1 hour", "TRADES", True, formatDate=2, timeout=timeout)


def arm(gw, **fault):
    status, body = control(gw, "POST", "/faults", fault)
    assert status == 200, body
    return body


def test_health(gw):
    assert control(gw, "GET", "/health") == (200, {"ok": True})


async def test_stats_count_every_kind_of_request(gw, client):
    await fetch(client)
    await fetch(client, "TSLA")
    await client.qualifyContractsAsync(Stock("NVDA", "SMART", "USD"))
    await client.reqHeadTimeStampAsync(Stock("NVDA", "SMART", "USD"), "TRADES", True, 2)
    with pytest.raises(RequestError):
        await fetch(client, "NOPE")
    status, stats = control(gw, "GET", "/stats")
    assert status == 200
    assert set(stats) == STATS_KEYS
    assert stats["historical_requests"] == 3
    assert stats["contract_requests"] == 1
    assert stats["head_timestamp_requests"] == 1
    assert stats["requests_by_symbol"] == {"NVDA": 1, "TSLA": 1, "NOPE": 1}
    assert stats["errors_sent"] == 1  # the 200; farm notices are not errors
    assert stats["connections_open"] == 1
    assert stats["pacing_violations"] == 0
    assert stats["open_historical_requests"] == 0
    assert stats["max_open_historical_requests"] == 1


async def test_reset_clears_counters_and_faults(gw, client):
    await fetch(client)
    arm(gw, kind="no_data", count=3)
    assert control(gw, "POST", "/reset") == (200, {"ok": True})
    stats = control(gw, "GET", "/stats")[1]
    assert stats["historical_requests"] == 0 and stats["requests_by_symbol"] == {}
    assert stats["connections_open"] == 1  # the client is still connected
    assert control(gw, "GET", "/faults") == (200, {"faults": []})
    assert len(await fetch(client)) == 7


async def test_disconnect_fault_closes_the_client_socket(gw, client):
    assert arm(gw, kind="disconnect") == {
        "faults": [{"kind": "disconnect", "count": 1, "symbol": None, "seconds": None,
                    "after": 0}]}
    with pytest.raises(ConnectionError):
        await fetch(client)
    await asyncio.sleep(0.1)
    assert not client.isConnected()
    assert control(gw, "GET", "/stats")[1]["connections_open"] == 0
    # The fault is used up: a new connection is served normally.
    again = await connect(gw)
    assert len(await fetch(again)) == 7
    again.disconnect()


async def test_no_data_fault_answers_162(gw, client):
    arm(gw, kind="no_data", count=1)
    with pytest.raises(RequestError) as error:
        await fetch(client)
    assert (error.value.code, error.value.message) == (162, NO_DATA_TEXT)
    assert len(await fetch(client)) == 7


async def test_pacing_fault_answers_162_pacing_violation(gw, client):
    arm(gw, kind="pacing")
    with pytest.raises(RequestError) as error:
        await fetch(client)
    assert (error.value.code, error.value.message) == (162, PACING_TEXT)
    assert control(gw, "GET", "/stats")[1]["pacing_violations"] == 1


async def test_delay_fault_answers_late(gw, client):
    arm(gw, kind="delay", seconds=0.5)
    started = time.monotonic()
    assert len(await fetch(client)) == 7
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    await fetch(client)
    assert time.monotonic() - started < 0.5


async def test_timeout_fault_never_answers(gw, client):
    client.RaiseRequestErrors = False
    arm(gw, kind="timeout")
    started = time.monotonic()
    assert list(await fetch(client, timeout=1)) == []
    assert time.monotonic() - started >= 1
    assert client.isConnected()
    assert len(await fetch(client)) == 7


async def test_a_fault_after_n_requests_lets_them_through_first(gw, client):
    arm(gw, kind="no_data", count=1, after=2)
    for _ in range(2):
        assert len(await fetch(client)) == 7
    with pytest.raises(RequestError):
        await fetch(client)
    assert len(await fetch(client)) == 7


async def test_faults_match_symbol_and_count(gw, client):
    arm(gw, kind="no_data", symbol="tsla", count=2)
    assert control(gw, "GET", "/faults")[1] == {
        "faults": [{"kind": "no_data", "count": 2, "symbol": "TSLA", "seconds": None,
                    "after": 0}]}
    assert len(await fetch(client, "NVDA")) == 7
    for _ in range(2):
        with pytest.raises(RequestError):
            await fetch(client, "TSLA")
    assert control(gw, "GET", "/faults")[1] == {"faults": []}
    assert len(await fetch(client, "TSLA")) == 7


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "explode"}, "kind"),
    ({"count": 1}, "kind"),
    ({"kind": "delay", "count": 0}, "count"),
    ({"kind": "delay", "count": "2"}, "count"),
    ({"kind": "delay", "seconds": -1}, "seconds"),
    ({"kind": "no_data", "symbol": 5}, "symbol"),
    ({"kind": "no_data", "colour": "red"}, "colour"),
    ({"kind": "no_data", "after": -1}, "after"),
    (["disconnect"], "body"),
])
def test_bad_fault_is_400_naming_the_field(gw, body, field):
    status, payload = control(gw, "POST", "/faults", body)
    assert status == 400
    assert payload["field"] == field
    assert payload["error"]


def test_invalid_json_is_400(gw):
    status, payload = control(gw, "POST", "/faults", raw=b"{kind: disconnect")
    assert (status, payload["field"]) == (400, "body")
    assert control(gw, "GET", "/faults") == (200, {"faults": []})


def test_unknown_route_and_method(gw):
    assert control(gw, "GET", "/nope")[0] == 404
    assert control(gw, "DELETE", "/faults")[0] == 405


def test_in_process_helpers_mirror_the_http_api(gw):
    gw.reset()
    assert gw.arm_fault("delay", count=2, seconds=0.1) == [
        {"kind": "delay", "count": 2, "symbol": None, "seconds": 0.1, "after": 0}]
    assert control(gw, "GET", "/faults")[1]["faults"][0]["count"] == 2
    gw.reset()
    assert set(gw.get_stats()) == STATS_KEYS
    assert control(gw, "GET", "/faults")[1] == {"faults": []}
