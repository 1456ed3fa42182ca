"""Async engines and sessions for the store.

Reads and writes go through separate session factories. On SQLite the write engine holds one connection
(pool of one) and opens every transaction with BEGIN IMMEDIATE, so writes queue in order instead of failing
with "database is locked", while reads have their own connections (WAL mode). A commit is durable when it
returns (synchronous=FULL). Reads run on the event loop's thread (plain sqlite3 connections behind the same
AsyncSession API), and so do writes, except what can wait: BEGIN IMMEDIATE while another process holds the
write lock, and COMMIT, run on the write connection's own thread (store/sqlite.py).

On PostgreSQL (asyncpg) both factories share one pooled engine. A pooled connection is checked before use;
a lost one (a restart, a failover) is re-opened with backoff for `retry_seconds`, then the error goes up.

Errors of the database become typed errors here, once (`store_error`), as they leave a session: a database
that cannot be reached is StoreUnavailable (503 with Retry-After), a full disk StorageFull (507), text it cannot
keep an InvalidRequest (400); anything else (an IntegrityError, a wrong statement) goes up as it is.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, UpdateBase, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from assistd import jsontext
from assistd.config import Settings
from assistd.errors import AssistdError, InvalidRequest, StorageFull, StoreUnavailable
from assistd.store import sqlite

log = logging.getLogger(__name__)

FIRST_RETRY_DELAY_SECONDS = 0.1
MAX_RETRY_DELAY_SECONDS = 1.0


# what a lost, restarting or saturated database raises (anything else from the database is a bug)
_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, ConnectionError, TimeoutError)


# PostgreSQL's SQLSTATE classes for a lost connection (08) and a server shutting down or starting (57P)
_UNAVAILABLE_SQLSTATES = ("08", "57P")


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached now (retry later), rather than a wrong statement."""
    if isinstance(exc, _UNAVAILABLE):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        return exc.connection_invalidated or sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
    return False


# PostgreSQL's disk_full; SQLite's SQLITE_FULL; the operating system's "no space" and "quota exceeded"
_FULL_SQLSTATE = "53100"
_SQLITE_FULL = 13
_NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def is_storage_full(exc: BaseException) -> bool:
    """Whether `exc` means the disk (of the database or of the blobs) is full: an error to report, not to retry."""
    if isinstance(exc, sa_exc.DBAPIError):
        orig = exc.orig
        return (
            getattr(orig, "sqlstate", None) == _FULL_SQLSTATE or getattr(orig, "sqlite_errorcode", None) == _SQLITE_FULL
        )
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE_ERRNOS


# PostgreSQL's SQLSTATEs for text it cannot store: the NUL character, or bytes that are not UTF-8
_UNSTORABLE_TEXT = {"22021", "22P05"}


def is_unstorable_text(exc: BaseException) -> bool:
    """Whether the database refused a value of the request (NUL in text) rather than failing."""
    return isinstance(exc, sa_exc.DBAPIError) and getattr(exc.orig, "sqlstate", None) in _UNSTORABLE_TEXT


def store_error(exc: BaseException) -> AssistdError | None:
    """The typed error that a database (or blob store) failure means, or None when it is not one of those."""
    if isinstance(exc, AssistdError):
        return None
    if is_storage_full(exc):
        return StorageFull(exc)
    if is_unstorable_text(exc):
        return InvalidRequest("Text cannot contain the NUL character (\\u0000).", code="invalid_value")
    if is_unavailable(exc):
        return StoreUnavailable(exc)
    return None


async def execute_dml(session: AsyncSession, statement: UpdateBase) -> CursorResult[Any]:
    """Execute an UPDATE or DELETE. Its result is a CursorResult (which has `rowcount`), though
    AsyncSession.execute is annotated as returning a plain Result."""
    return cast(CursorResult[Any], await session.execute(statement))


def _retry_connections(engine: AsyncEngine, *, connect_timeout: float, retry_seconds: float) -> None:
    """Open asyncpg connections with a timeout per attempt, retrying refused or not-yet-ready servers."""
    import asyncpg

    transient = (OSError, TimeoutError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)

    async def connect(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + retry_seconds
        delay = FIRST_RETRY_DELAY_SECONDS
        while True:
            try:
                return await asyncpg.connect(*args, **kwargs)
            except transient as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("database connection failed (%s); retrying in %.1f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY_SECONDS)

    @event.listens_for(engine.sync_engine, "do_connect")
    def _on_connect(_dialect, _record, _cargs, cparams):
        cparams.setdefault("timeout", connect_timeout)
        cparams["async_creator_fn"] = connect


class Database:
    """The store's engines, and the only way the rest of the code opens a session."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        retry_seconds: float = 5.0,
    ) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self._sqlite_reads: Engine | None = None
        if self.is_sqlite:
            self._sqlite_reads = sqlite.read_engine(url)
            self._engine = sqlite.write_engine(url)
            self._reads = sqlite.read_sessions(self._sqlite_reads)
        else:
            self._engine = create_async_engine(
                url,
                pool_pre_ping=True,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_timeout=pool_timeout,
                hide_parameters=True,  # values are users' text and key hashes: never in a log or an error
                json_deserializer=jsontext.loads,
            )
            if make_url(url).get_driver_name() == "asyncpg":
                _retry_connections(self._engine, connect_timeout=connect_timeout, retry_seconds=retry_seconds)
            self._reads = async_sessionmaker(self._engine, expire_on_commit=False)
        self._writes = async_sessionmaker(self._engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(
            settings.resolved_database_url,
            pool_size=settings.database_pool_size,
            pool_timeout=settings.database_pool_timeout,
            connect_timeout=settings.database_connect_timeout,
            retry_seconds=settings.database_retry_seconds,
        )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for queries only; it is rolled back at the end."""
        try:
            async with self._reads() as session:
                yield session
        except Exception as exc:
            if (typed := store_error(exc)) is not None:
                raise typed from exc
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A transaction that commits when the block exits cleanly and rolls back on any error."""
        try:
            async with self._writes() as session, session.begin():
                yield session
        except Exception as exc:
            if (typed := store_error(exc)) is not None:
                raise typed from exc
            raise

    async def dispose(self) -> None:
        if self._sqlite_reads is not None:
            self._sqlite_reads.dispose()
        await self._engine.dispose()
