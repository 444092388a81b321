"""Containers and apps for tests: real database, real ib_insync client, the simulator as gateway."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime

from dependency_injector import providers

from backend.config.settings import Settings, load_settings
from backend.containers import Container, build_container
from backend.ibkr.client import IBKRClient
from backend.ibkr.pacing import PacingLimits, PacingScheduler
from tests.support.gateway import PACING_SCALE

# The simulator refuses a clientId already connected (error 326), as the real gateway does.
_client_ids = itertools.count(100)


def make_settings(database_url: str, gateway_port: int, **overrides) -> Settings:
    values = {
        "DATABASE_URL": database_url,
        "IB_HOST": "127.0.0.1",
        "IB_PORT": gateway_port,
        "IB_CLIENT_ID": next(_client_ids),
        "IB_CONNECT_TIMEOUT": 3,
        "LOG_LEVEL": "WARNING",
        **overrides,
    }
    return load_settings(**values)


def make_container(settings: Settings, clock: Callable[[], datetime]) -> Container:
    """The production container with test-speed parts: fake clock, scaled pacing, short retries."""
    container = build_container(settings)
    container.clock.override(providers.Object(clock))
    container.pacing.override(
        providers.Singleton(PacingScheduler, limits=PacingLimits().scaled(PACING_SCALE))
    )
    container.ibkr_client.override(
        providers.Singleton(
            IBKRClient,
            connection=container.ib_connection,
            pacing=container.pacing,
            clock=container.clock,
            request_timeout_s=5.0,
            retry_base_s=0.05,
            retry_max_s=0.2,
        )
    )
    return container
