"""Ingestion throughput and search latency at scale of a real assistd server, measured side by side in one run.

Starts `python -m assistd serve` on a free 127.0.0.1 port with a temporary data directory, measures, prints a
summary, and always stops the server and removes the directory.

1. Ingestion: the corpus of bench/corpus/docs is uploaded through the official SDK and added to a vector store
   in one file batch (`create_and_poll`, static chunks of 200 tokens with 100 overlap): chunks/s and MB/s of
   the server's background ingestion (parse, chunk, embed with the bundled model, index), timed from the batch's
   creation to its completion.
2. Search at scale: two servers side by side, one holding 10,000 chunks and the other 100,000, each in one
   vector store bulk-inserted straight into its SQLite file as ingestion stores them (text made of corpus
   sentences, random unit vectors; the full-text index fills through its triggers). Then
   `client.vector_stores.search` (hybrid, 10 results, one request in flight) with the corpus questions,
   alternating the two servers in random order; the first search of each (which loads the store's vectors
   into memory) is reported apart. Goal: p50(100,000) / p50(10,000) <= 2.

Usage: python bench/search_scale.py [--quick]   (--quick: 2,000 and 20,000 chunks, fewer searches)
Exit status 0 when the measurements completed, goals met or not; non-zero on any error.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
import warnings
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import openai
from _server import Server, exit_with, percentile, running_server, verdict
from sqlalchemy import create_engine, insert, select, update

from assistd.clock import now
from assistd.ids import new_id
from assistd.store import tables

CORPUS = Path(__file__).parent / "corpus"
DIMENSIONS = 384
FILES_PER_STORE = 100
INSERT_BATCH = 5_000


def corpus_sentences() -> list[str]:
    sentences: list[str] = []
    for path in sorted((CORPUS / "docs").iterdir()):
        text = path.read_text(errors="replace")
        sentences.extend(s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 5)
    return sentences


def questions() -> list[str]:
    lines = (CORPUS / "questions.jsonl").read_text().splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def measure_ingestion(client: openai.OpenAI, server: Server) -> dict[str, float]:
    paths = sorted((CORPUS / "docs").iterdir())
    file_ids = []
    for path in paths:
        with path.open("rb") as handle:
            file_ids.append(client.files.create(file=handle, purpose="assistants").id)
    store = client.vector_stores.create(name="ingestion")
    started = time.perf_counter()
    batch = client.vector_stores.file_batches.create_and_poll(
        store.id,
        file_ids=file_ids,
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 100}},
        poll_interval_ms=50,
    )
    elapsed = time.perf_counter() - started
    if batch.status != "completed" or batch.file_counts.completed != len(paths):
        raise RuntimeError(f"ingestion did not complete: {batch}")
    engine = create_engine(f"sqlite:///{server.database_path}")
    with engine.connect() as connection:
        chunks = len(connection.execute(select(tables.Chunk.id).where(tables.Chunk.vector_store_id == store.id)).all())
    engine.dispose()
    megabytes = sum(path.stat().st_size for path in paths) / 1e6
    return {"files": len(paths), "chunks": chunks, "seconds": elapsed, "megabytes": megabytes}


def fill_store(server: Server, client: openai.OpenAI, size: int, sentences: list[str], rng: random.Random) -> str:
    """A vector store of `size` chunks written straight into the database, as ingestion would write them."""
    store_id = client.vector_stores.create(name=f"scale-{size}").id
    engine = create_engine(f"sqlite:///{server.database_path}")
    vectors = np.random.default_rng(size).standard_normal((size, DIMENSIONS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with engine.begin() as connection:
        project_id = connection.execute(select(tables.Project.id)).scalar_one()
        created = now()
        file_ids = [new_id("file") for _ in range(FILES_PER_STORE)]
        connection.execute(
            insert(tables.File),
            [
                {
                    "id": f,
                    "project_id": project_id,
                    "created_at": created,
                    "filename": f"doc{i}.md",
                    "purpose": "assistants",
                    "bytes": 1,
                    "sha256": "0" * 64,
                    "expires_at": None,
                }
                for i, f in enumerate(file_ids)
            ],
        )
        connection.execute(
            insert(tables.VectorStoreFile),
            [
                {
                    "vector_store_id": store_id,
                    "id": f,
                    "project_id": project_id,
                    "created_at": created,
                    "status": "completed",
                    "last_error": None,
                    "usage_bytes": 0,
                    "attributes": None,
                    "chunking_strategy": {"type": "auto"},
                    "batch_id": None,
                    "lease_owner": None,
                    "lease_expires_at": None,
                    "attempts": 1,
                }
                for f in file_ids
            ],
        )
        for start in range(0, size, INSERT_BATCH):
            rows = []
            for i in range(start, min(start + INSERT_BATCH, size)):
                text = " ".join(rng.sample(sentences, 6))
                rows.append(
                    {
                        "project_id": project_id,
                        "vector_store_id": store_id,
                        "file_id": file_ids[i % FILES_PER_STORE],
                        "position": i,
                        "text": text,
                        "tokens": len(text.split()),
                        "embedding": vectors[i].tobytes(),
                    }
                )
            connection.execute(insert(tables.Chunk), rows)
        connection.execute(update(tables.VectorStore).where(tables.VectorStore.id == store_id).values(index_version=1))
    engine.dispose()
    return store_id


def timed_search(client: openai.OpenAI, store_id: str, query: str) -> float:
    started = time.perf_counter()
    results = client.vector_stores.search(store_id, query=query, max_num_results=10).data
    elapsed = (time.perf_counter() - started) * 1000
    if not results:
        raise RuntimeError(f"no results for {query!r} in {store_id}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller stores and fewer searches")
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    small, large = (2_000, 20_000) if args.quick else (10_000, 100_000)
    rounds = 20 if args.quick else 60
    rng = random.Random(7)
    sentences, queries = corpus_sentences(), questions()

    with ExitStack() as servers:
        small_server, large_server = (servers.enter_context(running_server()) for _ in range(2))
        clients = {
            size: openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0, timeout=120)
            for size, server in ((small, small_server), (large, large_server))
        }
        ingestion = measure_ingestion(clients[small], small_server)
        print(
            f"ingestion: {ingestion['files']} files, {ingestion['megabytes']:.2f} MB -> {ingestion['chunks']} chunks "
            f"in {ingestion['seconds']:.1f} s = {ingestion['chunks'] / ingestion['seconds']:.0f} chunks/s, "
            f"{ingestion['megabytes'] / ingestion['seconds']:.3f} MB/s"
        )
        stores = {}
        for size, server in ((small, small_server), (large, large_server)):
            started = time.perf_counter()
            stores[size] = fill_store(server, clients[size], size, sentences, rng)
            print(f"filled a store of {size:,} chunks in {time.perf_counter() - started:.1f} s")
        cold = {size: timed_search(clients[size], store, queries[0]) for size, store in stores.items()}
        latencies: dict[int, list[float]] = {small: [], large: []}
        for round_index in range(rounds):
            query = queries[round_index % len(queries)]
            order = [small, large]
            rng.shuffle(order)
            for size in order:
                latencies[size].append(timed_search(clients[size], stores[size], query))

    print(f"\nsearch latency (ms, hybrid, 10 results, {rounds} searches per server, SDK over loopback)")
    print(f"{'chunks':>10} {'first':>8} {'p50':>8} {'p99':>8}")
    for size in (small, large):
        values = latencies[size]
        print(f"{size:>10,} {cold[size]:8.1f} {percentile(values, 50):8.1f} {percentile(values, 99):8.1f}")
    ratio = percentile(latencies[large], 50) / percentile(latencies[small], 50)
    print(f"p50 ratio {large:,} / {small:,}: {ratio:.2f}  (goal <= 2.0: {verdict(ratio <= 2.0)})")
    return 0


if __name__ == "__main__":
    exit_with(main)
