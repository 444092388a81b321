"""API latency under load, per uvicorn set-up, on PostgreSQL; prints one JSON object per line.

Run with `make bench`. Creates a throwaway database next to TEST_DATABASE_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), starts an in-process simulated gateway and
the backend as `python -m backend.server` once per set-up (httptools + uvloop, and uvicorn's
pure-Python h11 + asyncio), fills one symbol with a year of daily bars and 20 sessions of
1-minute bars through POST /api/market-data/cache/refresh, then loads each server from a separate
process: a minimal keep-alive HTTP/1.1 client on uvloop, so the load generator costs a small
fraction of what the server spends per request (its CPU time is reported). The set-ups take
turns, round by round, so a busy moment on the machine weighs on both alike. A second symbol
holds bench_cache's trading year of 1-minute bars, for the Parquet figure.

Figures (value: the set-up backend/server.py serves by default; baseline: the other, same run):
  api_{health,series_1d,series_1m}_c{1,16,64}_{p50,p99}_ms
      GET /api/health (one SELECT 1), the series route over a year of daily bars, and over
      20 sessions of 1-minute bars, at 1, 16 and 64 concurrent clients
  api_setup_p50_ratio     geometric mean over those cells of default p50 / baseline p50
                          (below 1: the default is faster)
  api_latency_p50_ratio   series_1d p50 / health p50 at 16 clients, default set-up (target <= 3)
  api_parquet_vs_inprocess
      GET /api/market-data/cache/{symbol}?format=parquet over a trading year of 1-minute bars
      (the bars of bench_cache's warm read, stored through store_chunk one session per chunk),
      one client, the whole body received, over the in-process warm read of the same bars,
      get_or_fetch_market_data(...).to_pandas(), in this process; the detail has the client's
      pyarrow.parquet.read_table(body).to_pandas() and the ratio with it included
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from backend.config.settings import load_settings
from backend.containers import build_container
from backend.core.logging import configure_logging
from backend.devtools import bench_cache
from backend.devtools.bench import emit, emit_pending, emit_ratio, median, parse_help
from backend.devtools.bench_bars import TradingYear, chunks_of, random_walk_bars
from backend.devtools.migrations import migrate_to_head
from backend.devtools.postgres import throwaway_postgres_database
from backend.ibkr_simulator import SimulatedGateway
from backend.server import DEFAULT_HTTP, DEFAULT_LOOP
from backend.storage.database import Database
from backend.storage.market_data_repository import MarketDataCacheRepository

ROOT = Path(__file__).resolve().parents[2]

SYMBOL = "NVDA"
# (http, loop) of each set-up measured; the default one is the figure, the other its baseline.
SETUPS = {"httptools+uvloop": ("httptools", "uvloop"), "h11+asyncio": ("h11", "asyncio")}
DEFAULT_SETUP = f"{DEFAULT_HTTP}+{DEFAULT_LOOP}"
ENDPOINTS = {
    "health": "/api/health",
    "series_1d": f"/api/market-data/cache/{SYMBOL}?data_type=1d",
    "series_1m": f"/api/market-data/cache/{SYMBOL}?data_type=1m",
}
CONCURRENCY = (1, 16, 64)
# Each measurement sends requests for this long (the requests under way then finish); longer
# for the slow route, so that its p99 rests on more than a handful of requests.
WINDOW_S = {"health": 1.0, "series_1d": 1.2, "series_1m": 2.5}
ROUNDS = 2
WARMUP_S = 0.3
FILLS = [("1d", 365), ("1m", 28)]  # 28 calendar days hold 20 sessions
TARGET_P50_RATIO = 3.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def backend_server(
    setup: str, database_url: str, gateway_port: int, client_id: int, log_dir: Path
) -> Iterator[int]:
    """`python -m backend.server` with one set-up, in its own process; yields its port."""
    http, loop = SETUPS[setup]
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "IB_HOST": "127.0.0.1",
        "IB_PORT": str(gateway_port),
        "IB_CLIENT_ID": str(client_id),
        "DEBUG_MODE": "false",
        "API_TOKEN": "",
        "LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable, "-m", "backend.server", "--host", "127.0.0.1", "--port", str(port),
        "--http", http, "--loop", loop,
    ]  # fmt: skip
    log_path = log_dir / f"{setup}.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{setup} server did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=20)


def fill_cache(port: int) -> dict[str, int]:
    """Bars cached per bar size, filled through the API as a user would."""
    bars = {}
    for data_type, days_back in FILLS:
        response = httpx.post(
            f"http://127.0.0.1:{port}/api/market-data/cache/refresh",
            params={"wait": "true"},
            json={"symbols": [SYMBOL], "data_type": data_type, "days_back": days_back},
            timeout=180,
        )
        job = response.json()
        if response.status_code != 200 or job["results"][0]["status"] != "ok":
            raise RuntimeError(f"filling the cache failed: {job}")
        bars[data_type] = job["results"][0]["bars_cached"]
    return bars


# The load generator: runs in its own process.


@dataclass
class Load:
    latencies_ms: list[float]
    non_200: int
    elapsed_s: float
    client_cpu_s: float


async def _keep_alive_client(
    port: int, request: bytes, deadline: float, latencies: list[float], statuses: list[bytes]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            _, _, rest = head.lower().partition(b"\r\ncontent-length:")
            await reader.readexactly(int(rest.split(b"\r\n", 1)[0]))
            latencies.append((time.perf_counter() - started) * 1000)
            statuses.append(head[9:12])
    finally:
        writer.close()


async def _load(port: int, path: str, concurrency: int, window_s: float) -> Load:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    latencies: list[float] = []
    statuses: list[bytes] = []
    cpu_started, started = time.process_time(), time.perf_counter()
    await asyncio.gather(
        *(
            _keep_alive_client(port, request, started + window_s, latencies, statuses)
            for _ in range(concurrency)
        )
    )
    elapsed = time.perf_counter() - started
    non_200 = sum(status != b"200" for status in statuses)
    return Load(latencies, non_200, elapsed, time.process_time() - cpu_started)


def run_load(port: int, path: str, concurrency: int, window_s: float) -> Load:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_load(port, path, concurrency, window_s))


# Figures.


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(ports: dict[str, int]) -> dict[tuple[str, str, int], Load]:
    """Every (set-up, endpoint, concurrency), taking turns round by round."""
    results: dict[tuple[str, str, int], Load] = {}
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as load_process:
        for port in ports.values():
            for path in ENDPOINTS.values():
                load_process.submit(run_load, port, path, 4, WARMUP_S).result()
        for round_index in range(ROUNDS):
            order = list(ports) if round_index % 2 == 0 else list(reversed(ports))
            for name, path in ENDPOINTS.items():
                for concurrency in CONCURRENCY:
                    for setup in order:
                        load = load_process.submit(
                            run_load, ports[setup], path, concurrency, WINDOW_S[name]
                        ).result()
                        key = (setup, name, concurrency)
                        if key in results:
                            previous = results[key]
                            load = Load(
                                previous.latencies_ms + load.latencies_ms,
                                previous.non_200 + load.non_200,
                                previous.elapsed_s + load.elapsed_s,
                                previous.client_cpu_s + load.client_cpu_s,
                            )
                        results[key] = load
    return results


def report(results: dict[tuple[str, str, int], Load], bars: dict[str, int]) -> None:
    [other_setup] = [setup for setup in SETUPS if setup != DEFAULT_SETUP]
    log_ratios = []
    p50 = {}
    for name, path in ENDPOINTS.items():
        for concurrency in CONCURRENCY:
            load = results[(DEFAULT_SETUP, name, concurrency)]
            base = results[(other_setup, name, concurrency)]
            detail = {
                "path": path,
                "concurrency": concurrency,
                "setup": DEFAULT_SETUP,
                "baseline_setup": other_setup,
                "requests": len(load.latencies_ms),
                "baseline_requests": len(base.latencies_ms),
                "rps": round(len(load.latencies_ms) / load.elapsed_s, 1),
                "baseline_rps": round(len(base.latencies_ms) / base.elapsed_s, 1),
                "non_200": load.non_200,
                "baseline_non_200": base.non_200,
                # The load generator's own CPU per request: small beside the latency, so it
                # is not what is being measured.
                "client_cpu_ms_per_request": round(
                    1000 * load.client_cpu_s / max(1, len(load.latencies_ms)), 3
                ),
            }
            if name.startswith("series_"):
                detail["bars"] = bars[name.removeprefix("series_")]
            value_p50 = statistics.median(load.latencies_ms)
            base_p50 = statistics.median(base.latencies_ms)
            p50[(name, concurrency)] = value_p50
            log_ratios.append(math.log(value_p50 / base_p50))
            emit(f"api_{name}_c{concurrency}_p50_ms", value_p50, "ms", round(base_p50, 3), **detail)
            emit(
                f"api_{name}_c{concurrency}_p99_ms",
                percentile(load.latencies_ms, 0.99),
                "ms",
                round(percentile(base.latencies_ms, 0.99), 3),
                **detail,
            )
    setup_ratio = math.exp(statistics.mean(log_ratios))
    emit(
        "api_setup_p50_ratio",
        setup_ratio,
        "ratio",
        1.0,
        setup=DEFAULT_SETUP,
        baseline_setup=other_setup,
        default_is_faster=setup_ratio < 1.0,
    )
    emit_ratio(
        "api_latency_p50_ratio",
        p50[("series_1d", 16)],
        p50[("health", 16)],
        "ms",
        target=TARGET_P50_RATIO,
        setup=DEFAULT_SETUP,
    )


# The series route in Parquet against the in-process read of the same year.

PARQUET_SERIES = bench_cache.SERIES
PARQUET_ROUNDS = 15
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


def fill_year(database_url: str) -> TradingYear:
    """bench_cache's year of 1-minute bars, stored as the service stores what IBKR sends."""
    year = TradingYear.ending(bench_cache.YEAR_CLOSED_BY)
    bars = random_walk_bars(year.timestamps, bench_cache.SEED)
    database = Database(database_url)
    repository = MarketDataCacheRepository(database)
    for chunk, fetch in chunks_of(year, bars, year.fetches(bench_cache.BACKFILLED_AT)):
        repository.store_chunk(PARQUET_SERIES, chunk, fetch)
    database.dispose()
    return year


