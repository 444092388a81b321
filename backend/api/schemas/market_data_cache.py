"""API shapes of the cache routes: what they accept and what they return."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
)

from backend.api.schemas.inputs import Currency, DaysBack, Exchange, Expiry, Symbol
from backend.api.schemas.records import model_of
from backend.market_data.domain import (
    DEFAULT_CURRENCY,
    DEFAULT_DAYS_BACK,
    MAX_SYMBOLS_PER_REQUEST,
    Bar,
    BarSize,
    SecType,
    SeriesKey,
    WhatToShow,
    parse_exchange,
    parse_series,
    parse_symbol,
)
from backend.market_data.refresh_jobs import JobRequest
from backend.market_data.stats import SeriesStats
from backend.market_data.verify_jobs import DEFAULT_SAMPLES, MAX_SAMPLES

MAX_PAGE_SIZE = 5000
# Offsets past any plausible row count are refused before they reach the database driver.
MAX_OFFSET = 1_000_000_000


# -- what a series is -------------------------------------------------------------------------


class SeriesIdentityPublic(BaseModel):
    """Which series a row belongs to, beyond its symbol, exchange and bar size: the contract's
    asset class, quote currency and (futures only) expiry, IBKR's whatToShow, and whether the
    bars cover regular trading hours only (use_rth) or all hours."""

    sec_type: SecType
    currency: str
    expiry: str | None = Field(description="A future's contract month (YYYYMM or YYYYMMDD)")
    what_to_show: WhatToShow
    use_rth: bool = Field(description="Regular trading hours only; false: all hours")
    con_id: int | None = Field(description="IBKR's contract id; null until it is known")


def identity_of(series: SeriesKey, con_id: int | None = None) -> dict[str, Any]:
    """The SeriesIdentityPublic fields of a series."""
    return {
        "sec_type": series.sec_type,
        "currency": series.currency,
        "expiry": series.expiry or None,
        "what_to_show": series.what_to_show,
        "use_rth": series.use_rth,
        "con_id": con_id,
    }


# -- listing ----------------------------------------------------------------------------------


class CachedBarPublic(SeriesIdentityPublic):
    """One cached bar as stored.

    `expired`: the bar was not final when fetched and expires_at has passed. Final bars (their
    session had closed) are settled history and never expire.
    """

    id: int
    symbol: str
    exchange: str
    data_type: BarSize
    timestamp: datetime
    ohlcv_data: dict[str, Any]
    indicators: dict[str, Any] | None
    metadata: dict[str, Any]
    fetched_at: datetime
    expires_at: datetime
    expired: bool


class CachedBarsPublic(BaseModel):
    """One page of cached bars; `count` is the total matching the filter, not the page size."""

    data: list[CachedBarPublic]
    count: int


class DeletedPublic(BaseModel):
    deleted: int


# -- one series -------------------------------------------------------------------------------


SeriesBarPublic = model_of("SeriesBarPublic", Bar)


# Bars per page of the series route: a page of 1-minute bars is about 2 MB of JSON at the most.
_MAX_CURSOR_LENGTH = 200
_BAD_CURSOR = (
    "is not a cursor this API gave out: pass next_cursor from the previous page unchanged, "
    "or leave cursor out for the first page"
)


class SeriesCursor(BaseModel):
    """Where the next page of a series starts: after the bar at `after` of this series."""

    model_config = ConfigDict(frozen=True)

    series: SeriesKey
    after: datetime

    def encode(self) -> str:
        series = self.series
        raw = json.dumps(
            [
                series.symbol,
                series.exchange,
                series.data_type,
                self.after.isoformat(),
                series.sec_type,
                series.currency,
                series.expiry,
                series.what_to_show,
                series.use_rth,
            ]
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def parse_cursor(value: str) -> SeriesCursor:
    """A cursor from next_cursor; anything else is refused (the string is opaque to callers).

    A cursor of four parts (symbol, exchange, bar size, time), as given out before the series
    key named the contract, is a stock's TRADES in regular hours.
    """
    if len(value) > _MAX_CURSOR_LENGTH:
        raise ValueError(_BAD_CURSOR)
    try:
        parts = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        if not (isinstance(parts, list) and len(parts) in (4, 9)):
            raise ValueError(_BAD_CURSOR)
        if len(parts) == 4:
            parts += [SecType.STK.value, DEFAULT_CURRENCY, "", WhatToShow.TRADES.value, True]
        *texts, use_rth = parts
        if not (all(isinstance(part, str) for part in texts) and isinstance(use_rth, bool)):
            raise ValueError(_BAD_CURSOR)
        symbol, exchange, data_type, after, sec_type, currency, expiry, what_to_show = texts
        after_at = datetime.fromisoformat(after)
        if after_at.tzinfo is None:
            raise ValueError(_BAD_CURSOR)
        after_at = after_at.astimezone(UTC)
        # The next page starts a microsecond later; a forged cursor may leave no room for that.
        if after_at >= datetime.max.replace(tzinfo=UTC) - timedelta(microseconds=1):
            raise ValueError(_BAD_CURSOR)
        series = SeriesKey(
            parse_symbol(symbol),
            parse_exchange(exchange),
            data_type,
            sec_type,
            currency,
            expiry,
            what_to_show,
            use_rth,
        )
        # Only a series parse_series gives back unchanged is one this API could have given out.
        same = parse_series(
            series.symbol,
            data_type,
            sec_type=sec_type,
            exchange=series.exchange,
            currency=currency,
            expiry=expiry,
            what_to_show=what_to_show,
            use_rth=use_rth,
        )
        if same != series:
            raise ValueError(_BAD_CURSOR)
        return SeriesCursor(series=series, after=after_at)
    except (ValueError, OverflowError):
        raise ValueError(_BAD_CURSOR) from None


Cursor = Annotated[str, AfterValidator(parse_cursor), WithJsonSchema({"type": "string"})]


class SeriesPublic(SeriesIdentityPublic):
    """One page of a series' bars in time order, with when they were fetched.

    count, first, last, fetched_from and fetched_to describe the bars of this page; total and
    expired the whole requested range. Follow next_cursor for the next page; it is null on the
    last one.
    """

    symbol: str
    exchange: str
    data_type: BarSize
    count: int = Field(description="Bars in this page")
    first: datetime
    last: datetime
    fetched_from: datetime
    fetched_to: datetime
    expired: bool = Field(description="Whether any bar in the requested range has expired")
    total: int = Field(description="Bars in the whole requested range, over every page")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )
    price_basis_at: datetime | None = Field(
        default=None,
        description="As of when the cached prices are adjusted for splits (and, on "
        "ADJUSTED_LAST, dividends): the latest fetch that found them unchanged, or the healing "
        "of a corporate action. In DEBUG_MODE the basis the cache has, never checked.",
    )
    bars: list[SeriesBarPublic]


# -- statistics -------------------------------------------------------------------------------


SeriesStatsPublic = model_of("SeriesStatsPublic", SeriesStats, SeriesStats.__doc__)


class CacheStatsPublic(BaseModel):
    """Cache figures for the UI.

    hit_rate = (hits + partial_hits) / (hits + misses + partial_hits + stale_serves): the share of
    lookups the cache answered, at least in part, with bars it considered fresh. A stale serve
    (the gateway failed, expired bars were returned) counts as a lookup but not as a hit. null
    when there were no lookups.
    """

    hits: int
    misses: int
    partial_hits: int
    stale_serves: int
    hit_rate: float | None
    series: list[SeriesStatsPublic]


# -- refresh ----------------------------------------------------------------------------------


class RefreshRequest(BaseModel):
    """Fetch these symbols from IBKR into the cache, from `days_back` days ago up to now.

    Every symbol is of one asset class (sec_type) and is fetched as one series: the bar size,
    whatToShow and hours given. What is left out takes the asset class's default: a US stock's
    TRADES in regular hours; a future on CME, an index on CBOE, an FX pair on IDEALPRO as
    MIDPOINT, crypto on PAXOS as AGGTRADES. A series IBKR does not have (TRADES on FX, a future
    without its expiry) is refused with 422 naming the field.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"symbols": ["NVDA", "TSLA"], "data_type": "1d", "days_back": 365},
                {
                    "symbols": ["AAPL"],
                    "exchange": "NASDAQ",
                    "data_type": "1h",
                    "days_back": 30,
                    "force": True,
                },
                {
                    "symbols": ["ES"],
                    "sec_type": "FUT",
                    "expiry": "202503",
                    "data_type": "1m",
                    "what_to_show": "MIDPOINT",
                    "use_rth": False,
                    "days_back": 2,
                },
                {"symbols": ["EUR.USD", "USD.JPY"], "sec_type": "CASH", "data_type": "1h"},
            ]
        },
    )

    symbols: list[Symbol] = Field(
        min_length=1,
        max_length=MAX_SYMBOLS_PER_REQUEST,
        description="Tickers; lower case is upper-cased. Repeats are fetched once. An FX pair "
        "as EUR.USD or EURUSD.",
    )
    sec_type: SecType = Field(
        default=SecType.STK, description="Asset class; STK is a stock or an ETF."
    )
    exchange: Exchange | None = Field(
        default=None,
        description="Exchange; when omitted CACHE_EXCHANGE for stocks, else the asset class's "
        "(CBOE, CME, IDEALPRO, PAXOS).",
    )
    currency: Currency | None = Field(
        default=None, description="Quote currency; USD, or an FX pair's own, when omitted."
    )
    expiry: Expiry | None = Field(
        default=None,
        description="A future's contract month (YYYYMM) or last day (YYYYMMDD); FUT only, "
        "and required there.",
    )
    data_type: BarSize = Field(default=BarSize.D1, description="Bar size.")
    what_to_show: WhatToShow | None = Field(
        default=None,
        description="IBKR's series; TRADES when omitted (MIDPOINT for CASH, AGGTRADES for CRYPTO).",
    )
    use_rth: StrictBool = Field(
        default=True,
        description="Regular trading hours only; false for all hours (stocks' pre- and "
        "after-market, futures' overnight session).",
    )
    days_back: DaysBack | None = Field(
        default=None,
        description="Days before now to start from. Default by bar size: "
        + ", ".join(f"{days} for {size.value}" for size, days in DEFAULT_DAYS_BACK.items())
        + ".",
    )
    force: StrictBool = Field(
        default=False, description="Fetch again even bars the cache holds fresh (force_refresh)."
    )


