"""Cache management endpoints: list, inspect, refresh from IBKR, clear, statistics, corporate
actions and verify."""

from dataclasses import replace
from datetime import datetime
from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from backend.api.bar_formats import MEDIA_TYPES, BarFormat, encode, filename, negotiate
from backend.api.deps import (
    GUARDED,
    DateFromQuery,
    DateToQuery,
    bar_filter,
    check_date_order,
    require_api_token,
    series_or_422,
)
from backend.api.errors import ErrorPublic, error_body, error_summary
from backend.api.schemas.inputs import Currency, Exchange, Expiry, Symbol
from backend.api.schemas.market_data_cache import (
    MAX_OFFSET,
    MAX_PAGE_SIZE,
    CachedBarPublic,
    CachedBarsPublic,
    CacheStatsPublic,
    CorporateActionPublic,
    CorporateActionsPublic,
    Cursor,
    DeletedPublic,
    RefreshError,
    RefreshJobPublic,
    RefreshJobRequest,
    RefreshProgress,
    RefreshRequest,
    RefreshResultPublic,
    RefreshRunPublic,
    RequestBudgetPublic,
    RequestEstimatePublic,
    SeriesBarPublic,
    SeriesCursor,
    SeriesPublic,
    VerifyJobPublic,
    VerifyRequest,
    VerifyResultPublic,
    identity_of,
    key_of,
)
from backend.containers import Container
from backend.market_data.domain import (
    MAX_SERIES_PAGE_SIZE,
    SERIES_PAGE_SIZE,
    BarSize,
    SecType,
    SeriesKey,
    WhatToShow,
)
from backend.market_data.inventory import CacheInventory, RangeTooLarge, SeriesPage, is_expired
from backend.market_data.refresh_jobs import RefreshJob, RefreshJobs
from backend.market_data.stats import CacheStatsService
from backend.market_data.verify_jobs import VerifyJob, VerifyJobs, VerifyNeedsIBKR
from backend.storage.market_data_repository import (
    BarFilter,
    MarketDataCacheRepository,
    SegmentSlice,
)
from backend.storage.market_data_tables import CorporateAction

router = APIRouter(prefix="/api/market-data/cache", tags=["market-data-cache"])

# How long POST /refresh?wait=true holds the request open before answering 202 with the job.
REFRESH_WAIT_S = 120.0
# Most bars one Parquet, Arrow or CSV answer of the series route carries: about 20 years of
# 1-minute bars. The body is built in memory, a few hundred MB at this size.
MAX_COLUMNAR_BARS = 2_000_000
# The series route answers in the format the Accept header asks for: caches must key on it.
VARY = {"Vary": "Accept"}
SERIES_DESCRIPTION = f"""One series' cached bars in time order. Reads the cache only, never IBKR.

The series is the symbol's contract (sec_type, exchange, currency, expiry) in one bar size,
whatToShow and hours. What is left out takes the asset class's default: a US stock's TRADES in
regular hours; CBOE, CME, IDEALPRO (as MIDPOINT) or PAXOS (as AGGTRADES) for indices, futures,
FX pairs (EUR.USD, or EUR with currency=USD) and crypto. A series IBKR does not have (TRADES on
FX, a future without its expiry, an expiry on a stock) is refused with 422 naming the field.

**JSON** (the default) answers a page at a time. A page holds up to `limit` bars
(default {SERIES_PAGE_SIZE}, at most {MAX_SERIES_PAGE_SIZE}). While more bars follow,
`next_cursor` is set: pass it back as `cursor`, with the same filters, for the next page.
`total` counts the bars of the whole range.

**Parquet, Arrow IPC stream, CSV** answer the whole date_from..date_to range in one body, as a
file named like `NVDA_1m.parquet` (or `ES_202503_FUT_CME_1m_MIDPOINT_all-hours.parquet`);
`limit` and `cursor` are refused (422). A range of more than
{MAX_COLUMNAR_BARS:,} bars is refused (422): narrow date_from/date_to, or page the JSON.

Parquet and Arrow hold the columns timestamp, open, high, low, close, volume, wap, bar_count (as
float) and is_final, with pandas' metadata: `pd.read_parquet(url)` with `format=parquet` gives the
frame the backend reads, indexed by the UTC timestamp. A value IBKR did not send is null (NaN in
pandas). CSV has the same columns, ISO-8601 UTC times, and empty fields for missing values.

The format is `format` when given, else the Accept header's choice among application/json,
application/vnd.apache.parquet, application/vnd.apache.arrow.stream and text/csv (`*/*` or no
Accept gives JSON); an Accept naming none of them is answered 406 `not_acceptable`.
"""
NO_SUCH_JOB = {404: {"model": ErrorPublic, "description": "No such job"}}


