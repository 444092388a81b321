"""Maps typed errors to HTTP once; every error body is {"detail": ..., "code": ...}."""

from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.services.errors import (
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
from backend.services.market_calendar import UnsupportedExchange

STATUS_BY_ERROR: list[tuple[type[Exception], int]] = [
    (CacheMissInDebugMode, 409),
    (NotCached, 404),
    (UnknownContract, 404),
    (GatewayUnavailable, 503),
    (PacingViolation, 503),
    (NoDataReturned, 502),
    (InvalidBar, 502),
    (InvalidHistoricalRequest, 422),
]


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


def status_for(error: MarketDataError) -> int:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return 502


def install_error_handlers(app: FastAPI) -> None:
    _document_error_responses(app)

    @app.exception_handler(MarketDataError)
    async def market_data_error(_request: Request, exc: MarketDataError) -> JSONResponse:
        body = error_body(str(exc), exc.code)
        if isinstance(exc, CacheMissInDebugMode | NotCached):
            body["populate_command"] = exc.populate_command
        if isinstance(exc, CacheMissInDebugMode):
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
        # Last resort: log the traceback, answer with the shared shape rather than a bare 500 page.
        logger.opt(exception=exc).error("unhandled error")
        return JSONResponse(error_body("internal error; see the server log", "internal_error"), 500)


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
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
