"""The bytes of one stored segment (market_data_cache.ohlcv_data): its bars as packed records.

Format version 1, little-endian throughout:

    header (25 bytes)  "BSEG", version u8, layout u8 x 8 (the timestamp code, then the codes of
                       open, high, low, close, volume, wap and bar_count), base timestamp i64
                       (ns since the epoch), bar count n u32
    body               n records (timestamp, open, high, low, close, volume, wap, bar_count,
                       fetch_index u16, is_final u8), packed with no padding

The codes give each field's type. Timestamp: SECONDS (0) is int32 whole seconds, used when
every bar starts on a whole second within int32 seconds of the first bar, whose start is then
the base; RAW (255) is int64 nanoseconds with base 0; a bar starts at base + stored value.
A float column's code k (0..8) is int32 value * 10**k, for the smallest k that gives back every
value bit for bit through int32 -> float64 -> / 10**k (prices with two decimals: k=2); a column
with NaN, infinities, -0.0 or values no k reproduces is RAW float64. bar_count is int32 (code 0)
when it fits, else RAW int64. is_final is 1 or 0 (any nonzero reads as final).

decode_segments reads the segments of a query at once: consecutive segments with one layout
are joined, viewed as one record array and each field is converted by one numpy operation,
written straight into the output columns, 256 kB of bodies at a time.

Why, measured on a year of 1-minute bars (252 segments of 390 bars: random-walk prices around
100 with two decimals, wap with four, whole volumes and counts) against the same bars in one
Parquet file written with pyarrow's defaults (25.3 bytes a bar). Times are medians of
interleaved rounds over pq.read_table(file).to_pandas(), ranges over runs:

    bytes per bar                           records      SQLite file     PostgreSQL table
                                                                         of (id, bytea) rows
      these bars                              35.1          36.8         pglz 22.3, lz4 25.0,
                                                                         uncompressed 38.2
      every float column RAW                  59.1          63.1         pglz 36.4, lz4 36.5
      (Parquet of the same: 28.8)

    read time vs Parquet
      decode_segments + to_pandas()           0.7-1.0x (0.4x once the allocator keeps its pages)
      decode_segments                         0.3-0.7x
      decode_segment of each + concat         1.2-1.9x
      int32 columns one after the other,
        zstd per segment, one at a time       1.7-2.9x

Reading many segments had a fixed cost per segment: a zstd frame (about 18 us a session) and a
dozen numpy calls. Records in rows let every segment of a layout be viewed as one array
whatever their bar counts. Bodies in columns convert faster once viewed (contiguous fields:
0.5x against 0.7x with a warm allocator, no faster with a cold one), but can only be viewed at
once when the bar counts agree, which short sessions, gaps and the months of daily bars do not;
otherwise each segment and column is a call of its own. In PostgreSQL rows also compress a
little better than columns (pglz 22.3 against 24.2 bytes a bar): each field's high bytes repeat
at the record's stride. About half of the decode time is page faults on fresh memory; joining
256 kB at a time instead of a whole run leaves mostly the output columns' (about 1,650 faults
for the year instead of 2,400).

The codec compresses nothing. zstd over the records (15.4 bytes a bar at level 1) takes longer
to decompress, even as one call over all the frames, than reading the bytes it saves; SQLite
stays within 1.5x Parquet's size without it, and PostgreSQL compresses a value over about 2 kB
itself. PostgreSQL sends values decompressed, so a query's time follows the record bytes plus
the decompression: a year of these segments came back in 0.3-0.8x Parquet's read time stored
uncompressed, 0.4-1.0x with lz4 and 0.9-1.7x with pglz.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from backend.market_data.bar_columns import COLUMN_DTYPES, BarColumns

FORMAT_VERSION = 1
MAGIC = b"BSEG"
# magic, version, layout (timestamp code, then the 7 column codes), base timestamp, bar count
_HEADER = struct.Struct("<4sB8sqI")
HEADER_SIZE = _HEADER.size

# The code of an 8-byte field: float64 for a float column, int64 for bar_count, int64
# nanoseconds for the timestamp. Every other code makes an int32 field: a float column's decimal
# exponent k (the value times 10**k), 0 for bar_count, SECONDS for whole seconds.
RAW = 255
SECONDS = 0
MAX_DECIMALS = 8
_FLOAT_COLUMNS = ("open", "high", "low", "close", "volume", "wap")
_POWERS_OF_TEN = 10.0 ** np.arange(MAX_DECIMALS + 1)
_NS_PER_SECOND = 10**9
_INT32 = np.iinfo(np.int32)
_UINT16 = np.iinfo(np.uint16)
_UINT32 = np.iinfo(np.uint32)
# What decode_segments returns: the bar columns, then the fetch index.
_OUTPUT_DTYPES = {**COLUMN_DTYPES, "fetch_index": np.dtype(np.uint16)}
# Segments are joined and converted this many body bytes at a time: few enough that a batch
# stays in the CPU cache while each of its fields is read out, and that the allocator hands the
# same memory to the next batch instead of mapping fresh pages.
_BATCH_BYTES = 256 * 1024


def encode_segment(columns: BarColumns, fetch_index: np.ndarray) -> bytes:
    """The stored bytes of a segment's bars; fetch_index[i] names the fetch bar i came from."""
    count = len(columns)
    if count > _UINT32.max:
        raise ValueError(f"a segment holds at most {_UINT32.max} bars, not {count}")
    fetch_index = _checked_fetch_index(fetch_index, count)
    timestamp_code, base = _timestamp_code(columns.timestamp)
    float_codes = [_decimal_exponent(getattr(columns, name)) for name in _FLOAT_COLUMNS]
    bar_count_code = 0 if _fits_int32(columns.bar_count) else RAW
    layout_key = bytes([timestamp_code, *float_codes, bar_count_code])

    records = np.empty(count, _layout(layout_key).dtype)
    if timestamp_code == SECONDS:
        records["timestamp"] = (columns.timestamp - base) // _NS_PER_SECOND
    else:
        records["timestamp"] = columns.timestamp
    for name, code in zip(_FLOAT_COLUMNS, float_codes, strict=True):
        values = getattr(columns, name)
        records[name] = values if code == RAW else np.rint(values * _POWERS_OF_TEN[code])
    records["bar_count"] = columns.bar_count
    records["fetch_index"] = fetch_index
    records["is_final"] = columns.is_final
    return _HEADER.pack(MAGIC, FORMAT_VERSION, layout_key, base, count) + records.tobytes()


