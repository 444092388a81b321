"""CLI fixtures: run the populate script's main() in-process against the simulator."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pytest
from dependency_injector import providers

from backend.cli.populate import main
from backend.market_data.population import CachePopulationService
from tests.support.app import make_container, make_settings
from tests.support.bars import stored_bar_count
from tests.support.gateway import FakeClock
from tests.support.migrations import migrate_to_head


@dataclass
class CliRun:
    exit_code: int
    stdout: str
    stderr: str

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    def series(self, symbol: str, data_type: str = "1d") -> dict:
        (event,) = [
            e
            for e in self.events()
            if e["event"] == "series" and (e["symbol"], e["data_type"]) == (symbol, data_type)
        ]
        return event

    def summary(self) -> dict:
        (event,) = [e for e in self.events() if e["event"] == "summary"]
        return event


def fast_container(settings):
    """The production container at test speed; series retries wait milliseconds, not seconds."""
    container = make_container(settings, FakeClock())
    container.cache_population_service.override(
        providers.Singleton(
            CachePopulationService,
            refresh_service=container.refresh_service,
            client=container.ibkr_client,
            repository=container.market_data_repository,
            clock=container.clock,
            retry_base_s=0.01,
            retry_max_s=0.05,
        )
    )
    return container


def run_cli(argv: list[str], database_url: str, gateway_port: int, **overrides) -> CliRun:
    # One container per run, as one process of the real script has.
    settings = make_settings(database_url, gateway_port, **overrides)
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(
        argv, settings=settings, container=fast_container(settings), stdout=stdout, stderr=stderr
    )
    return CliRun(code, stdout.getvalue(), stderr.getvalue())


def cached_rows(database_url: str, symbol: str, data_type: str | None = None) -> int:
    """Bars the cache holds for the symbol (summed over its segments)."""
    return stored_bar_count(database_url, symbol, data_type)


@dataclass
class Cli:
    """Runs the script's main() against one database and gateway port."""

    database_url: str
    gateway_port: int

    def __call__(self, *argv: str, **overrides) -> CliRun:
        return run_cli(list(argv), self.database_url, self.gateway_port, **overrides)

    def rows(self, symbol: str, data_type: str | None = None) -> int:
        return cached_rows(self.database_url, symbol, data_type)


@pytest.fixture
def cli(migrated_database_url, sim) -> Cli:
    """The CLI against the simulator (FIXED_NOW), on SQLite and on PostgreSQL."""
    return Cli(migrated_database_url, sim.port)


@pytest.fixture
def sqlite_cli(sqlite_url, sim) -> Cli:
    """The CLI against the simulator on a migrated SQLite file, where the database is no factor."""
    migrate_to_head(sqlite_url)
    return Cli(sqlite_url, sim.port)
