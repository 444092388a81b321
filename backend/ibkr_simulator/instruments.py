"""The simulated security master: which contracts exist and how a request's contract maps to them.

Stocks and ETFs (STK), indices (IND), FX pairs (CASH) and crypto (CRYPTO) are listed one by one in
the instruments file. A futures root (FUT) in that file expands into its quarterly contracts, each
with its own conId, plus the continuous future (CONTFUT) that strings them together.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

DEFAULT_INSTRUMENTS_FILE = "instruments.json"

STOCK, INDEX, FUTURE, CONTINUOUS_FUTURE = "STK", "IND", "FUT", "CONTFUT"
FX, CRYPTO = "CASH", "CRYPTO"

# IBKR keeps expired futures (their definitions and their data) for two years after expiry.
EXPIRED_FUTURES_KEPT = dt.timedelta(days=730)
QUARTERLY_MONTHS = (3, 6, 9, 12)
MONTH_CODES = "FGHJKMNQUVXZ"
# A root's contract lists five quarters before it expires, so about five are trading at once.
MONTHS_LISTED = 15
CME_ZONE = ZoneInfo("America/Chicago")
CME_SESSION_OPEN = dt.time(17, 0)


@dataclass(frozen=True)
class Instrument:
    symbol: str
    con_id: int
    primary_exchange: str  # stocks only; IBKR leaves it empty for the other types
    head_timestamp: dt.datetime  # first available bar, UTC
    start_price: float  # price level where the instrument's seeded path starts
    currency: str = "USD"
    long_name: str = ""
    industry: str = ""
    category: str = ""
    annual_volatility: float = 0.3
    avg_daily_volume: int = 10_000_000
    sec_type: str = STOCK
    exchange: str = ""  # the listing exchange of a non-stock (CME, CBOE, IDEALPRO, PAXOS)
    stock_type: str = "COMMON"  # ETF for funds
    local_symbol: str = ""
    trading_class: str = ""
    multiplier: str = ""
    min_tick: float = 0.01
    annual_drift: float = 0.06
    # Pulls the daily walk back towards its drift line (per session) so that decades of history
    # keep plausible prices; a volatility index reverts within weeks.
    mean_reversion: float = 0.998
    avg_trade_size: float = 110.0
    volume_unit: float = 1.0  # crypto volume is reported in fractions of a coin
    # Paid quarterly where corporate_actions has no dividend table; only ADJUSTED_LAST shows it.
    dividend_yield: float = 0.0
    sessions: str = "XNYS"  # a rule of sessions.RULES
    under_con_id: int = 0
    last_trade: dt.datetime | None = None  # futures: the instant trading stops
    carry: float = 0.0  # futures: yearly premium of the contract over its root's path
    path_key: str = ""  # the seeded path followed (a futures root shares one); default symbol
    path_start: dt.datetime | None = None  # where that path starts; default head_timestamp
    # A continuous future's contracts, in expiry order.
    chain: tuple[Instrument, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict) -> Instrument:
        fields = dict(data)
        for name in ("head_timestamp", "path_start", "last_trade"):
            if fields.get(name) is not None:
                fields[name] = parse_instant(fields[name])
        return cls(**fields)

    @property
    def key(self) -> str:
        """Unique among all instruments (futures contracts share a symbol)."""
        return f"{self.sec_type}:{self.local_symbol or self.symbol}"

    @property
    def path(self) -> str:
        return self.path_key or self.symbol

    @property
    def walk_start(self) -> dt.datetime:
        return self.path_start or self.head_timestamp

    @property
    def display_symbol(self) -> str:
        return self.local_symbol or self.symbol

    @property
    def reported_trading_class(self) -> str:
        if self.sec_type == STOCK:
            # IB files NASDAQ stocks under the "NMS" market, NYSE stocks under their symbol.
            return "NMS" if self.primary_exchange == "NASDAQ" else self.symbol
        return self.trading_class or self.symbol

    @property
    def contract_month(self) -> str:
        return f"{self.last_trade.astimezone(CME_ZONE):%Y%m}" if self.last_trade else ""

    @property
    def last_trade_date(self) -> str:
        return f"{self.last_trade.astimezone(CME_ZONE):%Y%m%d}" if self.last_trade else ""

    @property
    def valid_exchanges(self) -> set[str]:
        if self.sec_type == STOCK:
            # IB routes NASDAQ listings through its ISLAND destination; SMART always works.
            extra = {"ISLAND"} if self.primary_exchange == "NASDAQ" else set()
            return {"", "SMART", self.primary_exchange} | extra
        # GLOBEX is the name older API code still uses for CME's electronic market.
        extra = {"GLOBEX"} if self.exchange == "CME" else set()
        return {"", self.exchange} | extra

    def front_contract(self, now: dt.datetime) -> Instrument | None:
        """A continuous future's current contract: the first that has not stopped trading."""
        return next((c for c in self.chain if c.last_trade > now), None)


