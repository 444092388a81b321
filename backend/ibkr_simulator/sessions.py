"""NYSE trading sessions (regular and extended hours) as epoch-second arrays."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import numpy as np

EXCHANGE_TZ = ZoneInfo("America/New_York")
# IB labels the exchange zone this way in contract details and formatDate=1 bar dates.
EXCHANGE_TZ_NAME = "US/Eastern"

# Pre-market opens at 04:00 ET, 5.5 h before the regular 09:30 open. After-hours runs 4 h past
# the close: 20:00 ET normally, 17:00 ET on early-close days, as on the real ECNs.
PRE_MARKET_SECONDS = 5 * 3600 + 30 * 60
AFTER_HOURS_SECONDS = 4 * 3600

# A fixed end keeps the session list (and therefore every generated price) independent of the
# day the simulator runs.
CALENDAR_END = "2030-12-31"


class SessionTable:
    """Every XNYS session from `start` to CALENDAR_END, as parallel numpy arrays."""

    def __init__(self, start: dt.date):
        calendar = xcals.get_calendar("XNYS", start=start.isoformat(), end=CALENDAR_END)
        schedule = calendar.schedule
        self.dates: list[dt.date] = [ts.date() for ts in schedule.index]
        self.ordinals = np.array([d.toordinal() for d in self.dates], dtype=np.int64)
        self.open = _epoch_seconds(schedule["open"])
        self.close = _epoch_seconds(schedule["close"])
        self.ext_open = self.open - PRE_MARKET_SECONDS
        self.ext_close = self.close + AFTER_HOURS_SECONDS

    def __len__(self) -> int:
        return len(self.dates)

    def day_open(self, rth: bool) -> np.ndarray:
        return self.open if rth else self.ext_open

    def day_close(self, rth: bool) -> np.ndarray:
        return self.close if rth else self.ext_close

    def first_on_or_after(self, day: dt.date) -> int:
        return int(np.searchsorted(self.ordinals, day.toordinal(), side="left"))

    def overlapping(self, start: int, end: int, rth: bool) -> range:
        """Indexes of sessions whose hours overlap [start, end) (epoch seconds)."""
        first = int(np.searchsorted(self.day_close(rth), start, side="right"))
        last = int(np.searchsorted(self.day_open(rth), end, side="left"))
        return range(first, last)

    def last_started_before(self, end: int, rth: bool) -> int:
        """Index of the last session that opened before `end`, or -1."""
        return int(np.searchsorted(self.day_open(rth), end, side="left")) - 1

    def hours_string(self, first_day: dt.date, days: int, rth: bool) -> str:
        """tradingHours / liquidHours as IB writes them: `yyyyMMdd:HHmm-yyyyMMdd:HHmm;...`."""
        parts = []
        for offset in range(days):
            day = first_day + dt.timedelta(days=offset)
            i = self.first_on_or_after(day)
            if i < len(self) and self.dates[i] == day:
                opens = _exchange_time(int(self.day_open(rth)[i]))
                closes = _exchange_time(int(self.day_close(rth)[i]))
                parts.append(f"{opens:%Y%m%d:%H%M}-{closes:%Y%m%d:%H%M}")
            else:
                parts.append(f"{day:%Y%m%d}:CLOSED")
        return ";".join(parts)


@lru_cache(maxsize=4)
def session_table(start: dt.date) -> SessionTable:
    # Building the calendar takes a noticeable fraction of a second: share it between gateways.
    return SessionTable(start)


def _epoch_seconds(column) -> np.ndarray:
    return column.to_numpy(dtype="datetime64[s]").astype(np.int64)


def _exchange_time(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, EXCHANGE_TZ)
