"""The bytes of one stored segment (market_data_cache.ohlcv_data): its bars as packed records.

Format version 2, little-endian throughout:

    header (38 bytes)  "BSEG", version u8, layout u8 x 10 (the codes of timestamp, open, high,
                       low, close, volume, wap, bar_count, fetch_index and is_final), base
                       timestamp i64 (ns since the epoch), step i64 (ns), bar count n u32, the
                       segment's fetch index u16 and is_final u8 (used where their code is
                       CONSTANT)
    body               n records holding the fields whose code stores them, in that order,
                       packed with no padding

The codes give each field's type. Timestamp: REGULAR (1) stores nothing, bar i starts at
base + i * step (a session without gaps); SECONDS (0) is int32 whole seconds after base (the
first bar's start), used when every start is a whole second within int32 seconds of the first;
RAW (255) is int64 nanoseconds with base 0. A float column's code k (0..8) is int32
value * 10**k, for a k that gives back every value bit for bit through int32 -> float64 / 10**k
(prices with two decimals: k=2); a column with NaN, infinities, -0.0 or values no k reproduces
is RAW float64. bar_count is int32 (code 0) when it fits, else RAW int64. fetch_index and
is_final are CONSTANT (0), the header's value for every bar, or PER_BAR (1), a u16 and a u8 in
each record (any nonzero is_final reads as final).

Version 1 (written before version 2, still read): a 25-byte header "<4sB8sqI" with no step and no
constants, layout codes for timestamp (SECONDS or RAW), the six float columns and bar_count, and
fetch_index u16 and is_final u8 in every record.

decode_segments reads the segments of a query at once: consecutive segments with one layout
are joined, viewed as one record array and each field is converted by one numpy operation,
written straight into the output columns, 256 kB of bodies at a time. encode_segments does the
reverse for a fetched chunk: the decimal codes are chosen once for all its bars, so the
segments of a chunk share a layout and are built from one record array.

Why, measured on a year of 1-minute bars (252 segments of 390 bars: random-walk prices around
100 with two decimals, wap with four, whole volumes and counts) against the same bars in one
Parquet file written with pyarrow's defaults (25.3 bytes a bar). Times are medians of
interleaved rounds over pq.read_table(file).to_pandas(), ranges over runs:

    bytes per bar                           records      PostgreSQL table of (id, bytea) rows
      version 2 (7 int32 fields)              28.0       lz4 22.4, uncompressed 33.1
      version 1 (+ seconds, fetch, final)     35.1       pglz 22.3, lz4 24.1, uncompressed 38.3
      every float column RAW                  59.1       pglz 36.4, lz4 36.5
      (Parquet of the same: 28.8)

    read time vs Parquet
      decode_segments + to_pandas()           0.7-1.0x (0.4x once the allocator keeps its pages)
      decode_segments                         0.3-0.7x
      decode_segment of each + concat         1.2-1.9x
      int32 columns one after the other,
        zstd per segment, one at a time       1.7-2.9x

Fetching the year's rows from PostgreSQL took 13.3 ms as version 1 records and 7.6 ms as
version 2 (lz4 TOAST, one run): a query's time follows the bytes PostgreSQL detoasts and sends,
which is why fields that a header can say once are not repeated in every record.

Reading many segments had a fixed cost per segment: a zstd frame (about 18 us a session) and a
dozen numpy calls. Records in rows let every segment of a layout be viewed as one array
whatever their bar counts. Bodies in columns convert faster once viewed (contiguous fields:
0.5x against 0.7x with a warm allocator, no faster with a cold one), but can only be viewed at
once when the bar counts agree, which short sessions, gaps and the months of daily bars do not;
otherwise each segment and column is a call of its own. In PostgreSQL rows also compress a
little better than columns (pglz 22.3 against 24.2 bytes a bar): each field's high bytes repeat
at the record's stride. About half of the decode time is page faults on fresh memory; joining
256 kB at a time instead of a whole run leaves mostly the output columns'.

The codec compresses nothing. zstd over the records (15.4 bytes a bar at level 1) takes longer
to decompress, even as one call over all the frames, than reading the bytes it saves; SQLite
stays within 1.5x Parquet's size without it, and PostgreSQL compresses a value over about 2 kB
itself (lz4, set by the migration).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np

from backend.market_data.bar_columns import COLUMN_DTYPES, BarColumns

FORMAT_VERSION = 2
MAGIC = b"BSEG"
# magic, version, layout (10 field codes), base timestamp, step, bar count, fetch index, is_final
_HEADER = struct.Struct("<4sB10sqqIHB")
HEADER_SIZE = _HEADER.size
# Version 1: magic, version, layout (timestamp code, then the 7 column codes), base, bar count
_HEADER_V1 = struct.Struct("<4sB8sqI")
_VERSION_AND_MAGIC = struct.Struct("<4sB")

# The code of an 8-byte field: float64 for a float column, int64 for bar_count, int64
# nanoseconds for the timestamp. A float column's other codes are its decimal exponent k (an
# int32 of the value times 10**k); bar_count's 0 is int32.
RAW = 255
SECONDS = 0
REGULAR = 1
CONSTANT = 0
PER_BAR = 1
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
    return encode_segments(columns, fetch_index, [(0, len(columns))])[0]


def encode_segments(
    columns: BarColumns, fetch_index: np.ndarray, bounds: Sequence[tuple[int, int]]
) -> list[bytes]:
    """The stored bytes of each segment columns[start:stop] for (start, stop) in bounds.

    The decimal codes are chosen once over all the bars (a segment gets codes of its own only
    where a column of all of them has none), so the segments share a layout and their records
    are built by one numpy operation per field."""
    fetch_index = _checked_fetch_index(fetch_index, len(columns))
    shared_codes = _float_and_count_codes(columns)
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

    Consecutive segments with one layout are viewed as one record array and each field is
    converted once for all of them, so a segment costs a header and a memoryview."""
    segments = []
    for position, blob in enumerate(blobs):
        try:
            segments.append(_parsed(blob))
        except ValueError as error:
            where = f"segment {position + 1} of {len(blobs)}: " if len(blobs) > 1 else ""
            raise ValueError(f"{where}{error}") from None

    total = sum(segment.head.size for segment in segments)
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
    timestamp_code: int
    divisors: dict[str, float]  # 10**k of each float field stored as int32 with k > 0
    constant_fetch_index: bool
    constant_is_final: bool


