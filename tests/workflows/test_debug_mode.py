"""DEBUG_MODE workflows: served from a cache the simulator filled, with no gateway contact."""

import pytest
from dependency_injector import providers

from backend.market_data.domain import SeriesKey
from backend.storage.market_data_repository import BarFilter
from backend.storage.workflow_repository import WorkflowRepository
from backend.storage.workflow_tables import ExecutionStatus
from backend.workflows.executor import analysis_range
from tests.support.gateway import FakeClock, free_port
from tests.support.migrations import migrate_to_head
from tests.workflows.gaps import drop_bar_as_ibkr_did

pytestmark = [pytest.mark.workflow, pytest.mark.workflow_mode("debug")]

STRATEGY = "sma_crossover"
PARAMS = {"fast": 5, "slow": 20}
LOOKBACK_DAYS = 180


async def fill_cache(build_container, database_url, sim, symbols):
    """Run the workflow once in live mode (read-through), which stores every bar it needs."""
    container = build_container(database_url, sim.port, FakeClock())
    execution = await container.strategy_executor().execute(
        STRATEGY, symbols, "1d", LOOKBACK_DAYS, PARAMS
    )
    assert execution.status == ExecutionStatus.COMPLETED
    container.ib_connection().ib.disconnect()
    return execution


async def test_debug_runs_use_only_the_cache_and_replay_identically(
    migrated_database_url, sim, build_container
):
    live = await fill_cache(build_container, migrated_database_url, sim, ["NVDA", "TSLA"])
    before = sim.stats()

    debug = build_container(migrated_database_url, sim.port, FakeClock(), DEBUG_MODE=True)
    executor = debug.strategy_executor()
    first = await executor.execute(STRATEGY, ["NVDA", "TSLA"], "1d", LOOKBACK_DAYS, PARAMS)
    second = await executor.execute(STRATEGY, ["NVDA", "TSLA"], "1d", LOOKBACK_DAYS, PARAMS)

    after = sim.stats()
    assert after["connections_total"] == before["connections_total"]
    assert after["historical_requests"] == before["historical_requests"]
    assert not debug.ib_connection().connected

    for execution in (first, second):
        assert execution.status == ExecutionStatus.COMPLETED
        assert execution.debug_mode is True
        assert execution.parameters == PARAMS
        assert execution.result["per_symbol"]["NVDA"]["status"] == "ok"
    # The same bars give the same signals as the live run that filled the cache, every time.
    assert first.result["signals"] == second.result["signals"] == live.result["signals"]
    assert sum(len(signals) for signals in first.result["signals"].values()) > 0

    repository = debug.workflow_repository()
    lineage = [repository.lineage_for(run.id) for run in (first, second)]
    assert [record.symbol for record in lineage[0]] == ["NVDA", "TSLA"]
    for record in lineage[0]:
        assert record.meta["data_source"] == "cache"
        assert record.meta["cache_hit"] == "hit"
        assert record.meta["debug_mode"] is True
        assert record.meta["bar_count"] == first.result["per_symbol"][record.symbol]["bars"] > 100
        assert record.meta["fetched_at_min"] <= record.meta["fetched_at_max"]
    assert [r.meta["checksum"] for r in lineage[0]] == [r.meta["checksum"] for r in lineage[1]]
    live_lineage = repository.lineage_for(live.id)
    assert [r.meta["checksum"] for r in live_lineage] == [r.meta["checksum"] for r in lineage[0]]
    assert {r.meta["data_source"] for r in live_lineage} == {"ibkr"}
    # Each run says which price basis it read: the one the live run's fetch set, never checked
    # against IBKR in DEBUG_MODE.
    bases = [[r.meta["price_basis_at"] for r in runs] for runs in (live_lineage, *lineage)]
    assert bases[0] == bases[1] == bases[2] and None not in bases[0]

    logs = repository.logs_for(first.id)
    start = [log for log in logs if log.step == "start"]
    data_steps = [log for log in logs if log.step == "fetch_market_data"]
    assert len(start) == 1 and start[0].message.startswith("DEBUG MODE")
    assert "IBKR is not contacted" in start[0].message
    assert len(data_steps) == 2
    assert all(log.message.startswith("DEBUG MODE") for log in data_steps)
    assert not any("DEBUG MODE" in log.message for log in repository.logs_for(live.id))


async def test_debug_miss_fails_only_the_uncached_symbol(sqlite_url, sim, build_container):
    migrate_to_head(sqlite_url)
    await fill_cache(build_container, sqlite_url, sim, ["NVDA"])
    before = sim.stats()

    debug = build_container(sqlite_url, sim.port, FakeClock(), DEBUG_MODE=True)
    execution = await debug.strategy_executor().execute(
        STRATEGY, ["NVDA", "AAPL"], "1d", LOOKBACK_DAYS, PARAMS
    )

    assert execution.status == ExecutionStatus.PARTIAL
    per_symbol = execution.result["per_symbol"]
    assert per_symbol["NVDA"]["status"] == "ok"
    assert per_symbol["AAPL"]["status"] == "error"
    assert "make populate-cache SYMBOLS=AAPL" in per_symbol["AAPL"]["error"]
    assert execution.result["signals"]["AAPL"] == []
    assert "AAPL" in execution.error and "NVDA" not in execution.error

    repository = debug.workflow_repository()
    errors = [log for log in repository.logs_for(execution.id) if log.level == "ERROR"]
    assert len(errors) == 1
    assert errors[0].step == "fetch_market_data"
    assert errors[0].message.startswith("DEBUG MODE: AAPL")
    assert "make populate-cache SYMBOLS=AAPL EXCHANGE=NASDAQ DATA_TYPES=1d" in errors[0].message
    assert [record.symbol for record in repository.lineage_for(execution.id)] == ["NVDA"]
    assert sim.stats()["connections_total"] == before["connections_total"]