@router.get("", response_model=CachedBarsPublic)
@inject
def list_cached_bars(
    filters: Annotated[BarFilter, Depends(bar_filter)],
    inventory: Annotated[CacheInventory, Depends(Provide[Container.cache_inventory])],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip.")] = 0,
) -> CachedBarsPublic:
    """Cached bars matching the filters, one page at a time, with the total count."""
    page = inventory.list_bars(filters, limit, offset)
    return CachedBarsPublic(
        data=[bar for part in page.slices for bar in cached_bars_public(part, page.as_of)],
        count=page.total,
    )


@router.get("/stats", response_model=CacheStatsPublic)
@inject
def cache_stats(
    stats: Annotated[CacheStatsService, Depends(Provide[Container.cache_stats_service])],
) -> CacheStatsPublic:
    """Hit rates overall and per series, with each series' bar count, first and last bar."""
    return CacheStatsPublic.model_validate(stats.stats(), from_attributes=True)


@router.post(
    "/refresh",
    status_code=202,
    response_model=RefreshJobPublic,
    response_description="Job accepted; follow it at the Location header's URL",
    responses={
        200: {"model": RefreshJobPublic, "description": "Finished job (with wait=true)"},
        422: {
            "model": RequestBudgetPublic,
            "description": "Invalid input, or (REQUEST_BUDGET_POLICY=refuse) the job would need "
            "more IBKR requests than REQUEST_CEILING, or the jobs queued and running on every "
            "replica would with it need more than JOB_QUEUE_CEILING (code "
            "request_budget_exceeded, with the estimate)",
        },
        **GUARDED,
    },
    dependencies=[Depends(require_api_token)],
)
@inject
async def refresh_cache(
    body: Annotated[
        RefreshRequest,
        Body(
            openapi_examples={
                "daily": {
                    "summary": "A year of daily bars for two symbols",
                    "value": {"symbols": ["NVDA", "TSLA"], "data_type": "1d", "days_back": 365},
                },
                "forced": {
                    "summary": "Fetch a month of hourly bars again, even if cached",
                    "value": {
                        "symbols": ["AAPL"],
                        "data_type": "1h",
                        "days_back": 30,
                        "force": True,
                    },
                },
                "future": {
                    "summary": "Two days of a future's 1-minute midpoints, overnight included",
                    "value": {
                        "symbols": ["ES"],
                        "sec_type": "FUT",
                        "expiry": "202503",
                        "data_type": "1m",
                        "what_to_show": "MIDPOINT",
                        "use_rth": False,
                        "days_back": 2,
                    },
                },
                "fx": {
                    "summary": "Hourly midpoints of two FX pairs",
                    "value": {
                        "symbols": ["EUR.USD", "USD.JPY"],
                        "sec_type": "CASH",
                        "data_type": "1h",
                    },
                },
            }
        ),
    ],
    response: Response,
    jobs: Annotated[RefreshJobs, Depends(Provide[Container.refresh_jobs])],
    wait: Annotated[
        bool, Query(description=f"Answer when the job ends (at most {REFRESH_WAIT_S:g} s).")
    ] = False,
) -> RefreshJobPublic:
    """Fetch symbols from IBKR into the cache as a job (allowed in DEBUG_MODE); 202 with the job.

    Each symbol is one series of the body's asset class, bar size, whatToShow and hours; a
    series IBKR does not have is refused with 422 naming the field. The job is planned first,
    from the chunks of the ranges the cache lacks, before anything is sent; two limits protect
    the pacing budget from one caller:

    - the job alone needs more than REQUEST_CEILING historical requests (default 1440, four
      hours of IBKR's budget of 60 per 10 minutes);
    - the refresh jobs queued or running on every replica, with this one, need more than
      JOB_QUEUE_CEILING (default 4320).

    With REQUEST_BUDGET_POLICY=refuse (the default) such a job is refused with 422
    `request_budget_exceeded` and `estimate: {requests, duration_s, ceiling}` (and
    `queued_requests` for the second limit). With REQUEST_BUDGET_POLICY=queue it is accepted
    as `queued`, with `estimate.duration_s` and `estimate.wait_s` (the jobs ahead's duration),
    and starts once the jobs ahead leave room (a job above REQUEST_CEILING: once none is ahead).

    The job is stored in the database: any replica answers GET for it, and a job whose process
    stopped shows `interrupted` and can be resumed (POST .../refresh/{job_id}/resume).
    """
    series = [
        series_or_422(
            "body",
            symbol,
            body.data_type,
            symbol_loc=("body", "symbols", index),
            sec_type=body.sec_type,
            exchange=body.exchange,
            currency=body.currency,
            expiry=body.expiry,
            what_to_show=body.what_to_show,
            use_rth=body.use_rth,
            stock_exchange=jobs.default_exchange,
        )
        for index, symbol in enumerate(body.symbols)
    ]
    job = await jobs.submit(series, days_back=body.days_back, force=body.force)
    if wait:
        job = await jobs.wait(job, REFRESH_WAIT_S)
    if job.finished:
        response.status_code = 200
    else:
        response.headers["Location"] = f"{router.prefix}/refresh/{job.job_id}"
    return job_public(job)


