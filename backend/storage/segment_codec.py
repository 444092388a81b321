"""The bytes of one stored segment (market_data_cache.ohlcv_data): its bars as packed records.

Format version 3, little-endian throughout:

    header (42 bytes)  "BSEG", version u8, layout u8 x 10 (the codes of timestamp, open, high,
                       low, close, volume, wap, bar_count, fetch_index and is_final), base
                       timestamp i64 (ns since the epoch), step i64 (ns), bar count n u32, the
                       segment's fetch index u16 and is_final u8 (used where their code is
                       CONSTANT), close base i32 (used where close's code is a CLOSE_STEP)
    body               n records holding the fields whose code stores them, in that order,
                       packed with no padding

The codes give each field's type. Timestamp: REGULAR (1) stores nothing, bar i starts at
base + i * step (a session without gaps); SECONDS (0) is int32 whole seconds after base (the
first bar's start), used when every start is a whole second within int32 seconds of the first;
RAW (255) is int64 nanoseconds with base 0.

A float column is stored as the integers m = value * 10**k when one k from 0 to 8 gives back
every value bit for bit through float64(m) / 10**k with m within int32 (prices with two
decimals: k=2). Its code is then a form plus k:

    DECIMAL     0 + k   int32 m
    NEAR_CLOSE 16 + k   open, high, low and wap: int16 m - c * 10**(k - j), c being the same
                        bar's close as integers at the close's j decimals (j <= k)
    CLOSE_STEP 32 + k   close: int16 m - the bar before's m (the first bar's: m - close base)

each column taking the narrowest form that holds all its bars: one price far from its close, or
one step of the close beyond an int16, makes that column int32 and leaves the others narrow. A
column with NaN, infinities, -0.0 or values no k reproduces is RAW float64. bar_count is
SMALL_COUNT (1), a uint16 of count + 1 (so that -1, no count sent, is 0), when every count is
from -1 to 65534, else int32 (0) when it fits, else RAW int64. fetch_index and is_final are
CONSTANT (0), the header's value for every bar, or PER_BAR (1), a u16 and a u8 in each record
(any nonzero is_final reads as final). A session of 1-minute stock bars takes 16 bytes a bar:
five int16 prices, an int32 volume and a uint16 count.

Versions 1 and 2 are still read, and segments of every version decode together. Version 2 has
the 38-byte header without the close base and only DECIMAL and RAW float columns and int32 and
RAW counts (28 bytes a 1-minute bar); a version 2 and a version 3 segment with the same codes
share a layout. Version 1 has a 25-byte header "<4sB8sqI" with no step and no constants, layout
codes for timestamp (SECONDS or RAW), the six float columns and bar_count, and fetch_index u16
and is_final u8 in every record.

decode_segments reads the segments of a query at once: consecutive segments with one layout
are joined, viewed as one record array and each field is converted by a few numpy operations
over all of them, written straight into the output columns, 256 kB of bodies at a time. The
close's integers are a running sum of the batch's steps, set right at each segment's start by
its base; the other prices are added to them as float64 (exact: integers far below 2**53); and
each column is divided by its 10**k last, the operation _decimal_exponent checks, so the bits
are the ones encoded. When layouts alternate in many short runs, each layout's segments are
decoded together and copied into place. encode_segments does the reverse for a fetched chunk:
the codes are chosen once for all its bars, so the segments of a chunk share a layout and are
built from one record array.

Why, measured with scripts/bench_cache.py: a year of 1-minute bars (252 sessions, 97,740 bars;
random-walk prices in cents, wap in 1/10,000ths, whole volumes and counts) stored a session a
segment, against the same bars in one Parquet file with pyarrow's defaults (25.0 bytes a bar).
Times are the benchmark's medians of interleaved rounds: the median of six runs of each
version, alternating, on a shared two-core machine, and their range:

                                      version 2              version 3
    bytes a bar: segment records        28.1                   16.1
      PostgreSQL table (lz4 TOAST)      25.4                   19.4
      SQLite file                       33.2                   22.6
    PostgreSQL: fetching the rows       14.6 (13.9-28.8) ms    10.2 (9.5-20.3) ms
      decode_segments                    5.9 (4.8-7.5) ms       6.5 (5.8-8.1) ms
    SQLite: fetching the rows            8.1 (7.4-10.3) ms      7.6 (7.1-8.9) ms
      decode_segments                    5.6 (4.8-7.3) ms       6.4 (5.9-7.7) ms
    the warm read over Parquet's
      PostgreSQL                        2.24 (1.87-2.46)       1.81 (1.56-1.85)
      SQLite                            1.77 (1.67-2.09)       1.75 (1.56-1.91)

with to_pandas taking 2.3 and 2.0 ms instead of 3.8 and 3.3 (medians), a change of its own;
three runs of each on an earlier commit gave 1.76-2.02 against 1.43-1.69 (PostgreSQL) and
1.51-1.80 against 1.28-1.50 (SQLite). A query's time follows the bytes PostgreSQL detoasts and
sends (2.75 MB of version 2, 1.57 MB of version 3: some 4 ms a MB here). Fetching the year's
rows from a table of (id, bytea) rows, two runs each: version 2 took 15.6-16.7 ms with lz4 TOAST
(the migration's setting) and 12.0-12.3 ms uncompressed; version 3 8.7-9.2 ms and 7.8-7.9 ms,
and 6.7-6.9 ms kept in the row (STORAGE MAIN, which a session of 6 kB now fits; 21.6 bytes a
bar). Migration 0009 keeps segments in their rows so on PostgreSQL.
Decoding version 3 is a few more numpy passes (a running sum, an addition for each price):
0.5-0.8 ms more for the year, in the benchmark and in one process, interleaved.

Records in rows let every segment of a layout be viewed as one array whatever their bar counts;
bodies in columns convert faster once viewed but can only be viewed at once when the bar counts
agree, which short sessions, gaps and the months of daily bars do not. A batch costs some 25
numpy calls whatever its size: a year whose sessions alternated between two layouts took 16.9
ms decoded run by run and 8.1 ms a layout at a time (4.2 and 5.2 ms with 16 runs).

Tried and not kept:
  int8 differences where they fit: 12.0 bytes a bar on these bars, 0.4 MB less for the year
    (some 1.5 ms of fetching at the rate above); but a real session's prices move more than an
    int8 holds on some days and not others, and layouts that change from session to session
    decode slower by about as much (8.1 against 4.2 ms above).
  compressing each segment: lz4 14.0 bytes a bar, 1.1 ms to decompress the year (through
    pyarrow, a call a segment), more than the 0.8 ms that fetching 2 bytes a bar fewer saves;
    zstd 9.8 bytes a bar, 6.8 ms to decompress, more than decoding.
  decoding into the 2-d block to_pandas() builds: the frame must own its data, as a frame over
    the columns' read-only arrays refuses frame.iloc[0, 0] = x; the copy it saves is 0.4 ms.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np

from backend.market_data.bar_columns import COLUMN_DTYPES, BarColumns

FORMAT_VERSION = 3
MAGIC = b"BSEG"
# magic, version, layout (10 field codes), base timestamp, step, bar count, fetch index,
# is_final, close base
_HEADER = struct.Struct("<4sB10sqqIHBi")
HEADER_SIZE = _HEADER.size
# Version 2: version 3's header without the close base
_HEADER_V2 = struct.Struct("<4sB10sqqIHB")
# Version 1: magic, version, layout (timestamp code, then the 7 column codes), base, bar count
_HEADER_V1 = struct.Struct("<4sB8sqI")
_HEADERS = {1: _HEADER_V1, 2: _HEADER_V2, FORMAT_VERSION: _HEADER}
_VERSION_AND_MAGIC = struct.Struct("<4sB")

# The code of an 8-byte field in every column: float64 for a float column, int64 for
# bar_count, int64 nanoseconds for the timestamp.
RAW = 255
SECONDS = 0
REGULAR = 1
CONSTANT = 0
PER_BAR = 1
MAX_DECIMALS = 8
# A float column's other codes are a form plus its decimal exponent k (0..MAX_DECIMALS): how the
# integer value * 10**k is stored.
DECIMAL = 0  # int32 (the only form before version 3)
NEAR_CLOSE = 16  # int16, less the same bar's close integer times 10**(k - the close's k)
CLOSE_STEP = 32  # int16, less the bar before's (the first bar: less the header's close base)
# bar_count: int32, or (version 3) a uint16 of the count plus one, so that -1 (none sent) is 0.
INT32 = 0
SMALL_COUNT = 1
_FLOAT_COLUMNS = ("open", "high", "low", "close", "volume", "wap")
_NEAR_CLOSE_COLUMNS = ("open", "high", "low", "wap")
# The codes each float column may have: versions 1 and 2 knew only int32 decimals and RAW.
_OLDER_FLOAT_CODES = frozenset([*range(MAX_DECIMALS + 1), RAW])
_FLOAT_CODES = {
    "close": _OLDER_FLOAT_CODES | {CLOSE_STEP + k for k in range(MAX_DECIMALS + 1)},
    "volume": _OLDER_FLOAT_CODES,
    **{
        name: _OLDER_FLOAT_CODES | {NEAR_CLOSE + k for k in range(MAX_DECIMALS + 1)}
        for name in _NEAR_CLOSE_COLUMNS
    },
}
_POWERS_OF_TEN = 10.0 ** np.arange(MAX_DECIMALS + 1)
_NS_PER_SECOND = 10**9
_INT16 = np.iinfo(np.int16)
_INT32 = np.iinfo(np.int32)
_UINT16 = np.iinfo(np.uint16)
# What decode_segments returns: the bar columns, then the fetch index.
_OUTPUT_DTYPES = {**COLUMN_DTYPES, "fetch_index": np.dtype(np.uint16)}
# Segments are joined and converted this many body bytes at a time: few enough that a batch
# stays in the CPU cache while each of its fields is read out, and that the allocator hands the
# same memory to the next batch instead of mapping fresh pages.
_BATCH_BYTES = 256 * 1024
# Segments whose layouts alternate (a column of some sessions wider than of the others) are
# decoded a layout at a time and copied into place when they make more runs of one layout than
# this: a batch costs some 25 numpy calls whatever its size, the copy a pass over the bars, and
# for a year of 1-minute bars both took as long at about 32 runs.
_RUNS_DECODED_IN_PLACE = 32


def encode_segment(columns: BarColumns, fetch_index: np.ndarray) -> bytes:
    """The stored bytes of a segment's bars; fetch_index[i] names the fetch bar i came from."""
    return encode_segments(columns, fetch_index, [(0, len(columns))])[0]


