"""Async engines and sessions for the store.

Reads and writes go through separate session factories. On SQLite the write engine holds one connection
(pool of one) and opens every transaction with BEGIN IMMEDIATE, so writes queue in order instead of failing
with "database is locked", while reads run in parallel on their own connections (WAL mode). A commit is
durable when it returns (synchronous=FULL). On PostgreSQL both factories share one pooled engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _configure_sqlite(engine: AsyncEngine, *, begin: str) -> None:
    """Take over transaction control from pysqlite so BEGIN is ours, and set the pragmas per connection."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql(begin)


class Database:
    """The store's engines, and the only way the rest of the code opens a session."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        if self.is_sqlite:
            self._read_engine = create_async_engine(url, pool_size=8, max_overflow=8)
            self._write_engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)
            _configure_sqlite(self._read_engine, begin="BEGIN")
            _configure_sqlite(self._write_engine, begin="BEGIN IMMEDIATE")
        else:
            self._read_engine = self._write_engine = create_async_engine(url, pool_pre_ping=True)
        self._reads = async_sessionmaker(self._read_engine, expire_on_commit=False)
        self._writes = async_sessionmaker(self._write_engine, expire_on_commit=False)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for queries only; it is rolled back at the end."""
        async with self._reads() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A transaction that commits when the block exits cleanly and rolls back on any error."""
        async with self._writes() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self._read_engine.dispose()
        if self._write_engine is not self._read_engine:
            await self._write_engine.dispose()
