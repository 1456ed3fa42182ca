"""Full-text search over chunks with SQLite FTS5 (BM25), the embedded store's text index.

The `chunks_fts` table is an external-content index of `chunks.text` kept in step by triggers (migration
0003). A query becomes an OR of its words, so any shared word can match and BM25 ranks the matches.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.retrieval.words import content_words, words

MAX_QUERY_TERMS = 64


def match_expression(query: str) -> str | None:
    """An FTS5 MATCH expression for a free-text query (each word quoted, joined by OR), or None if it has no words."""
    terms = content_words(query) or list(dict.fromkeys(words(query)))
    if not terms:
        return None
    return " OR ".join(f'"{term}"' for term in terms[:MAX_QUERY_TERMS])


class SqliteTextIndex:
    """BM25 ranking of a query's matches among the chunks of some vector stores (optionally some files only)."""

    async def search(
        self,
        session: AsyncSession,
        vector_store_ids: Sequence[str],
        query: str,
        file_ids: Collection[str] | None,
        limit: int,
    ) -> list[int]:
        expression = match_expression(query)
        if expression is None or not vector_store_ids or (file_ids is not None and not file_ids):
            return []
        sql = (
            "SELECT c.id FROM chunks_fts JOIN chunks AS c ON c.id = chunks_fts.rowid "
            "WHERE chunks_fts MATCH :expression AND c.vector_store_id IN :stores"
        )
        params: dict[str, object] = {"expression": expression, "stores": list(vector_store_ids), "limit": limit}
        binds = [bindparam("stores", expanding=True)]
        if file_ids is not None:
            sql += " AND c.file_id IN :files"
            params["files"] = list(file_ids)
            binds.append(bindparam("files", expanding=True))
        statement = text(sql + " ORDER BY chunks_fts.rank LIMIT :limit").bindparams(*binds)
        return list((await session.scalars(statement, params)).all())
