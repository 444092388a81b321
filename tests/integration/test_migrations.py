"""Migrations on fresh SQLite and PostgreSQL databases: up, down, up again, and no drift."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import backend.models  # noqa: F401  (registers the tables)
from alembic import command
from backend.core.db import create_db_engine
from tests.support.migrations import alembic_config

CACHE_TABLES = {"market_data_cache", "market_data_coverage", "market_data_cache_stats"}
PLATFORM_TABLES = {"workflow_executions", "workflow_logs", "lineage_records"}


def _tables(url: str) -> set[str]:
    engine = create_db_engine(url)
    names = set(inspect(engine).get_table_names()) - {"alembic_version"}
    engine.dispose()
    return names


def test_upgrade_downgrade_upgrade(database_url):
    config = alembic_config(database_url)
    command.upgrade(config, "head")
    assert _tables(database_url) == CACHE_TABLES | PLATFORM_TABLES
    command.downgrade(config, "0001_baseline")
    assert _tables(database_url) == PLATFORM_TABLES
    command.downgrade(config, "base")
    assert _tables(database_url) == set()
    command.upgrade(config, "head")
    assert _tables(database_url) == CACHE_TABLES | PLATFORM_TABLES


def test_models_and_migrations_do_not_drift(database_url):
    config = alembic_config(database_url)
    command.upgrade(config, "head")
    command.check(config)


def test_drift_check_sees_missing_tables(database_url):
    # Proves the drift comparison can fail: at the baseline the cache tables are missing.
    command.upgrade(alembic_config(database_url), "0001_baseline")
    engine = create_db_engine(database_url)
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    added = {diff[1].name for diff in diffs if diff[0] == "add_table"}
    assert added == CACHE_TABLES


def test_migration_scripts_import_nothing_from_sqlmodel():
    versions = Path(__file__).resolve().parents[2] / "alembic" / "versions"
    scripts = list(versions.glob("*.py"))
    assert scripts
    for script in scripts:
        assert "sqlmodel" not in script.read_text(), script.name
