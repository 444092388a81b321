"""The segment codec gives back exactly the bars it was given, and refuses malformed bytes."""

import struct

import numpy as np
import pytest

from backend.market_data.bar_columns import BarColumns
from backend.storage.segment_codec import (
    CLOSE_STEP,
    CONSTANT,
    DECIMAL,
    FORMAT_VERSION,
    HEADER_SIZE,
    INT32,
    MAGIC,
    NEAR_CLOSE,
    PER_BAR,
    RAW,
    REGULAR,
    SECONDS,
    SMALL_COUNT,
    decode_segment,
    decode_segments,
    encode_segment,
    encode_segments,
)

SESSION_OPEN_NS = 1_741_012_200 * 10**9  # 2025-03-03 14:30 UTC
DAY_NS = 86_400 * 10**9
MINUTE_NS = 60 * 10**9
# The header as the module docstring describes it, and those of versions 2 and 1.
HEADER = struct.Struct("<4sB10sqqIHBi")
HEADER_FIELDS = (
    "magic", "version", "layout", "base", "step", "count", "fetch_index", "is_final", "close_base"
)  # fmt: skip
HEADER_V2 = struct.Struct("<4sB10sqqIHB")
HEADER_V1 = struct.Struct("<4sB8sqI")
# The layout of a typical session of 1-minute bars: evenly spaced starts; open, high and low as
# int16 cents from the close, the close as int16 steps in cents; whole volumes as int32; wap
# with four decimals near the close; counts as uint16; one fetch and one finality for all.
TYPICAL_CODES = [NEAR_CLOSE + 2] * 3 + [CLOSE_STEP + 2, DECIMAL + 0, NEAR_CLOSE + 4, SMALL_COUNT]
TYPICAL_LAYOUT = [REGULAR, *TYPICAL_CODES, CONSTANT, CONSTANT]
# The record of a version 1 segment whose every field is RAW.
RAW_RECORD_V1 = np.dtype(
    [("timestamp", "<i8")]
    + [(name, "<f8") for name in ("open", "high", "low", "close", "volume", "wap")]
    + [("bar_count", "<i8"), ("fetch_index", "<u2"), ("is_final", "u1")]
)


def session(bars: int = 390, seed: int = 1, day: int = 0) -> BarColumns:
    """A session of 1-minute bars like IBKR's: a random walk with two-decimal prices, a wap
    with four decimals, whole volumes and trade counts."""
    rng = np.random.default_rng(seed)
    close = np.round(100 + np.cumsum(rng.normal(0, 0.05, bars)), 2)
    open_ = np.round(np.concatenate([[100.0], close[:-1]]), 2)
    high = np.round(np.maximum(open_, close) + np.abs(rng.normal(0, 0.03, bars)), 2)
    low = np.round(np.minimum(open_, close) - np.abs(rng.normal(0, 0.03, bars)), 2)
    return BarColumns(
        timestamp=SESSION_OPEN_NS + day * DAY_NS + np.arange(bars, dtype=np.int64) * MINUTE_NS,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=np.round(rng.lognormal(8, 1, bars)),
        wap=np.round(low + (high - low) * rng.uniform(0, 1, bars), 4),
        bar_count=rng.poisson(60, bars).astype(np.int64),
        is_final=np.ones(bars, dtype=bool),
    )


def with_columns(columns: BarColumns, **replacements: np.ndarray) -> BarColumns:
    fields = {name: getattr(columns, name) for name in BarColumns.__dataclass_fields__}
    return BarColumns(**(fields | replacements))


def awkward(columns: BarColumns) -> BarColumns:
    """The bars with values no decimal scale reproduces, so every column is stored RAW."""
    marks = np.arange(len(columns))
    return with_columns(
        columns,
        # 0.1 + 0.2 is 0.30000000000000004: not a short decimal, so it must not be rounded
        open=columns.open + (0.1 + 0.2),
        high=columns.high * np.pi,
        # too large for an int32 once scaled to cents
        low=columns.low * 1e8,
        # -0.0 differs from 0.0 only in its sign bit
        close=np.where(marks == 0, -0.0, columns.close * np.e),
        volume=np.where(marks % 7 == 0, np.nan, columns.volume),
        wap=np.where(marks == 0, np.inf, columns.wap),
        bar_count=columns.bar_count + 2**40,
    )


def round_trip(columns: BarColumns, fetch_index=None) -> tuple[BarColumns, np.ndarray]:
    if fetch_index is None:
        fetch_index = np.zeros(len(columns), dtype=np.uint16)
    decoded, decoded_index = decode_segment(encode_segment(columns, fetch_index))
    assert decoded == columns
    for name in BarColumns.__dataclass_fields__:
        assert same_bits(getattr(decoded, name), getattr(columns, name)), name
    assert decoded_index.dtype == np.uint16
    assert decoded_index.tolist() == np.asarray(fetch_index).tolist()
    return decoded, decoded_index


