"""The cache's vocabulary: bar sizes, the series key, the bar shape, symbol rules and limits.

Imports nothing else from backend, so settings, storage, the IBKR transport, services, routes and
the CLI can all take their words from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class BarSize(StrEnum):
    """Bar sizes the cache stores, keyed by the short names used in the API and the database."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    D1 = "1d"


@dataclass(frozen=True)
class SeriesKey:
    """One cached series: a symbol's bars of one size on one exchange."""

    symbol: str
    exchange: str
    data_type: str


@dataclass(frozen=True)
class Bar:
    """One bar as IBKR sent it, validated and in UTC; is_final once its session had closed."""

    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float | None
    bar_count: int | None
    is_final: bool


# (timestamp, open, high, low, close, volume): the bars strategies and checksums read. Plain tuples,
# because an object per bar would double the cost of a warm read of a year of 1-minute bars.
OhlcvBar = tuple[datetime, float, float, float, float, float]


# -- limits: one table, used by the API, the CLI, workflows and the planner ----------------------

# IBKR serves about ten years of history for the bar sizes cached here.
MAX_DAYS_BACK = 3650
# One refresh request, and one workflow run, name at most this many symbols.
MAX_SYMBOLS_PER_REQUEST = 50
# A series is read a page at a time: this many bars unless asked for fewer, and never more than
# the maximum, so one response's memory stays bounded.
SERIES_PAGE_SIZE = 10_000
MAX_SERIES_PAGE_SIZE = 50_000
# How far back a refresh reaches when the request does not say; intraday bars are many per day.
DEFAULT_DAYS_BACK = {
    BarSize.D1: 365,
    BarSize.H1: 30,
    BarSize.M30: 30,
    BarSize.M15: 10,
    BarSize.M5: 5,
    BarSize.M1: 2,
}


# -- symbols and exchanges -------------------------------------------------------------------------

SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9.]{0,11}$")
EXCHANGE_PATTERN = re.compile(r"^[A-Z]{2,12}$")


def normalize_symbol(raw: str) -> str:
    """Trim, upper-case and validate one ticker typed by a person (settings, CLI flags)."""
    symbol = raw.strip().upper()
    if not SYMBOL_PATTERN.fullmatch(symbol):
        raise ValueError(
            f"invalid symbol {raw!r}: use 1-12 characters, "
            "a letter first, then letters, digits or '.'"
        )
    return symbol


def parse_symbol(value: str) -> str:
    """normalize_symbol without its trimming: the API takes a symbol exactly as written."""
    symbol = normalize_symbol(value)
    if symbol != value.upper() or not value.isascii():
        raise ValueError(f"invalid symbol {value!r}: no spaces; ASCII letters, digits and '.' only")
    return symbol


def parse_exchange(value: str) -> str:
    """Upper-case and validate an exchange code exactly as written, e.g. NASDAQ or NYSE."""
    exchange = value.upper()
    if not EXCHANGE_PATTERN.fullmatch(exchange):
        raise ValueError(f"invalid exchange {value!r}: use 2-12 letters, e.g. NASDAQ or NYSE")
    return exchange
