"""Shared fixtures: fresh SQLite and PostgreSQL databases, migrated to head."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from backend.devtools.postgres import test_database_url, throwaway_postgres_database
from tests.support.databases import require_postgres
from tests.support.migrations import migrate_to_head


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'cache.db'}"


@pytest.fixture(scope="session")
def postgres_server() -> None:
    require_postgres()


@pytest.fixture
def postgres_url(postgres_server) -> Iterator[str]:
    with throwaway_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> str:
    """A fresh, empty database of each kind."""
    fixture = {"sqlite": "sqlite_url", "postgresql": "postgres_url"}[request.param]
    return request.getfixturevalue(fixture)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file migrated to head once per run; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "cache.db"
    migrate_to_head(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_server) -> Iterator[str]:
    """A PostgreSQL database migrated to head once per run; each test gets a copy."""
    with throwaway_postgres_database("mdc_template") as url:
        migrate_to_head(url)
        yield make_url(url).database


@pytest.fixture
def migrated_database_url(database_url, request) -> str:
    """database_url at the head revision, copied from a database migrated once per run: a
    migration per test cost half a second. Alembic's own path is what test_migrations tests."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        shutil.copyfile(request.getfixturevalue("sqlite_template"), url.database)
    else:
        template = request.getfixturevalue("postgres_template")
        admin = create_engine(make_url(test_database_url()), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{url.database}"'))
            connection.execute(text(f'CREATE DATABASE "{url.database}" TEMPLATE "{template}"'))
        admin.dispose()
    return database_url


@pytest.fixture(scope="session")
def simulator():
    """One simulated gateway for the whole run; tests reset its stats and faults."""
    from tests.support.gateway import start_simulator

    running = start_simulator()
    yield running
    running.gateway.stop()


@pytest.fixture
def sim(simulator):
    simulator.reset()
    return simulator


@pytest.fixture
async def build_container():
    """Builds test containers (tests/support/app.py) and disconnects their gateways afterwards."""
    from tests.support.app import make_container, make_settings

    built = []

    def build(database_url: str, gateway_port: int, clock, **overrides):
        container = make_container(make_settings(database_url, gateway_port, **overrides), clock)
        built.append(container)
        return container

    yield build
    for container in built:
        await container.ib_connection().close()


@pytest.fixture
def moving_sim():
    """A simulator of its own at 2024-05-31, whose clock a test moves (the shared one's stays
    put); see tests/support/gateway.py move_clock."""
    from tests.support.gateway import evening, start_simulator

    running = start_simulator(now=evening(2024, 5, 31))
    yield running
    running.gateway.stop()
