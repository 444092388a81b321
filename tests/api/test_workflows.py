"""/api/workflows and /api/strategies over HTTP: run, list, detail, validation."""

import pytest
from fastapi.testclient import TestClient

from backend.main import create_app
from backend.storage.database import Database
from backend.storage.workflow_repository import WorkflowRepository
from backend.storage.workflow_tables import ExecutionStatus
from tests.support.app import make_container, make_settings
from tests.support.cache_api import LOCAL_URL
from tests.support.gateway import FakeClock, free_port
from tests.support.migrations import migrate_to_head

RUN = {
    "strategy": "sma_crossover",
    "symbols": ["nvda", "TSLA"],
    "data_type": "1d",
    "lookback_days": 120,
    "params": {"fast": 5, "slow": 20},
}
EXECUTION_KEYS = {
    "id",
    "strategy",
    "status",
    "debug_mode",
    "symbols",
    "data_type",
    "parameters",
    "result",
    "error",
    "started_at",
    "finished_at",
}


def client_for(database_url, gateway_port, clock, **overrides):
    settings = make_settings(database_url, gateway_port, **overrides)
    return TestClient(create_app(settings, make_container(settings, clock)), base_url=LOCAL_URL)


def test_strategies_list_their_parameter_specs(sqlite_url):
    with client_for(sqlite_url, free_port(), FakeClock()) as client:
        body = client.get("/api/strategies").json()
    assert [strategy["name"] for strategy in body] == ["sma_crossover", "rsi_mean_reversion"]
    assert body[0]["description"]
    assert body[0]["parameters"][0] == {
        "name": "fast",
        "type": "int",
        "default": 10,
        "min": 2,
        "max": 200,
        "description": "bars in the fast moving average",
    }
    assert [p["type"] for p in body[1]["parameters"]] == ["int", "float", "float"]


def test_run_live_then_debug_and_read_the_executions_back(migrated_database_url, sim):
    clock = FakeClock()
    with client_for(migrated_database_url, sim.port, clock) as live:
        filled = live.post("/api/workflows/execute", json=RUN)
    assert filled.status_code == 200, filled.text
    assert filled.json()["status"] == "completed"
    connections = sim.stats()["connections_total"]

    clock.advance(minutes=5)
    with client_for(migrated_database_url, sim.port, clock, DEBUG_MODE=True) as debug:
        response = debug.post("/api/workflows/execute", json=RUN)
        assert response.status_code == 200, response.text
        execution = response.json()
        listing = debug.get("/api/workflows/executions", params={"limit": 1}).json()
        detail = debug.get(f"/api/workflows/executions/{execution['id']}").json()
    assert sim.stats()["connections_total"] == connections

    assert set(execution) == EXECUTION_KEYS
    assert execution["status"] == "completed"
    assert execution["debug_mode"] is True
    assert execution["symbols"] == ["NVDA", "TSLA"]
    assert execution["parameters"] == {"fast": 5, "slow": 20}
    assert execution["result"]["signals"] == filled.json()["result"]["signals"]
    assert execution["result"]["per_symbol"]["NVDA"]["status"] == "ok"
    assert execution["started_at"].startswith("2025-12-01T22:05:00")

    # Newest first; the count covers every execution.
    assert listing["count"] == 2
    assert [item["id"] for item in listing["data"]] == [execution["id"]]

    assert set(detail) == EXECUTION_KEYS | {"logs", "lineage"}
    assert detail["logs"][0]["step"] == "start"
    assert detail["logs"][0]["message"].startswith("DEBUG MODE")
    assert set(detail["logs"][0]) == {"step", "level", "message", "created_at"}
    assert [record["symbol"] for record in detail["lineage"]] == ["NVDA", "TSLA"]
    record = detail["lineage"][0]
    assert record["step"] == "fetch_market_data"
    assert record["range_end"] == "2025-12-01T21:00:00Z"
    assert set(record["metadata"]) == {
        "data_source",
        "debug_mode",
        "cache_hit",
        "bar_count",
        "fetched_at_min",
        "fetched_at_max",
        "checksum",
    }
    assert (record["metadata"]["data_source"], record["metadata"]["cache_hit"]) == ("cache", "hit")


