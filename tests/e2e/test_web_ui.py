"""The web UI in a real browser, served by the real backend, with the simulator as IB Gateway.

Each test sets up through the API what it needs to start from, so tests run in any order.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import screenshot
from tests.support.processes import (
    BackendProcess,
    app_environment,
    migrate,
)

pytestmark = pytest.mark.e2e

# The backend runs on the real clock: a few months of daily bars up to today.
DAYS_BACK = 60
JOB_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def database_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('e2e-ui') / 'market_data.db'}"
    migrate(url)
    return url


@pytest.fixture(scope="module")
def live_backend(database_url, gateway_process, tmp_path_factory) -> Iterator[BackendProcess]:
    log = tmp_path_factory.mktemp("e2e-ui-logs") / "backend-live.log"
    with BackendProcess(app_environment(database_url, gateway_process), log) as backend:
        yield backend


@pytest.fixture(scope="module")
def debug_backend(database_url, gateway_process, tmp_path_factory) -> Iterator[BackendProcess]:
    """A second backend on the same database, with DEBUG_MODE=true."""
    log = tmp_path_factory.mktemp("e2e-ui-logs") / "backend-debug.log"
    env = app_environment(database_url, gateway_process, DEBUG_MODE="true")
    with BackendProcess(env, log) as backend:
        yield backend


def cache(backend: BackendProcess, *symbols: str, days_back: int = DAYS_BACK) -> None:
    """Fill the cache through the API (the same refresh jobs the UI starts)."""
    with backend.client() as client:
        response = client.post(
            "/api/market-data/cache/refresh",
            params={"wait": "true"},
            json={"symbols": list(symbols), "data_type": "1d", "days_back": days_back},
        )
    assert response.status_code == 200 and response.json()["status"] == "completed", response.text


def uncache(backend: BackendProcess, symbol: str) -> None:
    with backend.client() as client:
        response = client.delete("/api/market-data/cache", params={"symbol": symbol})
    assert response.status_code == 200, response.text


def cached_series(backend: BackendProcess, symbol: str) -> dict:
    return httpx.get(f"{backend.url}/api/market-data/cache/{symbol}", timeout=10).json()


def cached_bar_count(backend: BackendProcess) -> int:
    page = httpx.get(f"{backend.url}/api/market-data/cache", params={"limit": 1}, timeout=10)
    return page.json()["count"]


def open_cache_page(page: Page, backend: BackendProcess) -> None:
    page.goto(f"{backend.url}/#/cache")
    # The config has loaded once the gateway badge shows.
    expect(page.get_by_test_id("simulated-badge")).to_be_visible()


def bars_cell(page: Page, symbol: str):
    # Columns: check, symbol, type, exchange, bars, ...
    return page.get_by_test_id(f"series-row-{symbol}-1d").locator("td").nth(4)


def test_add_symbols_form_fills_the_cache(page, live_backend):
    uncache(live_backend, "AAPL")
    open_cache_page(page, live_backend)
    expect(page.get_by_test_id("series-row-AAPL-1d")).to_have_count(0)

    page.get_by_label("Symbols (comma-separated)").fill("aapl")
    page.get_by_label("Days back").fill(str(DAYS_BACK))
    page.get_by_test_id("add-symbols-submit").click()

    job = page.get_by_test_id("job-status")
    expect(job.get_by_test_id("job-state")).to_have_text("completed", timeout=JOB_TIMEOUT_MS)
    expect(job.get_by_test_id("job-progress")).to_have_text("1 / 1 done")
    expect(job.locator(".job-result")).to_contain_text(re.compile(r"AAPL 1d\s*\d+ bars fetched"))

    stored = cached_series(live_backend, "AAPL")["count"]
    assert stored > DAYS_BACK // 2
    expect(bars_cell(page, "AAPL")).to_have_text(f"{stored:,}")


def test_add_form_asks_a_future_for_its_expiry(page, live_backend):
    open_cache_page(page, live_backend)
    form = page.get_by_role("form", name="Add symbols to the cache")
    expiry = form.get_by_label("Expiry (YYYYMM or YYYYMMDD)")
    hours = form.get_by_role("group", name="Hours")
    expect(expiry).to_have_count(0)
    expect(hours.get_by_role("radio", name="Regular hours")).to_be_checked()

    form.get_by_label("Asset class").select_option(label="Future")
    expect(expiry).to_be_visible()
    expect(hours).to_be_visible()
    expect(form.get_by_label("Exchange")).to_have_attribute("placeholder", "CME")
    form.get_by_label("Symbols (comma-separated)").fill("es")
    expiry.fill("2025-03")
    form.get_by_test_id("add-symbols-submit").click()
    expect(form.get_by_role("alert")).to_contain_text(
        "Expiry “2025-03” is not a contract month: use YYYYMM (e.g. 202503)"
    )
    expect(expiry).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("job-status")).to_have_count(0)
    screenshot(page, "add-form-future")

    # FX has no expiry and no extended hours, and no TRADES: MIDPOINT is its usual series.
    form.get_by_label("Asset class").select_option(label="FX")
    expect(expiry).to_have_count(0)
    expect(hours).to_have_count(0)
    expect(form.get_by_label("What to show")).to_have_value("MIDPOINT")


def test_add_form_fills_an_fx_series(page, live_backend):
    uncache(live_backend, "EUR")
    open_cache_page(page, live_backend)
    form = page.get_by_role("form", name="Add symbols to the cache")
    form.get_by_label("Asset class").select_option(label="FX")
    form.get_by_label("Symbols (comma-separated)").fill("eur.usd")
    form.get_by_label("Days back").fill("10")
    form.get_by_test_id("add-symbols-submit").click()

    job = page.get_by_test_id("job-status")
    expect(job.get_by_test_id("job-state")).to_have_text("completed", timeout=JOB_TIMEOUT_MS)
    row = page.get_by_test_id("series-row-EUR.USD-CASH-1d-MIDPOINT")
    expect(row.locator("td").nth(1)).to_have_text(re.compile(r"^EUR\.USD CASH\s*· MIDPOINT$"))
    row.click()
    expect(page.get_by_test_id("series-detail-title")).to_have_text(
        re.compile(r"^EUR\.USD CASH\s+· 1d · IDEALPRO · MIDPOINT$")
    )
    expect(page.get_by_test_id("candlestick-chart")).to_be_visible()
    expect(page.get_by_test_id("bars-table").locator("tbody tr").first).to_be_visible()


def test_series_opens_as_chart_and_bars(page, live_backend):
    cache(live_backend, "NVDA")
    series = cached_series(live_backend, "NVDA")
    open_cache_page(page, live_backend)

    page.get_by_test_id("series-row-NVDA-1d").click()

    chart = page.get_by_test_id("candlestick-chart")
    expect(chart).to_be_visible()
    canvas = chart.locator("canvas").first
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100, box

    rows = page.get_by_test_id("bars-table").locator("tbody tr")
    expect(rows).to_have_count(min(50, series["count"]))
    # Newest first, daily bars shown as dates.
    newest = series["bars"][-1]
    expect(rows.first.locator("td").first).to_have_text(newest["timestamp"][:10])
    expect(rows.first.locator("td").nth(4)).to_have_text(f"{newest['close']:,.2f}")
    screenshot(page, "cache-page")


def test_refresh_button_fetches_a_series(page, live_backend):
    # A month cached; the row's refresh asks for the default year, so bars are fetched.
    uncache(live_backend, "TSLA")
    cache(live_backend, "TSLA", days_back=30)
    before = cached_series(live_backend, "TSLA")["count"]
    open_cache_page(page, live_backend)
    expect(bars_cell(page, "TSLA")).to_have_text(f"{before:,}")

    page.get_by_test_id("refresh-button-TSLA-1d").click()

    job = page.get_by_test_id("job-status")
    expect(job.get_by_test_id("job-state")).to_have_text("completed", timeout=JOB_TIMEOUT_MS)
    result = job.locator(".job-result")
    expect(result).to_contain_text("TSLA 1d")
    expect(result).to_contain_text(re.compile(r"[1-9][\d,]* bars fetched"))
    after = cached_series(live_backend, "TSLA")["count"]
    assert after > before
    expect(bars_cell(page, "TSLA")).to_have_text(f"{after:,}")


def test_debug_banner_only_in_debug_mode(page, live_backend, debug_backend):
    open_cache_page(page, live_backend)
    expect(page.get_by_test_id("debug-banner")).to_have_count(0)

    open_cache_page(page, debug_backend)
    banner = page.get_by_test_id("debug-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("DEBUG MODE")
    page.goto(f"{debug_backend.url}/#/workflows")
    expect(banner).to_be_visible()


def run_workflow_in_ui(page: Page, backend: BackendProcess) -> str:
    """Run sma_crossover on the configured symbols (NVDA, TSLA); returns the execution id."""
    page.goto(f"{backend.url}/#/workflows")
    expect(page.get_by_label("Symbols (comma-separated)")).to_have_value("NVDA, TSLA")
    page.get_by_label("Lookback days").fill("45")
    page.get_by_test_id("run-workflow").click()
    page.wait_for_url(re.compile(r"#/workflows/\d+$"))
    execution_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_test_id("execution-status")).to_have_text("completed")
    expect(page.get_by_test_id(f"execution-row-{execution_id}")).to_be_visible()
    return execution_id


def test_workflow_run_shows_logs_and_lineage(page, live_backend):
    cache(live_backend, "NVDA", "TSLA")
    execution_id = run_workflow_in_ui(page, live_backend)
    detail = httpx.get(
        f"{live_backend.url}/api/workflows/executions/{execution_id}", timeout=10
    ).json()

    logs = page.get_by_test_id("execution-logs").locator("li")
    expect(logs).to_have_count(len(detail["logs"]))
    assert len(detail["logs"]) > 0
    for record in detail["lineage"]:
        row = page.get_by_test_id(f"lineage-row-{record['symbol']}")
        # Data source column: every bar was already cached.
        assert record["metadata"]["data_source"] == "cache"
        expect(row.locator("td").nth(4)).to_have_text("cache")
        expect(row).to_contain_text(record["metadata"]["checksum"][:12])
    assert {record["symbol"] for record in detail["lineage"]} == {"NVDA", "TSLA"}
    expect(page.get_by_test_id("execution-lineage")).not_to_contain_text("(debug)")
    screenshot(page, "workflow-page")


def test_debug_mode_workflow_is_marked_and_stays_off_the_gateway(
    page, live_backend, debug_backend, gateway_process
):
    cache(live_backend, "NVDA", "TSLA")
    connections = gateway_process.stats()["connections_total"]

    execution_id = run_workflow_in_ui(page, debug_backend)

    assert gateway_process.stats()["connections_total"] == connections
    expect(page.get_by_text("DEBUG MODE: runs read bars only from the cache")).to_be_visible()
    expect(page.locator(".execution-head")).to_contain_text("DEBUG MODE")
    expect(page.get_by_test_id(f"execution-row-{execution_id}")).to_contain_text("DEBUG MODE")
    for symbol in ("NVDA", "TSLA"):
        source = page.get_by_test_id(f"lineage-row-{symbol}").locator("td").nth(4)
        expect(source).to_have_text("cache (debug)")
    screenshot(page, "workflow-page-debug")


def test_status_page_shows_hit_rate(page, live_backend):
    cache(live_backend, "NVDA", "TSLA")
    with live_backend.client() as client:
        run = client.post(
            "/api/workflows/execute",
            json={"strategy": "sma_crossover", "symbols": ["NVDA"], "lookback_days": 45},
        )
        assert run.status_code == 200, run.text
        stats = client.get("/api/market-data/cache/stats").json()

    page.goto(f"{live_backend.url}/#/status")
    expect(page.get_by_test_id("hit-rate")).to_have_text(f"{stats['hit_rate'] * 100:.1f}%")
    nvda = next(row for row in stats["series"] if row["symbol"] == "NVDA")
    expect(page.get_by_test_id("series-hit-rate-NVDA-1d")).to_have_text(
        f"{nvda['hit_rate'] * 100:.1f}%"
    )
    # When the series was last written, in UTC.
    last_updated = datetime.fromisoformat(nvda["last_updated"]).astimezone(UTC)
    expect(page.get_by_test_id("stats-row-NVDA-1d")).to_contain_text(
        last_updated.strftime("%Y-%m-%d %H:%M UTC")
    )
    expect(page.get_by_test_id("health")).to_contain_text("ok")


def test_clear_cache_asks_for_confirmation(page, live_backend):
    cache(live_backend, "NVDA", "TSLA")
    total = cached_bar_count(live_backend)
    open_cache_page(page, live_backend)
    expect(page.get_by_test_id("series-row-NVDA-1d")).to_be_visible()

    page.get_by_test_id("clear-cache").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert cached_bar_count(live_backend) == total
    expect(page.get_by_test_id("series-row-NVDA-1d")).to_be_visible()

    page.get_by_test_id("clear-cache").click()
    page.get_by_test_id("confirm-button").click()
    expect(page.get_by_test_id("deleted-count")).to_have_text(f"Deleted {total:,} bars.")
    assert cached_bar_count(live_backend) == 0
    expect(page.get_by_text("Nothing is cached yet.")).to_be_visible()
    expect(page.get_by_test_id("series-table")).to_have_count(0)


def test_narrow_screen_shows_nav_and_table(page, live_backend):
    cache(live_backend, "NVDA")
    page.set_viewport_size({"width": 390, "height": 844})
    open_cache_page(page, live_backend)

    expect(page.get_by_test_id("series-row-NVDA-1d")).to_be_visible()
    page.get_by_role("button", name="Menu").click()
    nav = page.get_by_role("navigation", name="Main")
    for label in ("Cache", "Workflows", "Status"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    # Wide tables scroll inside their card; the page itself does not scroll sideways.
    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= 390, page_width
    screenshot(page, "cache-page-narrow")


def test_keyboard_alone_opens_a_series_and_reaches_the_workflows_page(page, live_backend):
    cache(live_backend, "NVDA")
    open_cache_page(page, live_backend)

    # Tab from the top of the page until the NVDA row has focus, then open it with Enter.
    row = page.get_by_test_id("series-row-NVDA-1d")
    for _ in range(60):
        page.keyboard.press("Tab")
        if row.evaluate("element => element === document.activeElement"):
            break
    else:
        pytest.fail("the NVDA row never received focus by Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("candlestick-chart")).to_be_visible()

    # The nav is reachable too: walk back with Shift+Tab to the Workflows link and follow it.
    link = page.get_by_role("link", name="Workflows")
    for _ in range(80):
        if link.evaluate("element => element === document.activeElement"):
            break
        page.keyboard.press("Shift+Tab")
    else:
        pytest.fail("the Workflows link never received focus by Shift+Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#/workflows$"))
    expect(page.get_by_test_id("run-workflow")).to_be_visible()


@pytest.fixture
def own_backend(gateway_process, tmp_path) -> Iterator[BackendProcess]:
    """A backend with a database and a pacing budget of its own: the job cancelled here must
    not leave the shared backend's budget spent for the tests after it."""
    url = f"sqlite:///{tmp_path / 'market_data.db'}"
    migrate(url)
    with BackendProcess(app_environment(url, gateway_process), tmp_path / "backend.log") as backend:
        yield backend


