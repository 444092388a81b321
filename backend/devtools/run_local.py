"""`make run`: the embedded default: SQLite, the simulated gateway, a filled cache, API and UI.

Starts the bundled simulated IB Gateway on free loopback ports (unless USE_SIMULATOR=0, in which
case IB_HOST/IB_PORT must point at a real IB Gateway or TWS), fills the cache for CACHE_SYMBOLS
when it holds nothing for them, then serves the API and the UI at http://127.0.0.1:8000.
The database has already been migrated by `make migrate`. SIGTERM or Ctrl-C stops the simulator too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from backend.config.settings import SettingsError, load_settings
from backend.ibkr_simulator.launcher import SimulatorProcess, start_simulator_process
from backend.server import serve, uvicorn_config
from backend.storage.database import Database
from backend.storage.market_data_repository import MarketDataCacheRepository
from backend.storage.types import utc_now

ROOT = Path(__file__).resolve().parents[2]


def exit_on_signal(signum: int, _frame: object) -> None:
    """SIGTERM and SIGINT end main() through its `finally`, which stops the simulator.

    uvicorn handles both while it serves, shuts down, then raises the signal again: here.
    """
    raise SystemExit(128 + signum)


def start_simulator() -> SimulatorProcess:
    try:
        simulator = start_simulator_process()
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    os.environ["IB_HOST"] = "127.0.0.1"
    os.environ["IB_PORT"] = str(simulator.port)
    os.environ["IB_SIMULATOR_CONTROL_URL"] = simulator.control_url
    control_port = simulator.control_url.rsplit(":", 1)[1]
    print(
        f"simulated IB Gateway on 127.0.0.1:{simulator.port} (control API :{control_port})",
        flush=True,
    )
    return simulator


def symbols_without_bars(database_url: str, symbols: list[str]) -> list[str]:
    database = Database(database_url)
    cached = {
        row["symbol"] for row in MarketDataCacheRepository(database).series_summaries(utc_now())
    }
    database.dispose()
    return [symbol for symbol in symbols if symbol not in cached]


def main() -> int:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, exit_on_signal)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    simulator = None
    try:
        if os.environ.get("USE_SIMULATOR", "1") != "0":
            simulator = start_simulator()
        try:
            settings = load_settings()
        except SettingsError as error:
            print(error, file=sys.stderr)
            return 2
        missing = symbols_without_bars(settings.DATABASE_URL, settings.CACHE_SYMBOLS)
        if missing:
            print(f"filling the cache for {', '.join(missing)} (1 year of daily bars)", flush=True)
            populate = ["-m", "backend.cli.populate", "--symbols", ",".join(missing)]
            subprocess.run([sys.executable, *populate], cwd=ROOT, check=False)
        mode = "ON: workflows read only from the cache" if settings.DEBUG_MODE else "off"
        print(f"serving the API and UI at http://{host}:{port}  (DEBUG_MODE {mode})", flush=True)
        serve(uvicorn_config(host, port))
        return 0
    finally:
        if simulator is not None:
            simulator.stop()


if __name__ == "__main__":
    sys.exit(main())
