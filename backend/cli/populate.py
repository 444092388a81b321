"""Fill the market-data cache from IBKR for some symbols, bar sizes and days back.

A symbol alone is a US stock or ETF. Other instruments are written SYMBOL[:SECTYPE[:EXPIRY]]
(ES:FUT:202503, ES:CONTFUT, EUR.USD:CASH, BTC:CRYPTO, SPX:IND), or named once for all the
symbols with --sec-type and --expiry. --what-to-show and --rth/--all-hours choose the series;
left out, each asset class gets its usual one (TRADES; MIDPOINT for FX, AGGTRADES for crypto)
in regular hours. A series IBKR does not have (TRADES on FX, a future without its expiry) exits
2 with a message naming the flag, before anything is sent.

The script builds the same container as the API and fetches through the same cache refresh
service and pacing scheduler: bars already cached and fresh are skipped, nothing is stored twice,
and requests are spaced to stay inside IBKR's pacing limits. Each chunk is committed on its own,
so an interrupted run keeps what it stored and a re-run fetches only the rest. It works in
DEBUG_MODE too: it is how the cache is filled for debug runs. The pacing budget is the
gateway's, kept in the cache's database: the script and any backend fetching from the same
gateway with the same database share it.

Examples (from the repository root):
  python scripts/populate_market_cache.py                  # CACHE_SYMBOLS, 1d bars, 365 days
  python scripts/populate_market_cache.py --symbols NVDA,TSLA --exchange NASDAQ --days-back 365
  python scripts/populate_market_cache.py --symbols AAPL --data-type 1h,5m --days-back 30
  python scripts/populate_market_cache.py --symbols ES:FUT:202503 --data-type 1m --all-hours
  python scripts/populate_market_cache.py --symbols ES --sec-type FUT --expiry 202503 \\
      --what-to-show MIDPOINT --days-back 2
  python scripts/populate_market_cache.py --symbols EUR.USD,USD.JPY --sec-type CASH --data-type 1h
  python scripts/populate_market_cache.py --symbols AAPL --what-to-show ADJUSTED_LAST
  python scripts/populate_market_cache.py --symbols NVDA --dry-run   # show what would be fetched
  python scripts/populate_market_cache.py --symbols NVDA --force     # fetch fresh bars again
  python scripts/populate_market_cache.py --json                     # JSON lines on stdout
  python scripts/populate_market_cache.py --api-url http://127.0.0.1:8000   # via a running backend
  python scripts/populate_market_cache.py --resume 3f2a...   # an interrupted refresh job, here
  python scripts/populate_market_cache.py --resume 3f2a... --api-url http://127.0.0.1:8000
  python -m scripts.populate_market_cache --symbols NVDA

Verify (splits and dividends): IBKR adjusts history as of each request, so a series cached
before a split the cache has not fetched across since holds prices of the old scale. --verify
asks IBKR again for a sample of each series' cached segments (--verify-samples, default 3: the
first, the last and evenly between; a request or a few each, inside the pacing budget), fetches
no new range, and prints per series the bars compared, the bars that drifted (prices differing
beyond a tick) and the factor (cached price over IBKR's: 10 after a 10:1 split). --repair
verifies and heals the drift as a detected corporate action is: rescaled for a split, else the
series fetched again; the action is recorded (GET /api/market-data/cache/actions). Neither
runs in DEBUG_MODE, which never contacts IBKR (exit 2).
  python scripts/populate_market_cache.py --verify                   # CACHE_SYMBOLS, 1d
  python scripts/populate_market_cache.py --symbols NVDA --data-type 1d,1m --verify-samples 10 \\
      --verify
  python scripts/populate_market_cache.py --symbols NVDA --repair --json

Resume: refresh jobs are stored in the database. A job whose backend stopped (killed, crashed,
restarted) shows as interrupted (GET /api/market-data/cache/refresh/JOB_ID); --resume JOB_ID takes
it over and runs its request again, over the same range, for the series it had not finished:
the cache already holds what it committed, so only the rest is fetched, and the line after the
table says how many requests that took. In this process, or on a backend with --api-url. Exit 2
for an unknown job or one that is still running (its process heartbeats) or completed.

With make (installs and migrates first; every variable is optional):
  make populate-cache
  make populate-cache SYMBOLS=NVDA,TSLA EXCHANGE=NASDAQ DATA_TYPES=1d,1h DAYS_BACK=30

Output: on a terminal, a progress bar per symbol and one overall, with bars fetched, the ETA and
the wait while IBKR's pacing limits hold requests back; plain lines when stdout is not a
terminal. A final table shows, per symbol and bar size, the bars before and after, bars fetched,
bars skipped as fresh and any error.

Exit codes:
  0    every series is cached (with --verify: no drift found, or all of it repaired)
  1    some series failed (the others are stored), or the gateway, the database or the backend
       could not be reached; with --verify: drift found and not repaired, or a series could not
       be verified
  2    bad arguments or settings (or the backend rejected them; --verify in DEBUG_MODE)
  130  interrupted with Ctrl-C; the chunks committed so far are kept

Environment (or .env), as for the backend:
  CACHE_SYMBOLS, CACHE_EXCHANGE    defaults of --symbols and of a stock's --exchange
  DATABASE_URL                     the cache database (run `make migrate` once)
  IB_HOST, IB_PORT                 the IB Gateway / TWS API socket
  IB_CLIENT_ID                     the backend's API client id; the CLI connects as
                                   IB_CLIENT_ID + 1, so both can be connected at once
  IB_CONNECT_TIMEOUT               seconds to wait for the gateway
  CACHE_TTL_HOURS                  bars still forming when fetched are fetched again after this
  API_TOKEN                        sent as "Authorization: Bearer ..." with --api-url
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from loguru import logger

from backend.cli.arguments import (
    build_parser,
    build_request,
    check_resume_flags,
    check_verify_flags,
)
from backend.cli.renderers import choose_output
from backend.cli.runner import (
    EXIT_USAGE,
    job_groups,
    populate_in_process,
    populate_via_api,
    resume_in_process,
    resume_via_api,
)
from backend.cli.verify import verify_in_process, verify_via_api
from backend.config.settings import Settings, SettingsError, load_settings
from backend.containers import Container, build_container
from backend.core.logging import configure_logging
from backend.core.memory import keep_freed_memory
from backend.market_data.verify_jobs import DEFAULT_SAMPLES


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
    keep_freed_memory()
    parser = build_parser(__doc__)
    args = parser.parse_args(argv)
    if args.api_url and args.dry_run:
        parser.error("--dry-run plans in this process; it cannot be combined with --api-url")
    if settings is None:
        try:
            settings = load_settings()
        except SettingsError as exc:
            parser.exit(EXIT_USAGE, f"{parser.prog}: error: {exc}\n")
    check_verify_flags(parser, args)
    check_resume_flags(parser, args)
    if args.resume:
        output = choose_output(stdout, stderr, as_json=args.json)
        if args.api_url:
            route_logs(output.log_sink, args.verbose)
            return resume_via_api(args.resume, args.api_url, settings.API_TOKEN, output)
        if container is None:
            container = build_container(
                settings.model_copy(update={"IB_CLIENT_ID": settings.IB_CLIENT_ID + 1})
            )
        route_logs(output.log_sink, args.verbose)
        return resume_in_process(args.resume, container, output)
    request = build_request(parser, args, settings)
    samples = args.verify_samples or DEFAULT_SAMPLES

    if args.api_url:
        output = choose_output(stdout, stderr, as_json=args.json)
        route_logs(output.log_sink, args.verbose)
        if args.verify:
            groups = job_groups(request.series)
            return verify_via_api(
                groups, samples, args.repair, args.api_url, settings.API_TOKEN, output
            )
        return populate_via_api(request, args.api_url, settings.API_TOKEN, output)

    if container is None:
        # The backend holds IB_CLIENT_ID; the CLI takes the next id so both can be connected.
        container = build_container(
            settings.model_copy(update={"IB_CLIENT_ID": settings.IB_CLIENT_ID + 1})
        )
    output = choose_output(stdout, stderr, as_json=args.json, pacing=container.pacing().stats)
    route_logs(output.log_sink, args.verbose)
    if args.verify:
        return verify_in_process(request.series, samples, args.repair, container, output)
    return populate_in_process(request, container, output, dry_run=args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
