"""ASGI middleware of the HTTP edge: allowed Host headers, HEAD for every GET, request metrics."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from starlette.responses import JSONResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

# host, or [IPv6], then an optional :port.
_HOST_HEADER = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::\d{1,5})?$")


def host_of(header: str | None) -> str | None:
    """The host part of a Host header, lower-cased; None when the header is missing or malformed."""
    if not header:
        return None
    match = _HOST_HEADER.fullmatch(header.strip())
    return match["host"].lower().rstrip(".") if match else None


class TrustedHostMiddleware:
    """Answers 400 to a request whose Host header is not in ALLOWED_HOSTS.

    With the default empty API_TOKEN, this is what stops a page on another site from driving the
    local API through DNS rebinding: the browser sends that site's name as the Host.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allow_any = "*" in allowed_hosts
        self.exact = {host for host in allowed_hosts if not host.startswith("*")}
        # "*.example.com" matches any subdomain of example.com, not example.com itself.
        self.suffixes = tuple(host[1:] for host in allowed_hosts if host.startswith("*."))

    def allows(self, host: str | None) -> bool:
        if self.allow_any:
            return True
        return host is not None and (host in self.exact or host.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"host"), b"").decode("latin-1")
        if self.allows(host_of(header)):
            await self.app(scope, receive, send)
            return
        shown = header[:100] if header else "(none)"
        response = JSONResponse(
            {
                "detail": f"host {shown!r} is not allowed; add its name to ALLOWED_HOSTS "
                "if this server should answer it",
                "code": "host_not_allowed",
            },
            status_code=400,
        )
        await response(scope, receive, send)


class HeadMiddleware:
    """Answers HEAD wherever GET is answered: the GET's status and headers, without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # In place, so the route the router matches stays visible to the metrics middleware.
        scope["method"] = "GET"
        await self.app(scope, receive, send_without_body)


class RequestMetricsMiddleware:
    """Counts requests by route template (never the raw path, which is unbounded) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        started = time.perf_counter()
        status = 500

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            # The router leaves the route it matched in the scope; every route shares a label.
            route = route_label(scope)
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_REQUEST_DURATION.labels(route).observe(time.perf_counter() - started)


def route_label(scope: Scope) -> str:
    route = scope.get("route")
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
