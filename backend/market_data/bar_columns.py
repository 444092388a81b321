"""Bars as columns: one numpy array per field, the shape segments are stored and read in.

A year of 1-minute bars is about 98k bars; as `Bar` objects that is 98k allocations per read,
as columns it is nine arrays. Code that wants objects or tuples asks for them at the edge
(`bars()`, `ohlcv()`); code that computes asks for a DataFrame or an Arrow table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api.internals import create_dataframe_from_blocks

from backend.market_data.domain import Bar, OhlcvBar

# bar_count's value where IBKR sent none (an int column has no NaN).
NO_BAR_COUNT = -1

# Field order of the dataclass, the DataFrame and the Arrow table.
COLUMN_DTYPES: dict[str, np.dtype] = {
    "timestamp": np.dtype(np.int64),
    "open": np.dtype(np.float64),
    "high": np.dtype(np.float64),
    "low": np.dtype(np.float64),
    "close": np.dtype(np.float64),
    "volume": np.dtype(np.float64),
    "wap": np.dtype(np.float64),
    "bar_count": np.dtype(np.int64),
    "is_final": np.dtype(np.bool_),
}
COLUMN_NAMES = tuple(COLUMN_DTYPES)
_PRICE_COLUMNS = ("open", "high", "low", "close")
# The DataFrame's float columns: bar_count becomes float so a missing count can be NaN.
_FLOAT_FRAME_COLUMNS = (*_PRICE_COLUMNS, "volume", "wap", "bar_count")
# The frame's columns, built once (making an Index of strings costs about as much as the rest of
# a small frame) and given to each frame as a shallow copy, whose name is the frame's own.
_FRAME_COLUMNS = pd.Index([*_FLOAT_FRAME_COLUMNS, "is_final"])
# Where the frame's two blocks go: the floats first, is_final last.
_FLOAT_PLACEMENT = np.arange(len(_FLOAT_FRAME_COLUMNS))
_IS_FINAL_PLACEMENT = np.array([len(_FLOAT_FRAME_COLUMNS)])

ARROW_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.timestamp("ns", tz="UTC"), nullable=False),
        *(pa.field(name, pa.float64(), nullable=False) for name in _PRICE_COLUMNS),
        pa.field("volume", pa.float64()),
        pa.field("wap", pa.float64()),
        pa.field("bar_count", pa.int64()),
        pa.field("is_final", pa.bool_(), nullable=False),
    ]
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


def _datetimes(nanoseconds: np.ndarray) -> list[datetime]:
    naive = nanoseconds.view("datetime64[ns]").astype("datetime64[us]").tolist()
    return [moment.replace(tzinfo=UTC) for moment in naive]


def datetime_to_ns(moment: datetime) -> int:
    """Nanoseconds since the Unix epoch of a timezone-aware datetime, in integer arithmetic."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone; bar times are UTC and timezone-aware")
    return (moment - _EPOCH) // _ONE_MICROSECOND * 1000


