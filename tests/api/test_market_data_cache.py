"""List, inspect, clear and statistics endpoints on real databases; validation, auth and CORS."""

from datetime import timedelta

import pytest

from backend.market_data.domain import SeriesKey
from tests.support.cache_api import api_client, seed_daily_bars
from tests.support.gateway import FIXED_NOW
from tests.support.migrations import migrate_to_head

CACHE = "/api/market-data/cache"
NOVEMBER = [3, 4, 5, 6, 7, 10, 11, 12, 13, 14]


@pytest.fixture
def migrated_sqlite_url(sqlite_url) -> str:
    migrate_to_head(sqlite_url)
    return sqlite_url


@pytest.fixture
def sqlite_client(migrated_sqlite_url):
    with api_client(migrated_sqlite_url) as (client, container):
        yield client, container


@pytest.fixture
def seeded(migrated_database_url):
    """NVDA and TSLA daily bars on NASDAQ, IBM on NYSE."""
    with api_client(migrated_database_url) as (client, container):
        seed_daily_bars(container, "NVDA", NOVEMBER)
        seed_daily_bars(container, "TSLA", NOVEMBER[:4])
        seed_daily_bars(container, "IBM", [3, 4], exchange="NYSE")
        yield client, container


def field_errors(response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    return {error["field"]: error["message"] for error in body["detail"]}


# -- list -------------------------------------------------------------------------------------


def test_list_returns_every_field_and_the_total(seeded):
    client, _ = seeded
    body = client.get(CACHE).json()
    assert body["count"] == 16
    first = body["data"][0]
    assert set(first) == {
        "id",
        "symbol",
        "exchange",
        "data_type",
        "timestamp",
        "ohlcv_data",
        "indicators",
        "metadata",
        "fetched_at",
        "expires_at",
        "expired",
        "sec_type",
        "currency",
        "expiry",
        "what_to_show",
        "use_rth",
        "con_id",
    }
    assert (first["symbol"], first["exchange"], first["data_type"]) == ("IBM", "NYSE", "1d")
    # Bars cached as a stock's TRADES in regular hours say so.
    assert (first["sec_type"], first["currency"], first["expiry"]) == ("STK", "USD", None)
    assert (first["what_to_show"], first["use_rth"]) == ("TRADES", True)
    assert first["timestamp"] == "2025-11-03T00:00:00Z"
    assert first["ohlcv_data"]["volume"] == 1003.0
    # The bar's provenance: the fetch it came from, whether its session had closed, and the
    # price basis its segment is on (as of its fetch: no split healed since).
    assert first["metadata"] == {
        "source": "ibkr",
        "what_to_show": "TRADES",
        "use_rth": True,
        "request": {},
        "is_final": True,
        "price_basis_at": first["fetched_at"].replace("Z", "+00:00"),
    }
    assert first["ohlcv_data"] == {
        "open": 10.0,
        "high": 12.0,
        "low": 9.0,
        "close": 11.0,
        "volume": 1003.0,
        "wap": None,
        "bar_count": None,
    }
    assert first["expired"] is False


def test_list_filters_by_symbol_data_type_and_dates(seeded):
    client, _ = seeded
    nvda = client.get(CACHE, params={"symbol": "nvda", "data_type": "1d"}).json()
    assert nvda["count"] == 10
    assert {bar["symbol"] for bar in nvda["data"]} == {"NVDA"}

    # A date alone for date_to covers that whole day; naive datetimes are UTC.
    window = client.get(
        CACHE,
        params={"symbol": "NVDA", "date_from": "2025-11-05T00:00:00", "date_to": "2025-11-07"},
    ).json()
    assert [bar["timestamp"][:10] for bar in window["data"]] == [
        "2025-11-05",
        "2025-11-06",
        "2025-11-07",
    ]

    # Offsets are honoured: 19:00 on the 4th in New York is midnight of the 5th in UTC.
    def count_up_to(date_to: str) -> int:
        return client.get(CACHE, params={"symbol": "NVDA", "date_to": date_to}).json()["count"]

    assert count_up_to("2025-11-04T18:59:59-05:00") == 2
    assert count_up_to("2025-11-04T19:00:00-05:00") == 3

    assert client.get(CACHE, params={"data_type": "1h"}).json() == {"data": [], "count": 0}
    assert client.get(CACHE, params={"exchange": "nyse"}).json()["count"] == 2


def test_list_pages_with_limit_and_offset(seeded):
    client, _ = seeded
    pages = [
        client.get(CACHE, params={"symbol": "NVDA", "limit": 4, "offset": offset}).json()
        for offset in (0, 4, 8)
    ]
    assert [page["count"] for page in pages] == [10, 10, 10]
    assert [len(page["data"]) for page in pages] == [4, 4, 2]
    stamps = [bar["timestamp"] for page in pages for bar in page["data"]]
    assert stamps == sorted(set(stamps)) and len(stamps) == 10


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"limit": 0}, "query.limit", "greater than or equal to 1"),
        ({"limit": 5001}, "query.limit", "less than or equal to 5000"),
        ({"offset": -1}, "query.offset", "greater than or equal to 0"),
        ({"data_type": "2d"}, "query.data_type", "'1m'"),
        ({"symbol": "1NVDA"}, "query.symbol", "a letter first"),
        ({"symbol": " nvda"}, "query.symbol", "no spaces"),
        ({"date_from": "2025-13-01"}, "query.date_from", ""),
        ({"date_from": "2025-11-10", "date_to": "2025-11-01"}, "query.date_to", "date_from"),
        ({"date_to": "9999-12-31T23:59:59-05:00"}, "query.date_to", "out of range"),
    ],
)
def test_list_rejects_bad_input_naming_the_field(sqlite_client, params, field, reason):
    client, _ = sqlite_client
    errors = field_errors(client.get(CACHE, params=params))
    assert field in errors
    assert reason in errors[field]


