"""SMA crossover: buy when the fast moving average crosses above the slow one, sell when below."""

from collections.abc import Mapping

import numpy as np
import pandas as pd

from backend.workflows.strategies.base import (
    Number,
    ParameterSpec,
    Strategy,
    became_true,
    known,
    signal_series,
)


class SmaCrossover(Strategy):
    name = "sma_crossover"
    description = (
        "Buys when the fast simple moving average of the close crosses above the slow one, "
        "sells when it crosses below."
    )
    parameters = (
        ParameterSpec("fast", "int", 10, 2, 200, "bars in the fast moving average"),
        ParameterSpec("slow", "int", 30, 3, 400, "bars in the slow moving average; more than fast"),
    )

    ordered = (("fast", "slow"),)

    def minimum_bars(self, params: Mapping[str, Number]) -> int:
        # The slow average needs `slow` bars, and a crossing needs one bar before it.
        return int(params["slow"]) + 1

    def compute_indicators(self, closes: pd.Series, params: Mapping[str, Number]) -> pd.DataFrame:
        fast, slow = int(params["fast"]), int(params["slow"])
        return pd.DataFrame(
            {
                f"sma_{fast}": closes.rolling(fast).mean(),
                f"sma_{slow}": closes.rolling(slow).mean(),
            },
            index=closes.index,
        )

    def signal_marks(self, indicators: pd.DataFrame, params: Mapping[str, Number]) -> pd.Series:
        fast, slow = (
            indicators[f"sma_{int(params['fast'])}"],
            indicators[f"sma_{int(params['slow'])}"],
        )
        # Bars where the averages are equal keep the side they were on, so touching is no crossing.
        side = np.sign(fast - slow).replace(0, np.nan).ffill()
        fast_above = known(side > 0, side)
        return signal_series(buy=became_true(fast_above), sell=became_true(1 - fast_above))