@router.get(
    "/refresh/{job_id}",
    response_model=RefreshJobPublic,
    responses=NO_SUCH_JOB,
)
@inject
async def refresh_job(
    job_id: str,
    jobs: Annotated[RefreshJobs, Depends(Provide[Container.refresh_jobs])],
) -> RefreshJobPublic:
    """A refresh job's progress and per-symbol results, read from the database by any replica;
    `interrupted` when the process running it stopped heartbeating."""
    return job_public(_known_job(await jobs.get(job_id), job_id))


@router.delete(
    "/refresh/{job_id}",
    response_model=RefreshJobPublic,
    responses={**NO_SUCH_JOB, **GUARDED},
    dependencies=[Depends(require_api_token)],
)
@inject
async def cancel_refresh_job(
    job_id: str,
    jobs: Annotated[RefreshJobs, Depends(Provide[Container.refresh_jobs])],
) -> RefreshJobPublic:
    """Cancel a queued or running job: it sends no request after the one in flight.

    Answers with the job once it has stopped (status `cancelled`; bars committed so far stay
    cached and are counted). A job another replica runs is flagged (`cancel_requested`) and
    stopped by its owner at its next heartbeat; this waits a few heartbeats for that. An
    interrupted job is cancelled at once. A job that had already finished is returned unchanged.
    """
    return job_public(_known_job(await jobs.cancel(job_id), job_id))


