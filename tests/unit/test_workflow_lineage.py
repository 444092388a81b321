"""The lineage checksum and the range a workflow analyses, on hand-made bars and known calendars."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from backend.market_data.domain import OhlcvBar
from backend.workflows.executor import analysis_range
from backend.workflows.lineage import bars_checksum


def bar(day: int, close: float, volume: float = 1000.0, zone=UTC) -> OhlcvBar:
    timestamp = datetime(2025, 11, day, tzinfo=UTC).astimezone(zone)
    return (timestamp, close - 1, close + 1, close - 2, close, volume)


BARS = [bar(24, 10.0), bar(25, 11.5)]


def test_checksum_is_sha256_of_the_bars_values_only():
    checksum = bars_checksum(BARS)
    assert len(checksum) == 64 and int(checksum, 16) >= 0
    # The zone a timestamp is shown in does not matter, only the instant.
    eastern = timezone(timedelta(hours=-5))
    shifted = [bar(24, 10.0, zone=eastern), bar(25, 11.5, zone=eastern)]
    assert bars_checksum(shifted) == checksum


@pytest.mark.parametrize(
    "changed",
    [
        [bar(24, 10.0), bar(25, 11.51)],
        [bar(24, 10.0), bar(25, 11.5, volume=1001.0)],
        [bar(24, 10.0)],
        [bar(25, 11.5), bar(24, 10.0)],
    ],
)
def test_any_change_to_the_bars_changes_the_checksum(changed):
    assert bars_checksum(changed) != bars_checksum(BARS)


@pytest.mark.parametrize(
    ("now", "end"),
    [
        # Monday after the close: Monday's session.
        (datetime(2025, 12, 1, 22, 0, tzinfo=UTC), datetime(2025, 12, 1, 21, 0, tzinfo=UTC)),
        # Monday while trading: the Friday before, which closed early at 13:00 ET.
        (datetime(2025, 12, 1, 15, 0, tzinfo=UTC), datetime(2025, 11, 28, 18, 0, tzinfo=UTC)),
        # Thanksgiving (closed): Wednesday.
        (datetime(2025, 11, 27, 20, 0, tzinfo=UTC), datetime(2025, 11, 26, 21, 0, tzinfo=UTC)),
    ],
)
def test_range_ends_at_the_last_completed_session(now, end):
    assert analysis_range("NASDAQ", now, 30) == (end - timedelta(days=30), end)