async def test_debug_mode_needs_no_gateway_and_fails_cleanly_on_an_empty_cache(
    sqlite_url, build_container
):
    migrate_to_head(sqlite_url)
    # Nothing listens on this port; DEBUG_MODE must not even try it.
    debug = build_container(sqlite_url, free_port(), FakeClock(), DEBUG_MODE=True)
    execution = await debug.strategy_executor().execute(
        "rsi_mean_reversion", ["NVDA", "TSLA"], "1h", 10
    )
    assert execution.status == ExecutionStatus.FAILED
    assert execution.finished_at is not None
    assert execution.error.startswith("every symbol failed")
    assert {item["status"] for item in execution.result["per_symbol"].values()} == {"error"}
    assert debug.ib_connection().last_error is None
    finish = debug.workflow_repository().logs_for(execution.id)[-1]
    assert (finish.step, finish.level) == ("finish", "ERROR")
    assert finish.message == "finished failed: 0 of 2 symbols ok"


class LogStoreDown(WorkflowRepository):
    """The workflow store failing mid-run: writing the start line raises."""

    def add_log(self, execution_id, step, level, message, created_at):
        if step == "start":
            raise OSError("disk full")
        super().add_log(execution_id, step, level, message, created_at)


async def test_a_crash_mid_run_still_ends_the_execution(sqlite_url, build_container):
    migrate_to_head(sqlite_url)
    debug = build_container(sqlite_url, free_port(), FakeClock(), DEBUG_MODE=True)
    debug.workflow_repository.override(providers.Singleton(LogStoreDown, database=debug.database))
    execution = await debug.strategy_executor().execute(STRATEGY, ["NVDA"], "1d", 30)

    assert execution.status == ExecutionStatus.FAILED
    assert execution.error == "workflow crashed: disk full"
    assert execution.finished_at is not None
    stored = debug.workflow_repository().get_execution(execution.id)
    assert stored.status == ExecutionStatus.FAILED


async def test_a_bar_ibkr_left_out_is_served_as_partial_in_debug_mode(
    migrated_database_url, sim, build_container
):
    await fill_cache(build_container, migrated_database_url, sim, ["NVDA", "TSLA"])
    debug = build_container(migrated_database_url, sim.port, FakeClock(), DEBUG_MODE=True)
    left_out = drop_bar_as_ibkr_did(debug, "NVDA", LOOKBACK_DAYS)

    execution = await debug.strategy_executor().execute(
        STRATEGY, ["NVDA", "TSLA"], "1d", LOOKBACK_DAYS, PARAMS
    )

    assert execution.status == ExecutionStatus.PARTIAL
    per_symbol = execution.result["per_symbol"]
    tsla_bars = per_symbol["TSLA"]["bars"]
    assert per_symbol["TSLA"] == {"status": "ok", "bars": tsla_bars}
    assert per_symbol["NVDA"] == {
        "status": "partial",
        "bars": tsla_bars - 1,
        "missing_bars": 1,
        "missing_ranges": [[stamp.isoformat() for stamp in left_out]],
    }
    warnings = [
        log.message
        for log in debug.workflow_repository().logs_for(execution.id)
        if log.level == "WARNING"
    ]
    assert warnings[0].startswith(
        f"DEBUG MODE: NVDA: 1 of {tsla_bars} expected bars are missing "
        f"({left_out[0].isoformat()} to {left_out[1].isoformat()})"
    )
    assert warnings[-1] == "finished partial: 1 of 2 symbols ok"


async def test_a_bar_deleted_from_the_cache_is_a_debug_miss_naming_it(
    sqlite_url, sim, build_container
):
    migrate_to_head(sqlite_url)
    await fill_cache(build_container, sqlite_url, sim, ["NVDA"])
    debug = build_container(sqlite_url, sim.port, FakeClock(), DEBUG_MODE=True)
    start, end = analysis_range("NASDAQ", FakeClock()(), LOOKBACK_DAYS)
    series = SeriesKey("NVDA", "NASDAQ", "1d")
    stamp = debug.market_data_repository().read_columns(series, start, end).timestamps()[10]
    debug.market_data_repository().delete_bars(
        BarFilter("NVDA", "NASDAQ", "1d", date_from=stamp, date_to=stamp)
    )

    execution = await debug.strategy_executor().execute(
        STRATEGY, ["NVDA"], "1d", LOOKBACK_DAYS, PARAMS
    )

    # Not known to be empty, so the cache is missing it: an error that says how to fill it.
    assert execution.status == ExecutionStatus.FAILED
    error = execution.result["per_symbol"]["NVDA"]["error"]
    assert f"missing {stamp.isoformat()} to " in error
    assert "make populate-cache SYMBOLS=NVDA" in error
