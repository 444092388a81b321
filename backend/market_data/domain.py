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

    S5 = "5s"
    S30 = "30s"
    M1 = "1m"
    M2 = "2m"
    M3 = "3m"
    M5 = "5m"
    M10 = "10m"
    M15 = "15m"
    M20 = "20m"
    M30 = "30m"
    H1 = "1h"
    H2 = "2h"
    H4 = "4h"
    D1 = "1d"
    W1 = "1w"
    MO1 = "1mo"

    @property
    def is_intraday(self) -> bool:
        return self not in (BarSize.D1, BarSize.W1, BarSize.MO1)

    @property
    def is_seconds(self) -> bool:
        """IBKR serves bars of 30 seconds or less for the last six months only."""
        return self in (BarSize.S5, BarSize.S30)


class SecType(StrEnum):
    """IBKR's security types the cache serves."""

    STK = "STK"  # stocks and ETFs
    IND = "IND"
    FUT = "FUT"  # one expiry
    CONTFUT = "CONTFUT"  # IBKR's continuous future: the front contract of each session
    CASH = "CASH"  # FX on IDEALPRO
    CRYPTO = "CRYPTO"  # on PAXOS


class WhatToShow(StrEnum):
    """IBKR's series of a contract (historical data whatToShow)."""

    TRADES = "TRADES"
    MIDPOINT = "MIDPOINT"
    BID = "BID"
    ASK = "ASK"
    BID_ASK = "BID_ASK"
    ADJUSTED_LAST = "ADJUSTED_LAST"
    AGGTRADES = "AGGTRADES"


_QUOTES = (WhatToShow.MIDPOINT, WhatToShow.BID, WhatToShow.ASK, WhatToShow.BID_ASK)
# What IBKR serves for each asset class; anything else it refuses (TRADES on FX with error 162,
# on crypto with 10299), so it is refused here before a request is sent.
ALLOWED_WHAT_TO_SHOW: dict[SecType, tuple[WhatToShow, ...]] = {
    SecType.STK: (WhatToShow.TRADES, *_QUOTES, WhatToShow.ADJUSTED_LAST),
    SecType.IND: (WhatToShow.TRADES,),
    SecType.FUT: (WhatToShow.TRADES, *_QUOTES),
    SecType.CONTFUT: (WhatToShow.TRADES, *_QUOTES),
    SecType.CASH: _QUOTES,
    SecType.CRYPTO: (WhatToShow.AGGTRADES, *_QUOTES),
}
# What a request that names no whatToShow gets: the series each asset class is usually read in.
DEFAULT_WHAT_TO_SHOW = {
    SecType.STK: WhatToShow.TRADES,
    SecType.IND: WhatToShow.TRADES,
    SecType.FUT: WhatToShow.TRADES,
    SecType.CONTFUT: WhatToShow.TRADES,
    SecType.CASH: WhatToShow.MIDPOINT,
    SecType.CRYPTO: WhatToShow.AGGTRADES,
}
# The exchange a request that names none gets (stocks: the CACHE_EXCHANGE setting).
DEFAULT_EXCHANGE = {
    SecType.IND: "CBOE",
    SecType.FUT: "CME",
    SecType.CONTFUT: "CME",
    SecType.CASH: "IDEALPRO",
    SecType.CRYPTO: "PAXOS",
}
DEFAULT_CURRENCY = "USD"
# Asset classes whose bars differ with useRTH: stocks (pre- and after-market) and futures (the
# overnight Globex session). Indices, FX and crypto are served the same either way, so their
# series are kept as regular hours, once.
HOURS_MATTER = (SecType.STK, SecType.FUT, SecType.CONTFUT)


@dataclass(frozen=True)
class Market:
    """Which sessions a series' bars fall in: an asset class on an exchange, in regular hours or
    all hours. symbol is set for indices only: SPX keeps NYSE's hours, VIX CFE's."""

    sec_type: SecType = SecType.STK
    exchange: str = "NASDAQ"
    use_rth: bool = True
    symbol: str = ""


@dataclass(frozen=True)
class SeriesKey:
    """One cached series: a contract's bars of one size, in one series (whatToShow) and hours.

    The defaults are a US stock's TRADES in regular hours, so SeriesKey("NVDA", "NASDAQ", "1d")
    means what it always did. expiry is a future's lastTradeDateOrContractMonth (YYYYMM or
    YYYYMMDD), "" for everything else; currency is the quote currency (EUR.USD: symbol EUR,
    currency USD)."""

    symbol: str
    exchange: str
    data_type: str
    sec_type: str = SecType.STK.value
    currency: str = DEFAULT_CURRENCY
    expiry: str = ""
    what_to_show: str = WhatToShow.TRADES.value
    use_rth: bool = True

    @property
    def bar_size(self) -> BarSize:
        return BarSize(self.data_type)

    @property
    def market(self) -> Market:
        sec_type = SecType(self.sec_type)
        return Market(
            sec_type,
            self.exchange,
            self.use_rth,
            self.symbol if sec_type is SecType.IND else "",
        )

    def label(self) -> str:
        """How people read the series: "NVDA 1d", "ES 202503 FUT CME 1m MIDPOINT all hours"."""
        parts = [self.symbol]
        if self.sec_type == SecType.CASH and self.currency:
            parts = [f"{self.symbol}.{self.currency}"]
        if self.expiry:
            parts.append(self.expiry)
        if self.sec_type != SecType.STK:
            parts.append(self.sec_type)
        parts += [self.exchange, self.data_type]
        if self.what_to_show != WhatToShow.TRADES:
            parts.append(self.what_to_show)
        if not self.use_rth:
            parts.append("all hours")
        return " ".join(parts)


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
    BarSize.MO1: 3650,
    BarSize.W1: 730,
    BarSize.D1: 365,
    BarSize.H4: 90,
    BarSize.H2: 60,
    BarSize.H1: 30,
    BarSize.M30: 30,
    BarSize.M20: 20,
    BarSize.M15: 10,
    BarSize.M10: 10,
    BarSize.M5: 5,
    BarSize.M3: 3,
    BarSize.M2: 2,
    BarSize.M1: 2,
    BarSize.S30: 1,
    BarSize.S5: 1,
}
# IBKR serves bars of 30 seconds or less this far back only, and expired futures this long
# after their expiry: beyond, the cache holds the only copy (and a request gets a clear error).
SECONDS_BARS_MAX_AGE_DAYS = 182
EXPIRED_FUTURES_MAX_AGE_DAYS = 730


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


