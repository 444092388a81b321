"""Bars in segments: market_data_cache holds one row per trading session (per month for daily
bars) instead of one row per bar.

Upgrade converts every cached bar into its segment: the bars in time order as typed columns
(backend/storage/segment_codec.py), and for each bar the fetch it came from. Downgrade expands the
segments back into one row per bar. Either way the converted rows wait in a staging table while
the table is replaced, so the final table, its constraints and its indexes are created under their
own names (no renames, which SQLite cannot do for constraints), and the work goes a batch at a
time: a big cache is never held in memory at once.

The series summaries (market_data_series_summary) are left alone: a series keeps every bar, its
first and last bar and its latest fetch, so its summary row stays exact.

What a downgrade cannot restore: a segment keeps one created_at, so a bar that a later fetch of
its session first wrote comes back with the segment's (earliest) creation time.

Revision ID: 0004_bar_segments
Revises: 0003_series_summaries
Create Date: 2026-12-08
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

# The codec is the one application module this migration uses: its byte format is versioned
# (in each segment's header, and FORMAT_VERSION in its metadata) and it reads every version it
# ever wrote, so the segments written here in the current version stay readable after any
# later change of format. Nothing else is imported: the segment rule, the per-bar
# shape and the table definitions below are frozen copies.
from backend.market_data.bar_columns import BarColumns
from backend.storage.segment_codec import FORMAT_VERSION, decode_segment, encode_segment

revision: str = "0004_bar_segments"
down_revision: str | None = "0003_series_summaries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC_DATETIME = sa.DateTime(timezone=True)

CACHE = "market_data_cache"
SEGMENT_STAGING = "market_data_cache_segments"
BAR_STAGING = "market_data_cache_bars"

# Segments holding a bar whose session had not closed when fetched: a boolean column, so the
# planners have statistics for it. The text is the model's own, word for word, so the queries
# that repeat it use the partial index.
OPEN_SEGMENT_PREDICATE = "NOT is_final"
# The per-bar rows' open bars, as 0003 indexed them (restored by the downgrade).
OPEN_PREDICATE = {
    "postgresql": "(metadata ->> 'is_final') IS DISTINCT FROM 'true'",
    "sqlite": "json_extract(metadata, '$.is_final') IS NOT 1",
}

# Every exchange the cache has served (NASDAQ, ISLAND, NYSE, ARCA, AMEX, BATS, SMART) trades on
# New York time, and its sessions do not cross midnight there: an intraday bar's session is the
# bar's New York date. Daily bars are stored at midnight UTC of the session date.
SESSION_ZONE = ZoneInfo("America/New_York")
DAILY = "1d"

# What the per-bar rows held: ohlcv_data's keys (wap and bar_count null where IBKR sent none) and
# metadata's keys besides is_final, which together with the fetch times name the bar's fetch.
PRICE_KEYS = ("open", "high", "low", "close")
OHLCV_KEYS = (*PRICE_KEYS, "volume", "wap", "bar_count")
PROVENANCE_KEYS = ("source", "what_to_show", "use_rth", "request")
# bar_count in a segment's columns where IBKR sent none (the codec's int column has no null).
NO_BAR_COUNT = -1

BARS_PER_READ = 10_000
SEGMENTS_PER_WRITE = 200
SEGMENTS_PER_READ = 100
BARS_PER_WRITE = 10_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


# -- table shapes ---------------------------------------------------------------------------------


def _bar_columns() -> list[sa.Column]:
    """market_data_cache's columns with one row per bar, as 0002 created them."""
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=12), nullable=False),
        sa.Column("exchange", sa.String(length=12), nullable=False),
        sa.Column("timestamp", UTC_DATETIME, nullable=False),
        sa.Column("data_type", sa.String(length=4), nullable=False),
        sa.Column("ohlcv_data", JSON, nullable=False),
        sa.Column("indicators", JSON, nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("fetched_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
    ]


def _segment_columns() -> list[sa.Column]:
    """market_data_cache's columns with one row per segment."""
    return [
        sa.Column("symbol", sa.String(length=12), nullable=False),
        sa.Column("exchange", sa.String(length=12), nullable=False),
        sa.Column("timestamp", UTC_DATETIME, nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("data_type", sa.String(length=4), nullable=False),
        sa.Column("segment_date", sa.Date(), nullable=False),
        sa.Column("last_bar_at", UTC_DATETIME, nullable=False),
        sa.Column("bar_count", sa.Integer(), nullable=False),
        sa.Column("is_final", sa.Boolean(), nullable=False),
        sa.Column("ohlcv_data", sa.LargeBinary(), nullable=False),
        sa.Column("indicators", JSON, nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("first_fetched_at", UTC_DATETIME, nullable=False),
        sa.Column("fetched_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
    ]


def _create_staging(name: str, columns: list[sa.Column]) -> sa.Table:
    # SQLite runs DDL outside the transaction until the first write, so an attempt that failed
    # there can have left the staging table behind.
    op.drop_table(name, if_exists=True)
    return op.create_table(name, *columns, sa.PrimaryKeyConstraint("id", name=f"pk_{name}"))


def _move_rows(source: sa.Table, target: sa.Table, order_by: Sequence[str]) -> None:
    """Copy every row but its id from the staging table into the final one, then drop it."""
    names = [column.name for column in source.columns if column.name != "id"]
    rows = sa.select(*(source.c[name] for name in names)).order_by(
        *(source.c[name] for name in order_by)
    )
    op.get_bind().execute(sa.insert(target).from_select(names, rows))
    op.drop_table(source.name)


# -- upgrade ---------------------------------------------------------------------------------------


def upgrade() -> None:
    connection = op.get_bind()
    bars = sa.Table(CACHE, sa.MetaData(), *_bar_columns())
    staging = _create_staging(SEGMENT_STAGING, _segment_columns())
    for series in _series(connection, bars):
        _convert_series(connection, bars, staging, series)

    op.drop_table(CACHE)  # its indexes with it
    segments = op.create_table(
        CACHE,
        *_segment_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_data_cache")),
        sa.UniqueConstraint(
            "symbol", "exchange", "data_type", "segment_date", name="uq_market_data_cache_segment"
        ),
        sa.UniqueConstraint(
            "symbol", "exchange", "data_type", "timestamp", name="uq_market_data_cache_bar"
        ),
    )
    if connection.dialect.name == "postgresql":
        # Segments are compressed by the database, not the codec: lz4 keeps them about the size
        # of a Parquet file and decompresses at a fraction of pglz's cost (the default).
        op.execute(f"ALTER TABLE {CACHE} ALTER COLUMN ohlcv_data SET COMPRESSION lz4")
    _move_rows(staging, segments, ("symbol", "exchange", "data_type", "timestamp"))
    # Indexes after the rows: one build each instead of an update per row.
    op.create_index("ix_market_data_cache_symbol_timestamp", CACHE, ["symbol", "timestamp"])
    op.create_index("ix_market_data_cache_symbol_data_type", CACHE, ["symbol", "data_type"])
    op.create_index(
        "ix_market_data_cache_open_segments",
        CACHE,
        ["symbol", "exchange", "data_type", "timestamp", "expires_at"],
        postgresql_where=sa.text(OPEN_SEGMENT_PREDICATE),
        sqlite_where=sa.text(OPEN_SEGMENT_PREDICATE),
    )


def _series(connection: sa.Connection, bars: sa.Table) -> list[tuple[str, str, str]]:
    key = (bars.c.symbol, bars.c.exchange, bars.c.data_type)
    return [tuple(row) for row in connection.execute(sa.select(*key).distinct().order_by(*key))]


def _convert_series(
    connection: sa.Connection, bars: sa.Table, staging: sa.Table, series: tuple[str, str, str]
) -> None:
    """Write one series' bars as segments. A series' segments follow each other in time, so
    the bars of one segment arrive together when read in time order."""
    data_type = series[2]
    pending: list[dict[str, Any]] = []
    segment_bars: list[sa.Row] = []
    segment_date = None
    for bar in _series_bars(connection, bars, series):
        bar_date = _segment_date(data_type, _utc(bar.timestamp))
        if segment_bars and bar_date != segment_date:
            pending.append(_segment_row(series, segment_date, segment_bars))
            segment_bars = []
            if len(pending) >= SEGMENTS_PER_WRITE:
                connection.execute(sa.insert(staging), pending)
                pending = []
        segment_date = bar_date
        segment_bars.append(bar)
    if segment_bars:
        pending.append(_segment_row(series, segment_date, segment_bars))
    if pending:
        connection.execute(sa.insert(staging), pending)


def _series_bars(
    connection: sa.Connection, bars: sa.Table, series: tuple[str, str, str]
) -> Iterator[sa.Row]:
    """The series' per-bar rows in time order, a page at a time (keyset paging on the series'
    unique index)."""
    symbol, exchange, data_type = series
    page_query = (
        sa.select(bars)
        .where(bars.c.symbol == symbol, bars.c.exchange == exchange, bars.c.data_type == data_type)
        .order_by(bars.c.timestamp)
        .limit(BARS_PER_READ)
    )
    after = None
    while True:
        query = page_query if after is None else page_query.where(bars.c.timestamp > after)
        page = connection.execute(query).all()
        yield from page
        if len(page) < BARS_PER_READ:
            return
        after = page[-1].timestamp


def _segment_date(data_type: str, bar_start: datetime) -> date:
    """The segment a bar belongs to: its session's date, or its month's first day if daily."""
    if data_type == DAILY:
        return date(bar_start.year, bar_start.month, 1)
    return bar_start.astimezone(SESSION_ZONE).date()


def _segment_row(
    series: tuple[str, str, str], segment_date: date, bars: list[sa.Row]
) -> dict[str, Any]:
    """One segment's row from its per-bar rows (in time order)."""
    # Each distinct fetch among the bars, in the order the bars first name it:
    # (its metadata entry, fetched_at, expires_at).
    fetches: list[tuple[dict[str, Any], datetime, datetime]] = []
    fetch_numbers: dict[tuple[str, datetime, datetime], int] = {}
    fetch_index = np.empty(len(bars), dtype=np.uint16)
    for position, bar in enumerate(bars):
        provenance = _checked_provenance(series, bar)
        fetched_at, expires_at = _utc(bar.fetched_at), _utc(bar.expires_at)
        key = (json.dumps(provenance, sort_keys=True), fetched_at, expires_at)
        if key not in fetch_numbers:
            fetch_numbers[key] = len(fetches)
            entry = {
                **provenance,
                "fetched_at": fetched_at.isoformat(),
                "expires_at": expires_at.isoformat(),
            }
            fetches.append((entry, fetched_at, expires_at))
        fetch_index[position] = fetch_numbers[key]

    columns = _bar_columns_of(bars)
    all_final = bool(columns.is_final.all())
    # As the repository derives them: the latest fetch (the first of equal times), and the
    # earliest expiry among the fetches that supplied a bar still open.
    _, latest_fetched_at, latest_expires_at = max(fetches, key=lambda fetch: fetch[1])
    if all_final:
        expires_at = latest_expires_at
    else:
        open_fetches = np.unique(fetch_index[~columns.is_final])
        expires_at = min(fetches[int(number)][2] for number in open_fetches)
    symbol, exchange, data_type = series
    return {
        "symbol": symbol,
        "exchange": exchange,
        "data_type": data_type,
        "segment_date": segment_date,
        "timestamp": _utc(bars[0].timestamp),
        "last_bar_at": _utc(bars[-1].timestamp),
        "bar_count": len(bars),
        "is_final": all_final,
        "ohlcv_data": encode_segment(columns, fetch_index),
        "metadata": {"fetches": [entry for entry, _, _ in fetches], "format": FORMAT_VERSION},
        "first_fetched_at": min(fetch[1] for fetch in fetches),
        "fetched_at": latest_fetched_at,
        "expires_at": expires_at,
        "created_at": min(_utc(bar.created_at) for bar in bars),
        "updated_at": max(_utc(bar.updated_at) for bar in bars),
    }


def _checked_provenance(series: tuple[str, str, str], bar: sa.Row) -> dict[str, Any]:
    """The bar's metadata without is_final; refuses a bar holding anything a segment would drop."""
    where = f"bar {'/'.join(series)} at {_utc(bar.timestamp).isoformat()}"
    provenance = {key: value for key, value in bar.metadata.items() if key != "is_final"}
    if set(provenance) != set(PROVENANCE_KEYS) or not isinstance(
        bar.metadata.get("is_final"), bool
    ):
        raise ValueError(
            f"{where}: metadata has keys {sorted(bar.metadata)}; a segment keeps exactly"
            f" {sorted([*PROVENANCE_KEYS, 'is_final'])}"
        )
    if not set(PRICE_KEYS) <= set(bar.ohlcv_data) <= set(OHLCV_KEYS):
        raise ValueError(
            f"{where}: ohlcv_data has keys {sorted(bar.ohlcv_data)}; a segment keeps {OHLCV_KEYS}"
        )
    if bar.indicators is not None:
        raise ValueError(f"{where}: has indicators, which a segment of bars has no place for")
    return provenance


def _bar_columns_of(bars: list[sa.Row]) -> BarColumns:
    ohlcv = [bar.ohlcv_data for bar in bars]

    def floats(key: str) -> np.ndarray:
        values = (np.nan if row.get(key) is None else row[key] for row in ohlcv)
        return np.fromiter(values, np.float64, len(bars))

    bar_counts = (
        NO_BAR_COUNT if row.get("bar_count") is None else row["bar_count"] for row in ohlcv
    )
    return BarColumns(
        timestamp=np.fromiter((_ns(_utc(bar.timestamp)) for bar in bars), np.int64, len(bars)),
        **{key: floats(key) for key in (*PRICE_KEYS, "volume", "wap")},
        bar_count=np.fromiter(bar_counts, np.int64, len(bars)),
        is_final=np.fromiter((bar.metadata["is_final"] for bar in bars), np.bool_, len(bars)),
    )


# -- downgrade -------------------------------------------------------------------------------------


def downgrade() -> None:
    connection = op.get_bind()
    segments = sa.Table(CACHE, sa.MetaData(), *_segment_columns())
    staging = _create_staging(BAR_STAGING, _bar_columns())
    pending: list[dict[str, Any]] = []
    for segment in _all_segments(connection, segments):
        pending.extend(_bar_rows(segment))
        if len(pending) >= BARS_PER_WRITE:
            connection.execute(sa.insert(staging), pending)
            pending = []
    if pending:
        connection.execute(sa.insert(staging), pending)

    op.drop_table(CACHE)  # its indexes with it
    bars = op.create_table(
        CACHE,
        *_bar_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_data_cache")),
        sa.UniqueConstraint(
            "symbol", "exchange", "data_type", "timestamp", name="uq_market_data_cache_bar"
        ),
    )
    _move_rows(staging, bars, ("symbol", "exchange", "data_type", "timestamp"))
    op.create_index("ix_market_data_cache_symbol_timestamp", CACHE, ["symbol", "timestamp"])
    op.create_index("ix_market_data_cache_symbol_data_type", CACHE, ["symbol", "data_type"])
    op.create_index(
        "ix_market_data_cache_open_bars",
        CACHE,
        ["symbol", "exchange", "data_type", "timestamp", "expires_at"],
        postgresql_where=sa.text(OPEN_PREDICATE["postgresql"]),
        sqlite_where=sa.text(OPEN_PREDICATE["sqlite"]),
    )


def _all_segments(connection: sa.Connection, segments: sa.Table) -> Iterator[sa.Row]:
    """Every segment, a page at a time in id order."""
    page_query = sa.select(segments).order_by(segments.c.id).limit(SEGMENTS_PER_READ)
    after = None
    while True:
        query = page_query if after is None else page_query.where(segments.c.id > after)
        page = connection.execute(query).all()
        yield from page
        if len(page) < SEGMENTS_PER_READ:
            return
        after = page[-1].id


def _bar_rows(segment: sa.Row) -> list[dict[str, Any]]:
    """The per-bar rows of one segment, each with its own fetch's provenance and times."""
    where = (
        f"segment {segment.symbol}/{segment.exchange}/{segment.data_type} {segment.segment_date}"
    )
    if segment.indicators is not None:
        raise ValueError(f"{where}: has indicators, which per-bar rows have no place for")
    columns, fetch_index = decode_segment(bytes(segment.ohlcv_data))
    fetches = [
        (
            {key: fetch[key] for key in PROVENANCE_KEYS},
            _parse(fetch["fetched_at"]),
            _parse(fetch["expires_at"]),
        )
        for fetch in segment.metadata["fetches"]
    ]
    created_at = _utc(segment.created_at)
    values = zip(
        columns.timestamps(),
        *(getattr(columns, key).tolist() for key in (*PRICE_KEYS, "volume", "wap")),
        columns.bar_count.tolist(),
        columns.is_final.tolist(),
        fetch_index.tolist(),
        strict=True,
    )
    rows = []
    for timestamp, open_, high, low, close, volume, wap, bar_count, is_final, fetch in values:
        provenance, fetched_at, expires_at = fetches[fetch]
        rows.append(
            {
                "symbol": segment.symbol,
                "exchange": segment.exchange,
                "data_type": segment.data_type,
                "timestamp": timestamp,
                "ohlcv_data": {
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": _none_if_nan(volume),
                    "wap": _none_if_nan(wap),
                    "bar_count": None if bar_count == NO_BAR_COUNT else bar_count,
                },
                "metadata": {**provenance, "is_final": is_final},
                "fetched_at": fetched_at,
                "expires_at": expires_at,
                # A bar cannot have been created after it was last written.
                "created_at": min(created_at, fetched_at),
                # The per-bar writer set updated_at to the time of the fetch that last wrote the
                # bar, which is the fetch the segment names for it.
                "updated_at": fetched_at,
            }
        )
    return rows


# -- values ----------------------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    """An aware UTC datetime: SQLite hands back naive UTC values, PostgreSQL aware ones."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parse(text: str) -> datetime:
    return _utc(datetime.fromisoformat(text))


def _ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, in exact integer arithmetic."""
    return (moment - _EPOCH) // _ONE_MICROSECOND * 1000


def _none_if_nan(value: float) -> float | None:
    return None if value != value else value  # NaN is the only value unequal to itself
