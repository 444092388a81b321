"""Application settings, read once from the environment and an optional .env file."""

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from backend.market_data.domain import EXCHANGE_PATTERN, BarSize, normalize_symbol

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SQLITE_PATH = REPO_ROOT / "data" / "market_data.db"

# The bar sizes the cache knows, by their short names (the CLI's --data-type choices).
BAR_SIZES = tuple(size.value for size in BarSize)


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
            raise ValueError("must name at least one symbol, e.g. NVDA,TSLA")
        return [normalize_symbol(item) for item in items]

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
