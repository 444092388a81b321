"""The control API: JSON over HTTP/1.1 to read stats, arm faults and move the clock."""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from .clock import InvalidClock
from .faults import InvalidFault

if TYPE_CHECKING:
    from .gateway import SimulatedGateway

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_HEADER_LINES = 100
READ_TIMEOUT_SECONDS = 10.0


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": message}
        if field is not None:
            self.body["field"] = field


class ControlServer:
    """Routes: GET /health, GET /stats, GET /faults, POST /faults, POST /reset, GET /clock,
    POST /clock."""

    def __init__(self, gateway: SimulatedGateway):
        self.gateway = gateway
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    def route(self, method: str, path: str, body: bytes) -> tuple[HTTPStatus, Any]:
        gateway = self.gateway
        routes = {
            ("GET", "/health"): lambda: {"ok": True},
            ("GET", "/stats"): gateway.stats_json,
            ("GET", "/faults"): lambda: {"faults": gateway.faults_json()},
            ("POST", "/faults"): lambda: {"faults": gateway.arm_fault_json(_json_body(body))},
            ("POST", "/reset"): self._reset,
            ("GET", "/clock"): gateway.clock_json,
            ("POST", "/clock"): lambda: gateway.set_clock_json(_json_body(body)),
        }
        handler = routes.get((method, path))
        if handler is None:
            if any(p == path for _, p in routes):
                raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed on {path}")
            raise HttpError(HTTPStatus.NOT_FOUND, f"no route {path}")
        try:
            return HTTPStatus.OK, handler()
        except (InvalidFault, InvalidClock) as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, str(exc), exc.field) from exc

    def _reset(self) -> dict:
        self.gateway.reset_state()
        return {"ok": True}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            try:
                method, path, body = await asyncio.wait_for(_read_request(reader),
                                                            READ_TIMEOUT_SECONDS)
                status, payload = self.route(method, path, body)
            except HttpError as exc:
                status, payload = exc.status, exc.body
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            _write_response(writer, status, payload)
            await writer.drain()
        except ConnectionError:
            pass
        except Exception:
            logger.exception("control request failed")
        finally:
            self._writers.discard(writer)
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    request_line = (await reader.readline()).decode("latin-1").strip()
    parts = request_line.split()
    if len(parts) != 3:
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, _ = parts
    length = 0
    for _ in range(MAX_HEADER_LINES):
        line = (await reader.readline()).decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError as exc:
                raise HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from exc
    if not 0 <= length <= MAX_BODY_BYTES:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
    body = await reader.readexactly(length) if length else b""
    return method.upper(), target.split("?", 1)[0].rstrip("/") or "/", body


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidFault("body", "request body is not valid JSON") from exc


def _write_response(writer: asyncio.StreamWriter, status: HTTPStatus, payload: Any) -> None:
    body = json.dumps(payload).encode()
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