def test_a_debug_miss_is_a_partial_execution_not_an_http_error(sqlite_url):
    migrate_to_head(sqlite_url)
    with client_for(sqlite_url, free_port(), FakeClock(), DEBUG_MODE=True) as client:
        response = client.post("/api/workflows/execute", json=RUN | {"symbols": ["AAPL"]})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "failed"
    assert "make populate-cache SYMBOLS=AAPL" in body["result"]["per_symbol"]["AAPL"]["error"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"strategy": "momentum"}, "strategy", "unknown strategy 'momentum'"),
        ({"symbols": []}, "symbols", "at least 1 item"),
        ({"symbols": ["NVDA", "no way"]}, "symbols.1", "invalid symbol"),
        ({"data_type": "7m"}, "data_type", "'1m', '2m'"),
        ({"lookback_days": 0}, "lookback_days", "greater than or equal to 1"),
        ({"lookback_days": 3651}, "lookback_days", "less than or equal to 3650"),
        ({"params": {"fast": 30, "slow": 10}}, "params.fast", "fast must be less than slow"),
        ({"params": {"fast": 2.5}}, "params.fast", "whole number"),
        ({"params": {"speed": 3}}, "params.speed", "no parameter 'speed'"),
        ({"params": {"fast": "5"}}, "params.fast", "valid"),
        ({"extra": 1}, "extra", "not permitted"),
    ],
)
def test_bad_requests_are_422_naming_the_field_and_record_nothing(
    sqlite_url, change, field, message
):
    migrate_to_head(sqlite_url)
    with client_for(sqlite_url, free_port(), FakeClock(), DEBUG_MODE=True) as client:
        response = client.post("/api/workflows/execute", json=RUN | change)
        listing = client.get("/api/workflows/executions").json()
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    fields = [item["field"] for item in body["detail"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), fields
    assert any(message in item["message"] for item in body["detail"]), body["detail"]
    assert listing == {"data": [], "count": 0}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 2**63}, "offset"),
    ],
)
def test_listing_validates_paging(sqlite_url, query, field):
    with client_for(sqlite_url, free_port(), FakeClock()) as client:
        response = client.get("/api/workflows/executions", params=query)
    assert response.status_code == 422
    assert [item["field"] for item in response.json()["detail"]] == [f"query.{field}"]


def test_unknown_execution_is_404(sqlite_url):
    migrate_to_head(sqlite_url)
    with client_for(sqlite_url, free_port(), FakeClock()) as client:
        response = client.get("/api/workflows/executions/999")
        not_a_number = client.get("/api/workflows/executions/abc")
        too_big = client.get(f"/api/workflows/executions/{2**63}")
    assert response.status_code == 404
    assert response.json() == {
        "detail": "workflow execution 999 does not exist",
        "code": "not_found",
    }
    assert not_a_number.status_code == too_big.status_code == 422


def test_running_a_workflow_needs_the_token_when_one_is_set(sqlite_url):
    migrate_to_head(sqlite_url)
    with client_for(
        sqlite_url, free_port(), FakeClock(), DEBUG_MODE=True, API_TOKEN="s3"
    ) as client:
        missing = client.post("/api/workflows/execute", json=RUN)
        wrong = client.post(
            "/api/workflows/execute", json=RUN, headers={"Authorization": "Bearer nope"}
        )
        right = client.post(
            "/api/workflows/execute", json=RUN, headers={"Authorization": "Bearer s3"}
        )
        listing = client.get("/api/workflows/executions").json()
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 403, 200)
    assert listing["count"] == 1


