"""MarketDataCache: columns, binary and JSON types, indexes, the unique keys, UTC round trips."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import Session, select

from backend.storage import MarketData, MarketDataCache
from backend.storage.database import create_db_engine
from tests.support.migrations import migrate_to_head


def test_market_data_is_a_base_not_a_table():
    assert not hasattr(MarketData, "__table__")
    assert issubclass(MarketDataCache, MarketData)
    assert MarketDataCache.__tablename__ == "market_data_cache"


def test_metadata_column_keeps_its_name_under_another_attribute():
    columns = MarketDataCache.__table__.columns
    assert "metadata" in columns
    assert MarketDataCache.meta.property.columns[0].name == "metadata"


def _segment(timestamp: datetime, segment_date: date = date(2025, 1, 1)) -> MarketDataCache:
    """A one-bar segment of daily bars, written as a row, not through the repository."""
    fetched = datetime(2025, 1, 2, tzinfo=UTC)
    return MarketDataCache(
        symbol="NVDA",
        exchange="NASDAQ",
        data_type="1d",
        segment_date=segment_date,
        timestamp=timestamp,
        last_bar_at=timestamp,
        bar_count=1,
        is_final=True,
        ohlcv_data=b"\x00\x01 bytes stay bytes",
        meta={"fetches": []},
        first_fetched_at=fetched,
        fetched_at=fetched,
        expires_at=fetched + timedelta(hours=24),
    )


def test_schema_has_indexes_unique_key_and_json_types(migrated_database_url):
    engine = create_db_engine(migrated_database_url)
    inspector = inspect(engine)
    indexes = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("market_data_cache")}
    assert indexes["ix_market_data_cache_symbol_timestamp"] == ["symbol", "timestamp"]
    assert indexes["ix_market_data_cache_symbol_data_type"] == ["symbol", "data_type"]
    uniques = {
        u["name"]: u["column_names"] for u in inspector.get_unique_constraints("market_data_cache")
    }
    # A series is its symbol, exchange and bar size with its contract and series fields.
    key = [
        "symbol",
        "exchange",
        "data_type",
        "sec_type",
        "currency",
        "expiry",
        "what_to_show",
        "use_rth",
    ]
    assert uniques["uq_market_data_cache_bar"] == [*key, "timestamp"]
    assert uniques["uq_market_data_cache_segment"] == [*key, "segment_date"]
    types = {
        c["name"]: type(c["type"]).__name__ for c in inspector.get_columns("market_data_cache")
    }
    expected_json = "JSONB" if engine.dialect.name == "postgresql" else "JSON"
    assert {types["indicators"], types["metadata"]} == {expected_json}
    assert types["ohlcv_data"] == ("BYTEA" if engine.dialect.name == "postgresql" else "BLOB")
    engine.dispose()


def test_a_second_segment_of_one_period_is_rejected_and_times_come_back_utc(
    migrated_database_url,
):
    engine = create_db_engine(migrated_database_url)
    eastern = timezone(timedelta(hours=-5))
    with Session(engine) as session:
        session.add(_segment(datetime(2025, 1, 2, 9, 30, tzinfo=eastern)))
        session.commit()
        session.expire_all()
        stored = session.exec(select(MarketDataCache)).one()
        assert stored.timestamp == datetime(2025, 1, 2, 14, 30, tzinfo=UTC)
        assert stored.timestamp.tzinfo == UTC
        assert stored.meta == {"fetches": []}
        assert stored.is_final is True
        assert bytes(stored.ohlcv_data) == b"\x00\x01 bytes stay bytes"
        # The same month again, starting elsewhere: segments of a series never overlap.
        session.add(_segment(datetime(2025, 1, 3, tzinfo=UTC)))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        # Another month starting at the same bar time: the bar's own key refuses it.
        session.add(_segment(datetime(2025, 1, 2, 14, 30, tzinfo=UTC), date(2025, 2, 1)))
        with pytest.raises(IntegrityError):
            session.commit()
    engine.dispose()


def test_naive_timestamp_is_refused(sqlite_url):
    migrate_to_head(sqlite_url)
    engine = create_db_engine(sqlite_url)
    with Session(engine) as session:
        session.add(_segment(datetime(2025, 1, 2, 14, 30)))
        with pytest.raises(StatementError, match="naive datetime"):
            session.commit()
    engine.dispose()
