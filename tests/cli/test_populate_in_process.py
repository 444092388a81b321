"""The populate CLI in-process against the simulator: what it stores, skips, retries, reports."""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backend.market_data.calendar import expected_bar_timestamps
from backend.market_data.domain import BarSize
from backend.market_data.errors import CacheMissInDebugMode
from tests.cli.conftest import Cli, fast_container
from tests.support.app import make_settings
from tests.support.gateway import FIXED_NOW, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
# --days-back 365 at FIXED_NOW starts at midnight UTC a year earlier.
YEAR_OF_DAILY_BARS = len(
    expected_bar_timestamps("NASDAQ", BarSize.D1, datetime(2024, 12, 1, tzinfo=UTC), FIXED_NOW)
)


def test_new_symbol_is_fetched_and_stored(cli, sim):
    run = cli("--symbols", "nvda", "--exchange", "NASDAQ", "--days-back", "365", "--json")

    assert run.exit_code == 0, run.stderr
    nvda = run.series("NVDA")
    assert nvda["status"] == "ok"
    assert nvda["bars_before"] == 0
    assert nvda["bars_fetched"] == nvda["bars_after"] == YEAR_OF_DAILY_BARS
    assert cli.rows("NVDA") == YEAR_OF_DAILY_BARS
    summary = run.summary()
    assert (summary["series"], summary["ok"], summary["failed"]) == (1, 1, 0)
    assert summary["bars_fetched"] == YEAR_OF_DAILY_BARS
    assert sim.stats()["pacing_violations"] == 0


def test_rerun_while_fresh_fetches_nothing_and_never_contacts_the_gateway(cli, sim):
    assert cli("--symbols", "NVDA,TSLA", "--days-back", "365", "--json").exit_code == 0
    before = sim.stats()

    again = cli("--symbols", "NVDA,TSLA", "--days-back", "365", "--json")

    assert again.exit_code == 0
    for symbol in ("NVDA", "TSLA"):
        series = again.series(symbol)
        assert series["status"] == "fresh"
        assert series["bars_fetched"] == 0
        assert series["bars_before"] == series["bars_after"] == YEAR_OF_DAILY_BARS
        assert series["bars_skipped_fresh"] == YEAR_OF_DAILY_BARS
        assert cli.rows(symbol) == YEAR_OF_DAILY_BARS
    after = sim.stats()
    assert after["historical_requests"] == before["historical_requests"]
    assert after["connections_total"] == before["connections_total"]
    assert again.summary()["fresh"] == 2


def test_force_fetches_fresh_bars_again_without_duplicating_them(cli, sim):
    assert cli("--symbols", "NVDA", "--days-back", "365", "--json").exit_code == 0
    before = sim.stats()["historical_requests"]

    forced = cli("--symbols", "NVDA", "--days-back", "365", "--force", "--json")

    assert forced.exit_code == 0
    series = forced.series("NVDA")
    assert series["status"] == "ok"
    assert series["bars_fetched"] == YEAR_OF_DAILY_BARS
    assert series["bars_skipped_fresh"] == 0
    assert sim.stats()["historical_requests"] > before
    assert cli.rows("NVDA") == YEAR_OF_DAILY_BARS


def test_unknown_symbol_fails_alone_and_exits_1(cli, sim):
    run = cli("--symbols", "NVDA,ZZZZ,TSLA", "--days-back", "30", "--json")

    assert run.exit_code == 1
    zzzz = run.series("ZZZZ")
    assert zzzz["status"] == "error"
    assert zzzz["error"]["code"] == "unknown_contract"
    assert "ZZZZ" in zzzz["error"]["detail"]
    for symbol in ("NVDA", "TSLA"):
        assert run.series(symbol)["status"] == "ok"
        assert cli.rows(symbol) == run.series(symbol)["bars_after"] > 0
    assert cli.rows("ZZZZ") == 0
    summary = run.summary()
    assert (summary["ok"], summary["failed"], summary["exit_code"]) == (2, 1, 1)


def test_gateway_down_gives_one_clear_error_quickly(sqlite_cli):
    port = free_port()
    down = Cli(sqlite_cli.database_url, port)
    started = time.monotonic()

    run = down("--symbols", "NVDA,TSLA", "--days-back", "30")

    assert run.exit_code == 1
    assert time.monotonic() - started < 30
    assert f"127.0.0.1:{port}" in run.stderr
    assert "Check that IB Gateway or TWS is running" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert down.rows("NVDA") == 0


