"""Several processes filling one cache through one gateway: the shared pacing budget measured.

Starts the simulated gateway (pacing windows scaled), backends (`python -m backend.server`, each
given a refresh job) and populate CLIs (`python -m backend.cli.populate`), all on one database
and each with its own client id, then reads from the gateway's statistics how much of IBKR's
overall window they used together and whether any request broke a pacing rule. Shared by the
pacing tests and the `pacing_budget_use` benchmark.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from backend.ibkr_simulator.launcher import (
    PROJECT_ROOT,
    SimulatorProcess,
    start_simulator_process,
    stop_process,
)

STARTUP_TIMEOUT_S = 30.0
FINISHED = {"completed", "partial", "failed", "cancelled", "interrupted"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class BudgetUse:
    """What the gateway counted: weight accepted per consecutive overall window."""

    windows: list[int]
    limit: int
    window_s: float
    max_in_any_window: int
    pacing_violations: int
    historical_requests: int
    requests_by_symbol: dict[str, int]

    @property
    def full_windows(self) -> list[int]:
        # The last window may have been cut short by the work running out.
        return self.windows[:-1]

    @property
    def use(self) -> float:
        """Requests per full window over the limit: 1.0 is every slot IBKR allows."""
        full = self.full_windows
        return sum(full) / (len(full) * self.limit) if full else 0.0

    @classmethod
    def from_stats(cls, stats: dict) -> BudgetUse:
        pacing = stats["pacing"]
        return cls(
            windows=list(pacing["requests_per_window"]),
            limit=pacing["overall_limit"],
            window_s=pacing["overall_window_seconds"],
            max_in_any_window=pacing["max_in_any_window"],
            pacing_violations=stats["pacing_violations"],
            historical_requests=stats["historical_requests"],
            requests_by_symbol=dict(stats["requests_by_symbol"]),
        )


@dataclass
class Worker:
    """One process filling the cache: a backend running a refresh job, or a populate CLI."""

    kind: str
    symbols: list[str]
    data_type: str
    days_back: int
    process: subprocess.Popen
    log_path: Path
    url: str | None = None
    use_rth: bool = True
    job_id: str | None = None
    job: dict | None = None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine or container dies."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class PacingRun:
    """A gateway, a database and the workers started against them."""

    database_url: str
    workdir: Path
    pacing_scale: float
    data_type: str = "1h"
    days_back: int = 600
    simulator: SimulatorProcess | None = None
    workers: list[Worker] = field(default_factory=list)
    _client_ids: int = 900

    def __enter__(self) -> PacingRun:
        self.simulator = start_simulator_process(self.pacing_scale)
        return self

    def __exit__(self, *_exc: object) -> None:
        for worker in self.workers:
            worker.stop()
        if self.simulator is not None:
            self.simulator.stop()

    def environment(self) -> dict[str, str]:
        assert self.simulator is not None
        # Ten apart: the CLI connects as IB_CLIENT_ID + 1.
        self._client_ids += 10
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "DEBUG_MODE": "false",
            "CACHE_ENABLED": "true",
            "CACHE_EXCHANGE": "NASDAQ",
            "IB_HOST": "127.0.0.1",
            "IB_PORT": str(self.simulator.port),
            "IB_CLIENT_ID": str(self._client_ids),
            "IB_CONNECT_TIMEOUT": "5",
            "IB_PACING_SCALE": str(self.pacing_scale),
            "API_TOKEN": "",
            "LOG_LEVEL": "WARNING",
        }

    def start_backend(
        self,
        symbols: Sequence[str],
        data_type: str | None = None,
        days_back: int | None = None,
        use_rth: bool = True,
    ) -> Worker:
        """A backend process; `wait_healthy` waits for it, `submit` gives it its refresh job."""
        port = free_port()
        log_path = self.workdir / f"backend-{port}.log"
        process = self._spawn(
            ["-m", "backend.server", "--host", "127.0.0.1", "--port", str(port)], log_path
        )
        worker = Worker(
            "backend",
            list(symbols),
            data_type or self.data_type,
            days_back or self.days_back,
            process,
            log_path,
            f"http://127.0.0.1:{port}",
            use_rth=use_rth,
        )
        self.workers.append(worker)
        return worker

    def _spawn(self, arguments: list[str], log_path: Path) -> subprocess.Popen:
        """This Python running `arguments` in the project, its output appended to log_path."""
        with log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, *arguments],
                cwd=PROJECT_ROOT,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self, worker: Worker) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if worker.process.poll() is not None:
                raise RuntimeError(f"the backend exited at start-up:\n{worker.log_tail()}")
            try:
                if httpx.get(f"{worker.url}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the backend did not answer /api/health:\n{worker.log_tail()}")

    def submit(self, worker: Worker) -> None:
        response = httpx.post(
            f"{worker.url}/api/market-data/cache/refresh",
            json={
                "symbols": worker.symbols,
                "data_type": worker.data_type,
                "days_back": worker.days_back,
                "use_rth": worker.use_rth,
            },
            timeout=30,
        )
        if response.status_code not in (200, 202):
            raise RuntimeError(f"refresh refused: {response.status_code} {response.text}")
        worker.job_id = response.json()["job_id"]

    def start_cli(
        self,
        symbols: Sequence[str],
        data_type: str | None = None,
        days_back: int | None = None,
        use_rth: bool = True,
    ) -> Worker:
        data_type, days_back = data_type or self.data_type, days_back or self.days_back
        log_path = self.workdir / f"cli-{len(self.workers)}.log"
        process = self._spawn(
            [
                "-m",
                "backend.cli.populate",
                "--symbols",
                ",".join(symbols),
                "--data-type",
                data_type,
                "--days-back",
                str(days_back),
                "--rth" if use_rth else "--all-hours",
                "--json",
            ],
            log_path,
        )
        worker = Worker(
            "cli", list(symbols), data_type, days_back, process, log_path, use_rth=use_rth
        )
        self.workers.append(worker)
        return worker

    def wait(self, worker: Worker, timeout_s: float = 120) -> None:
        """Until the CLI has exited or the backend's job has finished."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if worker.kind == "cli":
                if worker.process.poll() is not None:
                    return
            else:
                job = httpx.get(
                    f"{worker.url}/api/market-data/cache/refresh/{worker.job_id}", timeout=10
                ).json()
                if job["status"] in FINISHED:
                    worker.job = job
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{worker.kind} did not finish:\n{worker.log_tail()}")

    def budget_use(self) -> BudgetUse:
        assert self.simulator is not None
        return BudgetUse.from_stats(self.simulator.stats())


@dataclass(frozen=True)
class Share:
    """One worker's part of a fill: its symbols, bar size and days back."""

    symbols: Sequence[str]
    data_type: str = "1h"
    days_back: int = 600
    use_rth: bool = True


def run_three_processes(
    database_url: str, workdir: Path, pacing_scale: float, shares: Sequence[Share]
) -> tuple[BudgetUse, list[Worker]]:
    """Two backends (a refresh job each) and one CLI at once, on the three shares in order.

    Returns what the gateway counted and the workers, finished.
    """
    first, second, third = shares
    with PacingRun(database_url, workdir, pacing_scale) as run:
        backends = [
            run.start_backend(share.symbols, share.data_type, share.days_back, share.use_rth)
            for share in (first, second)
        ]
        for backend in backends:
            run.wait_healthy(backend)
        cli = run.start_cli(third.symbols, third.data_type, third.days_back, third.use_rth)
        for backend in backends:
            run.submit(backend)
        for worker in (*backends, cli):
            run.wait(worker)
        return run.budget_use(), [*backends, cli]