def encode_segments(
    columns: BarColumns, fetch_index: np.ndarray, bounds: Sequence[tuple[int, int]]
) -> list[bytes]:
    """The stored bytes of each segment columns[start:stop] for (start, stop) in bounds.

    The codes are chosen once over all the bars (a segment gets codes of its own only where a
    column of all of them has none), so the segments share a layout and their records are built
    by one numpy operation per field."""
    fetch_index = _checked_fetch_index(fetch_index, len(columns))
    shared_codes = _shared_codes(columns, bounds)
    heads = [_head(columns, fetch_index, start, stop, shared_codes) for start, stop in bounds]
    encoded: list[bytes] = [b""] * len(heads)
    by_layout: dict[bytes, list[int]] = {}
    for position, head in enumerate(heads):
        by_layout.setdefault(head.layout_key, []).append(position)
    for layout_key, members in by_layout.items():
        records = _records(layout_key, columns, fetch_index, [heads[i] for i in members])
        offset = 0
        for position in members:
            head = heads[position]
            body = records[offset : offset + head.size]
            offset += head.size
            encoded[position] = head.packed() + body.tobytes()
    return encoded


def decode_segment(data: bytes | memoryview) -> tuple[BarColumns, np.ndarray]:
    """The bars and the per-bar fetch index of stored bytes; ValueError for anything malformed."""
    return decode_segments([data])


