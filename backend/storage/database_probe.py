"""The readiness probe: does the database answer? One cheap check at a time, apart from the load."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from loguru import logger
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

# Long enough for a busy database to answer SELECT 1, short enough for a load balancer's probe.
PROBE_TIMEOUT_S = 2.0


class DatabaseProbe:
    """Answers whether the database is reachable, without touching the request pool.

    The probe has its own connection and its own thread, so a pool exhausted by slow work or a
    saturated thread pool cannot make health slow. Concurrent callers share the check in flight
    (single-flight): a thousand health requests cost one SELECT 1.
    """

    def __init__(self, database_url: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.engine = _probe_engine(database_url, timeout_s)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="db-probe")
        self._in_flight: asyncio.Future[None] | None = None

    async def problem(self) -> str | None:
        """None when the database answered; otherwise why not, in a few words."""
        loop = asyncio.get_running_loop()
        check = self._in_flight
        if check is None or check.done() or check.get_loop() is not loop:
            check = loop.run_in_executor(self._executor, self._select_one)
            # Retrieved here, so a failure that every waiter gave up on is not logged as lost.
            check.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._in_flight = check
        try:
            await asyncio.wait_for(asyncio.shield(check), self.timeout_s)
        except TimeoutError:
            return f"no answer within {self.timeout_s:g} s"
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            logger.warning("database probe failed: {}", reason)
            return "the connection or the query failed (the server log has the driver's message)"
        return None

    def _select_one(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()


def _probe_engine(database_url: str, timeout_s: float) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        # A fresh connection each time (opening a file costs microseconds): a pooled one would
        # keep answering from a file that has since been deleted. mode=rw never creates the file.
        path = url.database or ":memory:"
        if path == ":memory:":
            return create_engine("sqlite://", poolclass=NullPool)
        return create_engine(
            f"sqlite:///file:{quote(path)}?mode=rw&uri=true",
            poolclass=NullPool,
            connect_args={"timeout": timeout_s, "check_same_thread": False},
        )
    # One connection, checked before use, so a restarted server is noticed and reconnected.
    return create_engine(
        url,
        pool_size=1,
        max_overflow=0,
        pool_pre_ping=True,
        connect_args={
            # libpq's connect_timeout is whole seconds, at least 2.
            "connect_timeout": max(2, round(timeout_s)),
            "options": f"-c statement_timeout={int(timeout_s * 1000)}",
        },
    )
