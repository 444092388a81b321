"""IBKR's historical-data pacing rules, with window lengths scaled for fast tests."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

IDENTICAL_WINDOW_SECONDS = 15.0
BURST_WINDOW_SECONDS = 2.0
BURST_LIMIT = 6  # this many requests for one contract+exchange+whatToShow within the window
OVERALL_WINDOW_SECONDS = 600.0
OVERALL_LIMIT = 60  # more than this many requests within the window


@dataclass(frozen=True)
class _Entry:
    at: float
    identical_key: Hashable
    contract_key: Hashable
    weight: int


class PacingGuard:
    """Decides whether a historical request breaks pacing, remembering the accepted ones.

    Only accepted requests are remembered: a client that backs off after a violation recovers
    as soon as the windows have passed. A scale of 0 disables pacing altogether.
    """

    def __init__(self, scale: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.identical_window = IDENTICAL_WINDOW_SECONDS * scale
        self.burst_window = BURST_WINDOW_SECONDS * scale
        self.overall_window = OVERALL_WINDOW_SECONDS * scale
        self._clock = clock
        self._history: deque[_Entry] = deque()
        self._reset_counts()

    def _reset_counts(self) -> None:
        # What the control API reports about the overall window, for tests that measure how
        # much of the budget their clients used: accepted weight in consecutive windows from
        # the first accepted request, and the most ever counted in one (sliding) window.
        self._first_at: float | None = None
        self._per_window: list[int] = []
        self._max_in_window = 0

    def admit(self, identical_key: Hashable, contract_key: Hashable,
              weight: int = 1) -> str | None:
        """None if the request may run (and records it), else the rule it breaks.

        `weight` is how many requests it counts as (IBKR counts BID_ASK twice).
        """
        now = self._clock()
        longest = max(self.identical_window, self.burst_window, self.overall_window)
        while self._history and now - self._history[0].at >= longest:
            self._history.popleft()

        def within(entry: _Entry, window: float) -> bool:
            return now - entry.at < window

        if any(e.identical_key == identical_key and within(e, self.identical_window)
               for e in self._history):
            return "identical request"
        burst = sum(e.weight for e in self._history
                    if e.contract_key == contract_key and within(e, self.burst_window))
        if burst + weight >= BURST_LIMIT:
            return "burst for one contract"
        overall = sum(e.weight for e in self._history if within(e, self.overall_window))
        if overall + weight > OVERALL_LIMIT:
            return "too many requests"
        self._history.append(_Entry(now, identical_key, contract_key, weight))
        self._count(now, overall + weight, weight)
        return None

    def _count(self, now: float, in_window: int, weight: int) -> None:
        if self.overall_window <= 0:
            return
        if self._first_at is None:
            self._first_at = now
        index = int((now - self._first_at) // self.overall_window)
        while len(self._per_window) <= index:
            self._per_window.append(0)
        self._per_window[index] += weight
        self._max_in_window = max(self._max_in_window, in_window)

    def to_json(self) -> dict:
        """The overall window's length and limit, the weight accepted in each consecutive
        window since the first accepted request (the last one may still be filling), and the
        most counted in any window ending at an accepted request."""
        return {
            "overall_window_seconds": self.overall_window,
            "overall_limit": OVERALL_LIMIT,
            "requests_per_window": list(self._per_window),
            "max_in_any_window": self._max_in_window,
        }

    def reset(self) -> None:
        self._history.clear()
        self._reset_counts()
