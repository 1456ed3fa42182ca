"""Retrieval quality of assistd's vector store search: hybrid, full-text only and vectors only, side by side.

Starts `python -m assistd serve` on a free 127.0.0.1 port with a temporary data directory (stopped and removed at
the end, on errors, Ctrl-C and SIGTERM too). With the official `openai` SDK it uploads every file of
bench/corpus/docs/ (client.files.create, purpose="assistants"), adds them all to one vector store
(client.vector_stores.file_batches.create_and_poll), then asks each question of bench/corpus/questions.jsonl with
client.vector_stores.search(max_num_results=10) once per ranking mode, the modes taking turns question by question:

    hybrid      the server's default ranking (no ranking_options: rank fusion, vectors 1, full text 0.5)
    full-text   ranking_options={"hybrid_search": {"embedding_weight": 0, "text_weight": 1}}
    vector      embedding_weight 1, text_weight 0

(`hybrid_search` is an assistd extension of the search endpoint, with the weights of the file_search tool's
ranking options.) A result is a hit when its filename is the question's answer_file; a question's rank is the
position (1-based, among the returned results, which are chunks: one file may fill several places) of its first
hit, or none when the answer file is not among the 10 results. The corpus is a fictional company's customer-service
documentation; see bench/corpus/README.md for how the questions are built and checked.

How to read the output:
- recall@1, recall@5: the share of questions whose answer file is the first result, or among the first five.
- MRR@10: the mean over questions of 1/rank (0 when the answer file is not among the 10 results); 1.0 is perfect.
- by kind: "keyword" questions use the answer document's rare terms, codes and names (where full-text search is at
  home), "paraphrase" questions share no rare term with it (where vectors are at home), "mixed" are in between.
- hybrid / full-text and hybrid / vector: ratios of recall@5 and of MRR@10 over all questions; 1.00 or more means
  hybrid is at least as good. Goal: hybrid >= both other modes on both (met / missed).
- ingestion: seconds from the first upload to the completed batch (uploads, then the server's parsing, chunking
  and embedding), files, bytes and chunks (counted in the server's database: the API does not report them).
- search p50: median latency of one search call per mode, as the client sees it.

Usage: python bench/retrieval.py [--quick] [--database-url URL] [--self-test]
  --quick         ask only the first 30 questions (the file interleaves the kinds, so they stay balanced)
  --database-url  the server's store (ASSISTD_DATABASE_URL), an empty database, e.g. PostgreSQL:
                  postgresql+asyncpg://... (tsvector and pgvector search); by default SQLite in the data directory
  --self-test     check the metric functions (doctests) offline, without a server, and exit
Exit status 0 when the measurements completed, goal met or not; non-zero on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import doctest
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import openai
from _server import exit_with, percentile, running_server
from sqlalchemy import func, select

from assistd.store import tables
from assistd.store.database import Database

CORPUS = Path(__file__).resolve().parent / "corpus"
DOCS = CORPUS / "docs"
QUESTIONS = CORPUS / "questions.jsonl"
KINDS = ("keyword", "paraphrase", "mixed")
MAX_RESULTS = 10
RECALL_DEPTHS = (1, 5)
GOAL_DEPTH = 5  # the goal compares recall@5 and MRR@10
QUICK_QUESTIONS = 30
POLL_INTERVAL_MS = 100


@dataclass(frozen=True)
class Mode:
    """A ranking mode: the rank-fusion weights of the embedding and full-text lists (None: the server's default)."""

    name: str
    embedding_weight: float | None = None
    text_weight: float | None = None

    @property
    def weights_label(self) -> str:
        if self.embedding_weight is None or self.text_weight is None:
            return "default"
        return f"{self.embedding_weight:g} / {self.text_weight:g}"

    @property
    def ranking_options(self) -> dict[str, object] | openai.NotGiven:
        if self.embedding_weight is None or self.text_weight is None:
            return openai.NOT_GIVEN
        return {"hybrid_search": {"embedding_weight": self.embedding_weight, "text_weight": self.text_weight}}


HYBRID = Mode("hybrid")
FULL_TEXT = Mode("full-text", 0, 1)
VECTOR = Mode("vector", 1, 0)
MODES = (HYBRID, FULL_TEXT, VECTOR)


@dataclass(frozen=True)
class Question:
    text: str
    kind: str
    answer_file: str


@dataclass(frozen=True)
class Ingestion:
    """What went into the vector store and how long it took."""

    store_id: str
    files: int
    bytes: int
    chunks: int
    upload_s: float
    batch_s: float


# ---------------------------------------------------------------------------------------------- metrics


def first_hit_rank(filenames: Sequence[str], answer_file: str) -> int | None:
    """The 1-based position of the first `answer_file` among the results' `filenames`, or None.

    >>> first_hit_rank(["a.md", "b.md", "b.md"], "b.md")
    2
    >>> first_hit_rank(["a.md", "c.md"], "b.md") is None
    True
    """
    for position, filename in enumerate(filenames, start=1):
        if filename == answer_file:
            return position
    return None


def recall_at(ranks: Sequence[int | None], depth: int) -> float:
    """The share of questions (one rank each, None for no hit) whose first hit is within the first `depth` results.

    >>> recall_at([1, 3, None, 6], 5)
    0.5
    >>> recall_at([1, 3, None, 6], 1)
    0.25
    """
    return sum(rank is not None and rank <= depth for rank in ranks) / len(ranks)


def mean_reciprocal_rank(ranks: Sequence[int | None], cutoff: int = MAX_RESULTS) -> float:
    """The mean of 1/rank over the questions, counting 0 for no hit within the first `cutoff` results.

    >>> mean_reciprocal_rank([1, 2, None, 4])
    0.4375
    >>> mean_reciprocal_rank([11, None], cutoff=10)
    0.0
    """
    return sum(1 / rank for rank in ranks if rank is not None and rank <= cutoff) / len(ranks)


def ratio(numerator: float, denominator: float) -> str:
    """`numerator / denominator` for the report, "n/a" when the denominator is 0.

    >>> ratio(0.9, 0.6), ratio(0.5, 0.0)
    ('1.50', 'n/a')
    """
    return "n/a" if denominator == 0 else f"{numerator / denominator:.2f}"


def goal_met(scores: dict[str, tuple[float, float]]) -> bool:
    """Whether hybrid's (recall@GOAL_DEPTH, MRR@10) is at least full-text's and vector's, on both metrics.

    >>> goal_met({"hybrid": (0.9, 0.8), "full-text": (0.9, 0.7), "vector": (0.8, 0.8)})
    True
    >>> goal_met({"hybrid": (0.9, 0.8), "full-text": (0.95, 0.7), "vector": (0.8, 0.8)})
    False
    """
    hybrid = scores[HYBRID.name]
    return all(hybrid[index] >= scores[mode.name][index] for mode in (FULL_TEXT, VECTOR) for index in (0, 1))


def self_test() -> int:
    """Run this module's doctests; 0 when they all pass."""
    failed, attempted = doctest.testmod(sys.modules[__name__])
    print(f"self-test: {attempted - failed} of {attempted} examples passed")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------- measuring


def load_questions() -> list[Question]:
    """The questions of questions.jsonl, in file order."""
    lines = [line for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    items = [json.loads(line) for line in lines]
    return [Question(item["question"], item["kind"], item["answer_file"]) for item in items]


def count_chunks(database_url: str, store_id: str) -> int:
    """The store's chunks, read from the server's database (the API has no count of them)."""

    async def count() -> int:
        db = Database(database_url)
        try:
            async with db.read() as session:
                query = select(func.count()).select_from(tables.Chunk).where(tables.Chunk.vector_store_id == store_id)
                return await session.scalar(query) or 0
        finally:
            await db.dispose()

    return asyncio.run(count())


def ingest(client: openai.OpenAI, database_url: str, paths: list[Path]) -> Ingestion:
    """Upload `paths`, add them to a new vector store in one batch and wait until it is done; fail on any failure."""
    started = time.perf_counter()
    file_ids = [client.files.create(file=path, purpose="assistants").id for path in paths]
    uploaded = time.perf_counter()
    store = client.vector_stores.create(name="retrieval benchmark")
    batch = client.vector_stores.file_batches.create_and_poll(
        store.id, file_ids=file_ids, poll_interval_ms=POLL_INTERVAL_MS
    )
    finished = time.perf_counter()
    if batch.status != "completed" or batch.file_counts.completed != len(file_ids):
        names = {file_id: path.name for file_id, path in zip(file_ids, paths, strict=True)}
        failed = client.vector_stores.files.list(store.id, filter="failed", limit=100)
        reasons = "; ".join(f"{names.get(item.id, item.id)}: {item.last_error}" for item in failed.data)
        raise RuntimeError(f"batch {batch.status}, file counts {batch.file_counts}; failed: {reasons or 'none listed'}")
    return Ingestion(
        store_id=store.id,
        files=len(paths),
        bytes=sum(path.stat().st_size for path in paths),
        chunks=count_chunks(database_url, store.id),
        upload_s=uploaded - started,
        batch_s=finished - uploaded,
    )


def search_all(
    client: openai.OpenAI, store_id: str, questions: list[Question]
) -> tuple[dict[str, list[int | None]], dict[str, list[float]]]:
    """({mode: rank per question}, {mode: seconds per search}); the modes' order rotates from question to question."""
    ranks: dict[str, list[int | None]] = {mode.name: [] for mode in MODES}
    seconds: dict[str, list[float]] = {mode.name: [] for mode in MODES}
    for index, question in enumerate(questions):
        shift = index % len(MODES)
        for mode in MODES[shift:] + MODES[:shift]:
            started = time.perf_counter()
            page = client.vector_stores.search(
                store_id,
                query=question.text,
                max_num_results=MAX_RESULTS,
                ranking_options=mode.ranking_options,  # type: ignore[arg-type]  # hybrid_search: assistd extension
            )
            seconds[mode.name].append(time.perf_counter() - started)
            ranks[mode.name].append(first_hit_rank([result.filename for result in page.data], question.answer_file))
    return ranks, seconds


# ---------------------------------------------------------------------------------------------- report


def report(
    questions: list[Question],
    total_questions: int,
    ranks: dict[str, list[int | None]],
    seconds: dict[str, list[float]],
    ingestion: Ingestion,
    total_s: float,
) -> str:
    """The summary table, as printed."""
    groups = [("all", list(range(len(questions))))]
    for kind in KINDS:
        indexes = [index for index, question in enumerate(questions) if question.kind == kind]
        if indexes:
            groups.append((kind, indexes))
    header = "".join(f"{'recall@' + str(depth):>10}" for depth in RECALL_DEPTHS) + f"{'MRR@' + str(MAX_RESULTS):>10}"
    lines = [
        "",
        "=" * 100,
        f"assistd retrieval benchmark: {len(questions)} of {total_questions} questions, {len(MODES)} ranking modes",
        f"command  : {shlex.join([sys.executable, *sys.argv])}",
        f"machine  : {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs,"
        f" Python {platform.python_version()}; server and client share it",
        f"ingestion: {ingestion.files} files, {ingestion.bytes:,} bytes, {ingestion.chunks:,} chunks in"
        f" {ingestion.upload_s + ingestion.batch_s:.1f} s (uploads {ingestion.upload_s:.1f} s, batch until completed"
        f" {ingestion.batch_s:.1f} s)",
        "",
        f"   {'questions':<18}{'mode':<11}{'weights e/t':>12}{header}",
    ]
    scores: dict[str, tuple[float, float]] = {}
    for group, indexes in groups:
        for position, mode in enumerate(MODES):
            mode_ranks = [ranks[mode.name][index] for index in indexes]
            recalls = [recall_at(mode_ranks, depth) for depth in RECALL_DEPTHS]
            mrr = mean_reciprocal_rank(mode_ranks)
            if group == "all":
                scores[mode.name] = (recall_at(mode_ranks, GOAL_DEPTH), mrr)
            label = f"{group} ({len(indexes)})" if position == 0 else ""
            weights = mode.weights_label
            values = "".join(f"{value:>10.3f}" for value in [*recalls, mrr])
            lines.append(f"   {label:<18}{mode.name:<11}{weights:>12}{values}")
    hybrid = scores[HYBRID.name]
    for other in (FULL_TEXT, VECTOR):
        lines.append(
            f"   hybrid / {other.name + ':':<11} recall@{GOAL_DEPTH} {ratio(hybrid[0], scores[other.name][0])},"
            f" MRR@{MAX_RESULTS} {ratio(hybrid[1], scores[other.name][1])}"
        )
    met = goal_met(scores)
    lines += [
        f"   goal hybrid >= both (recall@{GOAL_DEPTH} and MRR@{MAX_RESULTS}, all questions):"
        f" {'met' if met else 'missed'}",
        "   search p50: "
        + ", ".join(f"{mode.name} {percentile(seconds[mode.name], 50) * 1000:.1f} ms" for mode in MODES),
        "",
        f"total {total_s:.1f} s",
        "=" * 100,
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"ask only the first {QUICK_QUESTIONS} questions")
    parser.add_argument("--database-url", help="the server's store, an empty database (default: SQLite)")
    parser.add_argument("--self-test", action="store_true", help="check the metric functions offline and exit")
    arguments = parser.parse_args()
    if arguments.self_test:
        return self_test()
    if arguments.database_url:
        os.environ["ASSISTD_DATABASE_URL"] = arguments.database_url  # the server inherits the environment
    all_questions = load_questions()
    questions = all_questions[:QUICK_QUESTIONS] if arguments.quick else all_questions
    paths = sorted(path for path in DOCS.iterdir() if path.is_file())
    started = time.perf_counter()
    with running_server() as server:
        client = openai.OpenAI(api_key=server.api_key, base_url=f"{server.base_url}/v1", max_retries=0, timeout=120)
        try:
            print(f"server on {server.base_url}; ingesting {len(paths)} files ...", flush=True)
            database_url = arguments.database_url or f"sqlite+aiosqlite:///{server.database_path}"
            ingestion = ingest(client, database_url, paths)
            print(f"asking {len(questions)} questions in {len(MODES)} modes ...", flush=True)
            ranks, seconds = search_all(client, ingestion.store_id, questions)
        finally:
            client.close()
    print(report(questions, len(all_questions), ranks, seconds, ingestion, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    exit_with(main)