class RefreshError(BaseModel):
    code: str
    detail: str
    status_code: int


class RefreshResultPublic(SeriesIdentityPublic):
    """bars_fetched: committed by this job (also when the symbol then failed or was cancelled);
    bars_cached: what the cache holds for the job's range. Both read from the database."""

    symbol: str
    exchange: str
    data_type: BarSize
    status: Literal["ok", "error", "cancelled"]
    bars_fetched: int
    bars_cached: int
    error: RefreshError | None


class RefreshProgress(BaseModel):
    done: int
    total: int


RefreshJobRequest = model_of("RefreshJobRequest", JobRequest, JobRequest.__doc__)


class RequestEstimatePublic(BaseModel):
    """What a job was planned to cost before anything was sent."""

    requests: int = Field(description="IBKR historical requests, at most")
    duration_s: float = Field(description="Their duration at IBKR's pacing budget (60 per 10 min)")
    wait_s: float | None = Field(
        default=None,
        description="REQUEST_BUDGET_POLICY=queue: how long the jobs ahead of it take at IBKR's "
        "budget, when the job was queued behind them; null when it could start at once",
    )


class RequestBudgetEstimate(RequestEstimatePublic):
    ceiling: int = Field(
        description="REQUEST_CEILING (the most one job may plan), or JOB_QUEUE_CEILING when "
        "queued_requests is set"
    )
    queued_requests: int | None = Field(
        default=None,
        description="Requests the refresh jobs queued or running on every replica still need "
        "(when their sum with this job's is what is above JOB_QUEUE_CEILING)",
    )


