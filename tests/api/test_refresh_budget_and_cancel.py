"""Refresh jobs are costed before anything is sent, can be cancelled, and report what committed."""

import time

import pytest

from tests.support.cache_api import api_client
from tests.support.migrations import migrate_to_head

CACHE = "/api/market-data/cache"
REFRESH = f"{CACHE}/refresh"


@pytest.fixture
def migrated_sqlite_url(sqlite_url) -> str:
    migrate_to_head(sqlite_url)
    return sqlite_url


def wait_for(condition, timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def cached_count(client, symbol: str, data_type: str) -> int:
    return client.get(CACHE, params={"symbol": symbol, "data_type": data_type}).json()["count"]


def test_a_refresh_beyond_the_ceiling_is_refused_with_the_estimate(migrated_database_url, sim):
    """50 symbols x 10 years of 1-minute bars: ~125k requests, refused before any is sent."""
    with api_client(migrated_database_url, sim.port) as (client, container):
        before = sim.stats()["historical_requests"]
        symbols = [f"S{index:02d}" for index in range(50)]
        response = client.post(
            REFRESH, json={"symbols": symbols, "data_type": "1m", "days_back": 3650}
        )
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["code"] == "request_budget_exceeded"
        estimate = body["estimate"]
        # One request per session: ~2,515 sessions in ten years, for each of 50 symbols.
        assert 120_000 < estimate["requests"] < 130_000
        assert estimate["ceiling"] == 1440
        # At IBKR's budget, one request per 10 s; the test's pacing windows are shrunk alike.
        limits = container.pacing().limits
        per_request_s = limits.global_window_s / limits.global_max
        assert estimate["duration_s"] == pytest.approx(estimate["requests"] * per_request_s, 0.01)
        assert "REQUEST_CEILING" in body["detail"] and "populate-cache" in body["detail"]
        assert sim.stats()["historical_requests"] == before


def test_the_estimate_counts_only_what_the_cache_lacks(migrated_sqlite_url, sim):
    with api_client(migrated_sqlite_url, sim.port, REQUEST_CEILING=3) as (client, container):
        # 90 days of hourly bars: ~62 sessions, 20 per request, so 4 requests: over the ceiling.
        refused = client.post(
            REFRESH, json={"symbols": ["AMD"], "data_type": "1h", "days_back": 90}
        )
        assert refused.status_code == 422
        assert refused.json()["estimate"]["requests"] == 4

        before = sim.stats()["historical_requests"]
        job = client.post(
            REFRESH,
            params={"wait": "true"},
            json={"symbols": ["AMD"], "data_type": "1h", "days_back": 40},
        ).json()
        assert job["status"] == "completed"
        # The plan and what was sent agree.
        assert job["estimate"]["requests"] == sim.stats()["historical_requests"] - before == 2
        limits = container.pacing().limits
        assert job["estimate"]["duration_s"] == pytest.approx(
            2 * limits.global_window_s / limits.global_max, abs=0.1
        )

        # 40 of the 90 days are cached now: what is left fits under the ceiling.
        again = client.post(
            REFRESH,
            params={"wait": "true"},
            json={"symbols": ["AMD"], "data_type": "1h", "days_back": 90},
        ).json()
        assert again["status"] == "completed"
        assert again["estimate"]["requests"] <= 3


def test_a_cancelled_job_stops_sending_and_counts_what_it_committed(migrated_database_url, sim):
    with api_client(migrated_database_url, sim.port) as (client, _):
        # Every answer takes 0.2 s, so the job is mid-way when it is cancelled.
        sim.arm_fault("delay", count=100, seconds=0.2)
        before = sim.stats()["historical_requests"]
        accepted = client.post(
            REFRESH, json={"symbols": ["INTC"], "data_type": "1m", "days_back": 20}
        )
        assert accepted.status_code == 202
        job_id = accepted.json()["job_id"]
        assert accepted.json()["estimate"]["requests"] >= 13

        wait_for(lambda: sim.stats()["historical_requests"] - before >= 3, what="3 requests")
        cancelled = client.delete(f"{REFRESH}/{job_id}")
        assert cancelled.status_code == 200
        job = cancelled.json()
        sent_at_cancel = sim.stats()["historical_requests"]
        assert job["status"] == "cancelled"
        assert job["finished_at"] is not None
        result = job["results"][0]
        assert result["status"] == "cancelled"

        time.sleep(0.6)  # three more answers' time: nothing more goes out
        assert sim.stats()["historical_requests"] == sent_at_cancel
        assert sent_at_cancel - before < job["estimate"]["requests"]
        # What the job says it committed is what the cache holds.
        assert result["bars_fetched"] == result["bars_cached"] == cached_count(client, "INTC", "1m")
        assert result["bars_fetched"] >= 2 * 390

        # Cancelling again, or fetching it, shows the same finished job.
        assert client.delete(f"{REFRESH}/{job_id}").json()["status"] == "cancelled"
        assert client.get(f"{REFRESH}/{job_id}").json()["results"] == job["results"]


def test_cancelling_an_unknown_job_is_404(migrated_sqlite_url):
    with api_client(migrated_sqlite_url) as (client, _):
        response = client.delete(f"{REFRESH}/nope")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_cancel_needs_the_token_when_one_is_set(migrated_sqlite_url):
    with api_client(migrated_sqlite_url, API_TOKEN="s3cret") as (client, _):
        assert client.delete(f"{REFRESH}/nope").status_code == 401
        assert (
            client.delete(f"{REFRESH}/nope", headers={"Authorization": "Bearer s3cret"}).status_code
            == 404
        )


def test_a_failed_refresh_reports_the_chunks_it_committed(migrated_database_url, sim):
    """Two sessions of 1-minute bars arrive, then IBKR keeps refusing: 780 bars stay counted."""
    with api_client(migrated_database_url, sim.port) as (client, _):
        sim.arm_fault("pacing", count=50, after=2)
        job = client.post(
            REFRESH,
            params={"wait": "true"},
            json={"symbols": ["CSCO"], "data_type": "1m", "days_back": 7},
        ).json()
        result = job["results"][0]
        assert job["status"] == "failed"
        assert result["status"] == "error" and result["error"]["code"] == "pacing_violation"
        assert result["bars_fetched"] == result["bars_cached"] == cached_count(client, "CSCO", "1m")
        assert result["bars_fetched"] == 2 * 390
