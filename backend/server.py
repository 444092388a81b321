"""Serves the backend: the one uvicorn set-up that `make run`, the image and the tests all use.

    python -m backend.server [--host 127.0.0.1] [--port 8000] [--http httptools|h11]
                             [--loop uvloop|asyncio] [--request-timeout 10]

The defaults are the set-up `make bench` (scripts/bench_api.py) measured fastest; the ib_insync
client is tested on the uvloop event loop in tests/api/test_server.py.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import Sequence

import h11
import uvicorn
from loguru import logger
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

APP = "backend.main:app"
DEFAULT_HTTP = "httptools"
DEFAULT_LOOP = "uvloop"
LOOPS = ("uvloop", "asyncio")
# A client has this long to send a whole request (request line, headers and body), counted from
# when it connects, or on a kept-alive connection from the first byte of its next request.
# uvicorn alone waits for ever on a half-sent request, so a few slow sockets (slowloris) would
# hold connections open without end. The API's requests are small; 10 s is ample on slow links.
REQUEST_TIMEOUT_S = 10.0
# Idle time allowed between two requests on one connection (uvicorn's own keep-alive timer).
# Longer than the idle timeout of the proxies and clients that keep connections to the API
# (nginx's and most load balancers' 60 s): a server that closes first races the client's next
# request, which then fails on a closed connection instead of being answered.
KEEP_ALIVE_S = 75
# On SIGTERM, requests still running after this long are cancelled, so the process does exit.
SHUTDOWN_GRACE_S = 10


class RequestDeadline:
    """One connection's timer: closes it when a request has not fully arrived in time."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.Transport,
        timeout_s: float,
        client: tuple[str, int] | None,
    ) -> None:
        self._loop = loop
        self._transport = transport
        self._timeout_s = timeout_s
        self._client = client
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start counting, unless already counting for the request under way."""
        if self._timer is None and not self._transport.is_closing():
            self._timer = self._loop.call_later(self._timeout_s, self._expire)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        client = f"{self._client[0]}:{self._client[1]}" if self._client else "unknown"
        logger.bind(client=client).info(
            "closed a connection: no complete request within {:g} s", self._timeout_s
        )
        # Nothing is answered: the request never arrived, so there is no request to answer.
        self._transport.close()


# h11 is reading a request while the client is in one of these states.
_H11_RECEIVING = (h11.IDLE, h11.SEND_BODY)


class _RequestDeadlineMixin:
    """The deadline's life with the connection; each parser says when a request starts and ends."""

    request_timeout_s = REQUEST_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        self.request_deadline = RequestDeadline(
            self.loop,  # type: ignore[attr-defined]
            transport,
            self.request_timeout_s,
            self.client,  # type: ignore[attr-defined]
        )
        self.request_deadline.start()

    def connection_lost(self, exc: Exception | None) -> None:
        self.request_deadline.stop()
        super().connection_lost(exc)  # type: ignore[misc]


class H11WithRequestTimeout(_RequestDeadlineMixin, H11Protocol):
    """uvicorn's pure-Python HTTP/1.1 protocol, with a deadline on each incoming request."""

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state in _H11_RECEIVING:
            self.request_deadline.start()
        super().data_received(data)
        if self.conn.their_state not in _H11_RECEIVING:
            self.request_deadline.stop()


class HttpToolsWithRequestTimeout(_RequestDeadlineMixin, HttpToolsProtocol):
    """uvicorn's httptools (llhttp) protocol, with a deadline on each incoming request."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.request_deadline.start()

    def on_message_complete(self) -> None:
        self.request_deadline.stop()
        super().on_message_complete()


HTTP_PROTOCOLS: dict[str, type[H11WithRequestTimeout] | type[HttpToolsWithRequestTimeout]] = {
    "httptools": HttpToolsWithRequestTimeout,
    "h11": H11WithRequestTimeout,
}


def http_protocol(
    http: str, request_timeout_s: float = REQUEST_TIMEOUT_S
) -> type[asyncio.Protocol]:
    """The protocol class for `http` ("httptools" or "h11") with the given request deadline."""
    if http not in HTTP_PROTOCOLS:
        raise ValueError(f"http must be one of {', '.join(HTTP_PROTOCOLS)}, not {http!r}")
    if request_timeout_s <= 0:
        raise ValueError(f"request_timeout_s must be positive, not {request_timeout_s!r}")
    protocol = HTTP_PROTOCOLS[http]
    if request_timeout_s == protocol.request_timeout_s:
        return protocol
    return type(protocol.__name__, (protocol,), {"request_timeout_s": request_timeout_s})


def uvicorn_config(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    http: str = DEFAULT_HTTP,
    loop: str = DEFAULT_LOOP,
    request_timeout_s: float = REQUEST_TIMEOUT_S,
) -> uvicorn.Config:
    """How the backend is served, wherever it is served from."""
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, not {loop!r}")
    return uvicorn.Config(
        APP,
        host=host,
        port=port,
        http=http_protocol(http, request_timeout_s),
        loop=loop,
        # The API has no WebSocket routes.
        ws="none",
        # A failing start-up (bad settings, unreachable database at import) stops the process.
        lifespan="on",
        # create_app routes uvicorn's loggers into loguru; uvicorn's own config would bypass it.
        log_config=None,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        loop = type(asyncio.get_running_loop())
        logger.info(
            "serving http://{}:{} (http {}, event loop {}.{})",
            self.config.host,
            self.config.port,
            self.config.http_protocol_class.__name__,
            loop.__module__,
            loop.__name__,
        )


def serve(config: uvicorn.Config) -> None:
    _Server(config).run()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m backend.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--http", choices=list(HTTP_PROTOCOLS), default=DEFAULT_HTTP)
    parser.add_argument("--loop", choices=LOOPS, default=DEFAULT_LOOP)
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=REQUEST_TIMEOUT_S,
        metavar="SECONDS",
        help="time a client has to send a whole request (default %(default)g)",
    )
    args = parser.parse_args(argv)
    if args.request_timeout <= 0:
        parser.error("--request-timeout must be a positive number of seconds")
    serve(
        uvicorn_config(
            args.host,
            args.port,
            http=args.http,
            loop=args.loop,
            request_timeout_s=args.request_timeout,
        )
    )


if __name__ == "__main__":
    main()
