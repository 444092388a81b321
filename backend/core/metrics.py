"""The process's Prometheus metrics: the counters every part increments, and the /metrics text."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

# Jobs are reported in every state, zeros included, so a dashboard's series never vanish.
REFRESH_JOB_STATES = (
    "queued",
    "running",
    "completed",
    "partial",
    "failed",
    "cancelled",
    "interrupted",
)

HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template.",
    ["route"],
    # Health and cached reads take milliseconds; a synchronous workflow can take minutes.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
CACHE_LOOKUPS = Counter(
    "cache_lookups",
    "Market data lookups by cache outcome (hit, miss, partial, stale, bypass).",
    ["outcome"],
)
GATEWAY_REQUESTS = Counter(
    "gateway_requests",
    "Requests sent to the IB gateway, by kind (historical, head_timestamp, contract_details).",
    ["kind"],
)
PACING_WAITS = Counter(
    "pacing_waits", "Historical requests that had to wait for a pacing slot before going out."
)
PACING_WAIT_SECONDS = Counter(
    "pacing_wait_seconds", "Seconds historical requests spent waiting for pacing slots."
)


class _Snapshot:
    """Gauges read at scrape time from the running app, rather than kept up to date."""

    def __init__(self, pool_in_use: int, jobs_by_state: Mapping[str, int]) -> None:
        self.pool_in_use = pool_in_use
        self.jobs_by_state = jobs_by_state

    def collect(self):
        pool = GaugeMetricFamily(
            "db_pool_connections_in_use", "Connections of the request pool checked out now."
        )
        pool.add_metric([], self.pool_in_use)
        yield pool
        jobs = GaugeMetricFamily(
            "refresh_jobs",
            "Refresh jobs this process ran since it started, by state.",
            labels=["state"],
        )
        for state in sorted({*REFRESH_JOB_STATES, *self.jobs_by_state}):
            jobs.add_metric([state], self.jobs_by_state.get(state, 0))
        yield jobs


def render(pool_in_use: int, jobs_by_state: Mapping[str, int]) -> bytes:
    """The Prometheus text exposition: process-wide counters plus this app's gauges."""
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(_Snapshot(pool_in_use, jobs_by_state))
    return generate_latest(REGISTRY) + generate_latest(snapshot)
