"""The app on a real database for cache API tests, and bars written straight into its cache."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from fastapi.testclient import TestClient

from backend.containers import Container
from backend.main import create_app
from backend.market_data.bar_columns import BarColumns
from backend.market_data.domain import Bar, SeriesKey
from tests.support.app import make_container, make_settings
from tests.support.bars import store
from tests.support.gateway import FIXED_NOW, FakeClock

# The base URL of TestClients: a Host the default ALLOWED_HOSTS accepts.
LOCAL_URL = "http://127.0.0.1"
# Port 1 has nothing listening: anything that reaches for the gateway fails at once.
DEAD_GATEWAY_PORT = 1


@contextmanager
def api_client(
    database_url: str,
    gateway_port: int = DEAD_GATEWAY_PORT,
    clock: FakeClock | None = None,
    **overrides,
) -> Iterator[tuple[TestClient, Container]]:
    """A TestClient with the lifespan running, and the container behind it."""
    settings = make_settings(database_url, gateway_port, **overrides)
    container = make_container(settings, clock or FakeClock())
    # A loopback Host, as a local browser sends: the app answers only ALLOWED_HOSTS.
    with TestClient(create_app(settings, container), base_url=LOCAL_URL) as client:
        yield client, container


def seed_daily_bars(
    container: Container,
    symbol: str,
    days: list[int],
    exchange: str = "NASDAQ",
    is_final: bool = True,
    fetched_at: datetime = FIXED_NOW,
    ttl: timedelta = timedelta(hours=24),
) -> None:
    """Daily bars for the given days of November 2025, as if fetched at fetched_at."""
    bars = BarColumns.from_bars(
        Bar(
            datetime(2025, 11, day, tzinfo=FIXED_NOW.tzinfo),
            10.0,
            12.0,
            9.0,
            11.0,
            1000.0 + day,
            None,
            None,
            is_final,
        )
        for day in days
    )
    store(
        container.market_data_repository(), SeriesKey(symbol, exchange, "1d"), bars, fetched_at, ttl
    )