@router.post(
    "/refresh/{job_id}/resume",
    status_code=202,
    response_model=RefreshJobPublic,
    response_description="Job taken over by this replica; follow it at the Location header's URL",
    responses={
        200: {"model": RefreshJobPublic, "description": "Finished job (with wait=true)"},
        **NO_SUCH_JOB,
        409: {
            "model": ErrorPublic,
            "description": "The job is running on a live replica, or completed (code "
            "job_not_resumable)",
        },
        **GUARDED,
    },
    dependencies=[Depends(require_api_token)],
)
@inject
async def resume_refresh_job(
    job_id: str,
    response: Response,
    jobs: Annotated[RefreshJobs, Depends(Provide[Container.refresh_jobs])],
    wait: Annotated[
        bool, Query(description=f"Answer when the job ends (at most {REFRESH_WAIT_S:g} s).")
    ] = False,
) -> RefreshJobPublic:
    """Resume an interrupted (or cancelled, failed, partial) job on this replica.

    Its request runs again, over the same range, for the series that had not ended `ok`,
    through the read-through path: the cache's coverage already holds what earlier runs
    committed, so only the rest is fetched. The new entry of `runs` counts the requests it
    sent. Refused with 409 `job_not_resumable` while the job's owner still heartbeats, or when
    it completed.
    """
    job = _known_job(await jobs.resume(job_id), job_id)
    if wait:
        job = await jobs.wait(job, REFRESH_WAIT_S)
    if job.finished:
        response.status_code = 200
    else:
        response.headers["Location"] = f"{router.prefix}/refresh/{job.job_id}"
    return job_public(job)


@router.get("/actions", response_model=CorporateActionsPublic)
@inject
def corporate_actions(
    filters: Annotated[BarFilter, Depends(bar_filter)],
    repository: Annotated[
        MarketDataCacheRepository, Depends(Provide[Container.market_data_repository])
    ],
) -> CorporateActionsPublic:
    """Splits and dividend adjustments the cache detected, newest first, and how it healed each.

    The series filters are those of the listing; date_from and date_to bound when the action
    was detected. Reads the cache only, never IBKR.
    """
    actions = [
        action
        for action in repository.corporate_actions(filters)
        if (filters.date_from is None or action.detected_at >= filters.date_from)
        and (filters.date_to is None or action.detected_at <= filters.date_to)
    ]
    return CorporateActionsPublic(
        data=[action_public(action) for action in actions], count=len(actions)
    )


@router.post(
    "/verify",
    status_code=202,
    response_model=VerifyJobPublic,
    response_description="Job accepted; follow it at the Location header's URL",
    responses={
        200: {"model": VerifyJobPublic, "description": "Finished job (with wait=true)"},
        409: {
            "model": ErrorPublic,
            "description": "DEBUG_MODE: verify needs IBKR (code verify_in_debug_mode)",
        },
        **GUARDED,
    },
    dependencies=[Depends(require_api_token)],
)
@inject
async def verify_cache(
    body: VerifyRequest,
    response: Response,
    jobs: Annotated[VerifyJobs, Depends(Provide[Container.verify_jobs])],
    wait: Annotated[
        bool, Query(description=f"Answer when the job ends (at most {REFRESH_WAIT_S:g} s).")
    ] = False,
) -> VerifyJobPublic | JSONResponse:
    """Ask IBKR again for a sample of each series' cached segments, as a job; 202 with the job.

    Each result counts the bars compared and those that drifted (prices differing beyond a
    tick: a split or dividend the cache has not seen, or a revision), with the factor; with
    `repair` the drift is healed as a detected corporate action is, and recorded. Refused with
    409 in DEBUG_MODE, which never contacts IBKR.
    """
    series = [
        series_or_422(
            "body",
            symbol,
            body.data_type,
            symbol_loc=("body", "symbols", index),
            sec_type=body.sec_type,
            exchange=body.exchange,
            currency=body.currency,
            expiry=body.expiry,
            what_to_show=body.what_to_show,
            use_rth=body.use_rth,
            stock_exchange=jobs.default_exchange,
        )
        for index, symbol in enumerate(body.symbols)
    ]
    try:
        job = await jobs.submit(series, samples=body.samples, repair=body.repair)
    except VerifyNeedsIBKR as error:
        return JSONResponse(error_body(str(error), error.code), status_code=409)
    if wait:
        await jobs.wait(job, REFRESH_WAIT_S)
    if job.finished:
        response.status_code = 200
    else:
        response.headers["Location"] = f"{router.prefix}/verify/{job.job_id}"
    return verify_job_public(job)


