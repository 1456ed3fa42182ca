"""Ingestion jobs over a real SQLite store with the real parser and chunker and a deterministic embedder:
guarded completion, failures by kind, retries, cancellation, and file expiry."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select

from assistd.clock import now
from assistd.engines.base import Embeddings
from assistd.ids import new_id
from assistd.retrieval.chunking import TokenChunker
from assistd.runtime.ingestion import MAX_ATTEMPTS, Ingestor
from assistd.schemas.vector_stores import VectorStoreFileCreate
from assistd.services.vector_stores import add_files, create_store
from assistd.store import tables
from assistd.store.blobs import BlobStore, LocalBlobStore
from assistd.store.database import Database
from assistd.store.migrate import upgrade
from assistd.store.queue import IngestQueue

WORKER = "worker-test"


class CountingEmbedder:
    """Unit vectors from character counts; `before_embed` runs before each batch (to change the world mid-job)."""

    model_id = "counting"
    dimensions = 8
    max_input_tokens = 64

    def __init__(self) -> None:
        self.before_embed = None

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        if self.before_embed is not None:
            await self.before_embed()
        vectors = []
        for text in texts:
            raw = [float(text.count(c) + 1) for c in "etaoinsr"]
            norm = sum(v * v for v in raw) ** 0.5
            vectors.append([v / norm for v in raw])
        return Embeddings(vectors=vectors, prompt_tokens=0)

    async def close(self) -> None:
        return None


@pytest.fixture
def store(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'ingest.db'}"
    upgrade(url)
    db = Database(url)
    blobs = LocalBlobStore(tmp_path / "files")
    embedder = CountingEmbedder()
    ingestor = Ingestor(db, blobs, embedder, TokenChunker(), lease_seconds=30)
    yield db, blobs, embedder, ingestor
    asyncio.run(db.dispose())


async def _project(db: Database) -> str:
    async with db.write() as session:
        project = tables.Project(id=new_id("project"), name=f"p{time.time_ns()}", created_at=now())
        session.add(project)
    return project.id


async def _file(db: Database, blobs: BlobStore, project_id: str, name: str, data: bytes, **extra) -> str:
    file_id = new_id("file")
    size, digest = await blobs.save(project_id, file_id, io.BytesIO(data))
    async with db.write() as session:
        session.add(
            tables.File(
                id=file_id,
                project_id=project_id,
                created_at=now(),
                filename=name,
                purpose="assistants",
                bytes=size,
                sha256=digest,
                expires_at=extra.get("expires_at"),
            )
        )
    return file_id


async def _queue(db: Database, project_id: str, file_ids: list[str]) -> str:
    async with db.write() as session:
        vector_store = await create_store(session, project_id, name="kb")
        await add_files(session, project_id, vector_store.id, [VectorStoreFileCreate(file_id=f) for f in file_ids])
    return vector_store.id


async def _status(db: Database, store_id: str, file_id: str) -> tables.VectorStoreFile:
    async with db.read() as session:
        return await session.get(tables.VectorStoreFile, (store_id, file_id))


async def _chunks(db: Database, store_id: str) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).where(tables.Chunk.vector_store_id == store_id))


def test_completed_and_failed_files(store) -> None:
    db, blobs, _, ingestor = store

    async def scenario() -> None:
        project = await _project(db)
        good = await _file(db, blobs, project, "a.md", b"# Title\n\n" + b"Some words about tides. " * 300)
        broken = await _file(db, blobs, project, "b.pdf", b"not a pdf")
        unknown = await _file(db, blobs, project, "c.xyz", b"data")
        store_id = await _queue(db, project, [good, broken, unknown])
        queue = IngestQueue(db)
        while (job := await queue.claim(WORKER, time.time(), 30)) is not None:
            await ingestor.ingest(job, WORKER)
        done = await _status(db, store_id, good)
        assert done.status == "completed" and done.usage_bytes > 0 and done.lease_owner is None
        assert (await _status(db, store_id, broken)).last_error["code"] == "invalid_file"
        assert (await _status(db, store_id, unknown)).last_error["code"] == "unsupported_file"
        assert await _chunks(db, store_id) >= 2  # 300 sentences make more than one 800-token chunk
        async with db.read() as session:
            version = await session.scalar(select(tables.VectorStore.index_version))
        assert version == 1  # one file's chunks arrived

    asyncio.run(scenario())


def test_a_file_cancelled_mid_ingestion_keeps_no_chunks(store) -> None:
    db, blobs, embedder, ingestor = store

    async def scenario() -> None:
        project = await _project(db)
        file_id = await _file(db, blobs, project, "a.txt", b"Lighthouses and tides. " * 200)
        store_id = await _queue(db, project, [file_id])

        async def cancel() -> None:
            async with db.write() as session:
                row = await session.get(tables.VectorStoreFile, (store_id, file_id))
                row.status = "cancelled"

        embedder.before_embed = cancel
        job = await IngestQueue(db).claim(WORKER, time.time(), 30)
        await ingestor.ingest(job, WORKER)
        assert (await _status(db, store_id, file_id)).status == "cancelled"
        assert await _chunks(db, store_id) == 0

    asyncio.run(scenario())


def test_a_job_interrupted_too_often_fails(store) -> None:
    db, blobs, _, ingestor = store

    async def scenario() -> None:
        project = await _project(db)
        file_id = await _file(db, blobs, project, "a.txt", b"hello there world")
        store_id = await _queue(db, project, [file_id])
        queue = IngestQueue(db)
        for attempt in range(MAX_ATTEMPTS + 1):
            job = await queue.claim(WORKER, time.time() + attempt * 100, 30)  # each lease has run out
            assert job is not None and job.attempts == attempt + 1
        await ingestor.ingest(job, WORKER)
        failed = await _status(db, store_id, file_id)
        assert failed.status == "failed" and failed.last_error["code"] == "server_error"

    asyncio.run(scenario())


def test_expired_files_are_deleted_with_their_chunks(store) -> None:
    db, blobs, _, ingestor = store

    async def scenario() -> None:
        project = await _project(db)
        old = await _file(db, blobs, project, "old.txt", b"old words here", expires_at=now() - 1)
        kept = await _file(db, blobs, project, "kept.txt", b"kept words here", expires_at=now() + 3600)
        store_id = await _queue(db, project, [old, kept])
        queue = IngestQueue(db)
        while (job := await queue.claim(WORKER, time.time(), 30)) is not None:
            await ingestor.ingest(job, WORKER)
        assert await _chunks(db, store_id) == 2
        await ingestor.expire_files(now())
        async with db.read() as session:
            assert await session.get(tables.File, old) is None
            assert await session.get(tables.File, kept) is not None
            assert await session.get(tables.VectorStoreFile, (store_id, old)) is None
        assert await _chunks(db, store_id) == 1
        assert not blobs.path(project, old).exists() and blobs.path(project, kept).exists()

    asyncio.run(scenario())
