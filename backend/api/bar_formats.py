"""A series' bars as Parquet, Arrow IPC stream or CSV: the columnar answers of the series route.

Parquet and Arrow carry the frame `BarColumns.to_pandas()` gives, with pandas' metadata, so
`pd.read_parquet(url)` (or an Arrow reader's `.to_pandas()`) rebuilds the in-process frame
exactly: its UTC "timestamp" index, float64 columns (bar_count too) and bool is_final. Other
readers see a "timestamp" column first and nulls where IBKR sent no value.
"""

from __future__ import annotations

import io
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from backend.market_data.bar_columns import BarColumns
from backend.market_data.domain import SeriesKey


class BarFormat(StrEnum):
    JSON = "json"
    PARQUET = "parquet"
    ARROW = "arrow"
    CSV = "csv"


MEDIA_TYPES: dict[BarFormat, str] = {
    BarFormat.JSON: "application/json",
    BarFormat.PARQUET: "application/vnd.apache.parquet",
    BarFormat.ARROW: "application/vnd.apache.arrow.stream",
    BarFormat.CSV: "text/csv",
}
# .arrows is the extension Arrow recommends for its stream format (.arrow is the file format).
FILE_EXTENSIONS: dict[BarFormat, str] = {
    BarFormat.PARQUET: "parquet",
    BarFormat.ARROW: "arrows",
    BarFormat.CSV: "csv",
}
_NANOSECONDS_PER_SECOND = 1_000_000_000


def negotiate(accept: str | None) -> BarFormat | None:
    """The format an Accept header prefers; JSON when there is none; None when it accepts none.

    The highest q wins; at equal q a type named outright beats one matched by a wildcard, and
    JSON beats the others (so `*/*` and browsers' headers get JSON). A malformed entry is skipped.
    """
    if accept is None or not accept.strip():
        return BarFormat.JSON
    ranges = [parsed for entry in accept.split(",") if (parsed := _media_range(entry))]
    best: tuple[float, int] | None = None
    chosen = None
    # Dicts keep insertion order: JSON first, so it wins every tie.
    for bar_format, media_type in MEDIA_TYPES.items():
        match = _best_match(media_type, ranges)
        if match is not None and match[0] > 0 and (best is None or match > best):
            best, chosen = match, bar_format
    return chosen


def _media_range(entry: str) -> tuple[str, str, float] | None:
    """(type, subtype, q) of one Accept entry, lower-cased; None if it is not one."""
    kind, _, parameters = entry.partition(";")
    main, slash, sub = kind.strip().lower().partition("/")
    if not slash or not main or not sub:
        return None
    quality = 1.0
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return None
            if not 0 <= quality <= 1:
                return None
    return main, sub, quality


def _best_match(media_type: str, ranges: list[tuple[str, str, float]]) -> tuple[float, int] | None:
    """(q, specificity) of the most specific range matching media_type: exact 2, type/* 1,
    */* 0; None when no range matches."""
    main, sub = media_type.split("/")
    found: tuple[int, float] | None = None
    for range_main, range_sub, quality in ranges:
        if (range_main, range_sub) == (main, sub):
            specificity = 2
        elif (range_main, range_sub) == (main, "*"):
            specificity = 1
        elif (range_main, range_sub) == ("*", "*"):
            specificity = 0
        else:
            continue
        # The most specific range decides (RFC 9110 12.5.1): text/csv;q=0 refuses CSV even
        # under */*.
        if found is None or specificity > found[0]:
            found = (specificity, quality)
    return None if found is None else (found[1], found[0])


def filename(series: SeriesKey, bar_format: BarFormat) -> str:
    """NVDA_1m.parquet for a stock's TRADES in regular hours; otherwise the series' label,
    e.g. ES_202503_FUT_CME_1m_MIDPOINT_all-hours.parquet."""
    plain = SeriesKey(series.symbol, series.exchange, series.data_type)
    name = (
        f"{series.symbol}_{series.data_type}"
        if series == plain
        else "_".join(series.label().replace("all hours", "all-hours").split())
    )
    return f"{name}.{FILE_EXTENSIONS[bar_format]}"


def encode(bars: BarColumns, bar_format: BarFormat) -> bytes:
    """The bars as a body of a columnar format."""
    encoders = {
        BarFormat.PARQUET: parquet_body,
        BarFormat.ARROW: arrow_body,
        BarFormat.CSV: csv_body,
    }
    return encoders[bar_format](bars)


def frame_table(bars: BarColumns) -> pa.Table:
    """The bars' DataFrame as an Arrow table that pandas turns back into the same frame.

    pandas' metadata names "timestamp" as the index; the column goes first, where readers that
    do not know pandas expect the time.
    """
    frame = bars.to_pandas()
    table = pa.Table.from_pandas(frame, preserve_index=True)
    return table.select(["timestamp", *frame.columns])


def parquet_body(bars: BarColumns) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(frame_table(bars), buffer)
    return buffer.getvalue()


def arrow_body(bars: BarColumns) -> bytes:
    table = frame_table(bars)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def csv_body(bars: BarColumns) -> bytes:
    """A header, then a row per bar: ISO-8601 UTC times, empty fields where no value was sent."""
    table = bars.to_arrow()
    # Whole seconds print as JSON prints them (2025-06-02T13:30:00Z); else to the microsecond.
    whole_seconds = not np.any(bars.timestamp % _NANOSECONDS_PER_SECOND)
    unit = "s" if whole_seconds else "us"
    # Cast without the time zone (the values are UTC already): pyarrow formats naive times
    # about ten times faster than zoned ones or strftime.
    naive = (
        table["timestamp"].cast(pa.timestamp(unit, tz="UTC"), safe=False).cast(pa.timestamp(unit))
    )
    spaced = pc.replace_substring(naive.cast(pa.string()), " ", "T", max_replacements=1)
    times = pc.binary_join_element_wise(spaced, "Z", "")
    table = table.set_column(0, "timestamp", times)
    buffer = io.BytesIO()
    # No value needs quotes (times, numbers, true/false); pyarrow would quote every header name.
    buffer.write((",".join(table.column_names) + "\n").encode())
    pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    return buffer.getvalue()