@cache
def _layout(layout_key: bytes) -> _Layout:
    timestamp_code, *float_codes, bar_count_code, fetch_index_code, is_final_code = layout_key
    if (
        timestamp_code not in (SECONDS, REGULAR, RAW)
        or any(MAX_DECIMALS < code != RAW for code in float_codes)
        or bar_count_code not in (0, RAW)
        or fetch_index_code not in (CONSTANT, PER_BAR)
        or is_final_code not in (CONSTANT, PER_BAR)
    ):
        raise ValueError(f"segment has unknown column codes {list(layout_key)}")

    def stored_type(code: int, raw_type: str) -> str:
        return raw_type if code == RAW else "<i4"

    fields = (
        [] if timestamp_code == REGULAR else [("timestamp", stored_type(timestamp_code, "<i8"))]
    )
    fields += [
        (name, stored_type(code, "<f8"))
        for name, code in zip(_FLOAT_COLUMNS, float_codes, strict=True)
    ]
    fields += [("bar_count", stored_type(bar_count_code, "<i8"))]
    if fetch_index_code == PER_BAR:
        fields += [("fetch_index", "<u2")]
    if is_final_code == PER_BAR:
        fields += [("is_final", "u1")]
    divisors = {
        name: float(_POWERS_OF_TEN[code])
        for name, code in zip(_FLOAT_COLUMNS, float_codes, strict=True)
        if code not in (0, RAW)
    }
    return _Layout(
        dtype=np.dtype(fields, align=False),
        timestamp_code=timestamp_code,
        divisors=divisors,
        constant_fetch_index=fetch_index_code == CONSTANT,
        constant_is_final=is_final_code == CONSTANT,
    )


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
    if version not in (1, FORMAT_VERSION):
        raise ValueError(
            f"unknown segment format version {version}; this code reads 1 and {FORMAT_VERSION}"
        )
    header = _HEADER if version == FORMAT_VERSION else _HEADER_V1
    if len(blob) < header.size:
        raise ValueError(
            f"segment of {len(blob)} bytes is shorter than its {header.size}-byte header"
        )
    if version == FORMAT_VERSION:
        _, _, layout_key, base, step, count, fetch_index, is_final = header.unpack_from(blob)
        head = _Head(layout_key, base, step, count, fetch_index, is_final != 0)
    else:
        _, _, codes, base, count = header.unpack_from(blob)
        # Version 1 kept the fetch index and is_final in every record.
        head = _Head(codes + bytes([PER_BAR, PER_BAR]), base, 0, count, 0, False)
    body_length = count * _layout(head.layout_key).dtype.itemsize
    if len(blob) - header.size != body_length:
        raise ValueError(
            f"segment body is {len(blob) - header.size} bytes; {count} bars take {body_length}"
        )
    return _Segment(head, memoryview(blob)[header.size :])


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


