"""The simulated security master: which stocks exist and how a request's contract maps to one."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DEFAULT_INSTRUMENTS_FILE = "instruments.json"


@dataclass(frozen=True)
class Instrument:
    symbol: str
    con_id: int
    primary_exchange: str
    head_timestamp: dt.datetime  # first available bar, UTC
    start_price: float  # price level at the head timestamp
    currency: str = "USD"
    long_name: str = ""
    industry: str = ""
    category: str = ""
    annual_volatility: float = 0.3
    avg_daily_volume: int = 10_000_000

    @classmethod
    def from_dict(cls, data: dict) -> Instrument:
        fields = dict(data)
        head = dt.datetime.fromisoformat(fields.pop("head_timestamp").replace("Z", "+00:00"))
        if head.tzinfo is None:
            head = head.replace(tzinfo=dt.UTC)
        return cls(head_timestamp=head.astimezone(dt.UTC), **fields)

    @property
    def valid_exchanges(self) -> set[str]:
        # IB routes NASDAQ listings through its ISLAND destination; SMART is always accepted.
        extra = {"ISLAND"} if self.primary_exchange == "NASDAQ" else set()
        return {"", "SMART", self.primary_exchange} | extra


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
        self._by_symbol = {i.symbol: i for i in instruments}
        self._by_con_id = {i.con_id: i for i in self._by_symbol.values()}

    def __iter__(self):
        return iter(self._by_symbol.values())

    def __len__(self) -> int:
        return len(self._by_symbol)

    def match(self, query: ContractQuery) -> Instrument | None:
        """The instrument a contract denotes, or None where IB would answer error 200."""
        if query.con_id:
            instrument = self._by_con_id.get(query.con_id)
            if instrument is None or (query.symbol and query.symbol.upper() != instrument.symbol):
                return None
            return instrument
        instrument = self._by_symbol.get(query.symbol.upper())
        if instrument is None or query.sec_type.upper() != "STK":
            return None
        if query.exchange.upper() not in instrument.valid_exchanges:
            return None
        if query.currency.upper() not in ("", instrument.currency):
            return None
        return instrument


def load_instruments(source: str | Path | Iterable[Instrument] | None = None) -> InstrumentRegistry:
    """The bundled list when `source` is None, else a JSON file path or ready-made instruments."""
    if source is None:
        text = resources.files(__package__).joinpath(DEFAULT_INSTRUMENTS_FILE).read_text()
        return InstrumentRegistry(Instrument.from_dict(d) for d in json.loads(text))
    if isinstance(source, str | Path):
        data = json.loads(Path(source).read_text())
        return InstrumentRegistry(Instrument.from_dict(d) for d in data)
    return InstrumentRegistry(source)
