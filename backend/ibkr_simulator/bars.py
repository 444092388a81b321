"""Columnar bars and how 1-minute bars merge into coarser ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BarArrays:
    """Columnar bars; `start` is epoch seconds (intraday) or a session index (daily)."""

    start: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    wap: np.ndarray
    count: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    def take(self, selector) -> BarArrays:
        return BarArrays(*(column[selector] for column in self.columns()))

    def columns(self) -> tuple[np.ndarray, ...]:
        return (self.start, self.open, self.high, self.low, self.close, self.volume, self.wap,
                self.count)

    @classmethod
    def concat(cls, parts: list[BarArrays]) -> BarArrays:
        if not parts:
            return cls.empty()
        columns = zip(*(p.columns() for p in parts), strict=True)
        return cls(*(np.concatenate(column) for column in columns))

    @classmethod
    def empty(cls) -> BarArrays:
        floats = np.empty(0, dtype=np.float64)
        ints = np.empty(0, dtype=np.int64)
        return cls(ints, floats, floats, floats, floats, ints, floats, ints)


def aggregate(minutes: BarArrays, keys: np.ndarray) -> BarArrays:
    """Merge consecutive minutes sharing a key (the bar start) into one bar each."""
    if len(minutes) == 0:
        return BarArrays.empty()
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    last = np.r_[first[1:] - 1, len(keys) - 1]
    high = np.maximum.reduceat(minutes.high, first)
    low = np.minimum.reduceat(minutes.low, first)
    volume = np.add.reduceat(minutes.volume, first)
    turnover = np.add.reduceat(minutes.wap * minutes.volume, first)
    wap = np.clip(np.round(turnover / np.maximum(volume, 1), 4), low, high)
    return BarArrays(
        start=keys[first],
        open=minutes.open[first],
        high=high,
        low=low,
        close=minutes.close[last],
        volume=volume,
        wap=wap,
        count=np.add.reduceat(minutes.count, first),
    )
