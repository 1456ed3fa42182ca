"""`assistd ingest`: files from disk into a vector store, stored and ingested by this process (not a server's
worker), reporting progress. The result is the same as uploading them and adding them through the API."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from assistd.retrieval.ingest import Progress
from assistd.runtime.ingestion import Ingestor
from assistd.schemas.common import StaticChunking, StaticChunkingStrategy
from assistd.schemas.vector_stores import VectorStoreFileCreate
from assistd.services.files import FileService
from assistd.services.principal import Principal
from assistd.services.vector_stores import add_files, find_or_create_store
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.repositories import VectorStoreFileRepository


class LocalIngest:
    def __init__(self, db: Database, files: FileService, ingestor: Ingestor) -> None:
        self.db = db
        self.files = files
        self.ingestor = ingestor
        self.worker_id = f"cli-{uuid.uuid4().hex[:12]}"

    async def store(self, principal: Principal, name_or_id: str) -> tables.VectorStore:
        """The project's vector store with this id or name, made (with this name) if there is none."""
        async with self.db.write() as session:
            return await find_or_create_store(session, principal.project_id, name_or_id)

    async def ingest(
        self,
        principal: Principal,
        store_id: str,
        path: Path,
        chunking: StaticChunking | None = None,
        progress: Progress | None = None,
    ) -> tables.VectorStoreFile | None:
        """Upload `path` as a file and ingest it into the store now; returns its vector store file (None if it
        was removed meanwhile)."""
        with path.open("rb") as content:
            file = await self.files.create(principal, path.name, content, "assistants")
        strategy = StaticChunkingStrategy(type="static", static=chunking) if chunking else None
        async with self.db.write() as session:
            (job,) = await add_files(
                session,
                principal.project_id,
                store_id,
                [VectorStoreFileCreate(file_id=file["id"], chunking_strategy=strategy)],
            )
            # leased to this process, so no server worker takes it meanwhile (unless this process dies)
            job.lease_owner, job.lease_expires_at = self.worker_id, time.time() + self.ingestor.lease_seconds
            job.attempts = 1
        await self.ingestor.ingest(job, self.worker_id, progress)
        async with self.db.read() as session:
            return await VectorStoreFileRepository(session, principal.project_id).get_in(store_id, file["id"])
