"""SQLite connections for the store: pragmas, our own BEGIN, and statements run on the event loop's thread.

aiosqlite runs every call of a connection (cursor, execute, fetch, close) on the connection's own thread, a
thread hop each, four or more per statement: most of a short request's CPU. A statement of this store takes
microseconds and, in WAL mode, never waits for another connection, so `LoopThreadConnection` runs it on the
event loop's thread. Only the calls that can wait keep going to the connection's thread: BEGIN IMMEDIATE
(for the write lock, up to the busy timeout, when another process writes), COMMIT (for the disk:
synchronous=FULL), and the switch to WAL mode as a connection opens (for an exclusive lock, the first time).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

BUSY_TIMEOUT_MS = 30_000
WAITING_STATEMENTS = ("BEGIN IMMEDIATE", "PRAGMA journal_mode")


def _may_wait(fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
    """Whether a call waits for another connection or for the disk (rather than only computing)."""
    name = getattr(fn, "__name__", "")
    if name == "commit":
        return True
    return name == "execute" and bool(args) and isinstance(args[0], str) and args[0].startswith(WAITING_STATEMENTS)


class LoopThreadConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run on the calling (event loop) thread, except those that may wait."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if _may_wait(fn, args):
            return await super()._execute(fn, *args, **kwargs)
        return fn(*args, **kwargs)


def connect(database: str, **kwargs: Any) -> LoopThreadConnection:
    """What aiosqlite.connect does, with a LoopThreadConnection (used by two threads, one at a time)."""
    kwargs["check_same_thread"] = False
    connection = LoopThreadConnection(lambda: sqlite3.connect(database, **kwargs), iter_chunk_size=64)
    connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
    return connection


def configure(engine: AsyncEngine, *, begin: str) -> None:
    """Connections are LoopThreadConnections; BEGIN is ours (taken over from pysqlite), pragmas per connection."""

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
