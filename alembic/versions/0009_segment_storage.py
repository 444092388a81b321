"""Segments kept in their rows on PostgreSQL: storage MAIN instead of EXTENDED for ohlcv_data
and the row's JSON columns.

A session of 1-minute bars in segment format 3 is about 6 kB. EXTENDED (bytea's default) moves
any value that leaves a row over 2 kB out to the TOAST table, so a warm read fetched every
session's bytes from a second relation, chunk by chunk; MAIN keeps a value in its row (lz4
compressed where that saves space) and moves it out only when the row cannot fit in a page at
all (a session of 5-second bars). The JSON columns (metadata, indicators: a few hundred bytes)
are MAIN too: an EXTENDED column is moved out before a MAIN one is, so a row over 2 kB would
send its metadata to TOAST instead, and the reads that need it would fetch it from there.

Measured on a year of 1-minute bars (252 segments): the warm read's query 3.2-3.9 ms against
4.9-8.1 ms; the table 22.6 bytes a bar against 19.5 (about one session's row a page).

Existing segments are rewritten so that they move into their rows (a changed storage applies
only to values written after it); downgrade sets EXTENDED back and rewrites them out again.
SQLite keeps a BLOB in its row as it is: nothing to do there.

Revision ID: 0009_segment_storage
Revises: 0008_refresh_jobs
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_segment_storage"
down_revision: str | None = "0008_refresh_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CACHE = "market_data_cache"
IN_ROW = ("ohlcv_data", "metadata", "indicators")


def _set_storage(storage: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    columns = ", ".join(f"ALTER COLUMN {column} SET STORAGE {storage}" for column in IN_ROW)
    op.execute(f"ALTER TABLE {CACHE} {columns}")
    # A new value (the same bytes) is stored as the column's storage now says; an UPDATE that
    # sets a column to itself keeps its old TOAST pointer. The JSON columns move with the row.
    op.execute(f"UPDATE {CACHE} SET ohlcv_data = ohlcv_data || ''::bytea")


def upgrade() -> None:
    _set_storage("MAIN")


def downgrade() -> None:
    _set_storage("EXTENDED")
