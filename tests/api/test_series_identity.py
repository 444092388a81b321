"""What a series is, through the API: secType, currency, expiry, whatToShow and hours accepted by
every route that names a series, shown on every row, refused with 422 naming the field when IBKR
has no such series, and kept apart in the cache (real databases; refreshes against the simulator).
"""

from datetime import UTC, datetime, timedelta

import pytest

from backend.market_data.domain import SeriesKey
from backend.storage.market_data_repository import Fetch
from tests.support.bars import make_bars
from tests.support.cache_api import api_client
from tests.support.gateway import FIXED_NOW
from tests.support.migrations import migrate_to_head

CACHE = "/api/market-data/cache"
REFRESH = f"{CACHE}/refresh"
MONDAY_OPEN = datetime(2025, 11, 3, 14, 30, tzinfo=UTC)

NVDA_TRADES = SeriesKey("NVDA", "NASDAQ", "1m")
NVDA_MIDPOINT = SeriesKey("NVDA", "NASDAQ", "1m", what_to_show="MIDPOINT")
NVDA_ALL_HOURS = SeriesKey("NVDA", "NASDAQ", "1m", use_rth=False)
ES_MARCH = SeriesKey("ES", "CME", "1h", sec_type="FUT", expiry="202603", use_rth=False)
EUR_USD = SeriesKey("EUR", "IDEALPRO", "1h", sec_type="CASH", what_to_show="MIDPOINT")
IDENTITY = ("sec_type", "currency", "expiry", "what_to_show", "use_rth")


def seed(container, series: SeriesKey, count: int, close: float, con_id: int | None = None):
    """`count` bars of the series, as if fetched from IBKR at FIXED_NOW."""
    step = timedelta(hours=1) if series.data_type == "1h" else timedelta(minutes=1)
    bars = make_bars(MONDAY_OPEN, count, step, close=close)
    fetch = Fetch(
        source="ibkr",
        what_to_show=series.what_to_show,
        use_rth=series.use_rth,
        request={},
        fetched_at=FIXED_NOW,
        expires_at=FIXED_NOW + timedelta(hours=24),
        con_id=con_id,
    )
    container.market_data_repository().store_chunk(series, bars, fetch)


def identity(row: dict) -> tuple:
    return tuple(row[name] for name in IDENTITY)


