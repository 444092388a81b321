"""The process's single long-lived, read-only ib_insync connection, with reconnect and back-off."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

from ib_insync import IB
from loguru import logger

from backend.ibkr import error_codes
from backend.market_data.errors import ClientIdInUse, GatewayUnavailable
from backend.storage.types import utc_now


class IBConnection:
    """Owns one ib_insync IB instance. Connects on demand and can keep itself connected."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: int,
        connect_timeout: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.connect_timeout = connect_timeout
        self.ib = IB()
        # Errors 162/200/321 raise RequestError instead of ending the request with an empty list.
        self.ib.RaiseRequestErrors = True
        self._lock: asyncio.Lock | None = None
        self._keeper: asyncio.Task | None = None
        self._closing = False
        self._clock = clock
        # The latest failure (a refused connect or a dropped link), kept after a reconnect.
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        # True from a successful connect until the link ends; a disconnect we asked for clears
        # it first, so only a drop counts as an error.
        self._established = False
        self.ib.disconnectedEvent += self._on_disconnected

    @property
    def connected(self) -> bool:
        return self.ib.isConnected()

    async def ensure_connected(self) -> IB:
        """Connect if needed; raise GatewayUnavailable (or ClientIdInUse) saying what to check."""
        if self.connected:
            return self.ib
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.connected:
                return self.ib
            await self._connect_once()
        return self.ib

    async def _connect_once(self) -> None:
        refused_client_id = False

        def on_error(_req_id: int, code: int, _text: str, _contract) -> None:
            nonlocal refused_client_id
            refused_client_id = refused_client_id or code == error_codes.CLIENT_ID_IN_USE

        self.ib.errorEvent += on_error
        try:
            await self.ib.connectAsync(
                self.host,
                self.port,
                clientId=self.client_id,
                timeout=self.connect_timeout,
                readonly=True,
            )
            self._established = True
            logger.bind(host=self.host, port=self.port, client_id=self.client_id).info(
                "connected to IB gateway"
            )
        except (OSError, TimeoutError, ConnectionError) as exc:
            self._disconnect()
            if refused_client_id:
                error: GatewayUnavailable = ClientIdInUse(self.host, self.port, self.client_id)
            elif isinstance(exc, TimeoutError | asyncio.TimeoutError):
                error = GatewayUnavailable(
                    self.host, self.port, f"no API handshake within {self.connect_timeout:g} s"
                )
            else:
                error = GatewayUnavailable(self.host, self.port, _describe(exc))
            self._record_error(str(error))
            raise error from None
        finally:
            self.ib.errorEvent -= on_error

    def start_keeping_connected(self, max_backoff_s: float = 30.0) -> None:
        """Connect in the background and reconnect with back-off whenever the link drops."""
        if self._keeper is None or self._keeper.done():
            self._closing = False
            self._keeper = asyncio.get_running_loop().create_task(self._keep(max_backoff_s))

    async def _keep(self, max_backoff_s: float) -> None:
        backoff = 1.0
        while not self._closing:
            if self.connected:
                backoff = 1.0
                await asyncio.sleep(1.0)
                continue
            try:
                await self.ensure_connected()
            except GatewayUnavailable as exc:
                logger.warning("IB gateway not reachable, retrying in {:.0f} s: {}", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, max_backoff_s)

    async def close(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            # A cancel can be lost: Python 3.11's asyncio.wait_for, which ib_insync's connect
            # runs in, drops one that arrives as the connect completes, and the keeper would
            # then loop on. The flag ends the loop at its next turn; the cancel is repeated
            # until the task is done, so shutdown never waits on it forever.
            self._closing = True
            while not keeper.done():
                keeper.cancel()
                await asyncio.wait({keeper}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError):
                keeper.result()
        self._disconnect()

    def _disconnect(self) -> None:
        self._established = False
        self.ib.disconnect()

    def _on_disconnected(self) -> None:
        if not self._established:
            return
        self._established = False
        error = GatewayUnavailable(self.host, self.port, "the connection dropped")
        logger.warning("{}", error)
        self._record_error(str(error))

    def _record_error(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = self._clock()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    return str(exc) or type(exc).__name__
