"""The populate CLI's command line: flags, their checks, and the request they make."""

from __future__ import annotations

import argparse

from backend.config.settings import (
    BAR_SIZES,
    CACHE_SYMBOL_FORMAT,
    CacheSymbol,
    Settings,
    parse_cache_symbol,
)
from backend.market_data.calendar import UnsupportedExchange, calendar_for
from backend.market_data.domain import (
    DEFAULT_DAYS_BACK,
    MAX_DAYS_BACK,
    BarSize,
    InvalidSeries,
    SecType,
    SeriesKey,
    WhatToShow,
    parse_exchange,
)
from backend.market_data.population import PopulationRequest
from backend.market_data.verify_jobs import DEFAULT_SAMPLES, MAX_SAMPLES

# The flag that sets each field parse_series may refuse.
FLAG_OF_FIELD = {
    "symbol": "--symbols",
    "data_type": "--data-type",
    "sec_type": "--sec-type",
    "exchange": "--exchange",
    "currency": "--currency",
    "expiry": "--expiry",
    "what_to_show": "--what-to-show",
}


def symbol_list(text: str) -> list[CacheSymbol]:
    symbols: list[CacheSymbol] = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            # The other flags may complete an entry (ES:FUT with --expiry): checked with them.
            symbol = parse_cache_symbol(part, complete=False)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if symbol not in symbols:
            symbols.append(symbol)
    if not symbols:
        raise argparse.ArgumentTypeError(
            f"name at least one symbol, e.g. NVDA,TSLA; {CACHE_SYMBOL_FORMAT}"
        )
    return symbols


def exchange_code(text: str) -> str:
    # Its trading calendar is checked with the series it is for (build_request).
    try:
        return parse_exchange(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


def choice_of(enum: type[SecType] | type[WhatToShow]):
    """An upper-cased member of enum; the message lists them all."""

    def parse(text: str):
        try:
            return enum(text.strip().upper())
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {allowed}") from None

    return parse


def verify_samples(text: str) -> int:
    try:
        samples = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of segments") from None
    if not 1 <= samples <= MAX_SAMPLES:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_SAMPLES} (got {samples})")
    return samples


def check_verify_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--repair implies --verify; a verify fills nothing, so the filling flags are refused."""
    if args.repair:
        args.verify = True
    if args.verify_samples is not None and not args.verify:
        parser.error("argument --verify-samples: only with --verify or --repair")
    if not args.verify:
        return
    flag = "--repair" if args.repair else "--verify"
    for given, name in (
        (args.dry_run, "--dry-run"),
        (args.force, "--force"),
        (args.days_back is not None, "--days-back"),
    ):
        if given:
            parser.error(
                f"argument {name}: not with {flag}, which checks what is cached and fetches "
                "no new range; run them separately"
            )


def check_resume_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--resume runs a stored job's own request: the flags that make a request are refused."""
    if args.resume is None:
        return
    for given, name in (
        (args.symbols is not None, "--symbols"),
        (args.days_back is not None, "--days-back"),
        (args.force, "--force"),
        (args.dry_run, "--dry-run"),
        (args.verify or args.repair, "--verify"),
    ):
        if given:
            parser.error(
                f"argument {name}: not with --resume, which runs the job's own request again"
            )


def job_id(text: str) -> str:
    value = text.strip().lower()
    if not value or len(value) > 32 or not value.isalnum():
        raise argparse.ArgumentTypeError(f"{text!r} is not a refresh job id")
    return value


def upper(text: str) -> str:
    return text.strip().upper()


def api_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text.rstrip("/")


