"""`python -m backend.ibkr_simulator` as a subprocess: announces its ports, serves, stops."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from ib_insync import IB, Stock

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"^ibkr-simulator listening api=127\.0\.0\.1:(\d+) "
                       r"control=127\.0\.0\.1:(\d+)$")


async def test_cli_prints_ports_serves_and_stops_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "backend.ibkr_simulator", "--port", "0", "--control-port", "0",
         "--now", "2025-12-01T21:00:00Z", "--seed", "5", "--pacing-scale", "0.01"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 30)
        match = LISTENING.match(line.strip())
        assert match, line
        api_port, control_port = map(int, match.groups())

        with urllib.request.urlopen(f"http://127.0.0.1:{control_port}/health", timeout=5) as r:
            assert json.loads(r.read()) == {"ok": True}

        asyncio.set_event_loop(asyncio.get_running_loop())
        ib = IB()
        await ib.connectAsync("127.0.0.1", api_port, clientId=1, readonly=True, timeout=5)
        bars = await ib.reqHistoricalDataAsync(Stock("AAPL", "SMART", "USD"), "", "1 D",
                                               "1 hour", "TRADES", True, formatDate=2)
        assert len(bars) == 7
        ib.disconnect()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=10)
        finally:
            process.kill()
            process.stdout.close()
            process.stderr.close()
    assert returncode == 0
