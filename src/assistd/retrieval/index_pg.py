"""Search on PostgreSQL: full text over `chunks.text_search` (tsvector, GIN) and vectors with pgvector (HNSW).

Migration 0005 makes both; `chunk_windows` only where the server has pgvector. Without it (or with pgvector
older than 0.8, which lacks iterative scans) vectors are searched by the in-process VectorIndex instead.

Full text leaves out a query's commonest words as on SQLite (index_sqlite.affordable_terms), counting a word's
chunks from the planner's statistics of the tsvector column (its most common elements), which costs nothing.
Ranking is ts_rank (normalised by log length): on bench/retrieval.py it beat ts_rank_cd, MRR@10 0.761 vs 0.647.

`chunk_windows` holds one row per embedding window, of any dimension. HNSW needs a fixed one, so the index is an
expression index over `embedding::vector(N)` for the rows of N dimensions, made at first use for the configured
model's N; the query repeats the expression and the predicate (as literals) so the planner can use it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence

from sqlalchemy import BindParameter, TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.retrieval.index_sqlite import affordable_terms, query_terms
from assistd.retrieval.vectors import VectorIndex
from assistd.store.chunk_windows import has_windows, vector_literal
from assistd.store.database import Database

log = logging.getLogger(__name__)

# Ranking a match reads its tsvector (from TOAST): 10-40 µs a chunk here, far more than FTS5, hence a smaller budget
# than SQLite's; stores with fewer chunks than that keep every word.
MAX_MATCHES = 5_000
# The planner does not count reading a chunk's tsvector (TOAST) to test it: a sequential scan reads every chunk's,
# the GIN index (or the store's) only those of its matches (of the store's chunks): 190 ms against 20 at 10,000 chunks.
NO_SEQUENTIAL_SCAN = "SELECT set_config('enable_seqscan', 'off', true)"
STORE_CHUNKS = "SELECT count(*) FROM (SELECT 1 FROM chunks WHERE vector_store_id IN :stores LIMIT :budget) AS s"
# The statistics' most common words with their share of chunks; after them comes the least share of the list (the
# row without a word), of which a word not in the list is taken to have half, as the planner does.
POSTINGS = (
    "WITH stats AS MATERIALIZED (SELECT most_common_elems::text::text[] AS lexemes, most_common_elem_freqs AS freqs "
    "FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'chunks' AND attname = 'text_search') "
    "SELECT e.lexeme, e.freq * greatest(cls.reltuples, 0) "
    "FROM stats, unnest(stats.lexemes, stats.freqs) WITH ORDINALITY AS e(lexeme, freq, i), pg_class AS cls "
    "WHERE cls.oid = 'chunks'::regclass AND (e.lexeme IN :terms OR e.i = cardinality(stats.lexemes) + 1)"
)

WINDOWS_PER_CHUNK = 4  # a default chunk (800 tokens) spans 4 windows; fetch that many per wanted chunk
# pgvector's maximum (default 40): over 300,000 windows it took no more time than 200 and raised recall@10
# against exact search from 0.62 to 0.77 (replicated benchmark vectors, a hard case)
EF_SEARCH = 1000
# per search: enough candidates from HNSW, more of them under a filter (iterative scans), and plans made for the
# actual stores and files (a generic plan does not know how many windows they hold)
SEARCH_SETTINGS = (
    "SELECT set_config('hnsw.ef_search', :ef, true), set_config('hnsw.iterative_scan', 'relaxed_order', true), "
    "set_config('plan_cache_mode', 'force_custom_plan', true)"
)
# A selection of fewer windows is searched exactly (a scan of the store/file index, every distance), which beats
# HNSW there: HNSW would walk past the rest of the table's windows to find enough of the selection's.
EXACT_WINDOWS = 10_000
# (counted on the store/file index alone: any dimension)
COUNT = "SELECT count(*) FROM (SELECT 1 FROM chunk_windows AS w WHERE {selection} LIMIT :exact) AS selected"
EXACT = (
    "SELECT w.chunk_id, 1 - min({distance}) AS cosine FROM chunk_windows AS w WHERE {dimensions} AND {selection} "
    "GROUP BY w.chunk_id ORDER BY cosine DESC, w.chunk_id LIMIT :limit"
)
# HNSW with relaxed order may return windows slightly out of order: they are ordered again outside
NEAREST = (
    "WITH nearest AS MATERIALIZED (SELECT w.chunk_id, {distance} AS distance FROM chunk_windows AS w "
    "WHERE {dimensions} AND {selection} ORDER BY {distance} LIMIT :windows) "
    "SELECT chunk_id, 1 - min(distance) AS cosine FROM nearest GROUP BY chunk_id ORDER BY cosine DESC, chunk_id "
    "LIMIT :limit"
)
HNSW_LOCK_ID = 0x68_6E_73_77  # advisory lock: processes starting together make the index one at a time


def tsquery(terms: Sequence[str]) -> str:
    """A `to_tsquery('simple', ...)` input: the words (of query_terms: letters and digits only), quoted, OR-ed."""
    return " | ".join(f"'{term}'" for term in terms)


class PgTextIndex:
    """Chunks matching any of the query's words, ranked by ts_rank (term frequency, divided by 1 + log length)."""

    async def search(
        self,
        session: AsyncSession,
        vector_store_ids: Sequence[str],
        query: str,
        file_ids: Collection[str] | None,
        limit: int,
    ) -> list[int]:
        terms = query_terms(query)
        if not terms or not vector_store_ids or (file_ids is not None and not file_ids):
            return []
        binds: list[BindParameter[object]] = [bindparam("stores", expanding=True)]
        params: dict[str, object] = {"stores": list(vector_store_ids), "limit": limit, "budget": MAX_MATCHES}
        if len(terms) > 1 and await session.scalar(text(STORE_CHUNKS).bindparams(*binds), params) >= MAX_MATCHES:
            terms = affordable_terms(terms, await self._postings(session, terms), MAX_MATCHES)
        params["expression"] = tsquery(terms)
        sql = (
            "SELECT c.id FROM chunks AS c, to_tsquery('simple', :expression) AS q "
            "WHERE c.text_search @@ q AND c.vector_store_id IN :stores"
        )
        if file_ids is not None:
            sql += " AND c.file_id IN :files"
            params["files"] = list(file_ids)
            binds.append(bindparam("files", expanding=True))
        sql += " ORDER BY ts_rank(c.text_search, q, 1) DESC, c.id LIMIT :limit"
        await session.execute(text(NO_SEQUENTIAL_SCAN))
        return list((await session.scalars(text(sql).bindparams(*binds), params)).all())

    async def _postings(self, session: AsyncSession, terms: Sequence[str]) -> list[int]:
        """About how many chunks (of every store) hold each term (all 0 before the table has statistics)."""
        rows = await session.execute(text(POSTINGS).bindparams(bindparam("terms", expanding=True)), {"terms": terms})
        found: dict[str | None, float] = dict(rows.all())
        rare = found.pop(None, 0) / 2
        return [int(found.get(term, rare)) for term in terms]


