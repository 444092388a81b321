"""How much of the bars table the app's SQL reads, measured by the database itself."""

import sqlite3
from contextlib import contextmanager

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import make_url


@contextmanager
def statements_of(container):
    """Every SQL statement the app sends while the block runs, with its parameters."""
    seen: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _executemany):
        seen.append((statement, parameters))

    engine = container.database().engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def work_on_bars(database_url: str, statements) -> int:
    """How much of the bars table the statements read, as the database itself reports it.

    PostgreSQL: rows its plans read from market_data_cache (EXPLAIN ANALYZE). SQLite: virtual
    machine steps of the whole statements, which grow with every row a statement visits.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database)
        steps = 0

        def count_step() -> int:
            nonlocal steps
            steps += 1
            return 0

        connection.set_progress_handler(count_step, 1)
        for statement, parameters in statements:
            connection.execute(statement, parameters).fetchall()
        connection.close()
        return steps
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    rows = 0
    with psycopg.connect(dsn, options="-c timezone=UTC", autocommit=True) as connection:
        # What autovacuum does on a live database: without statistics the planner may read a
        # small table whole rather than use an index, whatever the query.
        connection.execute("VACUUM ANALYZE market_data_cache")
        for statement, parameters in statements:
            plan = connection.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
            ).fetchone()[0]
            rows += _rows_read(plan[0]["Plan"])
    return rows


def _rows_read(node: dict) -> int:
    rows = 0
    if node.get("Relation Name") == "market_data_cache":
        rows += (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
        rows += node.get("Heap Fetches", 0)
    return rows + sum(_rows_read(child) for child in node.get("Plans", []))
