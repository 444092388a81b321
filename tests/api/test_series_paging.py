"""The series route pages: a bounded number of bars per response, walked with an opaque cursor."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from backend.market_data.bar_columns import BarColumns
from backend.market_data.domain import Bar, SeriesKey
from tests.support.bars import make_bars
from tests.support.bars import store as store_bars
from tests.support.cache_api import api_client
from tests.support.gateway import FIXED_NOW
from tests.support.migrations import migrate_to_head
from tests.support.sql_work import statements_of, work_on_bars

CACHE = "/api/market-data/cache"
START = datetime(2025, 6, 2, 13, 30, tzinfo=UTC)


def seed(container, symbol: str, count: int, exchange: str = "NASDAQ", data_type: str = "1m"):
    bars = BarColumns.from_bars(
        Bar(START + timedelta(minutes=i), 1.0, 2.0, 0.5, 1.5, float(i), None, None, True)
        for i in range(count)
    )
    store_bars(
        container.market_data_repository(),
        SeriesKey(symbol, exchange, data_type),
        bars,
        FIXED_NOW,
        ttl=timedelta(0),
    )
    return bars.timestamps()


def stamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def walk(client, symbol: str, **params) -> list[dict]:
    pages = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"{CACHE}/{symbol}", params=query)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "paging does not end"


def field_errors(response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {error["field"]: error["message"] for error in response.json()["detail"]}


@pytest.fixture
def migrated_sqlite_url(sqlite_url) -> str:
    migrate_to_head(sqlite_url)
    return sqlite_url


@pytest.fixture
def cached(migrated_database_url):
    """53 one-minute NVDA bars on NASDAQ, 12 IBM bars on NYSE."""
    with api_client(migrated_database_url) as (client, container):
        nvda = seed(container, "NVDA", 53)
        seed(container, "IBM", 12, exchange="NYSE")
        yield client, nvda


def test_paging_yields_every_bar_once_in_time_order(cached):
    client, stamps = cached
    pages = walk(client, "NVDA", data_type="1m", limit=10)
    assert [page["count"] for page in pages] == [10, 10, 10, 10, 10, 3]
    assert {page["total"] for page in pages} == {53}
    walked = [bar["timestamp"] for page in pages for bar in page["bars"]]
    assert walked == [stamp(value) for value in stamps]
    for page in pages:
        assert (page["first"], page["last"]) == (
            page["bars"][0]["timestamp"],
            page["bars"][-1]["timestamp"],
        )
    # An exact multiple of the page size ends without an empty page.
    assert [page["count"] for page in walk(client, "NVDA", data_type="1m", limit=53)] == [53]


def test_paging_within_a_date_range_counts_the_range(cached):
    client, stamps = cached
    params = {"data_type": "1m", "date_from": stamp(stamps[5]), "date_to": stamp(stamps[29])}
    pages = walk(client, "NVDA", limit=7, **params)
    walked = [bar["timestamp"] for page in pages for bar in page["bars"]]
    assert walked == [stamp(value) for value in stamps[5:30]]
    assert {page["total"] for page in pages} == {25}


def test_a_cursor_keeps_the_exchange_the_first_page_found(cached):
    client, _ = cached
    # No exchange given: IBM is not on CACHE_EXCHANGE (NASDAQ) but is found on NYSE.
    pages = walk(client, "IBM", data_type="1m", limit=5)
    assert {page["exchange"] for page in pages} == {"NYSE"}
    assert sum(page["count"] for page in pages) == 12


def test_the_default_page_is_bounded(migrated_sqlite_url):
    with api_client(migrated_sqlite_url) as (client, container):
        seed(container, "NVDA", 10_005)
        first = client.get(f"{CACHE}/NVDA", params={"data_type": "1m"}).json()
        assert (first["count"], len(first["bars"]), first["total"]) == (10_000, 10_000, 10_005)
        rest = client.get(
            f"{CACHE}/NVDA", params={"data_type": "1m", "cursor": first["next_cursor"]}
        ).json()
        assert (rest["count"], rest["next_cursor"]) == (5, None)


def _forged(parts) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"limit": 50_001}, "query.limit", "less than or equal to 50000"),
        ({"limit": 0}, "query.limit", "greater than or equal to 1"),
        ({"cursor": "not-a-cursor"}, "query.cursor", "next_cursor"),
        ({"cursor": ""}, "query.cursor", "next_cursor"),
        ({"cursor": "x" * 5000}, "query.cursor", "next_cursor"),
        ({"cursor": _forged(["NVDA", "NASDAQ", "1m", "yesterday"])}, "query.cursor", "next_cursor"),
        (
            {"cursor": _forged(["NVDA", "NASDAQ", "1m", "2025-06-02T13:30:00"])},
            "query.cursor",
            "next_cursor",
        ),
        ({"cursor": _forged({"a": 1})}, "query.cursor", "next_cursor"),
        (
            {"cursor": _forged(["NVDA", "NASDAQ", "1m", "9999-12-31T23:59:59.999999+00:00"])},
            "query.cursor",
            "next_cursor",
        ),
        (
            {"cursor": _forged(["NVDA", "NASDAQ", "1m", "9999-12-31T23:00:00-05:00"])},
            "query.cursor",
            "next_cursor",
        ),
        ({"cursor": _forged(["NVDA", "NASDAQ", "1w", 3])}, "query.cursor", "next_cursor"),
    ],
)
def test_bad_limits_and_cursors_are_refused_naming_the_field(
    migrated_sqlite_url, params, field, reason
):
    with api_client(migrated_sqlite_url) as (client, container):
        seed(container, "NVDA", 3)
        errors = field_errors(client.get(f"{CACHE}/NVDA", params={"data_type": "1m", **params}))
        assert field in errors
        assert reason in errors[field]


def test_a_cursor_of_another_series_is_refused(cached):
    client, _ = cached
    cursor = client.get(f"{CACHE}/NVDA", params={"data_type": "1m", "limit": 2}).json()[
        "next_cursor"
    ]
    for params in (
        {"data_type": "1d"},
        {"data_type": "1m", "exchange": "NYSE"},
        {"data_type": "1m", "what_to_show": "MIDPOINT"},
        {"data_type": "1m", "use_rth": "false"},
    ):
        errors = field_errors(client.get(f"{CACHE}/NVDA", params={**params, "cursor": cursor}))
        assert "belongs to NVDA NASDAQ 1m," in errors["query.cursor"]
    errors = field_errors(client.get(f"{CACHE}/IBM", params={"data_type": "1m", "cursor": cursor}))
    assert "query.cursor" in errors


def test_the_openapi_description_documents_the_page_size(cached):
    client, _ = cached
    route = client.get("/openapi.json").json()["paths"][f"{CACHE}/{{symbol}}"]["get"]
    limit = next(p for p in route["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["default"], limit["schema"]["maximum"]) == (10_000, 50_000)
    assert "cursor" in {p["name"] for p in route["parameters"]}
    assert "next_cursor" in route["description"]


def test_a_page_reads_no_more_of_the_cache_when_the_series_grows(migrated_database_url):
    # On PostgreSQL the page's bars are read through psycopg directly, which this does not see;
    # their LIMIT bounds them. Seen: the summary, the total and the expiry check.
    series = SeriesKey("NVDA", "NASDAQ", "1m")
    with api_client(migrated_database_url) as (client, container):
        repository = container.market_data_repository()

        def store(first: datetime, count: int, is_final=True, step=timedelta(minutes=1)) -> None:
            bars = make_bars(first, count, step, is_final=is_final, volume=10.0)
            store_bars(repository, series, bars, FIXED_NOW, ttl=-timedelta(minutes=1))

        store(START, 400)
        store(START + timedelta(minutes=400), 3, is_final=False)

        def page() -> tuple[dict, int]:
            with statements_of(container) as statements:
                body = client.get(f"{CACHE}/NVDA", params={"data_type": "1m", "limit": 10}).json()
            return body, work_on_bars(migrated_database_url, statements)

        small, small_work = page()
        # A bar a day for 400 days after them: 400 more segments, enough rows that the
        # planners use the indexes as they do on a real cache.
        store(START + timedelta(days=2), 400, step=timedelta(days=1))
        large, large_work = page()

    assert (small["total"], small["count"], small["expired"]) == (403, 10, True)
    assert (large["total"], large["count"], large["expired"]) == (803, 10, True)
    assert large["bars"] == small["bars"]
    assert large_work == small_work, (small_work, large_work)
