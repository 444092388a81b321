"""expected_bar_count counts per session; it must agree with the listed bars for any range."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from backend.market_data import calendar as market_calendar
from backend.market_data.domain import BarSize, Market, SecType


@pytest.mark.parametrize("bar_size", list(BarSize))
def test_the_count_equals_the_listed_bars_for_random_ranges(bar_size):
    rng = random.Random(bar_size.value)
    # Bars under a minute are asked for a day or so at a time; 40 days of them is 800,000 bars.
    longest = 3 * 86400 if bar_size.is_seconds else 40 * 86400
    for _ in range(300):
        start = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(3 * 365 * 86400))
        if rng.random() < 0.3:  # on a bar boundary, as most requests are
            start = start.replace(minute=rng.choice([0, 30]), second=0)
        end = start + timedelta(seconds=rng.randrange(1, longest))
        market = Market(SecType.STK, rng.choice(["NASDAQ", "NYSE"]), True)
        listed = market_calendar.expected_bar_timestamps(market, bar_size, start, end)
        counted = market_calendar.expected_bar_count(market, bar_size, start, end)
        assert counted == len(listed), (market, start, end)


def test_an_early_close_and_a_holiday_are_counted():
    # 2024-11-28 Thanksgiving (closed), 2024-11-29 closes at 13:00 New York.
    start, end = datetime(2024, 11, 27, tzinfo=UTC), datetime(2024, 11, 30, tzinfo=UTC)
    nasdaq = Market(SecType.STK, "NASDAQ", True)
    assert market_calendar.expected_bar_count(nasdaq, BarSize.M1, start, end) == 390 + 210
    assert market_calendar.expected_bar_count(nasdaq, BarSize.H1, start, end) == 7 + 4
