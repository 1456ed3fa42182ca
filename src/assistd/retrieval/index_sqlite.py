"""Full-text search over chunks with SQLite FTS5 (BM25), the embedded store's text index.

The `chunks_fts` table is an external-content index of `chunks.text` kept in step by triggers (migration
0003). A query becomes an OR of its words, so any shared word can match and BM25 ranks the matches.

FTS5 ranks every row that matches, so an OR of common words costs time in proportion to the index (about
150 ms at 100,000 chunks). Before searching, the index is asked how many chunks hold each word (cheap), and
the commonest words are left out until the rest match at most MAX_POSTINGS rows; the rarest word always
stays. Common words weigh little in BM25 anyway; a small index keeps every word.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import BindParameter, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from assistd.retrieval.words import content_words, words

MAX_QUERY_TERMS = 64
MAX_POSTINGS = 20_000


def query_terms(query: str) -> list[str]:
    """The words of a free-text query to search for: its content words, or all its words if it has none."""
    return (content_words(query) or list(dict.fromkeys(words(query))))[:MAX_QUERY_TERMS]


def match_expression(query: str, terms: Sequence[str] | None = None) -> str | None:
    """An FTS5 MATCH expression for a free-text query (each word quoted, joined by OR), or None if it has no words."""
    terms = query_terms(query) if terms is None else terms
    if not terms:
        return None
    return " OR ".join(f'"{term}"' for term in terms)


def affordable_terms(terms: Sequence[str], postings: Sequence[int], budget: int = MAX_POSTINGS) -> list[str]:
    """The rarest terms whose matches add up to at most `budget` (always at least the rarest), in query order."""
    kept: set[str] = set()
    total = 0
    for count, term in sorted(zip(postings, terms, strict=True)):
        if kept and total + count > budget:
            break
        kept.add(term)
        total += count
    return [term for term in terms if term in kept]


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
        terms = query_terms(query)
        if not terms or not vector_store_ids or (file_ids is not None and not file_ids):
            return []
        if len(terms) > 1:
            terms = affordable_terms(terms, await self._postings(session, terms))
        expression = match_expression(query, terms)
        sql = (
            "SELECT c.id FROM chunks_fts JOIN chunks AS c ON c.id = chunks_fts.rowid "
            "WHERE chunks_fts MATCH :expression AND c.vector_store_id IN :stores"
        )
        params: dict[str, object] = {"expression": expression, "stores": list(vector_store_ids), "limit": limit}
        binds: list[BindParameter[object]] = [bindparam("stores", expanding=True)]
        if file_ids is not None:
            sql += " AND c.file_id IN :files"
            params["files"] = list(file_ids)
            binds.append(bindparam("files", expanding=True))
        statement = text(sql + " ORDER BY chunks_fts.rank LIMIT :limit").bindparams(*binds)
        return list((await session.scalars(statement, params)).all())

    async def _postings(self, session: AsyncSession, terms: Sequence[str]) -> list[int]:
        """How many chunks (of every store) hold each term."""
        counts = " UNION ALL ".join(
            f"SELECT {i}, count(*) FROM chunks_fts WHERE chunks_fts MATCH :t{i}" for i in range(len(terms))
        )
        rows = (await session.execute(text(counts), {f"t{i}": f'"{term}"' for i, term in enumerate(terms)})).all()
        found: dict[int, int] = dict(rows)
        return [found.get(i, 0) for i in range(len(terms))]