def field_errors(response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    return {error["field"]: error["message"] for error in body["detail"]}


@pytest.fixture
def migrated_sqlite_url(sqlite_url) -> str:
    migrate_to_head(sqlite_url)
    return sqlite_url


@pytest.fixture
def three_nvda_series(migrated_database_url):
    """NVDA 1-minute bars three ways: TRADES and MIDPOINT in regular hours, TRADES all hours."""
    with api_client(migrated_database_url) as (client, container):
        seed(container, NVDA_TRADES, 3, close=1.5, con_id=4815747)
        seed(container, NVDA_MIDPOINT, 2, close=1.25, con_id=4815747)
        seed(container, NVDA_ALL_HOURS, 4, close=1.75, con_id=4815747)
        yield client, container


@pytest.fixture
def other_asset_classes(migrated_database_url):
    """A future's all-hours bars and an FX pair's midpoints, beside a stock."""
    with api_client(migrated_database_url) as (client, container):
        seed(container, NVDA_TRADES, 3, close=1.5)
        seed(container, ES_MARCH, 5, close=6000.25, con_id=750000314)
        seed(container, EUR_USD, 4, close=1.16, con_id=12087792)
        yield client, container


# -- series differing only in whatToShow or hours -------------------------------------------


def test_series_differing_in_what_to_show_or_hours_are_read_apart(three_nvda_series):
    client, _ = three_nvda_series
    plain = client.get(f"{CACHE}/NVDA", params={"data_type": "1m"}).json()
    midpoint = client.get(
        f"{CACHE}/NVDA", params={"data_type": "1m", "what_to_show": "MIDPOINT"}
    ).json()
    all_hours = client.get(f"{CACHE}/NVDA", params={"data_type": "1m", "use_rth": "false"}).json()

    # Left out, the series is the stock's TRADES in regular hours.
    assert (plain["count"], identity(plain)) == (3, ("STK", "USD", None, "TRADES", True))
    assert (midpoint["count"], identity(midpoint)) == (2, ("STK", "USD", None, "MIDPOINT", True))
    assert (all_hours["count"], identity(all_hours)) == (4, ("STK", "USD", None, "TRADES", False))
    assert {bar["close"] for bar in plain["bars"]} == {1.5}
    assert {bar["close"] for bar in midpoint["bars"]} == {1.25}
    assert {bar["close"] for bar in all_hours["bars"]} == {1.75}
    assert plain["con_id"] == midpoint["con_id"] == 4815747


def test_the_list_shows_each_series_and_filters_by_what_to_show_and_hours(three_nvda_series):
    client, _ = three_nvda_series
    listed = client.get(CACHE).json()
    assert listed["count"] == 9
    assert {identity(row) for row in listed["data"]} == {
        ("STK", "USD", None, "TRADES", True),
        ("STK", "USD", None, "MIDPOINT", True),
        ("STK", "USD", None, "TRADES", False),
    }
    assert {row["con_id"] for row in listed["data"]} == {4815747}

    midpoint = client.get(CACHE, params={"what_to_show": "MIDPOINT"}).json()
    assert midpoint["count"] == 2
    assert {row["what_to_show"] for row in midpoint["data"]} == {"MIDPOINT"}
    all_hours = client.get(CACHE, params={"use_rth": "false"}).json()
    assert all_hours["count"] == 4
    assert {row["use_rth"] for row in all_hours["data"]} == {False}
    regular_trades = client.get(CACHE, params={"use_rth": "true", "what_to_show": "TRADES"})
    assert regular_trades.json()["count"] == 3


def test_stats_have_a_row_per_series(three_nvda_series):
    client, _ = three_nvda_series
    rows = client.get(f"{CACHE}/stats").json()["series"]
    assert sorted((identity(row), row["bar_count"]) for row in rows) == [
        (("STK", "USD", None, "MIDPOINT", True), 2),
        (("STK", "USD", None, "TRADES", False), 4),
        (("STK", "USD", None, "TRADES", True), 3),
    ]
    assert {row["con_id"] for row in rows} == {4815747}


def test_delete_by_what_to_show_leaves_the_other_series(three_nvda_series):
    client, _ = three_nvda_series
    deleted = client.delete(CACHE, params={"symbol": "NVDA", "what_to_show": "MIDPOINT"})
    assert deleted.json() == {"deleted": 2}
    assert client.delete(CACHE, params={"use_rth": "false"}).json() == {"deleted": 4}
    assert client.get(CACHE).json()["count"] == 3
    missing = client.get(f"{CACHE}/NVDA", params={"data_type": "1m", "what_to_show": "MIDPOINT"})
    assert missing.status_code == 404
    # A filter that matches every bar left still needs all=true.
    assert "query.all" in field_errors(client.delete(CACHE, params={"what_to_show": "TRADES"}))


def test_a_cursor_belongs_to_its_series_whatever_it_shows(three_nvda_series):
    client, _ = three_nvda_series
    params = {"data_type": "1m", "use_rth": "false", "limit": 3}
    first = client.get(f"{CACHE}/NVDA", params=params).json()
    rest = client.get(f"{CACHE}/NVDA", params={**params, "cursor": first["next_cursor"]}).json()
    assert (first["count"], rest["count"], rest["next_cursor"]) == (3, 1, None)
    assert identity(rest) == ("STK", "USD", None, "TRADES", False)

    errors = field_errors(
        client.get(f"{CACHE}/NVDA", params={"data_type": "1m", "cursor": first["next_cursor"]})
    )
    assert "belongs to NVDA NASDAQ 1m all hours," in errors["query.cursor"]


# -- futures and FX -------------------------------------------------------------------------


def test_a_future_is_read_by_its_expiry_and_hours(other_asset_classes):
    client, _ = other_asset_classes
    params = {"sec_type": "FUT", "expiry": "202603", "data_type": "1h", "use_rth": "false"}
    future = client.get(f"{CACHE}/ES", params=params).json()
    assert (future["symbol"], future["exchange"], future["count"]) == ("ES", "CME", 5)
    assert identity(future) == ("FUT", "USD", "202603", "TRADES", False)
    assert future["con_id"] == 750000314
    # Its regular hours, and another expiry, are other series: not cached.
    for other in ({"use_rth": "true"}, {"expiry": "202606"}):
        response = client.get(f"{CACHE}/ES", params={**params, **other})
        assert response.status_code == 404
        assert response.json()["code"] == "not_cached"
    assert "SYMBOLS=ES:FUT:202606" in response.json()["populate_command"]


@pytest.mark.parametrize(
    ("symbol", "extra"),
    [("EUR.USD", {}), ("EURUSD", {}), ("EUR", {"currency": "USD"}), ("eur.usd", {})],
)
def test_an_fx_pair_is_named_as_a_pair_or_by_its_base_and_currency(
    other_asset_classes, symbol, extra
):
    client, _ = other_asset_classes
    pair = client.get(
        f"{CACHE}/{symbol}", params={"sec_type": "CASH", "data_type": "1h", **extra}
    ).json()
    assert (pair["symbol"], pair["exchange"], pair["count"]) == ("EUR", "IDEALPRO", 4)
    # An FX pair is read as MIDPOINT unless told otherwise.
    assert identity(pair) == ("CASH", "USD", None, "MIDPOINT", True)


def test_the_list_filters_by_sec_type_currency_and_expiry(other_asset_classes):
    client, _ = other_asset_classes
    fx = client.get(CACHE, params={"sec_type": "CASH", "currency": "usd"}).json()
    assert fx["count"] == 4
    assert {(row["symbol"], row["exchange"], row["sec_type"]) for row in fx["data"]} == {
        ("EUR", "IDEALPRO", "CASH")
    }
    future = client.get(CACHE, params={"expiry": "202603"}).json()
    assert future["count"] == 5
    assert {(row["symbol"], row["expiry"], row["use_rth"]) for row in future["data"]} == {
        ("ES", "202603", False)
    }
    assert client.get(CACHE, params={"sec_type": "STK"}).json()["count"] == 3
    assert client.get(CACHE, params={"currency": "JPY"}).json()["count"] == 0


def test_a_future_downloads_under_a_name_that_says_which_series(other_asset_classes):
    client, _ = other_asset_classes
    params = {"sec_type": "FUT", "expiry": "202603", "data_type": "1h", "use_rth": "false"}
    response = client.get(f"{CACHE}/ES", params={**params, "format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        'attachment; filename="ES_202603_FUT_CME_1h_all-hours.csv"'
    )
    assert len(response.text.strip().splitlines()) == 1 + 5


# -- refusals -------------------------------------------------------------------------------

REFUSED = [
    # (identity given, field, what the message says)
    (
        {"symbol": "EUR.USD", "sec_type": "CASH", "what_to_show": "TRADES"},
        "what_to_show",
        "IBKR has no TRADES series for CASH; use one of MIDPOINT, BID, ASK, BID_ASK",
    ),
    (
        {"symbol": "BTC", "sec_type": "CRYPTO", "what_to_show": "TRADES"},
        "what_to_show",
        "use one of AGGTRADES, MIDPOINT",
    ),
    (
        {"symbol": "ES", "sec_type": "FUT"},
        "expiry",
        "a future needs its expiry as YYYYMM or YYYYMMDD",
    ),
    (
        {"symbol": "NVDA", "expiry": "202503"},
        "expiry",
        "only sec_type FUT takes an expiry; drop it for STK",
    ),
    (
        {"symbol": "NVDA", "data_type": "1w", "what_to_show": "ADJUSTED_LAST"},
        "what_to_show",
        "IBKR serves ADJUSTED_LAST in bars of a day or less",
    ),
    (
        {"symbol": "SPX", "sec_type": "IND", "what_to_show": "MIDPOINT"},
        "what_to_show",
        "IBKR has no MIDPOINT series for IND; use one of TRADES",
    ),
    ({"symbol": "NVDA", "sec_type": "BOND"}, "sec_type", "'STK', 'IND', 'FUT'"),
    ({"symbol": "NVDA", "what_to_show": "LAST"}, "what_to_show", "'TRADES', 'MIDPOINT'"),
    ({"symbol": "NVDA", "currency": "US"}, "currency", "a 3-letter ISO code such as USD"),
    ({"symbol": "ES", "sec_type": "FUT", "expiry": "2025-03"}, "expiry", "YYYYMM"),
    # Other scripts' digits are not an expiry.
    ({"symbol": "ES", "sec_type": "FUT", "expiry": "２０２５０３"}, "expiry", "YYYYMM"),
]


@pytest.mark.parametrize(("given", "field", "message"), REFUSED)
def test_the_series_route_refuses_a_series_ibkr_does_not_have(
    migrated_sqlite_url, given, field, message
):
    symbol, params = given["symbol"], {k: v for k, v in given.items() if k != "symbol"}
    with api_client(migrated_sqlite_url) as (client, _):
        errors = field_errors(client.get(f"{CACHE}/{symbol}", params=params))
    assert message in errors[f"query.{field}"]


@pytest.mark.parametrize(("given", "field", "message"), REFUSED)
def test_a_refresh_of_a_series_ibkr_does_not_have_is_refused_before_any_request(
    migrated_sqlite_url, sim, given, field, message
):
    body = {"symbols": [given["symbol"]], **{k: v for k, v in given.items() if k != "symbol"}}
    before = sim.stats()["historical_requests"]
    with api_client(migrated_sqlite_url, sim.port) as (client, _):
        errors = field_errors(client.post(REFRESH, json=body))
    assert message in errors[field]
    assert sim.stats()["historical_requests"] == before


def test_an_fx_symbol_that_is_no_pair_names_the_symbol(migrated_sqlite_url):
    with api_client(migrated_sqlite_url) as (client, _):
        errors = field_errors(client.get(f"{CACHE}/EUR.US", params={"sec_type": "CASH"}))
        assert "an FX pair's symbol is its base currency" in errors["path.symbol"]
        body = {"symbols": ["EURUSD", "EUR.US"], "sec_type": "CASH"}
        errors = field_errors(client.post(REFRESH, json=body))
        assert "an FX pair's symbol is its base currency" in errors["symbols.1"]


def test_the_filters_refuse_values_that_name_no_series(migrated_sqlite_url):
    with api_client(migrated_sqlite_url) as (client, _):
        for params, field in (
            ({"sec_type": "stock"}, "query.sec_type"),
            ({"what_to_show": "trades"}, "query.what_to_show"),
            ({"currency": "DOLLAR"}, "query.currency"),
            ({"expiry": "March"}, "query.expiry"),
            ({"use_rth": "sometimes"}, "query.use_rth"),
        ):
            assert field in field_errors(client.get(CACHE, params=params))
            assert field in field_errors(client.delete(CACHE, params=params))


def test_the_openapi_schema_lists_the_asset_classes_and_series(migrated_sqlite_url):
    with api_client(migrated_sqlite_url) as (client, _):
        schema = client.get("/openapi.json").json()
    parameters = {p["name"]: p for p in schema["paths"][f"{CACHE}/{{symbol}}"]["get"]["parameters"]}
    assert set(IDENTITY) <= set(parameters)
    components = schema["components"]["schemas"]
    assert components["SecType"]["enum"] == ["STK", "IND", "FUT", "CONTFUT", "CASH", "CRYPTO"]
    assert "AGGTRADES" in components["WhatToShow"]["enum"]
    assert "1mo" in components["BarSize"]["enum"] and "5s" in components["BarSize"]["enum"]
    for shape in ("CachedBarPublic", "SeriesPublic", "SeriesStatsPublic", "RefreshResultPublic"):
        assert {*IDENTITY, "con_id"} <= set(components[shape]["properties"]), shape
    refresh = components["RefreshRequest"]["properties"]
    assert {"sec_type", "currency", "expiry", "what_to_show", "use_rth"} <= set(refresh)


# -- refreshes against the simulated gateway ------------------------------------------------


def refresh_and_wait(client, **body) -> dict:
    response = client.post(REFRESH, params={"wait": "true"}, json=body)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "completed", job
    return job


def test_a_refresh_of_a_future_stores_it_under_its_own_key(migrated_database_url, sim):
    with api_client(migrated_database_url, sim.port) as (client, _):
        job = refresh_and_wait(
            client,
            symbols=["ES"],
            sec_type="FUT",
            expiry="202603",
            data_type="1h",
            what_to_show="MIDPOINT",
            use_rth=False,
            days_back=3,
        )
        request = job["request"]
        assert (request["symbols"], request["exchange"]) == (["ES"], "CME")
        assert identity(request) == ("FUT", "USD", "202603", "MIDPOINT", False)
        (result,) = job["results"]
        assert identity(result) == ("FUT", "USD", "202603", "MIDPOINT", False)
        assert result["bars_fetched"] == result["bars_cached"] > 0
        assert isinstance(result["con_id"], int)

        params = {
            "sec_type": "FUT",
            "expiry": "202603",
            "data_type": "1h",
            "what_to_show": "MIDPOINT",
            "use_rth": "false",
        }
        series = client.get(f"{CACHE}/ES", params=params).json()
        assert series["count"] == result["bars_cached"]
        assert identity(series) == ("FUT", "USD", "202603", "MIDPOINT", False)
        assert series["con_id"] == result["con_id"]
        # The overnight session: bars outside 08:30-15:00 Chicago time.
        hours = {datetime.fromisoformat(bar["timestamp"]).hour for bar in series["bars"]}
        assert hours - set(range(14, 21))
        # Its TRADES, and its regular hours, are other series the refresh did not fill.
        for other in ({"what_to_show": "TRADES"}, {"use_rth": "true"}):
            assert client.get(f"{CACHE}/ES", params={**params, **other}).status_code == 404
        stats = client.get(f"{CACHE}/stats").json()["series"]
        assert [(row["symbol"], identity(row), row["bar_count"]) for row in stats] == [
            ("ES", ("FUT", "USD", "202603", "MIDPOINT", False), result["bars_cached"])
        ]


def test_a_refresh_of_fx_pairs_stores_each_pair_as_midpoints(migrated_database_url, sim):
    with api_client(migrated_database_url, sim.port) as (client, _):
        job = refresh_and_wait(
            client, symbols=["EUR.USD", "usdjpy"], sec_type="CASH", data_type="1h", days_back=3
        )
        request = job["request"]
        assert (request["symbols"], request["exchange"]) == (["EUR.USD", "USD.JPY"], "IDEALPRO")
        # Two quote currencies: each result says its own.
        assert (request["currency"], request["what_to_show"]) == (None, "MIDPOINT")
        results = {(r["symbol"], r["currency"]): r for r in job["results"]}
        assert set(results) == {("EUR", "USD"), ("USD", "JPY")}
        for result in results.values():
            assert (result["sec_type"], result["what_to_show"]) == ("CASH", "MIDPOINT")
            assert result["bars_cached"] > 0

        eur = client.get(f"{CACHE}/EUR.USD", params={"sec_type": "CASH", "data_type": "1h"})
        jpy = client.get(f"{CACHE}/USD.JPY", params={"sec_type": "CASH", "data_type": "1h"})
        assert eur.json()["count"] == results["EUR", "USD"]["bars_cached"]
        assert jpy.json()["count"] == results["USD", "JPY"]["bars_cached"]
        # Prices of each pair's own level, not one pair's bars under two names.
        assert 0.5 < eur.json()["bars"][0]["close"] < 2 < 50 < jpy.json()["bars"][0]["close"]
        # FX trades round the clock on weekdays: more than a stock's 7 hourly bars a day.
        assert eur.json()["count"] > 3 * 7
        listed = client.get(CACHE, params={"sec_type": "CASH", "limit": 1}).json()
        assert listed["count"] == eur.json()["count"] + jpy.json()["count"]


def test_a_refresh_of_a_stock_in_two_series_keeps_them_apart(migrated_sqlite_url, sim):
    with api_client(migrated_sqlite_url, sim.port) as (client, _):
        refresh_and_wait(client, symbols=["NVDA"], data_type="1d", days_back=10)
        refresh_and_wait(
            client, symbols=["NVDA"], data_type="1d", days_back=10, what_to_show="MIDPOINT"
        )
        trades = client.get(f"{CACHE}/NVDA").json()
        midpoint = client.get(f"{CACHE}/NVDA", params={"what_to_show": "MIDPOINT"}).json()
        assert trades["count"] == midpoint["count"] > 0
        assert trades["what_to_show"] == "TRADES" and midpoint["what_to_show"] == "MIDPOINT"
        # The gateway reports -1 volume for quote bars; the cache keeps it as missing, and the
        # TRADES bars keep their real volume.
        assert all(bar["volume"] > 0 for bar in trades["bars"])
        assert all(bar["volume"] is None for bar in midpoint["bars"])
        assert [bar["timestamp"] for bar in trades["bars"]] == [
            bar["timestamp"] for bar in midpoint["bars"]
        ]
        assert client.get(CACHE).json()["count"] == 2 * trades["count"]
