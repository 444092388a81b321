"""Two backend processes on one database (PostgreSQL, then SQLite) and one simulated gateway,
as two replicas behind a load balancer: each answers for the other's jobs, a job whose process
is killed shows as interrupted on the other and resumes there with only what is missing, and a
cancel on the replica that does not run a job stops it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from backend.devtools.postgres import throwaway_postgres_database
from tests.support.databases import require_postgres
from tests.support.processes import (
    BackendProcess,
    app_environment,
    migrate,
    start_simulator_process,
)

PACING_SCALE = 0.02
REFRESH = "/api/market-data/cache/refresh"
HEARTBEAT_S = 0.3
# About fourteen sessions of 1-minute bars, one request each, each answered after a delay.
LONG_JOB = {"symbols": ["INTC"], "data_type": "1m", "days_back": 20}
ANSWER_DELAY_S = 0.25


@pytest.fixture(scope="module")
def gateway():
    simulator = start_simulator_process(PACING_SCALE)
    yield simulator
    simulator.stop()


@contextmanager
def shared_database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'cache.db'}"
        return
    require_postgres()
    with throwaway_postgres_database() as url:
        yield url


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def replicas(request, gateway, tmp_path_factory):
    """Two backends on one database, started once for the module; a test that kills one
    starts it again."""
    folder = tmp_path_factory.mktemp("replicas")
    with shared_database(request.param, folder) as url:
        migrate(url)
        started = []
        try:
            for name in ("a", "b"):
                env = app_environment(
                    url,
                    gateway,
                    IB_PACING_SCALE=str(PACING_SCALE),
                    JOB_HEARTBEAT_S=str(HEARTBEAT_S),
                    JOB_MISSED_HEARTBEATS="3",
                )
                started.append(BackendProcess(env, folder / f"backend-{name}.log").start())
            yield started
        finally:
            for backend in started:
                backend.stop()


@pytest.fixture
def running(replicas, gateway):
    """Both replicas up (one killed by an earlier test is started again), the gateway reset."""
    for backend in replicas:
        if backend.process is None or backend.process.poll() is not None:
            backend.start()
    httpx.post(f"{gateway.control_url}/reset", timeout=5).raise_for_status()
    return replicas


def slow_answers(gateway) -> None:
    httpx.post(
        f"{gateway.control_url}/faults",
        json={"kind": "delay", "count": 500, "seconds": ANSWER_DELAY_S},
        timeout=5,
    ).raise_for_status()


def sent(gateway) -> int:
    return gateway.stats()["historical_requests"]


def wait_for(condition, timeout_s: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_killed_replicas_job_is_interrupted_on_the_other_and_resumes_with_the_rest(
    running, gateway
):
    a, b = running
    slow_answers(gateway)
    before = sent(gateway)
    with a.client() as on_a, b.client() as on_b:
        accepted = on_a.post(REFRESH, json=LONG_JOB)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        estimate = accepted.json()["estimate"]["requests"]
        # The replica that did not start the job answers for it.
        seen = on_b.get(f"{REFRESH}/{job_id}").json()
        assert seen["status"] in ("queued", "running")
        assert seen["owner"] == accepted.json()["owner"]

        wait_for(lambda: sent(gateway) - before >= 4, what="4 requests from replica a")
        assert a.process is not None
        os.kill(a.process.pid, signal.SIGKILL)
        a.process.wait(timeout=10)
        sent_by_a = sent(gateway) - before
        assert sent_by_a < estimate

        # Three heartbeats later replica b shows the job as interrupted.
        job = wait_for(
            lambda: (
                (one := on_b.get(f"{REFRESH}/{job_id}").json())["status"] == "interrupted" and one
            ),
            timeout_s=10 * HEARTBEAT_S + 5,
            what="the job to show interrupted",
        )
        committed = job["runs"][0]["requests_sent"]
        # The heartbeat before the kill recorded what a had committed, a request or so behind.
        assert 1 <= committed <= sent_by_a

        at_resume = sent(gateway)
        resumed = on_b.post(f"{REFRESH}/{job_id}/resume", params={"wait": "true"})
        assert resumed.status_code == 200, resumed.text
        job = resumed.json()
        resume_sent = sent(gateway) - at_resume

    assert job["status"] == "completed"
    assert job["runs"][1]["resumed"] and job["runs"][1]["owner"] != job["runs"][0]["owner"]
    assert job["runs"][1]["requests_sent"] == resume_sent
    # Only what a had not committed was fetched again: at most the request in flight twice.
    assert sent_by_a + resume_sent <= estimate + 1
    assert resume_sent <= estimate - sent_by_a + 1
    assert resume_sent < estimate
    assert job["results"][0]["status"] == "ok"
    assert job["results"][0]["bars_cached"] >= estimate * 390 - 390


def test_a_cancel_on_the_other_replica_stops_the_job(running, gateway):
    a, b = running
    slow_answers(gateway)
    before = sent(gateway)
    with a.client() as on_a, b.client() as on_b:
        # Another symbol than the first test's, which the database now holds.
        job_id = on_a.post(REFRESH, json={**LONG_JOB, "symbols": ["AMD"]}).json()["job_id"]
        wait_for(lambda: sent(gateway) - before >= 2, what="2 requests")
        cancelled = on_b.delete(f"{REFRESH}/{job_id}")
        assert cancelled.status_code == 200
        job = cancelled.json()
        assert job["status"] == "cancelled", job
        assert job["cancel_requested"] is True
        at_cancel = sent(gateway)
        time.sleep(3 * ANSWER_DELAY_S)
        # The request in flight may still go out; nothing after it.
        assert sent(gateway) - at_cancel <= 1
        assert on_a.get(f"{REFRESH}/{job_id}").json()["status"] == "cancelled"
        assert job["results"][0]["status"] == "cancelled"
