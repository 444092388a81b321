"""A running workflow execution is heartbeaten by its process, so other replicas leave it alone."""

import asyncio
from datetime import timedelta

from backend.storage.workflow_tables import ExecutionStatus, WorkflowExecution
from tests.support.gateway import FakeClock


async def test_a_running_execution_is_heartbeaten_and_no_sweep_interrupts_it(
    migrated_database_url, sim, build_container
):
    clock = FakeClock()
    container = build_container(migrated_database_url, sim.port, clock, JOB_HEARTBEAT_S=0.05)
    executor = container.strategy_executor()
    repository = container.workflow_repository()
    # NVDA's answer takes a second: the execution is running meanwhile.
    sim.arm_fault("delay", seconds=1.0, symbol="NVDA")
    run = asyncio.create_task(
        executor.execute("sma_crossover", ["NVDA"], "1d", 60, {"fast": 5, "slow": 20})
    )

    def stored() -> WorkflowExecution:
        (execution,) = repository.list_executions(limit=1, offset=0)[0]
        return execution

    while not repository.list_executions(limit=1, offset=0)[0]:
        await asyncio.sleep(0.01)
    started = stored()
    assert started.owner == container.instance_id()
    # Ten minutes on: the heartbeat moves with the clock, and another replica's sweep (three
    # missed beats of 5 s) finds nothing stale, though the execution began ten minutes ago.
    clock.advance(minutes=10)
    while stored().heartbeat_at != clock():
        await asyncio.sleep(0.01)
    other_replicas_sweep = repository.interrupt_unfinished(
        "finish", "interrupted", clock(), clock() - timedelta(seconds=15)
    )
    assert other_replicas_sweep == []

    finished = await run
    assert finished.status == ExecutionStatus.COMPLETED
    assert stored().status == ExecutionStatus.COMPLETED