def parse_instant(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def third_friday(year: int, month: int) -> dt.date:
    first_weekday, _ = calendar.monthrange(year, month)
    first_friday = 1 + (calendar.FRIDAY - first_weekday) % 7
    return dt.date(year, month, first_friday + 14)


def expand_futures_root(data: dict) -> list[Instrument]:
    """A root's quarterly contracts from `first_expiry` to `last_expiry`, then its CONTFUT.

    Equity index futures expire on the third Friday of the contract month, trading stopping at
    `last_trade_time` (CME zone). A contract lists on the Sunday evening after the expiry of the
    contract five quarters before it. conIds are `con_id` plus months since 2000-01.
    """
    root = dict(data)
    first = dt.date.fromisoformat(root.pop("first_expiry") + "-01")
    last = dt.date.fromisoformat(root.pop("last_expiry") + "-01")
    last_trade_time = dt.time.fromisoformat(root.pop("last_trade_time"))
    base_con_id = root.pop("con_id")
    root.pop("head_timestamp", None)  # the first contract's listing starts the path
    symbol = root["symbol"]
    contracts = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        expiry = third_friday(year, month)
        listed_year, listed_month = divmod(year * 12 + month - 1 - MONTHS_LISTED, 12)
        listed = third_friday(listed_year, listed_month + 1) + dt.timedelta(days=2)
        contracts.append((year, month, expiry, listed))
        year, month = divmod(year * 12 + month - 1 + 3, 12)
        month += 1
    path_start = _cme_instant(contracts[0][3], CME_SESSION_OPEN)
    instruments = [
        Instrument.from_dict({
            **root,
            "con_id": base_con_id + (year - 2000) * 12 + month,
            "local_symbol": f"{symbol}{MONTH_CODES[month - 1]}{year % 10}",
            "trading_class": root.get("trading_class") or symbol,
            "head_timestamp": _cme_instant(listed, CME_SESSION_OPEN).isoformat(),
            "last_trade": _cme_instant(expiry, last_trade_time).isoformat(),
            "path_key": symbol,
            "path_start": path_start.isoformat(),
        })
        for year, month, expiry, listed in contracts
    ]
    continuous = replace(instruments[0], sec_type=CONTINUOUS_FUTURE, con_id=0, local_symbol="",
                         last_trade=None, chain=tuple(instruments))
    return [*instruments, continuous]


def _cme_instant(day: dt.date, clock: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, clock, CME_ZONE).astimezone(dt.UTC)


@dataclass(frozen=True)
class ContractQuery:
    """The 12 contract fields every request carries, in wire order."""

    con_id: int
    symbol: str
    sec_type: str
    last_trade_date: str
    strike: str
    right: str
    multiplier: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str

    @classmethod
    def from_fields(cls, fields: list[str]) -> ContractQuery:
        con_id, *rest = fields[:12]
        return cls(int(con_id or 0), *rest)


class InstrumentRegistry:
    def __init__(self, instruments: Iterable[Instrument]):
        self._all = list(instruments)
        self._by_con_id = {i.con_id: i for i in self._all if i.con_id}
        self._by_symbol: dict[tuple[str, str], list[Instrument]] = defaultdict(list)
        self._by_local_symbol: dict[str, list[Instrument]] = defaultdict(list)
        self._continuous: dict[str, Instrument] = {}
        for instrument in self._all:
            self._by_symbol[(instrument.sec_type, instrument.symbol)].append(instrument)
            if instrument.local_symbol:
                self._by_local_symbol[instrument.local_symbol].append(instrument)
            if instrument.sec_type == CONTINUOUS_FUTURE:
                self._continuous[instrument.symbol] = instrument

    def __iter__(self):
        """Every contract with its own conId (continuous futures borrow their front's)."""
        return (i for i in self._all if i.con_id)

    def __len__(self) -> int:
        return len(self._by_con_id)

    def all_instruments(self) -> list[Instrument]:
        return list(self._all)

    def match(self, query: ContractQuery, now: dt.datetime | None = None,
              include_expired: bool = False) -> Instrument | None:
        """The one instrument a contract denotes, or None where IB would answer error 200."""
        found = self.matches(query, now, include_expired)
        return found[0] if len(found) == 1 else None

    def matches(self, query: ContractQuery, now: dt.datetime | None = None,
                include_expired: bool = False) -> list[Instrument]:
        """Every instrument a contract could denote (several for a futures root without month)."""
        sec_type = query.sec_type.upper()
        if query.con_id:
            candidates = self._by_con_id_query(query, sec_type)
        else:
            symbol = query.symbol.upper()
            if symbol:
                candidates = self._by_symbol.get((sec_type, symbol), [])
            else:
                local = self._by_local_symbol.get(query.local_symbol.upper(), [])
                candidates = [i for i in local if i.sec_type == sec_type]
            candidates = [i for i in candidates if _fields_agree(query, i)]
        if now is None:
            return candidates
        return [i for i in candidates if _defined_at(i, now, include_expired)]

    def _by_con_id_query(self, query: ContractQuery, sec_type: str) -> list[Instrument]:
        instrument = self._by_con_id.get(query.con_id)
        if instrument is None or (query.symbol and query.symbol.upper() != instrument.symbol):
            return []
        if sec_type == CONTINUOUS_FUTURE and instrument.sec_type == FUTURE:
            # A qualified ContFuture carries its front contract's conId.
            return [self._continuous[instrument.symbol]]
        if sec_type and sec_type != instrument.sec_type:
            return []
        return [instrument]


def _fields_agree(query: ContractQuery, instrument: Instrument) -> bool:
    if query.exchange.upper() not in instrument.valid_exchanges:
        return False
    if query.currency.upper() not in ("", instrument.currency):
        return False
    if query.local_symbol and query.local_symbol.upper() != instrument.display_symbol:
        return False
    if query.trading_class and query.trading_class.upper() != instrument.reported_trading_class:
        return False
    if query.multiplier and _number(query.multiplier) != _number(instrument.multiplier or "0"):
        return False
    expiry = query.last_trade_date.split(" ")[0]
    if expiry:
        if instrument.sec_type != FUTURE:
            return False
        wanted = instrument.last_trade_date if len(expiry) == 8 else instrument.contract_month
        if expiry != wanted:
            return False
    return True


def _defined_at(instrument: Instrument, now: dt.datetime, include_expired: bool) -> bool:
    """Whether IBKR's security master knows the contract at `now`."""
    if instrument.sec_type == CONTINUOUS_FUTURE:
        return instrument.front_contract(now) is not None
    if instrument.last_trade is None:
        return True
    if instrument.head_timestamp > now:
        return False  # not listed yet
    if instrument.last_trade > now:
        return True
    return include_expired and now - instrument.last_trade <= EXPIRED_FUTURES_KEPT


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return -1.0


@dataclass(frozen=True)
class SymbolSample:
    """One reqMatchingSymbols result."""

    con_id: int
    symbol: str
    sec_type: str
    primary_exchange: str
    currency: str
    derivative_sec_types: tuple[str, ...]
    description: str


MAX_SYMBOL_SAMPLES = 16  # IB answers reqMatchingSymbols with at most 16 contracts


def matching_symbols(registry: InstrumentRegistry, pattern: str) -> list[SymbolSample]:
    """reqMatchingSymbols: symbols starting with the pattern, then names with a word that does.

    A futures root is found as IB lists it, by its underlying index with FUT among the
    derivative types (the simulator serves the futures, not that index).
    """
    wanted = pattern.strip().upper()
    if not wanted:
        return []
    samples: dict[tuple[str, str, str], SymbolSample] = {}
    for instrument in registry.all_instruments():
        if instrument.sec_type == FUTURE:
            continue
        if instrument.sec_type == CONTINUOUS_FUTURE:
            sample = SymbolSample(instrument.under_con_id, instrument.symbol, INDEX,
                                  instrument.exchange, instrument.currency, (FUTURE,),
                                  instrument.long_name)
        else:
            derivatives = ("OPT",) if instrument.sec_type in (STOCK, INDEX) else ()
            sample = SymbolSample(instrument.con_id, instrument.symbol, instrument.sec_type,
                                  instrument.primary_exchange or instrument.exchange,
                                  instrument.currency, derivatives, instrument.long_name)
        samples[(sample.symbol, sample.sec_type, sample.currency)] = sample
    by_symbol = sorted((s for s in samples.values() if s.symbol.startswith(wanted)),
                       key=lambda s: (s.symbol != wanted, s.symbol))
    by_name = sorted((s for s in samples.values() if not s.symbol.startswith(wanted)
                      and any(w.startswith(wanted) for w in s.description.upper().split())),
                     key=lambda s: s.symbol)
    return (by_symbol + by_name)[:MAX_SYMBOL_SAMPLES]


def instruments_from_dicts(data: Iterable[dict]) -> list[Instrument]:
    instruments = []
    for item in data:
        if item.get("sec_type") == FUTURE:
            instruments.extend(expand_futures_root(item))
        else:
            instruments.append(Instrument.from_dict(item))
    return instruments


def load_instruments(source: str | Path | Iterable[Instrument] | None = None) -> InstrumentRegistry:
    """The bundled list when `source` is None, else a JSON file path or ready-made instruments."""
    if source is None:
        text = resources.files(__package__).joinpath(DEFAULT_INSTRUMENTS_FILE).read_text()
        return InstrumentRegistry(instruments_from_dicts(json.loads(text)))
    if isinstance(source, str | Path):
        return InstrumentRegistry(instruments_from_dicts(json.loads(Path(source).read_text())))
    return InstrumentRegistry(source)
