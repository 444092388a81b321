"""Live-mode workflows (DEBUG_MODE=false): bars from the gateway, then from the cache."""

import time

import pytest
from dependency_injector import providers

from backend.market_data import calendar as market_calendar
from backend.market_data.domain import BarSize
from backend.storage.workflow_tables import ExecutionStatus
from backend.workflows.executor import StrategyExecutor, analysis_range
from tests.support.gateway import FakeClock, free_port
from tests.support.migrations import migrate_to_head
from tests.workflows.gaps import drop_bar_as_ibkr_did

pytestmark = [pytest.mark.workflow, pytest.mark.workflow_mode("live")]

PARAMS = {"period": 7, "oversold": 35.0, "overbought": 65.0}


async def test_live_run_fetches_from_the_gateway_then_reads_the_cache(
    migrated_database_url, live_gateway, build_container
):
    container = live_gateway.container(build_container, migrated_database_url)
    executor = container.strategy_executor()
    symbols = live_gateway.symbols

    first = await executor.execute("rsi_mean_reversion", symbols, "1d", 90, PARAMS)
    requests_after_first = live_gateway.historical_requests()
    second = await executor.execute("rsi_mean_reversion", symbols, "1d", 90, PARAMS)

    for execution in (first, second):
        assert execution.status == ExecutionStatus.COMPLETED
        assert execution.debug_mode is False
        assert all(item["bars"] > 50 for item in execution.result["per_symbol"].values())
    assert first.result["signals"] == second.result["signals"]

    repository = container.workflow_repository()
    first_lineage, second_lineage = (repository.lineage_for(run.id) for run in (first, second))
    assert [(r.meta["data_source"], r.meta["cache_hit"]) for r in first_lineage] == [
        ("ibkr", "miss")
    ] * len(symbols)
    assert [(r.meta["data_source"], r.meta["cache_hit"]) for r in second_lineage] == [
        ("cache", "hit")
    ] * len(symbols)
    assert [r.meta["checksum"] for r in first_lineage] == [
        r.meta["checksum"] for r in second_lineage
    ]
    assert all(record.meta["debug_mode"] is False for record in first_lineage)
    assert not any("DEBUG MODE" in log.message for log in repository.logs_for(first.id))
    if live_gateway.simulator is not None:
        assert requests_after_first == len(symbols)
        assert live_gateway.historical_requests() == requests_after_first


async def test_cache_disabled_goes_to_the_gateway_every_run(sqlite_url, sim, build_container):
    migrate_to_head(sqlite_url)
    container = build_container(sqlite_url, sim.port, FakeClock(), CACHE_ENABLED=False)
    executor = container.strategy_executor()
    runs = [await executor.execute("sma_crossover", ["NVDA"], "1h", 20) for _ in range(2)]

    assert sim.stats()["historical_requests"] == 2
    lineage = [container.workflow_repository().lineage_for(run.id)[0] for run in runs]
    assert [(r.meta["data_source"], r.meta["cache_hit"]) for r in lineage] == [
        ("ibkr", "bypass")
    ] * 2
    assert lineage[0].meta["checksum"] == lineage[1].meta["checksum"]
    assert container.market_data_repository().series_summaries(FakeClock()()) == []


async def test_unknown_symbol_fails_alone(sqlite_url, sim, build_container):
    migrate_to_head(sqlite_url)
    container = build_container(sqlite_url, sim.port, FakeClock())
    execution = await container.strategy_executor().execute(
        "sma_crossover", ["ZZZZ", "NVDA"], "1d", 60, {"fast": 3, "slow": 8}
    )

    assert execution.status == ExecutionStatus.PARTIAL
    assert execution.result["per_symbol"]["NVDA"]["status"] == "ok"
    assert execution.result["per_symbol"]["ZZZZ"] == {
        "status": "error",
        "bars": 0,
        "error": "IBKR has no stock ZZZZ on NASDAQ (error 200)",
    }
    errors = [
        log
        for log in container.workflow_repository().logs_for(execution.id)
        if log.level == "ERROR"
    ]
    assert [log.message for log in errors] == ["ZZZZ: IBKR has no stock ZZZZ on NASDAQ (error 200)"]


async def test_gateway_down_fails_every_symbol_with_what_to_check(sqlite_url, build_container):
    migrate_to_head(sqlite_url)
    port = free_port()
    container = build_container(sqlite_url, port, FakeClock())
    execution = await container.strategy_executor().execute(
        "sma_crossover", ["NVDA", "TSLA"], "1d", 30
    )

    assert execution.status == ExecutionStatus.FAILED
    for item in execution.result["per_symbol"].values():
        assert item["status"] == "error"
        assert f"IB Gateway at 127.0.0.1:{port} is unavailable" in item["error"]
    assert container.workflow_repository().lineage_for(execution.id) == []


async def test_a_slow_symbol_is_cut_off_at_its_deadline(sqlite_url, sim, build_container):
    migrate_to_head(sqlite_url)
    container = build_container(sqlite_url, sim.port, FakeClock())
    container.strategy_executor.override(
        providers.Singleton(
            StrategyExecutor,
            market_data_service=container.market_data_service,
            repository=container.workflow_repository,
            strategies=container.strategies,
            exchange="NASDAQ",
            debug_mode=False,
            clock=container.clock,
            symbol_deadline_s=0.5,
        )
    )
    sim.arm_fault("delay", count=1, symbol="TSLA", seconds=4)

    started = time.perf_counter()
    execution = await container.strategy_executor().execute(
        "sma_crossover", ["TSLA", "NVDA"], "1d", 30
    )
    elapsed = time.perf_counter() - started

    assert elapsed < 3
    assert execution.status == ExecutionStatus.PARTIAL
    assert execution.result["per_symbol"]["NVDA"]["status"] == "ok"
    assert execution.result["per_symbol"]["TSLA"]["error"].startswith("no data within 0.5 s")