def same_bits(left: np.ndarray, right: np.ndarray) -> bool:
    return left.dtype == right.dtype and left.tobytes() == right.tobytes()


def header_of(data: bytes) -> dict:
    return dict(zip(HEADER_FIELDS, HEADER.unpack_from(data), strict=True))


# -- round trips ---------------------------------------------------------------------------------


def test_a_session_round_trips_with_its_fetch_index():
    columns = session()
    round_trip(columns, (np.arange(len(columns)) // 100).astype(np.uint16))


def test_a_session_is_stored_as_int16_differences_with_its_times_and_fetch_said_once():
    columns = session()
    data = encode_segment(columns, np.full(len(columns), 3, np.uint16))
    header = header_of(data)

    assert header["version"] == FORMAT_VERSION == 3
    assert list(header["layout"]) == TYPICAL_LAYOUT
    assert header["base"] == columns.timestamp[0]
    assert header["step"] == MINUTE_NS
    assert header["count"] == len(columns)
    assert (header["fetch_index"], header["is_final"]) == (3, 1)
    # the first close in cents, which the stored steps count from
    assert header["close_base"] == round(columns.close[0] * 100)
    # five int16 prices, an int32 volume and a uint16 count: 16 bytes a bar, 28 in version 2
    assert len(data) == HEADER_SIZE + len(columns) * 16


def test_a_session_with_gaps_stores_seconds_and_mixed_fetches_and_finality_per_bar():
    columns = session(bars=30)
    gapped = with_columns(
        columns.take(np.flatnonzero(np.arange(30) % 4 != 1)), is_final=np.arange(22) < 20
    )
    fetch_index = (np.arange(22) >= 10).astype(np.uint16)
    data = encode_segment(gapped, fetch_index)

    assert list(header_of(data)["layout"]) == [SECONDS, *TYPICAL_CODES, PER_BAR, PER_BAR]
    # int32 seconds, the 16 bytes of a typical bar, the fetch index and is_final
    assert len(data) == HEADER_SIZE + 22 * (4 + 16 + 2 + 1)
    round_trip(gapped, fetch_index)


def test_a_chunk_of_sessions_encodes_as_each_session_alone():
    days = [session(bars=bars, seed=day, day=day) for day, bars in enumerate((390, 210, 1, 390))]
    chunk = BarColumns.concat(days)
    fetch_index = np.repeat(np.arange(4, dtype=np.uint16), [len(day) for day in days])
    bounds, start = [], 0
    for day in days:
        bounds.append((start, start + len(day)))
        start += len(day)

    blobs = encode_segments(chunk, fetch_index, bounds)

    for blob, day, (first, stop) in zip(blobs, days, bounds, strict=True):
        alone, alone_index = decode_segment(blob)
        assert alone == day
        assert alone_index.tolist() == fetch_index[first:stop].tolist()
    # one layout for the chunk: the decimal codes are chosen over all its bars
    assert len({bytes(header_of(blob)["layout"][1:]) for blob in blobs}) == 1
    decoded, decoded_index = decode_segments(blobs)
    assert decoded == chunk and decoded_index.tolist() == fetch_index.tolist()


def test_a_chunk_column_no_code_holds_leaves_each_session_its_own():
    good, bad = session(bars=20, day=0), awkward(session(bars=20, seed=2, day=1))
    chunk = BarColumns.concat([good, bad])

    blobs = encode_segments(chunk, np.zeros(40, np.uint16), [(0, 20), (20, 40)])

    # a segment's own codes are int32 decimals where the chunk's column has none
    assert list(header_of(blobs[0])["layout"][1:8]) == [2, 2, 2, 2, 0, 4, SMALL_COUNT]
    assert list(header_of(blobs[1])["layout"][1:8]) == [RAW] * 7
    assert decode_segments(blobs)[0] == chunk


def test_missing_values_and_open_sessions_round_trip():
    columns = session(bars=50)
    every_third = np.arange(50) % 3 == 0
    mixed = with_columns(
        columns,
        wap=np.where(every_third, np.nan, columns.wap),
        bar_count=np.where(every_third, -1, columns.bar_count),
        volume=np.where(np.arange(50) % 7 == 0, np.nan, columns.volume),
        is_final=np.arange(50) < 30,
    )
    decoded, _ = round_trip(mixed)

    assert np.isnan(decoded.wap).tolist() == every_third.tolist()
    assert (decoded.bar_count == -1).tolist() == every_third.tolist()
    assert decoded.is_final.tolist() == mixed.is_final.tolist()


def test_a_series_with_no_wap_and_no_counts_round_trips():
    columns = session(bars=20)
    round_trip(with_columns(columns, wap=np.full(20, np.nan), bar_count=np.full(20, -1)))


def test_the_empty_segment_round_trips():
    decoded, fetch_index = round_trip(BarColumns.empty(), np.zeros(0, np.uint16))

    assert len(decoded) == 0 and len(fetch_index) == 0


def test_a_single_bar_round_trips():
    round_trip(session(bars=1), np.array([3], np.uint16))


def test_values_no_decimal_scale_reproduces_keep_their_exact_bits():
    columns = awkward(session(bars=40))
    data = encode_segment(columns, np.zeros(40, np.uint16))

    assert list(header_of(data)["layout"][1:8]) == [RAW] * 7
    round_trip(columns)


def test_a_decimal_column_with_a_negative_zero_stays_exact():
    columns = session(bars=10)
    round_trip(with_columns(columns, close=np.where(np.arange(10) == 3, -0.0, columns.close)))


def test_huge_values_round_trip():
    columns = session(bars=10)
    round_trip(
        with_columns(
            columns,
            open=np.full(10, 1.7e308),
            volume=np.full(10, 2.0**53),
            wap=np.full(10, -1e300),
            bar_count=np.full(10, np.iinfo(np.int64).max),
        )
    )


def test_sub_second_timestamps_keep_their_nanoseconds():
    columns = session(bars=5)
    gaps = np.array([0, 1, 5, 6, 400], dtype=np.int64) * MINUTE_NS + 123
    sub_second = with_columns(columns, timestamp=SESSION_OPEN_NS + gaps)
    data = encode_segment(sub_second, np.zeros(5, np.uint16))

    assert header_of(data)["layout"][0] == RAW
    round_trip(sub_second)


def test_timestamps_beyond_int32_seconds_of_the_first_are_stored_raw():
    columns = session(bars=3)
    far_apart = with_columns(
        columns, timestamp=np.array([-(2**31), 0, 2**32], dtype=np.int64) * 10**9
    )
    data = encode_segment(far_apart, np.zeros(3, np.uint16))

    assert header_of(data)["layout"][0] == RAW
    round_trip(far_apart)


def test_whole_seconds_before_the_epoch_are_stored_as_seconds():
    columns = session(bars=3)
    before_epoch = with_columns(columns, timestamp=np.array([-180, -60, 0], np.int64) * 10**9)
    data = encode_segment(before_epoch, np.zeros(3, np.uint16))

    assert header_of(data)["layout"][0] == SECONDS
    round_trip(before_epoch)


def test_decoded_arrays_are_read_only():
    decoded, fetch_index = round_trip(session(bars=10))

    for array in (decoded.timestamp, decoded.close, decoded.bar_count, fetch_index):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0


@pytest.mark.parametrize(
    "fetch_index, problem",
    [
        (np.zeros(9, np.uint16), "shape"),
        (np.array([0] * 9 + [-1]), "0 to 65535"),
        (np.array([0] * 9 + [70_000]), "0 to 65535"),
        (np.zeros(10), "0 to 65535"),
    ],
)
def test_encode_refuses_a_bad_fetch_index(fetch_index, problem):
    with pytest.raises(ValueError, match=problem):
        encode_segment(session(bars=10), fetch_index)


def test_encode_takes_any_integer_fetch_index_in_range():
    columns = session(bars=4)
    round_trip(columns, np.array([0, 1, 2, 65535], dtype=np.int64))


# -- version 3's narrow forms and where each column falls back ---------------------------------


def layout_of(columns: BarColumns) -> dict[str, int]:
    data = encode_segment(columns, np.zeros(len(columns), np.uint16))
    codes = header_of(data)["layout"][1:8]
    names = ("open", "high", "low", "close", "volume", "wap", "bar_count")
    return dict(zip(names, codes, strict=True))


def moved(columns: BarColumns, cents, names=("open", "high", "low", "close", "wap")) -> BarColumns:
    """The bars with these prices moved by whole cents, exactly (prices in cents, wap in
    1/10,000ths of a dollar, as session() makes them)."""
    scales = {"open": 100, "high": 100, "low": 100, "close": 100, "wap": 10_000}
    return with_columns(
        columns,
        **{
            name: (np.rint(getattr(columns, name) * scales[name]) + cents * scales[name] // 100)
            / scales[name]
            for name in names
        },
    )


def test_a_price_too_far_from_the_close_is_int32_and_the_others_stay_int16():
    columns = session(bars=50)
    # 400 dollars above the close is 40,000 cents: more than an int16 holds
    spiked = moved(columns, np.where(np.arange(50) == 17, 40_000, 0), names=["high"])

    codes = layout_of(spiked)

    assert codes["high"] == DECIMAL + 2
    assert codes["open"] == codes["low"] == NEAR_CLOSE + 2
    assert codes["close"] == CLOSE_STEP + 2
    round_trip(spiked)


def test_a_close_that_jumps_beyond_an_int16_step_is_int32_and_prices_still_count_from_it():
    columns = session(bars=50)
    jumped = moved(columns, np.where(np.arange(50) >= 25, 50_000, 0))  # 500 dollars at bar 25

    codes = layout_of(jumped)

    assert codes["close"] == DECIMAL + 2
    assert [codes[name] for name in ("open", "high", "low", "wap")] == [
        NEAR_CLOSE + 2, NEAR_CLOSE + 2, NEAR_CLOSE + 2, NEAR_CLOSE + 4
    ]  # fmt: skip
    round_trip(jumped)


def test_a_price_with_fewer_decimals_than_the_close_is_int32():
    columns = session(bars=30)
    # closes in tenths of a cent; opens in whole cents cannot count from them at their scale
    tenths = {name: np.rint(getattr(columns, name) * 1000) for name in ("close", "high")}
    finer = with_columns(
        columns, close=(tenths["close"] + 1) / 1000, high=(tenths["high"] + 2) / 1000
    )

    codes = layout_of(finer)

    assert codes["close"] == CLOSE_STEP + 3
    assert codes["open"] == DECIMAL + 2
    assert codes["high"] == NEAR_CLOSE + 3
    assert codes["wap"] == NEAR_CLOSE + 4
    round_trip(finer)


def test_prices_count_from_a_close_without_decimals():
    columns = session(bars=20)
    whole = with_columns(
        columns, **{name: np.round(getattr(columns, name)) for name in ("open", "high", "low")}
    )
    whole = with_columns(whole, close=np.round(columns.close), wap=np.round(columns.wap))

    assert layout_of(whole)["close"] == CLOSE_STEP + 0
    assert layout_of(whole)["open"] == NEAR_CLOSE + 0
    round_trip(whole)


@pytest.mark.parametrize(
    "largest, code",
    [(65_534, SMALL_COUNT), (65_535, INT32), (2**31 - 1, INT32), (2**31, RAW)],
)
def test_bar_counts_take_the_narrowest_width_that_holds_them(largest, code):
    columns = session(bars=10)
    counts = columns.bar_count.copy()
    counts[3], counts[4] = largest, -1
    counted = with_columns(columns, bar_count=counts)

    assert layout_of(counted)["bar_count"] == code
    decoded, _ = round_trip(counted)
    assert decoded.bar_count[3] == largest and decoded.bar_count[4] == -1


def test_each_session_of_a_chunk_steps_its_close_from_its_own_base():
    # The second session opens 1,000 dollars higher: a step no int16 holds, but no segment
    # stores the step from one session into the next.
    first, second = session(bars=40, day=0), moved(session(bars=40, seed=2, day=1), 100_000)
    chunk = BarColumns.concat([first, second])

    blobs = encode_segments(chunk, np.zeros(80, np.uint16), [(0, 40), (40, 80)])

    assert [list(header_of(blob)["layout"]) for blob in blobs] == [TYPICAL_LAYOUT] * 2
    assert [header_of(blob)["close_base"] for blob in blobs] == [
        round(first.close[0] * 100),
        round(second.close[0] * 100),
    ]
    assert decode_segment(blobs[1])[0] == second
    assert decode_segments(blobs)[0] == chunk


def test_empty_segments_among_a_chunks_sessions_decode_with_them():
    # Encoded together, the empty segments share the sessions' layout and their batch: each
    # session's closes still step from its own base, wherever it starts in the batch.
    days = [session(bars=20, day=0), session(bars=30, seed=2, day=1)]
    chunk = BarColumns.concat(days)
    bounds = [(0, 0), (0, 20), (20, 20), (20, 20), (20, 50), (50, 50)]

    blobs = encode_segments(chunk, np.zeros(50, np.uint16), bounds)

    assert len({bytes(header_of(blob)["layout"]) for blob in blobs}) == 1
    assert decode_segments(blobs)[0] == chunk
    assert decode_segments(blobs[2:])[0] == days[1]


def random_session(rng: np.random.Generator, day: int, odd_values: bool) -> BarColumns:
    """A session of any shape the codec may meet: any length (empty and single bars too), gaps,
    sub-second starts, prices at 0 to 8 decimals with small or huge moves, missing counts and
    mixed finality, and with odd_values NaN, -0.0, infinities, huge and tiny values scattered
    in."""
    bars = int(rng.choice([0, 1, 2, 3, 390, int(rng.integers(0, 800))]))
    start = SESSION_OPEN_NS + day * 2 * DAY_NS  # the grid below spans less than two days
    grid = np.arange(bars * 2, dtype=np.int64) * MINUTE_NS
    shape = rng.integers(3)
    if shape == 0:  # every minute
        offsets = grid[:bars]
    elif shape == 1:  # minutes with gaps
        offsets = np.sort(rng.choice(grid, bars, replace=False))
    else:  # sub-second starts
        offsets = grid[:bars] + rng.integers(0, MINUTE_NS // 2, bars)
    decimals = int(rng.choice([0, 2, 3, 4, 8]))
    move = float(rng.choice([1, 5, 100, 50_000]))
    cents = rng.integers(1, 10**6) + np.cumsum(np.rint(rng.normal(0, move, bars)))
    close = cents / 10**decimals
    wick = np.abs(np.rint(rng.normal(0, move, (3, bars)))) / 10**decimals
    prices = {
        "open": close - wick[0] + wick[1],
        "high": close + wick[1],
        "low": close - wick[2],
        "close": close,
        "wap": np.round(close + rng.normal(0, 0.01, bars), int(rng.choice([2, 4, 6]))),
        "volume": np.rint(rng.lognormal(8, 3, bars)),
    }
    specials = [np.nan, -0.0, np.inf, -np.inf, 1e300, 5e-324, 2.0**53, 0.1 + 0.2]
    for values in prices.values():
        for position in rng.integers(0, bars, rng.poisson(0.5) if odd_values and bars else 0):
            values[position] = rng.choice(specials)
    counts = rng.integers(0, int(rng.choice([100, 70_000, 2**40])), bars)
    counts[rng.random(bars) < 0.1] = -1
    return BarColumns(
        timestamp=start + offsets,
        **prices,
        bar_count=counts,
        is_final=rng.random(bars) < 0.9 if rng.random() < 0.3 else np.ones(bars, bool),
    )


@pytest.mark.parametrize("seed", range(60))
def test_random_sessions_round_trip_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    # Half the chunks without odd values, which would leave their columns RAW, so that the
    # narrow forms are met in chunks of many sessions too.
    odd_values = seed % 2 == 1
    sessions = [random_session(rng, day, odd_values) for day in range(int(rng.integers(1, 6)))]
    chunk = BarColumns.concat(sessions)
    bounds = np.cumsum([0, *(len(part) for part in sessions)])
    if rng.random() < 0.5:
        fetch_index = rng.integers(0, 65_536, len(chunk)).astype(np.uint16)
    else:
        fetch_index = np.repeat(np.arange(len(sessions), dtype=np.uint16), np.diff(bounds))

    blobs = encode_segments(chunk, fetch_index, list(zip(bounds[:-1], bounds[1:], strict=True)))

    for blob, part, first, stop in zip(blobs, sessions, bounds[:-1], bounds[1:], strict=True):
        alone, alone_index = decode_segment(blob)
        for name in BarColumns.__dataclass_fields__:
            assert same_bits(getattr(alone, name), getattr(part, name)), name
        assert alone_index.tolist() == fetch_index[first:stop].tolist()
    decoded, decoded_index = decode_segments(blobs)
    for name in BarColumns.__dataclass_fields__:
        assert same_bits(getattr(decoded, name), getattr(chunk, name)), name
    assert decoded_index.tolist() == fetch_index.tolist()
    # with empty segments anywhere among them, the first too
    empty = [(int(at), int(at)) for at in rng.choice(bounds, 3)]
    padded = sorted([*zip(bounds[:-1], bounds[1:], strict=True), *empty])
    assert decode_segments(encode_segments(chunk, fetch_index, padded))[0] == chunk
    # and each session encoded as a chunk of its own, as a fetch of one session is
    singles = [encode_segment(part, np.zeros(len(part), np.uint16)) for part in sessions]
    assert decode_segments(singles)[0] == chunk


# -- many segments at once -----------------------------------------------------------------------


def segments_of_every_layout() -> list[tuple[BarColumns, np.ndarray]]:
    """Consecutive days whose layouts differ, repeat and change back, with an empty segment."""
    days = [
        session(seed=1, day=0),
        session(seed=2, day=1),  # same layout as the day before
        awkward(session(bars=60, seed=3, day=2)),
        BarColumns.empty(),
        session(bars=1, seed=4, day=3),
        with_columns(session(bars=7, seed=5, day=4), wap=np.full(7, np.nan)),
        session(seed=6, day=5),
    ]
    sub_second = session(bars=4, seed=7, day=6)
    days.append(with_columns(sub_second, timestamp=sub_second.timestamp + 5))
    return [(day, (np.arange(len(day)) % 3).astype(np.uint16) + i) for i, day in enumerate(days)]


def test_many_segments_decode_as_their_single_decodes_joined():
    segments = segments_of_every_layout()
    blobs = [encode_segment(columns, fetch_index) for columns, fetch_index in segments]
    assert len({bytes(header_of(blob)["layout"]) for blob in blobs}) >= 4

    decoded, fetch_index = decode_segments(blobs)

    singles = [decode_segment(blob) for blob in blobs]
    expected = BarColumns.concat([columns for columns, _ in singles])
    assert decoded == expected
    assert decoded == BarColumns.concat([columns for columns, _ in segments])
    for name in BarColumns.__dataclass_fields__:
        assert same_bits(getattr(decoded, name), getattr(expected, name)), name
    assert same_bits(fetch_index, np.concatenate([index for _, index in singles]))


def test_a_year_of_sessions_decodes_as_one():
    days = [session(seed=day, day=day) for day in range(252)]
    blobs = [
        encode_segment(columns, np.full(len(columns), day % 7, np.uint16))
        for day, columns in enumerate(days)
    ]

    decoded, fetch_index = decode_segments(blobs)

    assert decoded == BarColumns.concat(days)
    assert fetch_index.tolist() == [day % 7 for day in range(252) for _ in range(390)]


def test_segments_whose_layouts_alternate_decode_in_their_order():
    # Many runs of each layout: read a layout at a time, then put in place (every other session
    # has a price far from its close, odd ones are partly open and of another fetch, and
    # version 2 segments and empty ones come between).
    days, blobs = [], []
    for day in range(90):
        columns = session(bars=5 + day % 4, seed=day, day=day)
        if day % 2:
            columns = moved(columns, np.where(np.arange(len(columns)) == 1, 40_000, 0), ["high"])
            columns = with_columns(columns, is_final=np.arange(len(columns)) < 2)
        days.append(columns)
        if day % 10 == 4:
            blobs.append(stored_by_hand_v2(columns, fetch_index=day))
        else:
            blobs.append(encode_segment(columns, np.full(len(columns), day, np.uint16)))
        if day % 7 == 0:
            blobs.append(encode_segment(BarColumns.empty(), np.zeros(0, np.uint16)))
    layouts = [bytes(blob[5:15]) for blob in blobs]
    runs = 1 + sum(before != after for before, after in zip(layouts, layouts[1:], strict=False))
    assert runs > 100

    decoded, fetch_index = decode_segments(blobs)

    expected = BarColumns.concat(days)
    for name in BarColumns.__dataclass_fields__:
        assert same_bits(getattr(decoded, name), getattr(expected, name)), name
    assert fetch_index.tolist() == [day for day, columns in enumerate(days) for _ in columns.close]


def test_a_segment_larger_than_a_batch_decodes_between_small_ones():
    # 8,000 bars are more than one batch of bodies; the day after starts after the last of them.
    days = [session(bars=390, day=0), session(bars=8_000, day=1), session(bars=390, day=10)]
    blobs = [encode_segment(day, np.zeros(len(day), np.uint16)) for day in days]

    decoded, _ = decode_segments(blobs)

    assert decoded == BarColumns.concat(days)


def test_decode_segments_takes_memoryviews():
    days = [session(bars=30, day=0), session(bars=30, day=1)]
    first, second = (encode_segment(day, np.zeros(30, np.uint16)) for day in days)

    decoded, _ = decode_segments([memoryview(first), memoryview(bytearray(second))])

    assert decoded == BarColumns.concat(days)


def test_no_segments_decode_to_no_bars():
    decoded, fetch_index = decode_segments([])

    assert len(decoded) == 0 and fetch_index.dtype == np.uint16 and len(fetch_index) == 0


def test_segments_out_of_time_order_are_refused():
    first, second = session(bars=5, day=0), session(bars=5, day=1)
    blobs = [encode_segment(day, np.zeros(5, np.uint16)) for day in (second, first)]

    with pytest.raises(ValueError, match="strictly increasing"):
        decode_segments(blobs)


def test_a_malformed_segment_among_many_is_named():
    good = encode_segment(session(bars=5), np.zeros(5, np.uint16))

    with pytest.raises(ValueError, match="segment 2 of 3: .*magic"):
        decode_segments([good, b"PAR1" + good[4:], good])


# -- malformed bytes -----------------------------------------------------------------------------


def encoded(bars: int = 390) -> bytes:
    return encode_segment(session(bars=bars), np.zeros(bars, np.uint16))


def stored_by_hand_v1(timestamps: list[int], is_final_byte: int = 1, base: int = 0) -> bytes:
    """A version 1 segment with every field RAW, built from the format the codec's docstring
    describes: what the cache held before version 2, which it still reads."""
    records = np.zeros(len(timestamps), RAW_RECORD_V1)
    records["timestamp"] = timestamps
    for name in ("open", "high", "low", "close", "volume", "wap"):
        records[name] = 1.0
    records["bar_count"] = 7
    records["fetch_index"] = np.arange(len(timestamps))
    records["is_final"] = is_final_byte
    header = HEADER_V1.pack(MAGIC, 1, bytes([RAW] * 8), base, len(timestamps))
    return header + records.tobytes()


# Version 2's codes of a session of 1-minute bars: evenly spaced starts, int32 cents, whole
# volumes, wap with four decimals and int32 counts, one fetch and one finality.
V2_SESSION_LAYOUT = bytes([REGULAR, 2, 2, 2, 2, 0, 4, INT32, CONSTANT, CONSTANT])


def stored_by_hand_v2(
    columns: BarColumns, fetch_index: int = 0, layout: bytes = V2_SESSION_LAYOUT
) -> bytes:
    """A version 2 segment of evenly spaced bars, built from the format the codec's docstring
    describes: what the cache held before version 3, which it still reads."""
    decimals = dict(
        zip(("open", "high", "low", "close", "volume", "wap"), layout[1:7], strict=True)
    )
    records = np.zeros(len(columns), [(name, "<i4") for name in (*decimals, "bar_count")])
    for name, k in decimals.items():
        records[name] = np.rint(getattr(columns, name) * 10**k)
    records["bar_count"] = columns.bar_count
    step = int(columns.timestamp[1] - columns.timestamp[0])
    header = HEADER_V2.pack(
        MAGIC, 2, layout, int(columns.timestamp[0]), step, len(columns), fetch_index, 1
    )
    return header + records.tobytes()


def with_header(data: bytes, **fields) -> bytes:
    return HEADER.pack(*(header_of(data) | fields).values()) + data[HEADER_SIZE:]


def v2_with_layout(layout: list[int]) -> bytes:
    return HEADER_V2.pack(MAGIC, 2, bytes(layout), 0, MINUTE_NS, 0, 0, 1)


def test_a_hand_built_version_1_segment_decodes():
    decoded, fetch_index = decode_segment(stored_by_hand_v1([10, 20, 30], base=1000))

    assert decoded.timestamp.tolist() == [1010, 1020, 1030]
    assert decoded.close.tolist() == [1.0, 1.0, 1.0]
    assert decoded.bar_count.tolist() == [7, 7, 7]
    assert decoded.is_final.tolist() == [True, True, True]
    assert fetch_index.tolist() == [0, 1, 2]


def test_any_nonzero_is_final_byte_means_final():
    decoded, _ = decode_segment(stored_by_hand_v1([10, 20], is_final_byte=2))

    assert decoded.is_final.tolist() == [True, True]


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"", "shorter than"),
        (encoded()[: HEADER_SIZE - 1], "shorter than"),
        (b"PAR1" + encoded()[4:], "magic"),
        (with_header(encoded(), version=FORMAT_VERSION + 1), "unknown segment format version"),
        (with_header(encoded(), version=0), "unknown segment format version"),
        (with_header(encoded(), layout=bytes([7, 2, 2, 2, 2, 0, 4, 0, 0, 0])), "column codes"),
        (with_header(encoded(), layout=bytes([1, 2, 2, 2, 2, 0, 4, 9, 0, 0])), "column codes"),
        (with_header(encoded(), layout=bytes([1, 2, 2, 2, 2, 0, 40, 0, 0, 0])), "column codes"),
        (with_header(encoded(), layout=bytes([1, 2, 2, 2, 2, 0, 4, 0, 2, 0])), "column codes"),
        (with_header(encoded(), layout=bytes([1, 2, 2, 2, 2, 0, 4, 0, 0, 2])), "column codes"),
        (
            with_header(encoded(), layout=bytes([1, 18, 18, 18, RAW, 0, 20, 1, 0, 0])),
            "column codes",
        ),
        (with_header(encoded(), layout=bytes([1, 17, 18, 18, 34, 0, 20, 1, 0, 0])), "column codes"),
        (with_header(encoded(), layout=bytes([1, 34, 18, 18, 34, 0, 20, 1, 0, 0])), "column codes"),
        (with_header(encoded(), layout=bytes([1, 18, 18, 18, 18, 0, 20, 1, 0, 0])), "column codes"),
        (
            with_header(encoded(), layout=bytes([1, 18, 18, 18, 34, 16, 20, 1, 0, 0])),
            "column codes",
        ),
        (with_header(encoded(), layout=bytes([1, 25, 18, 18, 34, 0, 20, 1, 0, 0])), "column codes"),
        (with_header(encoded(), layout=bytes([1, 18, 18, 18, 48, 0, 20, 1, 0, 0])), "column codes"),
        (v2_with_layout([1, 18, 18, 18, 34, 0, 20, 0, 0, 0]), "column codes"),
        (v2_with_layout([1, 2, 2, 2, 2, 0, 4, SMALL_COUNT, 0, 0]), "column codes"),
        (stored_by_hand_v2(session(bars=5))[:-1], "bars take"),
        (stored_by_hand_v2(session(bars=5))[: HEADER_SIZE - 5], "shorter than"),
        (with_header(encoded(), layout=bytes([RAW, 2, 2, 2, 2, 0, 4, 0, 0, 0])), "bars take"),
        (with_header(encoded(), step=0), "strictly increasing"),
        (with_header(encoded(), step=-MINUTE_NS), "strictly increasing"),
        (with_header(encoded(), count=391), "bars take"),
        (with_header(encoded(), count=0), "bars take"),
        (encoded()[:-1], "bars take"),
        (encoded() + b"\x00", "bars take"),
        (encoded()[:HEADER_SIZE], "bars take"),
        (stored_by_hand_v1([10, 30, 20]), "strictly increasing"),
        (stored_by_hand_v1([10, 10]), "strictly increasing"),
    ],
    ids=[
        "empty",
        "short header",
        "bad magic",
        "newer version",
        "version zero",
        "unknown timestamp code",
        "unknown bar_count code",
        "unknown decimal exponent",
        "unknown fetch_index code",
        "unknown is_final code",
        "prices near a close stored raw",
        "a price near the close at fewer decimals than the close",
        "close steps for another column",
        "the close near itself",
        "volume near the close",
        "a near-close exponent beyond 8",
        "an unknown form",
        "version 2 with a version 3 price code",
        "version 2 with a uint16 bar_count",
        "version 2 body cut by one byte",
        "version 2 header cut short",
        "layout of another record size",
        "regular bars with no step",
        "regular bars going back",
        "count too large",
        "count zero",
        "body cut by one byte",
        "body with a trailing byte",
        "no body",
        "timestamps out of order",
        "repeated timestamp",
    ],
)
def test_decode_refuses_malformed_bytes(data, problem):
    with pytest.raises(ValueError, match=problem):
        decode_segment(data)


def test_version_1_and_new_segments_of_one_series_decode_together():
    # A cache written before version 2 holds version 1 segments; new fetches add version 3 ones.
    old = stored_by_hand_v1([10, 20, 30], base=SESSION_OPEN_NS)
    new = encode_segment(session(bars=5, day=1), np.full(5, 4, np.uint16))

    decoded, fetch_index = decode_segments([old, new])

    assert decoded.timestamp[:3].tolist() == [
        SESSION_OPEN_NS + 10,
        SESSION_OPEN_NS + 20,
        SESSION_OPEN_NS + 30,
    ]
    assert decoded.take(np.arange(3, 8)) == session(bars=5, day=1)
    assert fetch_index.tolist() == [0, 1, 2, 4, 4, 4, 4, 4]


def test_segments_of_versions_1_2_and_3_decode_together():
    # A cache holds the segments of every version it was written with: v1, then v2, then v3.
    v1 = stored_by_hand_v1([10, 20, 30], base=SESSION_OPEN_NS)
    v2_days = [session(bars=50, seed=2, day=1), session(bars=20, seed=3, day=2)]
    v2 = [stored_by_hand_v2(day, fetch_index=5) for day in v2_days]
    v3_day = session(bars=40, seed=4, day=3)
    v3 = encode_segment(v3_day, np.full(40, 6, np.uint16))
    later_v2 = session(bars=10, seed=5, day=4)

    decoded, fetch_index = decode_segments([v1, *v2, v3, stored_by_hand_v2(later_v2, 7)])

    assert decoded.timestamp[:3].tolist() == [SESSION_OPEN_NS + t for t in (10, 20, 30)]
    assert decoded.take(np.arange(3, len(decoded))) == BarColumns.concat(
        [*v2_days, v3_day, later_v2]
    )
    assert fetch_index.tolist() == [0, 1, 2] + [5] * 70 + [6] * 40 + [7] * 10


def test_a_version_2_and_a_version_3_segment_of_one_layout_decode_as_one_batch():
    # Prices far apart and large counts leave version 3 with version 2's int32 codes: the two
    # segments are then viewed as one record array, and the v3 header's close base unused.
    rng = np.random.default_rng(9)
    days = []
    for day in (0, 1):
        columns = session(bars=30, seed=day, day=day)
        cents = rng.integers(10**6, 10**8, 30)
        days.append(
            with_columns(
                columns,
                open=rng.integers(10**6, 10**8, 30) / 100,
                high=(cents + 4_000_000) / 100,
                low=(cents - 4_000_000) / 100,
                close=cents / 100,
                wap=rng.integers(10**6, 10**8, 30) / 10_000,
                bar_count=rng.integers(70_000, 10**6, 30),
            )
        )
    v3 = encode_segment(days[1], np.zeros(30, np.uint16))
    assert header_of(v3)["layout"] == V2_SESSION_LAYOUT

    decoded, _ = decode_segments([stored_by_hand_v2(days[0]), v3])

    assert decoded == BarColumns.concat(days)
