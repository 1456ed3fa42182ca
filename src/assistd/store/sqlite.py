"""SQLite connections for the store: pragmas, our own BEGIN, and reads run on the event loop's thread.

aiosqlite runs every call of a connection (cursor, execute, fetch, close) on the connection's own thread, a
thread hop each, four or more per statement: most of a short read's CPU. A read takes microseconds and, in WAL
mode, never waits for another connection, so the read engine's connections are `LoopThreadConnection`s, which
run their calls on the event loop's thread; only the switch to WAL mode as a connection opens (an exclusive lock,
the first time) goes to the connection's thread. Writes stay on aiosqlite's thread: BEGIN IMMEDIATE waits for
the write lock while another process writes, and COMMIT for the disk (synchronous=FULL).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

BUSY_TIMEOUT_MS = 30_000
WAITING_STATEMENT = "PRAGMA journal_mode"


def _may_wait(fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
    """Whether a call may wait for another connection (rather than only computing)."""
    return getattr(fn, "__name__", "") == "execute" and bool(args) and str(args[0]).startswith(WAITING_STATEMENT)


class LoopThreadConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run on the calling (event loop) thread, except those that may wait.

    Calls never overlap: while a call sent to the connection's thread has not ended (its caller may have been
    cancelled meanwhile, and the connection be closed), later calls queue behind it there."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sent = 0  # calls sent to the connection's thread (written by the loop's thread only)
        self._ended = 0  # the last of them to end (written by the connection's thread only)

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._ended == self._sent and not _may_wait(fn, args):
            return fn(*args, **kwargs)
        self._sent += 1
        ticket = self._sent

        def call() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                self._ended = ticket

        return await super()._execute(call)


def connect(database: str, **kwargs: Any) -> LoopThreadConnection:
    """What aiosqlite.connect does, with a LoopThreadConnection (used by two threads, one at a time)."""
    kwargs["check_same_thread"] = False
    connection = LoopThreadConnection(lambda: sqlite3.connect(database, **kwargs), iter_chunk_size=64)
    connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
    return connection


def configure(engine: AsyncEngine, *, begin: str, on_loop_thread: bool = False) -> None:
    """BEGIN is ours (taken over from pysqlite), pragmas per connection; with `on_loop_thread` the engine's
    connections are LoopThreadConnections (for reads only)."""

    if on_loop_thread:

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