def decode_segments(blobs: Sequence[bytes | memoryview]) -> tuple[BarColumns, np.ndarray]:
    """The bars of segments given in time order, as one set of columns, and their fetch index.

    Segments with one layout are viewed as one record array and each field is converted once
    for all of them, so a segment costs a header and a memoryview."""
    segments = []
    for position, blob in enumerate(blobs):
        try:
            segments.append(_parsed(blob))
        except ValueError as error:
            where = f"segment {position + 1} of {len(blobs)}: " if len(blobs) > 1 else ""
            raise ValueError(f"{where}{error}") from None

    total = sum(segment.head.size for segment in segments)
    output = {name: np.empty(total, dtype) for name, dtype in _OUTPUT_DTYPES.items()}
    runs = sum(
        1
        for before, after in zip([None, *segments], segments, strict=False)
        if before is None or before.head.layout_key != after.head.layout_key
    )
    if runs > _RUNS_DECODED_IN_PLACE:
        _decode_by_layout(segments, output)
    else:
        _decode_runs(segments, output, 0)
    fetch_index = _read_only(output.pop("fetch_index"))
    try:
        columns = BarColumns(**output)
    except ValueError as error:
        raise ValueError(f"the decoded bars are not valid: {error}") from None
    return columns, fetch_index


class _Decimal(NamedTuple):
    """A float column stored as integers: value = integer / 10**exponent."""

    form: int  # DECIMAL, NEAR_CLOSE or CLOSE_STEP
    exponent: int


