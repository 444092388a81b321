"""Dependencies the routes share: the API token guard, the bar filters, and the series a request
names."""

import hmac
from datetime import datetime
from typing import Annotated, Any, Literal

from dependency_injector.wiring import Provide, inject
from fastapi import Depends, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.api.errors import ErrorPublic
from backend.api.schemas.inputs import Currency, DateFrom, DateTo, Exchange, Expiry, Symbol
from backend.config.settings import Settings
from backend.containers import Container
from backend.market_data.domain import (
    BarSize,
    InvalidSeries,
    SecType,
    SeriesKey,
    WhatToShow,
    parse_series,
)
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
        Exchange | None, Query(description="Exchange, e.g. NASDAQ, CME or IDEALPRO.")
    ] = None,
    data_type: Annotated[BarSize | None, Query(description="Bar size.")] = None,
    date_from: DateFromQuery = None,
    date_to: DateToQuery = None,
    sec_type: Annotated[SecType | None, Query(description="Asset class; any when omitted.")] = None,
    currency: Annotated[
        Currency | None, Query(description="Quote currency, e.g. USD; any when omitted.")
    ] = None,
    expiry: Annotated[
        Expiry | None,
        Query(description="A future's expiry (YYYYMM or YYYYMMDD); any when omitted."),
    ] = None,
    what_to_show: Annotated[
        WhatToShow | None, Query(description="IBKR's series, e.g. TRADES; any when omitted.")
    ] = None,
    use_rth: Annotated[
        bool | None,
        Query(description="true: regular hours only; false: all hours; either when omitted."),
    ] = None,
) -> BarFilter:
    check_date_order(date_from, date_to)
    return BarFilter(
        symbol,
        exchange,
        data_type.value if data_type else None,
        date_from,
        date_to,
        sec_type=sec_type.value if sec_type else None,
        currency=currency,
        expiry=expiry,
        what_to_show=what_to_show.value if what_to_show else None,
        use_rth=use_rth,
    )


def series_or_422(
    location: Literal["query", "body"],
    symbol: str,
    data_type: BarSize,
    *,
    symbol_loc: tuple[str | int, ...],
    **identity: Any,
) -> SeriesKey:
    """parse_series, with a series IBKR does not have answered as 422 naming the field.

    `location` is where the request gave the identity fields; `symbol_loc` where the symbol
    (its path segment, or its place in the body's list).
    """
    try:
        return parse_series(symbol, data_type, **identity)
    except InvalidSeries as error:
        loc = symbol_loc if error.field == "symbol" else (location, error.field)
        raise RequestValidationError(
            [{"loc": loc, "msg": str(error), "type": "value_error"}]
        ) from None


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
