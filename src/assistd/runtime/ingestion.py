"""One vector store file, from claimed to `completed` or `failed`: read its bytes, prepare its chunks (parse,
chunk, embed) and write them with the file's new status in one transaction.

The write is guarded: it lands only while the file is still `in_progress` under this worker's lease, so a
file cancelled, removed or taken over meanwhile keeps no chunks from this attempt. A lease renews on its own
clock while the work goes on; a file whose worker died is taken over when the lease runs out.

One file's work is bounded: its text by `max_characters` (`invalid_file` beyond, found while extracting, before
anything is embedded) and its wall-clock time by `timeout_seconds` (`server_error` beyond). The timeout stops the
work at its next step; parsing, on a thread of its own, gives up at its next page, line or piece of markup, and a
tokenizing step under way finishes (the character cap keeps it short) with its result dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sqlalchemy import update

from assistd.config import Settings
from assistd.engines.base import EmbeddingEngine
from assistd.lifecycle import FileStatus
from assistd.retrieval.chunking import TokenChunker
from assistd.retrieval.ingest import Progress, prepare
from assistd.retrieval.parsing import MAX_TEXT_CHARS, InvalidFile, UnsupportedFile
from assistd.runtime.lease import lease_kept
from assistd.store import tables
from assistd.store.blobs import BlobStore
from assistd.store.database import Database, execute_dml
from assistd.store.queue import IngestQueue, expired_files
from assistd.store.repositories import ChunkRepository, FileRepository

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


class Ingestor:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        embedder: EmbeddingEngine,
        chunker: TokenChunker,
        lease_seconds: float,
        *,
        max_characters: int = MAX_TEXT_CHARS,
        timeout_seconds: float | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.embedder = embedder
        self.chunker = chunker
        self.lease_seconds = lease_seconds
        self.max_characters = max_characters
        self.timeout_seconds = timeout_seconds
        self.queue = IngestQueue(db)

    @classmethod
    def from_settings(cls, settings: Settings, db: Database, blobs: BlobStore, embedder: EmbeddingEngine) -> Ingestor:
        return cls(
            db,
            blobs,
            embedder,
            TokenChunker(),
            settings.run_lease_seconds,
            max_characters=settings.ingest_max_characters,
            timeout_seconds=settings.ingest_timeout_seconds,
        )

    async def ingest(self, job: tables.VectorStoreFile, worker_id: str, progress: Progress | None = None) -> None:
        """Ingest a claimed file; `progress(done, total)` hears of each batch of embedded windows."""
        work = asyncio.current_task()

        def stop_work() -> None:  # another worker has the file now
            if work is not None:
                work.cancel()

        try:
            async with lease_kept(
                f"{job.id} in {job.vector_store_id}",
                lambda expires_at: self.queue.renew(job, worker_id, expires_at),
                self.lease_seconds,
                on_lost=stop_work,
            ):
                await self._ingest(job, worker_id, progress)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ingesting %s into %s failed", job.id, job.vector_store_id)
            await self._finish(
                job, worker_id, FileStatus.FAILED, _error("server_error", "The file could not be processed.")
            )

    async def _ingest(self, job: tables.VectorStoreFile, worker_id: str, progress: Progress | None) -> None:
        if job.attempts > MAX_ATTEMPTS:
            message = "Processing the file was interrupted too many times."
            await self._finish(job, worker_id, FileStatus.FAILED, _error("server_error", message))
            return
        async with self.db.read() as session:
            file = await FileRepository(session, job.project_id).get(job.id)
        if file is None:  # deleted meanwhile; its place in the store went with it
            return
        deadline = None if self.timeout_seconds is None else time.monotonic() + self.timeout_seconds
        try:
            async with asyncio.timeout(self.timeout_seconds):
                data = await self.blobs.read(job.project_id, job.id)
                chunks = await prepare(
                    file.filename,
                    data,
                    job.chunking_strategy,
                    self.chunker,
                    self.embedder,
                    progress,
                    self.max_characters,
                    deadline,
                )
        except TimeoutError:
            if deadline is None or time.monotonic() < deadline:
                raise  # a timeout of something else (the store): not the file's
            message = f"Processing the file took longer than the server allows ({self.timeout_seconds:g} seconds)."
            await self._finish(job, worker_id, FileStatus.FAILED, _error("server_error", message))
            return
        except FileNotFoundError:
            await self._finish(
                job, worker_id, FileStatus.FAILED, _error("server_error", "The file's bytes are missing.")
            )
            return
        except UnsupportedFile as exc:
            await self._finish(job, worker_id, FileStatus.FAILED, _error("unsupported_file", str(exc)))
            return
        except InvalidFile as exc:
            await self._finish(job, worker_id, FileStatus.FAILED, _error("invalid_file", str(exc)))
            return
        rows = [
            tables.Chunk(position=i, text=chunk.text, tokens=chunk.tokens, embedding=chunk.embedding)
            for i, chunk in enumerate(chunks)
        ]
        usage = sum(len(row.text.encode()) + len(row.embedding) for row in rows)
        await self._finish(job, worker_id, FileStatus.COMPLETED, None, rows, usage)
        log.info("ingested %s into %s: %d chunks", job.id, job.vector_store_id, len(rows))

    async def _finish(
        self,
        job: tables.VectorStoreFile,
        worker_id: str,
        status: FileStatus,
        error: dict[str, Any] | None,
        rows: list[tables.Chunk] | None = None,
        usage_bytes: int = 0,
    ) -> None:
        async with self.db.write() as session:
            result = await execute_dml(
                session,
                update(tables.VectorStoreFile)
                .where(
                    tables.VectorStoreFile.vector_store_id == job.vector_store_id,
                    tables.VectorStoreFile.id == job.id,
                    tables.VectorStoreFile.status == FileStatus.IN_PROGRESS,
                    tables.VectorStoreFile.lease_owner == worker_id,
                )
                .values(
                    status=status, last_error=error, usage_bytes=usage_bytes, lease_owner=None, lease_expires_at=None
                ),
            )
            if result.rowcount != 1:
                return  # cancelled, removed or taken over meanwhile: leave it as it is now
            if rows is not None:
                await ChunkRepository(session, job.project_id).replace_file(
                    job.vector_store_id, job.id, rows, self.embedder.dimensions
                )

    async def expire_files(self, moment: int) -> None:
        """Delete the files whose `expires_at` has passed, with their chunks in every store, then their bytes."""
        for file in await expired_files(self.db, moment):
            async with self.db.write() as session:
                deleted = await FileRepository(session, file.project_id).delete(file.id)
            if deleted:
                await self.blobs.delete(file.project_id, file.id)
                log.info("file %s expired and was deleted", file.id)


def _error(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}