@dataclass(frozen=True)
class _Layout:
    """The record of one layout key: its numpy dtype and how each field turns back into values."""

    dtype: np.dtype
    timestamp_code: int
    decimals: dict[str, _Decimal]  # the float columns not stored RAW
    small_count: bool
    constant_fetch_index: bool
    constant_is_final: bool


@cache
def _layout(layout_key: bytes) -> _Layout:
    timestamp_code, *float_codes, bar_count_code, fetch_index_code, is_final_code = layout_key
    codes = dict(zip(_FLOAT_COLUMNS, float_codes, strict=True))
    decimals = {
        name: _Decimal(form=code - code % 16, exponent=code % 16)
        for name, code in codes.items()
        if code != RAW
    }
    close = decimals.get("close")
    if (
        timestamp_code not in (SECONDS, REGULAR, RAW)
        or any(code not in _FLOAT_CODES[name] for name, code in codes.items())
        or bar_count_code not in (INT32, SMALL_COUNT, RAW)
        or fetch_index_code not in (CONSTANT, PER_BAR)
        or is_final_code not in (CONSTANT, PER_BAR)
        # a column near the close needs the close's integers, at an exponent up to its own
        or any(
            decimal.form == NEAR_CLOSE and (close is None or close.exponent > decimal.exponent)
            for decimal in decimals.values()
        )
    ):
        raise ValueError(f"segment has unknown column codes {list(layout_key)}")

    fields = []
    if timestamp_code != REGULAR:
        fields.append(("timestamp", "<i8" if timestamp_code == RAW else "<i4"))
    for name in _FLOAT_COLUMNS:
        decimal = decimals.get(name)
        stored = "<f8" if decimal is None else "<i4" if decimal.form == DECIMAL else "<i2"
        fields.append((name, stored))
    fields.append(("bar_count", {INT32: "<i4", SMALL_COUNT: "<u2", RAW: "<i8"}[bar_count_code]))
    if fetch_index_code == PER_BAR:
        fields.append(("fetch_index", "<u2"))
    if is_final_code == PER_BAR:
        fields.append(("is_final", "u1"))
    return _Layout(
        dtype=np.dtype(fields, align=False),
        timestamp_code=timestamp_code,
        decimals=decimals,
        small_count=bar_count_code == SMALL_COUNT,
        constant_fetch_index=fetch_index_code == CONSTANT,
        constant_is_final=is_final_code == CONSTANT,
    )


@cache
def _older_layout(layout_key: bytes) -> _Layout:
    """The layout of a version 1 or 2 segment: one without version 3's codes."""
    float_codes, bar_count_code = layout_key[1:7], layout_key[7]
    if any(code not in _OLDER_FLOAT_CODES for code in float_codes) or bar_count_code not in (
        INT32,
        RAW,
    ):
        raise ValueError(f"segment has unknown column codes {list(layout_key)}")
    return _layout(layout_key)