def parquet_figure(
    port: int, database_url: str, gateway_port: int, client_id: int, year: TradingYear
) -> None:
    """The route's Parquet answer and the in-process warm read, taking turns round by round."""
    settings = load_settings(
        DATABASE_URL=database_url, IB_PORT=gateway_port, IB_CLIENT_ID=client_id, LOG_LEVEL="WARNING"
    )
    container = build_container(settings)
    try:
        # One event loop for every round, as an application holds one. (asyncio.Runner.run per
        # read would add tens of ms: on return it looks up its SIGINT handler, which formats
        # the repr of the finished task, DataFrame result included.)
        samples = asyncio.run(parquet_rounds(container, port, year))
    finally:
        container.database().dispose()
    if samples is None:
        return
    route_s, read_s = median(samples["route"]), median(samples["read_body"])
    in_process_s = median(samples["in_process"])
    emit_ratio(
        "api_parquet_vs_inprocess",
        route_s,
        in_process_s,
        "s",
        setup=DEFAULT_SETUP,
        bars=len(year),
        body_bytes=int(samples["body_bytes"][-1]),
        same_frame_as_in_process=all(samples["same_frame"]),
        rounds=PARQUET_ROUNDS,
        client_read_parquet_s=round(read_s, 4),
        with_client_read_ratio=round((route_s + read_s) / in_process_s, 3),
    )


