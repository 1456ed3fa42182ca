"""Alembic environment: runs migrations through the same async driver the server uses."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from assistd.config import Settings
from assistd.store.tables import Base

target_metadata = Base.metadata
FULL_TEXT_TABLE_PREFIX = "chunks_fts"
# PostgreSQL's search objects (migration 0005), also made by hand
POSTGRES_SEARCH_OBJECTS = {("table", "chunk_windows"), ("column", "text_search"), ("index", "ix_chunks_text_search")}
MIGRATION_LOCK_ID = 0x61737369  # PostgreSQL advisory lock: processes starting together migrate one at a time


def _database_url() -> str:
    return context.config.attributes.get("database_url") or Settings().resolved_database_url


def _include_object(_object, name, type_, _reflected, _compare_to) -> bool:
    """Leave the search indexes (made by hand in the migrations, not declared in tables.py) alone."""
    if type_ == "table" and name.startswith(FULL_TEXT_TABLE_PREFIX):
        return False
    return (type_, name) not in POSTGRES_SEARCH_OBJECTS


def _run(connection) -> None:
    context.configure(
        connection=connection, target_metadata=target_metadata, render_as_batch=True, include_object=_include_object
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_database_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
