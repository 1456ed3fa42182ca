"""Vector stores and their files inside the caller's transaction: found, made, described, files queued.

Used by the vector store API (services/vector_store_service.py), by threads, messages and runs for their
tool_resources and attachments (services/tool_resources.py), and by the CLI's ingest. Adding a file to a store
only records it as `in_progress`; a worker ingests it in the background (see runtime/ingestion.py). A store's
file counts, size and status are computed from its files when read, so they cannot drift from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.clock import now
from assistd.errors import NotFound
from assistd.ids import new_id
from assistd.lifecycle import FileStatus
from assistd.protocol import wire
from assistd.schemas.vector_stores import (
    ChunkingStrategy,
    VectorStoreExpiresAfter,
    VectorStoreFileCreate,
    resolve_chunking,
)
from assistd.store import tables
from assistd.store.repositories import FileRepository, VectorStoreFileRepository, VectorStoreRepository


async def describe_store(session: AsyncSession, project_id: str, row: tables.VectorStore) -> dict[str, Any]:
    """The store as the API answers it, with its file counts and size."""
    files = VectorStoreFileRepository(session, project_id)
    return wire.vector_store(row, await files.counts(row.id), await files.usage_bytes(row.id), now())


async def require_store(session: AsyncSession, project_id: str, store_id: str) -> tables.VectorStore:
    """The project's store with this id (404 for a missing one, or another project's)."""
    row = await VectorStoreRepository(session, project_id).get(store_id)
    if row is None:
        raise NotFound.for_object("vector store", store_id)
    return row


async def require_files(session: AsyncSession, project_id: str, file_ids: Sequence[str]) -> None:
    """Every id must name a file of the project: another project's file is a 404, exactly like a missing one."""
    if not file_ids:
        return
    known = await FileRepository(session, project_id).get_many(file_ids)
    for file_id in file_ids:
        if file_id not in known:
            raise NotFound.for_object("file", file_id)


async def add_files(
    session: AsyncSession,
    project_id: str,
    store_id: str,
    entries: Sequence[VectorStoreFileCreate],
    batch_id: str | None = None,
) -> list[tables.VectorStoreFile]:
    """Queue files for ingestion into a store. Every file must exist in the project (else 404, nothing added);
    a file already in the store is queued again with the new settings."""
    await require_files(session, project_id, [entry.file_id for entry in entries])
    repository = VectorStoreFileRepository(session, project_id)
    rows = []
    for entry in entries:
        row = await repository.get_in(store_id, entry.file_id)
        fresh = row is None
        if row is None:
            row = tables.VectorStoreFile(vector_store_id=store_id, id=entry.file_id)
        row.created_at = now()
        row.status, row.last_error, row.usage_bytes = FileStatus.IN_PROGRESS, None, 0
        row.attributes = entry.attributes
        row.chunking_strategy = resolve_chunking(entry.chunking_strategy)
        row.batch_id = batch_id
        row.lease_owner, row.lease_expires_at, row.attempts = None, None, 0
        if fresh:
            await repository.add(row)
        rows.append(row)
    await session.flush()
    return rows


async def create_store(
    session: AsyncSession,
    project_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
    file_ids: Sequence[str] = (),
    chunking_strategy: ChunkingStrategy | None = None,
    expires_after: VectorStoreExpiresAfter | None = None,
    metadata: dict[str, str] | None = None,
) -> tables.VectorStore:
    """A new store in the caller's transaction, with its files queued (also used by threads and messages)."""
    moment = now()
    row = await VectorStoreRepository(session, project_id).add(
        tables.VectorStore(
            id=new_id("vector_store"),
            created_at=moment,
            name=name or "",
            description=description,
            metadata_=metadata or {},
            expires_after=expires_after.model_dump() if expires_after else None,
            last_active_at=moment,
            index_version=0,
        )
    )
    entries = [VectorStoreFileCreate(file_id=file_id, chunking_strategy=chunking_strategy) for file_id in file_ids]
    await add_files(session, project_id, row.id, entries)
    return row


async def find_or_create_store(session: AsyncSession, project_id: str, name_or_id: str) -> tables.VectorStore:
    """The project's vector store with this id or name (the newest of that name), made if there is none."""
    stores = VectorStoreRepository(session, project_id)
    found = await stores.get(name_or_id) or await stores.named(name_or_id)
    return found or await create_store(session, project_id, name=name_or_id)
