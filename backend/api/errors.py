"""Maps typed errors to HTTP once; every error body is {"detail": ..., "code": ...}."""

import sqlite3
from typing import Any, Literal

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.market_data.calendar import UnsupportedExchange
from backend.market_data.domain import InvalidSeries
from backend.market_data.errors import (
    BeyondIBKRHistory,
    CacheMissInDebugMode,
    GatewayUnavailable,
    InvalidBar,
    InvalidHistoricalRequest,
    MarketDataError,
    NoDataReturned,
    NotCached,
    PacingViolation,
    UnknownContract,
)
from backend.market_data.refresh_jobs import JobNotResumable
from backend.market_data.request_budget import RequestBudgetExceeded
from backend.storage.market_data_repository import ContractChanged

STATUS_BY_ERROR: list[tuple[type[Exception], int]] = [
    (CacheMissInDebugMode, 409),
    (NotCached, 404),
    (UnknownContract, 404),
    (GatewayUnavailable, 503),
    (PacingViolation, 503),
    (NoDataReturned, 502),
    (InvalidBar, 502),
    (InvalidHistoricalRequest, 422),
    (RequestBudgetExceeded, 422),
    # The range asks for bars IBKR no longer serves: a request to change, not a server fault.
    (BeyondIBKRHistory, 422),
    # Running on a live replica, or completed: nothing to take over.
    (JobNotResumable, 409),
]
CONTRACT_CHANGED = "contract_changed"


class ErrorPublic(BaseModel):
    """Every error body: a human-readable detail and a stable machine-readable code."""

    detail: str
    code: str


class FieldError(BaseModel):
    field: str
    message: str


class ValidationErrorPublic(BaseModel):
    """422: which fields were wrong and why (or one sentence for a rule the input broke)."""

    detail: list[FieldError] | str
    code: Literal["validation_error"]


def error_body(detail: object, code: str) -> dict:
    return {"detail": detail, "code": code}


