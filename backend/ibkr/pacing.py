"""One historical-data pacing budget per gateway, kept inside IBKR's published limits.

IBKR answers error 162 "pacing violation" when, for historical data requests:
an identical request repeats within 15 s; 6 or more requests for one contract, exchange and tick
type go out within 2 s; or more than 60 go out in any 10 minutes. ib_insync enforces none of this.
Every fetch in the process (API, CLI, workflows) asks this scheduler for a slot first; the
scheduler takes each slot from a ledger, which the database shares between every process that
talks to the same gateway (backend.storage.pacing_ledger), or which lives in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

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

    @property
    def horizon_s(self) -> float:
        """How long a slot counts towards any rule: older slots can be forgotten."""
        return (
            max(self.global_window_s, self.identical_window_s, self.per_contract_window_s)
            + self.safety_margin_s
        )

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


@dataclass(frozen=True)
class SlotRequest:
    """What one historical request asks the budget for."""

    contract_key: str
    request_key: str
    # How many requests it counts as towards the windows (the client takes BID_ASK's second
    # count as a slot of its own, under a key of its own).
    weight: int = 1


@dataclass(frozen=True)
class Slot:
    """A slot granted to some request: when (wall-clock seconds, or the ledger's own clock)."""

    granted_at: float
    contract_key: str
    request_key: str
    weight: int = 1


@dataclass(frozen=True)
class SlotGrant:
    """A ledger's answer: the slot it recorded (`slot_id` names it), or how long to wait."""

    granted: bool
    wait_s: float = 0.0
    granted_at: float = 0.0
    slot_id: object = None


def wait_needed(
    slots: Sequence[Slot], request: SlotRequest, now: float, limits: PacingLimits
) -> float:
    """Seconds until `request` may go out without breaking a rule, given the slots granted.

    `slots` are in time order. 0 or less: it may go now. The one rule book every ledger applies.
    """
    margin = limits.safety_margin_s
    waits = [0.0]
    if slots:
        waits.append(slots[-1].granted_at + limits.min_interval_s - now)
    for slot in reversed(slots):
        if slot.request_key == request.request_key:
            waits.append(slot.granted_at + limits.identical_window_s + margin - now)
            break
    same_contract = [
        s
        for s in slots
        if s.contract_key == request.contract_key
        and s.granted_at > now - limits.per_contract_window_s - margin
    ]
    waits.append(
        _until_room(
            same_contract,
            request.weight,
            limits.per_contract_max,
            now,
            limits.per_contract_window_s + margin,
        )
    )
    recent = [s for s in slots if s.granted_at > now - limits.global_window_s - margin]
    waits.append(
        _until_room(recent, request.weight, limits.global_max, now, limits.global_window_s + margin)
    )
    return max(waits)


def _until_room(
    in_window: Sequence[Slot], weight: int, most: int, now: float, window: float
) -> float:
    """Wait until enough of the window's oldest slots have left it to fit `weight` more."""
    counted = sum(s.weight for s in in_window)
    if counted + weight <= most:
        return 0.0
    for slot in in_window:
        counted -= slot.weight
        if counted + weight <= most:
            return slot.granted_at + window - now
    return 0.0


class PacingLedger(Protocol):
    """Where granted slots are recorded: one process's memory, or a database shared by many.

    `take` is one atomic step: it checks the slots in the windows and records the new one, or
    answers how long to wait. A slot is a timestamp, not a lease: nothing is ever given back.
    """

    def now(self) -> float:
        """The ledger's clock, in seconds; every process sharing it must share the clock."""
        ...

    async def take(self, request: SlotRequest, limits: PacingLimits) -> SlotGrant: ...

    def restamp(self, grant: SlotGrant, request: SlotRequest, at: float) -> None:
        """Move a granted slot to `at`, when its request actually left; returns at once."""
        ...


class InMemoryPacingLedger:
    """The slots of this process alone: right when nothing else talks to the gateway."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._slots: list[Slot] = []
        self._next_id = 0

    def now(self) -> float:
        return self._clock()

    async def take(self, request: SlotRequest, limits: PacingLimits) -> SlotGrant:
        now = self._clock()
        horizon = now - limits.horizon_s
        if self._slots and self._slots[0].granted_at < horizon:
            self._slots = [s for s in self._slots if s.granted_at >= horizon]
        wait = wait_needed(self._slots, request, now, limits)
        if wait > 0:
            return SlotGrant(granted=False, wait_s=wait)
        self._slots.append(Slot(now, request.contract_key, request.request_key, request.weight))
        self._next_id += 1
        return SlotGrant(granted=True, granted_at=now, slot_id=self._next_id)

    def restamp(self, grant: SlotGrant, request: SlotRequest, at: float) -> None:
        for index in range(len(self._slots) - 1, -1, -1):
            slot = self._slots[index]
            if slot.granted_at == grant.granted_at and slot.request_key == request.request_key:
                del self._slots[index]
                break
        position = len(self._slots)
        while position > 0 and self._slots[position - 1].granted_at > at:
            position -= 1
        self._slots.insert(
            position, Slot(at, request.contract_key, request.request_key, request.weight)
        )


@dataclass
class PacingStats:
    requests: int = 0
    waits: int = 0
    waited_s: float = 0.0
    current_wait_s: float = 0.0


class PacingScheduler:
    """Hands out request slots in arrival order, waiting as long as IBKR's limits require.

    Callers in this process queue first come, first served; the one at the head takes its slot
    from the ledger, and between tries it sleeps holding nothing but its place in the queue.
    """

    def __init__(
        self,
        limits: PacingLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ledger: PacingLedger | None = None,
    ) -> None:
        self.limits = limits or PacingLimits()
        self.ledger: PacingLedger = ledger or InMemoryPacingLedger(monotonic)
        self._sleep = sleep
        # This process's latest grant of each request key, for sent() to restamp.
        self._granted: dict[str, tuple[SlotRequest, SlotGrant]] = {}
        self._lock: asyncio.Lock | None = None
        self.stats = PacingStats()

    async def acquire(self, contract_key: str, request_key: str, weight: int = 1) -> float:
        """Wait for a slot for one request; returns the seconds spent waiting."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        request = SlotRequest(contract_key, request_key, weight)
        waited = 0.0
        async with self._lock:
            while True:
                grant = await self.ledger.take(request, self.limits)
                if grant.granted:
                    break
                self.stats.current_wait_s = grant.wait_s
                self.stats.waits += 1
                await self._sleep(grant.wait_s)
                waited += grant.wait_s
            self.stats.current_wait_s = 0.0
            self.stats.waited_s += waited
            if waited > 0:
                metrics.PACING_WAITS.inc()
                metrics.PACING_WAIT_SECONDS.inc(waited)
            self.stats.requests += 1
            self._forget_before(grant.granted_at - self.limits.horizon_s)
            self._granted[request_key] = (request, grant)
        return waited

    def _forget_before(self, horizon: float) -> None:
        stale = [k for k, (_, g) in self._granted.items() if g.granted_at < horizon]
        for key in stale:
            del self._granted[key]

    def sent(self, contract_key: str, request_key: str) -> None:
        """Move the latest slot of this request to now: the moment it actually goes out.

        A busy event loop can start the send a while after the slot was granted; the gateway
        counts from arrival, so the windows must count from the later time, or a request that
        left late and the ones granted after it would crowd into one of IBKR's windows.
        """
        entry = self._granted.get(request_key)
        if entry is None:
            return
        request, grant = entry
        now = self.ledger.now()
        if now <= grant.granted_at:
            return
        self.ledger.restamp(grant, request, now)
        self._granted[request_key] = (
            request,
            SlotGrant(granted=True, granted_at=now, slot_id=grant.slot_id),
        )