class _Head(NamedTuple):
    """A segment's header fields: how its bars are laid out and what the header says for all.

    A named tuple, as is _Segment: decoding makes one of each per segment read, and a tuple is
    made several times faster than a frozen dataclass."""

    layout_key: bytes
    base: int  # nanoseconds: the first bar's start, or 0 for RAW timestamps
    step: int  # nanoseconds between bars when REGULAR, else 0
    size: int  # bars
    fetch_index: int  # every bar's when CONSTANT, else 0
    is_final: bool  # every bar's when CONSTANT, else False
    close_base: int = 0  # what the first close steps from when CLOSE_STEP, else 0
    start: int = 0  # where the bars start in the columns encoded (encoding only)

    def packed(self) -> bytes:
        return _HEADER.pack(
            MAGIC,
            FORMAT_VERSION,
            self.layout_key,
            self.base,
            self.step,
            self.size,
            self.fetch_index,
            self.is_final,
            self.close_base,
        )


class _Segment(NamedTuple):
    """One stored segment's header and a view of its body."""

    head: _Head
    body: memoryview


def _parsed(blob: bytes | memoryview) -> _Segment:
    """The header of a segment, checked against its length."""
    if len(blob) < _VERSION_AND_MAGIC.size:
        raise ValueError(f"segment of {len(blob)} bytes is shorter than its header")
    magic, version = _VERSION_AND_MAGIC.unpack_from(blob)
    if magic != MAGIC:
        raise ValueError("not a bar segment: it does not start with the segment magic bytes")
    header = _HEADERS.get(version)
    if header is None:
        raise ValueError(
            f"unknown segment format version {version}; this code reads 1 to {FORMAT_VERSION}"
        )
    if len(blob) < header.size:
        raise ValueError(
            f"segment of {len(blob)} bytes is shorter than its {header.size}-byte header"
        )
    # Each version unpacked by a line of its own: this runs for every segment read.
    if version == FORMAT_VERSION:
        _, _, layout_key, base, step, count, fetch_index, is_final, close_base = header.unpack_from(
            blob
        )
        head = _Head(layout_key, base, step, count, fetch_index, is_final != 0, close_base)
        layout = _layout(layout_key)
    elif version == 2:
        _, _, layout_key, base, step, count, fetch_index, is_final = header.unpack_from(blob)
        head = _Head(layout_key, base, step, count, fetch_index, is_final != 0)
        layout = _older_layout(layout_key)
    else:
        _, _, codes, base, count = header.unpack_from(blob)
        # Version 1 kept the fetch index and is_final in every record.
        head = _Head(codes + bytes([PER_BAR, PER_BAR]), base, 0, count, 0, False)
        layout = _older_layout(head.layout_key)
    body_length = count * layout.dtype.itemsize
    if len(blob) - header.size != body_length:
        raise ValueError(
            f"segment body is {len(blob) - header.size} bytes; {count} bars take {body_length}"
        )
    return _Segment(head, memoryview(blob)[header.size :])


def _decode_runs(segments: list[_Segment], output: dict[str, np.ndarray], start: int) -> int:
    """Decodes the segments into output from position start, a batch of consecutive segments
    with one layout at a time; returns where their bars end."""
    for batch in _batches(segments):
        start = _decode_batch(batch, output, start)
    return start


def _decode_by_layout(segments: list[_Segment], output: dict[str, np.ndarray]) -> None:
    """Decodes the segments of each layout together, wherever they are in the order, into
    columns of their own, and copies each run of them into its place in output."""
    starts = np.cumsum([0, *(segment.head.size for segment in segments)]).tolist()
    by_layout: dict[bytes, list[int]] = {}
    for position, segment in enumerate(segments):
        by_layout.setdefault(segment.head.layout_key, []).append(position)
    for positions in by_layout.values():
        size = sum(segments[position].head.size for position in positions)
        part = {name: np.empty(size, values.dtype) for name, values in output.items()}
        _decode_runs([segments[position] for position in positions], part, 0)
        # Runs of positions that follow one another are one copy.
        copied = 0
        for run in _consecutive(positions):
            first, stop = starts[run[0]], starts[run[-1] + 1]
            for name, values in output.items():
                values[first:stop] = part[name][copied : copied + stop - first]
            copied += stop - first


def _consecutive(positions: list[int]) -> Iterator[list[int]]:
    """The runs of increasing positions that follow one another."""
    run = positions[:1]
    for position in positions[1:]:
        if position != run[-1] + 1:
            yield run
            run = []
        run.append(position)
    if run:
        yield run


