"""The cost of a refresh or workflow in IBKR requests, planned before any request is sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from backend.ibkr.client import IBKRClient
from backend.ibkr.pacing import PacingLimits
from backend.market_data.domain import BarSize, Market, SeriesKey, WhatToShow
from backend.market_data.errors import MarketDataError
from backend.market_data.service import MarketDataService


@dataclass(frozen=True)
class RequestEstimate:
    """Historical requests some work needs at most, and how long IBKR's pacing makes them take."""

    requests: int
    duration_s: float

    def to_json(self) -> dict[str, float | int]:
        return {"requests": self.requests, "duration_s": round(self.duration_s, 1)}


class RequestBudgetExceeded(MarketDataError):
    code = "request_budget_exceeded"

    def __init__(self, estimate: RequestEstimate, ceiling: int, what: str) -> None:
        self.estimate, self.ceiling = estimate, ceiling
        hours = estimate.duration_s / 3600
        super().__init__(
            f"{what} needs about {estimate.requests} IBKR historical requests (~{hours:.1f} h "
            f"at IBKR's pacing budget); the limit per request is {ceiling} (REQUEST_CEILING). "
            "Ask for fewer symbols, fewer days or a larger bar size, or fill the cache in "
            "batches with make populate-cache."
        )

    def estimate_json(self) -> dict[str, float | int]:
        """The 422 body's `estimate`."""
        return {**self.estimate.to_json(), "ceiling": self.ceiling}


class JobQueueFull(RequestBudgetExceeded):
    """The jobs already queued or running, with this one, would need more requests than
    JOB_QUEUE_CEILING (REQUEST_BUDGET_POLICY=refuse): the same code, the backlog in the body."""

    def __init__(self, estimate: RequestEstimate, queued: int, ceiling: int) -> None:
        self.estimate, self.ceiling, self.queued = estimate, ceiling, queued
        MarketDataError.__init__(
            self,
            f"this refresh needs about {estimate.requests} IBKR historical requests, and the "
            f"refresh jobs queued or running on every backend need {queued} more; together "
            f"they are above JOB_QUEUE_CEILING ({ceiling}). Retry once some have finished, "
            "ask for less, or fill the cache in batches with make populate-cache.",
        )

    def estimate_json(self) -> dict[str, float | int]:
        return {**super().estimate_json(), "queued_requests": self.queued}


class RequestPlanner:
    """Estimates from the cache's gaps and the calendar's chunking, and refuses what is too big.

    The estimate is what the fetch itself would plan: the chunks of the ranges the cache does
    not hold fresh (all of the range when forced). Counting stops as soon as the ceiling is
    passed, and the series not looked at then count as wholly missing, so refusing a huge
    request costs one series' coverage check, not fifty. A BID_ASK request counts twice against
    IBKR's pacing, so its requests are estimated to take twice as long.
    """

    def __init__(
        self,
        service: MarketDataService,
        client: IBKRClient,
        limits: PacingLimits,
        ceiling: int,
    ) -> None:
        self.service = service
        self.client = client
        self.limits = limits
        self.ceiling = ceiling

    def duration_s(self, requests: int) -> float:
        # IBKR's sustained rate: 60 per 10 minutes is one request per 10 s. A first burst can go
        # faster, so this is an upper bound, which is what a limit should be measured against.
        return requests * self.limits.global_window_s / self.limits.global_max

    async def check(
        self,
        symbols: list[str],
        exchange: str,
        bar_size: BarSize,
        start: datetime,
        end: datetime,
        *,
        force: bool = False,
        what: str = "this request",
    ) -> RequestEstimate:
        """check_series for US stocks' TRADES in regular hours (what workflows read)."""
        series = [SeriesKey(symbol, exchange, bar_size.value) for symbol in symbols]
        return await self.check_series(series, start, end, force=force, what=what)

    async def check_series(
        self,
        series: list[SeriesKey],
        start: datetime,
        end: datetime,
        *,
        force: bool = False,
        what: str = "this request",
    ) -> RequestEstimate:
        """The estimate for filling each series over [start, end), or RequestBudgetExceeded
        when it is above the ceiling. The series share a bar size and market (one refresh)."""
        estimate = await self.estimate_series(series, start, end, force=force)
        if estimate.requests > self.ceiling:
            raise RequestBudgetExceeded(estimate, self.ceiling, what)
        return estimate

    async def estimate_series(
        self, series: list[SeriesKey], start: datetime, end: datetime, *, force: bool = False
    ) -> RequestEstimate:
        """check_series' estimate without refusing: past the ceiling it is an upper bound."""
        if not series:
            return RequestEstimate(0, 0.0)
        run = self.service.repository.database.run
        first = series[0]
        bar_size = first.bar_size
        # The whole range's requests, per market: the same for every series of a refresh but
        # an index's (SPX and VIX keep different hours).
        whole: dict[Market, int] = {}
        for one in series:
            if one.market not in whole:
                whole[one.market] = await run(
                    self.client.count_chunks, one, bar_size, [(start, end)]
                )
        per_series = max(whole.values())
        if force:
            requests = sum(whole[one.market] for one in series)
        else:
            requests = 0
            for index, one in enumerate(series):
                requests += await run(self._requests_for, one, start, end, whole[one.market])
                if requests > self.ceiling:
                    # Past the ceiling already; the series not looked at count at most per_series.
                    requests += (len(series) - index - 1) * per_series
                    break
        weight = 2 if first.what_to_show == WhatToShow.BID_ASK else 1
        return RequestEstimate(requests, self.duration_s(requests * weight))

    def _requests_for(
        self, series: SeriesKey, start: datetime, end: datetime, whole_range: int
    ) -> int:
        """The requests one series' gaps need; whole_range when it holds no bars in the range.

        A series the cache holds nothing of is fetched whole, and finding its gaps would list
        every bar the calendar expects (millions for years of minute bars) only to learn that.
        """
        if not self.service.repository.summarize(series, start, end, None).bars:
            return whole_range
        bar_size = series.bar_size
        coverage = self.service.find_gaps(series, bar_size, start, end)
        return self.client.count_chunks(series, bar_size, coverage.missing)
