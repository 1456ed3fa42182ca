"""Hybrid search over vector stores: full-text and vector (cosine) candidates fused by rank.

SQLite: FTS5 (BM25) and the in-process vector index; PostgreSQL: tsvector and pgvector (index_pg.py).

Callers pass vector stores they have already looked up in the caller's project (so tenancy is settled); the
indexes then only need store ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from assistd.engines.base import EmbeddingEngine
from assistd.lifecycle import FileStatus
from assistd.retrieval import ranking
from assistd.retrieval.filters import matches
from assistd.retrieval.index_pg import PgTextIndex, PgVectorIndex
from assistd.retrieval.index_sqlite import SqliteTextIndex
from assistd.retrieval.vectors import VectorIndex
from assistd.schemas.vector_stores import Filter
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.repositories import ChunkRepository

MIN_CANDIDATES = 50
# Below this cosine a chunk is not a vector candidate at all: off-topic questions score up to ~0.24 against the
# benchmark corpus, while 95% of answer passages score above 0.28 (all-MiniLM-L6-v2). A question about nothing in
# the store then finds nothing, rather than the least unrelated passages.
MIN_SIMILARITY = 0.2


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    vector_store_id: str
    file_id: str
    filename: str
    text: str
    score: float
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Weights:
    """How much each ranking counts in the fusion; a weight of 0 leaves that ranking out."""

    embedding: float = 1.0
    text: float = 0.5


def indexes(db: Database, dimensions: int) -> tuple[SqliteTextIndex | PgTextIndex, VectorIndex | PgVectorIndex]:
    """The full-text and vector indexes of the store's backend."""
    if db.is_sqlite:
        return SqliteTextIndex(), VectorIndex(db, dimensions)
    return PgTextIndex(), PgVectorIndex(db, dimensions)


class Retriever:
    def __init__(self, db: Database, embedder: EmbeddingEngine) -> None:
        self.db = db
        self.embedder = embedder
        self.text_index, self.vector_index = indexes(db, embedder.dimensions)

    async def search(
        self,
        project_id: str,
        stores: Sequence[tables.VectorStore],
        query: str,
        *,
        max_results: int,
        filters: Filter | None = None,
        score_threshold: float = 0.0,
        weights: Weights = Weights(),
    ) -> list[Hit]:
        """The best `max_results` chunks for `query` among `stores`, best first, scored in [0, 1]."""
        if not stores or not query.strip():
            return []
        store_ids = [store.id for store in stores]
        candidates = max(MIN_CANDIDATES, 4 * max_results)
        async with self.db.read() as session:
            files = (
                await session.execute(
                    select(tables.VectorStoreFile.id, tables.VectorStoreFile.attributes, tables.File.filename)
                    .join(tables.File, tables.File.id == tables.VectorStoreFile.id)
                    .where(
                        tables.VectorStoreFile.project_id == project_id,
                        tables.VectorStoreFile.vector_store_id.in_(store_ids),
                        tables.VectorStoreFile.status == FileStatus.COMPLETED,
                    )
                )
            ).all()
            attributes = {file_id: attrs or {} for file_id, attrs, _ in files}
            filenames = {file_id: filename for file_id, _, filename in files}
            allowed = None if filters is None else {f for f, attrs in attributes.items() if matches(filters, attrs)}
            text_ranked = (
                await self.text_index.search(session, store_ids, query, allowed, candidates) if weights.text else []
            )
        vector_ranked: list[int] = []
        if weights.embedding:
            query_vector = (await self.embedder.embed([query])).vectors[0]
            found = await self.vector_index.search(
                [(store.id, store.index_version) for store in stores], query_vector, allowed, candidates
            )
            vector_ranked = [chunk_id for chunk_id, cosine in found if cosine >= MIN_SIMILARITY]
        fused = ranking.fuse([(text_ranked, weights.text), (vector_ranked, weights.embedding)])
        fused = [(chunk_id, score) for chunk_id, score in fused if score >= score_threshold][:max_results]
        async with self.db.read() as session:
            chunks = await ChunkRepository(session, project_id).by_ids(chunk_id for chunk_id, _ in fused)
        hits = []
        for chunk_id, score in fused:
            chunk = chunks.get(chunk_id)
            if chunk is None or chunk.file_id not in filenames:  # removed since the ranking was made
                continue
            hits.append(
                Hit(
                    chunk_id=chunk_id,
                    vector_store_id=chunk.vector_store_id,
                    file_id=chunk.file_id,
                    filename=filenames[chunk.file_id],
                    text=chunk.text,
                    score=round(score, 6),
                    attributes=attributes[chunk.file_id],
                )
            )
        return hits
