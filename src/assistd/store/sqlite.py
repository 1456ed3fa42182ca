"""SQLite connections for the store: statements run on the event loop's thread, except those that can wait.

Reads take microseconds and, in WAL mode, never wait for another connection, so they use plain (synchronous)
sqlite3 connections on the event loop's thread (`read_engine`, `read_sessions`): no thread hop, no greenlet
round trip per call.

Writes go through one aiosqlite connection (`write_engine`), which can run a call on its own thread: a write
transaction's BEGIN IMMEDIATE, sent with its first statement, waits there for the write lock while another
process writes, and its COMMIT waits there for the disk (synchronous=FULL). While the lock is free, BEGIN
IMMEDIATE (tried with no busy wait) and the first statement run on the loop's thread, and so do the statements
after it, under the lock: they wait for nobody. A statement sent to the thread is one call (`StatementCursor`):
the cursor is opened, executed, read to the end and closed together (aiosqlite would make each a hop).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

import aiosqlite
from sqlalchemy import CursorResult, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from assistd import jsontext

BUSY_TIMEOUT_MS = 30_000


class StatementCursor:
    """What aiosqlite's cursor offers SQLAlchemy, with one call to the connection per statement: `execute` opens a
    sqlite3 cursor, runs the statement, fetches every row and closes the cursor; the rest reads what it kept."""

    arraysize = 1

    def __init__(self, connection: StoreConnection) -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> StatementCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    def _run(self, connection: sqlite3.Connection, begin: str | None, method: str, sql: str, parameters: Any) -> None:
        if begin is not None:
            connection.execute(begin)
        cursor = connection.cursor()
        try:
            getattr(cursor, method)(sql, parameters)
            self._rows = cursor.fetchall() if cursor.description else []
            self.description, self.rowcount, self.lastrowid = cursor.description, cursor.rowcount, cursor.lastrowid
        finally:
            cursor.close()

    async def _call(self, method: str, sql: str, parameters: Any) -> StatementCursor:
        connection = self._connection
        begin, connection.pending_begin = connection.pending_begin, None
        if connection._inside_write_transaction() if begin is None else connection._begin_at_once(begin):
            self._run(connection._conn, None, method, sql, parameters)
        else:
            await connection._execute(self._run, connection._conn, begin, method, sql, parameters)
        return self

    async def execute(self, sql: str, parameters: Any = ()) -> StatementCursor:
        return await self._call("execute", sql, parameters)

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> StatementCursor:
        return await self._call("executemany", sql, parameters)

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        taken, self._rows = self._rows[: size or self.arraysize], self._rows[size or self.arraysize :]
        return taken

    async def fetchall(self) -> list[Any]:
        taken, self._rows = self._rows, []
        return taken

    async def close(self) -> None:
        self._rows = []


class StoreConnection(aiosqlite.Connection):
    """An aiosqlite connection whose statements are one call each (`StatementCursor`). BEGIN runs in the same
    call as the transaction's first statement; a transaction with no statement costs no call at all, and no
    rollback is sent when no transaction is open (as when the pool takes a committed connection back)."""

    pending_begin: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sent = 0  # calls sent to the connection's thread (written by the loop's thread only)
        self._ended = 0  # the last of them to end (written by the connection's thread only)

    @property
    def _idle(self) -> bool:
        """No call is on the connection's thread (its caller may have been cancelled while it runs)."""
        return self._ended == self._sent

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._sent += 1
        ticket = self._sent

        def call() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                self._ended = ticket

        return await super()._execute(call)

    def cursor(self) -> StatementCursor:  # type: ignore[override]
        return StatementCursor(self)

    def _inside_write_transaction(self) -> bool:
        """Whether a statement may run right here, on the loop's thread: this connection holds the write lock
        (BEGIN IMMEDIATE ran) and no call is on its thread. In WAL mode a statement of such a
        transaction waits for nobody; only BEGIN IMMEDIATE (the lock) and COMMIT (the disk) can wait."""
        return self._idle and self._conn.in_transaction

    def _begin_at_once(self, begin: str) -> bool:
        """Open the transaction here, on the loop's thread, if that cannot wait: no call is on the connection's
        thread and no other connection holds the write lock (BEGIN IMMEDIATE with no busy wait). False when it
        would wait: then the transaction opens on the connection's thread, waiting there as long as it must."""
        if not self._idle or self._conn.in_transaction:
            return False
        self._conn.execute("PRAGMA busy_timeout=0")
        try:
            self._conn.execute(begin)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            return False
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return True

    async def commit(self) -> None:
        if self.pending_begin is None:
            await super().commit()
        self.pending_begin = None

    async def rollback(self) -> None:
        if self.pending_begin is None and (not self._idle or self._conn.in_transaction):
            await super().rollback()
        self.pending_begin = None