@router.get("/verify/{job_id}", response_model=VerifyJobPublic, responses=NO_SUCH_JOB)
@inject
async def verify_job(
    job_id: str,
    jobs: Annotated[VerifyJobs, Depends(Provide[Container.verify_jobs])],
) -> VerifyJobPublic:
    """A verify job's progress and per-series results."""
    return verify_job_public(_known_verify_job(jobs.get(job_id), job_id))


@router.delete(
    "/verify/{job_id}",
    response_model=VerifyJobPublic,
    responses={**NO_SUCH_JOB, **GUARDED},
    dependencies=[Depends(require_api_token)],
)
@inject
async def cancel_verify_job(
    job_id: str,
    jobs: Annotated[VerifyJobs, Depends(Provide[Container.verify_jobs])],
) -> VerifyJobPublic:
    """Cancel a queued or running verify job: it sends no request after the one in flight."""
    return verify_job_public(_known_verify_job(await jobs.cancel(job_id), job_id))


@router.get(
    "/{symbol}",
    response_model=SeriesPublic,
    description=SERIES_DESCRIPTION,
    responses={
        200: {
            "description": "The bars: a JSON page, or the whole range as Parquet, an Arrow IPC "
            "stream or CSV",
            "content": {
                MEDIA_TYPES[BarFormat.PARQUET]: {"schema": {"type": "string", "format": "binary"}},
                MEDIA_TYPES[BarFormat.ARROW]: {"schema": {"type": "string", "format": "binary"}},
                MEDIA_TYPES[BarFormat.CSV]: {"schema": {"type": "string"}},
            },
        },
        404: {"model": ErrorPublic, "description": "Nothing cached"},
        406: {
            "model": ErrorPublic,
            "description": "No format given and the Accept header names none of the formats "
            "(code not_acceptable)",
        },
    },
)
@inject
def cached_series(
    symbol: Annotated[
        Symbol,
        Path(description="Ticker; lower case is upper-cased. An FX pair as EUR.USD or EURUSD."),
    ],
    inventory: Annotated[CacheInventory, Depends(Provide[Container.cache_inventory])],
    repository: Annotated[
        MarketDataCacheRepository, Depends(Provide[Container.market_data_repository])
    ],
    request: Request,
    data_type: Annotated[BarSize, Query(description="Bar size.")] = BarSize.D1,
    exchange: Annotated[
        Exchange | None,
        Query(
            description="Exchange; when omitted CACHE_EXCHANGE for stocks (then any cached one), "
            "else the asset class's (CBOE, CME, IDEALPRO, PAXOS)."
        ),
    ] = None,
    sec_type: Annotated[
        SecType, Query(description="Asset class; STK is a stock or an ETF.")
    ] = SecType.STK,
    currency: Annotated[
        Currency | None,
        Query(description="Quote currency; USD, or an FX pair's own, when omitted."),
    ] = None,
    expiry: Annotated[
        Expiry | None,
        Query(description="A future's contract month (YYYYMM) or last day (YYYYMMDD); FUT only."),
    ] = None,
    what_to_show: Annotated[
        WhatToShow | None,
        Query(
            description="IBKR's series; TRADES (MIDPOINT for CASH, AGGTRADES for CRYPTO) "
            "when omitted."
        ),
    ] = None,
    use_rth: Annotated[
        bool, Query(description="Regular trading hours only; false for all hours.")
    ] = True,
    date_from: DateFromQuery = None,
    date_to: DateToQuery = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_SERIES_PAGE_SIZE,
            description=f"Bars per page, at most {MAX_SERIES_PAGE_SIZE}. JSON only.",
        ),
    ] = SERIES_PAGE_SIZE,
    cursor: Annotated[
        Cursor | None,
        Query(description="next_cursor of the previous page; omit for the first page. JSON only."),
    ] = None,
    bar_format: Annotated[
        BarFormat | None,
        Query(
            alias="format",
            description="json (the default), parquet, arrow (IPC stream) or csv; "
            "overrides the Accept header.",
        ),
    ] = None,
) -> Response:
    """One series' cached bars in time order, as SERIES_DESCRIPTION tells."""
    check_date_order(date_from, date_to)
    series = series_or_422(
        "query",
        symbol,
        data_type,
        symbol_loc=("path", "symbol"),
        sec_type=sec_type,
        exchange=exchange,
        currency=currency,
        expiry=expiry,
        what_to_show=what_to_show,
        use_rth=use_rth,
        stock_exchange=inventory.default_exchange,
    )
    # Without an exchange, a stock is looked for on any exchange it is cached for.
    any_exchange = exchange is None and series.sec_type == SecType.STK
    chosen = bar_format if bar_format is not None else negotiate(request.headers.get("accept"))
    if chosen is None:
        return not_acceptable()
    if chosen is not BarFormat.JSON:
        check_not_paged(request, chosen)
        return columnar_series(inventory, series, any_exchange, date_from, date_to, chosen)
    if cursor is not None:
        check_cursor(cursor, series, exchange_given=exchange is not None)
        series, any_exchange = cursor.series, False
    page = inventory.series(
        series,
        date_from,
        date_to,
        limit,
        after=cursor.after if cursor else None,
        any_exchange=any_exchange,
    )
    # The hot path of charts: the model is already valid, so it is dumped once, straight to JSON,
    # instead of FastAPI validating a year of bars again against response_model.
    # One summary row by key, as MarketDataService.price_basis reads it (this route is sync).
    summary = repository.series_summary(page.series)
    public = series_public(page, summary.basis_at if summary is not None else None)
    return Response(public.model_dump_json(), media_type="application/json", headers=VARY)