def _batches(segments: list[_Segment]) -> Iterator[list[_Segment]]:
    """Runs of consecutive segments with one layout, each of at most _BATCH_BYTES of bodies
    (or a single larger segment)."""
    batch: list[_Segment] = []
    size = 0
    for segment in segments:
        if batch and (
            segment.head.layout_key != batch[0].head.layout_key
            or size + len(segment.body) > _BATCH_BYTES
        ):
            yield batch
            batch, size = [], 0
        batch.append(segment)
        size += len(segment.body)
    if batch:
        yield batch


class _Batch(NamedTuple):
    """Segments of one layout, being decoded into output[start:stop]."""

    layout: _Layout
    heads: list[_Head]
    counts: list[int]  # bars of each segment
    offsets: list[int]  # where each segment starts in the batch
    records: np.ndarray

    def per_bar(self, values: list[int]) -> np.ndarray | int:
        """A value of each segment, repeated for each of its bars (one number when they agree,
        as they mostly do: numpy then broadcasts it)."""
        if len(set(values)) == 1:
            return values[0]
        return np.repeat(np.array(values, np.int64), self.counts)


def _decode_batch(segments: list[_Segment], output: dict[str, np.ndarray], start: int) -> int:
    """Writes the segments' bars into output from position start; returns where they end."""
    heads = [segment.head for segment in segments]
    counts = [head.size for head in heads]
    layout = _layout(heads[0].layout_key)
    body = segments[0].body if len(segments) == 1 else b"".join(s.body for s in segments)
    batch = _Batch(
        layout=layout,
        heads=heads,
        counts=counts,
        offsets=np.cumsum([0, *counts[:-1]]).tolist(),
        records=np.frombuffer(body, layout.dtype),
    )
    stop = start + sum(counts)
    columns = {name: values[start:stop] for name, values in output.items()}
    _decode_floats(batch, columns)
    records = batch.records
    if layout.small_count:
        columns["bar_count"][...] = records["bar_count"]
        columns["bar_count"] -= 1
    else:
        columns["bar_count"][...] = records["bar_count"]
    _decode_timestamps(batch, columns["timestamp"])
    if layout.constant_fetch_index:
        columns["fetch_index"][...] = batch.per_bar([head.fetch_index for head in heads])
    else:
        columns["fetch_index"][...] = records["fetch_index"]
    if layout.constant_is_final:
        columns["is_final"][...] = batch.per_bar([int(head.is_final) for head in heads])
    else:
        np.not_equal(records["is_final"], 0, out=columns["is_final"])
    return stop


def _decode_floats(batch: _Batch, columns: dict[str, np.ndarray]) -> None:
    """The float columns. The close's integers come first, into the close column, as the other
    prices count from them; then every column is divided by its 10**k. Integers add exactly as
    float64 (they are int32 values and int16 differences), so each value is integer / 10**k:
    the operations _decimal_exponent checked, which give back the bits encoded."""
    layout, records = batch.layout, batch.records
    close, close_decimal = columns["close"], layout.decimals.get("close")
    if close_decimal is not None and close_decimal.form == CLOSE_STEP:
        # Each segment's steps summed from its close base: a running sum over the batch, less
        # what it held before the segment, plus the segment's base.
        running = np.cumsum(records["close"], dtype=np.int64)
        before = [int(running[offset - 1]) if offset else 0 for offset in batch.offsets]
        bases = [head.close_base - sum_ for head, sum_ in zip(batch.heads, before, strict=True)]
        np.add(running, batch.per_bar(bases), out=close)
    else:
        close[...] = records["close"]  # the close's integers, or its float64 when RAW
    for name in ("open", "high", "low", "volume", "wap"):
        target, stored, decimal = columns[name], records[name], layout.decimals.get(name)
        if decimal is None:
            target[...] = stored
        elif decimal.form == NEAR_CLOSE:
            shift = decimal.exponent - close_decimal.exponent
            if shift:
                np.multiply(close, _POWERS_OF_TEN[shift], out=target)
                target += stored
            else:
                # numpy converts a strided int16 field faster on its own than within an add
                target[...] = stored
                target += close
            if decimal.exponent:
                target /= _POWERS_OF_TEN[decimal.exponent]
        elif decimal.exponent:
            np.divide(stored, _POWERS_OF_TEN[decimal.exponent], out=target)
        else:
            target[...] = stored
    if close_decimal is not None and close_decimal.exponent:
        close /= _POWERS_OF_TEN[close_decimal.exponent]


