"""The pacing ledger in the database: one IBKR budget per gateway for every process sharing it.

Each grant is one short transaction. PostgreSQL serialises the grants of a gateway with a
transaction-scoped advisory lock, SQLite with BEGIN IMMEDIATE (the database file's write lock).
Inside it the grant prunes slots older than the longest window, reads the rest, and either
records the new slot or answers how long to wait; the caller then waits with no transaction
and no connection held, and tries again. Slots are timestamps, not leases, so a process that
dies never holds anything another one waits for.

Every process stamps slots with the wall clock (time.time(), UTC seconds): monotonic clocks are
per process and cannot be compared. Hosts sharing a database keep their clocks in step (NTP);
the pacing safety margin absorbs the rest.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from loguru import logger
from sqlalchemy import Connection, Engine, delete, insert, select, text, update

from backend.ibkr.pacing import PacingLimits, Slot, SlotGrant, SlotRequest, wait_needed
from backend.storage.database import Database, create_db_engine
from backend.storage.pacing_tables import PacingSlot

SLOTS = PacingSlot.__table__
# Stored times have microseconds; a wait shorter than that is their rounding, not the rules.
RESOLUTION_S = 1e-6


class DatabasePacingLedger:
    """The slots every process granted against one gateway, in the cache's database."""

    def __init__(
        self,
        database: Database,
        gateway: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.gateway = gateway
        self._clock = clock
        self._lock_key = _advisory_key(gateway)
        self._engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None

    def now(self) -> float:
        return self._clock()

    @property
    def _executor(self) -> ThreadPoolExecutor:
        # One thread of its own: a grant never queues behind the cache's writes on the database
        # threads (its timing is the budget), and never runs on the loop's default executor.
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="pacing-ledger")
        return self._thread

    @property
    def engine(self) -> Engine:
        # A connection of its own, so a grant never waits for (or takes) one the requests need.
        if self._engine is None:
            self._engine = create_db_engine(self.database.url, pool_size=1)
        return self._engine

    async def take(self, request: SlotRequest, limits: PacingLimits) -> SlotGrant:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.take_now, request, limits)

    def take_now(self, request: SlotRequest, limits: PacingLimits) -> SlotGrant:
        """The grant itself, blocking: one transaction, whichever way it ends."""
        with self.engine.connect() as connection:
            self._begin(connection)
            try:
                grant = self._grant(connection, request, limits)
            except BaseException:
                connection.rollback()
                raise
            if grant.granted:
                connection.commit()
            else:
                connection.rollback()
            return grant

    def _begin(self, connection: Connection) -> None:
        if connection.dialect.name == "sqlite":
            # Take the file's write lock now, not at the insert: two processes that both read
            # the windows before either writes could both grant the last slot.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._lock_key})

    def _grant(
        self, connection: Connection, request: SlotRequest, limits: PacingLimits
    ) -> SlotGrant:
        # Read the clock once the lock is held: a grant that waited for it counts from now.
        now = self._clock()
        horizon = _as_datetime(now - limits.horizon_s)
        connection.execute(
            delete(SLOTS).where(SLOTS.c.gateway == self.gateway, SLOTS.c.granted_at < horizon)
        )
        wait = wait_needed(self._slots(connection), request, now, limits)
        if wait > RESOLUTION_S:
            return SlotGrant(granted=False, wait_s=wait)
        inserted = connection.execute(
            insert(SLOTS).values(
                gateway=self.gateway,
                granted_at=_as_datetime(now),
                contract_key=request.contract_key,
                request_key=request.request_key,
                weight=request.weight,
            )
        )
        return SlotGrant(granted=True, granted_at=now, slot_id=inserted.inserted_primary_key[0])

    def restamp(self, grant: SlotGrant, request: SlotRequest, at: float) -> None:
        # Queued behind this process's grants on the ledger's thread, so it lands before the
        # next one; the caller's request is already on its way and must not wait for it.
        future = self._executor.submit(self._restamp, grant.slot_id, at)
        future.add_done_callback(_log_failure)

    def _restamp(self, slot_id: object, at: float) -> None:
        moved = _as_datetime(at)
        with self.engine.begin() as connection:
            connection.execute(
                update(SLOTS)
                .where(SLOTS.c.id == slot_id, SLOTS.c.granted_at < moved)
                .values(granted_at=moved)
            )

    def slots(self) -> list[Slot]:
        """The gateway's recorded slots in time order (for tests and benchmarks)."""
        with self.engine.connect() as connection:
            return self._slots(connection)

    def _slots(self, connection: Connection) -> list[Slot]:
        rows = connection.execute(
            select(SLOTS.c.granted_at, SLOTS.c.contract_key, SLOTS.c.request_key, SLOTS.c.weight)
            .where(SLOTS.c.gateway == self.gateway)
            .order_by(SLOTS.c.granted_at)
        ).all()
        return [
            Slot(row.granted_at.timestamp(), row.contract_key, row.request_key, row.weight)
            for row in rows
        ]

    def close(self) -> None:
        """At shutdown: finish the restamps queued, end the thread, close the connection. A
        later grant (an app started again in the same process) opens them again."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _as_datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _advisory_key(gateway: str) -> int:
    digest = hashlib.blake2b(f"ibkr-pacing|{gateway}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _log_failure(future: Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("could not restamp a pacing slot: {}", future.exception())
