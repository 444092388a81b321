"""The backend as served (`python -m backend.server`): slow clients are cut off after the request
timeout on both HTTP parsers, and the real ib_insync client works on the uvloop event loop.

Every test runs a real server process, talked to through raw sockets where the test needs to send
half a request.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from backend.server import DEFAULT_HTTP, DEFAULT_LOOP, REQUEST_TIMEOUT_S, uvicorn_config
from tests.support.processes import (
    BackendProcess,
    SimulatorProcess,
    app_environment,
    migrate,
    start_simulator_process,
)

SETUPS = {
    "httptools+uvloop": ["--http", "httptools", "--loop", "uvloop"],
    "h11+asyncio": ["--http", "h11", "--loop", "asyncio"],
}
# Short, so the tests wait little; the default (REQUEST_TIMEOUT_S) is checked on its own.
TIMEOUT_S = 2.0
# Scheduling slack on a busy machine: a close this much later still counts as on time.
MARGIN_S = 1.5
HALF_SENT_HEAD = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
FULL_HEAD = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture(scope="module")
def gateway_process() -> Iterator[SimulatorProcess]:
    running = start_simulator_process()
    yield running
    running.stop()


@pytest.fixture(scope="module", params=list(SETUPS))
def backend(request, gateway_process, tmp_path_factory) -> Iterator[BackendProcess]:
    folder = tmp_path_factory.mktemp(f"server-{request.param}")
    database_url = f"sqlite:///{folder / 'market_data.db'}"
    migrate(database_url)
    env = app_environment(database_url, gateway_process, DEBUG_MODE="true")
    args = [*SETUPS[request.param], "--request-timeout", str(TIMEOUT_S)]
    with BackendProcess(env, folder / "backend.log", server_args=args) as running:
        yield running


def connect(backend: BackendProcess, payload: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", backend.port), timeout=5)
    if payload:
        sock.sendall(payload)
    return sock


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """What the server sent until it closed the connection, and the seconds that took."""
    started = time.monotonic()
    sock.settimeout(limit_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for more than {limit_s:g} s")
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return received, time.monotonic() - started


def health_answers_quickly(backend: BackendProcess) -> None:
    started = time.monotonic()
    response = httpx.get(f"{backend.url}/api/health", timeout=5)
    assert response.status_code == 200
    assert time.monotonic() - started < 1.0


def assert_closed_on_time(elapsed_s: float) -> None:
    # Not before the timeout (it is the request deadline that closed it), and not much after.
    assert TIMEOUT_S - 0.2 <= elapsed_s <= TIMEOUT_S + MARGIN_S, elapsed_s


def test_half_sent_headers_are_closed_after_the_request_timeout(backend):
    sock = connect(backend, HALF_SENT_HEAD)
    started = time.monotonic()
    health_answers_quickly(backend)
    received, _ = read_until_closed(sock, TIMEOUT_S + MARGIN_S)
    assert received == b""
    assert_closed_on_time(time.monotonic() - started)
    health_answers_quickly(backend)


def test_half_sent_body_is_closed_after_the_request_timeout(backend):
    head = (
        b"POST /api/workflows/execute HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    )
    sock = connect(backend, head + b'{"strategy": "sma_')
    started = time.monotonic()
    read_until_closed(sock, TIMEOUT_S + MARGIN_S)
    assert_closed_on_time(time.monotonic() - started)
    health_answers_quickly(backend)


def test_a_connection_that_sends_nothing_is_closed(backend):
    sock = connect(backend)
    started = time.monotonic()
    read_until_closed(sock, TIMEOUT_S + MARGIN_S)
    assert_closed_on_time(time.monotonic() - started)


def test_a_slow_but_complete_request_is_served_and_the_next_one_gets_its_own_deadline(backend):
    sock = connect(backend)
    # The request trickles in over more than half the timeout, and is answered.
    for piece in (FULL_HEAD[:10], FULL_HEAD[10:30], FULL_HEAD[30:]):
        sock.sendall(piece)
        time.sleep(TIMEOUT_S / 4)
    sock.settimeout(5)
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200"), first
    # Idle on the kept-alive connection, then half a second request: its deadline counts from
    # its first byte (uvicorn's keep-alive timer stops at that byte and would wait for ever).
    time.sleep(TIMEOUT_S / 2)
    sock.sendall(HALF_SENT_HEAD)
    started = time.monotonic()
    received, _ = read_until_closed(sock, TIMEOUT_S + MARGIN_S)
    assert received == b""
    assert_closed_on_time(time.monotonic() - started)


def test_an_answer_that_takes_longer_than_the_timeout_is_not_cut(backend, gateway_process):
    # The deadline is on receiving the request; a slow answer (here a gateway that takes longer
    # than the timeout to send its bars) is delivered in full.
    slow_s = TIMEOUT_S + 1
    httpx.post(
        f"{gateway_process.control_url}/faults",
        json={"kind": "delay", "symbol": "AAPL", "seconds": slow_s},
        timeout=5,
    ).raise_for_status()
    started = time.monotonic()
    response = httpx.post(
        f"{backend.url}/api/market-data/cache/refresh",
        params={"wait": "true"},
        json={"symbols": ["AAPL"], "data_type": "1d", "days_back": 10},
        timeout=60,
    )
    assert time.monotonic() - started >= slow_s
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed", response.json()


def test_many_stalled_sockets_do_not_stop_health(backend):
    stalled = [connect(backend, HALF_SENT_HEAD[: 5 + index]) for index in range(50)]
    started = time.monotonic()
    for _ in range(5):
        health_answers_quickly(backend)
    # Every stalled socket is closed by the server within the timeout (+ margin).
    open_sockets = set(stalled)
    while open_sockets and time.monotonic() - started < TIMEOUT_S + MARGIN_S:
        readable, _, _ = select.select(list(open_sockets), [], [], 0.1)
        for sock in readable:
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1) == b""
            open_sockets.discard(sock)
            sock.close()
    still_open = len(open_sockets)
    for sock in open_sockets:
        sock.close()
    assert still_open == 0, f"{still_open} of 50 stalled connections were still open"
    health_answers_quickly(backend)


def test_the_served_default_has_the_request_timeout():
    config = uvicorn_config()
    assert config.http.request_timeout_s == REQUEST_TIMEOUT_S
    assert (config.loop, config.http.__name__) == (
        DEFAULT_LOOP,
        {"httptools": "HttpToolsWithRequestTimeout", "h11": "H11WithRequestTimeout"}[DEFAULT_HTTP],
    )


def wait_for_gateway(client: httpx.Client, connected: bool = True, within_s: float = 15) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if client.get("/api/config").json()["gateway"]["connected"] is connected:
            return
        time.sleep(0.1)
    pytest.fail(f"the gateway did not become connected={connected} within {within_s:g} s")


def refresh(client: httpx.Client, symbol: str, data_type: str, days_back: int) -> dict:
    response = client.post(
        "/api/market-data/cache/refresh",
        params={"wait": "true"},
        json={"symbols": [symbol], "data_type": data_type, "days_back": days_back},
    )
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "completed", job
    [result] = job["results"]
    assert result["status"] == "ok", result
    assert result["bars_cached"] > 0, result
    return result


def test_ib_insync_works_on_uvloop_inside_the_server(
    migrated_database_url, gateway_process, tmp_path
):
    """Connect, qualify, fetch bars, survive a dropped connection: all on the uvloop loop."""
    env = app_environment(migrated_database_url, gateway_process, LOG_LEVEL="INFO")
    args = ["--http", "httptools", "--loop", "uvloop"]
    with (
        BackendProcess(env, tmp_path / "backend.log", server_args=args) as backend,
        backend.client() as client,
    ):
        assert "event loop uvloop.Loop" in backend.log_tail(200)
        wait_for_gateway(client)

        daily = refresh(client, "NVDA", "1d", 30)
        hourly = refresh(client, "NVDA", "1h", 5)

        connections_before = gateway_process.stats()["connections_total"]
        httpx.post(
            f"{gateway_process.control_url}/faults",
            json={"kind": "disconnect", "count": 1},
            timeout=5,
        ).raise_for_status()
        after_drop = refresh(client, "TSLA", "1d", 30)
        assert gateway_process.stats()["connections_total"] > connections_before
        wait_for_gateway(client)

        for symbol, data_type, result in (
            ("NVDA", "1d", daily),
            ("NVDA", "1h", hourly),
            ("TSLA", "1d", after_drop),
        ):
            series = client.get(
                f"/api/market-data/cache/{symbol}", params={"data_type": data_type}
            ).json()
            assert series["count"] == result["bars_cached"], (symbol, data_type, series)
        assert "Traceback" not in backend.log_tail(400)
