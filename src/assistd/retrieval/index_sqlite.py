"""Full-text search over chunks with SQLite FTS5 (BM25), the embedded store's text index.

The `chunks_fts` table is an external-content index of `chunks.text` kept in step by triggers (migration
0003). A query becomes an OR of its words, so any shared word can match and BM25 ranks the matches.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

MAX_QUERY_TERMS = 64
_WORD = re.compile(r"\w+", re.UNICODE)
# words too common to rank by; BM25 would weigh them little anyway, but they make the match set huge
_STOPWORD_TEXT = """
a an and are as at be but by can could did do does for from had has have how i if in into is it its me my no not
of on or our so than that the their them then there these they this to was we were what when where which who why
will with would you your
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def match_expression(query: str) -> str | None:
    """An FTS5 MATCH expression for a free-text query (each word quoted, joined by OR), or None if it has no words."""
    words: list[str] = []
    for word in _WORD.findall(query.lower()):
        if word not in STOPWORDS and word not in words:
            words.append(word)
    if not words:
        words = list(dict.fromkeys(_WORD.findall(query.lower())))
    if not words:
        return None
    return " OR ".join(f'"{word}"' for word in words[:MAX_QUERY_TERMS])


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