def test_expired_means_not_final_and_past_expiry(migrated_database_url):
    with api_client(migrated_database_url) as (client, container):
        old = FIXED_NOW - timedelta(days=3)
        seed_daily_bars(container, "NVDA", [3], is_final=True, fetched_at=old)
        seed_daily_bars(container, "NVDA", [4], is_final=False, fetched_at=old)
        seed_daily_bars(container, "NVDA", [5], is_final=False, fetched_at=FIXED_NOW)
        listed = client.get(CACHE, params={"symbol": "NVDA"}).json()["data"]
        assert [bar["expired"] for bar in listed] == [False, True, False]
        assert client.get(f"{CACHE}/NVDA").json()["expired"] is True
        assert (
            client.get(f"{CACHE}/NVDA", params={"date_from": "2025-11-05"}).json()["expired"]
            is False
        )


# -- one symbol -------------------------------------------------------------------------------


def test_symbol_series_in_time_order(seeded):
    client, _ = seeded
    response = client.get(
        f"{CACHE}/nvda", params={"date_from": "2025-11-06", "date_to": "2025-11-11"}
    )
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("symbol", "exchange", "data_type", "count", "expired")} == {
        "symbol": "NVDA",
        "exchange": "NASDAQ",
        "data_type": "1d",
        "count": 4,
        "expired": False,
    }
    assert (body["first"], body["last"]) == ("2025-11-06T00:00:00Z", "2025-11-11T00:00:00Z")
    assert body["fetched_from"] == body["fetched_to"] == "2025-12-01T22:00:00Z"
    # One page holds the whole range: no next page.
    assert (body["total"], body["next_cursor"]) == (4, None)
    assert [bar["timestamp"][:10] for bar in body["bars"]] == [
        "2025-11-06",
        "2025-11-07",
        "2025-11-10",
        "2025-11-11",
    ]
    assert body["bars"][0] == {
        "timestamp": "2025-11-06T00:00:00Z",
        "open": 10.0,
        "high": 12.0,
        "low": 9.0,
        "close": 11.0,
        "volume": 1006.0,
        "wap": None,
        "bar_count": None,
        "is_final": True,
    }


def test_symbol_found_on_another_exchange_when_none_is_given(seeded):
    client, _ = seeded
    assert client.get(f"{CACHE}/IBM").json()["exchange"] == "NYSE"
    assert client.get(f"{CACHE}/IBM", params={"exchange": "NASDAQ"}).status_code == 404


