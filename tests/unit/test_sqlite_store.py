"""The SQLite store runs its statements on the event loop's thread (no thread hop per call) except those that can
wait: a write transaction's BEGIN IMMEDIATE while another connection holds the write lock, and its COMMIT (the
disk), run on the write connection's own thread, so a waiting write never stalls the loop; one call per
statement."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
from sqlalchemy import delete, event, select, text, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from assistd.store import sqlite, tables
from assistd.store.database import Database


@pytest.fixture()
def executed() -> list[tuple[str, int]]:
    """(first word of each SQL statement SQLite runs, the thread that ran it), for connections opened meanwhile."""
    seen: list[tuple[str, int]] = []

    def trace(dbapi_connection, _record) -> None:
        connection = getattr(dbapi_connection, "driver_connection", dbapi_connection)  # aiosqlite's, or sqlite3's
        getattr(connection, "_conn", connection).set_trace_callback(
            lambda sql: seen.append((" ".join(sql.split()[:2]).upper(), threading.get_ident()))
        )

    event.listen(Engine, "connect", trace)
    yield seen
    event.remove(Engine, "connect", trace)


def new_project(project_id: str) -> tables.Project:
    return tables.Project(id=project_id, name=project_id, created_at=0)


def test_reads_and_writes_run_on_the_loop_thread_but_commit(sqlite_url, executed):
    """A read runs on the loop's thread; so does a write while the write lock is free (BEGIN IMMEDIATE cannot
    wait then), except its COMMIT, which waits for the disk on the connection's thread."""

    async def scenario() -> int:
        db = Database(sqlite_url)
        try:
            async with db.write() as session:  # opens the write connection (WAL mode)
                session.add(new_project("proj_0"))
            executed.clear()
            async with db.write() as session:
                session.add(new_project("proj_a"))
            async with db.read() as session:
                assert (await session.scalar(select(tables.Project.name).where(tables.Project.id == "proj_a"))) == (
                    "proj_a"
                )
        finally:
            await db.dispose()
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    statements = [(sql, thread) for sql, thread in executed if not sql.startswith("PRAGMA")][:5]
    assert [sql for sql, _ in statements] == [
        "BEGIN IMMEDIATE",
        "INSERT INTO",
        "COMMIT",
        "BEGIN",
        "SELECT PROJECTS.NAME",
    ]
    threads = [thread == loop_thread for _, thread in statements]
    assert threads == [True, True, False, True, True]


def test_a_read_session_answers_core_statements_and_refuses_writes(sqlite_url):
    """Reads run on plain sqlite3 connections behind the AsyncSession API: ORM and Core statements (text, table
    columns) alike answer, and a write through a read session is refused, with nothing written."""

    async def scenario() -> None:
        db = Database(sqlite_url)
        try:
            async with db.write() as session:
                session.add(new_project("proj_a"))
            projects = tables.Project.__table__
            async with db.read() as session:
                assert (await session.get(tables.Project, "proj_a")).name == "proj_a"
                assert (await session.execute(text("SELECT name FROM projects"))).all() == [("proj_a",)]
                assert list(await session.scalars(select(projects.c.id))) == ["proj_a"]
                with pytest.raises(OperationalError, match="readonly"):
                    await session.execute(update(projects).values(name="changed"))
            async with db.read() as session:
                assert await session.scalar(select(projects.c.name)) == "proj_a"
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_a_write_waiting_for_another_writer_does_not_stall_the_loop(sqlite_url):
    other = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None)
    try:
        asyncio.run(write_behind(other, Database(sqlite_url)))
    finally:
        other.close()


async def write_behind(other: sqlite3.Connection, db: Database) -> None:
    try:
        async with db.write() as session:  # the store is open (in WAL mode, as a running server's is)
            session.add(new_project("proj_a"))
        other.execute("BEGIN IMMEDIATE")  # then another process's write transaction holds the lock

        async def write() -> None:
            async with db.write() as session:
                session.add(new_project("proj_b"))

        writing = asyncio.create_task(write())
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1
        async with db.read() as session:  # reads go on meanwhile (WAL)
            assert await session.scalar(select(tables.Project.id)) == "proj_a"
        assert ticks == 20 and not writing.done()

        other.execute("COMMIT")
        await asyncio.wait_for(writing, 10)
        async with db.read() as session:
            assert set(await session.scalars(select(tables.Project.id))) == {"proj_a", "proj_b"}
    finally:
        await db.dispose()


def test_a_statement_is_one_call_to_its_connection(sqlite_url, monkeypatch, executed):
    """BEGIN travels with the transaction's first statement, and a statement's cursor is opened, run, read and
    closed in one call. While another connection holds the write lock, a write's first statement and its BEGIN
    IMMEDIATE are one call to the connection's thread (it waits there); the statements after it, under the lock,
    run on the loop's thread, and COMMIT is one more call. With the lock free, COMMIT is the only call."""
    calls: list[str] = []
    send = sqlite.StoreConnection._execute

    async def counted(self, fn, *args, **kwargs):
        calls.append(getattr(fn, "__name__", "?"))
        return await send(self, fn, *args, **kwargs)

    async def scenario() -> int:
        db = Database(sqlite_url)
        try:
            async with db.write() as session:  # opens the write connection
                session.add(new_project("proj_a"))
            calls.clear()
            async with db.write() as session:
                renamed = await session.execute(
                    update(tables.Project).where(tables.Project.id == "proj_a").values(name="renamed")
                )
                assert renamed.rowcount == 1
            assert calls == ["commit"]
            calls.clear()
            other.execute("BEGIN IMMEDIATE")  # another process writes; it is done soon
            asyncio.get_running_loop().call_later(0.2, other.execute, "COMMIT")
            async with db.write() as session:
                assert await session.scalar(select(tables.Project.name)) == "renamed"
                gone = await session.execute(delete(tables.Project).where(tables.Project.id == "nope"))
                assert gone.rowcount == 0
            assert calls == ["_run", "commit"]
            calls.clear()
            async with db.write():
                pass
            assert calls == []  # a transaction that ran nothing costs nothing
        finally:
            await db.dispose()
        return threading.get_ident()

    monkeypatch.setattr(sqlite.StoreConnection, "_execute", counted)
    other = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None, check_same_thread=False)
    try:
        loop_thread = asyncio.run(scenario())
    finally:
        other.close()
    threads = {sql: thread for sql, thread in executed if sql in ("SELECT PROJECTS.NAME", "DELETE FROM")}
    assert threads["SELECT PROJECTS.NAME"] != loop_thread  # with BEGIN IMMEDIATE, which may wait
    assert threads["DELETE FROM"] == loop_thread  # under the write lock: waits for nobody
