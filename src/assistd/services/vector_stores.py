"""Vector stores, their files and file batches, and search.

Adding a file to a store only records it as `in_progress`; a worker ingests it in the background (see
runtime/ingestion.py). A store's file counts, size and status are computed from its files when read, so
they cannot drift from them.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistd.errors import InvalidRequest, NotFound
from assistd.ids import new_id
from assistd.lifecycle import FileStatus
from assistd.retrieval.parsing import MAX_TEXT_CHARS, InvalidFile, UnsupportedFile, extract_text
from assistd.retrieval.search import Hit, Retriever, Weights
from assistd.schemas.common import ToolResources
from assistd.schemas.vector_stores import (
    ChunkingStrategy,
    FileBatchCreate,
    Filter,
    VectorStoreCreate,
    VectorStoreExpiresAfter,
    VectorStoreFileCreate,
    VectorStoreFileUpdate,
    VectorStoreSearch,
    VectorStoreUpdate,
    resolve_chunking,
)
from assistd.protocol import wire
from assistd.clock import now
from assistd.services.idempotency import Idempotency, remember, replayed
from assistd.services.principal import Principal
from assistd.services.serialize import to_stored
from assistd.store import tables
from assistd.store.blobs import BlobStore
from assistd.store.database import Database
from assistd.store.pagination import Page, PageRequest
from assistd.store.repositories import (
    FileBatchRepository,
    FileRepository,
    VectorStoreFileRepository,
    VectorStoreRepository,
)


async def describe_store(session: AsyncSession, project_id: str, row: tables.VectorStore) -> dict[str, Any]:
    files = VectorStoreFileRepository(session, project_id)
    return wire.vector_store(row, await files.counts(row.id), await files.usage_bytes(row.id), now())


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


class VectorStoreService:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        retriever: Retriever,
        wake: Callable[[], None],
        max_characters: int = MAX_TEXT_CHARS,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.retriever = retriever
        self.wake = wake
        self.max_characters = max_characters  # of a file's text, as ingestion reads it

    async def _store(self, session: AsyncSession, principal: Principal, store_id: str) -> tables.VectorStore:
        row = await VectorStoreRepository(session, principal.project_id).get(store_id)
        if row is None:
            raise NotFound.for_object("vector store", store_id)
        return row

    # stores

    async def create(
        self, principal: Principal, body: VectorStoreCreate, idempotency_key: Idempotency | None = None
    ) -> dict[str, Any]:
        async with self.db.write() as session:
            stores = VectorStoreRepository(session, principal.project_id)
            if (earlier := await replayed(session, idempotency_key, stores)) is not None:
                return await describe_store(session, principal.project_id, earlier)
            row = await create_store(
                session,
                principal.project_id,
                name=body.name,
                description=body.description,
                file_ids=body.file_ids,
                chunking_strategy=body.chunking_strategy,
                expires_after=body.expires_after,
                metadata=body.metadata,
            )
            await remember(session, idempotency_key, principal.project_id, row)
            result = await describe_store(session, principal.project_id, row)
        self.wake()
        return result

    async def list(self, principal: Principal, request: PageRequest) -> Page[dict[str, Any]]:
        async with self.db.read() as session:
            page = await VectorStoreRepository(session, principal.project_id).page(request)
            items = [await describe_store(session, principal.project_id, row) for row in page.items]
        return Page(items, page.has_more)

    async def retrieve(self, principal: Principal, store_id: str) -> dict[str, Any]:
        async with self.db.read() as session:
            return await describe_store(session, principal.project_id, await self._store(session, principal, store_id))

    async def modify(self, principal: Principal, store_id: str, body: VectorStoreUpdate) -> dict[str, Any]:
        changes = body.model_dump(exclude_unset=True)
        async with self.db.write() as session:
            row = await self._store(session, principal, store_id)
            if "name" in changes:
                row.name = body.name or ""
            if "expires_after" in changes:
                row.expires_after = body.expires_after.model_dump() if body.expires_after else None
            if "metadata" in changes:
                row.metadata_ = body.metadata or {}
            await session.flush()
            return await describe_store(session, principal.project_id, row)

    async def delete(self, principal: Principal, store_id: str) -> dict[str, Any]:
        """Delete a store with its chunks; its files stay (they may serve other stores)."""
        async with self.db.write() as session:
            if not await VectorStoreRepository(session, principal.project_id).delete(store_id):
                raise NotFound.for_object("vector store", store_id)
        return wire.deleted(store_id, "vector_store")

    async def search(self, principal: Principal, store_id: str, body: VectorStoreSearch) -> dict[str, Any]:
        queries = [body.query] if isinstance(body.query, str) else body.query
        options = body.ranking_options
        weights = Weights()
        if options is not None and options.hybrid_search is not None:
            weights = Weights(options.hybrid_search.embedding_weight, options.hybrid_search.text_weight)
        hits = await self.find(
            principal,
            [store_id],
            "\n".join(queries),
            max_results=body.max_num_results,
            filters=body.filters,
            score_threshold=(options.score_threshold or 0.0) if options else 0.0,
            weights=weights,
        )
        return {
            "object": "vector_store.search_results.page",
            "search_query": queries,
            "data": [wire.search_result(hit) for hit in hits],
            "has_more": False,
            "next_page": None,
        }

    async def find(
        self,
        principal: Principal,
        store_ids: Sequence[str],
        query: str,
        *,
        max_results: int,
        filters: Filter | None = None,
        score_threshold: float = 0.0,
        weights: Weights = Weights(),
    ) -> builtins.list[Hit]:
        """Search the caller's stores (404 for one not theirs, 400 for an expired one); marks them active."""
        moment = now()
        async with self.db.write() as session:
            stores = []
            for store_id in store_ids:
                row = await self._store(session, principal, store_id)
                expires_at = wire.vector_store_expires_at(row)
                if expires_at is not None and expires_at <= moment:
                    raise InvalidRequest(f"Vector store '{store_id}' has expired.", code="vector_store_expired")
                stores.append(row)
            await VectorStoreRepository(session, principal.project_id).touch(store_ids, moment)
        return await self.retriever.search(
            principal.project_id,
            stores,
            query,
            max_results=max_results,
            filters=filters,
            score_threshold=score_threshold,
            weights=weights,
        )

    # files of a store

    async def add_file(self, principal: Principal, store_id: str, body: VectorStoreFileCreate) -> dict[str, Any]:
        async with self.db.write() as session:
            await self._store(session, principal, store_id)
            (row,) = await add_files(session, principal.project_id, store_id, [body])
        self.wake()
        return wire.vector_store_file(row)

    async def list_files(
        self, principal: Principal, store_id: str, request: PageRequest, status: str | None, batch_id: str | None = None
    ) -> Page[dict[str, Any]]:
        conditions = [tables.VectorStoreFile.vector_store_id == store_id]
        if status is not None:
            conditions.append(tables.VectorStoreFile.status == status)
        async with self.db.read() as session:
            await self._store(session, principal, store_id)
            if batch_id is not None:
                await self._batch(session, principal, store_id, batch_id)
                conditions.append(tables.VectorStoreFile.batch_id == batch_id)
            page = await VectorStoreFileRepository(session, principal.project_id).page(request, *conditions)
        return Page([wire.vector_store_file(row) for row in page.items], page.has_more)

    async def _file(self, session: AsyncSession, principal: Principal, store_id: str, file_id: str):
        await self._store(session, principal, store_id)
        row = await VectorStoreFileRepository(session, principal.project_id).get_in(store_id, file_id)
        if row is None:
            raise NotFound(f"No file with id '{file_id}' in vector store '{store_id}'.")
        return row

    async def retrieve_file(self, principal: Principal, store_id: str, file_id: str) -> dict[str, Any]:
        async with self.db.read() as session:
            return wire.vector_store_file(await self._file(session, principal, store_id, file_id))

    async def update_file(
        self, principal: Principal, store_id: str, file_id: str, body: VectorStoreFileUpdate
    ) -> dict[str, Any]:
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
        return {
            "object": "vector_store.file_content.page",
            "data": [{"type": "text", "text": text}],
            "has_more": False,
            "next_page": None,
        }

    # file batches

    async def _batch(
        self, session: AsyncSession, principal: Principal, store_id: str, batch_id: str
    ) -> tables.VectorStoreFileBatch:
        row = await FileBatchRepository(session, principal.project_id).get(
            batch_id, tables.VectorStoreFileBatch.vector_store_id == store_id
        )
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
        async with self.db.write() as session:
            await self._store(session, principal, store_id)
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
        async with self.db.read() as session:
            await self._store(session, principal, store_id)
            return await self._describe_batch(
                session, principal, await self._batch(session, principal, store_id, batch_id)
            )

    async def cancel_batch(self, principal: Principal, store_id: str, batch_id: str) -> dict[str, Any]:
        """Cancel the batch's files not yet ingested; those done stay. A finished batch cannot be cancelled."""
        async with self.db.write() as session:
            await self._store(session, principal, store_id)
            row = await self._batch(session, principal, store_id, batch_id)
            counts = await VectorStoreFileRepository(session, principal.project_id).counts(store_id, batch_id)
            if not counts[FileStatus.IN_PROGRESS] and row.cancelled_at is None:
                raise InvalidRequest("This file batch has already finished; it cannot be cancelled.")
            row.cancelled_at = row.cancelled_at or now()
            await VectorStoreFileRepository(session, principal.project_id).cancel_batch(store_id, batch_id)
            await session.flush()
            return await self._describe_batch(session, principal, row)


