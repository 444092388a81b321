"""Database engines, sessions and the threads that run blocking database work for async code."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

P = ParamSpec("P")
T = TypeVar("T")

# Connections the request pool may open: pool_size plus as many again as overflow.
DEFAULT_POOL_SIZE = 10
# Threads for async code's database work. Each holds at most one pooled connection, so this many
# can never exhaust the pool; the sync routes' thread limit takes the rest (see route_threads).
# Few on purpose: the calls are short, and every extra busy thread competes with the event loop
# for the GIL, which is what a health check's tail latency is made of under load.
DEFAULT_BLOCKING_WORKERS = 2
# Advisory-lock sessions held at once: one per series being fetched (FETCH_CONCURRENCY).
DEFAULT_LOCK_CONNECTIONS = 8
# Each SQLite connection's page cache, in KiB (see _sqlite_pragmas).
SQLITE_CACHE_KIB = 16 * 1024


def create_db_engine(database_url: str, pool_size: int = DEFAULT_POOL_SIZE) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A UTC session makes PostgreSQL return datetimes already in UTC: reads need no conversion.
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"options": "-c timezone=UTC"},
    )


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers run while a writer commits; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # A page cache of up to 16 MB a connection (SQLite's default is 2 MB), grown only as pages
    # are read: a year of 1-minute bars is 2.2 MB of pages, and read again from a cache that
    # held it the warm read's query took 1.5 ms instead of 2.0-2.1 (its pages no longer read
    # from the file each time). A memory map (mmap_size) was no faster on top of it.
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


class Database:
    """Owns the engines and the database threads; one per process, built by the container."""

    def __init__(
        self,
        database_url: str,
        pool_size: int = DEFAULT_POOL_SIZE,
        blocking_workers: int = DEFAULT_BLOCKING_WORKERS,
        lock_connections: int = DEFAULT_LOCK_CONNECTIONS,
    ) -> None:
        self.url = database_url
        self.pool_size = pool_size
        self.engine = create_db_engine(database_url, pool_size)
        # Single-statement reads need no transaction; autocommit spares a BEGIN and a ROLLBACK
        # round trip on each. Shares the engine's pool.
        self.read_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # Half the pool at most, so the sync routes always keep threads of their own.
        self.blocking_workers = max(1, min(blocking_workers, self.max_connections // 2))
        self.lock_connections = lock_connections
        self._executor: ThreadPoolExecutor | None = None
        self._lock_engine: Engine | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def max_connections(self) -> int:
        return self.pool_size * 2

    @property
    def route_threads(self) -> int:
        """Threads the sync routes may use at once: what the pool has left after async work."""
        return max(1, self.max_connections - self.blocking_workers)

    @property
    def executor(self) -> ThreadPoolExecutor:
        # Not the event loop's default executor: work here only ever waits for the database, so
        # nothing that waits for a lock, a pacing slot or the gateway can starve it.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.blocking_workers, thread_name_prefix="db")
        return self._executor

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking database work on the database threads and await its result.

        A thread cannot be stopped, so when the caller is cancelled this still waits for the
        work to end before passing the cancellation on: a caller never loses track of whether
        its transaction committed.
        """
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, functools.partial(function, *args, **kwargs))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])
            raise

    @property
    def lock_engine(self) -> Engine:
        """Connections that hold PostgreSQL advisory locks, kept apart from the request pool.

        A lock lives as long as its session, so its connection is out of a pool for the whole
        fetch; a pool of its own means a fetch in progress never takes a connection a read needs.
        SeriesLocks' fetch slots bound how many are held at once to lock_connections.
        """
        if self._lock_engine is None:
            self._lock_engine = create_engine(
                make_url(self.url),
                pool_pre_ping=True,
                pool_size=self.lock_connections,
                max_overflow=0,
                connect_args={"options": "-c timezone=UTC"},
            )
        return self._lock_engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def connections_in_use(self) -> int:
        pool = self.engine.pool
        return int(getattr(pool, "checkedout", lambda: 0)())

    def dispose(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._lock_engine is not None:
            self._lock_engine.dispose()
            self._lock_engine = None
        self.engine.dispose()
