"""Both blob stores over a real SQLite store: bytes round-trip exactly (in parts), a failed save leaves nothing,
a blob belongs to its project, and deleting a file deletes its bytes in the database with it."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import time

import pytest
from sqlalchemy import func, select

from assistd.clock import now
from assistd.config import Settings
from assistd.ids import new_id
from assistd.store import tables
from assistd.store.blobs import BlobStore, LocalBlobStore, open_blob_store
from assistd.store.database import Database
from assistd.store.database_blobs import DatabaseBlobStore
from assistd.store.migrate import upgrade
from assistd.store.repositories import FileRepository

PART = 1000


class Failing(io.BytesIO):
    """A source that breaks after `good` bytes, as an upload cut off or a full spool would."""

    def __init__(self, data: bytes, good: int) -> None:
        super().__init__(data)
        self.good = good

    def read(self, size: int = -1) -> bytes:
        left = self.good - self.tell()
        if left <= 0:
            raise OSError("the source broke")
        return super().read(left if size < 0 else min(size, left))


@pytest.fixture
def db(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'blobs.db'}"
    upgrade(url)
    db = Database(url)
    yield db
    asyncio.run(db.dispose())


@pytest.fixture(params=["local", "database"])
def blobs(request, db, tmp_path) -> BlobStore:
    return LocalBlobStore(tmp_path / "files") if request.param == "local" else DatabaseBlobStore(db, part_bytes=PART)


async def _project(db: Database) -> str:
    async with db.write() as session:
        project = tables.Project(id=new_id("project"), name=f"p{time.time_ns()}", created_at=now())
        session.add(project)
    return project.id


async def _parts(db: Database) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(tables.FileBlob))


def test_bytes_round_trip_exactly(db, blobs) -> None:
    data = os.urandom(PART * 3 + 17)  # three whole parts and a short one

    async def scenario() -> None:
        project, file_id = await _project(db), new_id("file")
        assert await blobs.save(project, file_id, io.BytesIO(data)) == (len(data), hashlib.sha256(data).hexdigest())
        assert await blobs.read(project, file_id) == data
        streamed = [block async for block in blobs.stream(project, file_id)]
        assert b"".join(streamed) == data
        if isinstance(blobs, DatabaseBlobStore):
            assert [len(block) for block in streamed] == [PART, PART, PART, 17]
            assert await _parts(db) == 4
        await blobs.delete(project, file_id)
        with pytest.raises(FileNotFoundError):
            await blobs.read(project, file_id)
        await blobs.delete(project, file_id)  # deleting what is gone is harmless
        assert await _parts(db) == 0

    asyncio.run(scenario())


def test_an_empty_blob_exists(db, blobs) -> None:
    async def scenario() -> None:
        project, file_id = await _project(db), new_id("file")
        assert await blobs.save(project, file_id, io.BytesIO(b"")) == (0, hashlib.sha256(b"").hexdigest())
        assert await blobs.read(project, file_id) == b""

    asyncio.run(scenario())


def test_a_failed_save_leaves_nothing(db, blobs, tmp_path) -> None:
    async def scenario() -> None:
        project, file_id = await _project(db), new_id("file")
        with pytest.raises(OSError, match="the source broke"):
            await blobs.save(project, file_id, Failing(os.urandom(PART * 5), good=PART * 3))
        with pytest.raises(FileNotFoundError):
            await blobs.read(project, file_id)
        with pytest.raises(FileNotFoundError):
            await anext(aiter(blobs.stream(project, file_id)))
        assert await _parts(db) == 0
        assert not list((tmp_path / "files").rglob("*.partial"))

    asyncio.run(scenario())


def test_a_blob_belongs_to_its_project(db, blobs) -> None:
    async def scenario() -> None:
        project, other, file_id = await _project(db), await _project(db), new_id("file")
        await blobs.save(project, file_id, io.BytesIO(b"private"))
        with pytest.raises(FileNotFoundError):
            await blobs.read(other, file_id)
        await blobs.delete(other, file_id)
        assert await blobs.read(project, file_id) == b"private"

    asyncio.run(scenario())


def test_deleting_a_file_deletes_its_parts_in_the_same_transaction(db) -> None:
    blobs = DatabaseBlobStore(db, part_bytes=PART)

    async def scenario() -> None:
        project, file_id = await _project(db), new_id("file")
        size, digest = await blobs.save(project, file_id, io.BytesIO(os.urandom(PART * 2)))
        async with db.write() as session:
            session.add(
                tables.File(
                    id=file_id,
                    project_id=project,
                    created_at=now(),
                    filename="a.bin",
                    purpose="assistants",
                    bytes=size,
                    sha256=digest,
                )
            )
        assert await _parts(db) == 2
        async with db.write() as session:
            assert await FileRepository(session, project).delete(file_id)
        assert await _parts(db) == 0

    asyncio.run(scenario())


def test_the_setting_chooses_the_store(tmp_path) -> None:
    sqlite = Database(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    postgres = Database("postgresql+asyncpg://assistd@127.0.0.1:1/assistd")  # never connected
    auto, local, database = (Settings(data_dir=tmp_path, blob_store=kind) for kind in ("auto", "local", "database"))
    assert isinstance(open_blob_store(auto, sqlite), LocalBlobStore)
    assert isinstance(open_blob_store(auto, postgres), DatabaseBlobStore)
    assert isinstance(open_blob_store(local, postgres), LocalBlobStore)
    assert isinstance(open_blob_store(database, sqlite), DatabaseBlobStore)
    assert open_blob_store(local, sqlite).root == tmp_path / "files"


def test_database_store_reads_and_deletes_what_the_directory_held_before(db, tmp_path) -> None:
    """A deployment that moves to the database store keeps its earlier files: bytes with no parts in the
    database are read from the files directory, and deleted there."""
    directory = LocalBlobStore(tmp_path / "files")
    store = DatabaseBlobStore(db, earlier=directory)

    async def scenario() -> None:
        await directory.save("proj_a", "file-old", io.BytesIO(b"kept on disk"))
        assert await store.read("proj_a", "file-old") == b"kept on disk"
        await store.delete("proj_a", "file-old")
        assert not directory.path("proj_a", "file-old").exists()
        with pytest.raises(FileNotFoundError):
            await store.read("proj_a", "file-old")

    asyncio.run(scenario())
