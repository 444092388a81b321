"""/api/health and /api/config on a real database, with and without a reachable gateway."""

import time

from fastapi.testclient import TestClient

from backend.main import create_app
from tests.support.app import make_container, make_settings
from tests.support.gateway import FakeClock


def test_health_reports_database(migrated_database_url):
    settings = make_settings(migrated_database_url, gateway_port=1)
    with TestClient(create_app(settings, make_container(settings, FakeClock()))) as client:
        assert client.get("/api/health").json() == {"status": "ok", "database": "ok"}


def test_health_degraded_when_database_unreachable():
    settings = make_settings("postgresql+psycopg://nobody@127.0.0.1:1/none", gateway_port=1)
    app = create_app(settings, make_container(settings, FakeClock()))
    with TestClient(app) as client:
        response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "degraded", "database": "unreachable"}


def test_config_shows_cache_settings_and_never_the_token(sqlite_url):
    settings = make_settings(
        sqlite_url, gateway_port=1, DEBUG_MODE=True, API_TOKEN="s3cret", CACHE_SYMBOLS="aapl,msft"
    )
    with TestClient(create_app(settings, make_container(settings, FakeClock()))) as client:
        response = client.get("/api/config")
    body = response.json()
    assert body["debug_mode"] is True
    assert body["cache_symbols"] == ["AAPL", "MSFT"]
    assert body["cache_ttl_hours"] == 24
    assert (body["ib_host"], body["ib_port"]) == ("127.0.0.1", 1)
    assert body["api_token_required"] is True
    assert body["gateway"]["connected"] is False
    assert "s3cret" not in response.text


def test_config_reports_gateway_connection(sqlite_url, sim):
    settings = make_settings(sqlite_url, sim.port, IB_SIMULATOR_CONTROL_URL=sim.control_url)
    with TestClient(create_app(settings, make_container(settings, FakeClock()))) as client:
        for _ in range(50):
            gateway = client.get("/api/config").json()["gateway"]
            if gateway["connected"]:
                break
            time.sleep(0.1)
    assert gateway == {"connected": True, "simulated": True, "last_error": None}
