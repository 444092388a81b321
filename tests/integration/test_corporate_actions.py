"""Splits and dividends through the real client against a simulator whose clock moves: the cache
detects a changed price basis with at most one extra request per fetch, heals the whole cached
series in one go, records the action, and never mixes price scales."""

import math
from datetime import UTC

import numpy as np
import pytest

from backend.market_data.domain import parse_series
from backend.storage.market_data_repository import BarFilter
from tests.support.gateway import FakeClock
from tests.support.gateway import evening as at
from tests.support.gateway import move_clock as move
from tests.support.migrations import migrate_to_head


def closes_by_day(bars) -> dict:
    return dict(zip(bars.timestamps(), bars.close.tolist(), strict=True))


def assert_one_scale(bars) -> None:
    closes = bars.close
    returns = np.abs(np.diff(np.log(closes)))
    assert (returns < math.log(3)).all(), f"a jump of {returns.max():.2f} in log price"


async def test_nvda_split_rescales_the_cached_history_once(
    migrated_database_url, moving_sim, build_container
):
    series = parse_series("NVDA", "1d")
    clock = FakeClock(at(2024, 5, 31))
    container = build_container(migrated_database_url, moving_sim.port, clock)
    service = container.market_data_service()
    before = await service.read_series(series, at(2024, 1, 2, 0), clock.now)
    assert_one_scale(before.bars)
    cached = container.market_data_repository().read_segments(series, at(2024, 1, 1), clock.now)
    assert {segment.price_basis_at.astimezone(UTC) for segment in cached} == {at(2024, 5, 31)}

    move(moving_sim, clock, at(2024, 7, 31))
    requests = moving_sim.stats()["historical_requests"]
    after = await service.read_series(series, at(2024, 1, 2, 0), clock.now)
    extra = moving_sim.stats()["historical_requests"] - requests

    old, new = closes_by_day(before.bars), closes_by_day(after.bars)
    for stamp, close in old.items():
        assert new[stamp] == pytest.approx(close / 10, rel=1e-9)
    volume_before = dict(zip(before.bars.timestamps(), before.bars.volume.tolist(), strict=True))
    volume_after = dict(zip(after.bars.timestamps(), after.bars.volume.tolist(), strict=True))
    assert all(volume_after[s] == pytest.approx(v * 10) for s, v in volume_before.items())
    assert_one_scale(after.bars)
    # The July bars in one request, and one for the anchors.
    assert extra == 2
    actions = container.market_data_repository().corporate_actions(BarFilter(symbol="NVDA"))
    assert [(a.kind, a.healed, a.factor) for a in actions] == [("split", "rescaled", 10.0)]
    assert actions[0].bars_changed == len(old)
    summary = container.market_data_repository().series_summary(series)
    assert summary.basis_at.astimezone(UTC) == at(2024, 7, 31)
    # Each segment records its basis: the rescaled ones and July's new ones alike, 31 July.
    segments = container.market_data_repository().read_segments(series, at(2024, 1, 1), clock.now)
    assert len(segments) == 7
    assert {segment.price_basis_at.astimezone(UTC) for segment in segments} == {at(2024, 7, 31)}


async def test_tsla_three_for_one(migrated_database_url, moving_sim, build_container):
    series = parse_series("TSLA", "1d")
    clock = FakeClock(at(2022, 8, 19))
    move(moving_sim, clock, clock.now)
    container = build_container(migrated_database_url, moving_sim.port, clock)
    service = container.market_data_service()
    before = await service.read_series(series, at(2022, 6, 1, 0), clock.now)

    move(moving_sim, clock, at(2022, 9, 30))
    after = await service.read_series(series, at(2022, 6, 1, 0), clock.now)

    new = closes_by_day(after.bars)
    for stamp, close in closes_by_day(before.bars).items():
        assert new[stamp] == pytest.approx(close / 3, rel=1e-9)
    assert_one_scale(after.bars)
    actions = container.market_data_repository().corporate_actions()
    assert [(a.symbol, a.factor) for a in actions] == [("TSLA", 3.0)]


async def test_minute_bars_across_the_split_heal_the_same_way(
    migrated_database_url, moving_sim, build_container
):
    series = parse_series("NVDA", "1m")
    clock = FakeClock(at(2024, 6, 7))
    move(moving_sim, clock, clock.now)
    service = build_container(migrated_database_url, moving_sim.port, clock).market_data_service()
    before = await service.read_series(series, at(2024, 6, 6, 0), clock.now)

    move(moving_sim, clock, at(2024, 6, 11))
    after = await service.read_series(series, at(2024, 6, 6, 0), clock.now)

    new = closes_by_day(after.bars)
    for stamp, close in closes_by_day(before.bars).items():
        assert new[stamp] == pytest.approx(close / 10, rel=1e-9)
    assert_one_scale(after.bars)


