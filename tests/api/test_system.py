"""/api/health, /api/health/live and /api/config on a real database, with and without a gateway."""

import time
from datetime import UTC, datetime, timedelta

from tests.support.cache_api import api_client

CACHE = "/api/market-data/cache"
UNREACHABLE_DATABASE = "postgresql+psycopg://nobody@127.0.0.1:1/none"


def test_health_reports_database(migrated_database_url):
    with api_client(migrated_database_url) as (client, _):
        assert client.get("/api/health").json() == {"status": "ok", "database": "ok"}
        assert client.get("/api/health/live").json() == {"status": "ok"}


def test_health_is_503_while_liveness_stays_200_when_the_database_is_unreachable():
    with api_client(UNREACHABLE_DATABASE) as (client, _):
        readiness = client.get("/api/health")
        liveness = client.get("/api/health/live")
        data = client.get(CACHE)
    assert readiness.status_code == 503
    body = readiness.json()
    assert (body["status"], body["database"], body["code"]) == (
        "unavailable",
        "unreachable",
        "database_unavailable",
    )
    assert body["detail"].startswith("the database does not answer")
    assert liveness.status_code == 200
    assert data.status_code == 503
    assert data.json()["code"] == "database_unavailable"


def test_config_shows_cache_settings_and_never_the_token(sqlite_url):
    with api_client(sqlite_url, DEBUG_MODE=True, API_TOKEN="s3cret", CACHE_SYMBOLS="aapl,msft") as (
        client,
        _,
    ):
        response = client.get("/api/config")
    body = response.json()
    assert body["debug_mode"] is True
    assert body["cache_symbols"] == ["AAPL", "MSFT"]
    assert body["cache_ttl_hours"] == 24
    assert (body["ib_host"], body["ib_port"]) == ("127.0.0.1", 1)
    assert body["api_token_required"] is True
    assert body["gateway"]["connected"] is False
    assert "s3cret" not in response.text


def gateway_status(client, until) -> dict:
    deadline = time.monotonic() + 10
    while True:
        gateway = client.get("/api/config").json()["gateway"]
        if until(gateway) or time.monotonic() > deadline:
            return gateway
        time.sleep(0.05)


def test_config_reports_gateway_connection(sqlite_url, sim):
    with api_client(sqlite_url, sim.port, IB_SIMULATOR_CONTROL_URL=sim.control_url) as (
        client,
        _,
    ):
        gateway = gateway_status(client, until=lambda g: g["connected"])
    assert gateway == {
        "connected": True,
        "simulated": True,
        "last_error": None,
        "last_error_at": None,
    }


def test_config_shows_why_the_gateway_cannot_be_reached(sqlite_url):
    # Live mode keeps trying to connect in the background; nothing listens on port 1.
    with api_client(sqlite_url) as (client, _):
        gateway = gateway_status(client, until=lambda g: g["last_error"] is not None)
    assert gateway["connected"] is False
    assert "IB Gateway at 127.0.0.1:1 is unavailable" in gateway["last_error"]
    assert "connection refused" in gateway["last_error"]
    assert _is_recent(gateway["last_error_at"])


def test_config_shows_a_connection_the_gateway_dropped(migrated_database_url, sim):
    with api_client(migrated_database_url, sim.port) as (client, container):
        gateway = gateway_status(client, until=lambda g: g["connected"])
        assert gateway["connected"] and gateway["last_error"] is None

        # The simulator closes the socket on the next historical request; the client reconnects.
        sim.arm_fault("disconnect", count=1)
        job = client.post(
            f"{CACHE}/refresh", params={"wait": "true"}, json={"symbols": ["NVDA"], "days_back": 5}
        ).json()
        gateway = gateway_status(client, until=lambda g: g["connected"])

    assert sim.stats()["historical_requests"] >= 2
    assert job["status"] == "completed"
    assert "the connection dropped" in gateway["last_error"]
    assert "127.0.0.1" in gateway["last_error"]
    assert _is_recent(gateway["last_error_at"])
    # Kept after the reconnect, so a brief outage stays visible beside connected=true.
    assert gateway["connected"] is True


def _is_recent(stamp: str | None) -> bool:
    assert stamp is not None
    at = datetime.fromisoformat(stamp)
    return at.tzinfo is not None and datetime.now(UTC) - at < timedelta(minutes=1)
