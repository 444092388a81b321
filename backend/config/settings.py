"""Application settings, read once from the environment and an optional .env file."""

import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from backend.market_data.domain import (
    EXCHANGE_PATTERN,
    BarSize,
    InvalidSeries,
    SecType,
    SeriesKey,
    WhatToShow,
    normalize_symbol,
    parse_series,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SQLITE_PATH = REPO_ROOT / "data" / "market_data.db"

# The bar sizes the cache knows, by their short names (the CLI's --data-type choices).
BAR_SIZES = tuple(size.value for size in BarSize)


# -- CACHE_SYMBOLS entries ------------------------------------------------------------------------

CACHE_SYMBOL_FORMAT = (
    "write each entry as SYMBOL[:SECTYPE[:EXPIRY]], e.g. NVDA, ES:FUT:202503, EUR.USD:CASH, "
    "BTC:CRYPTO, SPX:IND or ES:CONTFUT"
)


@dataclass(frozen=True)
class CacheSymbol:
    """One instrument of CACHE_SYMBOLS or of the CLI's --symbols: SYMBOL[:SECTYPE[:EXPIRY]].

    A symbol alone is a US stock (or ETF) unless the CLI's --sec-type says otherwise; SECTYPE
    is one of STK, IND, FUT, CONTFUT, CASH, CRYPTO; EXPIRY (YYYYMM or YYYYMMDD) is a future's
    contract month and only FUT takes it. An FX pair is written BASE.QUOTE or BASEQUOTE
    (EUR.USD:CASH). The bar size, whatToShow and hours are chosen where the entry is used.
    """

    symbol: str
    sec_type: SecType | None = None
    expiry: str | None = None

    def __str__(self) -> str:
        return ":".join(part for part in (self.symbol, self.sec_type, self.expiry) if part)

    def series(
        self,
        data_type: str | BarSize,
        *,
        stock_exchange: str,
        sec_type: str | SecType | None = None,
        exchange: str | None = None,
        currency: str | None = None,
        expiry: str | None = None,
        what_to_show: str | WhatToShow | None = None,
        use_rth: bool = True,
    ) -> SeriesKey:
        """The series of this instrument; the entry's own sec type and expiry win over the
        keywords, which fill what the entry leaves out. InvalidSeries, naming the field, for a
        series IBKR does not have."""
        return parse_series(
            self.symbol,
            data_type,
            sec_type=self.sec_type or sec_type or SecType.STK,
            exchange=exchange,
            currency=currency,
            expiry=self.expiry or expiry,
            what_to_show=what_to_show,
            use_rth=use_rth,
            stock_exchange=stock_exchange,
        )


def parse_cache_symbol(raw: str, *, complete: bool = True) -> CacheSymbol:
    """One entry, trimmed and upper-cased; ValueError naming the entry and the fix.

    complete: the entry must name a series by itself (a future its expiry); the CLI parses
    without, since its flags may complete an entry (ES:FUT with --expiry 202503).
    """
    text = raw.strip().upper()
    parts = text.split(":")
    if len(parts) > 3:
        raise ValueError(f"{raw.strip()!r} has {len(parts)} parts; {CACHE_SYMBOL_FORMAT}")
    symbol = normalize_symbol(parts[0])
    sec_type = None
    if len(parts) > 1:
        try:
            sec_type = SecType(parts[1].strip())
        except ValueError:
            kinds = ", ".join(kind.value for kind in SecType)
            raise ValueError(
                f"{raw.strip()!r}: unknown sec type {parts[1].strip()!r}; use one of {kinds} "
                f"({CACHE_SYMBOL_FORMAT})"
            ) from None
    expiry = parts[2].strip() if len(parts) > 2 else None
    entry = CacheSymbol(symbol, sec_type, expiry or None)
    if not complete:
        return entry
    try:
        # Checked as a series now, so a future without its expiry stops start-up, not a refresh.
        entry.series(BarSize.D1, stock_exchange="NASDAQ")
    except InvalidSeries as error:
        raise ValueError(f"{raw.strip()!r}: {error} ({CACHE_SYMBOL_FORMAT})") from None
    return entry


def cache_symbol_entry(series: SeriesKey) -> str:
    """How CACHE_SYMBOLS and --symbols name the instrument of a series (NVDA, ES:FUT:202503)."""
    if series.sec_type == SecType.CASH:
        return f"{series.symbol}.{series.currency}:{series.sec_type}"
    if series.sec_type == SecType.STK:
        return series.symbol
    return str(CacheSymbol(series.symbol, SecType(series.sec_type), series.expiry or None))


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_HOST_NAME = re.compile(r"^(\*|(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?)$")


def normalize_host(raw: str) -> str:
    """Lower-case one allowed host; an IPv6 address gets the brackets a Host header gives it."""
    host = raw.strip().lower().rstrip(".")
    address = host.removeprefix("[").removesuffix("]")
    if ":" in address:
        try:
            return f"[{ipaddress.IPv6Address(address)}]"
        except ValueError:
            pass
    elif _HOST_NAME.fullmatch(host):
        return host
    raise ValueError(
        f"invalid host {raw!r}: use a name or address without scheme or port, "
        "e.g. localhost, 127.0.0.1, ::1, backend or *.example.com"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True
    )

    DEBUG_MODE: bool = False
    CACHE_ENABLED: bool = True
    # Instruments `make populate-cache` and start-up warm-up fill, as SYMBOL[:SECTYPE[:EXPIRY]]
    # (CacheSymbol): NVDA, ES:FUT:202503, EUR.USD:CASH, BTC:CRYPTO, SPX:IND, ES:CONTFUT.
    # NoDecode: accept "NVDA,TSLA" as well as a JSON list; the validator below parses both.
    CACHE_SYMBOLS: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["NVDA", "TSLA"])
    CACHE_EXCHANGE: str = "NASDAQ"
    CACHE_TTL_HOURS: int = Field(default=24, gt=0)

    DATABASE_URL: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    # Pooled connections per process: DB_POOL_SIZE, plus as many again when busy.
    DB_POOL_SIZE: int = Field(default=10, ge=2, le=100)

    IB_HOST: str = "127.0.0.1"
    IB_PORT: int = Field(default=4002, ge=1, le=65535)
    IB_CLIENT_ID: int = Field(default=17, ge=0)
    IB_CONNECT_TIMEOUT: float = Field(default=5.0, gt=0)
    # Set when the gateway at IB_HOST:IB_PORT is the bundled simulator (make run does this).
    IB_SIMULATOR_CONTROL_URL: str | None = None
    # Shrinks IBKR's pacing windows for a simulated gateway started with the same --pacing-scale
    # (tests, demos). Against a real gateway it must stay 1.
    IB_PACING_SCALE: float = Field(default=1.0, gt=0, le=1)
    # Series fetched from IBKR at once; more wait their turn (holding no connection or thread).
    FETCH_CONCURRENCY: int = Field(default=8, ge=1, le=50)
    # Most historical requests one refresh or workflow may plan; 1440 is four hours of IBKR's
    # budget of 60 requests per 10 minutes. Larger fills belong to `make populate-cache`.
    REQUEST_CEILING: int = Field(default=1440, ge=1)
    # What a refresh above REQUEST_CEILING, or one that would take the refresh jobs unfinished on
    # every replica above JOB_QUEUE_CEILING, gets: "refuse" (422 with the estimate) or "queue"
    # (accepted, waits until the jobs ahead leave room; its estimate says how long).
    REQUEST_BUDGET_POLICY: Literal["refuse", "queue"] = "refuse"
    # Most IBKR requests the unfinished refresh jobs of all replicas may need together; 4320 is
    # twelve hours of IBKR's budget.
    JOB_QUEUE_CEILING: int = Field(default=4320, ge=1)
    # Refresh jobs live in the database: the running process stamps each job alive this often,
    # and a job whose stamp is JOB_MISSED_HEARTBEATS old is shown interrupted (resumable).
    JOB_HEARTBEAT_S: float = Field(default=5.0, gt=0, le=300)
    JOB_MISSED_HEARTBEATS: int = Field(default=3, ge=2, le=100)
    # Finished jobs kept: at most this many, none older than JOB_KEEP_DAYS.
    JOB_KEEP_FINISHED: int = Field(default=100, ge=1)
    JOB_KEEP_DAYS: float = Field(default=7.0, gt=0)

    API_TOKEN: str | None = None
    CORS_ORIGINS: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:5173", "http://localhost:5173"]
    )
    # Host header values the API answers; anything else gets 400, so a page on another site
    # cannot reach the API through DNS rebinding. "*" accepts any host, "*.example.com" a domain.
    ALLOWED_HOSTS: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(LOOPBACK_HOSTS)
    )
    LOG_LEVEL: str = "INFO"
    # Longest one workflow execution may run; symbols not done by then end as errors.
    WORKFLOW_DEADLINE_S: float = Field(default=900.0, gt=0)

    @field_validator("CACHE_SYMBOLS", mode="before")
    @classmethod
    def _parse_symbols(cls, value: object) -> list[str]:
        items = _split_list(value)
        if not items:
            raise ValueError(
                f"must name at least one symbol, e.g. NVDA,TSLA; {CACHE_SYMBOL_FORMAT}"
            )
        # Kept as written (upper-cased): the entries are what /api/system/config shows.
        return list(dict.fromkeys(str(parse_cache_symbol(item)) for item in items))

    def cache_symbols(self) -> list[CacheSymbol]:
        """CACHE_SYMBOLS as instruments."""
        return [parse_cache_symbol(entry) for entry in self.CACHE_SYMBOLS]

    @field_validator("CORS_ORIGINS", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> list[str]:
        return _split_list(value)

    @field_validator("ALLOWED_HOSTS", mode="before")
    @classmethod
    def _parse_hosts(cls, value: object) -> list[str]:
        hosts = [normalize_host(item) for item in _split_list(value)]
        if not hosts:
            raise ValueError("must name at least one host, e.g. localhost,127.0.0.1 (or * for any)")
        return hosts

    @field_validator("API_TOKEN", "IB_SIMULATOR_CONTROL_URL", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `API_TOKEN=` in a .env file means "not set", not "the empty token".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("CACHE_EXCHANGE")
    @classmethod
    def _exchange_upper(cls, value: str) -> str:
        exchange = value.strip().upper()
        if not EXCHANGE_PATTERN.fullmatch(exchange):
            raise ValueError("must be an exchange code of 2-12 letters, e.g. NASDAQ or NYSE")
        return exchange

    @field_validator("DATABASE_URL")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql+psycopg://")):
            raise ValueError(
                "must start with sqlite:/// or postgresql+psycopg:// "
                "(e.g. postgresql+psycopg://user:pass@host:5432/db)"
            )
        return value

    @field_validator("LOG_LEVEL")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level


def _split_list(value: object) -> list[str]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"is not a valid JSON list ({exc.msg})") from exc
        else:
            return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    raise ValueError("must be a comma-separated list or a JSON list of strings")


class SettingsError(SystemExit):
    """Start-up stops with one line that names the variable and what is allowed."""


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        variable = ".".join(str(loc) for loc in error["loc"]) or "settings"
        message = error["msg"].removeprefix("Value error, ")
        given = error.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
        parts.append(f"{variable}: {message}{shown}")
    return "invalid configuration: " + "; ".join(parts)


def load_settings(**overrides: object) -> Settings:
    """Build settings; on a bad value raise SettingsError with a one-line message."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
