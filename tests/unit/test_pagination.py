"""fetch_page against a real (in-memory) SQLite table: both directions, both orders, has_more."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from assistd.ids import new_id
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.pagination import PageRequest, fetch_page, paged
from assistd.store.repositories import read_only_columns


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    db_path = tmp_path_factory.mktemp("pages") / "p.db"
    url = f"sqlite+aiosqlite:///{db_path}"
    ids = [new_id("project") for _ in range(10)]

    async def seed() -> None:
        db = Database(url)
        async with db.write() as session:
            await session.run_sync(lambda sync: tables.Base.metadata.create_all(sync.connection()))
            session.add_all(tables.Project(id=i, name=i, created_at=0) for i in ids)
        await db.dispose()

    asyncio.run(seed())
    return url, ids


def page(url: str, request: PageRequest):
    async def run():
        db = Database(url)
        try:
            async with db.read() as session:
                statement = paged(select(*read_only_columns(tables.Project)), tables.Project.id, request.shape)
                return await fetch_page(session, statement, request)
        finally:
            await db.dispose()

    result = asyncio.run(run())
    return [row.id for row in result.items], result.has_more


def test_orders(seeded) -> None:
    db, ids = seeded
    assert page(db, PageRequest(limit=3, order="asc")) == (ids[:3], True)
    assert page(db, PageRequest(limit=3, order="desc")) == (ids[::-1][:3], True)
    assert page(db, PageRequest(limit=10, order="asc")) == (ids, False)


def test_after_and_before(seeded) -> None:
    db, ids = seeded
    assert page(db, PageRequest(limit=3, order="asc", after=ids[6])) == (ids[7:10], False)
    assert page(db, PageRequest(limit=3, order="desc", after=ids[6])) == ([ids[5], ids[4], ids[3]], True)
    assert page(db, PageRequest(limit=3, order="asc", before=ids[6])) == (ids[3:6], True)
    assert page(db, PageRequest(limit=3, order="desc", before=ids[6])) == ([ids[9], ids[8], ids[7]], False)
    assert page(db, PageRequest(limit=3, order="asc", before=ids[2])) == (ids[:2], False)
