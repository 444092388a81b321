"""BarColumns: bars as numpy columns, and every way in and out of them."""

from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from backend.market_data.bar_columns import BarColumns, datetime_to_ns
from backend.market_data.domain import Bar

SESSION_OPEN = datetime(2025, 3, 3, 14, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def at(minute: int) -> datetime:
    return SESSION_OPEN + minute * MINUTE


def bar(minute: int, close: float = 100.0, **fields) -> Bar:
    values = {
        "timestamp": at(minute),
        "open": close - 0.05,
        "high": close + 0.10,
        "low": close - 0.10,
        "close": close,
        "volume": 1200.0 + minute,
        "wap": close + 0.0125,
        "bar_count": 40 + minute,
        "is_final": True,
    }
    return Bar(**(values | fields))


def mixed_bars() -> list[Bar]:
    """Bars in time order with every kind of missing value and both kinds of is_final."""
    return [
        bar(0, 100.01),
        bar(1, 100.02, wap=None),
        bar(2, 99.97, bar_count=None),
        bar(3, 99.99, wap=None, bar_count=None, is_final=False),
        bar(4, 100.10, volume=float("nan"), is_final=False),
    ]


def comparable(rows) -> list[tuple]:
    """Bars or tuples as tuples in which NaN equals NaN, so a NaN volume compares equal."""
    rows = [astuple(row) if isinstance(row, Bar) else row for row in rows]
    return [tuple("NaN" if value != value else value for value in row) for row in rows]


def fields_of(columns: BarColumns) -> dict[str, np.ndarray]:
    return {name: getattr(columns, name) for name in BarColumns.__dataclass_fields__}


def columns_of(minutes: list[int], close: float = 100.0) -> BarColumns:
    return BarColumns.from_bars(bar(minute, close) for minute in minutes)


# -- construction --------------------------------------------------------------------------------


def test_from_bars_gives_back_the_same_bars_with_missing_values_and_is_final():
    bars = mixed_bars()
    columns = BarColumns.from_bars(bars)

    assert comparable(columns.bars()) == comparable(bars)
    assert columns.wap[1] != columns.wap[1]  # NaN where IBKR sent no wap
    assert columns.bar_count.tolist() == [40, 41, -1, -1, 44]
    assert columns.is_final.tolist() == [True, True, True, False, False]


def test_from_bars_sorts_by_time_and_the_last_of_equal_timestamps_wins():
    given = [bar(2, 102.0), bar(0, 100.0), bar(2, 202.0), bar(1, 101.0), bar(2, 302.0)]
    columns = BarColumns.from_bars(given)

    assert columns.timestamps() == [at(0), at(1), at(2)]
    assert columns.close.tolist() == [100.0, 101.0, 302.0]
    assert list(columns.bars()) == [given[1], given[3], given[4]]


def test_from_bars_of_nothing_is_empty():
    columns = BarColumns.from_bars([])

    assert len(columns) == 0
    assert columns == BarColumns.empty()
    assert columns.first_at() is None and columns.last_at() is None
    assert list(columns.bars()) == [] and columns.ohlcv() == []


def test_a_single_bar():
    only = bar(7, 123.45, wap=None)
    columns = BarColumns.from_bars([only])

    assert len(columns) == 1
    assert columns.first_at() == columns.last_at() == at(7)
    assert list(columns.bars()) == [only]


def test_times_need_a_time_zone():
    naive = bar(0).timestamp.replace(tzinfo=None)
    with pytest.raises(ValueError, match="time zone"):
        BarColumns.from_bars([bar(0, timestamp=naive)])
    with pytest.raises(ValueError, match="time zone"):
        columns_of([0, 1]).between(naive, at(1))


def test_datetime_to_ns_is_exact_and_takes_any_time_zone():
    moment = datetime(2025, 3, 3, 14, 30, 0, 123456, tzinfo=UTC)
    eastern = moment.astimezone(ZoneInfo("America/New_York"))

    assert datetime_to_ns(moment) == pd.Timestamp(moment).value
    assert datetime_to_ns(eastern) == datetime_to_ns(moment)


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"open": np.zeros(3, np.float32)}, "float64"),
        ({"bar_count": np.zeros(3)}, "int64"),
        ({"volume": [1.0, 2.0, 3.0]}, "numpy array"),
        ({"wap": np.zeros(2)}, "2 values"),
        ({"close": np.zeros((3, 1))}, "1-d"),
        ({"timestamp": np.array([0, 2, 1], np.int64)}, "strictly increasing"),
        ({"timestamp": np.array([0, 1, 1], np.int64)}, "strictly increasing"),
    ],
)
def test_columns_must_be_typed_equally_long_and_in_time_order(change, problem):
    fields = {
        name: getattr(columns_of([0, 1, 2]), name) for name in BarColumns.__dataclass_fields__
    }
    with pytest.raises(ValueError, match=problem):
        BarColumns(**(fields | change))


