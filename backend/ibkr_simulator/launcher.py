"""Starts the simulated gateway as its own process on free ports (tests, benches, `make run`)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# The folder holding the `backend` package, where `python -m backend.ibkr_simulator` runs from.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def stop_process(process: subprocess.Popen, timeout_s: float = 10) -> None:
    """SIGTERM, then SIGKILL if the process has not exited after `timeout_s`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass
class SimulatorProcess:
    """`python -m backend.ibkr_simulator` running on the real clock."""

    process: subprocess.Popen
    port: int
    control_url: str

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.control_url}/stats", timeout=5) as response:
            return json.load(response)

    def stop(self) -> None:
        stop_process(self.process)


def start_simulator_process(
    pacing_scale: float | None = None, instruments: Path | None = None
) -> SimulatorProcess:
    """The simulator on free loopback ports, once it listens.

    `pacing_scale` shrinks its pacing windows (default: IBKR's own); `instruments` replaces its
    bundled instrument list with a JSON file.
    """
    command = [sys.executable, "-m", "backend.ibkr_simulator", "--port", "0", "--control-port", "0"]
    if pacing_scale is not None:
        command += ["--pacing-scale", str(pacing_scale)]
    if instruments:
        command += ["--instruments", str(instruments)]
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
    except BaseException:
        # Interrupted while it starts (Ctrl-C, SIGTERM): it must not outlive the caller.
        stop_process(process)
        raise
    if "listening" not in line:
        stop_process(process)
        raise RuntimeError(f"the simulated gateway did not start: {line.strip() or 'no output'}")
    # "ibkr-simulator listening api=127.0.0.1:PORT control=127.0.0.1:PORT"
    addresses = dict(part.split("=", 1) for part in line.split() if "=" in part)
    return SimulatorProcess(
        process,
        port=int(addresses["api"].rsplit(":", 1)[1]),
        control_url=f"http://{addresses['control']}",
    )