def _default_days() -> str:
    return ", ".join(f"{days} for {size.value}" for size, days in DEFAULT_DAYS_BACK.items())


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
        "--symbols",
        type=symbol_list,
        help="comma list of SYMBOL[:SECTYPE[:EXPIRY]], e.g. NVDA,ES:FUT:202503,EUR.USD:CASH "
        "(default: CACHE_SYMBOLS)",
    )
    parser.add_argument(
        "--sec-type",
        type=choice_of(SecType),
        help="asset class of the symbols that name none: "
        f"{', '.join(kind.value for kind in SecType)} (default: STK, a stock or ETF)",
    )
    parser.add_argument(
        "--exchange",
        type=exchange_code,
        help="e.g. NASDAQ or NYSE (default: CACHE_EXCHANGE for stocks; CBOE, CME, IDEALPRO, "
        "PAXOS for indices, futures, FX, crypto)",
    )
    parser.add_argument(
        "--currency", type=upper, help="quote currency (default: USD, or an FX pair's own)"
    )
    parser.add_argument(
        "--expiry",
        type=upper,
        help="a future's contract month YYYYMM or last day YYYYMMDD, for FUT symbols that "
        "name none",
    )
    parser.add_argument(
        "--what-to-show",
        type=choice_of(WhatToShow),
        help=f"IBKR's series: {', '.join(kind.value for kind in WhatToShow)} (default: TRADES; "
        "MIDPOINT for CASH, AGGTRADES for CRYPTO)",
    )
    hours = parser.add_mutually_exclusive_group()
    hours.add_argument(
        "--rth",
        dest="use_rth",
        action="store_true",
        default=True,
        help="regular trading hours only (the default)",
    )
    hours.add_argument(
        "--all-hours",
        dest="use_rth",
        action="store_false",
        help="all hours: stocks' pre- and after-market, futures' overnight session",
    )
    parser.add_argument(
        "--days-back",
        type=days_back,
        help=f"1 to {MAX_DAYS_BACK} days before now (default by bar size: {_default_days()})",
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
        "--verify",
        action="store_true",
        help="instead of filling the cache, ask IBKR again for a sample of each series' cached "
        "segments and report drift (a split or dividend the cache has not seen); exit 1 when "
        "any is found",
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="verify, and heal the drift found: rescale the series for a split, else fetch it "
        "again (implies --verify)",
    )
    parser.add_argument(
        "--verify-samples",
        type=verify_samples,
        default=None,
        help=f"cached segments per series to verify, 1 to {MAX_SAMPLES}: the first, the last "
        f"and evenly between (default: {DEFAULT_SAMPLES})",
    )
    parser.add_argument(
        "--resume",
        metavar="JOB_ID",
        type=job_id,
        help="resume an interrupted (or cancelled, failed, partial) refresh job: its request "
        "runs again for the series it had not finished, and only what the cache still lacks "
        "is fetched; with --api-url on that backend, else in this process",
    )
    parser.add_argument(
        "--api-url",
        type=api_url,
        help="ask the backend at this URL (one job per bar size and kind of series)",
    )
    parser.add_argument(
        "--json", action="store_true", help="JSON lines: one per series, then a summary"
    )
    parser.add_argument("--verbose", action="store_true", help="show the services' log")
    return parser


def build_request(
    parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings
) -> PopulationRequest:
    """Every symbol x bar size as a series, checked before anything is planned: a series IBKR
    does not have, or a market without a trading calendar, exits 2 naming the flag (or the
    setting) to change."""
    from_settings = args.symbols is None
    symbols = settings.cache_symbols() if from_settings else args.symbols
    series = [
        _series(parser, args, settings, symbol, data_type, from_settings)
        for symbol in symbols
        for data_type in args.data_type
    ]
    return PopulationRequest(
        series=tuple(dict.fromkeys(series)), days_back=args.days_back, force=args.force
    )


def _series(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    settings: Settings,
    symbol: CacheSymbol,
    data_type: str,
    from_settings: bool,
) -> SeriesKey:
    try:
        series = symbol.series(
            BarSize(data_type),
            stock_exchange=settings.CACHE_EXCHANGE,
            sec_type=args.sec_type,
            exchange=args.exchange,
            currency=args.currency,
            expiry=args.expiry,
            what_to_show=args.what_to_show,
            use_rth=args.use_rth,
        )
    except InvalidSeries as exc:
        flag = FLAG_OF_FIELD.get(exc.field, "--symbols")
        if flag == "--symbols" and from_settings:
            parser.error(f"CACHE_SYMBOLS: {symbol}: {exc}")
        parser.error(f"argument {flag}: {symbol}: {exc}")
    try:
        calendar_for(series.market)
    except UnsupportedExchange as exc:
        if args.exchange is None and series.sec_type == SecType.STK:
            parser.error(f"CACHE_EXCHANGE: {exc}")
        parser.error(f"argument --exchange: {exc}")
    return series
