"""The strategy contract: typed parameters, indicators computed from bars, and buy/sell signals."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

import pandas as pd

Number = int | float


class StrategyInputError(ValueError):
    """Input a strategy cannot run with; `field` names the input at fault, e.g. "params.fast"."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    type: Literal["int", "float"]
    default: Number
    min: Number | None
    max: Number | None
    description: str

    def coerce(self, value: object) -> Number:
        """The value as this parameter's type, or StrategyInputError saying what is allowed."""
        field = f"params.{self.name}"
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise StrategyInputError(field, f"{self.name} must be a number (got {value!r})")
        if self.type == "int":
            if isinstance(value, float) and not value.is_integer():
                raise StrategyInputError(
                    field, f"{self.name} must be a whole number (got {value!r})"
                )
            value = int(value)
        else:
            value = float(value)
        if self.min is not None and value < self.min:
            raise StrategyInputError(
                field, f"{self.name} must be at least {self.min} (got {value})"
            )
        if self.max is not None and value > self.max:
            raise StrategyInputError(field, f"{self.name} must be at most {self.max} (got {value})")
        return value


@dataclass(frozen=True)
class Signal:
    timestamp: datetime
    signal: Literal["buy", "sell"]
    price: float

    def to_json(self) -> dict[str, object]:
        return {"timestamp": self.timestamp.isoformat(), "signal": self.signal, "price": self.price}


@dataclass(frozen=True)
class StrategyOutput:
    # One row per bar, one column per indicator; NaN until an indicator has enough bars.
    indicators: pd.DataFrame
    signals: list[Signal]


class Strategy(ABC):
    """A named rule set: declared parameters, and signals computed from closing prices."""

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[tuple[ParameterSpec, ...]]

    def resolve_parameters(self, given: Mapping[str, object] | None) -> dict[str, Number]:
        """Given values checked and typed, defaults filled in; StrategyInputError on a bad one."""
        given = dict(given or {})
        known = {spec.name for spec in self.parameters}
        for name in given:
            if name not in known:
                allowed = ", ".join(sorted(known))
                raise StrategyInputError(
                    f"params.{name}", f"{self.name} has no parameter {name!r}; it takes {allowed}"
                )
        resolved = {
            spec.name: spec.coerce(given[spec.name]) if spec.name in given else spec.default
            for spec in self.parameters
        }
        self.check(resolved)
        return resolved

    # Pairs of parameters whose first must be less than its second (e.g. fast < slow).
    ordered: tuple[tuple[str, str], ...] = ()

    def check(self, params: Mapping[str, Number]) -> None:
        """Rules between parameters; raise StrategyInputError when one is broken."""
        for lower, upper in self.ordered:
            if params[lower] >= params[upper]:
                raise StrategyInputError(
                    f"params.{lower}",
                    f"{lower} must be less than {upper} "
                    f"(got {lower}={params[lower]}, {upper}={params[upper]})",
                )

    @abstractmethod
    def minimum_bars(self, params: Mapping[str, Number]) -> int:
        """Bars needed before the first signal is possible."""

    @abstractmethod
    def compute_indicators(self, closes: pd.Series, params: Mapping[str, Number]) -> pd.DataFrame:
        """Indicator columns indexed like `closes`."""

    @abstractmethod
    def signal_marks(self, indicators: pd.DataFrame, params: Mapping[str, Number]) -> pd.Series:
        """Per bar: "buy", "sell", or None."""

    def run(self, bars: pd.DataFrame, params: Mapping[str, Number]) -> StrategyOutput:
        """Indicators and signals for bars with a UTC DatetimeIndex and a `close` column."""
        closes = bars["close"].astype(float)
        indicators = self.compute_indicators(closes, params)
        marks = self.signal_marks(indicators, params)
        signals = [
            Signal(timestamp.to_pydatetime(), mark, float(closes[timestamp]))
            for timestamp, mark in marks.items()
            if mark in ("buy", "sell")
        ]
        return StrategyOutput(indicators, signals)


def known(condition: pd.Series, where: pd.Series) -> pd.Series:
    """`condition` as 1.0 / 0.0 where `where` is not NaN, NaN elsewhere (not yet known)."""
    return condition.astype("float64").where(where.notna())


def became_true(state: pd.Series) -> pd.Series:
    """True on bars where `state` is 1 and was 0 on the bar before.

    NaN (unknown) never starts a change, so the first bar with a known state gives no signal:
    a signal needs a change that was seen happening.
    """
    return (state.shift(1) == 0) & (state == 1)


def signal_series(buy: pd.Series, sell: pd.Series) -> pd.Series:
    marks = pd.Series(None, index=buy.index, dtype="object")
    marks[buy] = "buy"
    marks[sell] = "sell"
    return marks


def bars_frame(rows: list[tuple[datetime, float, float, float, float, float]]) -> pd.DataFrame:
    """(timestamp, open, high, low, close, volume) rows as a frame indexed by UTC timestamp."""
    frame = pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"])
    return frame.set_index(pd.DatetimeIndex(pd.to_datetime(frame.pop("timestamp"), utc=True)))