def _decode_batch(batch: list[_Segment], output: dict[str, np.ndarray], start: int) -> int:
    """Writes the batch's bars into output from position start; returns where they end."""
    layout = _layout(batch[0].head.layout_key)
    heads = [segment.head for segment in batch]
    counts = [head.size for head in heads]
    stop = start + sum(counts)

    def per_bar(values: list[int]) -> np.ndarray | int:
        """A value of each segment, repeated for each of its bars (one number when they agree,
        as they mostly do: numpy then broadcasts it)."""
        if len(set(values)) == 1:
            return values[0]
        return np.repeat(np.array(values, np.int64), counts)

    body = batch[0].body if len(batch) == 1 else b"".join(segment.body for segment in batch)
    records = np.frombuffer(body, layout.dtype)
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
    if layout.timestamp_code == REGULAR:
        # Bar i of a segment starts at base + i * step: counted from the batch's first bar, at
        # base - offset * step, offset being where the segment starts in the batch.
        steps = [head.step for head in heads]
        offsets = np.cumsum([0, *counts[:-1]]).tolist()
        np.multiply(np.arange(len(timestamp)), per_bar(steps), out=timestamp)
        timestamp += per_bar(
            [
                head.base - offset * step
                for head, offset, step in zip(heads, offsets, steps, strict=True)
            ]
        )
    else:
        if layout.timestamp_code == SECONDS:
            timestamp *= _NS_PER_SECOND
        timestamp += per_bar([head.base for head in heads])
    if layout.constant_fetch_index:
        output["fetch_index"][start:stop] = per_bar([head.fetch_index for head in heads])
    if layout.constant_is_final:
        output["is_final"][start:stop] = per_bar([int(head.is_final) for head in heads])
    return stop


# -- encoding ------------------------------------------------------------------------------------


def _float_and_count_codes(columns: BarColumns) -> dict[str, int]:
    """The code of each float column and of bar_count over all the bars."""
    codes = {name: _decimal_exponent(getattr(columns, name)) for name in _FLOAT_COLUMNS}
    codes["bar_count"] = 0 if _fits_int32(columns.bar_count) else RAW
    return codes


def _head(
    columns: BarColumns,
    fetch_index: np.ndarray,
    start: int,
    stop: int,
    shared_codes: dict[str, int],
) -> _Head:
    """The header of the segment columns[start:stop]: codes shared with the other segments
    where they have one, its own where they have none."""
    timestamp_code, base, step = _timestamp_code(columns.timestamp[start:stop])
    codes = [timestamp_code]
    for name in (*_FLOAT_COLUMNS, "bar_count"):
        code = shared_codes[name]
        if code == RAW:
            values = getattr(columns, name)[start:stop]
            if name == "bar_count":
                code = 0 if _fits_int32(values) else RAW
            else:
                code = _decimal_exponent(values)
        codes.append(code)
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
    codes = dict(zip(("timestamp", *_FLOAT_COLUMNS, "bar_count"), layout_key, strict=False))
    records = np.empty(sum(counts), layout.dtype)
    for name in layout.dtype.names:
        values = fetch_index[where] if name == "fetch_index" else getattr(columns, name)[where]
        code = codes.get(name, RAW)
        if name == "timestamp" and code == SECONDS:
            bases = np.repeat(np.array([head.base for head in heads], np.int64), counts)
            records[name] = (values - bases) // _NS_PER_SECOND
        elif name in _FLOAT_COLUMNS and code != RAW:
            records[name] = np.rint(values * _POWERS_OF_TEN[code])
        else:
            records[name] = values
    return records


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
