"""Trading strategies: one module per strategy, the shared contract in base, lookup in registry."""

from backend.workflows.strategies.base import (
    ParameterSpec,
    Signal,
    Strategy,
    StrategyInputError,
    StrategyOutput,
    bars_frame,
)
from backend.workflows.strategies.registry import StrategyRegistry, default_registry
from backend.workflows.strategies.rsi_mean_reversion import RsiMeanReversion
from backend.workflows.strategies.sma_crossover import SmaCrossover

__all__ = [
    "ParameterSpec",
    "RsiMeanReversion",
    "Signal",
    "SmaCrossover",
    "Strategy",
    "StrategyInputError",
    "StrategyOutput",
    "StrategyRegistry",
    "bars_frame",
    "default_registry",
]
