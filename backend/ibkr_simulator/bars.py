"""Deterministic synthetic TRADES bars: a daily walk per symbol, a minute path per session."""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .instruments import Instrument
from .sessions import EXCHANGE_TZ, SessionTable

TRADING_DAYS_PER_YEAR = 252
DRIFT_PER_YEAR = 0.06
# Pulls the walk back towards its drift line so that decades of history keep plausible prices.
MEAN_REVERSION = 0.998
EXTENDED_HOURS_ACTIVITY = 0.15
EXTENDED_HOURS_VOLUME_SHARE = 0.04
MINUTE_CACHE_SESSIONS = 256
DAILY_CACHE_ENTRIES = 200_000


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


@dataclass
class MinuteGrid:
    """1-minute bars of several sessions as (sessions x MINUTES_PER_GRID_ROW) arrays."""

    indexes: np.ndarray
    length: np.ndarray  # minutes actually in each session; columns past it are padding
    start: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    wap: np.ndarray
    count: np.ndarray

    def row(self, r: int) -> BarArrays:
        n = int(self.length[r])
        return BarArrays(self.start[r, :n], self.open[r, :n], self.high[r, :n], self.low[r, :n],
                         self.close[r, :n], self.volume[r, :n], self.wap[r, :n],
                         self.count[r, :n])


# 04:00-20:00 ET, the longest extended session; shorter sessions are padded to it.
MINUTES_PER_GRID_ROW = 16 * 60
GRID_BLOCK_SESSIONS = 512