def test_symbol_not_cached_is_404_with_the_populate_command(seeded):
    client, _ = seeded
    response = client.get(f"{CACHE}/AAPL")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "not_cached"
    command = "make populate-cache SYMBOLS=AAPL EXCHANGE=NASDAQ DATA_TYPES=1d DAYS_BACK=365"
    assert command in body["detail"]
    assert body["populate_command"] == command

    # Cached as 1d only: another bar size or a range outside the bars is not cached either.
    hourly = client.get(f"{CACHE}/NVDA", params={"data_type": "1h"}).json()
    assert hourly["code"] == "not_cached" and "DATA_TYPES=1h DAYS_BACK=30" in hourly["detail"]
    later = client.get(f"{CACHE}/NVDA", params={"date_from": "2025-11-20"}).json()
    assert later["code"] == "not_cached" and "DAYS_BACK=12" in later["detail"]


def test_symbol_rejects_bad_input(sqlite_client):
    client, _ = sqlite_client
    assert "path.symbol" in field_errors(client.get(f"{CACHE}/TOOLONGSYMBOL1"))
    assert "query.data_type" in field_errors(
        client.get(f"{CACHE}/NVDA", params={"data_type": "7m"})
    )
    assert "query.date_to" in field_errors(
        client.get(f"{CACHE}/NVDA", params={"date_from": "2025-11-05", "date_to": "2025-11-04"})
    )


# -- delete -----------------------------------------------------------------------------------


def test_delete_without_filter_needs_all_true(seeded):
    client, _ = seeded
    errors = field_errors(client.delete(CACHE))
    assert "all=true" in errors["query.all"]
    assert client.get(CACHE).json()["count"] == 16

    assert client.delete(CACHE, params={"all": "true"}).json() == {"deleted": 16}
    assert client.get(CACHE).json()["count"] == 0


def test_delete_by_filter_removes_only_matching_bars(seeded):
    client, _ = seeded
    response = client.delete(
        CACHE, params={"symbol": "NVDA", "date_from": "2025-11-10", "date_to": "2025-11-12"}
    )
    assert response.json() == {"deleted": 3}
    assert client.get(CACHE, params={"symbol": "NVDA"}).json()["count"] == 7
    assert client.delete(CACHE, params={"symbol": "TSLA"}).json() == {"deleted": 4}
    assert client.get(f"{CACHE}/TSLA").status_code == 404
    assert client.get(CACHE).json()["count"] == 9


# -- statistics -------------------------------------------------------------------------------


def test_stats_merge_bars_and_lookups_per_series(seeded):
    client, container = seeded
    lookups = container.lookup_counts()
    nvda = SeriesKey("NVDA", "NASDAQ", "1d")
    for outcome in ("hit", "hit", "hit", "miss", "stale"):
        lookups.record(nvda, outcome, FIXED_NOW)
    # Lookups of a series that holds no bars still count.
    lookups.record(SeriesKey("AAPL", "NASDAQ", "1h"), "partial", FIXED_NOW)

    body = client.get(f"{CACHE}/stats").json()
    assert (body["hits"], body["misses"], body["partial_hits"], body["stale_serves"]) == (
        3,
        1,
        1,
        1,
    )
    assert body["hit_rate"] == pytest.approx(4 / 6)
    series = {(s["symbol"], s["data_type"]): s for s in body["series"]}
    assert list(series) == [("AAPL", "1h"), ("IBM", "1d"), ("NVDA", "1d"), ("TSLA", "1d")]

    assert series["NVDA", "1d"] == {
        "symbol": "NVDA",
        "exchange": "NASDAQ",
        "data_type": "1d",
        "sec_type": "STK",
        "currency": "USD",
        "expiry": None,
        "what_to_show": "TRADES",
        "use_rth": True,
        "con_id": None,
        "bar_count": 10,
        "first": "2025-11-03T00:00:00Z",
        "last": "2025-11-14T00:00:00Z",
        "last_updated": "2025-12-01T22:00:00Z",
        "expired": False,
        "expired_count": 0,
        "hits": 3,
        "misses": 1,
        "partial_hits": 0,
        "stale_serves": 1,
        "hit_rate": 0.6,
        "last_hit_at": "2025-12-01T22:00:00Z",
        "last_refresh_at": "2025-12-01T22:00:00Z",
    }
    aapl = series["AAPL", "1h"]
    assert (aapl["bar_count"], aapl["first"], aapl["hit_rate"]) == (0, None, 1.0)
    tsla = series["TSLA", "1d"]
    assert (tsla["bar_count"], tsla["hits"], tsla["hit_rate"]) == (4, 0, None)


