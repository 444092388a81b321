"""Fill the market-data cache from IBKR for some symbols, bar sizes and days back.

The script builds the same container as the API and fetches through the same cache refresh
service and pacing scheduler: bars already cached and fresh are skipped, nothing is stored twice,
and requests are spaced to stay inside IBKR's pacing limits. Each chunk is committed on its own,
so an interrupted run keeps what it stored and a re-run fetches only the rest. It works in
DEBUG_MODE too: it is how the cache is filled for debug runs. The pacing budget is per process:
while the backend is fetching from the same gateway, prefer --api-url, so that one scheduler
paces both.

Examples (from the repository root):
  python scripts/populate_market_cache.py                  # CACHE_SYMBOLS, 1d bars, 365 days
  python scripts/populate_market_cache.py --symbols NVDA,TSLA --exchange NASDAQ --days-back 365
  python scripts/populate_market_cache.py --symbols AAPL --data-type 1h,5m --days-back 30
  python scripts/populate_market_cache.py --symbols NVDA --dry-run   # show what would be fetched
  python scripts/populate_market_cache.py --symbols NVDA --force     # fetch fresh bars again
  python scripts/populate_market_cache.py --json                     # JSON lines on stdout
  python scripts/populate_market_cache.py --api-url http://127.0.0.1:8000   # via a running backend
  python -m scripts.populate_market_cache --symbols NVDA

With make (installs and migrates first; every variable is optional):
  make populate-cache
  make populate-cache SYMBOLS=NVDA,TSLA EXCHANGE=NASDAQ DATA_TYPES=1d,1h DAYS_BACK=30

Output: on a terminal, a progress bar per symbol and one overall, with bars fetched, the ETA and
the wait while IBKR's pacing limits hold requests back; plain lines when stdout is not a
terminal. A final table shows, per symbol and bar size, the bars before and after, bars fetched,
bars skipped as fresh and any error.

Exit codes:
  0    every series is cached
  1    some series failed (the others are stored), or the gateway, the database or the backend
       could not be reached
  2    bad arguments or settings (or the backend rejected them)
  130  interrupted with Ctrl-C; the chunks committed so far are kept

Environment (or .env), as for the backend:
  CACHE_SYMBOLS, CACHE_EXCHANGE    defaults of --symbols and --exchange
  DATABASE_URL                     the cache database (run `make migrate` once)
  IB_HOST, IB_PORT                 the IB Gateway / TWS API socket
  IB_CLIENT_ID                     the backend's API client id; the CLI connects as
                                   IB_CLIENT_ID + 1, so both can be connected at once
  IB_CONNECT_TIMEOUT               seconds to wait for the gateway
  CACHE_TTL_HOURS                  bars still forming when fetched are fetched again after this
  API_TOKEN                        sent as "Authorization: Bearer ..." with --api-url
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TextIO

if __package__ in (None, ""):
    # Run as `python scripts/populate_market_cache.py`: Python puts scripts/ on sys.path, not the
    # repository root, so `backend` and `scripts` would not import as they do under `python -m`.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loguru import logger  # noqa: E402

from backend.config.settings import (  # noqa: E402
    BAR_SIZES,
    Settings,
    SettingsError,
    load_settings,
    normalize_symbol,
)
from backend.containers import Container, build_container  # noqa: E402
from backend.core.logging import configure_logging  # noqa: E402
from backend.market_data.calendar import UnsupportedExchange, calendar_for  # noqa: E402
from backend.market_data.population import PopulationRequest  # noqa: E402
from scripts.populate_runner import (  # noqa: E402
    EXIT_USAGE,
    populate_in_process,
    populate_via_api,
)
from scripts.progress_output import choose_output  # noqa: E402

MAX_DAYS_BACK = 3650


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="populate_market_cache.py",
        description=__doc__,
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


def route_logs(sink, verbose: bool) -> None:
    """Logs go through the output, so progress bars stay intact.

    Without --verbose only errors are logged: the output itself reports retries and failures.
    """
    level = "INFO" if verbose else "ERROR"
    configure_logging(level)
    logger.remove()
    logger.add(sink, level=level, format="{level}: {message}", colorize=False)
    if not verbose:
        # ib_insync logs its own version of each connection and request error; ours say more.
        logging.getLogger("ib_insync").setLevel(logging.CRITICAL)


def main(
    argv: list[str] | None = None,
    *,
    settings: Settings | None = None,
    container: Container | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.api_url and args.dry_run:
        parser.error("--dry-run plans in this process; it cannot be combined with --api-url")
    if settings is None:
        try:
            settings = load_settings()
        except SettingsError as exc:
            parser.exit(EXIT_USAGE, f"{parser.prog}: error: {exc}\n")
    request = build_request(parser, args, settings)

    if args.api_url:
        output = choose_output(stdout, stderr, as_json=args.json)
        route_logs(output.log_sink, args.verbose)
        return populate_via_api(request, args.api_url, settings.API_TOKEN, output)

    if container is None:
        # The backend holds IB_CLIENT_ID; the CLI takes the next id so both can be connected.
        container = build_container(
            settings.model_copy(update={"IB_CLIENT_ID": settings.IB_CLIENT_ID + 1})
        )
    output = choose_output(stdout, stderr, as_json=args.json, pacing=container.pacing().stats)
    route_logs(output.log_sink, args.verbose)
    return populate_in_process(request, container, output, dry_run=args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
