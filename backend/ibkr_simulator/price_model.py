"""Bars for a request window from the seeded paths, with the caches that keep it fast."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .bars import BarArrays, aggregate
from .instruments import Instrument
from .paths import MINUTES_PER_GRID_ROW, DailyWalk, MinuteGrid, daily_walk, minute_grid
from .sessions import SessionTable

MINUTE_CACHE_SESSIONS = 256
DAILY_CACHE_ENTRIES = 200_000
# Sessions generated together when a long daily request misses the cache.
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
        self._walks: dict[str, DailyWalk] = {}
        self._minutes: OrderedDict[tuple[str, int], BarArrays] = OrderedDict()
        self._daily: dict[tuple[str, int, bool], tuple] = {}

    def first_session(self, instrument: Instrument) -> int:
        return self._walk(instrument).first_session

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
            key = (instrument.symbol, i, rth)
            if key in self._daily:
                rows[i] = self._daily[key]
            else:
                missing.append(i)
        for block_start in range(0, len(missing), GRID_BLOCK_SESSIONS):
            block = missing[block_start:block_start + GRID_BLOCK_SESSIONS]
            grid = self._minute_grid(instrument, block)
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
        bars = grid.bars
        day_open = self.sessions.day_open(rth)[grid.indexes][:, None]
        day_close = self.sessions.day_close(rth)[grid.indexes][:, None]
        columns = np.arange(MINUTES_PER_GRID_ROW)
        keep = (
            (columns < grid.length[:, None])
            & (bars.start >= day_open) & (bars.start < day_close)
            & (bars.start >= head) & (bars.start < now)
        )
        first = np.argmax(keep, axis=1)
        last = MINUTES_PER_GRID_ROW - 1 - np.argmax(keep[:, ::-1], axis=1)
        rows_ = np.arange(len(grid.indexes))
        high = np.where(keep, bars.high, -np.inf).max(axis=1)
        low = np.where(keep, bars.low, np.inf).min(axis=1)
        volume = np.where(keep, bars.volume, 0).sum(axis=1)
        turnover = np.where(keep, bars.wap * bars.volume, 0.0).sum(axis=1)
        wap = np.clip(np.round(turnover / np.maximum(volume, 1), 4), low, high)
        count = np.where(keep, bars.count, 0).sum(axis=1)
        open_ = bars.open[rows_, first]
        close = bars.close[rows_, last]
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
            grid = self._minute_grid(instrument, missing)
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

    def _walk(self, instrument: Instrument) -> DailyWalk:
        walk = self._walks.get(instrument.symbol)
        if walk is None:
            walk = daily_walk(self.seed, instrument, self.sessions)
            self._walks[instrument.symbol] = walk
        return walk

    def _minute_grid(self, instrument: Instrument, indexes: list[int]) -> MinuteGrid:
        return minute_grid(self.seed, instrument, self.sessions, self._walk(instrument),
                           np.array(indexes, dtype=np.int64))