class PgVectorIndex:
    """Cosine search over `chunk_windows` with HNSW; a chunk scores as its best window. Falls back to the
    in-process VectorIndex where the database has no windows."""

    def __init__(self, db: Database, dimensions: int) -> None:
        self.db = db
        self.dimensions = dimensions
        self._fallback = VectorIndex(db, dimensions)
        self._native: bool | None = None  # known at first use
        self._lock = asyncio.Lock()

    async def search(
        self,
        stores: Sequence[tuple[str, int]],
        query_vector: Sequence[float],
        file_ids: Collection[str] | None,
        limit: int,
    ) -> list[tuple[int, float]]:
        """[(chunk id, cosine)] best first over the given (vector store id, index version) pairs."""
        if not await self._prepared():
            return await self._fallback.search(stores, query_vector, file_ids, limit)
        if not stores or (file_ids is not None and not file_ids):
            return []
        windows = WINDOWS_PER_CHUNK * limit
        params: dict[str, object] = {
            "query": vector_literal(query_vector),
            "stores": [store_id for store_id, _ in stores],
            "windows": windows,
            "limit": limit,
            "exact": EXACT_WINDOWS,
        }
        by_file = file_ids is not None
        if file_ids is not None:
            params["files"] = list(file_ids)
        async with self.db.read() as session:
            await session.execute(text(SEARCH_SETTINGS), {"ef": str(EF_SEARCH)})
            exact = await session.scalar(self.statement(COUNT, by_file), params) < EXACT_WINDOWS
            rows = (await session.execute(self.statement(EXACT if exact else NEAREST, by_file), params)).all()
            if not exact and len(rows) < limit:  # HNSW gave up (hnsw.max_scan_tuples) on a sparse selection
                rows = (await session.execute(self.statement(EXACT, by_file), params)).all()
        return [(chunk_id, float(score)) for chunk_id, score in rows]

    def statement(self, template: str, by_file: bool) -> TextClause:
        """`template` for this index's dimension, over the windows of `:stores` (and of `:files`)."""
        n = int(self.dimensions)
        sql = template.format(
            selection="w.vector_store_id IN :stores" + (" AND w.file_id IN :files" if by_file else ""),
            dimensions=f"vector_dims(w.embedding) = {n}",
            distance=f"w.embedding::vector({n}) <=> CAST(:query AS vector({n}))",
        )
        binds: list[BindParameter[object]] = [bindparam("stores", expanding=True)]
        if by_file:
            binds.append(bindparam("files", expanding=True))
        return text(sql).bindparams(*binds)

    async def _prepared(self) -> bool:
        """Whether pgvector serves the searches, making its HNSW index for this dimension on first use."""
        if self._native is None:
            async with self._lock:
                if self._native is None:
                    async with self.db.write() as session:
                        native = await has_windows(session)
                        if native:
                            await session.execute(text(f"SELECT pg_advisory_xact_lock({HNSW_LOCK_ID})"))
                            await session.execute(text(self.hnsw_index()))
                    if not native:
                        log.warning("no pgvector 0.8+ in this database: vectors are searched in process")
                    self._native = native
        return self._native

    def hnsw_index(self) -> str:
        """The HNSW index over the windows of this index's dimension (made if missing)."""
        n = int(self.dimensions)
        return (
            f"CREATE INDEX IF NOT EXISTS ix_chunk_windows_hnsw_{n} ON chunk_windows "
            f"USING hnsw ((embedding::vector({n})) vector_cosine_ops) WHERE vector_dims(embedding) = {n}"
        )
