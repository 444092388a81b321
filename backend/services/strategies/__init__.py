"""Trading strategies: one module per strategy, the shared contract in base, lookup in registry."""

from backend.services.strategies.base import (
    ParameterSpec,
    Signal,
    Strategy,
    StrategyInputError,
    StrategyOutput,
    bars_frame,
)
from backend.services.strategies.registry import StrategyRegistry, default_registry
from backend.services.strategies.rsi_mean_reversion import RsiMeanReversion
from backend.services.strategies.sma_crossover import SmaCrossover

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
