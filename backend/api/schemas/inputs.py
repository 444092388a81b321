"""Input types every route shares: symbols, exchanges, a series' currency and expiry, ISO-8601
dates, strict day counts."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StrictStr, WithJsonSchema

from backend.market_data.domain import (
    CURRENCY_PATTERN,
    EXPIRY_PATTERN,
    MAX_DAYS_BACK,
    parse_exchange,
    parse_symbol,
)

_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
# A date, alone or followed by the time ("T" or a space).
_ISO_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}(?:$|[T ])")


def _as_utc(value: datetime) -> datetime:
    # Naive means UTC. Converting near datetime's limits can overflow: that is bad input, not a 500.
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


def _date_bound(end_of_day: bool):
    def parse(value: object) -> object:
        # ISO-8601 only: pydantic would read a bare number ("0", "-1", 1700000000) as Unix time.
        if not isinstance(value, str) or not _ISO_DATE_START.match(value):
            raise ValueError(
                f"{value!r} is not an ISO-8601 date or datetime: use e.g. 2025-11-03 or "
                "2025-11-03T14:30:00Z (Unix times are not accepted)"
            )
        # A date alone covers its whole day: from its first instant, or up to its last.
        if _DATE_ONLY.fullmatch(value):
            day = date.fromisoformat(value)
            return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
        return value

    return parse


_DATE_BOUND_SCHEMA = {
    "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]
}
DateFrom = Annotated[
    datetime,
    BeforeValidator(_date_bound(end_of_day=False)),
    AfterValidator(_as_utc),
    WithJsonSchema(_DATE_BOUND_SCHEMA),
]
DateTo = Annotated[
    datetime,
    BeforeValidator(_date_bound(end_of_day=True)),
    AfterValidator(_as_utc),
    WithJsonSchema(_DATE_BOUND_SCHEMA),
]


def _number_not_text(value: object) -> object:
    # A JSON number only: "10" and true are not days. 10.0 is (JSON Schema counts it an integer).
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON number, e.g. 30, not a string or true/false")
    return value


# Days before now, as a JSON number: a refresh's days_back and a workflow's lookback_days.
# (The bounds go before the validator, or pydantic leaves them out of the JSON schema.)
DaysBack = Annotated[int, Field(ge=1, le=MAX_DAYS_BACK), BeforeValidator(_number_not_text)]
# The one symbol rule of every route (query, path and body): exactly as written, no trimming.
Symbol = Annotated[
    StrictStr,
    AfterValidator(parse_symbol),
    WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9.]{0,11}$"}),
]
Exchange = Annotated[
    str,
    AfterValidator(parse_exchange),
    WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z]{2,12}$"}),
]


def _currency(value: str) -> str:
    currency = value.upper()
    if not (currency.isascii() and CURRENCY_PATTERN.fullmatch(currency)):
        raise ValueError(f"invalid currency {value!r}: use a 3-letter ISO code such as USD or EUR")
    return currency


def _expiry(value: str) -> str:
    # ASCII digits only: the pattern's \d would also take other scripts' digits.
    if not (value.isascii() and EXPIRY_PATTERN.fullmatch(value)):
        raise ValueError(
            f"invalid expiry {value!r}: a future's contract month as YYYYMM or its last trading "
            "day as YYYYMMDD, e.g. 202503"
        )
    return value


# A series' quote currency, exactly as written (lower case is upper-cased).
Currency = Annotated[
    StrictStr,
    AfterValidator(_currency),
    WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z]{3}$", "examples": ["USD"]}),
]
# A future's lastTradeDateOrContractMonth.
Expiry = Annotated[
    StrictStr,
    AfterValidator(_expiry),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])?$",
            "examples": ["202503"],
        }
    ),
]
