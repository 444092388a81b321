"""Fixtures: simulated gateways on loopback and real ib_insync clients connected to them."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import urllib.error
import urllib.request

import pytest
from ib_insync import IB

from backend.ibkr_simulator import SimulatedGateway

# Monday 2025-12-01, after the close: the default clock of the shared gateway.
FIXED_NOW = dt.datetime(2025, 12, 1, 21, 0, tzinfo=dt.UTC)
HOST = "127.0.0.1"
PACING_TEXT = (
    "Historical Market Data Service error message:Historical data request pacing violation")

_client_ids = itertools.count(100)


def next_client_id() -> int:
    return next(_client_ids)


@pytest.fixture(scope="session")
def gateway():
    """One gateway for the session: fixed clock, pacing off so that re-fetches are allowed."""
    gw = SimulatedGateway(seed=7, pacing_scale=0, now=FIXED_NOW).start_in_thread()
    yield gw
    gw.stop()


async def connect(gw: SimulatedGateway, client_id: int | None = None, timeout: float = 5) -> IB:
    # ib_insync must use the test's loop (see the project's protocol notes).
    asyncio.set_event_loop(asyncio.get_running_loop())
    ib = IB()
    await ib.connectAsync(HOST, gw.port, clientId=client_id or next_client_id(),
                          readonly=True, timeout=timeout)
    return ib


@pytest.fixture
async def ib(gateway):
    client = await connect(gateway)
    yield client
    client.disconnect()


def control(gw: SimulatedGateway, method: str, path: str, body: object = None,
            raw: bytes | None = None) -> tuple[int, object]:
    """Call the control API over HTTP; returns (status, decoded JSON)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(f"http://{HOST}:{gw.control_port}{path}", data=data,
                                     method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