def _decode_timestamps(batch: _Batch, timestamp: np.ndarray) -> None:
    """The bar starts, from the header's base and step or the records' seconds or nanoseconds."""
    heads = batch.heads
    if batch.layout.timestamp_code == REGULAR:
        # Bar i of a segment starts at base + i * step: counted from the batch's first bar, at
        # base - offset * step, offset being where the segment starts in the batch.
        steps = [head.step for head in heads]
        np.multiply(np.arange(len(timestamp)), batch.per_bar(steps), out=timestamp)
        timestamp += batch.per_bar(
            [
                head.base - offset * step
                for head, offset, step in zip(heads, batch.offsets, steps, strict=True)
            ]
        )
        return
    timestamp[...] = batch.records["timestamp"]
    if batch.layout.timestamp_code == SECONDS:
        timestamp *= _NS_PER_SECOND
    timestamp += batch.per_bar([head.base for head in heads])


# -- encoding ------------------------------------------------------------------------------------


def _shared_codes(columns: BarColumns, bounds: Sequence[tuple[int, int]]) -> dict[str, int]:
    """The code of each float column and of bar_count over all the bars: for each, the
    narrowest form that holds every bar of every segment."""
    decimals = {name: _decimals(getattr(columns, name)) for name in _FLOAT_COLUMNS}
    codes = {name: exponent for name, (exponent, _) in decimals.items()}
    close_exponent, close = decimals["close"]
    if close is not None:
        steps = np.diff(close)
        # A segment's first close steps from its header's close base, not from the bar before.
        steps[[start - 1 for start, _ in bounds if 0 < start < len(close)]] = 0
        if _fits(steps, _INT16):
            codes["close"] = CLOSE_STEP + close_exponent
        for name in _NEAR_CLOSE_COLUMNS:
            exponent, integers = decimals[name]
            if integers is not None and exponent >= close_exponent:
                # Integers in float64, exact to 2**53: a product beyond that is inexact, but
                # then far beyond an int16 as well.
                near = integers - close * _POWERS_OF_TEN[exponent - close_exponent]
                if _fits(near, _INT16):
                    codes[name] = NEAR_CLOSE + exponent
    codes["bar_count"] = _count_code(columns.bar_count)
    return codes


def _count_code(bar_count: np.ndarray) -> int:
    if not len(bar_count) or (bar_count.min() >= -1 and bar_count.max() < _UINT16.max):
        return SMALL_COUNT
    return INT32 if _fits(bar_count, _INT32) else RAW


def _head(
    columns: BarColumns,
    fetch_index: np.ndarray,
    start: int,
    stop: int,
    shared_codes: dict[str, int],
) -> _Head:
    """The header of the segment columns[start:stop]: codes shared with the other segments
    where they have one, else its own (an int32 decimal or RAW, a bar_count of any width)."""
    timestamp_code, base, step = _timestamp_code(columns.timestamp[start:stop])
    codes = [timestamp_code]
    for name in (*_FLOAT_COLUMNS, "bar_count"):
        code = shared_codes[name]
        if code == RAW:
            values = getattr(columns, name)[start:stop]
            code = _count_code(values) if name == "bar_count" else _decimal_exponent(values)
        codes.append(code)
    close_code = codes[1 + _FLOAT_COLUMNS.index("close")]
    close_base = 0
    if CLOSE_STEP <= close_code < RAW and stop > start:
        close_base = int(_scaled(columns.close[start : start + 1], close_code - CLOSE_STEP)[0])
    fetches = fetch_index[start:stop]
    one_fetch = not len(fetches) or fetches.min() == fetches.max()
    finality = columns.is_final[start:stop]
    one_finality = not len(finality) or finality.all() or not finality.any()
    codes += [CONSTANT if one_fetch else PER_BAR, CONSTANT if one_finality else PER_BAR]
    return _Head(
        layout_key=bytes(codes),
        base=base,
        step=step,
        size=stop - start,
        fetch_index=int(fetches[0]) if one_fetch and len(fetches) else 0,
        is_final=bool(finality[0]) if one_finality and len(finality) else False,
        close_base=close_base,
        start=start,
    )


