"""The API calls on a vector store's files and file batches: add, list, retrieve, update, remove, read, cancel.

Files added are only queued (services/vector_stores.py); the worker wakes to ingest them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.clock import now
from assistd.errors import InvalidRequest, NotFound
from assistd.ids import new_id
from assistd.lifecycle import FileStatus
from assistd.protocol import wire
from assistd.retrieval.parsing import MAX_TEXT_CHARS, InvalidFile, UnsupportedFile, extract_text
from assistd.schemas.vector_stores import FileBatchCreate, VectorStoreFileCreate, VectorStoreFileUpdate
from assistd.services.idempotency import Idempotency, remember, replayed
from assistd.services.principal import Principal
from assistd.services.vector_stores import add_files, require_store
from assistd.store import tables
from assistd.store.blobs import BlobStore
from assistd.store.database import Database
from assistd.store.pagination import Page, PageRequest
from assistd.store.repositories import FileBatchRepository, FileRepository, VectorStoreFileRepository


class VectorStoreFileService:
    """The files and file batches of the caller's vector stores."""

    def __init__(
        self, db: Database, blobs: BlobStore, wake: Callable[[], None], max_characters: int = MAX_TEXT_CHARS
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.wake = wake
        self.max_characters = max_characters  # of a file's text, as ingestion reads it

    # files of a store

    async def add_file(self, principal: Principal, store_id: str, body: VectorStoreFileCreate) -> dict[str, Any]:
        """Queue a file of the project for ingestion into the store."""
        async with self.db.write() as session:
            await require_store(session, principal.project_id, store_id)
            (row,) = await add_files(session, principal.project_id, store_id, [body])
        self.wake()
        return wire.vector_store_file(row)

    async def list_files(
        self, principal: Principal, store_id: str, request: PageRequest, status: str | None, batch_id: str | None = None
    ) -> Page[dict[str, Any]]:
        """A page of the store's files, of one status or one batch when asked."""
        filters = {"vector_store_id": store_id}
        if status is not None:
            filters["status"] = status
        async with self.db.read() as session:
            await require_store(session, principal.project_id, store_id)
            if batch_id is not None:
                await self._batch(session, principal, store_id, batch_id)
                filters["batch_id"] = batch_id
            page = await VectorStoreFileRepository(session, principal.project_id).page(request, **filters)
        return Page([wire.vector_store_file(row) for row in page.items], page.has_more)

    async def _file(self, session: AsyncSession, principal: Principal, store_id: str, file_id: str):
        await require_store(session, principal.project_id, store_id)
        row = await VectorStoreFileRepository(session, principal.project_id).get_in(store_id, file_id)
        if row is None:
            raise NotFound(f"No file with id '{file_id}' in vector store '{store_id}'.")
        return row

    async def retrieve_file(self, principal: Principal, store_id: str, file_id: str) -> dict[str, Any]:
        """One file of the store."""
        async with self.db.read() as session:
            return wire.vector_store_file(await self._file(session, principal, store_id, file_id))

    async def update_file(
        self, principal: Principal, store_id: str, file_id: str, body: VectorStoreFileUpdate
    ) -> dict[str, Any]:
        """Replace the attributes of a file in the store."""
        async with self.db.write() as session:
            row = await self._file(session, principal, store_id, file_id)
            row.attributes = body.attributes
            await session.flush()
        return wire.vector_store_file(row)

    async def remove_file(self, principal: Principal, store_id: str, file_id: str) -> dict[str, Any]:
        """Take a file out of a store (its chunks go; the file itself stays)."""
        async with self.db.write() as session:
            await self._file(session, principal, store_id, file_id)
            await VectorStoreFileRepository(session, principal.project_id).remove(store_id, file_id)
        return wire.deleted(file_id, "vector_store.file")

    async def file_content(self, principal: Principal, store_id: str, file_id: str) -> dict[str, Any]:
        """The file's text as the store parsed it."""
        async with self.db.read() as session:
            await self._file(session, principal, store_id, file_id)
            file = await FileRepository(session, principal.project_id).get(file_id)
        if file is None:
            raise NotFound.for_object("file", file_id)
        data = await self.blobs.read(principal.project_id, file_id)
        try:
            text = await asyncio.to_thread(extract_text, file.filename, data, self.max_characters)
        except (UnsupportedFile, InvalidFile) as exc:
            raise InvalidRequest(f"The file's content cannot be read: {exc}", code="invalid_file") from exc
        return wire.file_content_page(text)

    # file batches

    async def _batch(
        self, session: AsyncSession, principal: Principal, store_id: str, batch_id: str
    ) -> tables.VectorStoreFileBatch:
        row = await FileBatchRepository(session, principal.project_id).get(batch_id, vector_store_id=store_id)
        if row is None:
            raise NotFound.for_object("file batch", batch_id)
        return row

    async def _describe_batch(
        self, session: AsyncSession, principal: Principal, row: tables.VectorStoreFileBatch
    ) -> dict[str, Any]:
        counts = await VectorStoreFileRepository(session, principal.project_id).counts(row.vector_store_id, row.id)
        return wire.file_batch(row, counts)

    async def create_batch(
        self, principal: Principal, store_id: str, body: FileBatchCreate, idempotency_key: Idempotency | None = None
    ) -> dict[str, Any]:
        """Queue several files into the store as one batch."""
        async with self.db.write() as session:
            await require_store(session, principal.project_id, store_id)
            batches = FileBatchRepository(session, principal.project_id)
            if (earlier := await replayed(session, idempotency_key, batches)) is not None:
                return await self._describe_batch(session, principal, earlier)
            row = await batches.add(
                tables.VectorStoreFileBatch(
                    id=new_id("vector_store_file_batch"), vector_store_id=store_id, created_at=now()
                )
            )
            await add_files(session, principal.project_id, store_id, body.entries(), batch_id=row.id)
            await remember(session, idempotency_key, principal.project_id, row)
            result = await self._describe_batch(session, principal, row)
        self.wake()
        return result

    async def retrieve_batch(self, principal: Principal, store_id: str, batch_id: str) -> dict[str, Any]:
        """One batch of the store, with the counts of its files."""
        async with self.db.read() as session:
            await require_store(session, principal.project_id, store_id)
            return await self._describe_batch(
                session, principal, await self._batch(session, principal, store_id, batch_id)
            )

    async def cancel_batch(self, principal: Principal, store_id: str, batch_id: str) -> dict[str, Any]:
        """Cancel the batch's files not yet ingested; those done stay. A finished batch cannot be cancelled."""
        async with self.db.write() as session:
            await require_store(session, principal.project_id, store_id)
            row = await self._batch(session, principal, store_id, batch_id)
            counts = await VectorStoreFileRepository(session, principal.project_id).counts(store_id, batch_id)
            if not counts[FileStatus.IN_PROGRESS] and row.cancelled_at is None:
                raise InvalidRequest("This file batch has already finished; it cannot be cancelled.")
            row.cancelled_at = row.cancelled_at or now()
            await VectorStoreFileRepository(session, principal.project_id).cancel_batch(store_id, batch_id)
            await session.flush()
            return await self._describe_batch(session, principal, row)