@router.delete(
    "",
    response_model=DeletedPublic,
    responses=GUARDED,
    dependencies=[Depends(require_api_token)],
)
@inject
def clear_cache(
    filters: Annotated[BarFilter, Depends(bar_filter)],
    inventory: Annotated[CacheInventory, Depends(Provide[Container.cache_inventory])],
    delete_all: Annotated[
        bool,
        Query(
            alias="all",
            description="Required to delete every bar: with no filter, or with a filter that "
            "matches every cached bar.",
        ),
    ] = False,
) -> DeletedPublic:
    """Delete the cached bars matching the filters; deleting every bar needs all=true."""
    if not delete_all and (filters.is_empty or inventory.matches_every_bar(filters)):
        given = "no filter given" if filters.is_empty else "this filter matches every cached bar"
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "all"),
                    "msg": f"{given}: pass all=true to delete every cached bar, "
                    "or filter by symbol, exchange, data_type, sec_type, currency, expiry, "
                    "what_to_show, use_rth, date_from or date_to",
                    "type": "value_error",
                }
            ]
        )
    return DeletedPublic(deleted=inventory.delete_bars(filters))


def not_acceptable() -> JSONResponse:
    choices = ", ".join(MEDIA_TYPES.values())
    formats = "|".join(BarFormat)
    return JSONResponse(
        error_body(
            f"the Accept header names no format this route answers in: accept one of "
            f"{choices} (or */*), or pass format={formats}",
            "not_acceptable",
        ),
        status_code=406,
        headers=VARY,
    )