THREAD_STORE_EXPIRY = VectorStoreExpiresAfter(anchor="last_active_at", days=7)


async def resolve_tool_resources(
    session: AsyncSession, project_id: str, resources: ToolResources | None
) -> dict[str, Any] | None:
    """tool_resources as stored: a `file_search.vector_stores` entry becomes a new store, kept by its id; the
    stores and code_interpreter files named must be the project's (404 otherwise)."""
    if resources is not None and resources.code_interpreter is not None:
        await require_files(session, project_id, resources.code_interpreter.file_ids)
    stored = to_stored(resources)
    search = (stored or {}).get("file_search")
    if resources is None or resources.file_search is None or search is None:
        return stored
    search.pop("vector_stores", None)
    named = resources.file_search.vector_store_ids
    found = {store.id for store in await VectorStoreRepository(session, project_id).get_many(named)}
    for store_id in named:
        if store_id not in found:
            raise NotFound.for_object("vector store", store_id)
    for spec in resources.file_search.vector_stores:
        store = await create_store(
            session,
            project_id,
            file_ids=spec.file_ids,
            chunking_strategy=spec.chunking_strategy,
            metadata=spec.metadata,
        )
        search["vector_store_ids"] = [*search.get("vector_store_ids", []), store.id]
    return stored


async def index_attachments(
    session: AsyncSession, project_id: str, thread: tables.Thread, messages: Sequence[tables.Message]
) -> bool:
    """Files attached to messages for file_search go into the thread's vector store, made on first use (expiring
    7 days after its last use, as OpenAI's do). Every file a message names (attachments, image_file parts) must be
    the project's (404 otherwise). True when files were queued for ingestion."""
    named_files = [attachment["file_id"] for message in messages for attachment in message.attachments or []]
    named_files += [
        block["image_file"]["file_id"]
        for message in messages
        for block in message.content or []
        if block.get("type") == "image_file"
    ]
    await require_files(session, project_id, named_files)
    file_ids = [
        attachment["file_id"]
        for message in messages
        for attachment in message.attachments or []
        if any(tool.get("type") == "file_search" for tool in attachment.get("tools") or [])
    ]
    if not file_ids:
        return False
    resources = dict(thread.tool_resources or {})
    named = (resources.get("file_search") or {}).get("vector_store_ids") or []
    existing = [store.id for store in await VectorStoreRepository(session, project_id).get_many(named)]
    if existing:
        await add_files(session, project_id, existing[0], [VectorStoreFileCreate(file_id=f) for f in file_ids])
    else:
        store = await create_store(
            session, project_id, name=f"Files of {thread.id}", file_ids=file_ids, expires_after=THREAD_STORE_EXPIRY
        )
        resources["file_search"] = {**(resources.get("file_search") or {}), "vector_store_ids": [store.id]}
        thread.tool_resources = resources
    return True
