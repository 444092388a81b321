"""Migrations for the tests: the same helper the benchmarks use (backend/devtools/migrations.py)."""

from backend.devtools.migrations import alembic_config, migrate_to_head

__all__ = ["alembic_config", "migrate_to_head"]