@dataclass(frozen=True, eq=False, repr=False)
class BarColumns:
    """Equal-length arrays, one per bar field, in strictly increasing timestamp order.

    timestamp is int64 nanoseconds since the epoch (UTC); wap is NaN and bar_count is -1 where
    IBKR sent none; volume may be NaN. The arrays are read-only: operations return new columns,
    sharing memory with these where they can (slices, single parts).
    """

    timestamp: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    wap: np.ndarray
    bar_count: np.ndarray
    is_final: np.ndarray

    def __post_init__(self) -> None:
        # Runs for every decoded segment, so the checks are the cheap ones numpy offers.
        shape = getattr(self.timestamp, "shape", None)
        for name, dtype in COLUMN_DTYPES.items():
            array = getattr(self, name)
            if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
                raise ValueError(f"column {name} must be a 1-d numpy array of {dtype}")
            if array.shape != shape:
                raise ValueError(f"column {name} has {len(array)} values, timestamp has {shape[0]}")
            if array.flags.writeable:
                # A read-only view: the caller's array stays writable, ours cannot change.
                array = array.view()
                array.flags.writeable = False
                object.__setattr__(self, name, array)
        if np.count_nonzero(self.timestamp[1:] <= self.timestamp[:-1]):
            raise ValueError("bar timestamps must be strictly increasing")

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def empty(cls) -> BarColumns:
        return cls(*(np.empty(0, dtype) for dtype in COLUMN_DTYPES.values()))

    @classmethod
    def from_bars(cls, bars: Iterable[Bar]) -> BarColumns:
        """Columns of bars in any order; of bars sharing a timestamp the last one given wins."""
        bars = list(bars)
        count = len(bars)
        timestamp = np.fromiter((datetime_to_ns(bar.timestamp) for bar in bars), np.int64, count)
        columns = {
            name: np.fromiter((getattr(bar, name) for bar in bars), np.float64, count)
            for name in (*_PRICE_COLUMNS, "volume")
        }
        wap = np.fromiter((np.nan if b.wap is None else b.wap for b in bars), np.float64, count)
        bar_count = np.fromiter(
            (NO_BAR_COUNT if b.bar_count is None else b.bar_count for b in bars), np.int64, count
        )
        is_final = np.fromiter((bar.is_final for bar in bars), np.bool_, count)
        # Stable, so bars with one timestamp keep their given order and the last of each run wins.
        order = np.argsort(timestamp, kind="stable")
        sorted_timestamp = timestamp[order]
        last_of_run = np.ones(count, dtype=bool)
        last_of_run[:-1] = sorted_timestamp[1:] != sorted_timestamp[:-1]
        order = order[last_of_run]
        return cls(
            timestamp=timestamp[order],
            **{name: values[order] for name, values in columns.items()},
            wap=wap[order],
            bar_count=bar_count[order],
            is_final=is_final[order],
        )

    @classmethod
    def concat(cls, parts: Sequence[BarColumns]) -> BarColumns:
        """One set of columns from parts that are already in time order and do not overlap."""
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(
            *(np.concatenate([getattr(part, name) for part in parts]) for name in COLUMN_NAMES)
        )

    # -- selection and merging ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.timestamp)

    def take(self, index_or_mask: Any) -> BarColumns:
        """The bars a numpy index selects: a slice, a boolean mask or increasing positions."""
        return BarColumns(*(getattr(self, name)[index_or_mask] for name in COLUMN_NAMES))

    def between(self, start: datetime, end: datetime) -> BarColumns:
        """The bars starting in [start, end)."""
        first = np.searchsorted(self.timestamp, datetime_to_ns(start), side="left")
        stop = np.searchsorted(self.timestamp, datetime_to_ns(end), side="left")
        return self.take(slice(first, max(first, stop)))

    def merged_with(self, newer: BarColumns) -> BarColumns:
        """The union of both by timestamp; where both have a bar, newer's is kept."""
        if not len(newer):
            return self
        if not len(self):
            return newer
        kept = self.take(~np.isin(self.timestamp, newer.timestamp, assume_unique=True))
        if not len(kept) or kept.timestamp[-1] < newer.timestamp[0]:
            return BarColumns.concat([kept, newer])
        if newer.timestamp[-1] < kept.timestamp[0]:
            return BarColumns.concat([newer, kept])
        combined = {
            name: np.concatenate([getattr(kept, name), getattr(newer, name)])
            for name in COLUMN_NAMES
        }
        order = np.argsort(combined["timestamp"], kind="stable")
        return BarColumns(**{name: values[order] for name, values in combined.items()})

    # -- reading out -------------------------------------------------------------------------

    def timestamps(self) -> list[datetime]:
        """Bar start times as timezone-aware UTC datetimes (microsecond precision)."""
        return _datetimes(self.timestamp)

    def first_at(self) -> datetime | None:
        return _datetimes(self.timestamp[:1])[0] if len(self) else None

    def last_at(self) -> datetime | None:
        return _datetimes(self.timestamp[-1:])[0] if len(self) else None

    def to_pandas(self) -> pd.DataFrame:
        """A frame indexed by a UTC DatetimeIndex named "timestamp", one float column per field
        (bar_count too, NaN where not sent) and is_final as bool. The frame owns its data."""
        index = pd.DatetimeIndex(self.timestamp.view("datetime64[ns]"), tz="UTC", name="timestamp")
        # The float columns are copied into one 2-d block, the layout pandas keeps, and both
        # blocks are handed to pandas as they are: inserting is_final as a column afterwards
        # took longer than copying the floats (pandas rebuilds its columns on insert). Copied,
        # not shared: a frame over the columns' read-only arrays refuses frame.iloc[0, 0] = x,
        # and pandas' copy-on-write cannot see numpy views, so a frame over writable memory the
        # columns view would change them.
        floats = np.empty((len(_FLOAT_FRAME_COLUMNS), len(self)), dtype=np.float64)
        for row, name in enumerate(_FLOAT_FRAME_COLUMNS[:-1]):
            floats[row] = getattr(self, name)
        floats[-1] = self.bar_count
        floats[-1][self.bar_count == NO_BAR_COUNT] = np.nan
        return create_dataframe_from_blocks(
            [(floats, _FLOAT_PLACEMENT), (self.is_final.copy()[np.newaxis], _IS_FINAL_PLACEMENT)],
            index=index,
            columns=_FRAME_COLUMNS.copy(),
        )

    def to_arrow(self) -> pa.Table:
        """An Arrow table in ARROW_SCHEMA: nulls where a value was not sent, not NaN or -1."""
        arrays = [pa.array(self.timestamp, type=ARROW_SCHEMA.field("timestamp").type)]
        arrays += [pa.array(getattr(self, name)) for name in _PRICE_COLUMNS]
        for name in ("volume", "wap"):
            values = getattr(self, name)
            arrays.append(pa.array(values, mask=np.isnan(values)))
        arrays.append(pa.array(self.bar_count, mask=self.bar_count == NO_BAR_COUNT))
        arrays.append(pa.array(self.is_final))
        return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)

    def bars(self) -> Iterator[Bar]:
        """The bars as domain objects: wap and bar_count None where IBKR sent none."""
        rows = zip(
            self.timestamps(),
            *(getattr(self, name).tolist() for name in (*_PRICE_COLUMNS, "volume", "wap")),
            self.bar_count.tolist(),
            self.is_final.tolist(),
            strict=True,
        )
        for timestamp, open_, high, low, close, volume, wap, bar_count, is_final in rows:
            yield Bar(
                timestamp=timestamp,
                open=open_,
                high=high,
                low=low,
                close=close,
                volume=volume,
                wap=None if wap != wap else wap,  # NaN is the only value unequal to itself
                bar_count=None if bar_count == NO_BAR_COUNT else bar_count,
                is_final=is_final,
            )

    def ohlcv(self) -> list[OhlcvBar]:
        """(timestamp, open, high, low, close, volume) tuples, for code that still wants them."""
        prices = (getattr(self, name).tolist() for name in (*_PRICE_COLUMNS, "volume"))
        return list(zip(self.timestamps(), *prices, strict=True))

    # -- comparison and display --------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        """Same bars, value for value; NaN equals NaN (a missing wap equals a missing wap)."""
        if not isinstance(other, BarColumns):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, name), getattr(other, name), equal_nan=dtype.kind == "f")
            for name, dtype in COLUMN_DTYPES.items()
        )

    __hash__ = None  # type: ignore[assignment]  # equal by value, and arrays are not hashable

    def __repr__(self) -> str:
        if not len(self):
            return "BarColumns(0 bars)"
        first, last = self.first_at(), self.last_at()
        return f"BarColumns({len(self)} bars, {first.isoformat()} .. {last.isoformat()})"
