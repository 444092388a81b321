"""End-to-end fixtures: a simulator process; Debian's chromium driven by playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.support.processes import ROOT, SimulatorProcess, start_simulator_process

# Debian's chromium; `make test` installs it and passes its CHROMIUM here.
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The machine has no internet: without the background-networking flags chromium reaches for Google.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BUILT_UI = ROOT / "frontend" / "dist" / "index.html"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def gateway_process() -> Iterator[SimulatorProcess]:
    """The simulated gateway as its own process, on the real clock, as `make run` starts it."""
    running = start_simulator_process()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not BUILT_UI.is_file():
        pytest.fail(
            "the web UI is not built (frontend/dist/index.html is missing): "
            "run `make frontend/dist/index.html` first"
        )
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"the browser tests need chromium at {CHROMIUM}: `make test` installs it (as root, "
            "with apt-get), or install it yourself (sudo apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class BrowserErrors:
    """Console errors and uncaught exceptions of one page."""

    messages: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # Browsers ask for /favicon.ico on their own; the app has none.
        if "favicon" in message.location.get("url", ""):
            return
        self.messages.append(f"console: {message.text} ({message.location.get('url')})")

    def page_error(self, error: Exception) -> None:
        self.messages.append(f"page error: {error}")


@pytest.fixture
def page(browser) -> Iterator[Page]:
    """A fresh tab (own storage); the test fails if the page logged any error."""
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors = BrowserErrors()
    tab.on("console", errors.console)
    tab.on("pageerror", errors.page_error)
    yield tab
    context.close()
    assert errors.messages == [], "the page logged errors:\n" + "\n".join(errors.messages)


def screenshot(page: Page, name: str) -> None:
    """Saved under artifacts/screenshots/ (not committed) for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
