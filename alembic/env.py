"""Alembic environment: migrates DATABASE_URL (or the URL a caller set on the config)."""

from sqlmodel import SQLModel

import backend.storage  # noqa: F401  (registers every table on SQLModel.metadata)
from alembic import context
from backend.config.settings import load_settings
from backend.storage.database import create_db_engine
from backend.storage.types import UTCDateTime

config = context.config
target_metadata = SQLModel.metadata


def render_item(type_, obj, autogen_context):
    """Render project column types as plain SQLAlchemy: migrations import nothing from sqlmodel."""
    if type_ != "type":
        return False
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type(obj).__module__.startswith("sqlmodel"):
        length = getattr(obj, "length", None)
        return f"sa.String(length={length})" if length else "sa.String()"
    if type(obj).__name__ == "JSON" and getattr(obj, "_variant_mapping", None):
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return "sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')"
    return False


def compare_type(context_, inspected_column, metadata_column, inspected_type, metadata_type):
    # UTCDateTime is a DateTime(timezone=True) in the database; compare what is stored.
    if isinstance(metadata_type, UTCDateTime):
        return inspected_type._type_affinity is not metadata_type.impl._type_affinity
    return None


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or load_settings().DATABASE_URL


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_item=render_item,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = create_db_engine(_url())
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=render_item,
        compare_type=compare_type,
        # SQLite cannot ALTER constraints in place; batch mode recreates the table.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