# -- series: what a request names, checked and completed ------------------------------------------

CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$", re.ASCII)
EXPIRY_PATTERN = re.compile(r"^((?:19|20)\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])?$", re.ASCII)


class InvalidSeries(ValueError):
    """A series a request names that IBKR would refuse or that cannot exist; names its field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_series(
    symbol: str,
    data_type: str | BarSize,
    *,
    sec_type: str | SecType = SecType.STK,
    exchange: str | None = None,
    currency: str | None = None,
    expiry: str | None = None,
    what_to_show: str | WhatToShow | None = None,
    use_rth: bool = True,
    stock_exchange: str = "NASDAQ",
) -> SeriesKey:
    """The series a request names, with each asset class's defaults filled in; InvalidSeries
    (naming the field and the fix) for anything IBKR would refuse, before a request is sent.

    FX pairs may be written as one symbol: "EUR.USD" or "EURUSD" is symbol EUR, currency USD.
    """
    kind = _choice(SecType, sec_type, "sec_type")
    bar_size = _choice(BarSize, data_type, "data_type")
    raw_symbol = symbol.strip().upper()
    if kind is SecType.CASH and currency is None:
        pair = raw_symbol.replace(".", "")
        if len(pair) == 6 and pair.isalpha():
            raw_symbol, currency = pair[:3], pair[3:]
    try:
        symbol = normalize_symbol(raw_symbol)
    except ValueError as error:
        raise InvalidSeries("symbol", str(error)) from None
    if kind is SecType.CASH and not CURRENCY_PATTERN.fullmatch(symbol):
        raise InvalidSeries(
            "symbol", f"an FX pair's symbol is its base currency (EUR for EUR.USD), not {symbol!r}"
        )
    exchange = (exchange or DEFAULT_EXCHANGE.get(kind, stock_exchange)).strip().upper()
    try:
        exchange = parse_exchange(exchange)
    except ValueError as error:
        raise InvalidSeries("exchange", str(error)) from None
    currency = (currency or DEFAULT_CURRENCY).strip().upper()
    if not CURRENCY_PATTERN.fullmatch(currency):
        raise InvalidSeries(
            "currency", f"invalid currency {currency!r}: use a 3-letter ISO code such as USD"
        )
    expiry = (expiry or "").strip()
    if kind is SecType.FUT:
        if not EXPIRY_PATTERN.fullmatch(expiry):
            raise InvalidSeries(
                "expiry",
                f"a future needs its expiry as YYYYMM or YYYYMMDD (e.g. 202503), not {expiry!r};"
                " for the rolling front contract use sec_type CONTFUT",
            )
    elif expiry:
        raise InvalidSeries(
            "expiry", f"only sec_type FUT takes an expiry; drop it for {kind.value}"
        )
    shown = (
        DEFAULT_WHAT_TO_SHOW[kind]
        if what_to_show is None
        else _choice(WhatToShow, what_to_show, "what_to_show")
    )
    allowed = ALLOWED_WHAT_TO_SHOW[kind]
    if shown not in allowed:
        raise InvalidSeries(
            "what_to_show",
            f"IBKR has no {shown.value} series for {kind.value}; use one of "
            + ", ".join(value.value for value in allowed),
        )
    if shown is WhatToShow.ADJUSTED_LAST and bar_size in (BarSize.W1, BarSize.MO1):
        raise InvalidSeries(
            "what_to_show",
            "IBKR serves ADJUSTED_LAST in bars of a day or less; use data_type 1d or TRADES",
        )
    return SeriesKey(
        symbol=symbol,
        exchange=exchange,
        data_type=bar_size.value,
        sec_type=kind.value,
        currency=currency,
        expiry=expiry,
        what_to_show=shown.value,
        use_rth=bool(use_rth) if kind in HOURS_MATTER else True,
    )


def _choice(enum: type[StrEnum], value, field: str):
    try:
        return enum(value.strip() if isinstance(value, str) else value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise InvalidSeries(field, f"invalid {field} {value!r}: use one of {allowed}") from None
