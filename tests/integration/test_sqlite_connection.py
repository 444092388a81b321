"""What every SQLite connection of the app is set up with."""

from backend.storage.database import SQLITE_CACHE_KIB, Database


def test_each_sqlite_connection_has_wal_foreign_keys_and_its_page_cache(sqlite_url):
    database = Database(sqlite_url)
    try:
        for engine in (database.engine, database.read_engine):
            with engine.connect() as connection:
                pragma = connection.exec_driver_sql
                assert pragma("PRAGMA journal_mode").scalar() == "wal"
                assert pragma("PRAGMA foreign_keys").scalar() == 1
                # Negative: KiB rather than pages.
                assert pragma("PRAGMA cache_size").scalar() == -SQLITE_CACHE_KIB
        assert SQLITE_CACHE_KIB >= 4 * 1024  # a year of 1-minute bars' pages, with room
    finally:
        database.dispose()