def _records(
    layout_key: bytes, columns: BarColumns, fetch_index: np.ndarray, heads: list[_Head]
) -> np.ndarray:
    """The records of the segments with this layout, one after the other."""
    layout = _layout(layout_key)
    counts = [head.size for head in heads]
    contiguous = all(
        after.start == before.start + before.size
        for before, after in zip(heads, heads[1:], strict=False)
    )
    if contiguous:
        where: slice | np.ndarray = slice(heads[0].start, heads[0].start + sum(counts))
    else:
        where = np.concatenate([np.arange(h.start, h.start + h.size) for h in heads])
    records = np.empty(sum(counts), layout.dtype)
    close_decimal = layout.decimals.get("close")
    if close_decimal is not None:
        close = _scaled(columns.close[where], close_decimal.exponent)
    for name in layout.dtype.names:
        values = fetch_index[where] if name == "fetch_index" else getattr(columns, name)[where]
        decimal = layout.decimals.get(name)
        if name == "timestamp" and layout.timestamp_code == SECONDS:
            bases = np.repeat(np.array([head.base for head in heads], np.int64), counts)
            records[name] = (values - bases) // _NS_PER_SECOND
        elif name == "bar_count" and layout.small_count:
            records[name] = values + 1
        elif decimal is None:
            records[name] = values
        elif decimal.form == CLOSE_STEP:
            steps = np.diff(close, prepend=0)
            firsts = np.cumsum([0, *counts[:-1]])[np.array(counts) > 0]
            steps[firsts] = close[firsts] - [head.close_base for head in heads if head.size]
            records[name] = steps
        elif name == "close":
            records[name] = close
        elif decimal.form == NEAR_CLOSE:
            shift = decimal.exponent - close_decimal.exponent
            records[name] = _scaled(values, decimal.exponent) - close * 10**shift
        else:
            records[name] = _scaled(values, decimal.exponent)
    return records


def _scaled(values: np.ndarray, exponent: int) -> np.ndarray:
    """The integers value * 10**exponent of a column _decimal_exponent gave this exponent or a
    smaller one."""
    return np.rint(values * _POWERS_OF_TEN[exponent]).astype(np.int64)


def _timestamp_code(timestamp: np.ndarray) -> tuple[int, int, int]:
    """The timestamp code of a segment's starts, its base and its step: REGULAR when the bars
    are evenly spaced, else SECONDS when every start is a whole second within int32 seconds of
    the first, else RAW with base 0."""
    if len(timestamp) < 2:
        return REGULAR, int(timestamp[0]) if len(timestamp) else 0, 0
    first, last = int(timestamp[0]), int(timestamp[-1])
    steps = np.diff(timestamp)
    if steps.min() == steps.max():
        return REGULAR, first, int(steps[0])
    if (last - first) // _NS_PER_SECOND <= _INT32.max and not (timestamp % _NS_PER_SECOND).any():
        return SECONDS, first, 0
    return RAW, 0, 0


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
    return _decimals(values)[0]


def _decimals(values: np.ndarray) -> tuple[int, np.ndarray | None]:
    """_decimal_exponent's k, and the integers value * 10**k (as float64; None when RAW)."""
    if not np.isfinite(values).all():
        return RAW, None
    bits = values.view(np.int64)
    # No k below what a few of the values need can hold them all: finding that in plain Python
    # spares most of the whole-array tries (encoding is most of a write's time).
    for k in range(_smallest_exponent_of_sample(values), len(_POWERS_OF_TEN)):
        power = _POWERS_OF_TEN[k]
        scaled = np.rint(values * power)
        if len(values) and (scaled.min() < _INT32.min or scaled.max() > _INT32.max):
            return RAW, None  # a larger k only scales further out of range
        # The operations decoding does, so equal bits here mean equal bits there.
        decoded = scaled.astype(np.int32).astype(np.float64) / power
        if np.array_equal(decoded.view(np.int64), bits):
            return k, scaled
    return RAW, None


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


def _fits(values: np.ndarray, limits: np.iinfo) -> bool:
    return not len(values) or (values.min() >= limits.min and values.max() <= limits.max)
