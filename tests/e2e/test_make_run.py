"""`make run`'s launcher (scripts/run_local.py) as a user starts it and stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.gateway import free_port
from tests.support.migrations import migrate_to_head
from tests.support.processes import ROOT, new_client_id

STARTUP_TIMEOUT_S = 60.0


def children_running(parent_pid: int, command_part: str) -> list[int]:
    """Pids of the live child processes of `parent_pid` whose command line holds `command_part`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # "pid (name) state ppid ...": the name may hold spaces, so split after its ")".
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(ppid) == parent_pid and state != "Z" and command_part in command:
            found.append(int(entry.name))
    return found


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until_served(port: int, launcher: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert launcher.poll() is None, f"make run exited at start-up:\n{log.read_text()}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"make run did not serve /api/health:\n{log.read_text()}")


def test_sigterm_stops_the_simulator_it_started(tmp_path):
    database_url = f"sqlite:///{tmp_path / 'market_data.db'}"
    migrate_to_head(database_url)
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "USE_SIMULATOR": "1",
        "DATABASE_URL": database_url,
        "DEBUG_MODE": "false",
        "CACHE_SYMBOLS": "NVDA",
        "CACHE_EXCHANGE": "NASDAQ",
        "IB_CLIENT_ID": new_client_id(),
        "API_TOKEN": "",
        "LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "make-run.log"
    with log.open("wb") as output:
        launcher = subprocess.Popen(
            [sys.executable, "scripts/run_local.py"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    simulators: list[int] = []
    try:
        wait_until_served(port, launcher, log)
        simulators = children_running(launcher.pid, "backend.ibkr_simulator")
        assert len(simulators) == 1, log.read_text()

        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=30)

        deadline = time.monotonic() + 10
        while is_running(simulators[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not is_running(simulators[0]), "the simulated gateway outlived make run"
        assert "Traceback" not in log.read_text()
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(timeout=10)
        for pid in simulators:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
