"""A live workflow whose HTTP client goes away stops asking IBKR and is recorded as cancelled.

TestClient cannot disconnect, so this runs the real backend and simulator processes.
"""

import time

import httpx
import pytest

from tests.support.processes import BackendProcess, app_environment, start_simulator_process

pytestmark = [pytest.mark.workflow, pytest.mark.workflow_mode("live")]

SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "GOOGL", "META", "AMD", "INTC", "NFLX"]
# Each historical answer takes this long, so the ten symbols would take about four seconds.
ANSWER_DELAY_S = 0.4


def test_a_client_that_disconnects_cancels_the_run(migrated_database_url, tmp_path):
    simulator = start_simulator_process()
    try:
        env = app_environment(migrated_database_url, simulator)
        with BackendProcess(env, tmp_path / "backend.log") as backend:
            # A first run loads the exchange calendar and connects, so the timing below is the
            # run's own.
            with backend.client() as client:
                warm = {"strategy": "sma_crossover", "symbols": ["KO"], "lookback_days": 60}
                assert client.post("/api/workflows/execute", json=warm).status_code == 200
            httpx.post(
                f"{simulator.control_url}/faults",
                json={"kind": "delay", "count": 100, "seconds": ANSWER_DELAY_S},
                timeout=5,
            ).raise_for_status()
            sent_before = simulator.stats()["historical_requests"]
            run = {"strategy": "sma_crossover", "symbols": SYMBOLS, "lookback_days": 60}
            # The client gives up after 0.7 s and closes its connection.
            with (
                httpx.Client(base_url=backend.url, timeout=httpx.Timeout(10, read=0.7)) as client,
                pytest.raises(httpx.ReadTimeout),
            ):
                client.post("/api/workflows/execute", json=run)
            sent_at_disconnect = simulator.stats()["historical_requests"]
            time.sleep(8 * ANSWER_DELAY_S)
            sent_after_grace = simulator.stats()["historical_requests"]

            with backend.client() as client:
                execution = wait_until_finished(client)
                detail = client.get(f"/api/workflows/executions/{execution['id']}").json()
    finally:
        simulator.stop()

    assert sent_at_disconnect > sent_before
    # The request in flight when the disconnect was seen may still arrive; nothing after it.
    assert sent_after_grace - sent_at_disconnect <= 1
    sent = sent_after_grace - sent_before
    assert sent < len(SYMBOLS)

    assert execution["status"] == "cancelled"
    assert execution["finished_at"] is not None
    assert execution["error"].startswith("cancelled: the caller went away after ")
    per_symbol = execution["result"]["per_symbol"]
    assert set(per_symbol) == set(SYMBOLS)
    not_run = [symbol for symbol in SYMBOLS if "cancelled" in per_symbol[symbol].get("error", "")]
    assert not_run == SYMBOLS[len(SYMBOLS) - len(not_run) :]
    assert len(not_run) >= len(SYMBOLS) - sent
    finish = detail["logs"][-1]
    assert (finish["step"], finish["level"]) == ("finish", "WARNING")
    assert finish["message"].startswith("finished cancelled: ")
    assert "the caller went away" in finish["message"]


def wait_until_finished(client: httpx.Client, timeout_s: float = 10) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        execution = client.get("/api/workflows/executions", params={"limit": 1}).json()["data"][0]
        if execution["status"] not in ("pending", "running") or time.monotonic() > deadline:
            return execution
        time.sleep(0.1)
