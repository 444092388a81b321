"""Maps typed errors to HTTP once; every error body is {"detail": ..., "code": ...}."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.services.errors import (
    CacheMissInDebugMode,
    GatewayUnavailable,
    InvalidBar,
    InvalidHistoricalRequest,
    MarketDataError,
    NoDataReturned,
    PacingViolation,
    UnknownContract,
)
from backend.services.market_calendar import UnsupportedExchange

STATUS_BY_ERROR: list[tuple[type[Exception], int]] = [
    (CacheMissInDebugMode, 409),
    (UnknownContract, 404),
    (GatewayUnavailable, 503),
    (PacingViolation, 503),
    (NoDataReturned, 502),
    (InvalidBar, 502),
    (InvalidHistoricalRequest, 422),
]


def error_body(detail: object, code: str) -> dict:
    return {"detail": detail, "code": code}


def status_for(error: MarketDataError) -> int:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return 502


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MarketDataError)
    async def market_data_error(_request: Request, exc: MarketDataError) -> JSONResponse:
        body = error_body(str(exc), exc.code)
        if isinstance(exc, CacheMissInDebugMode):
            body["populate_command"] = exc.populate_command
            body["missing"] = [[a.isoformat(), b.isoformat()] for a, b in exc.missing]
        return JSONResponse(body, status_code=status_for(exc))

    @app.exception_handler(UnsupportedExchange)
    async def unsupported_exchange(_request: Request, exc: UnsupportedExchange) -> JSONResponse:
        return JSONResponse(error_body(str(exc), "validation_error"), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "field": ".".join(str(part) for part in error["loc"] if part != "body"),
                "message": error["msg"].removeprefix("Value error, "),
            }
            for error in exc.errors()
        ]
        return JSONResponse(error_body(details, "validation_error"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
        detail = exc.detail if isinstance(exc.detail, str | list) else str(exc.detail)
        return JSONResponse(
            error_body(detail, code.get(exc.status_code, "http_error")),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Last resort: log the traceback, answer with the shared shape rather than a bare 500 page.
        logger.opt(exception=exc).error("unhandled error")
        return JSONResponse(error_body("internal error; see the server log", "internal_error"), 500)
