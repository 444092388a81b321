"""Bars for a request window from the seeded paths, with the caches that keep it fast."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np

from .bars import BarArrays, aggregate
from .corporate_actions import CorporateActions, cumulative_factor
from .instruments import CME_ZONE, CONTINUOUS_FUTURE, FUTURE, STOCK, Instrument
from .paths import DailyWalk, MinuteGrid, daily_walk, minute_grid, round_to_tick, tick_decimals
from .seconds import SECONDS_PER_MINUTE, seconds_of
from .sessions import RULES, STOCKS, SessionTable, session_table

MINUTE_CACHE_SESSIONS = 256
DAILY_CACHE_ENTRIES = 200_000
# Sessions generated together when a long daily request misses the cache.
GRID_BLOCK_SESSIONS = 512
# A stock without a dividend table but with a dividend_yield goes ex on the first session of
# these months (ADJUSTED_LAST only).
DIVIDEND_MONTHS = (2, 5, 8, 11)
# Prices that an adjustment changed keep this many decimals beyond the tick's: IBKR's adjusted
# history is off the tick grid too (a cent after a 10:1 split is a tenth of a cent).
ADJUSTED_EXTRA_DECIMALS = 4
NO_ACTIONS = CorporateActions()


class PriceModel:
    """Bars for any window, identical for the same (seed, instrument, bar size, bar start).

    Every bar is an aggregate of 1-minute bars, and each session's minutes depend only on the
    seed, the path and the session date, so bar sizes agree with each other and re-fetches of
    any overlapping window return the same bars. A futures contract's minutes are its root's
    path times the contract's premium for the session, on the tick grid.

    A stock's path is its price after every split in its corporate actions; its minutes hold
    the volume as traded (in the shares of their day), and `on_basis_of_now` turns bars into
    what IBKR serves at a given now.
    """

    def __init__(self, seed: int, instruments: Iterable[Instrument]):
        self.seed = seed & 0xFFFF_FFFF_FFFF_FFFF
        # Each market's sessions start with the earliest path that needs them.
        self._table_starts: dict[str, dt.date] = {}
        for instrument in instruments:
            zone = RULES[instrument.sessions].zone
            day = instrument.walk_start.astimezone(zone).date()
            known = self._table_starts.get(instrument.sessions)
            self._table_starts[instrument.sessions] = min(day, known) if known else day
        self._walks: dict[tuple[str, str], DailyWalk] = {}
        self._minutes: OrderedDict[tuple[str, int], BarArrays] = OrderedDict()
        self._daily: dict[tuple[str, int, bool], tuple] = {}
        self._dividend_events: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # Stocks are what most requests ask for: build their calendar now, the others on demand.
        if STOCKS.name in self._table_starts:
            self.sessions_for_rule(STOCKS.name)

    def sessions_for(self, instrument: Instrument) -> SessionTable:
        return self.sessions_for_rule(instrument.sessions)

    def sessions_for_rule(self, rule_name: str) -> SessionTable:
        return session_table(self._table_starts[rule_name], rule_name)

    def first_session(self, instrument: Instrument) -> int:
        """The session holding the instrument's first bar."""
        sessions = self.sessions_for(instrument)
        if instrument.path_start is None:
            return self._walk(instrument).first_session
        return max(sessions.containing_or_after(int(instrument.head_timestamp.timestamp())),
                   self._walk(instrument).first_session)

    def first_bar_time(self, instrument: Instrument, rth: bool) -> dt.datetime:
        """reqHeadTimeStamp: the head timestamp, or the first open after it within the hours."""
        sessions = self.sessions_for(instrument)
        head = int(instrument.head_timestamp.timestamp())
        i = int(np.searchsorted(sessions.day_close(rth), head, side="right"))
        if i < len(sessions):
            head = max(head, int(sessions.day_open(rth)[i]))
        return dt.datetime.fromtimestamp(head, dt.UTC)

    def trading_stop(self, instrument: Instrument, now: int) -> int:
        """No bar holds a minute from here on: now, or a future's last trade."""
        if instrument.last_trade is None:
            return now
        return min(now, int(instrument.last_trade.timestamp()))

    def intraday_bars(self, instrument: Instrument, window_start: int, end: int, now: int,
                      bar_seconds: int, rth: bool) -> BarArrays:
        """Bars starting in [window_start, end), built only from minutes before `now`."""
        sessions = self.sessions_for(instrument)
        head = int(instrument.head_timestamp.timestamp())
        stop = self.trading_stop(instrument, now)
        first_session = self.first_session(instrument)
        indexes = [i for i in sessions.overlapping(window_start, min(end, stop), rth)
                   if i >= first_session]
        parts, keys = [], []
        for i, minutes in zip(indexes, self.session_minutes(instrument, indexes), strict=True):
            anchor = int(sessions.day_open(rth)[i])
            session_end = int(sessions.day_close(rth)[i])
            if bar_seconds < SECONDS_PER_MINUTE:
                minutes = self._seconds(instrument, sessions, i, minutes, window_start, end)
            # Bars align to the session's first minute, so 1-hour RTH bars start at 09:30.
            bar_start = anchor + (minutes.start - anchor) // bar_seconds * bar_seconds
            keep = (
                (minutes.start >= anchor) & (minutes.start < session_end)
                & (minutes.start < stop)
                # A bar that would straddle the head timestamp is incomplete: leave it out.
                & (bar_start >= head) & (bar_start >= window_start) & (bar_start < end)
            )
            parts.append(minutes.take(keep))
            keys.append(bar_start[keep])
        if not parts:
            return BarArrays.empty()
        return aggregate(BarArrays.concat(parts), np.concatenate(keys))

    def _seconds(self, instrument: Instrument, sessions: SessionTable, i: int,
                 minutes: BarArrays, window_start: int, end: int) -> BarArrays:
        wanted = (minutes.start + SECONDS_PER_MINUTE > window_start) & (minutes.start < end)
        return seconds_of(minutes.take(wanted), self.seed, instrument.path,
                          int(sessions.ordinals[i]), int(sessions.ext_open[i]),
                          sessions.rule.minutes_per_row, instrument.min_tick)

    def daily_bars(self, instrument: Instrument, window_start: int, end: int, now: int,
                   rth: bool) -> BarArrays:
        """One bar per session opening in [window_start, min(end, now)); start = session index."""
        sessions = self.sessions_for(instrument)
        opens = sessions.day_open(rth)
        first = max(int(np.searchsorted(opens, window_start, side="left")),
                    self.first_session(instrument))
        last = int(np.searchsorted(opens, min(end, self.trading_stop(instrument, now)),
                                   side="left"))
        rows = {}
        missing = []
        day_close = sessions.day_close(rth)
        stopped = self.trading_stop(instrument, now) < now
        for i in range(first, last):
            key = (instrument.key, i, rth)
            # A session cached as final is in progress again when the clock was moved back.
            if key in self._daily and (day_close[i] <= now or stopped):
                rows[i] = self._daily[key]
            else:
                missing.append(i)
        for block_start in range(0, len(missing), GRID_BLOCK_SESSIONS):
            block = missing[block_start:block_start + GRID_BLOCK_SESSIONS]
            grid = self._minute_grid(instrument, block)
            rows.update(self._daily_rows(instrument, sessions, grid, now, rth))
        kept = [rows[i] for i in range(first, last) if rows[i] is not None]
        if not kept:
            return BarArrays.empty()
        columns = list(zip(*kept, strict=True))
        return BarArrays(*(np.array(c, dtype=np.asarray(c[0]).dtype) for c in columns))

    def period_bars(self, instrument: Instrument, window_start: int, end: int, now: int,
                    rth: bool, monthly: bool) -> tuple[BarArrays, list[dt.date], np.ndarray]:
        """Weekly (Monday to Sunday) or calendar-month bars of the daily bars on the basis of
        now, each dated by the last session it holds, with the split factor of that session.
        A window starting mid-period takes the whole period."""
        sessions = self.sessions_for(instrument)
        first = int(np.searchsorted(sessions.day_open(rth), window_start, side="left"))
        if first < len(sessions):
            first_day = sessions.dates[first]
            period_start = (first_day.replace(day=1) if monthly
                            else first_day - dt.timedelta(days=first_day.weekday()))
            first = sessions.first_on_or_after(period_start)
            window_start = int(sessions.day_open(rth)[first])
        days = self.daily_bars(instrument, window_start, end, now, rth)
        if len(days) == 0:
            return days, [], np.ones(0)
        dates = [sessions.dates[i] for i in days.start.tolist()]
        # Days on one basis first: a week holding a split must not mix the two.
        days, split_factors = self.on_basis_of_now(instrument, days, days.start, now)
        keys = np.array([d.year * 12 + d.month if monthly else d.toordinal() - d.weekday()
                         for d in dates], dtype=np.int64)
        bars = aggregate(days, keys)
        last = np.r_[np.flatnonzero(keys[1:] != keys[:-1]), len(keys) - 1]
        return bars, [dates[k] for k in last.tolist()], split_factors[last]

    def _daily_rows(self, instrument: Instrument, sessions: SessionTable, grid: MinuteGrid,
                    now: int, rth: bool) -> dict[int, tuple | None]:
        """Daily bar fields per session of the grid (None for a session without minutes)."""
        head = int(instrument.head_timestamp.timestamp())
        stop = self.trading_stop(instrument, now)
        bars = grid.bars
        width = sessions.rule.minutes_per_row
        day_open = sessions.day_open(rth)[grid.indexes][:, None]
        day_close = sessions.day_close(rth)[grid.indexes][:, None]
        columns = np.arange(width)
        keep = (
            (columns < grid.length[:, None])
            & (bars.start >= day_open) & (bars.start < day_close)
            & (bars.start >= head) & (bars.start < stop)
        )
        first = np.argmax(keep, axis=1)
        last = width - 1 - np.argmax(keep[:, ::-1], axis=1)
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
        final = (day_close[:, 0] <= now) | (stop < now)

        result = {}
        for r, i in enumerate(grid.indexes.tolist()):
            row = None
            if has_minutes[r]:
                row = (i, open_[r], high[r], low[r], close[r], volume[r], wap[r], count[r])
            if final[r]:
                if len(self._daily) >= DAILY_CACHE_ENTRIES:
                    self._daily.clear()
                self._daily[(instrument.key, i, rth)] = row
            result[i] = row
        return result

    def session_minutes(self, instrument: Instrument, indexes: list[int]) -> list[BarArrays]:
        """All 1-minute bars (extended hours included) of each session in `indexes`."""
        key = instrument.key
        missing = [i for i in indexes if (key, i) not in self._minutes]
        if missing:
            grid = self._minute_grid(instrument, missing)
            for r, i in enumerate(missing):
                self._minutes[(key, i)] = grid.row(r)
        result = []
        for i in indexes:
            self._minutes.move_to_end((key, i))
            result.append(self._minutes[(key, i)])
        while len(self._minutes) > max(MINUTE_CACHE_SESSIONS, len(indexes)):
            self._minutes.popitem(last=False)
        return result

    def session_index_of(self, instrument: Instrument, epochs: np.ndarray) -> np.ndarray:
        """The session each instant belongs to (all hours)."""
        sessions = self.sessions_for(instrument)
        return np.searchsorted(sessions.ext_close, epochs, side="right")

    def corporate_actions(self, instrument: Instrument) -> CorporateActions:
        """The splits and dividends of a stock (none for other products)."""
        if instrument.sec_type != STOCK:
            return NO_ACTIONS
        return CorporateActions.for_symbol(instrument.symbol)

    def today(self, instrument: Instrument, now: int) -> int:
        """The date (ordinal) of `now` where the instrument trades. An action takes effect at
        the start of its date there, before that day's pre-market session."""
        zone = self.sessions_for(instrument).rule.zone
        return dt.datetime.fromtimestamp(now, zone).date().toordinal()

    def on_basis_of_now(self, instrument: Instrument, bars: BarArrays,
                        session_indexes: np.ndarray, now: int) -> tuple[BarArrays, np.ndarray]:
        """Path bars as IBKR serves them at `now`, and each bar's split factor.

        As traded, a bar's prices were the path's times the ratios of every later split (on
        the tick grid). IBKR divides them by the ratios of the splits that took effect after
        the bar's session and by now (the split factor) and multiplies the volume by it; the
        number of trades stays as it was. Prices that a split factor changed keep
        ADJUSTED_EXTRA_DECIMALS more decimals than the tick.
        """
        actions = self.corporate_actions(instrument)
        if not actions.splits or len(bars) == 0:
            return bars, np.ones(len(bars))
        days = self.sessions_for(instrument).ordinals[session_indexes]
        as_traded = actions.shares_today_per_share(days)
        split_factors = actions.split_factor(days, self.today(instrument, now))
        tick = instrument.min_tick
        decimals = tick_decimals(tick) + ADJUSTED_EXTRA_DECIMALS
        adjusted = split_factors != 1

        def rebased(traded: np.ndarray) -> np.ndarray:
            return np.where(adjusted, np.round(traded / split_factors, decimals), traded)

        open_, high, low, close = (rebased(round_to_tick(column * as_traded, tick))
                                   for column in (bars.open, bars.high, bars.low, bars.close))
        wap = np.clip(rebased(np.round(bars.wap * as_traded, 4)), low, high)
        return BarArrays(bars.start, open_, high, low, close,
                         scaled_volume(bars.volume, split_factors), wap, bars.count), split_factors

    def dividend_factors(self, instrument: Instrument, session_indexes: np.ndarray,
                         now: int) -> np.ndarray:
        """ADJUSTED_LAST: each session's prices times (1 - dividend / close of the session
        before the ex-date) for every dividend that went ex after it and by now."""
        days, factors = self._dividends(instrument)
        sessions = self.sessions_for(instrument)
        return cumulative_factor(days, factors, sessions.ordinals[session_indexes],
                                 self.today(instrument, now))

    def _dividends(self, instrument: Instrument) -> tuple[np.ndarray, np.ndarray]:
        """Ex-dates (ordinals) and price factors of a stock's dividends: its table's, or
        quarterly dividends of its dividend_yield where it has no table."""
        cached = self._dividend_events.get(instrument.key)
        if cached is not None:
            return cached
        sessions = self.sessions_for(instrument)
        actions = self.corporate_actions(instrument)
        if actions.dividends:
            walk = self._walk(instrument)
            days, factors = [], []
            for dividend in actions.dividends:
                before = sessions.first_on_or_after(dividend.ex_date) - 1
                if before < walk.first_session or before + 1 >= len(sessions):
                    continue
                # The close as traded: the path's times the later splits' ratios.
                tick = instrument.min_tick
                path_close = round_to_tick(np.exp(walk.log_close[[before - walk.first_session]]),
                                           tick)
                shares = actions.shares_today_per_share(sessions.ordinals[[before]])
                close = float(round_to_tick(path_close * shares, tick)[0])
                days.append(dividend.ex_date.toordinal())
                factors.append(1 - dividend.amount / close)
            events = (np.array(days, dtype=np.int64), np.array(factors))
        elif instrument.dividend_yield and instrument.sec_type == STOCK:
            ex_sessions = _ex_dividend_sessions(sessions)
            events = (sessions.ordinals[ex_sessions],
                      np.full(len(ex_sessions), 1 - instrument.dividend_yield / 4))
        else:
            events = (np.empty(0, dtype=np.int64), np.empty(0))
        self._dividend_events[instrument.key] = events
        return events

    def _walk(self, instrument: Instrument) -> DailyWalk:
        key = (instrument.path, instrument.sessions)
        walk = self._walks.get(key)
        if walk is None:
            walk = daily_walk(self.seed, instrument, self.sessions_for(instrument))
            self._walks[key] = walk
        return walk

    def _minute_grid(self, instrument: Instrument, indexes: list[int]) -> MinuteGrid:
        sessions = self.sessions_for(instrument)
        positions = np.array(indexes, dtype=np.int64)
        actions = self.corporate_actions(instrument)
        # Before a split fewer shares traded, each at a higher price.
        shares = (actions.shares_today_per_share(sessions.ordinals[positions])
                  if actions.splits else None)
        grid = minute_grid(self.seed, instrument, sessions, self._walk(instrument), positions,
                           volume_divisor=shares)
        premium = _futures_premium(instrument, sessions, positions)
        return grid if premium is None else _scaled(grid, premium, instrument.min_tick)


