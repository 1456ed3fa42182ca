"""The `chunk_windows` table (PostgreSQL with pgvector 0.8 or later): one row per embedding window of a chunk,
written with the chunk; retrieval/index_pg.py searches it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.store import tables

PGVECTOR_READY = (
    "SELECT to_regclass('chunk_windows') IS NOT NULL AND coalesce("
    "(SELECT string_to_array(split_part(extversion, '-', 1), '.')::int[] >= '{0,8}' "
    "FROM pg_extension WHERE extname = 'vector'), false)"
)


def vector_literal(values: Sequence[float] | np.ndarray) -> str:
    """pgvector's text form of a vector."""
    return "[" + ",".join(map(str, np.asarray(values, dtype=np.float32).tolist())) + "]"


async def has_windows(session: AsyncSession) -> bool:
    """Whether this database keeps embedding windows in pgvector (PostgreSQL with pgvector 0.8 or later)."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    return bool(await session.scalar(text(PGVECTOR_READY)))


async def write_windows(session: AsyncSession, rows: Sequence[tables.Chunk], dimensions: int) -> None:
    """One `chunk_windows` row per window of each (flushed) chunk's embedding, where this database has them."""
    if not rows or not await has_windows(session):
        return
    params = [
        {
            "chunk": row.id,
            "position": i,
            "store": row.vector_store_id,
            "file": row.file_id,
            "embedding": vector_literal(window),
        }
        for row in rows
        for i, window in enumerate(np.frombuffer(row.embedding, dtype=np.float32).reshape(-1, dimensions))
    ]
    await session.execute(
        text(
            "INSERT INTO chunk_windows (chunk_id, position, vector_store_id, file_id, embedding) "
            "VALUES (:chunk, :position, :store, :file, CAST(:embedding AS vector))"
        ),
        params,
    )
