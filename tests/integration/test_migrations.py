"""Migrations on fresh SQLite and PostgreSQL databases: up, down, up again, and no drift."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, inspect, select
from sqlmodel import SQLModel

import backend.storage  # noqa: F401  (registers the tables)
from alembic import command
from backend.storage.database import Database, create_db_engine
from backend.storage.market_data_repository import SUMMARIES, MarketDataCacheRepository
from tests.support import per_bar_cache
from tests.support.migrations import alembic_config

SUMMARY_TABLE = "market_data_series_summary"
HEAD_TABLE = "market_data_head_timestamp"  # since 0005
ACTIONS_TABLE = "market_data_corporate_action"  # since 0006
PACING_TABLE = "ibkr_pacing_slot"  # since 0007
PACING_INDEX = "ix_ibkr_pacing_slot_gateway_granted_at"
JOBS_TABLE = "market_data_refresh_job"  # since 0008
JOBS_INDEX = "ix_market_data_refresh_job_status_created_at"
SINCE_0005 = {HEAD_TABLE, ACTIONS_TABLE, PACING_TABLE, JOBS_TABLE}
CACHE_TABLES = {
    "market_data_cache",
    "market_data_coverage",
    "market_data_cache_stats",
    SUMMARY_TABLE,
    HEAD_TABLE,
    ACTIONS_TABLE,
    PACING_TABLE,
    JOBS_TABLE,
}
PLATFORM_TABLES = {"workflow_executions", "workflow_logs", "lineage_records"}
# The partial index over what can expire: open bars at revision 0003, open segments since 0004.
OPEN_BARS_INDEX = "ix_market_data_cache_open_bars"
OPEN_SEGMENTS_INDEX = "ix_market_data_cache_open_segments"


def _tables(url: str) -> set[str]:
    engine = create_db_engine(url)
    names = set(inspect(engine).get_table_names()) - {"alembic_version"}
    engine.dispose()
    return names


def test_upgrade_downgrade_upgrade(database_url):
    config = alembic_config(database_url)
    command.upgrade(config, "head")
    assert _tables(database_url) == CACHE_TABLES | PLATFORM_TABLES
    assert OPEN_SEGMENTS_INDEX in _bar_indexes(database_url)
    assert OPEN_BARS_INDEX not in _bar_indexes(database_url)
    command.downgrade(config, "0004_bar_segments")
    assert _tables(database_url) == CACHE_TABLES - SINCE_0005 | PLATFORM_TABLES
    assert OPEN_SEGMENTS_INDEX in _bar_indexes(database_url)
    command.downgrade(config, "0003_series_summaries")
    assert _tables(database_url) == CACHE_TABLES - SINCE_0005 | PLATFORM_TABLES
    assert OPEN_BARS_INDEX in _bar_indexes(database_url)
    assert OPEN_SEGMENTS_INDEX not in _bar_indexes(database_url)
    command.downgrade(config, "0002_market_data_cache")
    assert _tables(database_url) == CACHE_TABLES - {SUMMARY_TABLE} - SINCE_0005 | PLATFORM_TABLES
    assert not {OPEN_BARS_INDEX, OPEN_SEGMENTS_INDEX} & _bar_indexes(database_url)
    command.downgrade(config, "0001_baseline")
    assert _tables(database_url) == PLATFORM_TABLES
    command.downgrade(config, "base")
    assert _tables(database_url) == set()
    command.upgrade(config, "head")
    assert _tables(database_url) == CACHE_TABLES | PLATFORM_TABLES
    assert OPEN_SEGMENTS_INDEX in _bar_indexes(database_url)
    command.check(config)


def _bar_indexes(url: str) -> set[str]:
    engine = create_db_engine(url)
    names = {index["name"] for index in inspect(engine).get_indexes("market_data_cache")}
    engine.dispose()
    return names


def test_models_and_migrations_do_not_drift(database_url):
    config = alembic_config(database_url)
    command.upgrade(config, "head")
    command.check(config)


def test_drift_check_sees_missing_tables(database_url):
    # Proves the drift comparison can fail: at the baseline the cache tables are missing.
    command.upgrade(alembic_config(database_url), "0001_baseline")
    engine = create_db_engine(database_url)
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    added = {diff[1].name for diff in diffs if diff[0] == "add_table"}
    assert added == CACHE_TABLES


def test_drift_check_sees_the_missing_summaries_and_open_segments_index(database_url):
    command.upgrade(alembic_config(database_url), "0002_market_data_cache")
    engine = create_db_engine(database_url)
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    assert {diff[1].name for diff in diffs if diff[0] == "add_table"} == {
        SUMMARY_TABLE,
        *SINCE_0005,
    }
    assert {diff[1].name for diff in diffs if diff[0] == "add_index"} == {
        OPEN_SEGMENTS_INDEX,
        PACING_INDEX,
        JOBS_INDEX,
    }


NOW = datetime(2025, 12, 1, 22, 0, tzinfo=UTC)
REQUEST = {
    "end_date_time": "",
    "duration": "30 D",
    "bar_size": "1 day",
    "what_to_show": "TRADES",
    "use_rth": True,
}


def _bar(symbol: str, exchange: str, data_type: str, day: int, **fields) -> dict:
    fetched_at = fields.pop("fetched_at", NOW - timedelta(days=30 - day))
    return {
        "symbol": symbol,
        "exchange": exchange,
        "data_type": data_type,
        "timestamp": datetime(2025, 11, day, 15, 30, tzinfo=UTC),
        "ohlcv_data": {
            "open": 1.0,
            "high": 2.0,
            "low": 0.5,
            "close": 1.5,
            "volume": 10.0,
            "wap": None,
            "bar_count": None,
        },
        "metadata": {
            **per_bar_cache.fetch_meta(REQUEST),
            "is_final": fields.pop("is_final", True),
        },
        "fetched_at": fetched_at,
        "expires_at": fields.pop("expires_at", fetched_at + timedelta(hours=24)),
        "created_at": fetched_at,
        "updated_at": fetched_at,
    }


def test_bars_cached_before_the_migration_get_their_summaries(database_url):
    config = alembic_config(database_url)
    command.upgrade(config, "0002_market_data_cache")
    bars = [_bar("NVDA", "NASDAQ", "1d", day) for day in (3, 4, 5, 6)]
    bars += [_bar("NVDA", "NASDAQ", "1m", day) for day in (10, 11)]
    bars += [_bar("IBM", "NYSE", "1d", day) for day in (20, 21)]
    # Two bars of a session still open when fetched: one has expired by NOW, one has not.
    bars.append(_bar("IBM", "NYSE", "1d", 28, is_final=False, expires_at=NOW - timedelta(hours=1)))
    bars.append(_bar("IBM", "NYSE", "1d", 29, is_final=False, expires_at=NOW + timedelta(hours=1)))
    engine = create_db_engine(database_url)
    with engine.begin() as connection:
        # Rows of the per-bar table, which 0004 converts into segments.
        connection.execute(insert(per_bar_cache.BARS), bars)
    engine.dispose()

    command.upgrade(config, "head")

    database = Database(database_url)
    summaries = {
        (row["symbol"], row["exchange"], row["data_type"]): row
        for row in MarketDataCacheRepository(database).series_summaries(NOW)
    }
    with database.engine.connect() as connection:
        summary_rows = connection.execute(select(func.count()).select_from(SUMMARIES)).scalar()
    database.dispose()
    assert summary_rows == 3
    expected = {}
    for bar in bars:
        key = (bar["symbol"], bar["exchange"], bar["data_type"])
        expected.setdefault(key, []).append(bar)
    for key, series_bars in expected.items():
        stamps = [bar["timestamp"] for bar in series_bars]
        expired = [
            bar
            for bar in series_bars
            if not bar["metadata"]["is_final"] and bar["expires_at"] <= NOW
        ]
        assert summaries[key] == {
            "symbol": key[0],
            "exchange": key[1],
            "data_type": key[2],
            # what every series cached before the series key is (migration 0005)
            "sec_type": "STK",
            "currency": "USD",
            "expiry": "",
            "what_to_show": "TRADES",
            "use_rth": True,
            "con_id": None,
            "bar_count": len(series_bars),
            "first": min(stamps),
            "last": max(stamps),
            "last_updated": max(bar["fetched_at"] for bar in series_bars),
            "expired_count": len(expired),
        }
    assert summaries["IBM", "NYSE", "1d"]["expired_count"] == 1


def test_migration_scripts_import_nothing_from_sqlmodel():
    versions = Path(__file__).resolve().parents[2] / "alembic" / "versions"
    scripts = list(versions.glob("*.py"))
    assert scripts
    for script in scripts:
        assert "sqlmodel" not in script.read_text(), script.name


def test_segments_are_compressed_by_postgresql_with_lz4(postgres_url):
    # The codec leaves compression to the database: on PostgreSQL, lz4 (pglz would cost several
    # milliseconds of decompression per year of 1-minute bars). SQLite stores them as they are.
    command.upgrade(alembic_config(postgres_url), "head")
    engine = create_db_engine(postgres_url)
    with engine.connect() as connection:
        method = connection.exec_driver_sql(
            "SELECT attcompression FROM pg_attribute"
            " WHERE attrelid = 'market_data_cache'::regclass AND attname = 'ohlcv_data'"
        ).scalar_one()
    engine.dispose()
    assert method == "l"


def test_series_identity_downgrade_keeps_the_stock_series_and_upgrade_brings_them_back(
    database_url,
):
    from backend.market_data.domain import SeriesKey, parse_series
    from tests.support.bars import make_bars, store

    config = alembic_config(database_url)
    command.upgrade(config, "head")
    database = Database(database_url)
    repository = MarketDataCacheRepository(database)
    nvda = SeriesKey("NVDA", "NASDAQ", "1d")
    eurusd = parse_series("EUR.USD", "1d", sec_type="CASH")
    first = datetime(2025, 10, 1, tzinfo=UTC)
    store(repository, nvda, make_bars(first, 20, close=1.5), NOW)
    store(repository, eurusd, make_bars(first, 20, close=1.1), NOW)
    before = repository.read_columns(nvda, first, NOW)
    database.dispose()

    command.downgrade(config, "0004_bar_segments")
    engine = create_db_engine(database_url)
    with engine.connect() as connection:
        columns = {c["name"] for c in inspect(connection).get_columns("market_data_cache")}
        symbols = connection.execute(
            select(func.distinct(SUMMARIES.c.symbol)).select_from(SUMMARIES)
        ).scalars()
        assert set(symbols) == {"NVDA"}
    engine.dispose()
    assert "what_to_show" not in columns

    command.upgrade(config, "head")
    database = Database(database_url)
    after = MarketDataCacheRepository(database).read_columns(nvda, first, NOW)
    database.dispose()
    assert after == before and len(after) == 20
