"""The strategies a workflow can run, looked up by name."""

from backend.workflows.strategies.base import Strategy, StrategyInputError
from backend.workflows.strategies.rsi_mean_reversion import RsiMeanReversion
from backend.workflows.strategies.sma_crossover import SmaCrossover


class StrategyRegistry:
    def __init__(self, strategies: list[Strategy]) -> None:
        self._by_name = {strategy.name: strategy for strategy in strategies}

    def all(self) -> list[Strategy]:
        return list(self._by_name.values())

    def get(self, name: str) -> Strategy:
        """The strategy called `name`; StrategyInputError naming the known ones otherwise."""
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(sorted(self._by_name))
            raise StrategyInputError(
                "strategy", f"unknown strategy {name!r}; choose one of {known}"
            ) from None


def default_registry() -> StrategyRegistry:
    return StrategyRegistry([SmaCrossover(), RsiMeanReversion()])
