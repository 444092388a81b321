"""SimulatedGateway: the API and control servers, their shared state, and how to run them."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from .clock import Clock, clock_from_json
from .connection import ClientConnection
from .control import ControlServer
from .faults import Fault, FaultBoard
from .instruments import Instrument, load_instruments
from .pacing import PacingGuard
from .price_model import PriceModel
from .stats import Stats

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "DU1234567"
THREAD_START_TIMEOUT_SECONDS = 30.0
T = TypeVar("T")


class SimulatedGateway:
    """A simulated IB Gateway speaking the TWS API wire protocol, plus a JSON control API.

    In a test: `gw = SimulatedGateway(now=...).start_in_thread()`, connect to `gw.port`, then
    `gw.stop()`. Inside a running event loop: `await gw.start()` and `await gw.stop()`.
    """

    def __init__(self, seed: int = 0, pacing_scale: float = 1.0, now: dt.datetime | None = None,
                 instruments: str | Path | Iterable[Instrument] | None = None,
                 host: str = "127.0.0.1", port: int = 0, control_port: int | None = 0,
                 account: str = DEFAULT_ACCOUNT):
        if pacing_scale < 0:
            raise ValueError("pacing_scale must be >= 0")
        self.seed = seed
        self.host = host
        self.account = account
        self.registry = load_instruments(instruments)
        if not len(self.registry):
            raise ValueError("no instruments")
        self.model = PriceModel(seed, self.registry.all_instruments())
        self.pacing = PacingGuard(pacing_scale)
        self.faults = FaultBoard()
        self.stats = Stats()
        self.port: int | None = None
        self.control_port: int | None = None
        self._clock = Clock(now)
        self._requested_ports = (port, control_port)
        self._client_ids: dict[int, ClientConnection] = {}
        self._connections: set[ClientConnection] = set()
        self._api_server: asyncio.Server | None = None
        self._control: ControlServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ----- clock and shared state (used by connections and the control API)

    def now(self) -> dt.datetime:
        """The simulator's clock: the fixed `now` if one was set, else the real time."""
        return self._clock.now()

    def clock_json(self) -> dict:
        return self._clock.to_json()

    def set_clock_json(self, data: Any) -> dict:
        """Move the clock from its JSON form (raises clock.InvalidClock)."""
        self._clock.set(clock_from_json(data))
        return self._clock.to_json()

    def claim_client_id(self, client_id: int, connection: ClientConnection) -> bool:
        holder = self._client_ids.get(client_id)
        if holder is not None and holder is not connection:
            return False
        self._client_ids[client_id] = connection
        return True

    def release_client_id(self, connection: ClientConnection) -> None:
        if self._client_ids.get(connection.client_id) is connection:
            del self._client_ids[connection.client_id]

    def stats_json(self) -> dict:
        return self.stats.to_json(connections_open=len(self._connections),
                                  pacing=self.pacing.to_json())

    def faults_json(self) -> list[dict]:
        return self.faults.to_json()

    def arm_fault_json(self, data: Any) -> list[dict]:
        """Arm a fault from its JSON form (raises faults.InvalidFault)."""
        self.faults.arm(Fault.from_json(data))
        return self.faults.to_json()

    def reset_state(self) -> None:
        """Forget counters, armed faults and pacing history (open connections stay open, and
        the clock stays where it is; requests still open stay counted as open)."""
        still_open = self.stats.open_historical_requests
        self.stats = Stats(open_historical_requests=still_open)
        self.faults.clear()
        self.pacing.reset()

    # ----- thread-safe conveniences for tests that run the gateway in a thread

    def get_stats(self) -> dict:
        return self._on_loop(self.stats_json)

    def arm_fault(self, kind: str, count: int = 1, symbol: str | None = None,
                  seconds: float | None = None, after: int = 0) -> list[dict]:
        data = {"kind": kind, "count": count, "symbol": symbol, "seconds": seconds,
                "after": after}
        return self._on_loop(lambda: self.arm_fault_json(
            {k: v for k, v in data.items() if v is not None}))

    def reset(self) -> None:
        self._on_loop(self.reset_state)

    def set_now(self, now: dt.datetime | None) -> None:
        """Stop the clock at `now` (timezone-aware), or follow the real time with None."""
        self._on_loop(lambda: self._clock.set(now))

    def _on_loop(self, fn: Callable[[], T]) -> T:
        loop = self._loop
        if loop is None or self._thread is None or threading.current_thread() is self._thread:
            return fn()

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=10)

    # ----- lifecycle inside a running loop

    async def start(self) -> SimulatedGateway:
        """Bind both servers on the running loop; `port`/`control_port` hold the bound ports."""
        self._loop = asyncio.get_running_loop()
        port, control_port = self._requested_ports
        self._api_server = await asyncio.start_server(self._accept, self.host, port)
        self.port = self._api_server.sockets[0].getsockname()[1]
        if control_port is not None:
            self._control = ControlServer(self)
            self.control_port = await self._control.start(self.host, control_port)
        logger.info("listening api=%s:%s control=%s:%s", self.host, self.port, self.host,
                    self.control_port)
        return self

    def stop(self):
        """Stop the gateway: blocks in thread mode; otherwise returns a coroutine to await."""
        if self._thread is not None:
            self._stop_thread()
            return None
        return self._shutdown()

    async def __aenter__(self) -> SimulatedGateway:
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._api_server is not None:
            self._api_server.close()
        for connection in list(self._connections):
            connection.close()
        if self._control is not None:
            await self._control.stop()
        if self._api_server is not None:
            await self._api_server.wait_closed()
            self._api_server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = ClientConnection(self, reader, writer)
        self.stats.connections_total += 1
        self._connections.add(connection)
        logger.debug("client connected from %s", connection.peer)
        try:
            await connection.serve()
        except asyncio.CancelledError:
            # Shutting down. Returning (not re-raising) keeps asyncio's stream callback from
            # logging the cancellation of every open connection as an error.
            pass
        finally:
            self._connections.discard(connection)

    # ----- lifecycle on a private loop in a daemon thread

    def start_in_thread(self, timeout: float = THREAD_START_TIMEOUT_SECONDS) -> SimulatedGateway:
        """Run the gateway on its own event loop in a daemon thread; returns once bound."""
        if self._thread is not None:
            raise RuntimeError("already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
                loop.run_until_complete(self._shutdown())
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="ibkr-simulator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("simulated gateway did not start")
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def _stop_thread(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> SimulatedGateway:
        return self.start_in_thread()

    def __exit__(self, *exc_info) -> None:
        self.stop()
