"""The Host header check on every route (API, metrics, docs, the UI), and HEAD wherever GET is."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.main import create_app
from tests.support.app import make_container, make_settings
from tests.support.cache_api import DEAD_GATEWAY_PORT, LOCAL_URL, seed_daily_bars
from tests.support.gateway import FakeClock
from tests.support.migrations import migrate_to_head

CACHE = "/api/market-data/cache"
PAGE = b"<!doctype html><title>Market data cache</title>"


@pytest.fixture
def ui_dist(tmp_path: Path) -> Path:
    """A built UI of one page, so the static files are served in this test as in production."""
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_bytes(PAGE)
    return dist


@pytest.fixture
def app_with_ui(migrated_sqlite_url, ui_dist):
    def build(**overrides):
        settings = make_settings(migrated_sqlite_url, DEAD_GATEWAY_PORT, **overrides)
        container = make_container(settings, FakeClock())
        return create_app(settings, container, frontend_dist=ui_dist), container

    return build


@pytest.fixture
def migrated_sqlite_url(sqlite_url) -> str:
    migrate_to_head(sqlite_url)
    return sqlite_url


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/health"),
        ("GET", "/api/health/live"),
        ("GET", "/api/config"),
        ("GET", CACHE),
        ("GET", "/metrics"),
        ("GET", "/docs"),
        ("GET", "/"),
        ("GET", "/index.html"),
        ("HEAD", "/"),
        ("POST", f"{CACHE}/refresh"),
        ("POST", "/api/workflows/execute"),
    ],
)
def test_another_host_is_refused_on_every_route(app_with_ui, method, path):
    app, _ = app_with_ui()
    with TestClient(app, base_url="http://attacker.example") as client:
        response = client.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == 400
    if method == "HEAD":
        assert response.content == b""
    else:
        body = response.json()
        assert body["code"] == "host_not_allowed"
        assert "attacker.example" in body["detail"]
        assert "ALLOWED_HOSTS" in body["detail"]


def test_dns_rebinding_cannot_clear_the_cache(app_with_ui):
    # With no API_TOKEN (the default), the Host check is what stops a page on another site.
    app, container = app_with_ui()
    with TestClient(app, base_url=LOCAL_URL) as client:
        seed_daily_bars(container, "NVDA", [3, 4])
        refused = client.delete(CACHE, params={"all": "true"}, headers={"Host": "attacker.example"})
        count = client.get(CACHE).json()["count"]
    assert refused.status_code == 400
    assert count == 2


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"]
)
def test_the_loopback_names_are_allowed_by_default(app_with_ui, host):
    app, _ = app_with_ui()
    with TestClient(app, base_url=LOCAL_URL) as client:
        api = client.get("/api/health/live", headers={"Host": host})
        ui = client.get("/", headers={"Host": host})
    assert api.status_code == 200
    assert ui.status_code == 200 and ui.content == PAGE


@pytest.mark.parametrize("host", ["", "local host", "[::1", "localhost:port", "127.0.0.1.evil:80"])
def test_a_malformed_or_missing_host_is_refused(app_with_ui, host):
    app, _ = app_with_ui()
    with TestClient(app, base_url=LOCAL_URL) as client:
        response = client.get("/api/health/live", headers={"Host": host})
    assert response.status_code == 400
    assert response.json()["code"] == "host_not_allowed"


def test_allowed_hosts_come_from_the_setting(app_with_ui):
    app, _ = app_with_ui(ALLOWED_HOSTS="backend,*.lan.example")
    with TestClient(app, base_url="http://backend:8000") as client:
        service = client.get("/api/health/live")
        subdomain = client.get("/api/health/live", headers={"Host": "nas.lan.example"})
        domain_itself = client.get("/api/health/live", headers={"Host": "lan.example"})
        loopback = client.get("/api/health/live", headers={"Host": "localhost"})
    assert (service.status_code, subdomain.status_code) == (200, 200)
    assert (domain_itself.status_code, loopback.status_code) == (400, 400)


def test_a_star_accepts_any_host(app_with_ui):
    app, _ = app_with_ui(ALLOWED_HOSTS="*")
    with TestClient(app, base_url="http://anything.example") as client:
        assert client.get("/api/health/live").status_code == 200


# -- HEAD -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/health", "/api/config", CACHE, f"{CACHE}/stats", f"{CACHE}/NVDA", "/metrics", "/"],
)
def test_head_is_answered_wherever_get_is(app_with_ui, path):
    app, container = app_with_ui()
    with TestClient(app, base_url=LOCAL_URL) as client:
        seed_daily_bars(container, "NVDA", [3, 4])
        get = client.get(path)
        head = client.head(path)
    assert get.status_code == 200
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


def test_head_of_a_route_without_get_answers_as_get_does(app_with_ui):
    app, _ = app_with_ui()
    with TestClient(app, base_url=LOCAL_URL) as client:
        get = client.get("/api/workflows/execute")
        head = client.head("/api/workflows/execute")
    assert get.status_code >= 400
    assert head.status_code == get.status_code
