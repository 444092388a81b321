"""Readiness and data routes when the database goes away and comes back, on both databases."""

import asyncio
import json
import time
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import TimeoutError as PoolTimeout

from backend.api.errors import DATABASE_BUSY_RETRY_AFTER_S, database_error_response
from backend.devtools import postgres
from backend.storage.database_probe import DatabaseProbe
from tests.support.cache_api import api_client, seed_daily_bars
from tests.support.migrations import migrate_to_head

CACHE = "/api/market-data/cache"
# Routes that read the database, each of a different kind (sync, async, another repository).
DATA_ROUTES = (
    CACHE,
    f"{CACHE}/NVDA",
    f"{CACHE}/stats",
    "/api/workflows/executions",
)


def assert_database_unavailable(client) -> None:
    health = client.get("/api/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"
    assert health.json()["code"] == "database_unavailable"
    assert client.get("/api/health/live").status_code == 200
    for route in DATA_ROUTES:
        response = client.get(route)
        assert response.status_code == 503, (route, response.text)
        body = response.json()
        assert body["code"] == "database_unavailable", route
        assert "DATABASE_URL" in body["detail"]


def assert_database_answers(client) -> None:
    assert client.get("/api/health").json() == {"status": "ok", "database": "ok"}
    for route in (CACHE, f"{CACHE}/stats", "/api/workflows/executions"):
        assert client.get(route).status_code == 200, route


def _admin(sql: str) -> None:
    admin = create_engine(postgres.test_database_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(sql))
    admin.dispose()


def test_postgres_dropped_then_recreated_answers_503_then_recovers(postgres_server):
    with postgres.throwaway_postgres_database() as url:
        migrate_to_head(url)
        name = make_url(url).database
        with api_client(url) as (client, container):
            seed_daily_bars(container, "NVDA", [3, 4])
            assert_database_answers(client)

            _admin(f'DROP DATABASE "{name}" WITH (FORCE)')
            assert_database_unavailable(client)

            _admin(f'CREATE DATABASE "{name}"')
            migrate_to_head(url)
            # No restart: the pool and the probe reconnect by themselves.
            assert_database_answers(client)
            assert client.get(CACHE).json()["count"] == 0


def test_sqlite_file_gone_answers_503_then_recovers(tmp_path: Path):
    path = tmp_path / "cache.db"
    url = f"sqlite:///{path}"
    migrate_to_head(url)
    with api_client(url) as (client, container):
        seed_daily_bars(container, "NVDA", [3, 4])
        assert_database_answers(client)

        moved = tmp_path / "moved.db"
        path.rename(moved)
        path.mkdir()
        # Connections the pool already holds keep the moved file open; those opened from now on
        # (after a recycle, or on the next start) find a directory where the file was.
        container.database().engine.dispose()
        assert_database_unavailable(client)

        path.rmdir()
        moved.rename(path)
        assert_database_answers(client)
        assert client.get(CACHE).json()["count"] == 2


def test_health_stays_fast_while_every_pooled_connection_is_busy(migrated_database_url):
    with api_client(migrated_database_url) as (client, container):
        database = container.database()
        with ExitStack() as held:
            # Take every connection the request pool can give: a data route would now wait.
            for _ in range(database.max_connections):
                held.enter_context(database.engine.connect())
            started = time.perf_counter()
            responses = [client.get("/api/health") for _ in range(20)]
            elapsed = time.perf_counter() - started
    assert {response.status_code for response in responses} == {200}
    assert elapsed < 2.0, f"20 health checks took {elapsed:.2f} s with the pool exhausted"


async def test_concurrent_checks_share_one_query(migrated_database_url):
    probe = DatabaseProbe(migrated_database_url)
    statements: list[str] = []
    event.listen(probe.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        results = await asyncio.gather(*(probe.problem() for _ in range(50)))
        assert results == [None] * 50
        assert statements == ["SELECT 1"]
        # The next check after one has finished asks again: answers are shared, never cached.
        assert await probe.problem() is None
        assert statements == ["SELECT 1", "SELECT 1"]
    finally:
        probe.close()


async def test_a_database_that_does_not_answer_in_time_is_unavailable():
    # A TCP listener that never speaks: the connection opens, the handshake never comes.
    server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    probe = DatabaseProbe(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none", timeout_s=0.3)
    try:
        started = time.perf_counter()
        problem = await probe.problem()
        elapsed = time.perf_counter() - started
    finally:
        probe.close()
        server.close()
    assert problem == "no answer within 0.3 s"
    assert elapsed < 1.0


def test_an_exhausted_pool_is_503_database_busy_with_retry_after():
    response = database_error_response(
        PoolTimeout("QueuePool limit of size 10 overflow 10 reached")
    )
    assert response is not None
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(DATABASE_BUSY_RETRY_AFTER_S)
    assert json.loads(response.body)["code"] == "database_busy"


def test_an_unmigrated_database_is_503_naming_the_migrations(sqlite_url):
    # A database that answers but holds no tables: data routes say what to run.
    with api_client(sqlite_url) as (client, _):
        response = client.get(CACHE)
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert "make migrate" in response.json()["detail"]
