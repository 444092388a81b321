"""The shared pacing budget's use by three processes at once; prints one JSON object per line.

Run with `make bench`. Starts the simulated gateway as a process with its pacing windows scaled
by 0.01 (IBKR's 10 minutes take 6 s), then on one database two backends (`python -m
backend.server`, each given a refresh job) and a populate CLI, each filling four symbols of its
own with hourly bars over 600 days (21 requests a series, 252 in all, over four windows'
budget). The gateway counts the requests it accepted in consecutive overall windows from the
first; the last window, cut short when the work runs out, is left out. On PostgreSQL (a
throwaway database next to TEST_DATABASE_URL), then on a SQLite file.

Figures (target: a lower bound, PASS or MISS):
  pacing_budget_use          requests accepted per full overall window over IBKR's 60, three
                             processes on PostgreSQL (target >= 0.9); the detail has every
                             window's count, the most in any sliding window and the violations
  pacing_budget_use_sqlite   the same on SQLite (target >= 0.9)
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from backend.devtools.bench import parse_help
from backend.devtools.migrations import migrate_to_head
from backend.devtools.pacing_run import BudgetUse, Share, run_three_processes
from backend.devtools.postgres import throwaway_postgres_database

PACING_SCALE = 0.01
SHARES = tuple(
    Share(symbols, "1h", 600)
    for symbols in (
        ["NVDA", "TSLA", "AAPL", "MSFT"],
        ["AMZN", "GOOGL", "META", "JPM"],
        ["KO", "XOM", "IBM", "SPY"],
    )
)
TARGET = 0.9


def main(argv: Sequence[str] | None = None) -> None:
    parse_help(__doc__, argv)
    with tempfile.TemporaryDirectory(prefix="bench_pacing_") as scratch:
        with throwaway_postgres_database("mdc_bench") as url:
            migrate_to_head(url)
            emit_use("pacing_budget_use", run(url, Path(scratch)))
        sqlite_url = f"sqlite:///{scratch}/cache.db"
        migrate_to_head(sqlite_url)
        emit_use("pacing_budget_use_sqlite", run(sqlite_url, Path(scratch)))


def run(url: str, workdir: Path) -> BudgetUse:
    use, workers = run_three_processes(url, workdir, PACING_SCALE, SHARES)
    for worker in workers:
        failed = worker.process.returncode if worker.kind == "cli" else None
        if failed or (worker.job is not None and worker.job["status"] != "completed"):
            raise RuntimeError(f"a {worker.kind} did not fill its share:\n{worker.log_tail()}")
    return use


def emit_use(name: str, use: BudgetUse) -> None:
    record = {
        "name": name,
        "value": round(use.use, 3),
        "unit": "ratio",
        # IBKR's budget is the baseline: 60 requests in every window.
        "baseline": 1.0,
        "target": TARGET,
        "result": "PASS" if use.use >= TARGET else "MISS",
        "detail": {
            "processes": "2 backends + 1 CLI",
            "window_s": use.window_s,
            "limit": use.limit,
            "requests_per_window": use.windows,
            "full_windows": len(use.full_windows),
            "max_in_any_window": use.max_in_any_window,
            "pacing_violations": use.pacing_violations,
            "historical_requests": use.historical_requests,
        },
    }
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