def test_dry_run_predicts_the_requests_and_contacts_nothing(sqlite_cli, sim):
    assert sqlite_cli("--symbols", "AAPL", "--data-type", "1h", "--days-back", "10").exit_code == 0
    aapl_cached = sqlite_cli.rows("AAPL")
    before = sim.stats()

    dry = sqlite_cli(
        "--symbols", "AAPL,MSFT", "--data-type", "1h", "--days-back", "40", "--dry-run", "--json"
    )

    assert dry.exit_code == 0
    plans = {e["symbol"]: e for e in dry.events() if e["event"] == "plan"}
    assert plans["AAPL"]["bars_cached"] == aapl_cached > 0
    assert plans["AAPL"]["missing"] and plans["AAPL"]["requests"] >= 1
    assert plans["MSFT"]["bars_cached"] == 0 and plans["MSFT"]["requests"] >= 2
    # The cached days are not asked for again: AAPL needs only the older part of the range.
    assert plans["AAPL"]["missing"][-1][1] <= (FIXED_NOW - timedelta(days=9)).isoformat()
    assert sim.stats() == before
    assert sqlite_cli.rows("MSFT") == 0

    run = sqlite_cli("--symbols", "AAPL,MSFT", "--data-type", "1h", "--days-back", "40", "--json")

    assert run.exit_code == 0
    requests = sim.stats()["historical_requests"] - before["historical_requests"]
    assert requests == plans["AAPL"]["requests"] + plans["MSFT"]["requests"]


def test_transient_pacing_violations_are_retried_for_the_series(sqlite_cli, sim):
    # Four pacing answers use up the client's retries for the chunk; the series retry gets through.
    sim.arm_fault("pacing", count=4, symbol="NVDA")

    run = sqlite_cli("--symbols", "NVDA,TSLA", "--days-back", "30")

    assert run.exit_code == 0, run.stdout
    assert "NVDA 1d: attempt 1 failed, retrying" in run.stdout
    assert "pacing" in run.stdout
    assert "NVDA 1d: ok" in run.stdout
    assert sqlite_cli.rows("NVDA") > 0


def test_many_series_share_the_pacing_budget_without_violations(sqlite_cli, sim):
    argv = ["--symbols", "AAPL,MSFT,NVDA,TSLA", "--data-type", "5m,1h", "--days-back", "30"]
    planned = sum(
        e["requests"] for e in sqlite_cli(*argv, "--dry-run", "--json").events()
        if e["event"] == "plan"
    )
    assert planned >= 20

    run = sqlite_cli(*argv, "--json")

    assert run.exit_code == 0
    stats = sim.stats()
    assert stats["pacing_violations"] == 0
    # No request was refused and repeated.
    assert stats["historical_requests"] == planned
    assert all(e["status"] == "ok" for e in run.events() if e["event"] == "series")


def test_progress_is_plain_lines_when_stdout_is_not_a_terminal(sqlite_cli):
    run = sqlite_cli("--symbols", "NVDA,TSLA", "--data-type", "1d,1h", "--days-back", "30")

    assert run.exit_code == 0
    out = run.stdout
    assert "\x1b[" not in out
    assert "plan NVDA 1d: 0 bars cached (0 fresh), 1 missing range, 1 request" in out
    assert "NVDA 1h: +" in out and "chunks" in out
    assert "TSLA 1h: ok," in out
    for column in ("symbol", "data_type", "bars before", "bars after", "fetched",
                   "skipped as fresh"):
        assert column in out
    assert "4 series: 4 fetched, 0 already fresh, 0 failed" in out


def test_the_command_a_debug_mode_miss_names_fills_the_cache(sqlite_cli):
    settings = make_settings(sqlite_cli.database_url, sqlite_cli.gateway_port, DEBUG_MODE=True)
    workflow_data = fast_container(settings).market_data_service()
    start = FIXED_NOW - timedelta(days=45)

    def read() -> object:
        return asyncio.run(
            workflow_data.get_or_fetch_market_data("NVDA", "NASDAQ", "1h", start, FIXED_NOW)
        )

    with pytest.raises(CacheMissInDebugMode) as miss:
        read()
    command = miss.value.populate_command
    assert command.startswith("make populate-cache ")

    argv = script_arguments_of(command)
    run = sqlite_cli(*argv, DEBUG_MODE=True)

    assert run.exit_code == 0, run.stdout + run.stderr
    # The debug-mode read that missed now finds every bar of its range in the cache.
    served = read().bars.timestamps()
    assert served == expected_bar_timestamps("NASDAQ", BarSize.H1, start, FIXED_NOW)


def script_arguments_of(make_command: str) -> list[str]:
    """The script's arguments that `make` would pass for this command line (make -n prints them)."""
    words = shlex.split(make_command)
    printed = subprocess.run(
        ["make", "-n", *words[1:]], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    joined = printed.replace("\\\n", " ")
    (line,) = [line for line in joined.splitlines() if "populate_market_cache.py" in line]
    arguments = shlex.split(line)
    return arguments[arguments.index("scripts/populate_market_cache.py") + 1 :]
