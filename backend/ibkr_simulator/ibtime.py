"""Date and time strings as the TWS API writes and reads them."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from .sessions import EXCHANGE_TZ, EXCHANGE_TZ_NAME

_END_DATETIME = re.compile(r"^(\d{8})(?:([ -])(\d{2}:\d{2}:\d{2})(?: (\S+))?)?$")


class InvalidDateTime(ValueError):
    pass


def parse_end_datetime(text: str, now: dt.datetime) -> dt.datetime:
    """A request's endDateTime as an aware UTC datetime; '' means now.

    Accepted: `yyyyMMdd HH:mm:ss <zone>` (ib_insync sends `... UTC`), `yyyyMMdd-HH:mm:ss` (UTC),
    `yyyyMMdd HH:mm:ss` without a zone (IB reads it in the login time zone: US/Eastern here) and
    `yyyyMMdd` (the end of that day, US/Eastern).
    """
    text = text.strip()
    if not text:
        return now
    match = _END_DATETIME.match(text)
    if not match:
        raise InvalidDateTime(text)
    day, separator, clock, zone_name = match.groups()
    try:
        if clock is None:
            local = dt.datetime.strptime(day + "235959", "%Y%m%d%H%M%S")
            return local.replace(tzinfo=EXCHANGE_TZ).astimezone(dt.UTC)
        naive = dt.datetime.strptime(day + clock, "%Y%m%d%H:%M:%S")
    except ValueError as exc:
        raise InvalidDateTime(text) from exc
    if separator == "-":
        if zone_name:
            raise InvalidDateTime(text)
        zone: dt.tzinfo = dt.UTC
    elif zone_name is None:
        zone = EXCHANGE_TZ
    else:
        zone = _zone(zone_name)
    return naive.replace(tzinfo=zone).astimezone(dt.UTC)


def _zone(name: str) -> dt.tzinfo:
    if name.upper() in ("UTC", "GMT"):
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidDateTime(name) from exc


def format_intraday(epochs: np.ndarray, format_date: int) -> list[str]:
    """Intraday bar dates: epoch seconds for formatDate=2, else `yyyyMMdd HH:mm:ss US/Eastern`.

    ib_insync's parseIBDatetime turns both into aware datetimes (UTC and US/Eastern).
    """
    if format_date == 2:
        return [str(e) for e in epochs.tolist()]
    local = pd.to_datetime(epochs, unit="s", utc=True).tz_convert(EXCHANGE_TZ)
    return [f"{s} {EXCHANGE_TZ_NAME}" for s in local.strftime("%Y%m%d %H:%M:%S")]


def format_instant(moment: dt.datetime, format_date: int, daily: bool) -> str:
    """One instant in the format its bars use (the historicalData start/end fields)."""
    if daily:
        return f"{moment.astimezone(EXCHANGE_TZ):%Y%m%d}"
    return format_intraday(np.array([int(moment.timestamp())]), format_date)[0]


def format_head_timestamp(moment: dt.datetime, format_date: int) -> str:
    """formatDate=2: epoch seconds; else `yyyyMMdd-HH:mm:ss` in UTC (ib_insync reads it naive)."""
    if format_date == 2:
        return str(int(moment.timestamp()))
    return f"{moment.astimezone(dt.UTC):%Y%m%d-%H:%M:%S}"


def connection_time(now: dt.datetime) -> str:
    """The handshake's connection time, e.g. `20251201 16:00:00 EST`."""
    local = now.astimezone(EXCHANGE_TZ)
    return f"{local:%Y%m%d %H:%M:%S} {local.tzname()}"
