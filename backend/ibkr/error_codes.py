"""IBKR's error codes and the typed errors they become; the one place that reads them."""

from __future__ import annotations

from backend.market_data.errors import (
    InvalidHistoricalRequest,
    MarketDataError,
    PacingViolation,
    UnknownContract,
)

# 162 covers two answers told apart by their text: a pacing violation and "no data".
HISTORICAL_DATA_ERROR = 162
NO_SECURITY_DEFINITION = 200
INVALID_REQUEST = 321
CLIENT_ID_IN_USE = 326


def is_no_data(code: int, message: str) -> bool:
    """162 "HMDS query returned no data": the caller decides whether that range is truly empty."""
    return code == HISTORICAL_DATA_ERROR and "no data" in message.lower()


def historical_error(code: int, message: str, symbol: str, exchange: str) -> MarketDataError:
    """The typed error for a refused historical request (anything but "no data")."""
    if code == HISTORICAL_DATA_ERROR and "pacing" in message.lower():
        return PacingViolation(f"IBKR pacing violation for {symbol}: {message}")
    if code == NO_SECURITY_DEFINITION:
        return UnknownContract(symbol, exchange)
    if code == INVALID_REQUEST:
        return InvalidHistoricalRequest(f"IBKR refused the request ({INVALID_REQUEST}): {message}")
    return InvalidHistoricalRequest(f"IBKR error {code}: {message}")


def contract_error(code: int, message: str, symbol: str, exchange: str) -> MarketDataError:
    """The typed error for a refused contract-details request."""
    if code == NO_SECURITY_DEFINITION:
        return UnknownContract(symbol, exchange)
    return InvalidHistoricalRequest(f"IBKR refused {symbol}: {message}")