def test_arrays_are_read_only_and_the_callers_arrays_stay_writable():
    close = np.array([1.0, 2.0])
    columns = BarColumns(**(fields_of(columns_of([0, 1])) | {"close": close}))

    with pytest.raises(ValueError, match="read-only"):
        columns.close[0] = 5.0
    close[0] = 5.0  # the caller's own array is untouched by the wrapping
    assert columns.close.tolist() == [5.0, 2.0]


def test_concat_joins_parts_in_order():
    parts = [columns_of([0, 1]), BarColumns.empty(), columns_of([2]), columns_of([3, 4])]
    joined = BarColumns.concat(parts)

    assert joined == columns_of([0, 1, 2, 3, 4])
    assert BarColumns.concat([]) == BarColumns.empty()
    assert BarColumns.concat([parts[0]]) == parts[0]


def test_concat_refuses_overlapping_or_unordered_parts():
    with pytest.raises(ValueError, match="strictly increasing"):
        BarColumns.concat([columns_of([0, 1]), columns_of([1, 2])])
    with pytest.raises(ValueError, match="strictly increasing"):
        BarColumns.concat([columns_of([3]), columns_of([0])])


# -- selection and merging -----------------------------------------------------------------------


def test_between_is_start_inclusive_end_exclusive():
    columns = columns_of([0, 1, 2, 3, 4])

    assert columns.between(at(1), at(3)).timestamps() == [at(1), at(2)]
    assert columns.between(at(0), at(5)) == columns
    assert columns.between(at(-10), at(1)).timestamps() == [at(0)]
    # bounds between bars take the bars inside
    assert columns.between(at(1) + MINUTE / 2, at(3) + MINUTE / 2).timestamps() == [at(2), at(3)]


@pytest.mark.parametrize(
    "start, end",
    [(at(2), at(2)), (at(3), at(1)), (at(-5), at(0)), (at(5), at(9))],
    ids=["empty range", "reversed range", "before every bar", "after every bar"],
)
def test_between_with_nothing_inside_is_empty(start, end):
    assert len(columns_of([0, 1, 2, 3, 4]).between(start, end)) == 0


def test_take_by_slice_mask_and_positions():
    columns = columns_of([0, 1, 2, 3])

    assert columns.take(slice(1, 3)).timestamps() == [at(1), at(2)]
    assert columns.take(columns.close > 0).timestamps() == columns.timestamps()
    assert columns.take(np.array([0, 3])).timestamps() == [at(0), at(3)]
    with pytest.raises(ValueError, match="strictly increasing"):
        columns.take(np.array([3, 0]))


def test_merged_with_keeps_every_timestamp_once_and_newer_bars_win():
    older = columns_of([0, 1, 2, 3], close=100.0)
    newer = BarColumns.from_bars([bar(2, 200.0, is_final=False), bar(5, 200.0), bar(1, 200.0)])
    merged = older.merged_with(newer)

    assert merged.timestamps() == [at(0), at(1), at(2), at(3), at(5)]
    assert merged.close.tolist() == [100.0, 200.0, 200.0, 100.0, 200.0]
    assert merged.is_final.tolist() == [True, True, False, True, True]


@pytest.mark.parametrize(
    "older_minutes, newer_minutes",
    [([0, 1], [2, 3]), ([2, 3], [0, 1]), ([0, 1], [0, 1]), ([], [0, 1]), ([0, 1], [])],
    ids=["newer after", "newer before", "same bars", "older empty", "newer empty"],
)
def test_merged_with_disjoint_identical_and_empty_sides(older_minutes, newer_minutes):
    older = columns_of(older_minutes, close=100.0)
    newer = columns_of(newer_minutes, close=200.0)
    merged = older.merged_with(newer)

    expected = sorted(set(older_minutes) | set(newer_minutes))
    assert merged.timestamps() == [at(minute) for minute in expected]
    for minute, close in zip(expected, merged.close.tolist(), strict=True):
        assert close == (200.0 if minute in newer_minutes else 100.0)


# -- reading out ---------------------------------------------------------------------------------


def test_timestamps_are_utc_aware_datetimes():
    columns = BarColumns.from_bars(mixed_bars())

    assert columns.timestamps() == [b.timestamp for b in mixed_bars()]
    assert all(moment.tzinfo is UTC for moment in columns.timestamps())
    assert columns.first_at() == at(0) and columns.last_at() == at(4)


def test_ohlcv_gives_the_bars_as_tuples():
    bars = mixed_bars()
    rows = BarColumns.from_bars(bars).ohlcv()

    assert len(rows) == len(bars)
    expected = [(b.timestamp, b.open, b.high, b.low, b.close, b.volume) for b in bars]
    assert comparable(rows) == comparable(expected)
    assert all(type(value) is float for row in rows for value in row[1:])


def test_to_pandas_has_a_utc_index_float_columns_and_nan_where_not_sent():
    columns = BarColumns.from_bars(mixed_bars())
    frame = columns.to_pandas()

    assert frame.index.name == "timestamp"
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.dtype == "datetime64[ns, UTC]"
    assert list(frame.index) == [pd.Timestamp(b.timestamp) for b in mixed_bars()]
    assert list(frame.columns) == [
        "open", "high", "low", "close", "volume", "wap", "bar_count", "is_final"
    ]  # fmt: skip
    floats = ["open", "high", "low", "close", "volume", "wap", "bar_count"]
    assert all(frame[name].dtype == np.float64 for name in floats)
    assert frame["is_final"].dtype == bool
    assert frame["wap"].isna().tolist() == [False, True, False, True, False]
    assert frame["bar_count"].isna().tolist() == [False, False, True, True, False]
    assert frame["volume"].isna().tolist() == [False, False, False, False, True]
    assert frame["close"].tolist() == columns.close.tolist()
    assert frame["is_final"].tolist() == columns.is_final.tolist()