async def parquet_rounds(container, port: int, year: TradingYear) -> dict[str, list] | None:
    service = container.market_data_service()
    series = PARQUET_SERIES
    url = f"http://127.0.0.1:{port}/api/market-data/cache/{series.symbol}"
    params = {"data_type": series.data_type, "exchange": series.exchange, "format": "parquet"}
    samples: dict[str, list] = {
        "route": [],
        "read_body": [],
        "in_process": [],
        "body_bytes": [],
        "same_frame": [],
    }
    # A blocking client on purpose: nothing else runs on this loop meanwhile, and it is the
    # same client whichever way the frame is then used.
    with httpx.Client(timeout=60) as client:
        for round_index in range(bench_cache.WARMUP + PARQUET_ROUNDS):
            started = time.perf_counter()
            response = client.get(url, params=params)
            route_s = time.perf_counter() - started
            if response.headers.get("content-type", "").split(";")[0] != PARQUET_MEDIA_TYPE:
                emit_pending(
                    "api_parquet_vs_inprocess",
                    "the series route does not answer format=parquet yet",
                    status=response.status_code,
                    content_type=response.headers.get("content-type"),
                )
                return None
            started = time.perf_counter()
            frame = pq.read_table(pa.BufferReader(response.content)).to_pandas()
            read_body_s = time.perf_counter() - started
            started = time.perf_counter()
            result = await service.get_or_fetch_market_data(
                series.symbol, series.exchange, series.data_type, year.start, year.end
            )
            expected = result.to_pandas()
            in_process_s = time.perf_counter() - started
            if round_index < bench_cache.WARMUP:
                continue
            samples["route"].append(route_s)
            samples["read_body"].append(read_body_s)
            samples["in_process"].append(in_process_s)
            samples["body_bytes"].append(len(response.content))
            # The route should answer the very frame the service gives in process.
            samples["same_frame"].append(frame.equals(expected))
    return samples


def main(argv: Sequence[str] | None = None) -> None:
    parse_help(__doc__, argv)
    # The in-process reads log at INFO otherwise, which the servers do not (LOG_LEVEL).
    configure_logging("WARNING")
    gateway = SimulatedGateway(seed=3).start_in_thread()
    try:
        with (
            throwaway_postgres_database("mdc_bench_api") as database_url,
            tempfile.TemporaryDirectory(prefix="bench_api_") as log_dir,
            ExitStack() as servers,
        ):
            migrate_to_head(database_url)
            year = fill_year(database_url)
            ports = {
                setup: servers.enter_context(
                    backend_server(setup, database_url, gateway.port, 900 + index, Path(log_dir))
                )
                for index, setup in enumerate(SETUPS)
            }
            bars = fill_cache(ports[DEFAULT_SETUP])
            results = measure(ports)
            report(results, bars)
            parquet_figure(ports[DEFAULT_SETUP], database_url, gateway.port, 950, year)
    finally:
        gateway.stop()


if __name__ == "__main__":
    main()
