"""The database pacing ledger's grants on SQLite and PostgreSQL, on an injected clock."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from backend.ibkr.pacing import (
    InMemoryPacingLedger,
    PacingLimits,
    PacingScheduler,
    Slot,
    SlotRequest,
    wait_needed,
)
from backend.storage.database import Database
from backend.storage.pacing_ledger import SLOTS, DatabasePacingLedger
from tests.unit.test_pacing import violations

LIMITS = PacingLimits()
GATEWAY = "127.0.0.1:4002"


class WallClock:
    """A wall clock that moves only when a test (or a fake sleep) moves it."""

    def __init__(self) -> None:
        self.now = 1_780_000_000.0  # 2026, as time.time() would give

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def database(migrated_database_url):
    db = Database(migrated_database_url)
    yield db
    db.dispose()


@pytest.fixture
def clock():
    return WallClock()


@pytest.fixture
def ledgers(database, clock):
    """Two ledgers on one database: what two processes sharing a gateway each build."""
    built = [DatabasePacingLedger(database, GATEWAY, clock) for _ in range(2)]
    yield built
    for ledger in built:
        ledger.close()


def _rows(database: Database) -> int:
    with database.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(SLOTS)).scalar_one()


def test_two_ledgers_share_the_sixty_per_ten_minutes(ledgers, clock, database):
    first, second = ledgers
    for n in range(60):
        ledger = first if n % 2 else second
        grant = ledger.take_now(SlotRequest(f"C{n}", f"R{n}"), LIMITS)
        assert grant.granted, n
        clock.now += 1.0
    # The 61st waits for the first slot to leave the window, whichever process asks.
    refused = first.take_now(SlotRequest("new", "new"), LIMITS)
    assert not refused.granted
    assert refused.wait_s == pytest.approx(600 + LIMITS.safety_margin_s - 60)
    assert _rows(database) == 60  # a refusal records nothing
    clock.now += refused.wait_s
    assert second.take_now(SlotRequest("new", "new"), LIMITS).granted


def test_identical_and_per_contract_rules_hold_across_ledgers(ledgers, clock):
    first, second = ledgers
    assert first.take_now(SlotRequest("NVDA", "same"), LIMITS).granted
    clock.now += 1.0
    refused = second.take_now(SlotRequest("NVDA", "same"), LIMITS)
    assert refused.wait_s == pytest.approx(15 + LIMITS.safety_margin_s - 1)
    for n in range(LIMITS.per_contract_max - 1):
        clock.now += 0.05
        ledger = ledgers[n % 2]
        assert ledger.take_now(SlotRequest("NVDA", f"other {n}"), LIMITS).granted
    clock.now += 0.05
    burst = first.take_now(SlotRequest("NVDA", "one more"), LIMITS)
    assert not burst.granted
    # The oldest of the five in the 2 s window was granted 1.25 s ago.
    assert burst.wait_s == pytest.approx(2 + LIMITS.safety_margin_s - 1.25)
    assert second.take_now(SlotRequest("TSLA", "one more"), LIMITS).granted


def test_gateways_have_budgets_of_their_own(database, clock):
    one = DatabasePacingLedger(database, "host-a:4002", clock)
    other = DatabasePacingLedger(database, "host-b:4002", clock)
    try:
        assert one.take_now(SlotRequest("NVDA", "same"), LIMITS).granted
        assert other.take_now(SlotRequest("NVDA", "same"), LIMITS).granted
        assert not one.take_now(SlotRequest("NVDA", "same"), LIMITS).granted
    finally:
        one.close()
        other.close()


def test_old_slots_are_pruned_and_block_nobody(ledgers, clock, database):
    # A process takes the whole window's budget and dies: its rows are plain timestamps.
    first, second = ledgers
    for n in range(60):
        assert first.take_now(SlotRequest(f"C{n}", f"R{n}"), LIMITS).granted
        clock.now += LIMITS.min_interval_s
    first.close()
    assert not second.take_now(SlotRequest("x", "x"), LIMITS).granted
    clock.now += LIMITS.horizon_s + 1
    assert second.take_now(SlotRequest("x", "x"), LIMITS).granted
    assert _rows(database) == 1  # the dead process's 60 rows are gone


def test_restamp_moves_the_slot_to_when_the_request_left(ledgers, clock):
    first, second = ledgers
    request = SlotRequest("NVDA", "late")
    grant = first.take_now(request, LIMITS)
    first.restamp(grant, request, clock.now + 5.0)
    first._executor.submit(lambda: None).result()  # the restamp has run
    assert [slot.granted_at for slot in second.slots()] == [clock.now + 5.0]
    clock.now += 15.0 + LIMITS.safety_margin_s + 1
    # Counted from the restamped time, the identical request must still wait 4 s.
    refused = second.take_now(request, LIMITS)
    assert refused.wait_s == pytest.approx(4.0)


async def test_schedulers_of_two_processes_break_no_rule_together(ledgers, clock):
    schedulers = [PacingScheduler(LIMITS, sleep=clock.sleep, ledger=ledger) for ledger in ledgers]
    sent = []
    for n in range(90):
        contract, request = f"C{n % 3}", f"C{n % 3}|chunk{n}"
        await schedulers[n % 2].acquire(contract, request)
        sent.append((clock.now, contract, request))
    assert violations(sent, LIMITS) == []
    # 90 requests at 60 per 10 minutes: one window of waiting, and little more.
    assert 600 <= sent[-1][0] - sent[0][0] < 610


async def test_scheduler_restamps_in_the_shared_ledger(ledgers, clock):
    first, second = ledgers
    scheduler = PacingScheduler(LIMITS, sleep=clock.sleep, ledger=first)
    await scheduler.acquire("NVDA", "late")
    clock.now += 3.0
    scheduler.sent("NVDA", "late")
    first._executor.submit(lambda: None).result()
    assert [slot.granted_at for slot in second.slots()] == [clock.now]


def test_weights_count_in_both_windows():
    limits = PacingLimits(safety_margin_s=0.0, min_interval_s=0.0)
    slots = [Slot(0.0, "ES", "a", 2), Slot(0.1, "ES", "b", 2)]
    # Four counted for ES: a request of weight 2 would be the sixth; 1 still fits.
    assert wait_needed(slots, SlotRequest("ES", "c", 2), 0.2, limits) == pytest.approx(1.8)
    assert wait_needed(slots, SlotRequest("ES", "c", 1), 0.2, limits) <= 0


async def test_in_memory_ledger_is_todays_one_process_budget():
    clock = WallClock()
    scheduler = PacingScheduler(LIMITS, sleep=clock.sleep, ledger=InMemoryPacingLedger(clock))
    start = clock.now
    for n in range(61):
        await scheduler.acquire(f"C{n}", f"R{n}")
    # The 61st went out when the first left the 10-minute window (and its margin).
    assert clock.now - start == pytest.approx(600 + LIMITS.safety_margin_s)
