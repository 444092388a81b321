"""Fresh test databases: a SQLite file per test, and a throwaway PostgreSQL database per session."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_TEST_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def test_database_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


def postgres_unavailable_reason() -> str | None:
    """None when PostgreSQL answers, else why not (skip, or fail under REQUIRE_POSTGRES=1)."""
    url = test_database_url()
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"PostgreSQL at {make_url(url).render_as_string()} is unreachable: {first_line}"


def require_postgres() -> None:
    reason = postgres_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail(f"REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(f"{reason} (set TEST_DATABASE_URL, or REQUIRE_POSTGRES=1 to fail instead)")


@contextmanager
def throwaway_postgres_database(prefix: str = "mdc_test") -> Iterator[str]:
    """Create an empty database next to TEST_DATABASE_URL's, yield its URL, drop it afterwards."""
    admin_url = make_url(test_database_url())
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
