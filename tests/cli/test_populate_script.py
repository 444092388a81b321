"""The real script in its own process, on today's clock, against a simulator keeping real time."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import cached_rows
from tests.support.gateway import free_port, start_simulator
from tests.support.migrations import migrate_to_head

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ["scripts/populate_market_cache.py"]
MODULE = ["-m", "scripts.populate_market_cache"]
_client_ids = itertools.count(700)


@pytest.fixture(scope="module")
def live_sim():
    """A simulator on the real clock: the script's process has no fake clock."""
    running = start_simulator(now=None)
    yield running
    running.gateway.stop()


@pytest.fixture
def database_file(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    migrate_to_head(url)
    return url


def script_env(database_url: str, gateway_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "IB_HOST": "127.0.0.1",
        "IB_PORT": str(gateway_port),
        "IB_CLIENT_ID": str(next(_client_ids)),
        "IB_CONNECT_TIMEOUT": "3",
    }


def run_script(entry: list[str], args: list[str], env: dict[str, str]):
    return subprocess.run(
        [sys.executable, *entry, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_script_fills_the_cache_and_a_rerun_as_module_fetches_nothing(live_sim, database_file):
    live_sim.reset()
    args = ["--symbols", "NVDA", "--data-type", "1d", "--days-back", "10", "--json"]

    first = run_script(SCRIPT, args, script_env(database_file, live_sim.port))

    assert first.returncode == 0, first.stderr
    series, summary = json_lines(first.stdout)
    assert series["event"] == "series" and series["status"] == "ok"
    assert series["bars_fetched"] == series["bars_after"] == cached_rows(database_file, "NVDA") > 0
    assert summary == {**summary, "event": "summary", "series": 1, "failed": 0, "exit_code": 0}
    requests = live_sim.stats()["historical_requests"]
    assert requests >= 1

    again = run_script(MODULE, args, script_env(database_file, live_sim.port))

    assert again.returncode == 0, again.stderr
    series, summary = json_lines(again.stdout)
    assert (series["status"], series["bars_fetched"]) == ("fresh", 0)
    assert summary["bars_fetched"] == 0
    assert live_sim.stats()["historical_requests"] == requests
    assert cached_rows(database_file, "NVDA") == series["bars_after"]


def test_gateway_down_exits_1_with_what_to_check_and_no_traceback(database_file):
    port = free_port()
    started = time.monotonic()

    result = run_script(SCRIPT, ["--symbols", "NVDA", "--days-back", "10"],
                        script_env(database_file, port))

    assert result.returncode == 1
    assert time.monotonic() - started < 60
    assert f"IB Gateway at 127.0.0.1:{port} is unavailable" in result.stderr
    assert "Check that IB Gateway or TWS is running" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_ctrl_c_stops_cleanly_and_keeps_committed_chunks(live_sim, database_file):
    live_sim.reset()
    # MSFT's first request hangs, so the run is still going when AAPL is done.
    live_sim.arm_fault("delay", count=1, symbol="MSFT", seconds=30)
    process = subprocess.Popen(
        [sys.executable, *SCRIPT, "--symbols", "AAPL,MSFT", "--data-type", "1h",
         "--days-back", "60"],
        cwd=REPO_ROOT,
        env=script_env(database_file, live_sim.port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stdout:
            if line.startswith("AAPL 1h: ok"):
                break
        else:
            pytest.fail(f"the run ended early: {process.stderr.read()}")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()

    assert process.returncode == 130
    committed = re.search(r"interrupted; (\d+) chunks committed are kept", stderr)
    assert committed, stderr
    assert int(committed.group(1)) >= 2
    assert "Traceback" not in stdout + stderr
    aapl_bars = int(re.search(r"AAPL 1h: ok, (\d+) bars fetched", line).group(1))
    assert cached_rows(database_file, "AAPL") == aapl_bars > 0
    assert cached_rows(database_file, "MSFT") == 0
