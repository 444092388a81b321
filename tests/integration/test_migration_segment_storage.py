"""Migration 0009: segments kept in their rows on PostgreSQL (storage MAIN), a no-op on SQLite."""

from datetime import UTC, datetime

from sqlalchemy import text

from alembic import command
from backend.devtools.bench_bars import TradingYear, random_walk_bars
from backend.market_data.domain import SeriesKey
from backend.storage.database import Database, create_db_engine
from backend.storage.market_data_repository import MarketDataCacheRepository
from tests.support.bars import store
from tests.support.migrations import alembic_config

BEFORE = "0008_refresh_jobs"
SERIES = SeriesKey("NVDA", "NASDAQ", "1m")
CLOSED_BY = datetime(2025, 10, 31, 21, 0, tzinfo=UTC)
FETCHED_AT = datetime(2025, 10, 31, 23, 0, tzinfo=UTC)


def _storage_and_toasted_values(url: str) -> tuple[str, int]:
    """The storage of ohlcv_data, metadata and indicators ('m' MAIN, 'x' EXTENDED; one letter
    when they agree) and the values held in the TOAST table."""
    engine = create_db_engine(url)
    with engine.connect() as connection:
        storages = connection.exec_driver_sql(
            "SELECT DISTINCT attstorage FROM pg_attribute"
            " WHERE attrelid = 'market_data_cache'::regclass"
            " AND attname IN ('ohlcv_data', 'metadata', 'indicators')"
        ).scalars()
        storage = "".join(sorted(storages))
        toast = connection.exec_driver_sql(
            "SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = 'market_data_cache'"
        ).scalar_one()
        values = connection.execute(text(f"SELECT count(DISTINCT chunk_id) FROM {toast}")).scalar()
    engine.dispose()
    return storage, values


def _year_and_bars():
    # Random-walk prices: a session's segment (about 6 kB) does not compress below 2 kB, so
    # EXTENDED storage moves it out of its row.
    year = TradingYear.ending(CLOSED_BY, sessions=3)
    return year, random_walk_bars(year.timestamps, 14)


def _read(url: str, year: TradingYear):
    database = Database(url)
    try:
        return MarketDataCacheRepository(database).read_columns(SERIES, year.start, year.end)
    finally:
        database.dispose()


def test_upgrade_moves_segments_into_their_rows_and_downgrade_moves_them_out(postgres_url):
    config = alembic_config(postgres_url)
    command.upgrade(config, BEFORE)
    year, bars = _year_and_bars()
    database = Database(postgres_url)
    store(MarketDataCacheRepository(database), SERIES, bars, FETCHED_AT)
    database.dispose()
    assert _storage_and_toasted_values(postgres_url) == ("x", 3)

    command.upgrade(config, "0009_segment_storage")
    assert _storage_and_toasted_values(postgres_url) == ("m", 0)
    after = _read(postgres_url, year)
    assert after == bars

    command.downgrade(config, BEFORE)
    assert _storage_and_toasted_values(postgres_url) == ("x", 3)
    assert _read(postgres_url, year) == bars


def test_segments_written_at_head_stay_in_their_rows(postgres_url):
    command.upgrade(alembic_config(postgres_url), "head")
    year, bars = _year_and_bars()
    database = Database(postgres_url)
    store(MarketDataCacheRepository(database), SERIES, bars, FETCHED_AT)
    database.dispose()
    assert _storage_and_toasted_values(postgres_url) == ("m", 0)
    assert _read(postgres_url, year) == bars


def test_sqlite_upgrades_and_downgrades_with_its_bars_unchanged(sqlite_url):
    config = alembic_config(sqlite_url)
    command.upgrade(config, BEFORE)
    year, bars = _year_and_bars()
    database = Database(sqlite_url)
    store(MarketDataCacheRepository(database), SERIES, bars, FETCHED_AT)
    database.dispose()
    command.upgrade(config, "0009_segment_storage")
    assert _read(sqlite_url, year) == bars
    command.downgrade(config, BEFORE)
    assert _read(sqlite_url, year) == bars