def check_not_paged(request: Request, bar_format: BarFormat) -> None:
    # limit has a default, so whether it was given is read from the query itself.
    paged = [name for name in ("limit", "cursor") if name in request.query_params]
    if paged:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": f"applies to JSON pages only; a {bar_format} answer holds the whole "
                    "date_from..date_to range: leave it out, or ask for format=json",
                    "type": "value_error",
                }
                for name in paged
            ]
        )


def columnar_series(
    inventory: CacheInventory,
    series: SeriesKey,
    any_exchange: bool,
    date_from: datetime | None,
    date_to: datetime | None,
    bar_format: BarFormat,
) -> Response:
    """The whole range in one Parquet, Arrow or CSV body, as a file to save."""
    try:
        found = inventory.series_columns(
            series, date_from, date_to, MAX_COLUMNAR_BARS, any_exchange=any_exchange
        )
    except RangeTooLarge as error:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "date_from"),
                    "msg": f"the range holds {error.bars:,} bars, more than the "
                    f"{error.max_bars:,} a {bar_format} answer may carry: narrow "
                    "date_from/date_to, or page the bars as JSON (format=json with limit "
                    "and cursor)",
                    "type": "value_error",
                }
            ]
        ) from error
    name = filename(found.series, bar_format)
    return Response(
        encode(found.bars, bar_format),
        media_type=MEDIA_TYPES[bar_format],
        headers={**VARY, "Content-Disposition": f'attachment; filename="{name}"'},
    )


def check_cursor(cursor: SeriesCursor, series: SeriesKey, exchange_given: bool) -> None:
    """The cursor must be of the series asked for; without an exchange, of it on any exchange."""
    asked = series if exchange_given else replace(series, exchange=cursor.series.exchange)
    if cursor.series != asked:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "cursor"),
                    "msg": f"belongs to {cursor.series.label()}, not to this request: pass "
                    "the next_cursor of this series' previous page, or leave cursor out for "
                    "the first page",
                    "type": "value_error",
                }
            ]
        )


def cached_bars_public(part: SegmentSlice, now: datetime) -> list[CachedBarPublic]:
    """A segment's bars as the listing shows them: each with its values and its provenance.

    `id` is the segment's: the bars of one session share it.
    """
    segment = part.segment
    series = segment.series
    fetches = segment.fetches
    basis_at = segment.price_basis_at.isoformat()
    return [
        CachedBarPublic(
            **identity_of(series, fetches[fetch].con_id),
            id=segment.id,
            symbol=series.symbol,
            exchange=series.exchange,
            data_type=BarSize(series.data_type),
            timestamp=bar.timestamp,
            ohlcv_data={
                "open": bar.open,
                "high": bar.high,
                "low": bar.low,
                "close": bar.close,
                "volume": bar.volume,
                "wap": bar.wap,
                "bar_count": bar.bar_count,
            },
            indicators=segment.indicators,
            metadata={
                **fetches[fetch].provenance(),
                "is_final": bar.is_final,
                "price_basis_at": basis_at,
            },
            fetched_at=fetches[fetch].fetched_at,
            expires_at=fetches[fetch].expires_at,
            expired=is_expired(bar.is_final, fetches[fetch].expires_at, now),
        )
        for bar, fetch in zip(part.columns.bars(), part.fetch_index.tolist(), strict=True)
    ]


def series_public(page: SeriesPage, price_basis_at: datetime | None = None) -> SeriesPublic:
    bars = page.bars
    next_cursor = None
    if page.next_after is not None:
        next_cursor = SeriesCursor(series=page.series, after=page.next_after).encode()
    return SeriesPublic(
        **identity_of(page.series, page.con_id),
        symbol=page.series.symbol,
        exchange=page.series.exchange,
        data_type=page.data_type,
        count=len(bars),
        first=bars.first_at(),
        last=bars.last_at(),
        fetched_from=page.fetched_from,
        fetched_to=page.fetched_to,
        expired=page.expired,
        total=page.total,
        next_cursor=next_cursor,
        price_basis_at=price_basis_at,
        bars=[
            SeriesBarPublic(
                timestamp=bar.timestamp,
                open=bar.open,
                high=bar.high,
                low=bar.low,
                close=bar.close,
                volume=bar.volume,
                wap=bar.wap,
                bar_count=bar.bar_count,
                is_final=bar.is_final,
            )
            for bar in bars.bars()
        ],
    )


