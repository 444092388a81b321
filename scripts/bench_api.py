"""API latency benchmark under uvicorn on PostgreSQL; prints one JSON object per line.

Run with `make bench`. Creates a throwaway database next to TEST_DATABASE_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), starts an in-process simulated gateway and
the real app under uvicorn in a separate process, fills one year of daily bars for one symbol
through POST /api/market-data/cache/refresh, then sends a fixed number of requests per endpoint
from concurrent clients.

Figures:
  api_health_p50_ms, api_health_p99_ms   GET /api/health (one SELECT 1): the floor of the stack
  api_symbol_p50_ms, api_symbol_p99_ms   GET /api/market-data/cache/{symbol}, a year of daily bars
  api_latency_p50_ratio                  symbol p50 / health p50 (target <= 3)
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
# Run as `python scripts/bench_api.py` from anywhere.
sys.path.insert(0, str(ROOT))

from backend.ibkr_simulator import SimulatedGateway  # noqa: E402
from tests.support.migrations import migrate_to_head  # noqa: E402

SYMBOL = "NVDA"
CONCURRENCY = 16
REQUESTS_PER_ENDPOINT = 2000
WARMUP_REQUESTS = 200
ROUNDS = 4
ENDPOINTS = {"health": "/api/health", "symbol": f"/api/market-data/cache/{SYMBOL}"}
TARGET_P50_RATIO = 3.0


def emit(name: str, value: float, unit: str, baseline: float | None, **detail) -> None:
    record = {"name": name, "value": round(value, 3), "unit": unit, "baseline": baseline}
    print(json.dumps({**record, "detail": detail}), flush=True)


@contextmanager
def throwaway_database() -> Iterator[str]:
    admin_url = make_url(
        os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    name = f"mdc_bench_api_{uuid.uuid4().hex[:8]}"
    dsn = admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def uvicorn_server(database_url: str, gateway_port: int) -> Iterator[str]:
    """The production entry point (`uvicorn backend.main:app`) in its own process."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "IB_HOST": "127.0.0.1",
        "IB_PORT": str(gateway_port),
        "DEBUG_MODE": "false",
        "API_TOKEN": "",
        "LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "backend.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start; see its output above")
            time.sleep(0.1)
        yield base_url
    finally:
        server.terminate()
        server.wait(timeout=15)


def fill_one_year(base_url: str) -> int:
    response = httpx.post(
        f"{base_url}/api/market-data/cache/refresh",
        params={"wait": "true"},
        json={"symbols": [SYMBOL], "data_type": "1d", "days_back": 365},
        timeout=180,
    )
    job = response.json()
    result = job["results"][0]
    if response.status_code != 200 or result["status"] != "ok":
        raise RuntimeError(f"filling the cache failed: {job}")
    return result["bars_cached"]


async def measure(base_url: str, path: str, total: int) -> tuple[list[float], int]:
    """Latencies in ms of `total` GETs spread over CONCURRENCY clients; and the non-200 count."""
    latencies: list[float] = []
    failures = 0
    remaining = iter(range(total))

    async def worker() -> None:
        nonlocal failures
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            for _ in remaining:
                started = time.perf_counter()
                response = await client.get(path)
                latencies.append((time.perf_counter() - started) * 1000)
                failures += response.status_code != 200

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return latencies, failures


def measure_interleaved(base_url: str) -> dict[str, tuple[list[float], int]]:
    """Endpoints take turns in rounds, so a busy moment on the machine weighs on both alike."""
    results: dict[str, tuple[list[float], int]] = {name: ([], 0) for name in ENDPOINTS}
    for _ in range(ROUNDS):
        for name, path in ENDPOINTS.items():
            latencies, failures = asyncio.run(
                measure(base_url, path, REQUESTS_PER_ENDPOINT // ROUNDS)
            )
            results[name] = (results[name][0] + latencies, results[name][1] + failures)
    return results


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    gateway = SimulatedGateway(seed=3).start_in_thread()
    try:
        with throwaway_database() as database_url:
            migrate_to_head(database_url)
            with uvicorn_server(database_url, gateway.port) as base_url:
                bars = fill_one_year(base_url)
                for path in ENDPOINTS.values():
                    asyncio.run(measure(base_url, path, WARMUP_REQUESTS))
                results = measure_interleaved(base_url)
    finally:
        gateway.stop()

    p50 = {}
    for name, (latencies, failures) in results.items():
        p50[name] = statistics.median(latencies)
        detail = {
            "path": ENDPOINTS[name],
            "requests": len(latencies),
            "non_200": failures,
            "concurrency": CONCURRENCY,
        }
        if name == "symbol":
            detail["bars"] = bars
        emit(f"api_{name}_p50_ms", p50[name], "ms", None, **detail)
        emit(f"api_{name}_p99_ms", percentile(latencies, 0.99), "ms", None, **detail)
    ratio = p50["symbol"] / p50["health"]
    emit(
        "api_latency_p50_ratio",
        ratio,
        "ratio",
        TARGET_P50_RATIO,
        symbol_p50_ms=round(p50["symbol"], 3),
        health_p50_ms=round(p50["health"], 3),
        within_target=ratio <= TARGET_P50_RATIO,
    )


if __name__ == "__main__":
    main()