# The drivers' own "cannot reach / lost the connection" errors (PEP 249 OperationalError and
# InterfaceError), for code that uses a driver connection directly (PostgreSQL's COPY).
DRIVER_CONNECTION_ERRORS = (
    sqlite3.OperationalError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
DATABASE_ERRORS = (DBAPIError, PoolTimeout, *DRIVER_CONNECTION_ERRORS)
# How long a client should wait before retrying when every pooled connection is busy.
DATABASE_BUSY_RETRY_AFTER_S = 2
DATABASE_UNAVAILABLE = (
    "the database does not answer; retry shortly. If it persists, check that the database "
    "server is running and DATABASE_URL points at it (the server log has the driver's message)"
)
DATABASE_NOT_MIGRATED = (
    "the database has no cache tables; run the migrations (make migrate, or "
    "alembic -c alembic/alembic.ini upgrade head)"
)


def database_problem(exc: Exception) -> tuple[str, str] | None:
    """(code, detail) for a database that is down, busy or not migrated; None for other errors."""
    # SQLAlchemy wraps the driver's error; code that talks to the driver directly gets it bare.
    driver_error = exc.orig if isinstance(exc, DBAPIError) else exc
    message = str(driver_error)
    sqlite_error = isinstance(driver_error, sqlite3.OperationalError)
    if isinstance(exc, PoolTimeout) or (sqlite_error and "database is locked" in message):
        return "database_busy", "every database connection is busy; retry after a moment"
    undefined_table = getattr(driver_error, "sqlstate", None) == "42P01"
    if undefined_table or (sqlite_error and message.startswith("no such table")):
        return "database_unavailable", DATABASE_NOT_MIGRATED
    unreachable = (
        isinstance(exc, OperationalError | InterfaceError)
        or isinstance(driver_error, DRIVER_CONNECTION_ERRORS)
        or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
    )
    if unreachable:
        return "database_unavailable", DATABASE_UNAVAILABLE
    return None


def database_error_response(exc: Exception) -> JSONResponse | None:
    """503 for a database that is down, busy or not migrated; None for any other error."""
    problem = database_problem(exc)
    if problem is None:
        return None
    code, detail = problem
    busy = {"Retry-After": str(DATABASE_BUSY_RETRY_AFTER_S)} if code == "database_busy" else None
    return JSONResponse(error_body(detail, code), status_code=503, headers=busy)


def status_for(error: MarketDataError) -> int:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return 502


def error_summary(error: Exception) -> tuple[str, str, int]:
    """(code, detail, status_code) of an error a job's series ended with, as results show it
    (stored with refresh jobs, so every replica shows the same)."""
    if isinstance(error, MarketDataError):
        return error.code, str(error), status_for(error)
    if isinstance(error, ContractChanged):
        return CONTRACT_CHANGED, str(error), 409
    database = database_problem(error)
    if database is not None:
        code, detail = database
        return code, detail, 503
    return "internal_error", "unexpected error; see the server log", 500


def install_error_handlers(app: FastAPI) -> None:
    _document_error_responses(app)

    @app.exception_handler(MarketDataError)
    async def market_data_error(_request: Request, exc: MarketDataError) -> JSONResponse:
        body = error_body(str(exc), exc.code)
        if isinstance(exc, CacheMissInDebugMode | NotCached):
            body["populate_command"] = exc.populate_command
        if isinstance(exc, CacheMissInDebugMode):
            body["missing"] = [[a.isoformat(), b.isoformat()] for a, b in exc.missing]
        if isinstance(exc, RequestBudgetExceeded):
            body["estimate"] = exc.estimate_json()
        return JSONResponse(body, status_code=status_for(exc))

    @app.exception_handler(InvalidSeries)
    async def invalid_series(_request: Request, exc: InvalidSeries) -> JSONResponse:
        # Routes name where the field was (query or body); this catches a series refused
        # further down, with the field alone.
        detail = [{"field": exc.field, "message": str(exc)}]
        return JSONResponse(error_body(detail, "validation_error"), status_code=422)

    @app.exception_handler(ContractChanged)
    async def contract_changed(_request: Request, exc: ContractChanged) -> JSONResponse:
        return JSONResponse(error_body(str(exc), CONTRACT_CHANGED), status_code=409)

    @app.exception_handler(UnsupportedExchange)
    async def unsupported_exchange(_request: Request, exc: UnsupportedExchange) -> JSONResponse:
        return JSONResponse(error_body(str(exc), "validation_error"), status_code=422)

    async def database_error(_request: Request, exc: Exception) -> JSONResponse:
        response = database_error_response(exc)
        if response is None:
            return internal_error_response(exc)
        logger.warning("database error answered with 503: {}", _first_line(exc))
        return response

    for error_type in DATABASE_ERRORS:
        app.add_exception_handler(error_type, database_error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        unreadable = next((e for e in exc.errors() if e["type"] == "json_invalid"), None)
        if unreadable is not None:
            position = unreadable["loc"][-1]
            reason = unreadable.get("ctx", {}).get("error", "not JSON")
            return JSONResponse(
                error_body(
                    f"the body is not valid JSON: {reason} at character {position}; send a "
                    "complete JSON object with Content-Type: application/json",
                    "invalid_json",
                ),
                status_code=400,
            )
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
        code = {
            400: "bad_request",
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
        }
        detail = exc.detail if isinstance(exc.detail, str | list) else str(exc.detail)
        return JSONResponse(
            error_body(detail, code.get(exc.status_code, "http_error")),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return internal_error_response(exc)


def internal_error_response(exc: Exception) -> JSONResponse:
    # Last resort: log the traceback, answer with the shared shape rather than a bare 500 page.
    logger.opt(exception=exc).error("unhandled error")
    return JSONResponse(error_body("internal error; see the server log", "internal_error"), 500)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _document_error_responses(app: FastAPI) -> None:
    """Make the OpenAPI schema tell the truth about the error bodies the handlers above send.

    FastAPI documents its own 422 shape ({loc, msg, type}); ours is {detail, code}. A request
    body that is not readable JSON gets 400, which FastAPI does not document at all.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "HTTPValidationError" in components:
            body = ValidationErrorPublic.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            components.update(body.pop("$defs"))
            components["HTTPValidationError"] = body
            # FastAPI's {loc, msg, type} item, referenced only by the schema just replaced.
            components.pop("ValidationError", None)
        components["ErrorPublic"] = ErrorPublic.model_json_schema()
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if "requestBody" in operation:
                    operation["responses"].setdefault(
                        "400",
                        {
                            "description": "The body is not readable JSON",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/ErrorPublic"}
                                }
                            },
                        },
                    )
                _also_validation_error(operation)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _also_validation_error(operation: dict[str, Any]) -> None:
    """A route that documents its own 422 (e.g. request_budget_exceeded) can still answer the
    shared validation error for a bad field: document both."""
    validation = {"$ref": "#/components/schemas/HTTPValidationError"}
    content = operation.get("responses", {}).get("422", {}).get("content", {})
    body = content.get("application/json")
    if body is None or body.get("schema") in (None, validation):
        return
    body["schema"] = {"anyOf": [body["schema"], validation]}
