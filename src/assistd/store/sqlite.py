"""SQLite connections for the store: pragmas, our own BEGIN, one call per statement, and reads run on the
event loop's thread.

aiosqlite runs every call of a connection (cursor, execute, fetch, close) on the connection's own thread: a thread
hop each, four per SELECT, and most of a short statement's CPU. Here a statement is one call (`StatementCursor`):
the cursor is opened, executed, read to the end and closed together, on the connection's thread.

A read takes microseconds and, in WAL mode, never waits for another connection, so the read engine's connections
are `LoopThreadConnection`s, which run their calls on the event loop's thread; only the switch to WAL mode as a
connection opens (an exclusive lock, the first time) goes to the connection's thread. A write transaction's
BEGIN IMMEDIATE, sent with its first statement, and its COMMIT go to the write connection's thread: the first
waits for the write lock while another process writes, the second for the disk (synchronous=FULL). The statements
between them wait for nobody, and run on the loop's thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

BUSY_TIMEOUT_MS = 30_000
WAITING_STATEMENT = "PRAGMA journal_mode"
BEGIN = "BEGIN"


def _may_wait(args: tuple[Any, ...]) -> bool:
    """Whether a call (with these arguments) may wait for another connection, rather than only compute."""
    return any(isinstance(arg, str) and arg.startswith(WAITING_STATEMENT) for arg in args)


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
        if sql.startswith(BEGIN):  # deferred to the transaction's first statement: one call fewer
            connection.pending_begin = sql
            return self
        begin, connection.pending_begin = connection.pending_begin, None
        if begin is None and connection._inside_write_transaction():
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
        (BEGIN IMMEDIATE ran, on its thread) and no call is on its thread. In WAL mode a statement of such a
        transaction waits for nobody; only BEGIN IMMEDIATE (the lock) and COMMIT (the disk) can wait."""
        return self._idle and self._conn.in_transaction

    async def commit(self) -> None:
        if self.pending_begin is None:
            await super().commit()
        self.pending_begin = None

    async def rollback(self) -> None:
        if self.pending_begin is None and (not self._idle or self._conn.in_transaction):
            await super().rollback()
        self.pending_begin = None


class LoopThreadConnection(StoreConnection):
    """A StoreConnection whose calls run on the calling (event loop) thread, except those that may wait.

    Calls never overlap: while a call sent to the connection's thread has not ended (its caller may have been
    cancelled meanwhile, and the connection be closed), later calls queue behind it there."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._idle and not _may_wait(args):
            return fn(*args, **kwargs)
        return await super()._execute(fn, *args, **kwargs)


def _connector(connection_class: type[StoreConnection]) -> Callable[..., StoreConnection]:
    """What aiosqlite.connect does, with a connection of our class (used by two threads, one at a time)."""

    def connect(database: str, **kwargs: Any) -> StoreConnection:
        kwargs["check_same_thread"] = False
        connection = connection_class(lambda: sqlite3.connect(database, **kwargs), iter_chunk_size=64)
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
        return connection

    return connect


def configure(engine: AsyncEngine, *, begin: str, on_loop_thread: bool = False) -> None:
    """BEGIN is ours (taken over from pysqlite), pragmas per connection; the engine's connections are
    StoreConnections, or with `on_loop_thread` LoopThreadConnections (for reads only)."""
    connect = _connector(LoopThreadConnection if on_loop_thread else StoreConnection)

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
    def _on_begin(connection):
        connection.exec_driver_sql(begin)