def test_executions_a_stopped_process_left_running_are_interrupted_at_start_up(
    migrated_database_url,
):
    clock = FakeClock()
    repository = WorkflowRepository(Database(migrated_database_url))
    left = []
    for status in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.COMPLETED):
        execution = repository.create_execution(
            "sma_crossover", ["NVDA"], "1d", {"fast": 5, "slow": 20}, False, clock()
        )
        repository.set_status(execution.id, status)
        left.append(execution.id)
    running = left[1]

    clock.advance(hours=1)
    with client_for(migrated_database_url, free_port(), clock, DEBUG_MODE=True) as client:
        details = [client.get(f"/api/workflows/executions/{i}").json() for i in left]
    # A second start finds nothing left to mark.
    clock.advance(hours=1)
    with client_for(migrated_database_url, free_port(), clock, DEBUG_MODE=True) as client:
        again = client.get(f"/api/workflows/executions/{running}").json()

    for detail in details[:2]:
        assert detail["status"] == "interrupted"
        assert detail["finished_at"].startswith("2025-12-01T23:00:00")
        assert detail["error"].startswith("interrupted: the backend process stopped")
        assert "Run it again" in detail["error"]
        assert (detail["logs"][-1]["level"], detail["logs"][-1]["message"]) == (
            "ERROR",
            detail["error"],
        )
    assert details[2]["status"] == "completed"
    assert details[2]["error"] is None and details[2]["logs"] == []
    assert again["finished_at"] == details[1]["finished_at"]
    assert len(again["logs"]) == 1


def test_a_run_over_the_request_ceiling_is_refused_before_anything_is_sent_or_recorded(
    migrated_database_url, sim
):
    # Two symbols of 1-minute bars over 60 days are dozens of requests; the ceiling allows 5.
    big = RUN | {"data_type": "1m", "lookback_days": 60}
    with client_for(migrated_database_url, sim.port, FakeClock(), REQUEST_CEILING=5) as client:
        response = client.post("/api/workflows/execute", json=big)
        listing = client.get("/api/workflows/executions").json()
    with client_for(
        migrated_database_url, sim.port, FakeClock(), REQUEST_CEILING=5, DEBUG_MODE=True
    ) as debug:
        # DEBUG_MODE sends nothing, so it has nothing to refuse: the run reads the cache only.
        cache_only = debug.post("/api/workflows/execute", json=big)

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "request_budget_exceeded"
    assert body["estimate"]["requests"] > body["estimate"]["ceiling"] == 5
    assert "REQUEST_CEILING" in body["detail"]
    assert sim.stats()["historical_requests"] == 0
    assert listing == {"data": [], "count": 0}
    assert cache_only.status_code == 200
    assert cache_only.json()["status"] == "failed"


def test_a_replica_starting_leaves_another_replicas_running_execution_alone(
    migrated_database_url,
):
    # Replica A runs an execution and heartbeats it; replica B starting beside it must not
    # interrupt it. Once A stops heartbeating for JOB_MISSED_HEARTBEATS beats, B's sweep does.
    clock = FakeClock()
    repository = WorkflowRepository(Database(migrated_database_url))
    running = repository.create_execution(
        "sma_crossover", ["NVDA"], "1d", {"fast": 5, "slow": 20}, False, clock(), "replica-a"
    )
    repository.set_status(running.id, ExecutionStatus.RUNNING)
    clock.advance(minutes=10)
    repository.heartbeat("replica-a", clock())

    clock.advance(seconds=5)
    with client_for(migrated_database_url, free_port(), clock, DEBUG_MODE=True) as client:
        while_alive = client.get(f"/api/workflows/executions/{running.id}").json()
        # Replica A stops; three beats of 5 s later the sweep interrupts its execution.
        clock.advance(seconds=16)
        executor = client.app.state.container.strategy_executor()
        swept = client.portal.call(executor.interrupt_unfinished)
        after = client.get(f"/api/workflows/executions/{running.id}").json()

    assert while_alive["status"] == "running" and while_alive["error"] is None
    assert swept == [running.id]
    assert after["status"] == "interrupted"
    assert after["error"].startswith("interrupted: the backend process stopped")
