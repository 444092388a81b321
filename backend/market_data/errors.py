"""Typed errors of the market-data services; the API maps each to one HTTP status, once."""

from __future__ import annotations

from datetime import datetime


class MarketDataError(Exception):
    """Base class. `code` is the stable machine-readable name used in API error bodies."""

    code = "market_data_error"


class GatewayUnavailable(MarketDataError):
    """The IB Gateway / TWS could not be reached, dropped the connection, or did not answer."""

    code = "gateway_unavailable"

    def __init__(self, host: str, port: int, reason: str, advice: str | None = None) -> None:
        self.host, self.port, self.reason = host, port, reason
        advice = advice or (
            f"Check that IB Gateway or TWS is running and logged in, that its API socket is "
            f"enabled on port {port} (Configure > Settings > API), and that {host} is allowed "
            "to connect."
        )
        super().__init__(f"IB Gateway at {host}:{port} is unavailable: {reason}. {advice}")


class GatewayTimeout(GatewayUnavailable):
    code = "gateway_timeout"


class ClientIdInUse(GatewayUnavailable):
    code = "client_id_in_use"

    def __init__(self, host: str, port: int, client_id: int) -> None:
        self.client_id = client_id
        super().__init__(
            host,
            port,
            f"client id {client_id} is already in use by another API client (error 326)",
            "Set IB_CLIENT_ID to an unused number.",
        )


class UnknownContract(MarketDataError):
    code = "unknown_contract"

    def __init__(self, symbol: str, exchange: str) -> None:
        self.symbol, self.exchange = symbol, exchange
        super().__init__(f"IBKR has no stock {symbol} on {exchange} (error 200)")


class InvalidHistoricalRequest(MarketDataError):
    """IBKR refused the request's bar size or duration (error 321)."""

    code = "invalid_request"


class PacingViolation(MarketDataError):
    """IBKR answered 162 'pacing violation' and retries with back-off did not get through."""

    code = "pacing_violation"


class NoDataReturned(MarketDataError):
    """IBKR answered 162 'HMDS query returned no data' for a range."""

    code = "no_data"


class InvalidBar(MarketDataError):
    """A bar from IBKR broke an invariant (low <= open, close <= high, volume >= 0, order)."""

    code = "invalid_bar"


class CacheMissInDebugMode(MarketDataError):
    """DEBUG_MODE serves only from the cache, and the cache lacks part of the range."""

    code = "cache_miss_debug_mode"

    def __init__(
        self,
        symbol: str,
        exchange: str,
        data_type: str,
        missing: list[tuple[datetime, datetime]],
        days_back: int,
    ) -> None:
        self.symbol, self.exchange, self.data_type, self.missing = (
            symbol,
            exchange,
            data_type,
            missing,
        )
        self.populate_command = (
            f"make populate-cache SYMBOLS={symbol} EXCHANGE={exchange} "
            f"DATA_TYPES={data_type} DAYS_BACK={days_back}"
        )
        shown = ", ".join(f"{a.isoformat()} to {b.isoformat()}" for a, b in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        super().__init__(
            f"DEBUG_MODE: {symbol} {data_type} is not fully cached; missing {shown}{more}. "
            f"Fill it with: {self.populate_command}"
        )


class NotCached(MarketDataError):
    """The cache holds no bars for what was asked; reading the cache never falls back to IBKR."""

    code = "not_cached"

    def __init__(self, symbol: str, exchange: str, data_type: str, days_back: int) -> None:
        self.symbol, self.exchange, self.data_type = symbol, exchange, data_type
        self.populate_command = (
            f"make populate-cache SYMBOLS={symbol} EXCHANGE={exchange} "
            f"DATA_TYPES={data_type} DAYS_BACK={days_back}"
        )
        super().__init__(
            f"{symbol} {data_type} on {exchange} is not cached for the range asked; "
            f"populate with: {self.populate_command}"
        )


class BeyondIBKRHistory(MarketDataError):
    """Bars IBKR no longer serves (bars of 30 seconds or less after six months, an expired
    future after two years) and the cache does not hold: there is nowhere to get them from."""

    code = "beyond_ibkr_history"

    def __init__(self, series: str, earliest: datetime, missing: list[tuple[datetime, datetime]]):
        self.earliest, self.missing = earliest, missing
        first, last = missing[0][0], missing[-1][1]
        super().__init__(
            f"{series}: IBKR serves these bars from {earliest.isoformat()} only, and the cache"
            f" does not hold {first.isoformat()} to {last.isoformat()}; ask for a range from"
            f" {earliest.isoformat()} on"
        )
