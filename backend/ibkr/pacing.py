"""One historical-data pacing budget per process, kept inside IBKR's published limits.

IBKR answers error 162 "pacing violation" when, for historical data requests:
an identical request repeats within 15 s; 6 or more requests for one contract, exchange and tick
type go out within 2 s; or more than 60 go out in any 10 minutes. ib_insync enforces none of this.
Every fetch in the process (API, CLI, workflows) asks this scheduler for a slot first.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from backend.core import metrics


@dataclass(frozen=True)
class PacingLimits:
    identical_window_s: float = 15.0
    per_contract_window_s: float = 2.0
    per_contract_max: int = 5
    global_window_s: float = 600.0
    global_max: int = 60
    # The gateway stamps a request when it arrives, a little after it was sent, and network delay
    # varies; staying this far clear of each window's edge absorbs that jitter.
    safety_margin_s: float = 0.25
    # ib_insync queues outgoing messages beyond 45 per second, which would make a request leave
    # later than its slot says; spacing requests this far apart keeps that queue empty.
    min_interval_s: float = 0.03

    def scaled(self, factor: float) -> PacingLimits:
        """The same rules with shorter windows, for a simulator started with the same scale."""
        return PacingLimits(
            identical_window_s=self.identical_window_s * factor,
            per_contract_window_s=self.per_contract_window_s * factor,
            per_contract_max=self.per_contract_max,
            global_window_s=self.global_window_s * factor,
            global_max=self.global_max,
            safety_margin_s=max(0.1, self.safety_margin_s * factor),
            min_interval_s=self.min_interval_s,
        )


def limits_scaled(scale: float) -> PacingLimits:
    """IBKR's limits, with windows shrunk by `scale` (1 for a real gateway)."""
    return PacingLimits() if scale == 1 else PacingLimits().scaled(scale)


@dataclass
class PacingStats:
    requests: int = 0
    waits: int = 0
    waited_s: float = 0.0
    current_wait_s: float = 0.0


class PacingScheduler:
    """Hands out request slots in arrival order, waiting as long as IBKR's limits require."""

    def __init__(
        self,
        limits: PacingLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limits = limits or PacingLimits()
        self._monotonic = monotonic
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._sent_by_contract: dict[str, deque[float]] = {}
        self._last_identical: dict[str, float] = {}
        self._lock: asyncio.Lock | None = None
        self.stats = PacingStats()

    def _wait_needed(self, contract_key: str, request_key: str, now: float) -> float:
        limits = self.limits
        margin = limits.safety_margin_s
        self._forget_before(now - max(limits.global_window_s, limits.identical_window_s) - margin)
        waits = [0.0]
        if self._sent:
            waits.append(self._sent[-1] + limits.min_interval_s - now)
        last = self._last_identical.get(request_key)
        if last is not None:
            waits.append(last + limits.identical_window_s + margin - now)
        recent = self._sent_by_contract.get(contract_key, deque())
        in_window = [t for t in recent if t > now - limits.per_contract_window_s - margin]
        if len(in_window) >= limits.per_contract_max:
            oldest = in_window[-limits.per_contract_max]
            waits.append(oldest + limits.per_contract_window_s + margin - now)
        if len(self._sent) >= limits.global_max:
            oldest = self._sent[-limits.global_max]
            waits.append(oldest + limits.global_window_s + margin - now)
        return max(waits)

    def _forget_before(self, horizon: float) -> None:
        while self._sent and self._sent[0] < horizon:
            self._sent.popleft()
        for key in [k for k, t in self._last_identical.items() if t < horizon]:
            del self._last_identical[key]
        for key, sent in list(self._sent_by_contract.items()):
            while sent and sent[0] < horizon:
                sent.popleft()
            if not sent:
                del self._sent_by_contract[key]

    async def acquire(self, contract_key: str, request_key: str) -> float:
        """Wait for a slot for one request; returns the seconds spent waiting."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        waited = 0.0
        async with self._lock:
            while True:
                now = self._monotonic()
                wait = self._wait_needed(contract_key, request_key, now)
                if wait <= 0:
                    break
                self.stats.current_wait_s = wait
                self.stats.waits += 1
                await self._sleep(wait)
                waited += wait
            self.stats.current_wait_s = 0.0
            self.stats.waited_s += waited
            if waited > 0:
                metrics.PACING_WAITS.inc()
                metrics.PACING_WAIT_SECONDS.inc(waited)
            self.stats.requests += 1
            self._sent.append(now)
            self._sent_by_contract.setdefault(contract_key, deque()).append(now)
            self._last_identical[request_key] = now
        return waited

    def sent(self, contract_key: str, request_key: str) -> None:
        """Move the latest slot of this request to now: the moment it actually goes out.

        A busy event loop can start the send a while after the slot was granted; the gateway
        counts from arrival, so the windows must count from the later time, or a request that
        left late and the ones granted after it would crowd into one of IBKR's windows.
        """
        granted = self._last_identical.get(request_key)
        if granted is None:
            return
        now = self._monotonic()
        if now <= granted:
            return
        _restamp(self._sent, granted, now)
        _restamp(self._sent_by_contract.get(contract_key, deque()), granted, now)
        self._last_identical[request_key] = now


def _restamp(times: deque[float], old: float, new: float) -> None:
    """Replace the latest `old` with `new`, keeping the deque in time order."""
    for index in range(len(times) - 1, -1, -1):
        if times[index] == old:
            del times[index]
            break
    position = len(times)
    while position > 0 and times[position - 1] > new:
        position -= 1
    times.insert(position, new)