def job_public(job: RefreshJob) -> RefreshJobPublic:
    return RefreshJobPublic(
        job_id=job.job_id,
        status=job.status,
        created_at=job.created_at,
        finished_at=job.finished_at,
        started_at=job.started_at,
        owner=job.owner,
        heartbeat_at=job.heartbeat_at,
        cancel_requested=job.cancel_requested,
        requests_sent=job.requests_sent,
        runs=[RefreshRunPublic.model_validate(run, from_attributes=True) for run in job.runs],
        request=RefreshJobRequest.model_validate(job.request, from_attributes=True),
        estimate=RequestEstimatePublic(**job.estimate.to_json(), wait_s=job.wait_s),
        progress=RefreshProgress(done=len(job.results), total=len(job.series)),
        results=[
            RefreshResultPublic(
                **identity_of(result.series, result.con_id),
                symbol=result.symbol,
                exchange=result.series.exchange,
                data_type=result.data_type,
                status=result.status,
                bars_fetched=result.bars_fetched,
                bars_cached=result.bars_cached,
                error=None
                if result.error is None
                else RefreshError.model_validate(result.error, from_attributes=True),
            )
            for result in job.results
        ],
    )


def _known_job(job: RefreshJob | None, job_id: str) -> RefreshJob:
    if job is None:
        raise HTTPException(
            404,
            f"no refresh job {job_id}; finished jobs are kept JOB_KEEP_DAYS days, at most "
            "JOB_KEEP_FINISHED of them",
        )
    return job


def _refresh_error(error: Exception) -> RefreshError:
    code, detail, status_code = error_summary(error)
    return RefreshError(code=code, detail=detail, status_code=status_code)


def action_public(action: CorporateAction) -> CorporateActionPublic:
    series = SeriesKey(
        action.symbol,
        action.exchange,
        action.data_type,
        action.sec_type,
        action.currency,
        action.expiry,
        action.what_to_show,
        action.use_rth,
    )
    assert action.id is not None
    return CorporateActionPublic(
        **key_of(series),
        id=action.id,
        detected_at=action.detected_at,
        anchor_at=action.anchor_at,
        factor=action.factor,
        kind=action.kind,
        healed=action.healed,
        bars_changed=action.bars_changed,
        basis_from=action.basis_from,
        basis_to=action.basis_to,
    )


def verify_job_public(job: VerifyJob) -> VerifyJobPublic:
    results = []
    for result in job.results:
        drift = result.drift
        results.append(
            VerifyResultPublic(
                **key_of(result.series),
                status=result.status,
                segments_checked=drift.segments_checked if drift else 0,
                bars_compared=drift.bars_compared if drift else 0,
                bars_drifted=drift.bars_drifted if drift else 0,
                drift=bool(drift and drift.drift),
                factor=drift.factor if drift else None,
                healed=drift.healed if drift else None,
                error=None if result.error is None else _refresh_error(result.error),
            )
        )
    return VerifyJobPublic(
        job_id=job.job_id,
        status=job.status,
        created_at=job.created_at,
        finished_at=job.finished_at,
        samples=job.samples,
        repair=job.repair,
        progress=RefreshProgress(done=len(job.results), total=len(job.series)),
        unrepaired=sum(1 for result in results if result.drift and result.healed is None),
        results=results,
    )


def _known_verify_job(job: VerifyJob | None, job_id: str) -> VerifyJob:
    if job is None:
        raise HTTPException(
            404, f"no verify job {job_id}; jobs are kept in memory and forgotten on restart"
        )
    return job