async def test_a_dividend_on_adjusted_last_fetches_the_series_again(
    migrated_database_url, moving_sim, build_container
):
    series = parse_series("KO", "1d", exchange="NYSE", what_to_show="ADJUSTED_LAST")
    clock = FakeClock(at(2024, 5, 31))
    container = build_container(migrated_database_url, moving_sim.port, clock)
    service = container.market_data_service()
    await service.read_series(series, at(2024, 3, 1, 0), clock.now)

    # KO goes ex-dividend in June: ADJUSTED_LAST as of July scales every earlier bar.
    move(moving_sim, clock, at(2024, 7, 31))
    after = await service.read_series(series, at(2024, 3, 1, 0), clock.now)

    fresh = build_container(migrated_database_url, moving_sim.port, clock)
    repository = fresh.market_data_repository()
    actions = repository.corporate_actions(BarFilter(symbol="KO"))
    assert [(a.kind, a.healed) for a in actions] == [("adjustment", "refetched")]
    assert 0.9 < actions[0].factor < 1.0 or 1.0 < actions[0].factor < 1.1
    # Every bar is on the new basis: equal to what IBKR answers as of July.
    direct = await fresh.ibkr_client().fetch_bars(series, at(2024, 3, 1, 0), clock.now)
    assert after.bars.close.tolist() == [bar.close for bar in direct]


async def test_no_action_means_no_detection_over_a_year_of_ten_symbols(
    migrated_database_url, moving_sim, build_container
):
    listed = {"MSFT": "NASDAQ", "META": "NASDAQ", "AMD": "NASDAQ", "INTC": "NASDAQ"}
    listed |= {"NFLX": "NASDAQ", "CSCO": "NASDAQ", "ADBE": "NASDAQ", "IBM": "NYSE"}
    listed |= {"XOM": "NYSE", "DIS": "NYSE"}
    clock = FakeClock(at(2025, 6, 30))
    move(moving_sim, clock, clock.now)
    container = build_container(migrated_database_url, moving_sim.port, clock)
    service = container.market_data_service()
    for symbol, exchange in listed.items():
        daily = parse_series(symbol, "1d", exchange=exchange)
        await service.read_series(daily, at(2024, 7, 1, 0), clock.now)
    await service.read_series(parse_series("MSFT", "1m"), at(2025, 6, 26, 0), clock.now)

    move(moving_sim, clock, at(2025, 7, 31))
    requests = moving_sim.stats()["historical_requests"]
    for symbol, exchange in listed.items():
        daily = parse_series(symbol, "1d", exchange=exchange)
        await service.read_series(daily, at(2024, 7, 1, 0), clock.now)
    await service.read_series(parse_series("MSFT", "1m"), at(2025, 6, 26, 0), at(2025, 7, 2, 0))
    extending = moving_sim.stats()["historical_requests"] - requests

    assert container.market_data_repository().corporate_actions() == []
    # Per series extended: one request for its new bars and one for its anchors (the 1-minute
    # series' new bars are 1 July's session: cached through 30 June).
    assert extending == len(listed) * 2 + (1 + 1)


async def test_verify_finds_drift_and_repair_heals_it(
    migrated_database_url, moving_sim, build_container
):
    series = parse_series("NVDA", "1d")
    clock = FakeClock(at(2024, 5, 31))
    container = build_container(migrated_database_url, moving_sim.port, clock)
    service = container.market_data_service()
    await service.read_series(series, at(2024, 1, 2, 0), clock.now)
    unchanged = await service.verify_series(series, samples=3)
    assert (unchanged.segments_checked, unchanged.bars_drifted) == (3, 0)
    assert unchanged.bars_compared > 40

    # The split passes while the cache is not asked for NVDA: only a verify sees it.
    move(moving_sim, clock, at(2024, 7, 31))
    requests = moving_sim.stats()["historical_requests"]
    found = await service.verify_series(series, samples=3)
    assert found.drift and found.bars_drifted == found.bars_compared
    assert found.factor == pytest.approx(10, rel=1e-3) and found.healed is None
    # One request a sampled month of daily bars.
    assert moving_sim.stats()["historical_requests"] - requests == 3

    repaired = await service.verify_series(series, samples=3, repair=True)
    assert repaired.healed == "rescaled"
    assert (await service.verify_series(series, samples=3)).bars_drifted == 0


async def test_a_strategy_across_the_split_sees_one_scale_and_its_lineage_says_why(
    migrated_database_url, moving_sim, build_container, tmp_path
):
    # A workflow before the split caches NVDA; one after it reads the same days healed, gives the
    # signals a cache filled only after the split gives, and its lineage names the new basis.
    clock = FakeClock(at(2024, 5, 31))
    container = build_container(migrated_database_url, moving_sim.port, clock)
    params = {"fast": 5, "slow": 20}
    before = await container.strategy_executor().execute(
        "sma_crossover", ["NVDA"], "1d", 150, params
    )

    move(moving_sim, clock, at(2024, 7, 31))
    after = await container.strategy_executor().execute(
        "sma_crossover", ["NVDA"], "1d", 211, params
    )

    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate_to_head(fresh_url)
    fresh = build_container(fresh_url, moving_sim.port, clock)
    reference = await fresh.strategy_executor().execute(
        "sma_crossover", ["NVDA"], "1d", 211, params
    )

    assert after.result["signals"] == reference.result["signals"]
    lineage = container.workflow_repository()
    (first,), (second,) = lineage.lineage_for(before.id), lineage.lineage_for(after.id)
    (clean,) = fresh.workflow_repository().lineage_for(reference.id)
    assert second.meta["checksum"] == clean.meta["checksum"] != first.meta["checksum"]
    assert first.meta["price_basis_at"] == at(2024, 5, 31).isoformat()
    assert second.meta["price_basis_at"] == at(2024, 7, 31).isoformat()
    (split,) = container.market_data_repository().corporate_actions(BarFilter(symbol="NVDA"))
    assert split.basis_from.astimezone(UTC) == at(2024, 5, 31)
    assert split.basis_to.astimezone(UTC) == at(2024, 7, 31)
