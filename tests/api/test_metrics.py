"""GET /metrics: Prometheus text with requests by route template, latency, cache lookups, gateway
requests, pacing waits, pool connections in use and refresh jobs by state."""

import asyncio
from contextlib import ExitStack

from prometheus_client.parser import text_string_to_metric_families

from backend.ibkr.pacing import PacingLimits, PacingScheduler
from tests.support.cache_api import api_client, seed_daily_bars
from tests.support.migrations import migrate_to_head

CACHE = "/api/market-data/cache"
SERIES_ROUTE = "/api/market-data/cache/{symbol}"


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_template_and_status(migrated_database_url):
    with api_client(migrated_database_url) as (client, container):
        seed_daily_bars(container, "NVDA", [3, 4])
        before = scrape(client)
        for symbol in ("NVDA", "nvda", "TSLA", "AAPL"):
            client.get(f"{CACHE}/{symbol}")
        client.head(f"{CACHE}/NVDA")
        client.get("/no/such/page")
        after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "http_requests_total"
    assert delta(requests, route=SERIES_ROUTE, method="GET", status="200") == 2
    assert delta(requests, route=SERIES_ROUTE, method="GET", status="404") == 2
    assert delta(requests, route=SERIES_ROUTE, method="HEAD", status="200") == 1
    assert delta(requests, route="unmatched", method="GET", status="404") == 1
    # One series per template, however many symbols were asked for: bounded cardinality.
    routes = {dict(labels).get("route") for name, labels in after if name == requests}
    assert not any("NVDA" in route or "TSLA" in route for route in routes)
    assert delta("http_request_duration_seconds_count", route=SERIES_ROUTE) == 5
    assert value(after, "http_request_duration_seconds_bucket", route=SERIES_ROUTE, le="+Inf") > 0


def test_pool_in_use_and_refresh_jobs_by_state_are_read_at_scrape_time(sqlite_url, sim):
    migrate_to_head(sqlite_url)
    with api_client(sqlite_url, sim.port) as (client, container):
        database = container.database()
        with ExitStack() as held:
            for _ in range(3):
                held.enter_context(database.engine.connect())
            in_use = value(scrape(client), "db_pool_connections_in_use")
        idle = value(scrape(client), "db_pool_connections_in_use")

        job = client.post(
            f"{CACHE}/refresh", params={"wait": "true"}, json={"symbols": ["NVDA"], "days_back": 5}
        ).json()
        samples = scrape(client)
    assert (in_use, idle) == (3, 0)
    assert job["status"] == "completed"
    assert value(samples, "refresh_jobs", state="completed") == 1
    for state in ("queued", "running", "partial", "failed", "cancelled"):
        assert (("refresh_jobs", (("state", state),))) in samples
        assert value(samples, "refresh_jobs", state=state) == 0


def test_cache_lookups_and_gateway_requests_are_counted(sqlite_url, sim):
    migrate_to_head(sqlite_url)
    body = {"symbols": ["MSFT"], "days_back": 5}
    with api_client(sqlite_url, sim.port) as (client, _):
        before = scrape(client)
        client.post(f"{CACHE}/refresh", params={"wait": "true"}, json=body)
        client.post(f"{CACHE}/refresh", params={"wait": "true"}, json=body)
        # "no data" makes the client ask for the head timestamp before trusting it; that is
        # the one IBM's refresh asked for already, so it is not asked again.
        sim.arm_fault("no_data", count=1, symbol="IBM")
        client.post(f"{CACHE}/refresh", params={"wait": "true"}, json={**body, "symbols": ["IBM"]})
        after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("cache_lookups_total", outcome="miss") >= 1
    assert delta("cache_lookups_total", outcome="hit") >= 1
    historical = delta("gateway_requests_total", kind="historical")
    assert historical >= 2
    assert historical <= sim.stats()["historical_requests"]
    assert delta("gateway_requests_total", kind="contract_details") == 2
    # A contract's first bar is asked for once per series and hours: MSFT's (its second
    # refresh reads it from the cache) and IBM's.
    assert delta("gateway_requests_total", kind="head_timestamp") == 2


def test_pacing_waits_are_counted_with_their_seconds(sqlite_url):
    now = [100.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    async def two_identical_requests() -> float:
        pacing = PacingScheduler(PacingLimits(), monotonic=lambda: now[0], sleep=sleep)
        await pacing.acquire("NVDA", "same request")
        waited = await pacing.acquire("NVDA", "same request")  # identical within 15 s: waits
        return waited

    with api_client(sqlite_url) as (client, _):
        before = scrape(client)
        waited = asyncio.run(two_identical_requests())
        after = scrape(client)
    assert waited > 15
    assert value(after, "pacing_waits_total") - value(before, "pacing_waits_total") == 1
    seconds = value(after, "pacing_wait_seconds_total") - value(before, "pacing_wait_seconds_total")
    assert abs(seconds - waited) < 1e-6


def test_metrics_need_no_token_but_an_allowed_host(sqlite_url):
    with api_client(sqlite_url, API_TOKEN="s3cret") as (client, _):
        assert client.get("/metrics").status_code == 200
        assert client.get("/metrics", headers={"Host": "attacker.example"}).status_code == 400