class PriceModel:
    """Bars for any window, identical for the same (seed, symbol, bar size, bar start).

    Every bar is an aggregate of 1-minute bars, and each session's minutes depend only on the
    seed, the symbol and the session date, so bar sizes agree with each other and re-fetches of
    any overlapping window return the same bars.
    """

    def __init__(self, sessions: SessionTable, seed: int):
        self.sessions = sessions
        self.seed = seed & 0xFFFF_FFFF_FFFF_FFFF
        self._walks: dict[str, tuple[int, np.ndarray]] = {}
        self._minutes: OrderedDict[tuple[str, int], BarArrays] = OrderedDict()
        self._daily: dict[tuple[str, int, bool], tuple] = {}

    def first_session(self, instrument: Instrument) -> int:
        return self._walk(instrument)[0]

    def intraday_bars(self, instrument: Instrument, window_start: int, end: int, now: int,
                      bar_seconds: int, rth: bool) -> BarArrays:
        """Bars starting in [window_start, end), built only from minutes before `now`."""
        head = int(instrument.head_timestamp.timestamp())
        first_session = self.first_session(instrument)
        indexes = [i for i in self.sessions.overlapping(window_start, end, rth)
                   if i >= first_session]
        parts, keys = [], []
        for i, minutes in zip(indexes, self.session_minutes(instrument, indexes), strict=True):
            anchor = int(self.sessions.day_open(rth)[i])
            session_end = int(self.sessions.day_close(rth)[i])
            # Bars align to the session's first minute, so 1-hour RTH bars start at 09:30.
            bar_start = anchor + (minutes.start - anchor) // bar_seconds * bar_seconds
            keep = (
                (minutes.start >= anchor) & (minutes.start < session_end)
                & (minutes.start < now)
                # A bar that would straddle the head timestamp is incomplete: leave it out.
                & (bar_start >= head) & (bar_start >= window_start) & (bar_start < end)
            )
            parts.append(minutes.take(keep))
            keys.append(bar_start[keep])
        if not parts:
            return BarArrays.empty()
        return aggregate(BarArrays.concat(parts), np.concatenate(keys))

    def daily_bars(self, instrument: Instrument, window_start: int, end: int, now: int,
                   rth: bool) -> BarArrays:
        """One bar per session opening in [window_start, min(end, now)); start = session index."""
        opens = self.sessions.day_open(rth)
        first = max(int(np.searchsorted(opens, window_start, side="left")),
                    self.first_session(instrument))
        last = int(np.searchsorted(opens, min(end, now), side="left"))
        rows = {}
        missing = []
        for i in range(first, last):
            row = self._daily.get((instrument.symbol, i, rth))
            if row is None:
                missing.append(i)
            else:
                rows[i] = row
        for block_start in range(0, len(missing), GRID_BLOCK_SESSIONS):
            block = missing[block_start:block_start + GRID_BLOCK_SESSIONS]
            grid = self._minute_grid(instrument, np.array(block, dtype=np.int64))
            rows.update(self._daily_rows(instrument, grid, now, rth))
        kept = [rows[i] for i in range(first, last) if rows[i] is not None]
        if not kept:
            return BarArrays.empty()
        columns = list(zip(*kept, strict=True))
        return BarArrays(*(np.array(c, dtype=np.asarray(c[0]).dtype) for c in columns))

    def _daily_rows(self, instrument: Instrument, grid: MinuteGrid, now: int,
                    rth: bool) -> dict[int, tuple | None]:
        """Daily bar fields per session of the grid (None for a session without minutes)."""
        head = int(instrument.head_timestamp.timestamp())
        day_open = self.sessions.day_open(rth)[grid.indexes][:, None]
        day_close = self.sessions.day_close(rth)[grid.indexes][:, None]
        columns = np.arange(MINUTES_PER_GRID_ROW)
        keep = (
            (columns < grid.length[:, None])
            & (grid.start >= day_open) & (grid.start < day_close)
            & (grid.start >= head) & (grid.start < now)
        )
        first = np.argmax(keep, axis=1)
        last = MINUTES_PER_GRID_ROW - 1 - np.argmax(keep[:, ::-1], axis=1)
        rows_ = np.arange(len(grid.indexes))
        high = np.where(keep, grid.high, -np.inf).max(axis=1)
        low = np.where(keep, grid.low, np.inf).min(axis=1)
        volume = np.where(keep, grid.volume, 0).sum(axis=1)
        turnover = np.where(keep, grid.wap * grid.volume, 0.0).sum(axis=1)
        wap = np.clip(np.round(turnover / np.maximum(volume, 1), 4), low, high)
        count = np.where(keep, grid.count, 0).sum(axis=1)
        open_ = grid.open[rows_, first]
        close = grid.close[rows_, last]
        has_minutes = keep.any(axis=1)
        # Only a finished session is final; today's bar still grows while `now` advances.
        final = day_close[:, 0] <= now

        result = {}
        for r, i in enumerate(grid.indexes.tolist()):
            row = None
            if has_minutes[r]:
                row = (i, open_[r], high[r], low[r], close[r], volume[r], wap[r], count[r])
            if final[r]:
                if len(self._daily) >= DAILY_CACHE_ENTRIES:
                    self._daily.clear()
                self._daily[(instrument.symbol, i, rth)] = row
            result[i] = row
        return result

    def session_minutes(self, instrument: Instrument, indexes: list[int]) -> list[BarArrays]:
        """All 1-minute bars (extended hours included) of each session in `indexes`."""
        missing = [i for i in indexes if (instrument.symbol, i) not in self._minutes]
        if missing:
            grid = self._minute_grid(instrument, np.array(missing, dtype=np.int64))
            for r, i in enumerate(missing):
                self._minutes[(instrument.symbol, i)] = grid.row(r)
        result = []
        for i in indexes:
            key = (instrument.symbol, i)
            self._minutes.move_to_end(key)
            result.append(self._minutes[key])
        while len(self._minutes) > max(MINUTE_CACHE_SESSIONS, len(indexes)):
            self._minutes.popitem(last=False)
        return result

    def _walk(self, instrument: Instrument) -> tuple[int, np.ndarray]:
        """Index of the first session and the log close of every session from it on."""
        walk = self._walks.get(instrument.symbol)
        if walk is not None:
            return walk
        sessions = self.sessions
        head_day = instrument.head_timestamp.astimezone(EXCHANGE_TZ).date()
        first = sessions.first_on_or_after(head_day)
        count = max(len(sessions) - first, 0)
        rng = np.random.default_rng([self.seed, _symbol_key(instrument.symbol), 0])
        daily_sigma = instrument.annual_volatility / math.sqrt(TRADING_DAYS_PER_YEAR)
        shocks = (rng.standard_normal(count) * daily_sigma).tolist()
        deviation = np.empty(count)
        level = 0.0
        for k, shock in enumerate(shocks):
            level = MEAN_REVERSION * level + shock
            deviation[k] = level
        years = (sessions.ordinals[first:] - sessions.ordinals[first]) / 365.25
        log_close = math.log(instrument.start_price) + DRIFT_PER_YEAR * years + deviation
        walk = (first, log_close)
        self._walks[instrument.symbol] = walk
        return walk

    def _minute_grid(self, instrument: Instrument, indexes: np.ndarray) -> MinuteGrid:
        sessions = self.sessions
        first, log_closes = self._walk(instrument)
        k = indexes - first
        log_to = log_closes[k]
        log_from = np.where(k > 0, log_closes[np.maximum(k - 1, 0)],
                            math.log(instrument.start_price))[:, None]

        width = MINUTES_PER_GRID_ROW
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
        u_shape = 1 + 1.5 * np.exp(-since_open / 25) + 0.8 * np.exp(
            -(regular_minutes - since_open) / 25)
        activity = np.where(regular, u_shape, EXTENDED_HOURS_ACTIVITY)

        # Each session draws from its own generator, so a minute never depends on which other
        # sessions share the grid.
        key = _symbol_key(instrument.symbol)
        noise = np.stack([
            np.random.default_rng([self.seed, key, int(ordinal), 1]).standard_normal((4, width))
            for ordinal in sessions.ordinals[indexes]
        ], axis=1)
        daily_sigma = instrument.annual_volatility / math.sqrt(TRADING_DAYS_PER_YEAR)
        sigma = daily_sigma / np.sqrt(regular_minutes) * activity * valid

        # A Brownian bridge from the previous close to this session's close on the daily walk.
        walk = np.cumsum(noise[0] * sigma, axis=1)
        walk_end = walk[np.arange(len(indexes)), length - 1][:, None]
        frac = np.arange(1, width + 1) / length[:, None]
        log_path = log_from + frac * (log_to[:, None] - log_from) + walk - frac * walk_end

        close = np.maximum(np.round(np.exp(log_path), 2), 0.01)
        first_open = np.maximum(np.round(np.exp(log_from), 2), 0.01)
        open_ = np.concatenate([first_open, close[:, :-1]], axis=1)
        top, bottom = np.maximum(open_, close), np.minimum(open_, close)
        wick = sigma * 0.6
        high = np.maximum(np.round(top * np.exp(np.abs(noise[1]) * wick), 2), top)
        low = np.maximum(np.minimum(np.round(bottom * np.exp(-np.abs(noise[2]) * wick), 2),
                                    bottom), 0.01)

        extended_minutes = np.maximum(length[:, None] - regular_minutes, 1)
        u_mean = (u_shape * regular).sum(axis=1)[:, None] / regular_minutes
        mean_volume = np.where(
            regular,
            instrument.avg_daily_volume / regular_minutes * u_shape / u_mean,
            instrument.avg_daily_volume * EXTENDED_HOURS_VOLUME_SHARE / extended_minutes,
        )
        volume = np.maximum(np.rint(mean_volume * np.exp(0.4 * noise[3])), 1).astype(np.int64)
        trade_size = 110 * np.exp(0.25 * noise[1])
        count = np.maximum(np.rint(volume / trade_size), 1).astype(np.int64)
        wap = np.clip(np.round((open_ + high + low + close) / 4, 4), low, high)
        return MinuteGrid(indexes, length, start, open_, high, low, close, volume, wap, count)


def _symbol_key(symbol: str) -> int:
    # Python's hash() is salted per process; a CRC keeps prices stable across runs.
    return zlib.crc32(symbol.encode())
