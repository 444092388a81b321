"""One input rule per concept on every route: symbols, whole numbers, booleans, ISO-8601 dates,
readable JSON; and deleting every cached bar needs all=true, however the filter says it."""

import pytest

from tests.support.cache_api import api_client, seed_daily_bars
from tests.support.migrations import migrate_to_head

CACHE = "/api/market-data/cache"
REFRESH = f"{CACHE}/refresh"
EXECUTE = "/api/workflows/execute"
RUN = {"strategy": "sma_crossover", "symbols": ["NVDA"], "lookback_days": 60}


@pytest.fixture
def client(sqlite_url):
    migrate_to_head(sqlite_url)
    # DEBUG_MODE: a workflow that gets through validation reads the cache only, and fast.
    with api_client(sqlite_url, DEBUG_MODE=True) as (client, container):
        yield client


def field_errors(response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    return {error["field"]: error["message"] for error in response.json()["detail"]}


# -- symbols: the same rule on the cache routes and the workflow route -----------------------


@pytest.mark.parametrize("symbol", ["ß", " NVDA", "NVDA ", "NV DA", "ＮＶＤＡ", "9X", ""])
def test_a_bad_symbol_is_refused_alike_by_refresh_and_workflows(client, symbol):
    refresh = field_errors(client.post(REFRESH, json={"symbols": [symbol]}))
    workflow = field_errors(client.post(EXECUTE, json={**RUN, "symbols": [symbol]}))
    assert "symbols.0" in refresh
    assert "symbols.0" in workflow
    assert refresh["symbols.0"] == workflow["symbols.0"]
    assert client.get("/api/workflows/executions").json()["count"] == 0


def test_a_lower_case_symbol_is_upper_cased_everywhere(client):
    run = client.post(EXECUTE, json={**RUN, "symbols": ["nvda"]})
    assert run.status_code == 200, run.text
    assert run.json()["symbols"] == ["NVDA"]
    assert client.get(CACHE, params={"symbol": "nvda"}).status_code == 200


# -- strict types in bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"days_back": "10"}, "days_back"),
        ({"days_back": True}, "days_back"),
        ({"days_back": 2.5}, "days_back"),
        ({"force": "yes"}, "force"),
        ({"force": 1}, "force"),
        ({"force": "true"}, "force"),
        ({"exchange": 12}, "exchange"),
        ({"symbols": [1]}, "symbols.0"),
    ],
)
def test_refresh_takes_numbers_and_booleans_only_as_json_numbers_and_booleans(
    client, change, field
):
    errors = field_errors(client.post(REFRESH, json={"symbols": ["NVDA"], **change}))
    assert field in errors, errors


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lookback_days": "10"}, "lookback_days"),
        ({"lookback_days": True}, "lookback_days"),
        ({"lookback_days": 7.5}, "lookback_days"),
        ({"strategy": 5}, "strategy"),
    ],
)
def test_workflow_takes_numbers_only_as_json_numbers(client, change, field):
    errors = field_errors(client.post(EXECUTE, json={**RUN, **change}))
    assert field in errors, errors
    assert client.get("/api/workflows/executions").json()["count"] == 0


def test_a_whole_number_written_with_a_point_zero_is_a_whole_number(client):
    # JSON Schema counts 60.0 an integer; refusing it would break clients that write floats.
    assert client.post(EXECUTE, json={**RUN, "lookback_days": 60.0}).status_code == 200


# -- dates: ISO-8601 only ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["0", "-1", "1700000000", "1700000000.5", "yesterday", "11/03/2025"]
)
@pytest.mark.parametrize("route", [CACHE, f"{CACHE}/NVDA"])
@pytest.mark.parametrize("name", ["date_from", "date_to"])
def test_dates_are_iso_8601_only(client, route, name, value):
    errors = field_errors(client.get(route, params={name: value}))
    message = errors[f"query.{name}"]
    assert "ISO-8601" in message
    assert "2025-11-03" in message


def test_a_unix_time_cannot_select_what_a_delete_removes(client):
    errors = field_errors(client.delete(CACHE, params={"date_from": "0"}))
    assert "ISO-8601" in errors["query.date_from"]


@pytest.mark.parametrize(
    "value", ["2025-11-03", "2025-11-03T14:30:00", "2025-11-03T14:30:00Z", "2025-11-03 14:30+01:00"]
)
def test_iso_dates_and_datetimes_are_accepted(client, value):
    assert client.get(CACHE, params={"date_from": value}).status_code == 200


# -- unreadable JSON --------------------------------------------------------------------------


@pytest.mark.parametrize("path", [REFRESH, EXECUTE])
@pytest.mark.parametrize(
    "body", [b'{"symbols": ["NV', b"{", b"not json", b'{"symbols": ["NVDA"],}']
)
def test_unreadable_json_is_400_invalid_json(client, path, body):
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    payload = response.json()
    assert payload["code"] == "invalid_json"
    assert "not valid JSON" in payload["detail"]
    assert client.get("/api/workflows/executions").json()["count"] == 0


# -- deleting everything needs all=true -------------------------------------------------------


@pytest.fixture
def cached(migrated_database_url):
    with api_client(migrated_database_url) as (client, container):
        seed_daily_bars(container, "NVDA", [3, 4, 5])
        yield client, container


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"date_from": "0001-01-01"},
        {"date_to": "9999-12-31"},
        {"date_from": "2025-11-03", "date_to": "2025-11-05"},
        {"symbol": "NVDA"},
        {"data_type": "1d", "exchange": "NASDAQ"},
    ],
)
def test_a_filter_that_matches_every_cached_bar_needs_all_true(cached, params):
    client, _ = cached
    errors = field_errors(client.delete(CACHE, params=params))
    assert "all=true" in errors["query.all"]
    assert client.get(CACHE).json()["count"] == 3

    deleted = client.delete(CACHE, params={**params, "all": "true"})
    assert deleted.json() == {"deleted": 3}
    assert client.get(CACHE).json()["count"] == 0


def test_a_filter_that_leaves_bars_behind_needs_no_all(cached):
    client, container = cached
    seed_daily_bars(container, "TSLA", [3])
    assert client.delete(CACHE, params={"symbol": "NVDA"}).json() == {"deleted": 3}
    assert client.delete(CACHE, params={"date_from": "2025-11-04"}).json() == {"deleted": 0}
    assert client.get(CACHE).json()["count"] == 1
