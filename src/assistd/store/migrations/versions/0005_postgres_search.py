"""PostgreSQL search: a tsvector of chunks.text, and pgvector windows where the server has pgvector

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 01:10:00.000000

Nothing on SQLite (FTS5 from 0003 and the in-process vector index serve there). The tsvector is built from the
text with punctuation turned into spaces, so that it splits words as the query side does (retrieval/words.py:
"support.example.com" is three words, not one host name). `chunk_windows` holds one row per embedding window,
of any dimension (the embedding model is configurable), with the chunk's store and file so that filters on them
need no join (the planner then picks between the HNSW index and an exact scan of a small selection); its HNSW
index is made per dimension by retrieval/index_pg.py at start-up. Chunks written before this migration get no
windows.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TEXT_SEARCH = (
    "ALTER TABLE chunks ADD COLUMN text_search tsvector GENERATED ALWAYS AS "
    "(to_tsvector('simple', regexp_replace(text, '[[:punct:]]+', ' ', 'g'))) STORED",
    "CREATE INDEX ix_chunks_text_search ON chunks USING gin (text_search)",
)
WINDOWS = (
    "CREATE TABLE chunk_windows ("
    "chunk_id integer NOT NULL REFERENCES chunks (id) ON DELETE CASCADE, "
    "position integer NOT NULL, "
    "vector_store_id varchar(64) NOT NULL, "
    "file_id varchar(64) NOT NULL, "
    "embedding vector NOT NULL, "
    "PRIMARY KEY (chunk_id, position))",
    "CREATE INDEX ix_chunk_windows_vector_store_id_file_id ON chunk_windows (vector_store_id, file_id)",
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for statement in TEXT_SEARCH:
        op.execute(statement)
    if bind.scalar(sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")) and _vector(bind):
        for statement in WINDOWS:
            op.execute(statement)


def _vector(bind) -> bool:
    """Create the vector extension if needed; False when this role may not (vectors then stay in-process)."""
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError as exc:
        logging.getLogger(__name__).warning("pgvector not enabled (%s); vector search stays in-process", exc.orig)
        return False
    return True


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TABLE IF EXISTS chunk_windows")
    op.execute("DROP INDEX IF EXISTS ix_chunks_text_search")
    op.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS text_search")
