"""Seeded synthetic prices: a daily walk per path and the 1-minute bars of each session.

A path belongs to one symbol, except that a futures root's contracts share their root's path.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from .bars import BarArrays
from .instruments import Instrument
from .sessions import SessionTable

TRADING_DAYS_PER_YEAR = 252


@dataclass(frozen=True)
class DailyWalk:
    first_session: int  # index of the session holding the head timestamp
    log_close: np.ndarray  # log close of every session from first_session on


@dataclass
class MinuteGrid:
    """1-minute bars of several sessions: `bars` holds (sessions x minutes per row) arrays."""

    indexes: np.ndarray
    length: np.ndarray  # minutes actually in each session; columns past it are padding
    bars: BarArrays

    def row(self, r: int) -> BarArrays:
        return self.bars.take((r, slice(0, int(self.length[r]))))


def daily_walk(seed: int, instrument: Instrument, sessions: SessionTable) -> DailyWalk:
    """Session closes from the path's start on: drift plus a mean-reverting random walk."""
    head_day = instrument.walk_start.astimezone(sessions.rule.zone).date()
    first = sessions.first_on_or_after(head_day)
    count = max(len(sessions) - first, 0)
    rng = np.random.default_rng([seed, symbol_key(instrument.path), 0])
    daily_sigma = instrument.annual_volatility / math.sqrt(TRADING_DAYS_PER_YEAR)
    shocks = (rng.standard_normal(count) * daily_sigma).tolist()
    deviation = np.empty(count)
    reversion = instrument.mean_reversion
    level = 0.0
    for k, shock in enumerate(shocks):
        level = reversion * level + shock
        deviation[k] = level
    years = (sessions.ordinals[first:] - sessions.ordinals[first]) / 365.25
    log_close = math.log(instrument.start_price) + instrument.annual_drift * years + deviation
    return DailyWalk(first, log_close)


def minute_grid(seed: int, instrument: Instrument, sessions: SessionTable, walk: DailyWalk,
                indexes: np.ndarray, volume_divisor: np.ndarray | None = None) -> MinuteGrid:
    """The 1-minute bars (extended hours included) of the sessions at `indexes`.

    `avg_daily_volume` is in shares of after every split; `volume_divisor` (per session) turns
    it into the shares of the session's day.
    """
    k = indexes - walk.first_session
    log_to = walk.log_close[k]
    log_from = np.where(k > 0, walk.log_close[np.maximum(k - 1, 0)],
                        math.log(instrument.start_price))[:, None]

    rule = sessions.rule
    width = rule.minutes_per_row
    tick = instrument.min_tick
    ext_open = sessions.ext_open[indexes][:, None]
    regular_open = sessions.open[indexes][:, None]
    regular_close = sessions.close[indexes][:, None]
    length = np.minimum((sessions.ext_close[indexes] - sessions.ext_open[indexes]) // 60, width)
    start = ext_open + 60 * np.arange(width, dtype=np.int64)
    valid = np.arange(width) < length[:, None]
    regular = valid & (start >= regular_open) & (start < regular_close)
    regular_minutes = np.maximum(regular.sum(axis=1), 1)[:, None]

    # Busier and more volatile right after the open and before the close.
    since_open = np.clip((start - regular_open) / 60.0, 0, regular_minutes)
    if rule.u_shaped:
        u_shape = 1 + 1.5 * np.exp(-since_open / 25) + 0.8 * np.exp(
            -(regular_minutes - since_open) / 25)
    else:
        u_shape = np.ones_like(since_open)
    activity = np.where(regular, u_shape, rule.extended_activity)

    # Each session draws from its own generator, so a minute never depends on which other
    # sessions were generated alongside it.
    key = symbol_key(instrument.path)
    noise = np.stack([
        np.random.default_rng([seed, key, int(ordinal), 1]).standard_normal((4, width))
        for ordinal in sessions.ordinals[indexes]
    ], axis=1)
    daily_sigma = instrument.annual_volatility / math.sqrt(TRADING_DAYS_PER_YEAR)
    sigma = daily_sigma / np.sqrt(regular_minutes) * activity * valid

    # A Brownian bridge from the previous close to this session's close on the daily walk.
    path = np.cumsum(noise[0] * sigma, axis=1)
    path_end = path[np.arange(len(indexes)), length - 1][:, None]
    frac = np.arange(1, width + 1) / length[:, None]
    log_path = log_from + frac * (log_to[:, None] - log_from) + path - frac * path_end

    close = np.maximum(round_to_tick(np.exp(log_path), tick), tick)
    first_open = np.maximum(round_to_tick(np.exp(log_from), tick), tick)
    open_ = np.concatenate([first_open, close[:, :-1]], axis=1)
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    wick = sigma * 0.6
    high = np.maximum(round_to_tick(top * np.exp(np.abs(noise[1]) * wick), tick), top)
    low = np.maximum(
        np.minimum(round_to_tick(bottom * np.exp(-np.abs(noise[2]) * wick), tick), bottom), tick)

    extended_minutes = np.maximum(length[:, None] - regular_minutes, 1)
    u_mean = (u_shape * regular).sum(axis=1)[:, None] / regular_minutes
    mean_volume = np.where(
        regular,
        instrument.avg_daily_volume / regular_minutes * u_shape / u_mean,
        instrument.avg_daily_volume * rule.extended_volume_share / extended_minutes,
    )
    shares = mean_volume * np.exp(0.4 * noise[3])
    volume = np.maximum(np.rint(shares), 1).astype(np.int64)
    trade_size = instrument.avg_trade_size * np.exp(0.25 * noise[1])
    count = np.maximum(np.rint(volume / trade_size), 1).astype(np.int64)
    if volume_divisor is not None:
        # As many trades, each of fewer (dearer) shares: the count stays continuous over a
        # split, as IBKR reports it unadjusted.
        volume = np.maximum(np.rint(shares / volume_divisor[:, None]), 1).astype(np.int64)
        count = np.minimum(count, volume)
    wap = np.clip(np.round((open_ + high + low + close) / 4, 4), low, high)
    return MinuteGrid(indexes, length,
                      BarArrays(start, open_, high, low, close, volume, wap, count))


def round_to_tick(prices: np.ndarray, tick: float) -> np.ndarray:
    """Prices on the instrument's tick grid, written with the tick's decimals."""
    decimals = tick_decimals(tick)
    if tick == 10.0 ** -decimals:
        return np.round(prices, decimals)
    return np.round(np.rint(prices / tick) * tick, decimals)


def tick_decimals(tick: float) -> int:
    return max(0, -Decimal(repr(tick)).as_tuple().exponent)


def symbol_key(symbol: str) -> int:
    # Python's hash() is salted per process; a CRC keeps prices stable across runs.
    return zlib.crc32(symbol.encode())