def wait_until_sending_pauses(count, quiet_s: float = 4.0, timeout_s: float = 120.0) -> int:
    """The request count once it has stood still for `quiet_s` (the job waits for pacing)."""
    deadline = time.monotonic() + timeout_s
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif last > 0 and time.monotonic() - since >= quiet_s:
            return last
    pytest.fail(f"the job never paused for pacing ({last} requests sent)")


def test_running_refresh_job_is_cancelled_from_the_job_panel(page, own_backend, gateway_process):
    # One request per session of 1-minute bars: ~100 requests, more than IBKR's 60 per 10 minutes,
    # so after its first 60 the job waits minutes for a pacing slot while it shows as running.
    symbol = "AMD"
    open_cache_page(page, own_backend)
    form = page.get_by_role("form", name="Add symbols to the cache")
    form.get_by_label("Symbols (comma-separated)").fill(symbol)
    form.get_by_label("Data type").select_option("1m")
    form.get_by_label("Days back").fill("150")
    page.get_by_test_id("add-symbols-submit").click()

    job = page.get_by_test_id("job-status")
    expect(job.get_by_test_id("job-state")).to_have_text("running", timeout=JOB_TIMEOUT_MS)
    expect(job.get_by_test_id("job-estimate")).to_contain_text(
        re.compile(r"~[1-9]\d+ IBKR requests, ~\d+ min at the pacing budget")
    )

    def requests_sent() -> int:
        return gateway_process.stats()["requests_by_symbol"].get(symbol, 0)

    # Cancel while the job waits for its pacing slot: the cancel must not wait for the slot too.
    sent = wait_until_sending_pauses(requests_sent)
    expect(job.get_by_test_id("job-state")).to_have_text("running")
    cancel = job.get_by_role("button", name=re.compile(rf"^Cancel refresh of {symbol}"))
    cancel.focus()
    page.keyboard.press("Enter")
    expect(job.get_by_test_id("job-state")).to_have_text("cancelled", timeout=JOB_TIMEOUT_MS)
    expect(job.get_by_test_id("job-cancel")).to_have_count(0)
    expect(job.locator(".job-result")).to_contain_text(
        re.compile(rf"{symbol} 1m\s*Cancelled: [1-9][\d,]* bars fetched before it stopped")
    )

    # Nothing more is sent to the gateway.
    page.wait_for_timeout(3000)
    assert requests_sent() == sent

    # The backend agrees, and counts only bars it committed.
    job_id = job.locator(".job").get_attribute("data-testid").removeprefix("job-")
    with own_backend.client() as client:
        stored = client.get(f"/api/market-data/cache/refresh/{job_id}").json()
        series = client.get(f"/api/market-data/cache/{symbol}", params={"data_type": "1m"}).json()
    assert stored["status"] == "cancelled", stored
    result = stored["results"][0]
    assert result["status"] == "cancelled", stored
    assert 0 < result["bars_fetched"] <= series["total"], (result, series["total"])
    expect(job.locator(".job-result")).to_contain_text(f"{result['bars_fetched']:,} bars fetched")
    screenshot(page, "refresh-job-cancelled")
