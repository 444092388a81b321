"""The segment codec gives back exactly the bars it was given, and refuses malformed bytes."""

import struct

import numpy as np
import pytest

from backend.market_data.bar_columns import BarColumns
from backend.storage.segment_codec import (
    FORMAT_VERSION,
    HEADER_SIZE,
    MAGIC,
    RAW,
    decode_segment,
    encode_segment,
)

SESSION_OPEN_NS = 1_741_012_200 * 10**9  # 2025-03-03 14:30 UTC
MINUTE_NS = 60 * 10**9
HEADER = struct.Struct("<4sBB7s3xII")


def session(bars: int = 390, seed: int = 1) -> BarColumns:
    """A session of 1-minute bars like IBKR's: a random walk with two-decimal prices, a wap
    with four decimals, whole volumes and trade counts."""
    rng = np.random.default_rng(seed)
    close = np.round(100 + np.cumsum(rng.normal(0, 0.05, bars)), 2)
    open_ = np.round(np.concatenate([[100.0], close[:-1]]), 2)
    high = np.round(np.maximum(open_, close) + np.abs(rng.normal(0, 0.03, bars)), 2)
    low = np.round(np.minimum(open_, close) - np.abs(rng.normal(0, 0.03, bars)), 2)
    return BarColumns(
        timestamp=SESSION_OPEN_NS + np.arange(bars, dtype=np.int64) * MINUTE_NS,
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


def round_trip(columns: BarColumns, fetch_index=None) -> tuple[BarColumns, np.ndarray]:
    if fetch_index is None:
        fetch_index = np.zeros(len(columns), dtype=np.uint16)
    decoded, decoded_index = decode_segment(encode_segment(columns, fetch_index))
    assert decoded == columns
    assert decoded_index.dtype == np.uint16
    assert decoded_index.tolist() == np.asarray(fetch_index).tolist()
    return decoded, decoded_index


def same_bits(left: np.ndarray, right: np.ndarray) -> bool:
    return left.tobytes() == right.tobytes()


# -- round trips ---------------------------------------------------------------------------------


def test_a_session_round_trips_with_its_fetch_index():
    columns = session()
    fetch_index = (np.arange(len(columns)) // 100).astype(np.uint16)
    decoded, _ = round_trip(columns, fetch_index)

    for name in BarColumns.__dataclass_fields__:
        assert same_bits(getattr(decoded, name), getattr(columns, name)), name


def test_a_session_is_stored_compressed():
    columns = session()
    data = encode_segment(columns, np.zeros(len(columns), np.uint16))

    # 67 bytes a bar as plain typed arrays; stored, the session takes well under half of that.
    assert len(data) < len(columns) * 67 / 2


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
    columns = session(bars=40)
    awkward = with_columns(
        columns,
        # 0.1 + 0.2 is 0.30000000000000004: not a short decimal, so it must not be rounded
        open=columns.open + (0.1 + 0.2),
        high=columns.high * np.pi,
        # too large for an int32 once scaled to cents
        low=columns.low * 1e8,
        # -0.0 differs from 0.0 only in its sign bit
        close=np.where(np.arange(40) == 5, -0.0, columns.close),
        wap=np.where(np.arange(40) == 0, np.inf, columns.wap),
        bar_count=columns.bar_count + 2**40,
    )
    decoded, _ = round_trip(awkward)

    for name in BarColumns.__dataclass_fields__:
        assert same_bits(getattr(decoded, name), getattr(awkward, name)), name


def test_irregular_timestamps_round_trip():
    columns = session(bars=5)
    gaps = np.array([0, 1, 5, 6, 400], dtype=np.int64) * MINUTE_NS + 123
    round_trip(with_columns(columns, timestamp=SESSION_OPEN_NS + gaps))


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


# -- malformed bytes -----------------------------------------------------------------------------


def encoded(bars: int = 390) -> bytes:
    return encode_segment(session(bars=bars), np.zeros(bars, np.uint16))


def stored_by_hand(timestamps: list[int], is_final_byte: int = 1) -> bytes:
    """A segment with an uncompressed body and every column as 8 bytes, built from the format
    the codec's docstring describes."""
    count = len(timestamps)
    deltas = np.diff(np.array(timestamps, dtype=np.int64), prepend=np.int64(0))
    body = deltas.astype("<i8").tobytes()
    body += np.ones((6, count), "<f8").tobytes() + np.ones(count, "<i8").tobytes()
    body += np.zeros(count, "<u2").tobytes() + bytes([is_final_byte] * count)
    header = HEADER.pack(MAGIC, FORMAT_VERSION, 0, bytes([RAW] * 7), count, len(body))
    return header + body


def with_header(data: bytes, **fields) -> bytes:
    names = ["magic", "version", "codec", "codes", "count", "body_length"]
    values = dict(zip(names, HEADER.unpack_from(data), strict=True)) | fields
    return HEADER.pack(*values.values()) + data[HEADER_SIZE:]


def test_the_hand_built_segment_decodes():
    decoded, _ = decode_segment(stored_by_hand([10, 20, 30]))

    assert decoded.timestamp.tolist() == [10, 20, 30]
    assert decoded.close.tolist() == [1.0, 1.0, 1.0]
    assert decoded.is_final.tolist() == [True, True, True]


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"", "shorter than"),
        (encoded()[: HEADER_SIZE - 1], "shorter than"),
        (b"PAR1" + encoded()[4:], "magic"),
        (with_header(encoded(), version=FORMAT_VERSION + 1), "unknown segment format version"),
        (with_header(encoded(), version=0), "unknown segment format version"),
        (with_header(encoded(), codec=7), "unknown body codec"),
        (with_header(encoded(), codes=bytes([2, 2, 2, 2, 0, 4, 9])), "column codes"),
        (with_header(encoded(), codes=bytes([2, 2, 2, 2, 0, 40, 0])), "column codes"),
        (with_header(encoded(), count=391), "bars take"),
        (with_header(encoded(), body_length=100), "bars take"),
        (encoded()[:-1], "does not decompress"),
        (encoded()[:-40], "does not decompress"),
        (encoded() + b"\x00", "does not decompress"),
        (encoded()[:HEADER_SIZE] + bytes(len(encoded()) - HEADER_SIZE), "does not decompress"),
        (encoded()[:HEADER_SIZE], "does not decompress"),
        (stored_by_hand([10, 20, 30])[:-1], "body is"),
        (stored_by_hand([10, 20, 30]) + b"\x00", "body is"),
        (stored_by_hand([10, 30, 20]), "strictly increasing"),
        (stored_by_hand([10, 10]), "strictly increasing"),
    ],
    ids=[
        "empty",
        "short header",
        "bad magic",
        "newer version",
        "version zero",
        "unknown codec",
        "unknown bar_count code",
        "unknown decimal exponent",
        "count disagrees",
        "length disagrees",
        "compressed body cut by one byte",
        "compressed body cut short",
        "compressed body with a trailing byte",
        "compressed body zeroed",
        "no body",
        "stored body cut short",
        "stored body with a trailing byte",
        "timestamps out of order",
        "repeated timestamp",
    ],
)
def test_decode_refuses_malformed_bytes(data, problem):
    with pytest.raises(ValueError, match=problem):
        decode_segment(data)
