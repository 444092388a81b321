"""Refresh jobs live in the database: they survive a restart, an interrupted one resumes with
only what is missing, old ones are pruned, and the budget policy refuses or queues big ones."""

import time

import pytest

from tests.support.cache_api import api_client
from tests.support.gateway import FakeClock

CACHE = "/api/market-data/cache"
REFRESH = f"{CACHE}/refresh"
# About fourteen sessions of 1-minute bars: one request each.
LONG_JOB = {"symbols": ["INTC"], "data_type": "1m", "days_back": 20}


def wait_for(condition, timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def sent(sim) -> int:
    return sim.stats()["historical_requests"]


def cached_count(client, symbol: str, data_type: str) -> int:
    return client.get(CACHE, params={"symbol": symbol, "data_type": data_type}).json()["count"]


def test_a_job_stopped_by_a_restart_is_interrupted_and_resumes_with_only_the_rest(
    migrated_database_url, sim
):
    sim.arm_fault("delay", count=200, seconds=0.15)
    before = sent(sim)
    with api_client(migrated_database_url, sim.port) as (client, _):
        accepted = client.post(REFRESH, json=LONG_JOB)
        assert accepted.status_code == 202
        job_id = accepted.json()["job_id"]
        estimate = accepted.json()["estimate"]["requests"]
        assert estimate >= 12
        wait_for(lambda: sent(sim) - before >= 4, what="4 requests")
    # The app has shut down: its job is recorded interrupted, with what it committed.
    first_run = sent(sim) - before
    assert first_run < estimate

    with api_client(migrated_database_url, sim.port) as (client, container):
        job = client.get(f"{REFRESH}/{job_id}").json()
        assert job["status"] == "interrupted"
        assert job["finished_at"] is None and job["results"] == []
        committed = job["runs"][0]["requests_sent"]
        assert first_run - 1 <= committed <= first_run
        bars_before = cached_count(client, "INTC", "1m")
        assert bars_before >= committed * 390 - 390

        at_resume = sent(sim)
        resumed = client.post(f"{REFRESH}/{job_id}/resume", params={"wait": "true"})
        assert resumed.status_code == 200, resumed.text
        job = resumed.json()
        resume_sent = sent(sim) - at_resume

        assert job["status"] == "completed"
        assert [run["resumed"] for run in job["runs"]] == [False, True]
        assert job["runs"][1]["owner"] == container.instance_id() != job["runs"][0]["owner"]
        # Only the sessions the first run had not committed were asked for.
        assert job["runs"][1]["requests_sent"] == resume_sent
        assert job["runs"][1]["estimated_requests"] == resume_sent
        assert resume_sent == estimate - committed
        assert job["requests_sent"] == estimate
        result = job["results"][0]
        assert result["status"] == "ok"
        assert result["bars_cached"] == cached_count(client, "INTC", "1m")
        assert result["bars_fetched"] == result["bars_cached"] - bars_before

        # A completed job has nothing left to resume.
        again = client.post(f"{REFRESH}/{job_id}/resume")
        assert again.status_code == 409
        assert again.json()["code"] == "job_not_resumable"


def test_finished_jobs_survive_a_restart(migrated_sqlite_url, sim):
    body = {"symbols": ["NVDA", "NOPE"], "data_type": "1d", "days_back": 10}
    with api_client(migrated_sqlite_url, sim.port) as (client, _):
        job = client.post(REFRESH, params={"wait": "true"}, json=body).json()
    assert job["status"] == "partial"
    with api_client(migrated_sqlite_url, sim.port) as (client, _):
        again = client.get(f"{REFRESH}/{job['job_id']}").json()
    assert again == job
    assert again["results"][1]["error"]["code"] == "unknown_contract"
    assert again["results"][1]["error"]["status_code"] == 404


def test_old_finished_jobs_are_pruned_by_age(migrated_sqlite_url, sim):
    clock = FakeClock()
    body = {"symbols": ["NVDA"], "data_type": "1d", "days_back": 5}
    with api_client(migrated_sqlite_url, sim.port, clock=clock, JOB_KEEP_DAYS=2) as (client, _):
        old = client.post(REFRESH, params={"wait": "true"}, json=body).json()["job_id"]
        clock.advance(days=1)
        kept = client.post(REFRESH, params={"wait": "true"}, json=body).json()["job_id"]
        clock.advance(days=1, hours=1)
        new = client.post(REFRESH, params={"wait": "true"}, json=body).json()["job_id"]
        assert client.get(f"{REFRESH}/{old}").status_code == 404
        assert client.get(f"{REFRESH}/{kept}").status_code == 200
        assert client.get(f"{REFRESH}/{new}").status_code == 200


@pytest.fixture
def migrated_sqlite_url(sqlite_url) -> str:
    from tests.support.migrations import migrate_to_head

    migrate_to_head(sqlite_url)
    return sqlite_url


def test_refuse_policy_counts_the_jobs_already_queued(migrated_database_url, sim):
    sim.arm_fault("delay", count=200, seconds=0.1)
    with api_client(migrated_database_url, sim.port, REQUEST_CEILING=100, JOB_QUEUE_CEILING=15) as (
        client,
        _,
    ):
        first = client.post(REFRESH, json=LONG_JOB).json()
        queued = first["estimate"]["requests"]
        before = sent(sim)
        second = {"symbols": ["AMD"], "data_type": "1m", "days_back": 10}
        refused = client.post(REFRESH, json=second)
        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert body["code"] == "request_budget_exceeded"
        assert body["estimate"]["queued_requests"] == queued
        assert body["estimate"]["ceiling"] == 15
        assert queued + body["estimate"]["requests"] > 15 >= body["estimate"]["requests"]
        assert "JOB_QUEUE_CEILING" in body["detail"]
        # Nothing of the refused job was sent: only the first job's requests went out.
        assert sent(sim) - before <= queued
        assert client.delete(f"{REFRESH}/{first['job_id']}").json()["status"] == "cancelled"
        # With the first job gone the same request fits.
        assert client.post(REFRESH, json=second).status_code == 202


def test_queue_policy_accepts_big_jobs_and_runs_them_in_turn(migrated_sqlite_url, sim):
    sim.arm_fault("delay", count=200, seconds=0.05)
    settings = {
        "REQUEST_BUDGET_POLICY": "queue",
        "REQUEST_CEILING": 3,
        "JOB_QUEUE_CEILING": 20,
        "JOB_HEARTBEAT_S": 0.2,
    }
    clock = FakeClock()
    with api_client(migrated_sqlite_url, sim.port, clock=clock, **settings) as (client, container):
        # Above REQUEST_CEILING, but nothing is ahead of it: it starts at once.
        first = client.post(REFRESH, json=LONG_JOB)
        assert first.status_code == 202
        assert first.json()["estimate"]["requests"] > 3
        assert first.json()["estimate"]["wait_s"] is None
        # Jobs are queued in the order they were created.
        clock.advance(seconds=0.1)
        # Above the ceiling with a job ahead: queued, told how long the job ahead takes.
        second = client.post(REFRESH, json={"symbols": ["AMD"], "data_type": "1m", "days_back": 10})
        assert second.status_code == 202
        waiting = second.json()
        limits = container.pacing().limits
        per_request_s = limits.global_window_s / limits.global_max
        assert waiting["status"] == "queued"
        assert waiting["estimate"]["wait_s"] == pytest.approx(
            first.json()["estimate"]["requests"] * per_request_s, abs=0.1
        )
        assert client.get(f"{REFRESH}/{waiting['job_id']}").json()["status"] == "queued"

        def finished(job_id: str) -> dict | None:
            job = client.get(f"{REFRESH}/{job_id}").json()
            return job if job["finished_at"] else None

        wait_for(lambda: finished(waiting["job_id"]), what="the queued job to finish")
        one, two = finished(first.json()["job_id"]), finished(waiting["job_id"])
        assert (one["status"], two["status"]) == ("completed", "completed")
        assert two["started_at"] >= one["finished_at"]
