"""Settings: defaults, parsing of list variables, and one-line errors for bad values."""

import subprocess
import sys
from pathlib import Path

import pytest

from backend.config.settings import Settings, SettingsError, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
VARIABLES = [
    "DEBUG_MODE",
    "CACHE_ENABLED",
    "CACHE_SYMBOLS",
    "CACHE_EXCHANGE",
    "CACHE_TTL_HOURS",
    "DATABASE_URL",
    "IB_HOST",
    "IB_PORT",
    "IB_CLIENT_ID",
    "IB_CONNECT_TIMEOUT",
    "API_TOKEN",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    # Settings read the process environment and ./.env; isolate both from the developer's.
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults():
    settings = load_settings()
    assert settings.DEBUG_MODE is False
    assert settings.CACHE_ENABLED is True
    assert settings.CACHE_SYMBOLS == ["NVDA", "TSLA"]
    assert settings.CACHE_EXCHANGE == "NASDAQ"
    assert settings.CACHE_TTL_HOURS == 24
    assert settings.DATABASE_URL.startswith("sqlite:///")
    assert settings.DATABASE_URL.endswith("data/market_data.db")
    assert settings.API_TOKEN is None


@pytest.mark.parametrize("raw", ["nvda,tsla", " NVDA , TSLA ", '["nvda", "TSLA"]'])
def test_symbols_accept_comma_list_and_json(monkeypatch, raw):
    monkeypatch.setenv("CACHE_SYMBOLS", raw)
    assert load_settings().CACHE_SYMBOLS == ["NVDA", "TSLA"]


def test_values_come_from_env_file(tmp_path):
    (tmp_path / ".env").write_text("DEBUG_MODE=true\nCACHE_TTL_HOURS=6\nCACHE_SYMBOLS=AAPL\n")
    settings = load_settings()
    assert (settings.DEBUG_MODE, settings.CACHE_TTL_HOURS, settings.CACHE_SYMBOLS) == (
        True,
        6,
        ["AAPL"],
    )


def test_environment_wins_over_env_file(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("CACHE_TTL_HOURS=6\n")
    monkeypatch.setenv("CACHE_TTL_HOURS", "12")
    assert load_settings().CACHE_TTL_HOURS == 12


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CACHE_TTL_HOURS", "0", "CACHE_TTL_HOURS: Input should be greater than 0"),
        ("CACHE_TTL_HOURS", "soon", "CACHE_TTL_HOURS: Input should be a valid integer"),
        ("DEBUG_MODE", "maybe", "DEBUG_MODE: Input should be a valid boolean"),
        ("CACHE_SYMBOLS", "NVDA,$$$", "CACHE_SYMBOLS: invalid symbol '$$$'"),
        ("CACHE_SYMBOLS", "", "CACHE_SYMBOLS: must name at least one symbol"),
        ("CACHE_SYMBOLS", "[1, 2", "CACHE_SYMBOLS: is not a valid JSON list"),
        (
            "DATABASE_URL",
            "mysql://x",
            "DATABASE_URL: must start with sqlite:/// or postgresql+psycopg://",
        ),
        ("IB_PORT", "70000", "IB_PORT: Input should be less than or equal to 65535"),
        ("CACHE_EXCHANGE", "N4SDAQ!", "CACHE_EXCHANGE: must be an exchange code"),
    ],
)
def test_bad_value_names_variable_and_rule(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("invalid configuration: ")
    assert expected in message
    assert "\n" not in message


def test_bad_value_stops_startup_with_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CACHE_TTL_HOURS": "-3", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", "import backend.main"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "invalid configuration: CACHE_TTL_HOURS: Input should be greater than 0 (got '-3')"
    ]


def test_env_example_lists_every_setting():
    documented = {
        line.split("=", 1)[0].strip()
        for line in (REPO_ROOT / "env.example").read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert set(Settings.model_fields) <= documented


def test_docker_compose_passes_every_setting_through():
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    missing = [name for name in Settings.model_fields if f"{name}:" not in compose]
    assert missing == []
