"""Alembic environment: migrations are the only source of the schema."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from fadewatch.server.models import Base, in_models

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("db") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        from fadewatch.server.settings import get_settings

        url = get_settings().resolved_database_url()
    return url


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        include_name=in_models,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    engine = engine_from_config(
        {"sqlalchemy.url": _database_url()}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        _run_with(conn)


def _run_with(connection) -> None:
    # Batch mode lets ALTER TABLE migrations run on SQLite too.
    context.configure(
        connection=connection, target_metadata=target_metadata, render_as_batch=True, include_name=in_models
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
