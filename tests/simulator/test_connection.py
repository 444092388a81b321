"""Connecting the real ib_insync client: handshake, start-up sync, client ids, robustness."""

from __future__ import annotations

import asyncio
import json
import struct

import pytest
from ib_insync import IB, Stock

from backend.ibkr_simulator import SimulatedGateway

from .conftest import FIXED_NOW, HOST, connect, control, next_client_id


async def test_connect_readonly_syncs_and_reports_account(ib):
    assert ib.isConnected()
    assert ib.managedAccounts() == ["DU1234567"]
    assert ib.client.serverVersion() == 176


async def test_connect_read_write_waits_for_order_ends(gateway):
    asyncio.set_event_loop(asyncio.get_running_loop())
    client = IB()
    # readonly=False also waits for openOrderEnd and completedOrdersEnd.
    await client.connectAsync(HOST, gateway.port, clientId=next_client_id(), timeout=5)
    try:
        assert client.isConnected()
        assert client.openTrades() == []
    finally:
        client.disconnect()


async def test_current_time_is_the_fixed_clock(ib):
    assert await ib.reqCurrentTimeAsync() == FIXED_NOW


async def test_farm_notices_arrive_as_reqid_minus_one_warnings(gateway):
    asyncio.set_event_loop(asyncio.get_running_loop())
    client = IB()
    seen = []
    client.errorEvent += lambda req_id, code, text, contract: seen.append((req_id, code))
    await client.connectAsync(HOST, gateway.port, clientId=next_client_id(), readonly=True,
                              timeout=5)
    client.disconnect()
    assert {(-1, 2104), (-1, 2106), (-1, 2158)} <= set(seen)


async def test_duplicate_client_id_is_refused_with_326_and_first_stays_up(gateway):
    client_id = next_client_id()
    first = await connect(gateway, client_id)
    second = IB()
    codes = []
    second.errorEvent += lambda req_id, code, text, contract: codes.append(code)
    try:
        with pytest.raises((TimeoutError, ConnectionError)):
            await second.connectAsync(HOST, gateway.port, clientId=client_id, readonly=True,
                                      timeout=2)
        assert 326 in codes
        assert not second.isConnected()
        assert first.isConnected()
        assert await first.reqCurrentTimeAsync() == FIXED_NOW
    finally:
        first.disconnect()


async def test_client_id_is_free_again_after_disconnect(gateway):
    client_id = next_client_id()
    first = await connect(gateway, client_id)
    first.disconnect()
    await asyncio.sleep(0.1)
    again = await connect(gateway, client_id)
    assert again.isConnected()
    again.disconnect()


async def test_unknown_and_cancel_messages_leave_the_connection_working(ib):
    ib.client.send(9999, 1, "whatever")  # unknown message id
    ib.client.send(25, 1, 12345)  # cancelHistoricalData for a request that never existed
    ib.client.send(20, "not-a-number")  # malformed reqHistoricalData
    assert await ib.reqCurrentTimeAsync() == FIXED_NOW
    assert ib.isConnected()


async def test_connections_are_counted(gateway):
    before = control(gateway, "GET", "/stats")[1]
    client = await connect(gateway)
    during = control(gateway, "GET", "/stats")[1]
    client.disconnect()
    await asyncio.sleep(0.2)
    after = control(gateway, "GET", "/stats")[1]
    assert during["connections_total"] == before["connections_total"] + 1
    assert during["connections_open"] == before["connections_open"] + 1
    assert after["connections_open"] == before["connections_open"]


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


async def _read_fields(reader: asyncio.StreamReader) -> list[str]:
    size = struct.unpack(">I", await reader.readexactly(4))[0]
    return (await reader.readexactly(size)).decode().split("\0")[:-1]


async def test_wire_level_handshake_and_start_api(gateway):
    reader, writer = await asyncio.open_connection(HOST, gateway.port)
    try:
        writer.write(b"API\0" + _frame(b"v157..176"))
        version, connection_time = await _read_fields(reader)
        assert version == "176"
        assert connection_time.startswith("20251201 16:00:00 ")

        writer.write(_frame(b"71\x002\x00" + str(next_client_id()).encode() + b"\x00\x00"))
        assert await _read_fields(reader) == ["15", "1", "DU1234567"]
        assert await _read_fields(reader) == ["9", "1", "1"]
        farm = await _read_fields(reader)
        # error: id, version, reqId, code, text, and the mandatory empty advancedOrderRejectJson
        assert farm[:4] == ["4", "2", "-1", "2104"] and farm[5] == "" and len(farm) == 6
    finally:
        writer.close()


async def test_garbage_before_the_handshake_only_drops_that_socket(gateway):
    reader, writer = await asyncio.open_connection(HOST, gateway.port)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed without an answer
    writer.close()
    client = await connect(gateway)
    assert await client.reqCurrentTimeAsync() == FIXED_NOW
    client.disconnect()


async def test_gateway_runs_inside_the_callers_loop():
    gw = SimulatedGateway(now=FIXED_NOW, pacing_scale=0)
    await gw.start()
    try:
        client = await connect(gw)
        assert await client.reqCurrentTimeAsync() == FIXED_NOW
        assert gw.stats_json()["connections_open"] == 1
        client.disconnect()
    finally:
        await gw.stop()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(HOST, gw.port)


async def test_custom_instrument_file(tmp_path):
    listing = [{
        "symbol": "SIMU", "con_id": 9000001, "primary_exchange": "NYSE",
        "head_timestamp": "2020-01-02T14:30:00Z", "start_price": 50.0,
    }]
    path = tmp_path / "instruments.json"
    path.write_text(json.dumps(listing))
    gw = SimulatedGateway(now=FIXED_NOW, instruments=path, control_port=None).start_in_thread()
    try:
        client = await connect(gw)
        [simu] = await client.qualifyContractsAsync(Stock("SIMU", "SMART", "USD"))
        assert (simu.conId, simu.primaryExchange) == (9000001, "NYSE")
        assert await client.qualifyContractsAsync(Stock("NVDA", "SMART", "USD")) == []
        client.disconnect()
    finally:
        gw.stop()
