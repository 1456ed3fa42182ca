"""The vector store API: stores (create, list, retrieve, modify, delete) and search; their files and file
batches come from services/vector_store_files.py."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any

from assistd.clock import now
from assistd.errors import InvalidRequest, NotFound
from assistd.protocol import wire
from assistd.retrieval.parsing import MAX_TEXT_CHARS
from assistd.retrieval.search import Hit, Retriever, Weights
from assistd.schemas.vector_stores import Filter, VectorStoreCreate, VectorStoreSearch, VectorStoreUpdate
from assistd.services.idempotency import Idempotency, remember, replayed
from assistd.services.principal import Principal
from assistd.services.vector_store_files import VectorStoreFileService
from assistd.services.vector_stores import create_store, describe_store, require_store
from assistd.store.blobs import BlobStore
from assistd.store.database import Database
from assistd.store.pagination import Page, PageRequest
from assistd.store.repositories import VectorStoreRepository


class VectorStoreService(VectorStoreFileService):
    """The caller's vector stores, searched with `retriever`; their files and batches as VectorStoreFileService."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        retriever: Retriever,
        wake: Callable[[], None],
        max_characters: int = MAX_TEXT_CHARS,
    ) -> None:
        super().__init__(db, blobs, wake, max_characters)
        self.retriever = retriever

    async def create(
        self, principal: Principal, body: VectorStoreCreate, idempotency_key: Idempotency | None = None
    ) -> dict[str, Any]:
        """A new store with its files queued for ingestion."""
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
        """A page of the caller's stores."""
        async with self.db.read() as session:
            page = await VectorStoreRepository(session, principal.project_id).page(request)
            items = [await describe_store(session, principal.project_id, row) for row in page.items]
        return Page(items, page.has_more)

    async def retrieve(self, principal: Principal, store_id: str) -> dict[str, Any]:
        """One of the caller's stores."""
        async with self.db.read() as session:
            row = await require_store(session, principal.project_id, store_id)
            return await describe_store(session, principal.project_id, row)

    async def modify(self, principal: Principal, store_id: str, body: VectorStoreUpdate) -> dict[str, Any]:
        """Change a store's name, expiry or metadata (those the body sets)."""
        changes = body.model_dump(exclude_unset=True)
        async with self.db.write() as session:
            row = await require_store(session, principal.project_id, store_id)
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
        """The store's passages that best answer the query, as OpenAI's search results page."""
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
        return wire.search_results_page(queries, hits)

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
                row = await require_store(session, principal.project_id, store_id)
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
