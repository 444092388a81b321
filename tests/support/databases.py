"""Whether the tests' PostgreSQL answers: skip the test without it, or fail (REQUIRE_POSTGRES=1)."""

import os

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from backend.devtools.postgres import test_database_url


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