def test_stats_of_an_empty_cache(migrated_database_url):
    with api_client(migrated_database_url) as (client, _):
        assert client.get(f"{CACHE}/stats").json() == {
            "hits": 0,
            "misses": 0,
            "partial_hits": 0,
            "stale_serves": 0,
            "hit_rate": None,
            "series": [],
        }


def test_stats_count_expired_bars(migrated_sqlite_url):
    with api_client(migrated_sqlite_url) as (client, container):
        seed_daily_bars(
            container, "NVDA", [3, 4], is_final=False, fetched_at=FIXED_NOW - timedelta(days=2)
        )
        seed_daily_bars(container, "NVDA", [5], is_final=False)
        nvda = client.get(f"{CACHE}/stats").json()["series"][0]
        assert (nvda["expired"], nvda["expired_count"], nvda["bar_count"]) == (True, 2, 3)


# -- guarding ---------------------------------------------------------------------------------


def test_changing_endpoints_need_the_token_when_one_is_set(migrated_sqlite_url):
    with api_client(migrated_sqlite_url, API_TOKEN="s3cret") as (client, container):
        seed_daily_bars(container, "NVDA", [3, 4])
        refresh = {"symbols": ["NVDA"], "days_back": 5}

        missing = client.delete(CACHE, params={"all": "true"})
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["code"] == "unauthorized"
        assert client.post(f"{CACHE}/refresh", json=refresh).status_code == 401

        wrong = {"Authorization": "Bearer s3cre"}
        forbidden = client.delete(CACHE, params={"all": "true"}, headers=wrong)
        assert (forbidden.status_code, forbidden.json()["code"]) == (403, "forbidden")
        assert client.post(f"{CACHE}/refresh", json=refresh, headers=wrong).status_code == 403
        assert client.get(CACHE).json()["count"] == 2

        right = {"Authorization": "Bearer s3cret"}
        # Reads stay open; the refresh is accepted (the gateway is down, so it fails per symbol).
        assert client.get(f"{CACHE}/stats").status_code == 200
        accepted = client.post(
            f"{CACHE}/refresh", params={"wait": "true"}, json=refresh, headers=right
        )
        assert accepted.status_code == 200
        assert accepted.json()["results"][0]["error"]["code"] == "gateway_unavailable"
        deleted = client.delete(CACHE, params={"all": "true"}, headers=right)
        assert deleted.json() == {"deleted": 2}


def test_without_a_token_setting_changes_need_no_header(migrated_sqlite_url):
    with api_client(migrated_sqlite_url) as (client, container):
        seed_daily_bars(container, "NVDA", [3])
        assert client.delete(CACHE, params={"all": "true"}).json() == {"deleted": 1}


def test_cors_allows_only_configured_origins(migrated_sqlite_url):
    with api_client(migrated_sqlite_url, CORS_ORIGINS="http://ui.example:5173") as (client, _):
        allowed = client.get(f"{CACHE}/stats", headers={"Origin": "http://ui.example:5173"})
        assert allowed.headers["access-control-allow-origin"] == "http://ui.example:5173"
        other = client.get(f"{CACHE}/stats", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers

        preflight = {
            "Origin": "http://ui.example:5173",
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization",
        }
        ok = client.options(CACHE, headers=preflight)
        assert ok.status_code == 200
        assert "DELETE" in ok.headers["access-control-allow-methods"]
        refused = client.options(CACHE, headers={**preflight, "Origin": "http://evil.example"})
        assert refused.status_code == 400
