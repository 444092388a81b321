"""Edits to a filled cache that reproduce what IBKR's answers sometimes lack."""

from backend.market_data import calendar as market_calendar
from backend.market_data.bar_columns import BarColumns
from backend.market_data.domain import BarSize, SeriesKey
from backend.storage.market_data_repository import BarFilter
from backend.workflows.executor import analysis_range
from tests.support.bars import store


def drop_bar_as_ibkr_did(container, symbol: str, lookback_days: int) -> tuple:
    """Make the cache look as if IBKR's answer had lacked one bar in the middle of the range.

    The bar is deleted and its slot recorded as confirmed empty, as the client records a bar
    missing from an answer. Returns the bar's [start, end).
    """
    repository = container.market_data_repository()
    series = SeriesKey(symbol, "NASDAQ", BarSize.D1.value)
    start, end = analysis_range("NASDAQ", container.clock()(), lookback_days)
    bars = repository.read_columns(series, start, end)
    stamp = bars.timestamps()[len(bars) // 2]
    repository.delete_bars(
        BarFilter(symbol, "NASDAQ", BarSize.D1.value, date_from=stamp, date_to=stamp)
    )
    slot = (stamp, market_calendar.bar_end("NASDAQ", BarSize.D1, stamp))
    fetched_at = container.clock()()
    store(
        repository,
        series,
        BarColumns.empty(),
        fetched_at,
        empty_ranges=[slot],
        empty_reason="not in IBKR's answer",
    )
    return slot
