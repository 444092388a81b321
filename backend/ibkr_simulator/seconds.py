"""One-second bars inside each 1-minute bar, for the bar sizes below a minute.

The seconds of a minute add up exactly to it: the first opens at the minute's open, the last
closes at its close, one second reaches its high and one its low, and volume and trade counts
split without remainder. So 5-, 10-, 15- and 30-second bars agree with each other and with the
minute bars, as the minute bars agree with the coarser sizes.
"""

from __future__ import annotations

import numpy as np

from .bars import BarArrays
from .paths import round_to_tick, symbol_key

SECONDS_PER_MINUTE = 60


def seconds_of(
    minutes: BarArrays,
    seed: int,
    path: str,
    session_ordinal: int,
    session_open: int,
    minutes_per_row: int,
    tick: float,
) -> BarArrays:
    """The one-second bars of `minutes`, all from the session opening at `session_open`."""
    n = len(minutes)
    if n == 0:
        return BarArrays.empty()
    # Drawn for the whole session, so a minute's seconds never depend on which other minutes
    # a request asked for.
    rng = np.random.default_rng([seed, symbol_key(path), session_ordinal, 2])
    draws = rng.random((5, minutes_per_row, SECONDS_PER_MINUTE))
    u = draws[:, (minutes.start - session_open) // SECONDS_PER_MINUTE, :]
    rows = np.arange(n)
    o, h, lo, c = (
        column[:, None] for column in (minutes.open, minutes.high, minutes.low, minutes.close)
    )

    # A wandering path from the open to the close that stays inside the minute's range.
    steps = np.arange(1, SECONDS_PER_MINUTE + 1) / SECONDS_PER_MINUTE
    wander = np.cumsum(u[0] - 0.5, axis=1)
    wander -= steps * wander[:, -1:]
    path = o + (c - o) * steps + wander * (h - lo) * 0.25
    close = np.clip(round_to_tick(path, tick), lo, h)
    close[:, -1] = minutes.close
    open_ = np.concatenate([o, close[:, :-1]], axis=1)
    high = np.maximum(open_, close)
    low = np.minimum(open_, close)
    high[rows, (u[1, :, 0] * SECONDS_PER_MINUTE).astype(np.int64)] = minutes.high
    low[rows, (u[2, :, 0] * SECONDS_PER_MINUTE).astype(np.int64)] = minutes.low

    volume = _split(minutes.volume, u[3])
    count = _split(minutes.count, u[4])
    wap = np.clip(np.round((open_ + high + low + close) / 4, 4), low, high)
    start = minutes.start[:, None] + np.arange(SECONDS_PER_MINUTE)
    return BarArrays(
        *(column.ravel() for column in (start, open_, high, low, close, volume, wap, count))
    )


def _split(totals: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Each total cut into 60 random integer parts that sum exactly to it."""
    weights = draws + 0.05
    shares = np.cumsum(weights, axis=1) / weights.sum(axis=1, keepdims=True)
    shares[:, -1] = 1.0
    cumulative = np.floor(totals[:, None] * shares + 1e-9).astype(np.int64)
    return np.diff(cumulative, axis=1, prepend=0)
