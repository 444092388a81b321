"""One fetch per series at a time: in this process first, then across processes (PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from backend.market_data.domain import SeriesKey
from backend.storage.database import Database

DEFAULT_FETCH_SLOTS = 8


@dataclass
class _LocalLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class SeriesLocks:
    """Serialises fetches of one series, without holding a thread or a pooled connection to wait.

    Callers for one series queue on an asyncio lock in this process, so however many there are
    they reach the database one at a time. Then a fetch slot bounds how many series fetch at
    once (and so how many lock connections exist). Across processes, a PostgreSQL advisory lock
    is tried without blocking and retried after an async sleep, so waiting for another process
    holds nothing; the held lock's connection comes from the database's separate lock engine,
    and PostgreSQL drops the lock by itself if the holding process dies. SQLite has no advisory
    locks: there a second process fetches too, and the upserts keep its writes idempotent.
    """

    def __init__(
        self,
        database: Database,
        fetch_slots: int = DEFAULT_FETCH_SLOTS,
        poll_s: float = 0.1,
        max_poll_s: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.database = database
        self.fetch_slots = fetch_slots
        self.poll_s = poll_s
        self.max_poll_s = max_poll_s
        self._sleep = sleep
        self._local: dict[SeriesKey, _LocalLock] = {}
        self._slots: asyncio.Semaphore | None = None

    @asynccontextmanager
    async def hold(self, series: SeriesKey) -> AsyncIterator[None]:
        local = self._local.setdefault(series, _LocalLock())
        local.users += 1
        try:
            async with local.lock:
                if self._slots is None:
                    self._slots = asyncio.Semaphore(self.fetch_slots)
                async with self._slots:
                    connection = await self._lock_across_processes(series)
                    try:
                        yield
                    finally:
                        if connection is not None:
                            await self.database.run(_unlock, connection, _lock_key(series))
        finally:
            local.users -= 1
            if local.users == 0:
                del self._local[series]

    async def _lock_across_processes(self, series: SeriesKey) -> Connection | None:
        if self.database.dialect != "postgresql":
            return None
        key = _lock_key(series)
        delay = self.poll_s
        while True:
            connection = await self._try_lock(key)
            if connection is not None:
                return connection
            await self._sleep(delay)
            delay = min(delay * 2, self.max_poll_s)

    async def _try_lock(self, key: int) -> Connection | None:
        loop = asyncio.get_running_loop()
        attempt = loop.run_in_executor(
            self.database.executor, _try_lock, self.database.lock_engine, key
        )
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            # Cancelled while the attempt ran: if it got the lock, nobody will release it.
            attempt.add_done_callback(functools.partial(self._release_orphan, key))
            raise

    def _release_orphan(self, key: int, attempt: asyncio.Future) -> None:
        if attempt.cancelled() or attempt.exception() is not None:
            return
        connection = attempt.result()
        if connection is not None:
            self.database.executor.submit(_unlock, connection, key)


def _try_lock(engine, key: int) -> Connection | None:
    connection = engine.connect()
    try:
        locked = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
        got = bool(locked.scalar())
        connection.commit()
    except BaseException:
        connection.close()
        raise
    if got:
        return connection
    connection.close()
    return None


def _unlock(connection: Connection, key: int) -> None:
    try:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        connection.commit()
    except Exception:
        # The session is gone (a restart, a network cut), and its lock went with it.
        connection.invalidate()
    finally:
        with contextlib.suppress(Exception):
            connection.close()


def _lock_key(series: SeriesKey) -> int:
    digest = hashlib.blake2b(
        f"{series.symbol}|{series.exchange}|{series.data_type}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)