def _connector() -> Callable[..., StoreConnection]:
    """What aiosqlite.connect does, with a StoreConnection (used by two threads, one at a time)."""

    def connect(database: str, **kwargs: Any) -> StoreConnection:
        kwargs["check_same_thread"] = False
        connection = StoreConnection(lambda: sqlite3.connect(database, **kwargs), iter_chunk_size=64)
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
        return connection

    return connect


def write_engine(url: str) -> AsyncEngine:
    """The engine of every write: one StoreConnection (a pool of one, so writes queue in order), each transaction
    opened with BEGIN IMMEDIATE, committed durably (synchronous=FULL), foreign keys enforced. Its first
    connection puts the database in WAL mode (persistent: every later connection of any process reads in it)."""
    engine = create_async_engine(
        url, pool_size=1, max_overflow=0, pool_timeout=60, hide_parameters=True, json_deserializer=jsontext.loads
    )
    connect = _connector()

    @event.listens_for(engine.sync_engine, "do_connect")
    def _on_do_connect(_dialect, _record, _cargs, cparams):
        cparams["async_creator_fn"] = connect

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection):  # BEGIN is ours (not pysqlite's), sent with the transaction's first statement
        connection.connection.driver_connection.pending_begin = "BEGIN IMMEDIATE"

    return engine


def read_engine(url: str) -> Engine:
    """The engine of reads: plain (synchronous) sqlite3 connections, used on the event loop's thread, that refuse
    to write. A read session is one snapshot (BEGIN ... rollback). Checking a connection out never waits (no
    limit on connections beyond the pool's kept ones): a waiting checkout would stall the loop."""
    engine = create_engine(
        make_url(url).set(drivername="sqlite+pysqlite"),
        pool_size=8,
        max_overflow=-1,
        hide_parameters=True,
        json_deserializer=jsontext.loads,
        connect_args={"check_same_thread": False},  # the pool may close a connection from another thread
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        dbapi_connection.execute("PRAGMA query_only=ON")

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # straight to sqlite3 (not a statement through the engine: a read costs less)
        connection.connection.driver_connection.execute("BEGIN")

    return engine


def read_sessions(engine: Engine) -> async_sessionmaker[AsyncSession]:
    """AsyncSessions on `engine`: the API the rest of the store uses, while each statement runs at once on the
    calling thread (with no thread hop or greenlet round trip per call, a statement costs a third less)."""

    class ReadSession(Session):
        def __init__(self, bind: Any = None, **kwargs: Any) -> None:
            super().__init__(bind=engine, **kwargs)

        def execute(self, *args: Any, **kwargs: Any) -> Any:
            """Rows of a Core statement come on an open sqlite3 cursor, which AsyncSession would go on to close as
            an async one: they are read at once here (as an ORM statement's always are)."""
            result = super().execute(*args, **kwargs)
            return result.freeze()() if isinstance(result, CursorResult) and result.cursor is not None else result

    return async_sessionmaker(sync_session_class=ReadSession, expire_on_commit=False)