async def test_the_run_deadline_ends_the_symbols_left_and_the_run(sqlite_url, sim, build_container):
    migrate_to_head(sqlite_url)
    container = build_container(sqlite_url, sim.port, FakeClock(), WORKFLOW_DEADLINE_S=1.5)
    sim.arm_fault("delay", count=1, symbol="TSLA", seconds=5)

    started = time.perf_counter()
    execution = await container.strategy_executor().execute(
        "sma_crossover", ["NVDA", "TSLA", "AAPL"], "1d", 30
    )
    elapsed = time.perf_counter() - started

    # Cut at 1.5 s, not at the symbol deadline (300 s) nor when the delayed answer comes (5 s).
    assert elapsed < 3
    assert execution.status == ExecutionStatus.PARTIAL
    assert execution.finished_at is not None
    per_symbol = execution.result["per_symbol"]
    assert per_symbol["NVDA"]["status"] == "ok"
    assert per_symbol["TSLA"]["status"] == "error"
    assert per_symbol["TSLA"]["error"].startswith(
        "stopped: the execution's deadline of 1.5 s (WORKFLOW_DEADLINE_S) passed while fetching"
    )
    assert per_symbol["AAPL"] == {
        "status": "error",
        "bars": 0,
        "error": "not run: the execution's deadline of 1.5 s (WORKFLOW_DEADLINE_S) passed "
        "first. Fill the cache first (make populate-cache), run fewer symbols at a time, "
        "or raise WORKFLOW_DEADLINE_S.",
    }
    assert "AAPL" not in sim.stats()["requests_by_symbol"]
    errors = [
        log.message
        for log in container.workflow_repository().logs_for(execution.id)
        if log.level == "ERROR"
    ]
    assert [message.split(":")[0] for message in errors] == ["TSLA", "AAPL"]


async def test_stale_bars_served_short_of_the_range_are_partial(
    migrated_database_url, sim, build_container
):
    clock = FakeClock()
    container = build_container(migrated_database_url, sim.port, clock)
    executor = container.strategy_executor()
    filled = await executor.execute("sma_crossover", ["NVDA", "TSLA"], "1d", 60)
    assert filled.status == ExecutionStatus.COMPLETED
    cached = filled.result["per_symbol"]["NVDA"]["bars"]

    # A longer lookback needs older NVDA bars, and IBKR keeps refusing them: the cache's 60 days
    # are served (stale-if-error) without the rest of the range.
    sim.arm_fault("pacing", count=20, symbol="NVDA")
    execution = await executor.execute("sma_crossover", ["NVDA", "TSLA"], "1d", 90)

    start, end = analysis_range("NASDAQ", clock(), 90)
    expected = market_calendar.expected_bar_count("NASDAQ", BarSize.D1, start, end)
    assert execution.status == ExecutionStatus.PARTIAL
    nvda = execution.result["per_symbol"]["NVDA"]
    assert nvda["status"] == "partial"
    assert nvda["bars"] == cached
    assert nvda["missing_bars"] == expected - cached > 0
    assert len(nvda["missing_ranges"]) == 1
    assert (
        nvda["missing_ranges"][0][0]
        == market_calendar.expected_bar_timestamps("NASDAQ", BarSize.D1, start, end)[0].isoformat()
    )
    assert execution.result["per_symbol"]["TSLA"] == {"status": "ok", "bars": expected}
    assert execution.error.startswith("1 of 2 symbols have missing bars. NVDA: ")

    logs = container.workflow_repository().logs_for(execution.id)
    warnings = [
        log.message for log in logs if log.level == "WARNING" and log.step == "fetch_market_data"
    ]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        f"NVDA: {expected - cached} of {expected} expected bars are missing"
    )
    assert (logs[-1].level, logs[-1].message) == ("WARNING", "finished partial: 1 of 2 symbols ok")


async def test_a_bar_ibkr_left_out_makes_the_symbol_partial_not_ok(
    migrated_database_url, sim, build_container
):
    clock = FakeClock()
    container = build_container(migrated_database_url, sim.port, clock)
    executor = container.strategy_executor()
    await executor.execute("sma_crossover", ["NVDA"], "1d", 60)
    left_out = drop_bar_as_ibkr_did(container, "NVDA", 60)
    requests = sim.stats()["historical_requests"]

    execution = await executor.execute("sma_crossover", ["NVDA"], "1d", 60)

    # Confirmed empty, so not asked again; the run says which bar its signals went without.
    assert sim.stats()["historical_requests"] == requests
    assert execution.status == ExecutionStatus.PARTIAL
    nvda = execution.result["per_symbol"]["NVDA"]
    assert nvda["status"] == "partial"
    assert nvda["missing_bars"] == 1
    assert nvda["missing_ranges"] == [[stamp.isoformat() for stamp in left_out]]
    lineage = container.workflow_repository().lineage_for(execution.id)
    assert lineage[0].meta["bar_count"] == nvda["bars"]