def test_to_pandas_gives_a_frame_of_its_own():
    columns = columns_of([0, 1])
    frame = columns.to_pandas()

    frame.iloc[0, frame.columns.get_loc("close")] = -1.0
    frame.loc[frame.index[0], "is_final"] = False
    assert columns.close[0] == 100.0 and bool(columns.is_final[0])


def test_to_pandas_is_the_frame_the_dataframe_constructor_builds():
    columns = BarColumns.from_bars(mixed_bars())
    expected = pd.DataFrame(
        {
            **{name: getattr(columns, name) for name in ("open", "high", "low", "close")},
            "volume": columns.volume,
            "wap": columns.wap,
            "bar_count": np.where(columns.bar_count == -1, np.nan, columns.bar_count),
            "is_final": columns.is_final,
        },
        index=pd.DatetimeIndex(
            columns.timestamp.view("datetime64[ns]"), tz="UTC", name="timestamp"
        ),
    )

    frame = columns.to_pandas()

    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert frame.columns.equals(expected.columns) and frame.columns.dtype == expected.columns.dtype
    # and it works as any frame does
    assert frame.loc[frame.index[1:3], ["close", "is_final"]].shape == (2, 2)
    assert frame.resample("2min").last()["close"].notna().sum() == 3


def test_a_changed_frame_leaves_its_columns_and_their_other_frames_as_they_were():
    columns = BarColumns.from_bars(mixed_bars())
    before = {name: getattr(columns, name).copy() for name in BarColumns.__dataclass_fields__}
    frame, other = columns.to_pandas(), columns.to_pandas()

    # ways a user changes a frame in place, each allowed (the frame owns its data)
    frame.iloc[0, 0] = -1.0
    frame.loc[frame.index[1], "close"] = -2.0
    frame["high"] += 1
    frame["wap"] = 0.0
    frame.fillna(-3.0, inplace=True)
    frame.clip(lower=-10.0, inplace=True)
    frame.iloc[:, frame.columns.get_loc("is_final")] = False
    frame.to_numpy()[0, 0] = -4.0
    frame.columns.name = "field"
    frame.index.name = "start"

    assert frame["open"].iloc[0] == -1.0 and not frame["is_final"].any()
    for name, values in before.items():
        assert np.array_equal(getattr(columns, name), values, equal_nan=True), name
    pd.testing.assert_frame_equal(other, columns.to_pandas(), check_exact=True)
    assert other["open"].iloc[0] == columns.open[0]
    assert other.columns.name is None and other.index.name == "timestamp"
    assert columns.to_pandas().columns.name is None


def test_empty_columns_to_pandas_and_arrow():
    frame = BarColumns.empty().to_pandas()
    table = BarColumns.empty().to_arrow()

    assert len(frame) == 0 and frame.index.dtype == "datetime64[ns, UTC]"
    assert table.num_rows == 0 and table.schema == columns_of([0]).to_arrow().schema


def test_to_arrow_types_and_nulls_where_not_sent():
    columns = BarColumns.from_bars(mixed_bars())
    table = columns.to_arrow()

    assert table.column_names == [
        "timestamp", "open", "high", "low", "close", "volume", "wap", "bar_count", "is_final"
    ]  # fmt: skip
    assert table.schema.field("timestamp").type == pa.timestamp("ns", tz="UTC")
    assert table.schema.field("bar_count").type == pa.int64()
    assert table.schema.field("is_final").type == pa.bool_()
    for name in ("open", "high", "low", "close", "volume", "wap"):
        assert table.schema.field(name).type == pa.float64()
    assert table.column("wap").null_count == 2
    assert table.column("bar_count").null_count == 2
    assert table.column("volume").null_count == 1
    assert table.column("wap").is_null().to_pylist() == [False, True, False, True, False]
    assert table.column("bar_count").to_pylist() == [40, 41, None, None, 44]
    assert table.column("timestamp").to_pylist() == [
        pd.Timestamp(b.timestamp) for b in mixed_bars()
    ]
    assert table.column("close").to_pylist() == columns.close.tolist()
    assert table.column("is_final").to_pylist() == columns.is_final.tolist()


def test_equality_compares_values_and_treats_missing_values_as_equal():
    assert BarColumns.from_bars(mixed_bars()) == BarColumns.from_bars(mixed_bars())
    assert columns_of([0, 1], close=100.0) != columns_of([0, 1], close=100.5)
    assert columns_of([0, 1]) != columns_of([0, 2])
    assert repr(columns_of([0, 1])).startswith("BarColumns(2 bars, 2025-03-03T14:30:00+00:00")
