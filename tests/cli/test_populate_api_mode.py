"""--api-url: the CLI starts refresh jobs on a running backend and follows them (HTTP mocked)."""

from __future__ import annotations

import io
import json

import httpx
import respx

from backend.cli.populate import main
from tests.cli.conftest import CliRun
from tests.support.app import make_settings
from tests.support.gateway import free_port

BACKEND = "http://backend.test"
REFRESH = f"{BACKEND}/api/market-data/cache/refresh"


def run_api(argv: list[str], sqlite_url: str, **overrides) -> CliRun:
    settings = make_settings(sqlite_url, gateway_port=1, **overrides)
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(argv, settings=settings, stdout=stdout, stderr=stderr)
    return CliRun(code, stdout.getvalue(), stderr.getvalue())


def job(job_id: str, status: str, done: int, total: int, results: list[dict]) -> dict:
    return {
        "job_id": job_id,
        "status": status,
        "created_at": "2025-12-01T22:00:00Z",
        "finished_at": None,
        "progress": {"done": done, "total": total},
        "results": results,
    }


def ok(symbol: str, fetched: int, cached: int, data_type: str = "1d") -> dict:
    return {"symbol": symbol, "data_type": data_type, "status": "ok", "bars_fetched": fetched,
            "bars_cached": cached, "error": None}


@respx.mock
def test_starts_a_job_then_polls_it_until_done(sqlite_url):
    start = respx.post(REFRESH).respond(202, json=job("j1", "queued", 0, 2, []))
    poll = respx.get(f"{REFRESH}/j1").mock(side_effect=[
        httpx.Response(200, json=job("j1", "running", 1, 2, [ok("NVDA", 21, 21)])),
        httpx.Response(200, json=job("j1", "completed", 2, 2, [ok("NVDA", 21, 21),
                                                                 ok("TSLA", 0, 21)])),
    ])

    run = run_api(
        ["--api-url", BACKEND, "--symbols", "nvda,TSLA", "--days-back", "30", "--json"],
        sqlite_url,
        API_TOKEN="s3cret",
    )

    assert run.exit_code == 0, run.stderr
    sent = start.calls.last.request
    assert json.loads(sent.content) == {
        "symbols": ["NVDA", "TSLA"], "sec_type": "STK", "exchange": "NASDAQ", "currency": "USD",
        "data_type": "1d", "what_to_show": "TRADES", "use_rth": True, "days_back": 30,
        "force": False,
    }
    assert sent.headers["Authorization"] == "Bearer s3cret"
    assert poll.call_count == 2
    assert run.series("NVDA")["status"] == "ok"
    assert run.series("NVDA")["bars_fetched"] == 21
    assert run.series("TSLA")["status"] == "fresh"
    assert run.series("TSLA")["bars_skipped_fresh"] == 21
    assert run.summary()["bars_fetched"] == 21


@respx.mock
def test_one_job_per_data_type_and_force_is_passed_on(sqlite_url):
    start = respx.post(REFRESH).mock(side_effect=[
        httpx.Response(202, json=job("d", "completed", 1, 1, [ok("NVDA", 5, 5, "1d")])),
        httpx.Response(202, json=job("h", "completed", 1, 1, [ok("NVDA", 30, 30, "1h")])),
    ])

    run = run_api(["--api-url", BACKEND, "--symbols", "NVDA", "--data-type", "1d,1h", "--force"],
                  sqlite_url)

    assert run.exit_code == 0
    bodies = [json.loads(call.request.content) for call in start.calls]
    assert [(b["data_type"], b["force"]) for b in bodies] == [("1d", True), ("1h", True)]
    # Without API_TOKEN no Authorization header is sent.
    assert "Authorization" not in start.calls.last.request.headers
    assert "NVDA 1h: ok, 30 bars fetched" in run.stdout


@respx.mock
def test_a_symbol_failing_on_the_backend_exits_1(sqlite_url):
    failed = {"symbol": "ZZZZ", "data_type": "1d", "status": "error", "bars_fetched": 0,
              "bars_cached": 0, "error": {"code": "unknown_contract", "status_code": 404,
                                          "detail": "IBKR has no stock ZZZZ on NASDAQ"}}
    respx.post(REFRESH).respond(202, json=job("j", "partial", 2, 2, [ok("NVDA", 3, 3), failed]))

    run = run_api(["--api-url", BACKEND, "--symbols", "NVDA,ZZZZ", "--json"], sqlite_url)

    assert run.exit_code == 1
    assert run.series("ZZZZ")["error"] == {
        "code": "unknown_contract", "detail": "IBKR has no stock ZZZZ on NASDAQ"
    }
    assert run.series("NVDA")["status"] == "ok"


@respx.mock
def test_401_says_to_set_api_token(sqlite_url):
    body = {"detail": "missing bearer token", "code": "unauthorized"}
    respx.post(REFRESH).respond(401, json=body)

    run = run_api(["--api-url", BACKEND, "--symbols", "NVDA"], sqlite_url)

    assert run.exit_code == 2
    assert "401" in run.stderr and "missing bearer token" in run.stderr
    assert "API_TOKEN" in run.stderr
    assert "Traceback" not in run.stderr


@respx.mock
def test_422_names_the_rejected_field(sqlite_url):
    body = {"detail": [{"field": "symbols", "message": "List should have at most 50 items"}],
            "code": "validation_error"}
    respx.post(REFRESH).respond(422, json=body)

    run = run_api(["--api-url", BACKEND, "--symbols", "NVDA", "--json"], sqlite_url)

    assert run.exit_code == 2
    (error,) = run.events()
    assert error["event"] == "error" and error["code"] == "validation_error"
    assert "symbols: List should have at most 50 items" in error["detail"]


def test_backend_not_running_is_a_clear_error(sqlite_url):
    url = f"http://127.0.0.1:{free_port()}"

    run = run_api(["--api-url", url, "--symbols", "NVDA"], sqlite_url)

    assert run.exit_code == 1
    assert f"cannot reach the backend at {url}" in run.stderr
    assert "make run" in run.stderr
    assert "Traceback" not in run.stderr
