"""docker-compose.yml: two backend replicas behind nginx, PostgreSQL, the simulator as gateway.

There is no Docker engine in CI, so the file is read as YAML and checked against what the
services must agree on: distinct IB client ids, the proxy's upstreams, settings that exist and
parse. Where the docker-compose command is installed, `docker-compose config` validates it too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from backend.config.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
REPLICAS = ("backend-a", "backend-b")
DEFAULTED = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):-(?P<default>.*)\}$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def defaults(environment: dict) -> dict[str, str]:
    """Each variable's value as compose resolves it with nothing set: ${NAME:-default}."""
    resolved = {}
    for name, value in environment.items():
        match = DEFAULTED.match(str(value))
        resolved[name] = match["default"] if match else str(value)
    return resolved


def test_the_services_are_two_replicas_a_proxy_the_gateway_and_postgres(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "ib-gateway", *REPLICAS, "proxy"}
    assert services["postgres"]["image"].startswith("postgres:")
    assert "backend.ibkr_simulator" in services["ib-gateway"]["command"]
    # Only the proxy is published; the replicas are reached through it.
    assert services["proxy"]["ports"] == ["8000:8000"]
    for name in REPLICAS:
        service = services[name]
        assert "ports" not in service
        assert service["command"][:3] == ["python", "-m", "backend.server"]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "8000" in service["expose"]


def test_every_replica_setting_exists_and_parses(compose):
    fields = set(Settings.model_fields)
    for name in (*REPLICAS, "migrate"):
        environment = compose["services"][name]["environment"]
        assert set(environment) <= fields, set(environment) - fields
        settings = load_settings(**defaults(environment))
        assert settings.DATABASE_URL.startswith("postgresql+psycopg://")
        assert "@postgres:5432/" in settings.DATABASE_URL
        assert settings.IB_HOST == "ib-gateway"
        assert {"localhost", "127.0.0.1", "proxy"} <= set(settings.ALLOWED_HOSTS)


def test_each_replica_has_its_own_client_id_and_so_does_its_cli(compose):
    ids = [
        int(defaults(compose["services"][name]["environment"])["IB_CLIENT_ID"]) for name in REPLICAS
    ]
    # The populate CLI connects as its process's IB_CLIENT_ID + 1 (backend/cli/populate.py).
    taken = [*ids, *(client_id + 1 for client_id in ids)]
    assert len(set(taken)) == len(taken), taken


def test_the_proxy_is_nginx_and_sends_to_both_replicas(compose):
    proxy = compose["services"]["proxy"]
    assert proxy["image"].startswith("nginx:")
    (mount,) = proxy["volumes"]
    source, target, _mode = mount.split(":")
    config = (ROOT / source).read_text()
    assert target == "/etc/nginx/conf.d/default.conf"
    (upstream,) = re.findall(r"upstream (\w+) \{(.*?)\}", config, re.S)
    servers = set(re.findall(r"server ([\w.-]+:\d+)", upstream[1]))
    assert servers == {f"{name}:8000" for name in REPLICAS}
    assert f"proxy_pass http://{upstream[0]};" in config
    assert "proxy_set_header Host $host;" in config
    listen = re.search(r"listen (\d+);", config)
    assert listen and proxy["ports"][0].endswith(f":{listen[1]}")
    assert set(proxy["depends_on"]) == set(REPLICAS)


def test_docker_compose_config_accepts_the_file():
    command = shutil.which("docker-compose")
    if command is None:
        # No compose here: the checks above are what validates the file.
        return
    result = subprocess.run(
        [command, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
