"""`make run`: the embedded default: SQLite, the simulated gateway, a filled cache, API and UI.

Starts the bundled simulated IB Gateway on free loopback ports (unless USE_SIMULATOR=0, in which
case IB_HOST/IB_PORT must point at a real IB Gateway or TWS), fills the cache for CACHE_SYMBOLS
when it holds nothing for them, then serves the API and the UI at http://127.0.0.1:8000.
The database has already been migrated by `make migrate`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as `python scripts/run_local.py` from the repository root.
sys.path.insert(0, str(ROOT))

from backend.config.settings import SettingsError, load_settings  # noqa: E402
from backend.server import serve, uvicorn_config  # noqa: E402
from backend.storage.database import Database  # noqa: E402
from backend.storage.market_data_repository import MarketDataCacheRepository  # noqa: E402
from backend.storage.types import utc_now  # noqa: E402

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8000"))


def start_simulator() -> tuple[subprocess.Popen, int, int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "backend.ibkr_simulator", "--port", "0", "--control-port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening" not in line:
        process.terminate()
        raise SystemExit(f"the simulated gateway did not start: {line.strip() or 'no output'}")
    ports = dict(part.split("=", 1) for part in line.split() if "=" in part)
    api_port = int(ports["api"].rsplit(":", 1)[1])
    control_port = int(ports["control"].rsplit(":", 1)[1])
    return process, api_port, control_port


def symbols_without_bars(database_url: str, symbols: list[str]) -> list[str]:
    database = Database(database_url)
    cached = {
        row["symbol"] for row in MarketDataCacheRepository(database).series_summaries(utc_now())
    }
    database.dispose()
    return [symbol for symbol in symbols if symbol not in cached]


def main() -> int:
    simulator = None
    if os.environ.get("USE_SIMULATOR", "1") != "0":
        simulator, api_port, control_port = start_simulator()
        os.environ["IB_HOST"] = "127.0.0.1"
        os.environ["IB_PORT"] = str(api_port)
        os.environ["IB_SIMULATOR_CONTROL_URL"] = f"http://127.0.0.1:{control_port}"
        print(
            f"simulated IB Gateway on 127.0.0.1:{api_port} (control API :{control_port})",
            flush=True,
        )
    try:
        try:
            settings = load_settings()
        except SettingsError as error:
            print(error, file=sys.stderr)
            return 2
        missing = symbols_without_bars(settings.DATABASE_URL, settings.CACHE_SYMBOLS)
        if missing:
            print(f"filling the cache for {', '.join(missing)} (1 year of daily bars)", flush=True)
            subprocess.run(
                [
                    sys.executable,
                    "scripts/populate_market_cache.py",
                    "--symbols",
                    ",".join(missing),
                ],
                cwd=ROOT,
                check=False,
            )
        mode = "ON: workflows read only from the cache" if settings.DEBUG_MODE else "off"
        print(f"serving the API and UI at http://{HOST}:{PORT}  (DEBUG_MODE {mode})", flush=True)
        serve(uvicorn_config(HOST, PORT))
        return 0
    finally:
        if simulator is not None:
            simulator.terminate()
            simulator.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
