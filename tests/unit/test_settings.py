"""Settings: defaults, parsing of list variables, and one-line errors for bad values."""

import subprocess
import sys
from pathlib import Path

import pytest

from backend.config.settings import Settings, SettingsError, cache_symbol_entry, load_settings
from backend.market_data.domain import SeriesKey

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


def test_symbols_name_futures_fx_crypto_and_indices(monkeypatch):
    monkeypatch.setenv(
        "CACHE_SYMBOLS", "nvda, es:fut:202503,EUR.USD:CASH,BTC:CRYPTO,SPX:IND,ES:CONTFUT,SPY"
    )
    settings = load_settings(CACHE_EXCHANGE="NYSE")
    # Kept as written, upper-cased: what the config endpoint shows.
    assert settings.CACHE_SYMBOLS == [
        "NVDA",
        "ES:FUT:202503",
        "EUR.USD:CASH",
        "BTC:CRYPTO",
        "SPX:IND",
        "ES:CONTFUT",
        "SPY",
    ]
    series = [
        entry.series("1h", stock_exchange=settings.CACHE_EXCHANGE)
        for entry in settings.cache_symbols()
    ]
    assert series == [
        SeriesKey("NVDA", "NYSE", "1h"),
        SeriesKey("ES", "CME", "1h", sec_type="FUT", expiry="202503"),
        SeriesKey("EUR", "IDEALPRO", "1h", sec_type="CASH", what_to_show="MIDPOINT"),
        SeriesKey("BTC", "PAXOS", "1h", sec_type="CRYPTO", what_to_show="AGGTRADES"),
        SeriesKey("SPX", "CBOE", "1h", sec_type="IND"),
        SeriesKey("ES", "CME", "1h", sec_type="CONTFUT"),
        SeriesKey("SPY", "NYSE", "1h"),
    ]
    # And back: how a series is written as an entry (the populate command of a cache miss).
    assert [cache_symbol_entry(one) for one in series] == [
        "NVDA",
        "ES:FUT:202503",
        "EUR.USD:CASH",
        "BTC:CRYPTO",
        "SPX:IND",
        "ES:CONTFUT",
        "SPY",
    ]


def test_an_fx_pair_may_be_written_without_its_dot(monkeypatch):
    monkeypatch.setenv("CACHE_SYMBOLS", '["usdjpy:cash"]')
    (entry,) = load_settings().cache_symbols()
    assert entry.series("1d", stock_exchange="NASDAQ") == SeriesKey(
        "USD", "IDEALPRO", "1d", sec_type="CASH", currency="JPY", what_to_show="MIDPOINT"
    )


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
            "CACHE_SYMBOLS",
            "NVDA,ES:FUT",
            "CACHE_SYMBOLS: 'ES:FUT': a future needs its expiry as YYYYMM or YYYYMMDD",
        ),
        ("CACHE_SYMBOLS", "ES:FUT:2025", "CACHE_SYMBOLS: 'ES:FUT:2025': a future needs"),
        (
            "CACHE_SYMBOLS",
            "NVDA:STK:202503",
            "CACHE_SYMBOLS: 'NVDA:STK:202503': only sec_type FUT takes an expiry",
        ),
        (
            "CACHE_SYMBOLS",
            "ES:FUTURE",
            "CACHE_SYMBOLS: 'ES:FUTURE': unknown sec type 'FUTURE'; "
            "use one of STK, IND, FUT, CONTFUT, CASH, CRYPTO",
        ),
        ("CACHE_SYMBOLS", "EUR.US:CASH", "an FX pair's symbol is its base currency"),
        (
            "CACHE_SYMBOLS",
            "ES:FUT:202503:X",
            "CACHE_SYMBOLS: 'ES:FUT:202503:X' has 4 parts; write each entry as "
            "SYMBOL[:SECTYPE[:EXPIRY]], e.g. NVDA, ES:FUT:202503, EUR.USD:CASH",
        ),
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


def test_a_future_without_its_expiry_stops_startup_saying_how_to_write_it(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CACHE_SYMBOLS": "NVDA,ES:FUT", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", "import backend.main"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("invalid configuration: CACHE_SYMBOLS: 'ES:FUT': a future needs")
    assert "write each entry as SYMBOL[:SECTYPE[:EXPIRY]], e.g. NVDA, ES:FUT:202503" in line


def test_env_example_documents_the_cache_symbols_entries():
    text = (REPO_ROOT / "env.example").read_text()
    assert "SYMBOL[:SECTYPE[:EXPIRY]]" in text
    for example in ("ES:FUT:202503", "ES:CONTFUT", "EUR.USD:CASH", "BTC:CRYPTO", "SPX:IND"):
        assert example in text


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
