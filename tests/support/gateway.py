"""The simulated IB Gateway for tests: started in-process, inspected through its control API."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from backend.ibkr_simulator import SimulatedGateway

# A Monday evening after the close: the week before holds Thanksgiving (Thu 2025-11-27, closed)
# and its early close (Fri 2025-11-28, 13:00 ET).
FIXED_NOW = datetime(2025, 12, 1, 22, 0, tzinfo=UTC)
# Pacing windows shrunk by this factor in both the simulator and the client's scheduler.
PACING_SCALE = 0.02


class FakeClock:
    """The injected clock: tests move time instead of sleeping."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class RunningSimulator:
    gateway: SimulatedGateway

    @property
    def port(self) -> int:
        assert self.gateway.port is not None
        return self.gateway.port

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.control_port}"

    def stats(self) -> dict:
        return httpx.get(f"{self.control_url}/stats", timeout=5).json()

    def arm_fault(self, kind: str, count: int = 1, **extra) -> None:
        response = httpx.post(
            f"{self.control_url}/faults", json={"kind": kind, "count": count, **extra}, timeout=5
        )
        response.raise_for_status()

    def reset(self) -> None:
        httpx.post(f"{self.control_url}/reset", timeout=5).raise_for_status()


def start_simulator(now: datetime | None = FIXED_NOW, seed: int = 7) -> RunningSimulator:
    gateway = SimulatedGateway(seed=seed, pacing_scale=PACING_SCALE, now=now).start_in_thread()
    return RunningSimulator(gateway)


def free_port() -> int:
    """A loopback port with nothing listening: a gateway that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def evening(year: int, month: int, day: int, hour: int = 21) -> datetime:
    """A UTC moment of that day: by default after New York's close (16:00 ET is 20:00-21:00 UTC)."""
    return datetime(year, month, day, hour, tzinfo=UTC)


def move_clock(sim: RunningSimulator, clock: FakeClock, now: datetime) -> None:
    """Move the simulator's clock (its control API) and the cache's injected clock together."""
    httpx.post(
        f"{sim.control_url}/clock", json={"now": now.isoformat()}, timeout=5
    ).raise_for_status()
    clock.now = now
