"""The real commands as subprocesses: simulated gateway, migrations, populate CLI and backend."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from backend.ibkr_simulator import launcher
from backend.ibkr_simulator.launcher import SimulatorProcess, stop_process
from tests.support.gateway import PACING_SCALE, free_port

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 30.0
# Above the ids the in-process test containers use: the gateway refuses a clientId in use.
_client_ids = itertools.count(700)


def new_client_id() -> str:
    """An IB_CLIENT_ID no other process of this test run has used."""
    return str(next(_client_ids))


def start_simulator_process(
    pacing_scale: float = PACING_SCALE, instruments: Path | None = None
) -> SimulatorProcess:
    """The simulator process with the tests' shrunk pacing windows."""
    return launcher.start_simulator_process(pacing_scale, instruments)


def app_environment(
    database_url: str, simulator: SimulatorProcess, **overrides: str
) -> dict[str, str]:
    """The environment of the backend and the CLI: every setting explicit, whatever .env says."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG_MODE": "false",
        "CACHE_ENABLED": "true",
        "CACHE_SYMBOLS": "NVDA,TSLA",
        "CACHE_EXCHANGE": "NASDAQ",
        "CACHE_TTL_HOURS": "24",
        "IB_HOST": "127.0.0.1",
        "IB_PORT": str(simulator.port),
        "IB_CLIENT_ID": new_client_id(),
        "IB_SIMULATOR_CONTROL_URL": simulator.control_url,
        # Blank means unset, overriding any API_TOKEN in a developer's .env.
        "API_TOKEN": "",
        "LOG_LEVEL": "WARNING",
    }
    env.update(overrides)
    return env


def run_command(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def migrate(database_url: str) -> None:
    """`python -m alembic -c alembic/alembic.ini upgrade head`, as `make migrate` runs it."""
    result = run_command(
        ["-m", "alembic", "-c", "alembic/alembic.ini", "upgrade", "head"],
        {**os.environ, "DATABASE_URL": database_url},
    )
    assert result.returncode == 0, f"migration failed:\n{result.stderr}"


@dataclass
class BackendProcess:
    """`python -m backend.server` on a free port; the log goes to a file beside it.

    `server_args` are extra options of backend.server, e.g. ["--http", "h11", "--loop", "asyncio"].
    """

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    server_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BackendProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "backend.server",
                    "--host", "127.0.0.1", "--port", str(self.port), *self.server_args,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the backend exited at start-up:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the backend did not answer /api/health:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Live workflows and refreshes wait for the gateway; allow them time.
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def __enter__(self) -> BackendProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
