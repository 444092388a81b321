"""Corporate actions and verify through the API, with the real client against a simulator whose
clock moves: the actions a fetch across a split records are listed, verify finds the drift a
split leaves in a cache that has not fetched since, repair heals it, and DEBUG_MODE refuses."""

import time

import pytest

from tests.support.cache_api import api_client
from tests.support.gateway import FakeClock
from tests.support.gateway import evening as at
from tests.support.gateway import move_clock as move
from tests.support.migrations import migrate_to_head

CACHE = "/api/market-data/cache"
ACTIONS = f"{CACHE}/actions"
VERIFY = f"{CACHE}/verify"
# Days back from 2024-05-31 and from 2024-07-31 to the same start, 2024-01-02.
BEFORE_SPLIT_DAYS, AFTER_SPLIT_DAYS = 150, 211


@pytest.fixture
def migrated_sqlite_url(sqlite_url) -> str:
    migrate_to_head(sqlite_url)
    return sqlite_url


def refresh(client, days_back: int) -> dict:
    response = client.post(
        f"{CACHE}/refresh",
        params={"wait": "true"},
        json={"symbols": ["NVDA"], "data_type": "1d", "days_back": days_back},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed", response.text
    return response.json()


def verify(client, **body) -> dict:
    response = client.post(
        VERIFY, params={"wait": "true"}, json={"symbols": ["NVDA"], "data_type": "1d", **body}
    )
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "completed", job
    return job


def test_a_fetch_across_the_split_lists_one_action(migrated_database_url, moving_sim):
    clock = FakeClock(at(2024, 5, 31))
    with api_client(migrated_database_url, moving_sim.port, clock) as (client, _):
        refresh(client, BEFORE_SPLIT_DAYS)
        assert client.get(ACTIONS).json() == {"data": [], "count": 0}
        cached = client.get(f"{CACHE}/NVDA").json()["total"]

        move(moving_sim, clock, at(2024, 7, 31))
        refresh(client, AFTER_SPLIT_DAYS)

        listed = client.get(ACTIONS).json()
        assert listed["count"] == 1
        action = listed["data"][0]
        assert {key: action[key] for key in ("symbol", "exchange", "data_type", "sec_type")} == {
            "symbol": "NVDA",
            "exchange": "NASDAQ",
            "data_type": "1d",
            "sec_type": "STK",
        }
        assert (action["what_to_show"], action["use_rth"], action["currency"]) == (
            "TRADES",
            True,
            "USD",
        )
        assert action["expiry"] is None
        assert (action["kind"], action["healed"]) == ("split", "rescaled")
        assert action["factor"] == pytest.approx(10.0)
        assert action["bars_changed"] == cached
        assert action["detected_at"] == "2024-07-31T21:00:00Z"
        assert action["basis_to"] == "2024-07-31T21:00:00Z"
        assert action["basis_from"] == "2024-05-31T21:00:00Z"
        assert action["anchor_at"] < "2024-06-01"

        # Filters as the listing's; the dates bound when the action was detected.
        assert client.get(ACTIONS, params={"symbol": "tsla"}).json()["count"] == 0
        assert client.get(ACTIONS, params={"data_type": "1h"}).json()["count"] == 0
        assert client.get(ACTIONS, params={"date_to": "2024-07-30"}).json()["count"] == 0
        assert client.get(ACTIONS, params={"date_from": "2024-07-31"}).json()["count"] == 1

        series = client.get(f"{CACHE}/NVDA").json()
        assert series["price_basis_at"] == "2024-07-31T21:00:00Z"


def test_verify_finds_the_drift_repair_heals_it(migrated_database_url, moving_sim):
    clock = FakeClock(at(2024, 5, 31))
    with api_client(migrated_database_url, moving_sim.port, clock) as (client, _):
        refresh(client, BEFORE_SPLIT_DAYS)
        clean = verify(client)
        assert [(r["drift"], r["bars_drifted"]) for r in clean["results"]] == [(False, 0)]
        assert clean["results"][0]["bars_compared"] > 0
        closes_before = [bar["close"] for bar in client.get(f"{CACHE}/NVDA").json()["bars"]]

        # The split happened since the cache last fetched: verify sees it, the cache did not.
        move(moving_sim, clock, at(2024, 7, 31))
        found = verify(client, samples=2)
        result = found["results"][0]
        assert result["drift"] is True
        assert result["segments_checked"] >= 1
        assert result["bars_drifted"] == result["bars_compared"] > 0
        assert result["factor"] == pytest.approx(10.0)
        assert result["healed"] is None
        assert found["unrepaired"] == 1 and found["samples"] == 2 and found["repair"] is False
        # Without repair nothing changes.
        assert client.get(ACTIONS).json()["count"] == 0
        assert [b["close"] for b in client.get(f"{CACHE}/NVDA").json()["bars"]] == closes_before

        repaired = verify(client, repair=True)
        assert repaired["results"][0]["healed"] == "rescaled"
        assert repaired["unrepaired"] == 0
        actions = client.get(ACTIONS).json()["data"]
        assert [(a["kind"], a["healed"]) for a in actions] == [("split", "rescaled")]
        closes_after = [bar["close"] for bar in client.get(f"{CACHE}/NVDA").json()["bars"]]
        assert closes_after == pytest.approx([close / 10 for close in closes_before])

        again = verify(client)
        assert (again["results"][0]["drift"], again["unrepaired"]) == (False, 0)


def test_verify_runs_as_a_job_to_follow(migrated_sqlite_url, moving_sim):
    clock = FakeClock(at(2024, 5, 31))
    with api_client(migrated_sqlite_url, moving_sim.port, clock) as (client, _):
        refresh(client, 30)
        accepted = client.post(VERIFY, json={"symbols": ["NVDA", "AAPL"]})
        assert accepted.status_code == 202, accepted.text
        location = accepted.headers["location"]
        assert location == f"{VERIFY}/{accepted.json()['job_id']}"
        job = accepted.json()
        # Followed as a client would, until it ends (the test's timeout bounds a job that hangs).
        while job["status"] in ("queued", "running"):
            time.sleep(0.02)
            job = client.get(location).json()
        assert job["status"] == "completed"
        results = {r["symbol"]: r for r in job["results"]}
        assert results["NVDA"]["segments_checked"] >= 1
        # Nothing cached: nothing to compare, and no drift.
        assert (results["AAPL"]["segments_checked"], results["AAPL"]["drift"]) == (0, False)
        assert client.get(f"{VERIFY}/nope").status_code == 404
        assert client.delete(location).json()["status"] == "completed"


def test_debug_mode_refuses_verify_without_contacting_ibkr(migrated_sqlite_url, moving_sim):
    clock = FakeClock(at(2024, 5, 31))
    with api_client(migrated_sqlite_url, moving_sim.port, clock, DEBUG_MODE=True) as (client, _):
        refresh(client, 30)
        requests = moving_sim.stats()["historical_requests"]
        response = client.post(VERIFY, json={"symbols": ["NVDA"], "repair": True})
        assert response.status_code == 409
        body = response.json()
        assert body["code"] == "verify_in_debug_mode"
        assert "DEBUG_MODE" in body["detail"] and "IBKR" in body["detail"]
        assert moving_sim.stats()["historical_requests"] == requests
        # The basis it has is still served, and said.
        assert client.get(f"{CACHE}/NVDA").json()["price_basis_at"] == "2024-05-31T21:00:00Z"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"symbols": ["NVDA"], "samples": 0}, "samples"),
        ({"symbols": ["NVDA"], "samples": 21}, "samples"),
        ({"symbols": ["NVDA"], "samples": "3"}, "samples"),
        ({"symbols": ["NVDA"], "repair": "yes"}, "repair"),
        ({"symbols": []}, "symbols"),
        ({"symbols": ["EUR.USD"], "sec_type": "CASH", "what_to_show": "TRADES"}, "what_to_show"),
        ({"symbols": ["NVDA"], "days_back": 3}, "days_back"),
    ],
)
def test_bad_verify_bodies_name_the_field(migrated_sqlite_url, body, field):
    with api_client(migrated_sqlite_url) as (client, _):
        response = client.post(VERIFY, json=body)
        assert response.status_code == 422, response.text
        assert field in [error["field"] for error in response.json()["detail"]]


def test_verify_needs_the_api_token(migrated_sqlite_url):
    with api_client(migrated_sqlite_url, API_TOKEN="s3cret") as (client, _):
        assert client.post(VERIFY, json={"symbols": ["NVDA"]}).status_code == 401
        # Listing actions changes nothing: no token needed.
        assert client.get(ACTIONS).status_code == 200
