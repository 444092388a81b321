"""Strategy math on price series small enough to check by hand, and parameter validation."""

from datetime import UTC, datetime, timedelta

import pytest

from backend.workflows.strategies import (
    RsiMeanReversion,
    SmaCrossover,
    StrategyInputError,
    bars_frame,
    default_registry,
)

DAY0 = datetime(2025, 1, 1, tzinfo=UTC)


def frame(closes):
    return bars_frame(
        [(DAY0 + timedelta(days=i), c, c, c, c, 1000.0) for i, c in enumerate(closes)]
    )


def signals(output):
    return [((s.timestamp - DAY0).days, s.signal, s.price) for s in output.signals]


def test_sma_crossover_signals_where_the_averages_cross():
    # SMA2 - SMA3 is negative up to bar 5 (1.5 vs 1.67), positive from bar 6 (2.5 vs 2.0)
    # to bar 9 (4.5 vs 4.33), negative again at bar 10 (3.5 vs 4.0).
    closes = [5, 4, 3, 2, 1, 2, 3, 4, 5, 4, 3, 2, 1]
    strategy = SmaCrossover()
    output = strategy.run(frame(closes), strategy.resolve_parameters({"fast": 2, "slow": 3}))

    assert signals(output) == [(6, "buy", 3.0), (10, "sell", 3.0)]
    assert output.indicators["sma_2"].iloc[6] == 2.5
    assert output.indicators["sma_3"].iloc[6] == 2.0


@pytest.mark.parametrize(
    ("closes", "gap_signs", "expected"),
    [
        # Above, touching, above, touching: the fast average never went below, so no signal.
        ([10, 10, 11, 9, 14, 4], [1, 0, 1, 0], []),
        # Below, touching, below, touching, above: one buy, when it actually gets above.
        ([10, 10, 8, 12, 3, 21, 10], [-1, 0, -1, 0, 1], [(6, "buy", 10.0)]),
    ],
)
def test_sma_touching_is_not_crossing(closes, gap_signs, expected):
    # With fast=2, slow=3 the gap SMA2 - SMA3 is (c[i] + c[i-1] - 2 c[i-2]) / 6.
    strategy = SmaCrossover()
    output = strategy.run(frame(closes), strategy.resolve_parameters({"fast": 2, "slow": 3}))
    gap = (output.indicators["sma_2"] - output.indicators["sma_3"]).iloc[2:].round(9)
    assert [int((value > 0) - (value < 0)) for value in gap] == gap_signs
    assert signals(output) == expected


def test_rsi_signals_on_entering_oversold_and_overbought():
    # period 2 (alpha 1/2): RSI from bar 2 is 100, 50, 25, 12.5, 56.25, 78.125, 89.0625.
    closes = [10, 11, 12, 11, 10, 9, 10, 11, 12]
    strategy = RsiMeanReversion()
    output = strategy.run(frame(closes), strategy.resolve_parameters({"period": 2}))

    assert list(output.indicators["rsi_2"].iloc[2:]) == [100, 50, 25, 12.5, 56.25, 78.125, 89.0625]
    # Bar 2 starts above 70 but nobody saw it get there: no sell. Bar 4 enters oversold, bar 7
    # enters overbought.
    assert signals(output) == [(4, "buy", 10.0), (7, "sell", 11.0)]


def test_rsi_is_undefined_on_a_flat_series_and_gives_no_signal():
    strategy = RsiMeanReversion()
    output = strategy.run(frame([7.0] * 10), strategy.resolve_parameters({"period": 3}))
    assert output.indicators["rsi_3"].isna().all()
    assert output.signals == []


@pytest.mark.parametrize("strategy", [SmaCrossover(), RsiMeanReversion()])
def test_too_few_bars_or_none_give_no_signals(strategy):
    params = strategy.resolve_parameters({})
    assert strategy.run(frame([]), params).signals == []
    assert strategy.run(frame([1, 2, 3]), params).signals == []


def test_defaults_fill_missing_parameters_with_their_types():
    assert SmaCrossover().resolve_parameters(None) == {"fast": 10, "slow": 30}
    resolved = RsiMeanReversion().resolve_parameters({"oversold": 25})
    assert resolved == {"period": 14, "oversold": 25.0, "overbought": 70.0}
    assert isinstance(resolved["oversold"], float)
    assert isinstance(SmaCrossover().resolve_parameters({"fast": 4.0})["fast"], int)


@pytest.mark.parametrize(
    ("strategy", "params", "field", "message"),
    [
        (SmaCrossover(), {"fast": 30, "slow": 10}, "params.fast", "fast must be less than slow"),
        (SmaCrossover(), {"fast": 30}, "params.fast", "fast must be less than slow"),
        (SmaCrossover(), {"fast": 2.5}, "params.fast", "fast must be a whole number"),
        (SmaCrossover(), {"fast": True}, "params.fast", "fast must be a number"),
        (SmaCrossover(), {"fast": "5"}, "params.fast", "fast must be a number"),
        (SmaCrossover(), {"fast": 1}, "params.fast", "fast must be at least 2"),
        (SmaCrossover(), {"slow": 1000}, "params.slow", "slow must be at most 400"),
        (SmaCrossover(), {"speed": 3}, "params.speed", "has no parameter 'speed'"),
        (
            RsiMeanReversion(),
            {"oversold": 50, "overbought": 50},
            "params.oversold",
            "oversold must be less than overbought",
        ),
        (RsiMeanReversion(), {"overbought": float("nan")}, "params.overbought", "a number"),
    ],
)
def test_bad_parameters_are_refused_naming_the_parameter(strategy, params, field, message):
    with pytest.raises(StrategyInputError, match=message) as raised:
        strategy.resolve_parameters(params)
    assert raised.value.field == field


def test_registry_lists_the_strategies_and_names_them_on_an_unknown_one():
    registry = default_registry()
    assert [strategy.name for strategy in registry.all()] == ["sma_crossover", "rsi_mean_reversion"]
    assert registry.get("rsi_mean_reversion").name == "rsi_mean_reversion"
    with pytest.raises(StrategyInputError, match="choose one of rsi_mean_reversion, sma_crossover"):
        registry.get("momentum")
