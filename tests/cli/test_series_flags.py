"""The populate CLI names whole series: instruments as SYMBOL[:SECTYPE[:EXPIRY]], with
--sec-type, --currency, --expiry, --what-to-show and --rth/--all-hours; a series IBKR does not
have exits 2 naming the flag; futures and FX pairs fill against the simulator under their keys."""

from __future__ import annotations

import io
import json

import httpx
import pytest
import respx

from backend.cli.populate import main
from tests.cli.conftest import CliRun
from tests.support.app import make_settings

IDENTITY = ("sec_type", "currency", "expiry", "what_to_show", "use_rth")
BACKEND = "http://backend.test"
REFRESH = f"{BACKEND}/api/market-data/cache/refresh"


def plans(run: CliRun) -> dict[str, dict]:
    assert run.exit_code == 0, run.stderr
    return {p["symbol"]: p for p in run.events() if p["event"] == "plan"}


def identity(event: dict) -> tuple:
    return (event["exchange"], *(event[name] for name in IDENTITY))


def test_instruments_name_their_asset_class_and_expiry(sqlite_cli):
    run = sqlite_cli(
        "--symbols", "ES:FUT:202603,eur.usd:cash,BTC:CRYPTO,SPX:IND,ES:CONTFUT,NVDA",
        "--data-type", "1h", "--all-hours", "--dry-run", "--json",
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    shown = [(p["symbol"], identity(p)) for p in run.events() if p["event"] == "plan"]
    assert shown == [
        ("ES", ("CME", "FUT", "USD", "202603", "TRADES", False)),
        # FX, crypto and indices trade the same hours either way: kept as regular hours, once.
        ("EUR", ("IDEALPRO", "CASH", "USD", None, "MIDPOINT", True)),
        ("BTC", ("PAXOS", "CRYPTO", "USD", None, "AGGTRADES", True)),
        ("SPX", ("CBOE", "IND", "USD", None, "TRADES", True)),
        ("ES", ("CME", "CONTFUT", "USD", None, "TRADES", False)),
        ("NVDA", ("NASDAQ", "STK", "USD", None, "TRADES", False)),
    ]
    # Nothing is cached: every plan sends requests.
    assert all(p["requests"] > 0 for p in run.events() if p["event"] == "plan")


def test_flags_name_the_series_of_symbols_that_name_none(sqlite_cli):
    run = sqlite_cli(
        "--symbols", "ES,NQ", "--sec-type", "fut", "--expiry", "202603",
        "--what-to-show", "midpoint", "--data-type", "1h,1d", "--dry-run", "--json",
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    events = [p for p in run.events() if p["event"] == "plan"]
    assert [(p["symbol"], p["data_type"]) for p in events] == [
        ("ES", "1h"),
        ("ES", "1d"),
        ("NQ", "1h"),
        ("NQ", "1d"),
    ]
    assert {identity(p) for p in events} == {("CME", "FUT", "USD", "202603", "MIDPOINT", True)}
    # Without --days-back each bar size reaches back its own default: 30 days of 1h, 365 of 1d.
    starts = {p["data_type"]: p["start"] for p in events}
    assert starts == {"1h": "2025-11-01T00:00:00+00:00", "1d": "2024-12-01T00:00:00+00:00"}


def test_flags_complete_an_entry_and_an_entry_wins_over_them(sqlite_cli):
    run = sqlite_cli(
        "--symbols", "ES:FUT,NQ:FUT:202606,AAPL", "--sec-type", "FUT", "--expiry", "202603",
        "--dry-run", "--json",
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    expiries = [(p["symbol"], p["sec_type"], p["expiry"]) for p in run.events()[:-1]]
    assert expiries == [("ES", "FUT", "202603"), ("NQ", "FUT", "202606"), ("AAPL", "FUT", "202603")]


def test_cache_symbols_entries_are_the_default_instruments(sqlite_cli):
    run = sqlite_cli("--dry-run", "--json", CACHE_SYMBOLS="NVDA,ES:FUT:202603,GBP.USD:CASH")
    found = plans(run)
    assert identity(found["NVDA"]) == ("NASDAQ", "STK", "USD", None, "TRADES", True)
    assert identity(found["ES"]) == ("CME", "FUT", "USD", "202603", "TRADES", True)
    assert identity(found["GBP"]) == ("IDEALPRO", "CASH", "USD", None, "MIDPOINT", True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--symbols", "EUR.USD:CASH", "--what-to-show", "TRADES"],
            "argument --what-to-show: EUR.USD:CASH: IBKR has no TRADES series for CASH; "
            "use one of MIDPOINT, BID, ASK, BID_ASK",
        ),
        (
            ["--symbols", "ES", "--sec-type", "FUT"],
            "argument --expiry: ES: a future needs its expiry as YYYYMM or YYYYMMDD",
        ),
        (
            ["--symbols", "NVDA", "--expiry", "202503"],
            "argument --expiry: NVDA: only sec_type FUT takes an expiry; drop it for STK",
        ),
        (
            ["--symbols", "NVDA", "--data-type", "1w", "--what-to-show", "ADJUSTED_LAST"],
            "argument --what-to-show: NVDA: IBKR serves ADJUSTED_LAST in bars of a day or less",
        ),
        (
            ["--symbols", "BTC:CRYPTO", "--what-to-show", "TRADES"],
            "argument --what-to-show: BTC:CRYPTO: IBKR has no TRADES series for CRYPTO",
        ),
        (["--sec-type", "BOND"], "argument --sec-type: 'BOND' is not one of STK, IND, FUT"),
        (["--what-to-show", "LAST"], "argument --what-to-show: 'LAST' is not one of TRADES"),
        (["--currency", "DOLLAR"], "argument --currency: NVDA: invalid currency 'DOLLAR'"),
        (["--symbols", "ES:FUTURE"], "argument --symbols: 'ES:FUTURE': unknown sec type"),
        (["--symbols", "ES:FUT"], "argument --expiry: ES:FUT: a future needs its expiry"),
        (["--symbols", "ES:FUT:2025"], "argument --expiry: ES:FUT:2025: a future needs its"),
        (["--rth", "--all-hours"], "argument --all-hours: not allowed with argument --rth"),
        (
            ["--symbols", "ES:FUT:202603", "--exchange", "NYSE"],
            "argument --exchange: exchange 'NYSE' has no trading calendar for sec_type FUT",
        ),
    ],
)
def test_a_series_ibkr_does_not_have_exits_2_naming_the_flag(argv, message, sqlite_url, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--dry-run"], settings=make_settings(sqlite_url, gateway_port=1))

    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_flag_that_does_not_fit_a_cache_symbols_entry_names_both(sqlite_url, capsys):
    settings = make_settings(sqlite_url, gateway_port=1, CACHE_SYMBOLS="NVDA,EUR.USD:CASH")
    with pytest.raises(SystemExit) as exited:
        main(["--what-to-show", "ADJUSTED_LAST", "--dry-run"], settings=settings)

    assert exited.value.code == 2
    assert "argument --what-to-show: EUR.USD:CASH: IBKR has no ADJUSTED_LAST series for CASH" in (
        capsys.readouterr().err
    )


def test_an_invalid_cache_symbols_entry_stops_the_cli_naming_the_setting(monkeypatch, capsys):
    monkeypatch.setenv("CACHE_SYMBOLS", "NVDA,ES:FUT")

    with pytest.raises(SystemExit) as exited:
        main(["--dry-run"])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "CACHE_SYMBOLS: 'ES:FUT': a future needs its expiry" in err
    # The fix: the entry's form, with an example.
    assert "SYMBOL[:SECTYPE[:EXPIRY]], e.g. NVDA, ES:FUT:202503" in err


def test_a_future_and_fx_pairs_fill_under_their_own_keys(cli, sim):
    argv = ["--symbols", "ES:FUT:202603,EUR.USD:CASH,USDJPY:CASH", "--data-type", "1h"]
    run = cli(*argv, "--all-hours", "--days-back", "3", "--json")

    assert run.exit_code == 0, run.stderr
    results = {(e["symbol"], e["currency"]): e for e in run.events() if e["event"] == "series"}
    assert set(results) == {("ES", "USD"), ("EUR", "USD"), ("USD", "JPY")}
    assert identity(results["ES", "USD"]) == ("CME", "FUT", "USD", "202603", "TRADES", False)
    assert identity(results["USD", "JPY"]) == ("IDEALPRO", "CASH", "JPY", None, "MIDPOINT", True)
    for result in results.values():
        assert result["status"] == "ok"
        assert result["bars_fetched"] == result["bars_after"] > 0
    assert cli.rows("ES", "1h") == results["ES", "USD"]["bars_after"]
    # EUR.USD and USD.JPY are two series, not one symbol's.
    assert cli.rows("EUR", "1h") == results["EUR", "USD"]["bars_after"]
    assert cli.rows("USD", "1h") == results["USD", "JPY"]["bars_after"]

    before = sim.stats()["historical_requests"]
    again = cli(*argv, "--all-hours", "--days-back", "3", "--json")
    assert again.exit_code == 0
    assert {e["status"] for e in again.events() if e["event"] == "series"} == {"fresh"}
    assert sim.stats()["historical_requests"] == before

    # In regular hours the future is another series: it is planned from nothing.
    regular = cli(*argv, "--days-back", "3", "--dry-run", "--json")
    cached = {(p["symbol"], p["use_rth"]): p["bars_cached"] for p in regular.events()[:-1]}
    assert cached["ES", True] == 0
    assert cached["EUR", True] == results["EUR", "USD"]["bars_after"]


def test_plain_output_names_each_series(sqlite_cli):
    run = sqlite_cli(
        "--symbols", "ES:FUT:202603", "--data-type", "1h", "--what-to-show", "BID",
        "--all-hours", "--days-back", "2",
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    assert "plan ES 202603 FUT 1h BID all hours:" in run.stdout
    assert "ES 202603 FUT 1h BID all hours: ok," in run.stdout


def _job(job_id: str, results: list[dict]) -> dict:
    return {
        "job_id": job_id,
        "status": "completed",
        "created_at": "2025-12-01T22:00:00Z",
        "finished_at": "2025-12-01T22:00:01Z",
        "progress": {"done": len(results), "total": len(results)},
        "results": results,
    }


def _ok(symbol: str, **identity) -> dict:
    return {"symbol": symbol, "data_type": "1h", "status": "ok", "bars_fetched": 5,
            "bars_cached": 5, "error": None, **identity}  # fmt: skip


@respx.mock
def test_api_mode_starts_a_job_per_kind_of_series(sqlite_url):
    start = respx.post(REFRESH).mock(
        side_effect=[
            # A backend that names each result's series, and one that does not.
            httpx.Response(202, json=_job("f", [
                _ok("ES", sec_type="FUT", expiry="202603", use_rth=False, currency="USD"),
                _ok("NQ", sec_type="FUT", expiry="202603", use_rth=False, currency="USD"),
            ])),
            httpx.Response(202, json=_job("c", [
                _ok("EUR", sec_type="CASH", currency="USD", what_to_show="MIDPOINT"),
                _ok("USD", sec_type="CASH", currency="JPY", what_to_show="MIDPOINT"),
            ])),
            httpx.Response(202, json=_job("s", [_ok("NVDA")])),
        ]
    )  # fmt: skip
    settings = make_settings(sqlite_url, gateway_port=1)
    stdout, stderr = io.StringIO(), io.StringIO()
    symbols = "ES:FUT:202603,EUR.USD:CASH,NQ:FUT:202603,USDJPY:CASH,NVDA"
    argv = ["--api-url", BACKEND, "--symbols", symbols, "--data-type", "1h", "--all-hours"]
    argv.append("--json")
    code = main(argv, settings=settings, stdout=stdout, stderr=stderr)
    run = CliRun(code, stdout.getvalue(), stderr.getvalue())

    assert run.exit_code == 0, run.stderr
    bodies = [json.loads(call.request.content) for call in start.calls]
    assert bodies == [
        {"symbols": ["ES", "NQ"], "sec_type": "FUT", "exchange": "CME", "currency": "USD",
         "expiry": "202603", "data_type": "1h", "what_to_show": "TRADES", "use_rth": False,
         "force": False},
        # FX pairs of two quote currencies in one job, each as BASE.QUOTE.
        {"symbols": ["EUR.USD", "USD.JPY"], "sec_type": "CASH", "exchange": "IDEALPRO",
         "data_type": "1h", "what_to_show": "MIDPOINT", "use_rth": True, "force": False},
        {"symbols": ["NVDA"], "sec_type": "STK", "exchange": "NASDAQ", "currency": "USD",
         "data_type": "1h", "what_to_show": "TRADES", "use_rth": False, "force": False},
    ]  # fmt: skip
    shown = {(e["symbol"], e["currency"]): e for e in run.events() if e["event"] == "series"}
    assert identity(shown["USD", "JPY"]) == ("IDEALPRO", "CASH", "JPY", None, "MIDPOINT", True)
    assert identity(shown["ES", "USD"]) == ("CME", "FUT", "USD", "202603", "TRADES", False)
    # Not named by the backend: the series is the job's.
    assert identity(shown["NVDA", "USD"]) == ("NASDAQ", "STK", "USD", None, "TRADES", False)
    assert run.summary()["bars_fetched"] == 25
