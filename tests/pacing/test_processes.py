"""One IBKR budget for every process: real backends and CLIs against one simulator process.

Counts come from the simulator's statistics, which pace every connection of the gateway
together: a process that paced itself alone would break its rules.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from backend.devtools.pacing_run import PacingRun, Share, run_three_processes
from backend.storage.database import create_db_engine
from backend.storage.pacing_ledger import SLOTS

# Throughput and budget use are measured: run alone, after the rest (make test-python).
pytestmark = pytest.mark.load

# Windows shrunk a hundredfold: IBKR's 10 minutes take 6 s, its 15 s and 2 s 0.15 s and 0.02 s.
SCALED = 0.01
# The three processes' shares of a large fill: four symbols each, hourly bars over 480 days
# (17 to 21 requests a series, over 200 in all: more than three windows' budget).
LARGE_FILL = tuple(
    Share(symbols, "1h", 480)
    for symbols in (
        ["NVDA", "TSLA", "AAPL", "MSFT"],
        ["AMZN", "GOOGL", "META", "JPM"],
        ["KO", "XOM", "IBM", "SPY"],
    )
)
TARGET_USE = 0.9


def test_two_backends_and_a_cli_use_the_budget_and_break_no_rule(migrated_database_url, tmp_path):
    use, workers = run_three_processes(migrated_database_url, tmp_path, SCALED, LARGE_FILL)
    for worker in workers:
        if worker.kind == "cli":
            assert worker.process.returncode == 0, worker.log_tail()
        else:
            assert worker.job["status"] == "completed", worker.job
    assert use.historical_requests > 3 * use.limit
    assert use.pacing_violations == 0
    assert use.max_in_any_window <= use.limit
    assert len(use.full_windows) >= 3, use.windows
    assert use.use >= TARGET_USE, use.windows


def test_at_full_scale_two_processes_on_one_contract_keep_its_two_second_rule(
    migrated_database_url, tmp_path
):
    # IBKR's real windows. Two processes ask for NVDA's TRADES (one contract, exchange and tick
    # type) at once, in regular and in all hours (so each asks its own first-bar time), seven
    # requests or more between them: sent as they come, a sixth would fall within 2 s. The CLI
    # fills another contract beside them.
    shares = (
        Share(["NVDA"], "1m", 6),
        Share(["NVDA"], "2m", 8, use_rth=False),
        Share(["TSLA"], "5m", 10),
    )
    use, workers = run_three_processes(migrated_database_url, tmp_path, 1.0, shares)
    for worker in workers:
        if worker.kind == "cli":
            assert worker.process.returncode == 0, worker.log_tail()
        else:
            assert worker.job["status"] == "completed", worker.job
    assert use.requests_by_symbol["NVDA"] >= 6
    assert use.pacing_violations == 0


def _slots(database_url: str) -> int:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(SLOTS)).scalar_one()
    finally:
        engine.dispose()


def test_a_process_killed_holding_slots_blocks_nobody(migrated_database_url, tmp_path):
    # Windows of 3 s: the dead process's slots leave them soon.
    with PacingRun(migrated_database_url, tmp_path, SCALED / 2) as run:
        greedy = run.start_cli([s for share in LARGE_FILL for s in share.symbols])
        # Let it take the whole window's budget, then kill it: no shutdown code runs.
        for _ in range(600):
            if run.budget_use().historical_requests >= 60:
                break
            assert greedy.process.poll() is None, greedy.log_tail()
            time.sleep(0.05)
        greedy.kill()
        # It died holding most of a window's budget.
        assert _slots(migrated_database_url) >= 40
        # Another process gets its slots once the dead one's have left IBKR's windows.
        other = run.start_backend(["QQQ", "ORCL"], days_back=200)
        run.wait_healthy(other)
        run.submit(other)
        run.wait(other, timeout_s=60)
        assert other.job["status"] == "completed", other.job
        assert all(result["bars_fetched"] > 0 for result in other.job["results"])
        assert run.budget_use().pacing_violations == 0
