"""Trading sessions per market (regular and extended hours) as epoch-second arrays.

Each market follows a calendar that exchange_calendars ships, with the hours IBKR reports
(regular hours are what useRTH=1 returns, all hours what useRTH=0 returns):

- XNYS (stocks, ETFs), calendar XNYS: regular 09:30-16:00 ET with early closes; all hours from
  04:00 ET to 4 h after the close.
- XNYS_INDEX (SPX), calendar XNYS, and XCBF_INDEX (VIX), calendar XCBF (08:30-15:15 CT): regular
  hours only, as IBKR serves indices.
- CME_GLOBEX (ES, NQ), calendar CMES: regular 08:30-15:00 CT; all hours from 17:00 CT the evening
  before to 16:00 CT, the hour to 17:00 being the daily maintenance break.
- IDEALPRO (FX), calendar 24/5: 17:15 ET the evening before to 17:00 ET, in both.
- CRYPTO_24_7, calendar 24/7: 00:00-24:00 UTC every day, in both.

A session that crosses midnight is dated by the day it closes, as IBKR dates its daily bars.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import numpy as np

EXCHANGE_TZ = ZoneInfo("America/New_York")
# IB labels the exchange zone this way in contract details and formatDate=1 bar dates.
EXCHANGE_TZ_NAME = "US/Eastern"
CENTRAL_TZ = ZoneInfo("America/Chicago")

# Pre-market opens at 04:00 ET, 5.5 h before the regular 09:30 open. After-hours runs 4 h past
# the close: 20:00 ET normally, 17:00 ET on early-close days, as on the real ECNs.
PRE_MARKET_SECONDS = 5 * 3600 + 30 * 60
AFTER_HOURS_SECONDS = 4 * 3600

# A fixed end keeps the session list (and therefore every generated price) independent of the
# day the simulator runs.
CALENDAR_END = "2030-12-31"


@dataclass(frozen=True)
class SessionRule:
    """How one market's sessions are laid out; see the module docstring."""

    name: str
    calendar: str  # exchange_calendars name
    zone: ZoneInfo
    zone_name: str  # as IBKR writes it in contract details
    minutes_per_row: int  # the longest session (all hours); shorter ones are padded to it
    u_shaped: bool  # busier after the open and before the close of regular hours
    extended_activity: float  # volatility outside regular hours, relative to regular hours
    extended_volume_share: float  # share of a session's volume traded outside regular hours


STOCKS = SessionRule("XNYS", "XNYS", EXCHANGE_TZ, EXCHANGE_TZ_NAME, 16 * 60, True, 0.15, 0.04)
INDEX_NYSE = SessionRule("XNYS_INDEX", "XNYS", EXCHANGE_TZ, EXCHANGE_TZ_NAME, 390, True, 1, 0)
INDEX_CFE = SessionRule("XCBF_INDEX", "XCBF", CENTRAL_TZ, "US/Central", 405, True, 1, 0)
CME_GLOBEX = SessionRule("CME_GLOBEX", "CMES", CENTRAL_TZ, "US/Central", 23 * 60, True, 0.35,
                         0.25)
IDEALPRO = SessionRule("IDEALPRO", "24/5", EXCHANGE_TZ, EXCHANGE_TZ_NAME, 23 * 60 + 45, False,
                       1, 0)
CRYPTO = SessionRule("CRYPTO_24_7", "24/7", ZoneInfo("UTC"), "UTC", 24 * 60, False, 1, 0)

RULES = {rule.name: rule for rule in (STOCKS, INDEX_NYSE, INDEX_CFE, CME_GLOBEX, IDEALPRO,
                                      CRYPTO)}

CME_REGULAR_OPEN = dt.time(8, 30)
CME_REGULAR_CLOSE = dt.time(15, 0)
CME_DAILY_CLOSE = dt.time(16, 0)
FX_OPEN = dt.time(17, 15)
FX_CLOSE = dt.time(17, 0)


