"""One file's ingestion is bounded by its extracted characters and by wall-clock time: beyond either it ends
`failed` with a reason that names the limit, and keeps no chunks."""

from __future__ import annotations

import asyncio
import time

import pytest

from assistd.retrieval.chunking import TokenChunker
from assistd.runtime.ingestion import Ingestor
from assistd.store.blobs import LocalBlobStore
from assistd.store.database import Database
from assistd.store.migrate import upgrade
from assistd.store.queue import IngestQueue
from tests.unit.test_ingestion import CountingEmbedder, _chunks, _file, _project, _queue, _status

WORKER = "worker-limits"


@pytest.fixture()
def db_url(tmp_path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'limits.db'}"
    upgrade(url)
    return url


async def _ingest_one(db: Database, ingestor: Ingestor, name: str, data: bytes):
    project = await _project(db)
    file_id = await _file(db, ingestor.blobs, project, name, data)
    store_id = await _queue(db, project, [file_id])
    job = await IngestQueue(db).claim(WORKER, time.time(), 30)
    started = time.monotonic()
    await ingestor.ingest(job, WORKER)
    return await _status(db, store_id, file_id), await _chunks(db, store_id), time.monotonic() - started


def test_a_file_over_the_character_cap_fails_as_invalid(db_url, tmp_path) -> None:
    async def scenario():
        db = Database(db_url)
        ingestor = Ingestor(
            db, LocalBlobStore(tmp_path / "files"), CountingEmbedder(), TokenChunker(), 30, max_characters=100
        )
        try:
            return await _ingest_one(db, ingestor, "long.txt", b"x" * 101)
        finally:
            await db.dispose()

    row, chunks, _ = asyncio.run(scenario())
    assert row.status == "failed" and chunks == 0
    assert row.last_error["code"] == "invalid_file"
    assert "more than 100 characters" in row.last_error["message"]


def test_a_file_over_the_time_limit_fails_and_keeps_no_chunks(db_url, tmp_path) -> None:
    async def scenario():
        db = Database(db_url)
        embedder = CountingEmbedder()
        embedder.before_embed = lambda: asyncio.sleep(0.5)
        ingestor = Ingestor(db, LocalBlobStore(tmp_path / "files"), embedder, TokenChunker(), 30, timeout_seconds=0.3)
        try:
            return await _ingest_one(db, ingestor, "slow.txt", b"a passage of text " * 200)
        finally:
            await db.dispose()

    row, chunks, seconds = asyncio.run(scenario())
    assert row.status == "failed" and chunks == 0
    assert row.last_error == {
        "code": "server_error",
        "message": "Processing the file took longer than the server allows (0.3 seconds).",
    }
    assert seconds < 2
