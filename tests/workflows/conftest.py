"""Workflow tests. WORKFLOW_MODE=debug|live picks one mode (make test-debug, make test-live);
unset, both run.

Live-mode tests run against the simulator unless TEST_IB_HOST and TEST_IB_PORT name a real gateway
(a paper account with a read-only API); tests that inject faults always use the simulator.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pytest
from dependency_injector import providers

from backend.containers import Container
from backend.ibkr.client import IBKRClient
from backend.ibkr.pacing import PacingScheduler
from backend.storage.types import utc_now
from tests.support.gateway import FakeClock, RunningSimulator

MODES = ("debug", "live")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "workflow_mode(mode): the data mode a workflow test covers, debug or live"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = os.environ.get("WORKFLOW_MODE", "").strip().lower()
    if not selected:
        return
    if selected not in MODES:
        raise pytest.UsageError(f"WORKFLOW_MODE must be debug or live (got {selected!r})")
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("workflow_mode")
        (drop if marker is not None and marker.args[0] != selected else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@dataclass
class LiveGateway:
    """Where live-mode workflows fetch from: the simulator, or a real gateway when configured."""

    host: str
    port: int
    simulator: RunningSimulator | None
    clock: Callable[[], datetime]
    symbols: list[str]
    # Real gateway only: IBKR's own pacing limits, one budget for the whole run as in production.
    pacing: PacingScheduler | None = None

    def container(self, build_container, database_url: str, **overrides) -> Container:
        container = build_container(
            database_url, self.port, self.clock, IB_HOST=self.host, **overrides
        )
        if self.pacing is not None:
            container.pacing.override(providers.Object(self.pacing))
            container.ibkr_client.override(
                providers.Singleton(
                    IBKRClient,
                    connection=container.ib_connection,
                    pacing=container.pacing,
                    clock=container.clock,
                )
            )
        return container

    def historical_requests(self) -> int | None:
        return self.simulator.stats()["historical_requests"] if self.simulator else None


@pytest.fixture(scope="session")
def real_gateway_pacing() -> PacingScheduler:
    return PacingScheduler()


@pytest.fixture
def live_gateway(request) -> LiveGateway:
    host, port = os.environ.get("TEST_IB_HOST"), os.environ.get("TEST_IB_PORT")
    if host and port:
        symbols = os.environ.get("TEST_IB_SYMBOLS", "NVDA,TSLA").split(",")
        # A real gateway answers for today, so the clock is the real one.
        return LiveGateway(
            host,
            int(port),
            None,
            utc_now,
            [symbol.strip().upper() for symbol in symbols],
            request.getfixturevalue("real_gateway_pacing"),
        )
    sim = request.getfixturevalue("sim")
    return LiveGateway("127.0.0.1", sim.port, sim, FakeClock(), ["NVDA", "TSLA"])
