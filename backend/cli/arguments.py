"""The populate CLI's command line: flags, their checks, and the request they make."""

from __future__ import annotations

import argparse

from backend.config.settings import BAR_SIZES, Settings
from backend.market_data.calendar import UnsupportedExchange, calendar_for
from backend.market_data.domain import MAX_DAYS_BACK, normalize_symbol
from backend.market_data.population import PopulationRequest


def symbol_list(text: str) -> list[str]:
    symbols: list[str] = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            symbol = normalize_symbol(part)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if symbol not in symbols:
            symbols.append(symbol)
    if not symbols:
        raise argparse.ArgumentTypeError("name at least one symbol, e.g. NVDA,TSLA")
    return symbols


def exchange_code(text: str) -> str:
    exchange = text.strip().upper()
    try:
        calendar_for(exchange)
    except UnsupportedExchange as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return exchange


def days_back(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not 1 <= days <= MAX_DAYS_BACK:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_DAYS_BACK} (got {days})")
    return days


def data_types(text: str) -> list[str]:
    chosen: list[str] = []
    for part in text.split(","):
        value = part.strip().lower()
        if not value:
            continue
        if value not in BAR_SIZES:
            raise argparse.ArgumentTypeError(
                f"unknown bar size {part.strip()!r}; use one or more of {', '.join(BAR_SIZES)}"
            )
        if value not in chosen:
            chosen.append(value)
    if not chosen:
        raise argparse.ArgumentTypeError(f"name at least one of {', '.join(BAR_SIZES)}")
    return chosen


def api_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text.rstrip("/")


def build_parser(description: str) -> argparse.ArgumentParser:
    """The parser; `description` is the usage documentation --help shows."""
    parser = argparse.ArgumentParser(
        prog="populate_market_cache.py",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # Scripts and make recipes spell flags out; a prefix must not silently mean another flag.
        allow_abbrev=False,
    )
    parser.add_argument(
        "--symbols", type=symbol_list, help="comma list of tickers (default: CACHE_SYMBOLS)"
    )
    parser.add_argument(
        "--exchange", type=exchange_code, help="e.g. NASDAQ or NYSE (default: CACHE_EXCHANGE)"
    )
    parser.add_argument(
        "--days-back", type=days_back, default=365, help="1 to 3650 days before now (default: 365)"
    )
    parser.add_argument(
        "--data-type",
        type=data_types,
        default=["1d"],
        help=f"comma list of bar sizes: {', '.join(BAR_SIZES)} (default: 1d)",
    )
    parser.add_argument("--force", action="store_true", help="fetch again even bars cached fresh")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="show bars cached, missing ranges and requests per series; IBKR is not contacted",
    )
    parser.add_argument(
        "--api-url", type=api_url, help="ask the backend at this URL (one job per bar size)"
    )
    parser.add_argument(
        "--json", action="store_true", help="JSON lines: one per series, then a summary"
    )
    parser.add_argument("--verbose", action="store_true", help="show the services' log")
    return parser


def build_request(
    parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings
) -> PopulationRequest:
    exchange = args.exchange
    if exchange is None:
        try:
            exchange = exchange_code(settings.CACHE_EXCHANGE)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"CACHE_EXCHANGE: {exc}")
    return PopulationRequest(
        symbols=tuple(args.symbols or settings.CACHE_SYMBOLS),
        exchange=exchange,
        data_types=tuple(args.data_type),
        days_back=args.days_back,
        force=args.force,
    )
