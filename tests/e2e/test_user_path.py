"""The whole user path with the real commands: migrate, populate with the CLI, run a workflow live,
run it again in DEBUG_MODE without the gateway, inspect the cache through the API, clear it.

Runs on a fresh SQLite file and on a throwaway PostgreSQL database, against a simulator process
on the real clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from backend.devtools.postgres import throwaway_postgres_database
from tests.support.databases import require_postgres
from tests.support.processes import (
    BackendProcess,
    app_environment,
    migrate,
    new_client_id,
    run_command,
)

pytestmark = pytest.mark.e2e

SYMBOLS = ["NVDA", "TSLA"]
TOKEN = "e2e-user-path-token"
WORKFLOW = {
    "strategy": "sma_crossover",
    "symbols": SYMBOLS,
    "data_type": "1d",
    "lookback_days": 120,
}


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'market_data.db'}"
        return
    require_postgres()
    with throwaway_postgres_database("mdc_e2e") as url:
        yield url


def run_workflow(backend: BackendProcess) -> dict:
    """POST /api/workflows/execute, then the execution with its lineage."""
    with backend.client(TOKEN) as client:
        response = client.post("/api/workflows/execute", json=WORKFLOW)
        assert response.status_code == 200, response.text
        execution = response.json()
        assert execution["status"] == "completed", execution
        detail = client.get(f"/api/workflows/executions/{execution['id']}").json()
    return detail


def lineage_by_symbol(execution: dict) -> dict[str, dict]:
    return {record["symbol"]: record["metadata"] for record in execution["lineage"]}


def test_user_path(fresh_database, gateway_process, tmp_path):
    # 1. Migrate an empty database.
    migrate(fresh_database)

    # 2. Fill the cache with the CLI.
    env = app_environment(fresh_database, gateway_process, API_TOKEN=TOKEN)
    populate = run_command(
        [
            "scripts/populate_market_cache.py",
            "--symbols", ",".join(SYMBOLS), "--days-back", "200", "--json",
        ],
        env,
    )
    assert populate.returncode == 0, populate.stdout + populate.stderr
    events = [json.loads(line) for line in populate.stdout.splitlines() if line.startswith("{")]
    series = {event["symbol"]: event for event in events if event["event"] == "series"}
    (summary,) = [event for event in events if event["event"] == "summary"]
    assert summary["ok"] == 2 and summary["failed"] == 0 and summary["exit_code"] == 0
    assert set(series) == set(SYMBOLS)
    # About 200 calendar days hold well over 100 trading sessions.
    cached = {symbol: series[symbol]["bars_after"] for symbol in SYMBOLS}
    assert all(count > 100 for count in cached.values()), cached
    assert summary["bars_fetched"] == sum(cached.values())

    # 3. The backend in live mode runs the workflow through the cache.
    live_env = {**env, "DEBUG_MODE": "false", "IB_CLIENT_ID": new_client_id()}
    with BackendProcess(live_env, tmp_path / "backend-live.log") as backend:
        live = run_workflow(backend)
    assert live["debug_mode"] is False
    live_lineage = lineage_by_symbol(live)
    assert set(live_lineage) == set(SYMBOLS)
    assert all(meta["bar_count"] > 50 for meta in live_lineage.values()), live_lineage

    # 4. Restarted in DEBUG_MODE, the same run reads only the cache: the gateway sees nobody.
    before = gateway_process.stats()
    debug_env = {**env, "DEBUG_MODE": "true", "IB_CLIENT_ID": new_client_id()}
    with BackendProcess(debug_env, tmp_path / "backend-debug.log") as backend:
        debug = run_workflow(backend)
        after = gateway_process.stats()

        assert after["connections_total"] == before["connections_total"]
        assert after["historical_requests"] == before["historical_requests"]
        assert debug["debug_mode"] is True
        assert debug["result"]["signals"] == live["result"]["signals"]
        debug_lineage = lineage_by_symbol(debug)
        for symbol in SYMBOLS:
            assert debug_lineage[symbol]["checksum"] == live_lineage[symbol]["checksum"]
            assert debug_lineage[symbol]["data_source"] == "cache"
            assert debug_lineage[symbol]["debug_mode"] is True
        assert any("DEBUG MODE" in log["message"] for log in debug["logs"]), debug["logs"]

        # 5. Inspect the cache through the API.
        with backend.client() as client:
            stats = client.get("/api/market-data/cache/stats").json()
            by_symbol = {row["symbol"]: row for row in stats["series"]}
            assert {symbol: by_symbol[symbol]["bar_count"] for symbol in SYMBOLS} == cached
            # Both workflow runs looked every symbol up in the cache.
            assert stats["hits"] + stats["partial_hits"] >= 2 * len(SYMBOLS)
            assert stats["hit_rate"] is not None and stats["hit_rate"] > 0

            nvda = client.get("/api/market-data/cache/NVDA", params={"data_type": "1d"}).json()
            assert nvda["count"] == cached["NVDA"] == len(nvda["bars"])
            timestamps = [bar["timestamp"] for bar in nvda["bars"]]
            assert timestamps == sorted(timestamps)

            page = client.get(
                "/api/market-data/cache", params={"symbol": "TSLA", "data_type": "1d", "limit": 10}
            ).json()
            assert page["count"] == cached["TSLA"]
            assert len(page["data"]) == 10
            assert {row["symbol"] for row in page["data"]} == {"TSLA"}

            recent = client.get(
                "/api/market-data/cache",
                params={"symbol": "TSLA", "date_from": nvda["bars"][-5]["timestamp"][:10]},
            ).json()
            assert recent["count"] == 5

            # 6. Clear it: refused without the token, done with it.
            refused = client.delete("/api/market-data/cache", params={"all": "true"})
            assert refused.status_code == 401
            cleared = client.delete(
                "/api/market-data/cache",
                params={"all": "true"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert cleared.status_code == 200, cleared.text
            assert cleared.json()["deleted"] == sum(cached.values())

            assert client.get("/api/market-data/cache").json()["count"] == 0
            # The lookup counters outlive the bars; the series hold nothing.
            emptied = client.get("/api/market-data/cache/stats").json()["series"]
            assert [(row["symbol"], row["bar_count"]) for row in emptied] == [
                (symbol, 0) for symbol in SYMBOLS
            ]
            assert client.get("/api/market-data/cache/NVDA").status_code == 404
