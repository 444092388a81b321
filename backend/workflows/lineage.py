"""Lineage of one data input: where its bars came from, and a checksum to compare runs by."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from backend.market_data.domain import OhlcvBar
from backend.market_data.service import MarketDataResult


def bars_checksum(bars: Sequence[OhlcvBar]) -> str:
    """sha256 (hex) of the bars as used: [timestamp ISO UTC, open, high, low, close, volume] each.

    Only what a strategy sees goes in, never fetched_at or expiry, so the same bars give the same
    checksum whether they came from IBKR or the cache, on SQLite or PostgreSQL.
    """
    canonical = json.dumps(
        [
            [
                timestamp.astimezone(UTC).isoformat(),
                float(open_),
                float(high),
                float(low),
                float(close),
                float(volume),
            ]
            for timestamp, open_, high, low, close, volume in bars
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def lineage_metadata(
    result: MarketDataResult, debug_mode: bool, basis_at: datetime | None = None
) -> dict[str, Any]:
    """What a run read: where from, how much, the checksum, and the price basis (as of when the
    prices are adjusted for splits and dividends), so two runs whose checksums differ say why."""
    fetched_min, fetched_max = result.fetched_at_range
    return {
        "price_basis_at": _iso(basis_at),
        "data_source": result.source.value,
        "debug_mode": debug_mode,
        "cache_hit": result.outcome.value,
        "bar_count": len(result.bars),
        "fetched_at_min": _iso(fetched_min),
        "fetched_at_max": _iso(fetched_max),
        "checksum": bars_checksum(result.bars.ohlcv()),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