def _futures_premium(instrument: Instrument, sessions: SessionTable,
                     indexes: np.ndarray) -> np.ndarray | None:
    """A contract trades above its root's path by its carry over the days left to expiry."""
    if instrument.sec_type == FUTURE:
        expiries = np.full(len(indexes), _expiry_ordinal(instrument), dtype=np.int64)
    elif instrument.sec_type == CONTINUOUS_FUTURE:
        # Each session takes the contract that was in front then: it rolls on expiry day.
        chain = np.array([_expiry_ordinal(c) for c in instrument.chain], dtype=np.int64)
        front = np.searchsorted(chain, sessions.ordinals[indexes], side="right")
        expiries = chain[np.minimum(front, len(chain) - 1)]
    else:
        return None
    days_left = np.maximum(expiries - sessions.ordinals[indexes], 0)
    return np.exp(instrument.carry * days_left / 365.25)


def _expiry_ordinal(contract: Instrument) -> int:
    return contract.last_trade.astimezone(CME_ZONE).date().toordinal()


def _scaled(grid: MinuteGrid, factors: np.ndarray, tick: float) -> MinuteGrid:
    bars = grid.bars
    f = factors[:, None]
    open_, high, low, close = (round_to_tick(column * f, tick)
                               for column in (bars.open, bars.high, bars.low, bars.close))
    wap = np.clip(np.round((open_ + high + low + close) / 4, 4), low, high)
    return MinuteGrid(grid.indexes, grid.length, BarArrays(
        bars.start, open_, high, low, close, bars.volume, wap, bars.count))


def _ex_dividend_sessions(sessions: SessionTable) -> np.ndarray:
    first, last = sessions.dates[0].year, sessions.dates[-1].year
    indexes = [sessions.first_on_or_after(dt.date(year, month, 1))
               for year in range(first, last + 1) for month in DIVIDEND_MONTHS]
    return np.array([i for i in indexes if i < len(sessions)], dtype=np.int64)


def scaled_volume(volume: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Volume times its split factor: whole shares stay whole; a 3:2 split can leave halves."""
    if np.all(factors == 1):
        return volume
    if np.all(factors == np.rint(factors)):
        return volume * factors.astype(np.int64)
    return volume * factors
