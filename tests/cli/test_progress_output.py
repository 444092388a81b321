"""The terminal progress display: bars per symbol and overall, bars fetched, and pacing waits."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from backend.cli.renderers import RichOutput
from backend.ibkr.pacing import PacingStats
from backend.market_data.domain import SeriesKey
from backend.market_data.population import (
    ChunkStored,
    SeriesFinished,
    SeriesPlan,
    SeriesPlanned,
    SeriesResult,
    SeriesStatus,
)

START = datetime(2025, 1, 2, tzinfo=UTC)
END = datetime(2025, 12, 1, tzinfo=UTC)


def daily(symbol: str) -> SeriesKey:
    return SeriesKey(symbol, "NASDAQ", "1d")


def plan(symbol: str, requests: int) -> SeriesPlan:
    return SeriesPlan(daily(symbol), START, END, 0, 0, [(START, END)], [None] * requests)


def terminal_output(pacing: PacingStats) -> tuple[RichOutput, io.StringIO]:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    return RichOutput(screen, io.StringIO(), pacing, console=console), screen


def test_shows_a_bar_per_symbol_the_total_and_the_pacing_wait():
    pacing = PacingStats()
    output, screen = terminal_output(pacing)

    with output.live():
        output.handle(SeriesPlanned(plan("NVDA", 2)))
        output.handle(SeriesPlanned(plan("TSLA", 2)))
        output.handle(ChunkStored(daily("NVDA"), 250, START, END))
        # The scheduler is holding the next request back when the display refreshes.
        pacing.current_wait_s = 3.2
    shown = screen.getvalue()

    assert "pacing: waiting 3.2 s" in shown
    assert "NVDA" in shown and "250 bars" in shown
    assert "1/4" in shown  # overall: one chunk of four stored


def test_a_failed_symbol_is_marked_and_its_error_printed():
    output, screen = terminal_output(PacingStats())

    with output.live():
        output.handle(SeriesPlanned(plan("ZZZZ", 1)))
        output.handle(SeriesFinished(SeriesResult(
            daily("ZZZZ"), SeriesStatus.ERROR, 0, 0, 0, 0, "unknown_contract",
            "IBKR has no stock ZZZZ on NASDAQ (error 200)",
        )))
    shown = screen.getvalue()

    assert "ZZZZ failed" in shown
    assert "ZZZZ 1d failed: IBKR has no stock ZZZZ on NASDAQ (error 200)" in shown