def decode_segment(data: bytes | memoryview) -> tuple[BarColumns, np.ndarray]:
    """The bars and the per-bar fetch index of stored bytes; ValueError for anything malformed."""
    return decode_segments([data])


def decode_segments(blobs: Sequence[bytes | memoryview]) -> tuple[BarColumns, np.ndarray]:
    """The bars of segments given in time order, as one set of columns, and their fetch index.

    Consecutive segments with one layout are viewed as one record array and each field is
    converted once for all of them, so a segment costs a header and a memoryview."""
    segments = []
    for position, blob in enumerate(blobs):
        try:
            segments.append(_parsed(blob))
        except ValueError as error:
            where = f"segment {position + 1} of {len(blobs)}: " if len(blobs) > 1 else ""
            raise ValueError(f"{where}{error}") from None

    total = sum(segment.count for segment in segments)
    output = {name: np.empty(total, dtype) for name, dtype in _OUTPUT_DTYPES.items()}
    start = 0
    for batch in _batches(segments):
        start = _decode_batch(batch, output, start)
    fetch_index = _read_only(output.pop("fetch_index"))
    try:
        columns = BarColumns(**output)
    except ValueError as error:
        raise ValueError(f"the decoded bars are not valid: {error}") from None
    return columns, fetch_index


@dataclass(frozen=True)
class _Layout:
    """The record of one layout key: its numpy dtype and how each field turns back into values."""

    dtype: np.dtype
    timestamp_unit: int  # nanoseconds per stored unit
    divisors: dict[str, float]  # 10**k of each float field stored as int32 with k > 0


@cache
def _layout(layout_key: bytes) -> _Layout:
    timestamp_code, *float_codes, bar_count_code = layout_key
    if (
        timestamp_code not in (SECONDS, RAW)
        or any(MAX_DECIMALS < code != RAW for code in float_codes)
        or bar_count_code not in (0, RAW)
    ):
        raise ValueError(f"segment has unknown column codes {list(layout_key)}")

    def stored_type(code: int, raw_type: str) -> str:
        return raw_type if code == RAW else "<i4"

    fields = [("timestamp", stored_type(timestamp_code, "<i8"))]
    fields += [
        (name, stored_type(code, "<f8"))
        for name, code in zip(_FLOAT_COLUMNS, float_codes, strict=True)
    ]
    fields += [("bar_count", stored_type(bar_count_code, "<i8"))]
    fields += [("fetch_index", "<u2"), ("is_final", "u1")]
    divisors = {
        name: float(_POWERS_OF_TEN[code])
        for name, code in zip(_FLOAT_COLUMNS, float_codes, strict=True)
        if code not in (0, RAW)
    }
    return _Layout(
        dtype=np.dtype(fields, align=False),
        timestamp_unit=_NS_PER_SECOND if timestamp_code == SECONDS else 1,
        divisors=divisors,
    )


@dataclass(frozen=True)
class _Segment:
    """One segment's header fields and a view of its body."""

    layout_key: bytes
    base: int  # nanoseconds added to every stored timestamp
    count: int
    body: memoryview


