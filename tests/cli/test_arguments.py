"""Arguments and settings of the populate CLI: defaults, help, and exit 2 naming what is wrong."""

from __future__ import annotations

import pytest

from backend.cli.populate import main
from tests.support.app import make_settings


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--symbols", "NV!"], "argument --symbols: invalid symbol 'NV!'"),
        (["--symbols", " , "], "argument --symbols: name at least one symbol"),
        (["--days-back", "0"], "argument --days-back: must be between 1 and 3650 (got 0)"),
        (["--days-back", "3651"], "argument --days-back: must be between 1 and 3650 (got 3651)"),
        (["--days-back", "ten"], "argument --days-back: 'ten' is not a whole number of days"),
        (["--data-type", "1d,7m"], "argument --data-type: unknown bar size '7m'; use one or more"),
        (["--exchange", "XYZ"], "argument --exchange: exchange 'XYZ' has no trading calendar"),
        (["--api-url", "backend:8000"], "argument --api-url: 'backend:8000' is not an http"),
        (["--api-url", "http://b", "--dry-run"], "--dry-run plans in this process"),
        (["--symbol", "NVDA"], "unrecognized arguments: --symbol NVDA"),
    ],
)
def test_bad_arguments_exit_2_naming_the_flag(argv, message, sqlite_url, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv, settings=make_settings(sqlite_url, gateway_port=1))

    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_setting_exits_2_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("CACHE_TTL_HOURS", "0")

    with pytest.raises(SystemExit) as exited:
        main(["--dry-run"])

    assert exited.value.code == 2
    assert "CACHE_TTL_HOURS: Input should be greater than 0" in capsys.readouterr().err


def test_exchange_setting_without_a_calendar_exits_2(sqlite_url, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--dry-run"], settings=make_settings(sqlite_url, 1, CACHE_EXCHANGE="LSE"))

    assert exited.value.code == 2
    assert "CACHE_EXCHANGE: exchange 'LSE' has no trading calendar" in capsys.readouterr().err


def test_help_is_the_usage_documentation(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])

    assert exited.value.code == 0
    shown = capsys.readouterr().out
    for text in (
        "make populate-cache SYMBOLS=NVDA,TSLA EXCHANGE=NASDAQ DATA_TYPES=1d,1h DAYS_BACK=30",
        "python -m scripts.populate_market_cache",
        "Exit codes:",
        "130  interrupted",
        "API_TOKEN",
        "--dry-run",
    ):
        assert text in shown


def test_defaults_come_from_the_settings(sqlite_cli):
    run = sqlite_cli("--dry-run", "--json", CACHE_SYMBOLS="aapl,MSFT", CACHE_EXCHANGE="nyse")

    assert run.exit_code == 0
    plans = [e for e in run.events() if e["event"] == "plan"]
    assert [(p["symbol"], p["exchange"], p["data_type"]) for p in plans] == [
        ("AAPL", "NYSE", "1d"),
        ("MSFT", "NYSE", "1d"),
    ]
    # 365 days back from FIXED_NOW (2025-12-01 22:00 UTC), from midnight.
    assert {p["start"] for p in plans} == {"2024-12-01T00:00:00+00:00"}