class RequestBudgetPublic(BaseModel):
    """422 `request_budget_exceeded`: the work was planned and found too big to start."""

    detail: str
    code: Literal["request_budget_exceeded"]
    estimate: RequestBudgetEstimate


class RefreshRunPublic(BaseModel):
    """One run of a job: the first, then one per resume."""

    owner: str = Field(description="Instance id of the process that ran it (host:pid:random)")
    started_at: datetime
    resumed: bool
    estimated_requests: int = Field(description="Requests planned for what this run had to fetch")
    requests_sent: int = Field(
        description="IBKR historical requests this run sent whose answers it committed"
    )


class RefreshJobPublic(BaseModel):
    """A refresh job, as every replica sees it: jobs are stored in the database.

    `interrupted`: the process running it stopped (its heartbeat is older than
    JOB_MISSED_HEARTBEATS x JOB_HEARTBEAT_S, or it was shut down); resume it on any replica."""

    job_id: str
    status: Literal[
        "queued", "running", "completed", "partial", "failed", "cancelled", "interrupted"
    ]
    created_at: datetime
    finished_at: datetime | None
    request: RefreshJobRequest
    estimate: RequestEstimatePublic
    progress: RefreshProgress
    results: list[RefreshResultPublic]
    started_at: datetime | None = Field(default=None, description="When its first run started")
    owner: str = Field(default="", description="Instance id of the process that runs it")
    heartbeat_at: datetime | None = Field(
        default=None, description="When its owner last said it is still running it"
    )
    cancel_requested: bool = Field(
        default=False,
        description="A cancel was asked on a replica that does not run the job; its owner "
        "stops it at its next heartbeat",
    )
    requests_sent: int = Field(
        default=0, description="IBKR historical requests its runs sent and committed, in all"
    )
    runs: list[RefreshRunPublic] = Field(default_factory=list)


# -- corporate actions and verify -------------------------------------------------------------


class SeriesKeyPublic(BaseModel):
    """The series a row is about: the contract (symbol, exchange, sec_type, currency, expiry)
    in one bar size, whatToShow and hours."""

    symbol: str
    exchange: str
    data_type: BarSize
    sec_type: SecType
    currency: str
    expiry: str | None = Field(description="A future's contract month (YYYYMM or YYYYMMDD)")
    what_to_show: WhatToShow
    use_rth: bool = Field(description="Regular trading hours only; false: all hours")


