"""Dependencies the routes share: the API token guard and the bar filters."""

import hmac
from datetime import datetime
from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import Depends, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.api.errors import ErrorPublic
from backend.api.schemas.inputs import DateFrom, DateTo, Exchange, Symbol
from backend.config.settings import Settings
from backend.containers import Container
from backend.market_data.domain import BarSize
from backend.storage.market_data_repository import BarFilter

GUARDED = {
    401: {"model": ErrorPublic, "description": "API_TOKEN is set and no bearer token was sent"},
    403: {"model": ErrorPublic, "description": "The bearer token is wrong"},
}

bearer = HTTPBearer(
    auto_error=False, description="Required for refresh and delete when API_TOKEN is set."
)


@inject
async def require_api_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    settings: Annotated[Settings, Depends(Provide[Container.settings])],
) -> None:
    """When API_TOKEN is set, changing the cache needs `Authorization: Bearer <API_TOKEN>`."""
    if settings.API_TOKEN is None:
        return
    if credentials is None:
        raise HTTPException(
            401,
            "this endpoint needs the header Authorization: Bearer <API_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Constant-time, so response timing does not reveal how much of a guess was right.
    if not hmac.compare_digest(credentials.credentials.encode(), settings.API_TOKEN.encode()):
        raise HTTPException(403, "the bearer token does not match API_TOKEN")


# The date filters shared by the list, the series and the delete routes.
DateFromQuery = Annotated[
    DateFrom | None,
    Query(description="Bars from this instant (ISO-8601 date or datetime; naive is UTC)."),
]
DateToQuery = Annotated[
    DateTo | None,
    Query(description="Bars up to this instant, inclusive; a date alone covers its whole day."),
]


def bar_filter(
    symbol: Annotated[
        Symbol | None, Query(description="Ticker; lower case is upper-cased.")
    ] = None,
    exchange: Annotated[
        Exchange | None, Query(description="Primary exchange, e.g. NASDAQ.")
    ] = None,
    data_type: Annotated[BarSize | None, Query(description="Bar size.")] = None,
    date_from: DateFromQuery = None,
    date_to: DateToQuery = None,
) -> BarFilter:
    check_date_order(date_from, date_to)
    return BarFilter(symbol, exchange, data_type.value if data_type else None, date_from, date_to)


def check_date_order(date_from: datetime | None, date_to: datetime | None) -> None:
    if date_from is not None and date_to is not None and date_from > date_to:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "date_to"),
                    "msg": "must not be before date_from",
                    "type": "value_error",
                }
            ]
        )