class SessionTable:
    """Every session of one rule from `start` to CALENDAR_END, as parallel numpy arrays."""

    def __init__(self, rule: SessionRule, start: dt.date):
        self.rule = rule
        calendar = xcals.get_calendar(rule.calendar, start=start.isoformat(), end=CALENDAR_END)
        schedule = calendar.schedule
        self.dates: list[dt.date] = [ts.date() for ts in schedule.index]
        self.ordinals = np.array([d.toordinal() for d in self.dates], dtype=np.int64)
        calendar_open = _epoch_seconds(schedule["open"])
        calendar_close = _epoch_seconds(schedule["close"])
        if rule is STOCKS:
            self.open, self.close = calendar_open, calendar_close
            self.ext_open = self.open - PRE_MARKET_SECONDS
            self.ext_close = self.close + AFTER_HOURS_SECONDS
        elif rule is CME_GLOBEX:
            self._cme_hours(calendar_open, calendar_close)
        elif rule is IDEALPRO:
            self.ext_open = self._local_times(FX_OPEN, day_offset=-1)
            self.ext_close = self._local_times(FX_CLOSE)
            self.open, self.close = self.ext_open, self.ext_close
        else:
            self.open, self.close = calendar_open, calendar_close
            self.ext_open, self.ext_close = self.open, self.close

    def _cme_hours(self, calendar_open: np.ndarray, calendar_close: np.ndarray) -> None:
        # exchange_calendars' CMES session runs to 17:00 CT; Globex equity futures stop at 16:00
        # for the maintenance hour. Early closes (12:00 CT on holidays) stay as they are.
        daily_close = self._local_times(CME_DAILY_CLOSE)
        self.ext_open = calendar_open
        self.ext_close = np.minimum(calendar_close, daily_close)
        self.open = np.maximum(self._local_times(CME_REGULAR_OPEN), self.ext_open)
        self.close = np.minimum(self._local_times(CME_REGULAR_CLOSE), self.ext_close)

    def _local_times(self, clock: dt.time, day_offset: int = 0) -> np.ndarray:
        zone = self.rule.zone
        return np.array([
            int(dt.datetime.combine(day + dt.timedelta(days=day_offset), clock, zone).timestamp())
            for day in self.dates], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.dates)

    def day_open(self, rth: bool) -> np.ndarray:
        return self.open if rth else self.ext_open

    def day_close(self, rth: bool) -> np.ndarray:
        return self.close if rth else self.ext_close

    def first_on_or_after(self, day: dt.date) -> int:
        return int(np.searchsorted(self.ordinals, day.toordinal(), side="left"))

    def containing_or_after(self, epoch: int) -> int:
        """Index of the first session (all hours) that closes after `epoch`."""
        return int(np.searchsorted(self.ext_close, epoch, side="right"))

    def overlapping(self, start: int, end: int, rth: bool) -> range:
        """Indexes of sessions whose hours overlap [start, end) (epoch seconds)."""
        first = int(np.searchsorted(self.day_close(rth), start, side="right"))
        last = int(np.searchsorted(self.day_open(rth), end, side="left"))
        return range(first, last)

    def last_started_before(self, end: int, rth: bool) -> int:
        """Index of the last session that opened before `end`, or -1."""
        return int(np.searchsorted(self.day_open(rth), end, side="left")) - 1

    def hours_string(self, first_day: dt.date, days: int, rth: bool) -> str:
        """tradingHours / liquidHours as IB writes them: `yyyyMMdd:HHmm-yyyyMMdd:HHmm;...`.

        Each calendar day lists the session that closes on it, so a session that opens the
        evening before starts with the previous day's date.
        """
        parts = []
        for offset in range(days):
            day = first_day + dt.timedelta(days=offset)
            i = self.first_on_or_after(day)
            if i < len(self) and self.dates[i] == day:
                opens = self.local(int(self.day_open(rth)[i]))
                closes = self.local(int(self.day_close(rth)[i]))
                parts.append(f"{opens:%Y%m%d:%H%M}-{closes:%Y%m%d:%H%M}")
            else:
                parts.append(f"{day:%Y%m%d}:CLOSED")
        return ";".join(parts)

    def local(self, epoch: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(epoch, self.rule.zone)


@lru_cache(maxsize=16)
def session_table(start: dt.date, rule_name: str = STOCKS.name) -> SessionTable:
    # Building a calendar takes a noticeable fraction of a second: share it between gateways.
    return SessionTable(RULES[rule_name], start)


def _epoch_seconds(column) -> np.ndarray:
    return column.to_numpy(dtype="datetime64[s]").astype(np.int64)