def key_of(series: SeriesKey) -> dict[str, Any]:
    """The SeriesKeyPublic fields of a series."""
    return {
        "symbol": series.symbol,
        "exchange": series.exchange,
        "data_type": series.data_type,
        "sec_type": series.sec_type,
        "currency": series.currency,
        "expiry": series.expiry or None,
        "what_to_show": series.what_to_show,
        "use_rth": series.use_rth,
    }


class CorporateActionPublic(SeriesKeyPublic):
    """A change of a series' price basis the cache detected, and how its cached bars were
    brought to the new basis.

    factor is the cached price over IBKR's for the same bar: 10 for a 10:1 split, about 1.005
    for a 0.5 % dividend adjustment of ADJUSTED_LAST. A split is rescaled (prices divided by the
    factor, volumes multiplied); any other change is refetched (the series dropped and fetched
    again).
    """

    id: int
    detected_at: datetime
    anchor_at: datetime = Field(description="The cached bar compared with IBKR's answer")
    factor: float
    kind: Literal["split", "adjustment"]
    healed: Literal["rescaled", "refetched"]
    bars_changed: int = Field(description="Cached bars rescaled, or dropped to be fetched again")
    basis_from: datetime | None = Field(description="The basis the bars were on before")
    basis_to: datetime = Field(description="The basis they are on since")


class CorporateActionsPublic(BaseModel):
    """Every detected action matching the filters, newest first."""

    data: list[CorporateActionPublic]
    count: int


class VerifyRequest(BaseModel):
    """Ask IBKR again for a sample of each series' cached segments and count the bars whose
    prices differ beyond a tick (drift): a split or dividend the cache has not seen yet, or a
    revision. With `repair`, drift is healed as a detected action is.

    The series are named as for a refresh: every symbol of one asset class, in one bar size,
    whatToShow and hours; what is left out takes the asset class's default.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"symbols": ["NVDA", "TSLA"], "data_type": "1d"},
                {"symbols": ["NVDA"], "data_type": "1m", "samples": 10, "repair": True},
            ]
        },
    )

    symbols: list[Symbol] = Field(
        min_length=1,
        max_length=MAX_SYMBOLS_PER_REQUEST,
        description="Tickers; lower case is upper-cased. Repeats are verified once.",
    )
    sec_type: SecType = Field(
        default=SecType.STK, description="Asset class; STK is a stock or an ETF."
    )
    exchange: Exchange | None = Field(
        default=None,
        description="Exchange; when omitted CACHE_EXCHANGE for stocks, else the asset class's.",
    )
    currency: Currency | None = Field(
        default=None, description="Quote currency; USD, or an FX pair's own, when omitted."
    )
    expiry: Expiry | None = Field(
        default=None, description="A future's contract month (YYYYMM) or last day (YYYYMMDD)."
    )
    data_type: BarSize = Field(default=BarSize.D1, description="Bar size.")
    what_to_show: WhatToShow | None = Field(
        default=None,
        description="IBKR's series; TRADES when omitted (MIDPOINT for CASH, AGGTRADES for CRYPTO).",
    )
    use_rth: StrictBool = Field(
        default=True, description="Regular trading hours only; false for all hours."
    )
    samples: int = Field(
        default=DEFAULT_SAMPLES,
        ge=1,
        le=MAX_SAMPLES,
        strict=True,
        description="Cached segments per series to ask for again: the first, the last and "
        "evenly between. Each costs a request or a few within the pacing budget.",
    )
    repair: StrictBool = Field(
        default=False,
        description="Heal drift: rescale the series for a split, else fetch it again.",
    )


class VerifyResultPublic(SeriesKeyPublic):
    """What the verify found for one series. drift: bars_drifted > 0. factor: the cached price
    over IBKR's for the drifted bars (their median), null without drift. healed: how the drift
    was healed (rescaled, refetched), null when it was not repaired. A series with nothing
    cached checks no segment."""

    status: Literal["ok", "error", "cancelled"]
    segments_checked: int
    bars_compared: int
    bars_drifted: int
    drift: bool
    factor: float | None
    healed: Literal["rescaled", "refetched"] | None
    error: RefreshError | None


class VerifyJobPublic(BaseModel):
    """A verify job. Jobs live in the server's memory: a restart forgets them.

    unrepaired counts the series whose drift was found and not healed.
    """

    job_id: str
    status: Literal["queued", "running", "completed", "partial", "failed", "cancelled"]
    created_at: datetime
    finished_at: datetime | None
    samples: int
    repair: bool
    progress: RefreshProgress
    unrepaired: int
    results: list[VerifyResultPublic]
