"""The pacing scheduler keeps every IBKR historical-data rule, measured on a fake clock."""

import asyncio

from backend.ibkr.pacing import PacingLimits, PacingScheduler


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scheduler(fake: FakeTime, **limits) -> PacingScheduler:
    return PacingScheduler(PacingLimits(**limits), monotonic=fake.monotonic, sleep=fake.sleep)


def violations(sent: list[tuple[float, str, str]], limits: PacingLimits) -> list[str]:
    """Check a send log against IBKR's three rules, independently of the scheduler's code."""
    found = []
    for index, (at, contract, request) in enumerate(sent):
        earlier = sent[:index]
        if any(r == request and at - t < limits.identical_window_s for t, _, r in earlier):
            found.append(f"identical request within {limits.identical_window_s}s at {at}")
        same = [t for t, c, _ in earlier if c == contract and at - t < limits.per_contract_window_s]
        if len(same) + 1 > limits.per_contract_max:
            found.append(f"{len(same) + 1} requests for {contract} within 2s at {at}")
        window = [t for t, _, _ in earlier if at - t < limits.global_window_s]
        if len(window) + 1 > limits.global_max:
            found.append(f"{len(window) + 1} requests within 10 minutes at {at}")
    return found


async def send_all(pacer: PacingScheduler, fake: FakeTime, requests: list[tuple[str, str]]):
    sent = []
    for contract, request in requests:
        await pacer.acquire(contract, request)
        sent.append((fake.now, contract, request))
    return sent


async def test_hundred_requests_break_no_rule_and_waste_little_time():
    fake = FakeTime()
    pacer = scheduler(fake)
    requests = [(f"C{i % 3}", f"C{i % 3}|chunk{i}") for i in range(100)]
    sent = await send_all(pacer, fake, requests)
    assert violations(sent, pacer.limits) == []
    # 100 requests at 60 per 10 minutes need one full window of waiting, and not much more.
    elapsed = sent[-1][0] - sent[0][0]
    assert 600 <= elapsed < 650
    assert pacer.stats.requests == 100 and pacer.stats.waits > 0


async def test_same_contract_burst_waits_for_the_two_second_window():
    fake = FakeTime()
    pacer = scheduler(fake)
    sent = await send_all(pacer, fake, [("NVDA", f"NVDA|{i}") for i in range(6)])
    # Five go out back to back (spaced only to keep ib_insync's send queue empty)...
    assert sent[4][0] - sent[0][0] < 0.2
    # ...the sixth waits until the first has left the two-second window.
    assert sent[5][0] - sent[0][0] >= 2.0
    assert violations(sent, pacer.limits) == []


async def test_identical_request_waits_fifteen_seconds():
    fake = FakeTime()
    pacer = scheduler(fake)
    sent = await send_all(pacer, fake, [("NVDA", "same"), ("NVDA", "same")])
    assert sent[1][0] - sent[0][0] >= 15.0


async def test_concurrent_callers_are_served_in_turn_without_violations():
    fake = FakeTime()
    pacer = scheduler(fake)
    sent: list[tuple[float, str, str]] = []

    async def caller(i: int) -> None:
        await pacer.acquire("TSLA", f"TSLA|{i}")
        sent.append((fake.now, "TSLA", f"TSLA|{i}"))

    await asyncio.gather(*(caller(i) for i in range(12)))
    assert len(sent) == 12
    assert violations(sent, pacer.limits) == []


async def test_scaled_limits_shrink_every_window():
    limits = PacingLimits().scaled(0.01)
    assert (limits.identical_window_s, limits.per_contract_window_s, limits.global_window_s) == (
        0.15,
        0.02,
        6.0,
    )
    assert limits.global_max == 60 and limits.per_contract_max == 5
