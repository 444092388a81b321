"""RSI mean reversion: buy when RSI falls into oversold, sell when it rises into overbought."""

from collections.abc import Mapping

import pandas as pd

from backend.workflows.strategies.base import (
    Number,
    ParameterSpec,
    Strategy,
    became_true,
    known,
    signal_series,
)


def rsi(closes: pd.Series, period: int) -> pd.Series:
    """Relative strength index with Wilder's smoothing (exponential, alpha = 1/period), 0..100.

    NaN until `period` price changes are known, and on a flat stretch where nothing moved.
    """
    change = closes.diff()
    smoothing = {"alpha": 1 / period, "adjust": False, "min_periods": period}
    average_gain = change.clip(lower=0).ewm(**smoothing).mean()
    average_loss = (-change).clip(lower=0).ewm(**smoothing).mean()
    total = average_gain + average_loss
    return (100 * average_gain / total).where(total > 0)


class RsiMeanReversion(Strategy):
    name = "rsi_mean_reversion"
    description = (
        "Buys when the RSI of the close falls below the oversold level, sells when it rises "
        "above the overbought level."
    )
    parameters = (
        ParameterSpec("period", "int", 14, 2, 100, "bars in the RSI"),
        ParameterSpec("oversold", "float", 30.0, 1.0, 50.0, "RSI level below which to buy"),
        ParameterSpec("overbought", "float", 70.0, 50.0, 99.0, "RSI level above which to sell"),
    )

    ordered = (("oversold", "overbought"),)

    def minimum_bars(self, params: Mapping[str, Number]) -> int:
        # `period` changes need period + 1 closes, and entering a zone needs one bar before it.
        return int(params["period"]) + 2

    def compute_indicators(self, closes: pd.Series, params: Mapping[str, Number]) -> pd.DataFrame:
        period = int(params["period"])
        return pd.DataFrame({f"rsi_{period}": rsi(closes, period)}, index=closes.index)

    def signal_marks(self, indicators: pd.DataFrame, params: Mapping[str, Number]) -> pd.Series:
        value = indicators[f"rsi_{int(params['period'])}"]
        oversold = known(value < params["oversold"], value)
        overbought = known(value > params["overbought"], value)
        return signal_series(buy=became_true(oversold), sell=became_true(overbought))