def _parsed(blob: bytes | memoryview) -> _Segment:
    """The header of a segment, checked against its length."""
    if len(blob) < HEADER_SIZE:
        raise ValueError(
            f"segment of {len(blob)} bytes is shorter than its {HEADER_SIZE}-byte header"
        )
    magic, version, layout_key, base, count = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise ValueError("not a bar segment: it does not start with the segment magic bytes")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"unknown segment format version {version}; this code reads {FORMAT_VERSION}"
        )
    body_length = count * _layout(layout_key).dtype.itemsize
    if len(blob) - HEADER_SIZE != body_length:
        raise ValueError(
            f"segment body is {len(blob) - HEADER_SIZE} bytes; {count} bars take {body_length}"
        )
    return _Segment(layout_key, base, count, memoryview(blob)[HEADER_SIZE:])


def _batches(segments: list[_Segment]) -> Iterator[list[_Segment]]:
    """Runs of consecutive segments with one layout, each of at most _BATCH_BYTES of bodies
    (or a single larger segment)."""
    batch: list[_Segment] = []
    size = 0
    for segment in segments:
        if batch and (
            segment.layout_key != batch[0].layout_key or size + len(segment.body) > _BATCH_BYTES
        ):
            yield batch
            batch, size = [], 0
        batch.append(segment)
        size += len(segment.body)
    if batch:
        yield batch


def _decode_batch(batch: list[_Segment], output: dict[str, np.ndarray], start: int) -> int:
    """Writes the batch's bars into output from position start; returns where they end."""
    layout = _layout(batch[0].layout_key)
    body = batch[0].body if len(batch) == 1 else b"".join(segment.body for segment in batch)
    records = np.frombuffer(body, layout.dtype)
    stop = start + len(records)
    for name in layout.dtype.names:
        target, stored = output[name][start:stop], records[name]
        if name in layout.divisors:
            # The operations _decimal_exponent checked, so these are the bits encoded.
            np.divide(stored, layout.divisors[name], out=target)
        elif name == "is_final":
            np.not_equal(stored, 0, out=target)
        else:
            target[...] = stored
    timestamp = output["timestamp"][start:stop]
    if layout.timestamp_unit != 1:
        timestamp *= layout.timestamp_unit
    if len(batch) == 1:
        timestamp += batch[0].base
    else:
        bases = np.array([segment.base for segment in batch], np.int64)
        timestamp += np.repeat(bases, [segment.count for segment in batch])
    return stop


def _timestamp_code(timestamp: np.ndarray) -> tuple[int, int]:
    """SECONDS and the first bar's start when every start is a whole second within int32
    seconds of the first, else RAW and base 0."""
    if not len(timestamp):
        return SECONDS, 0
    first, last = int(timestamp[0]), int(timestamp[-1])
    if (last - first) // _NS_PER_SECOND <= _INT32.max and not (timestamp % _NS_PER_SECOND).any():
        return SECONDS, first
    return RAW, 0


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _checked_fetch_index(fetch_index: np.ndarray, count: int) -> np.ndarray:
    fetch_index = np.asarray(fetch_index)
    if fetch_index.shape != (count,):
        raise ValueError(f"fetch_index has shape {fetch_index.shape}, the segment has {count} bars")
    if fetch_index.dtype.kind not in "iu" or (
        count and (fetch_index.min() < _UINT16.min or fetch_index.max() > _UINT16.max)
    ):
        raise ValueError("fetch_index must hold integers from 0 to 65535")
    return fetch_index


def _decimal_exponent(values: np.ndarray) -> int:
    """The smallest k whose int32 value * 10**k gives back every value exactly, else RAW."""
    if not np.isfinite(values).all():
        return RAW
    bits = values.view(np.int64)
    # No k below what a few of the values need can hold them all: finding that in plain Python
    # spares most of the whole-array tries (encoding is most of a write's time).
    for k in range(_smallest_exponent_of_sample(values), len(_POWERS_OF_TEN)):
        power = _POWERS_OF_TEN[k]
        scaled = np.rint(values * power)
        if len(values) and (scaled.min() < _INT32.min or scaled.max() > _INT32.max):
            return RAW  # a larger k only scales further out of range
        # The operations decoding does, so equal bits here mean equal bits there.
        decoded = scaled.astype(np.int32).astype(np.float64) / power
        if np.array_equal(decoded.view(np.int64), bits):
            return k
    return RAW


def _smallest_exponent_of_sample(values: np.ndarray, size: int = 16) -> int:
    """The smallest k that gives back each of up to `size` values spread over the array (0 when
    there are none, MAX_DECIMALS when one needs more)."""
    step = max(1, len(values) // size)
    smallest = 0
    for value in values[::step].tolist():
        while smallest < MAX_DECIMALS:
            power = 10.0**smallest
            if float(round(value * power)) / power == value:
                break
            smallest += 1
    return smallest


def _fits_int32(values: np.ndarray) -> bool:
    return not len(values) or (values.min() >= _INT32.min and values.max() <= _INT32.max)
