"""Lookup outcome counts (hits, misses, partial hits, stale serves), written off the read path."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from loguru import logger

from backend.market_data.domain import SeriesKey
from backend.storage.market_data_repository import LookupTally, MarketDataCacheRepository

# The outcomes that count as the series being read from the cache (they set last_hit_at).
_SERVED_FROM_CACHE = ("hit", "partial", "stale")


class LookupCounts:
    """Adds each lookup's outcome to its series' stored statistics.

    A warm read takes milliseconds and its counter upsert would add 2-3 more (a write
    transaction and its commit), so outcomes are tallied in memory and a thread of their own
    writes them, every tally since its last write in one transaction, as soon as it is free:
    other processes see them a moment later; flush() (before this process reads statistics,
    and at shutdown) makes them exact. A failed write keeps its tallies for the next one."""

    def __init__(self, repository: MarketDataCacheRepository) -> None:
        self.repository = repository
        self._lock = threading.Lock()
        self._pending: dict[SeriesKey, LookupTally] = {}
        self._scheduled: Future | None = None
        # One worker: writes never overlap, and a task queued after them runs after them.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lookup-counts")

    def record(self, series: SeriesKey, outcome: str, at: datetime) -> None:
        """Count one outcome ("hit", "miss", "partial" or "stale"); returns at once."""
        with self._lock:
            tally = self._pending.setdefault(series, LookupTally())
            tally.add(outcome, at if outcome in _SERVED_FROM_CACHE else None)
            if self._scheduled is None:
                self._scheduled = self._writer.submit(self._write)

    def flush(self) -> None:
        """Wait until every outcome recorded so far is stored (raises if storing fails)."""
        self._writer.submit(self._write, raise_errors=True).result()

    def close(self) -> None:
        """Store what is left, at shutdown. The counts stay usable: an app can start again in
        the same process (as tests do), and the idle writer thread ends with the interpreter."""
        try:
            self.flush()
        except Exception as error:  # the process is stopping: say what is lost, then go on
            logger.warning("lookup counts not stored at shutdown: {}", error)

    def _write(self, raise_errors: bool = False) -> None:
        with self._lock:
            pending, self._pending, self._scheduled = self._pending, {}, None
        if not pending:
            return
        try:
            self.repository.add_lookup_tallies(pending)
        except Exception as error:
            with self._lock:
                for series, tally in pending.items():
                    self._pending.setdefault(series, LookupTally()).merge(tally)
            if raise_errors:
                raise
            logger.warning("lookup counts not stored yet, kept for the next write: {}", error)
