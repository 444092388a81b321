"""--resume JOB_ID: the CLI takes over an interrupted refresh job and fetches only the rest."""

from __future__ import annotations

import time

import pytest

from tests.cli.conftest import cached_rows, run_cli
from tests.support.cache_api import api_client
from tests.support.migrations import migrate_to_head

REFRESH = "/api/market-data/cache/refresh"


def interrupted_job(database_url: str, sim) -> tuple[str, int, int]:
    """A job of the API stopped by the app's shutdown: (job id, estimate, requests it sent)."""
    sim.arm_fault("delay", count=200, seconds=0.15)
    before = sim.stats()["historical_requests"]
    with api_client(database_url, sim.port) as (client, _):
        job = client.post(
            REFRESH, json={"symbols": ["CSCO"], "data_type": "1m", "days_back": 20}
        ).json()
        deadline = time.monotonic() + 20
        while sim.stats()["historical_requests"] - before < 4:
            assert time.monotonic() < deadline, "the job sent nothing"
            time.sleep(0.02)
    return job["job_id"], job["estimate"]["requests"], sim.stats()["historical_requests"] - before


def test_resume_fetches_only_what_the_interrupted_job_lacked(sqlite_url, sim):
    migrate_to_head(sqlite_url)
    job_id, estimate, first_run = interrupted_job(sqlite_url, sim)
    before = sim.stats()["historical_requests"]

    run = run_cli(["--resume", job_id, "--json"], sqlite_url, sim.port)

    sent = sim.stats()["historical_requests"] - before
    assert run.exit_code == 0, run.stderr
    assert run.series("CSCO", "1m")["status"] == "ok"
    assert 0 < sent <= estimate - first_run + 1
    assert f"resumed job {job_id}: {sent} requests sent" in run.stderr
    assert run.summary()["exit_code"] == 0
    # The whole range is cached now.
    with api_client(sqlite_url, sim.port) as (client, _):
        job = client.get(f"{REFRESH}/{job_id}").json()
    assert job["status"] == "completed"
    assert job["results"][0]["bars_cached"] == cached_rows(sqlite_url, "CSCO", "1m")

    # Completed: nothing to resume, exit 2 with the reason.
    again = run_cli(["--resume", job_id], sqlite_url, sim.port)
    assert again.exit_code == 2
    assert "completed" in again.stderr


def test_resume_of_an_unknown_job_or_with_request_flags_exits_2(sqlite_url, sim, capsys):
    migrate_to_head(sqlite_url)
    unknown = run_cli(["--resume", "abc123"], sqlite_url, sim.port)
    assert unknown.exit_code == 2 and "no refresh job abc123" in unknown.stderr
    with pytest.raises(SystemExit) as refused:
        run_cli(["--resume", "abc123", "--symbols", "NVDA"], sqlite_url, sim.port)
    assert refused.value.code == 2
    assert "not with --resume" in capsys.readouterr().err
