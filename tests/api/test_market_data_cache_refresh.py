"""POST /refresh against the simulated gateway: jobs, per-symbol results, and the main flow."""

import time

import pytest

from backend.market_data.refresh_jobs import PRUNE_EVERY_S
from tests.support.cache_api import DEAD_GATEWAY_PORT, api_client, seed_daily_bars
from tests.support.gateway import FakeClock
from tests.support.migrations import migrate_to_head

CACHE = "/api/market-data/cache"
REFRESH = f"{CACHE}/refresh"


@pytest.fixture
def migrated_sqlite_url(sqlite_url) -> str:
    migrate_to_head(sqlite_url)
    return sqlite_url


def refresh_and_wait(client, **body) -> dict:
    response = client.post(REFRESH, params={"wait": "true"}, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def results_by_symbol(job: dict) -> dict[str, dict]:
    return {result["symbol"]: result for result in job["results"]}


def test_refresh_then_list_inspect_stats_and_delete(migrated_database_url, sim):
    """The main flow on SQLite and PostgreSQL: fill from IBKR, read it back, clear it."""
    with api_client(migrated_database_url, sim.port) as (client, _):
        job = refresh_and_wait(client, symbols=["nvda", "TSLA"], data_type="1d", days_back=30)
        assert job["status"] == "completed"
        assert job["progress"] == {"done": 2, "total": 2}
        assert job["request"]["symbols"] == ["NVDA", "TSLA"]
        assert (job["request"]["start"], job["request"]["end"]) == (
            "2025-11-01T22:00:00Z",
            "2025-12-01T22:00:00Z",
        )
        results = results_by_symbol(job)
        # 20 NASDAQ sessions from Nov 3 to Dec 1 (Thanksgiving closed).
        for symbol in ("NVDA", "TSLA"):
            assert results[symbol]["status"] == "ok"
            assert results[symbol]["bars_fetched"] == results[symbol]["bars_cached"] == 20
            assert results[symbol]["error"] is None
        requests_after_refresh = sim.stats()["historical_requests"]
        assert requests_after_refresh >= 2

        listed = client.get(CACHE, params={"symbol": "TSLA", "limit": 5}).json()
        assert listed["count"] == 20 and len(listed["data"]) == 5
        assert listed["data"][0]["metadata"]["what_to_show"] == "TRADES"

        series = client.get(f"{CACHE}/NVDA").json()
        assert series["count"] == 20
        assert (series["first"], series["last"]) == ("2025-11-03T00:00:00Z", "2025-12-01T00:00:00Z")
        stamps = [bar["timestamp"] for bar in series["bars"]]
        assert stamps == sorted(stamps)
        assert "2025-11-27T00:00:00Z" not in stamps
        assert all(bar["low"] <= bar["open"] <= bar["high"] for bar in series["bars"])
        # Reading the cache never reaches IBKR.
        assert sim.stats()["historical_requests"] == requests_after_refresh

        stats = client.get(f"{CACHE}/stats").json()
        assert [(s["symbol"], s["bar_count"], s["misses"]) for s in stats["series"]] == [
            ("NVDA", 20, 1),
            ("TSLA", 20, 1),
        ]
        assert stats["hit_rate"] == 0.0

        # A second refresh finds everything cached and final: nothing is fetched.
        again = refresh_and_wait(client, symbols=["NVDA"], days_back=30)
        assert results_by_symbol(again)["NVDA"]["bars_fetched"] == 0
        assert sim.stats()["historical_requests"] == requests_after_refresh
        assert client.get(f"{CACHE}/stats").json()["hits"] == 1

        assert client.delete(CACHE, params={"symbol": "NVDA"}).json() == {"deleted": 20}
        assert client.get(f"{CACHE}/NVDA").json()["code"] == "not_cached"
        assert client.get(CACHE).json()["count"] == 20


def test_refresh_without_wait_is_a_job_to_follow(migrated_sqlite_url, sim):
    with api_client(migrated_sqlite_url, sim.port) as (client, _):
        sim.arm_fault("delay", count=1, seconds=0.3)
        accepted = client.post(REFRESH, json={"symbols": ["AAPL"], "days_back": 10})
        assert accepted.status_code == 202
        job = accepted.json()
        assert job["status"] in ("queued", "running")
        assert job["finished_at"] is None
        assert accepted.headers["location"] == f"{REFRESH}/{job['job_id']}"

        deadline = time.monotonic() + 15
        while job["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.05)
            job = client.get(accepted.headers["location"]).json()
        assert job["status"] == "completed"
        assert job["progress"] == {"done": 1, "total": 1}
        assert job["results"][0]["bars_cached"] > 0
        assert client.get(f"{CACHE}/AAPL").json()["count"] == job["results"][0]["bars_cached"]


def test_force_fetches_cached_bars_again(migrated_sqlite_url, sim):
    with api_client(migrated_sqlite_url, sim.port) as (client, _):
        refresh_and_wait(client, symbols=["MSFT"], days_back=10)
        before = sim.stats()["historical_requests"]
        forced = refresh_and_wait(client, symbols=["MSFT"], days_back=10, force=True)
        assert forced["request"]["force"] is True
        assert results_by_symbol(forced)["MSFT"]["bars_fetched"] > 0
        assert sim.stats()["historical_requests"] > before


def test_unknown_symbol_fails_alone_with_404(migrated_sqlite_url, sim):
    with api_client(migrated_sqlite_url, sim.port) as (client, _):
        job = refresh_and_wait(client, symbols=["NVDA", "ZZZZ"], days_back=5)
        assert job["status"] == "partial"
        results = results_by_symbol(job)
        assert results["NVDA"]["status"] == "ok"
        assert results["ZZZZ"]["status"] == "error"
        assert results["ZZZZ"]["error"] == {
            "code": "unknown_contract",
            "detail": "IBKR has no stock ZZZZ on NASDAQ (error 200)",
            "status_code": 404,
        }


def test_gateway_down_gives_every_symbol_503_with_what_to_check(migrated_sqlite_url):
    with api_client(migrated_sqlite_url, DEAD_GATEWAY_PORT) as (client, _):
        job = refresh_and_wait(client, symbols=["NVDA", "TSLA"], days_back=5)
        assert job["status"] == "failed"
        assert job["finished_at"] is not None
        for result in job["results"]:
            assert result["status"] == "error"
            assert result["error"]["status_code"] == 503
            assert result["error"]["code"] == "gateway_unavailable"
            assert "Check that IB Gateway or TWS is running" in result["error"]["detail"]


def test_gateway_lost_mid_refresh_is_an_error_even_with_stale_bars(migrated_sqlite_url, sim):
    with api_client(migrated_sqlite_url, sim.port) as (client, container):
        seed_daily_bars(container, "NVDA", [24, 25])
        # Every request (and retry) of the refresh has its connection dropped by the gateway.
        sim.arm_fault("disconnect", count=20)
        job = refresh_and_wait(client, symbols=["NVDA"], days_back=30)
        result = results_by_symbol(job)["NVDA"]
        assert job["status"] == "failed"
        assert result["error"]["status_code"] == 503
        assert "the cache keeps its 2 older bars" in result["error"]["detail"]
        assert client.get(f"{CACHE}/NVDA").json()["count"] == 2


def test_refresh_is_allowed_in_debug_mode(migrated_sqlite_url, sim):
    with api_client(migrated_sqlite_url, sim.port, DEBUG_MODE=True) as (client, _):
        job = refresh_and_wait(client, symbols=["TSLA"], days_back=5)
        assert job["status"] == "completed"
        assert (
            client.get(f"{CACHE}/TSLA").json()["count"]
            == results_by_symbol(job)["TSLA"]["bars_cached"]
        )


def test_unknown_job_is_404(migrated_sqlite_url):
    with api_client(migrated_sqlite_url) as (client, _):
        response = client.get(f"{REFRESH}/nope")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        assert "JOB_KEEP_DAYS" in response.json()["detail"]


def test_only_the_latest_finished_jobs_are_kept(migrated_sqlite_url):
    clock = FakeClock()
    with api_client(migrated_sqlite_url, clock=clock, JOB_KEEP_FINISHED=2) as (client, _):
        ids = []
        for _ in range(3):
            ids.append(refresh_and_wait(client, symbols=["NVDA"])["job_id"])
            # Pruning runs when a job ends, at most every PRUNE_EVERY_S.
            clock.advance(seconds=PRUNE_EVERY_S)
        assert client.get(f"{REFRESH}/{ids[0]}").status_code == 404
        assert [client.get(f"{REFRESH}/{job_id}").status_code for job_id in ids[1:]] == [200, 200]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({}, "symbols", "required"),
        ({"symbols": []}, "symbols", "at least 1"),
        ({"symbols": [f"S{i}" for i in range(51)]}, "symbols", "at most 50"),
        ({"symbols": ["NVDA", "9X"]}, "symbols.1", "a letter first"),
        ({"symbols": ["NVDA"], "data_type": "7m"}, "data_type", "'1d'"),
        ({"symbols": ["NVDA"], "days_back": 0}, "days_back", "greater than or equal to 1"),
        ({"symbols": ["NVDA"], "days_back": 3651}, "days_back", "less than or equal to 3650"),
        ({"symbols": ["NVDA"], "exchange": "N4SDAQ"}, "exchange", "2-12 letters"),
        ({"symbols": ["NVDA"], "force": "maybe"}, "force", "boolean"),
        ({"symbols": ["NVDA"], "symbol": "TSLA"}, "symbol", "not permitted"),
    ],
)
def test_refresh_rejects_bad_input_naming_the_field(migrated_sqlite_url, body, field, reason):
    with api_client(migrated_sqlite_url) as (client, _):
        response = client.post(REFRESH, json=body)
        assert response.status_code == 422, response.text
        errors = {error["field"]: error["message"] for error in response.json()["detail"]}
        assert reason in errors[field]


def test_refresh_rejects_an_exchange_without_a_calendar(migrated_sqlite_url):
    with api_client(migrated_sqlite_url) as (client, _):
        response = client.post(REFRESH, json={"symbols": ["NVDA"], "exchange": "LSE"})
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
        assert "'LSE' has no trading calendar" in response.json()["detail"]
