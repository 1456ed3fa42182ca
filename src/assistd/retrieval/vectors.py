"""An in-process vector index: each vector store's chunk embeddings as one matrix, searched by cosine.

Brute force over unit vectors (one matrix product) is exact and fast to a few hundred thousand chunks on CPU
(see PLATFORM.md). A chunk longer than the embedding model's input has one vector per window; its score is
its best window's. Matrices are loaded from the store on first use and kept, and reloaded when the vector
store's `index_version` moves (chunks were added or removed, by this process or another).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from assistd.store import tables
from assistd.store.database import Database

MAX_CACHED_STORES = 64


@dataclass(frozen=True)
class _StoreMatrix:
    version: int
    vectors: np.ndarray  # (windows, dimensions) float32, unit length
    starts: np.ndarray  # first window of each chunk
    chunk_ids: np.ndarray  # (chunks,) int64
    file_ids: np.ndarray  # (chunks,) object


def encode(vectors: Sequence[Sequence[float]]) -> bytes:
    """A chunk's window vectors as stored in `chunks.embedding`."""
    return np.asarray(vectors, dtype=np.float32).tobytes()


class VectorIndex:
    def __init__(self, db: Database, dimensions: int) -> None:
        self.db = db
        self.dimensions = dimensions
        self._stores: OrderedDict[str, _StoreMatrix] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def search(
        self,
        stores: Sequence[tuple[str, int]],
        query_vector: Sequence[float],
        file_ids: Collection[str] | None,
        limit: int,
    ) -> list[tuple[int, float]]:
        """[(chunk id, cosine)] best first over the given (vector store id, index version) pairs."""
        query = np.asarray(query_vector, dtype=np.float32)
        found: list[tuple[int, float]] = []
        for store_id, version in stores:
            matrix = await self._matrix(store_id, version)
            if not len(matrix.chunk_ids):
                continue
            scores = np.maximum.reduceat(matrix.vectors @ query, matrix.starts)
            if file_ids is not None:
                scores = np.where(np.isin(matrix.file_ids, list(file_ids)), scores, -np.inf)
            take = min(limit, len(scores))
            best = np.argpartition(-scores, take - 1)[:take]
            found.extend((int(matrix.chunk_ids[i]), float(scores[i])) for i in best if np.isfinite(scores[i]))
        found.sort(key=lambda item: -item[1])
        return found[:limit]

    async def _matrix(self, store_id: str, version: int) -> _StoreMatrix:
        cached = self._stores.get(store_id)
        if cached is not None and cached.version == version:
            self._stores.move_to_end(store_id)
            return cached
        async with self._locks.setdefault(store_id, asyncio.Lock()):
            cached = self._stores.get(store_id)
            if cached is None or cached.version != version:
                cached = await self._load(store_id, version)
                self._stores[store_id] = cached
                while len(self._stores) > MAX_CACHED_STORES:
                    evicted, _ = self._stores.popitem(last=False)
                    self._locks.pop(evicted, None)
            self._stores.move_to_end(store_id)
            return cached

    async def _load(self, store_id: str, version: int) -> _StoreMatrix:
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    select(tables.Chunk.id, tables.Chunk.file_id, tables.Chunk.embedding)
                    .where(tables.Chunk.vector_store_id == store_id)
                    .order_by(tables.Chunk.id)
                )
            ).all()
        return await asyncio.to_thread(self._build, rows, version)

    def _build(self, rows: Sequence[tuple[int, str, bytes]], version: int) -> _StoreMatrix:
        width = self.dimensions * 4
        counts = np.fromiter((len(row[2]) // width for row in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(row[2] for row in rows), dtype=np.float32).reshape(-1, self.dimensions)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])) if len(rows) else np.zeros(0, dtype=np.int64)
        return _StoreMatrix(
            version=version,
            vectors=vectors,
            starts=starts.astype(np.int64),
            chunk_ids=np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)),
            file_ids=np.array([row[1] for row in rows], dtype=object),
        )
