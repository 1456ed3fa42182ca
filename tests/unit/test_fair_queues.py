"""Claims are fair to projects: a backlog of one project does not hold back another's job (runs and files to
ingest), over a real SQLite store; the run worker drives the scripted engine."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import update

from assistd.clock import now
from assistd.engines.base import Chunk, Usage
from assistd.engines.registry import ModelRegistry
from assistd.events.bus import LocalEventBus
from assistd.ids import new_id
from assistd.retrieval.chunking import TokenChunker
from assistd.runtime.executor import ExecutorSettings, RunExecutor
from assistd.runtime.ingestion import Ingestor
from assistd.runtime.worker import Worker
from assistd.store import tables
from assistd.store.blobs import LocalBlobStore
from assistd.store.database import Database
from assistd.store.queue import IngestQueue, RunQueue
from tests.fakes import ScriptedEngine
from tests.unit.test_ingestion import CountingEmbedder, _file, _project, _queue


@pytest.fixture()
def db_url(sqlite_url) -> str:
    return sqlite_url


async def _runs(db: Database, project_id: str, count: int) -> list[str]:
    """`count` queued runs of the project, each on a thread of its own with one user message."""
    ids = []
    async with db.write() as session:
        for _ in range(count):
            thread = tables.Thread(
                id=new_id("thread"), project_id=project_id, created_at=now(), metadata_={}, tool_resources=None
            )
            session.add(thread)
            await session.flush()  # no ORM relationships order the inserts
            session.add(
                tables.Message(
                    id=new_id("message"),
                    project_id=project_id,
                    thread_id=thread.id,
                    created_at=now(),
                    role="user",
                    status="completed",
                    content=[{"type": "text", "text": {"value": "hello", "annotations": []}}],
                    metadata_={},
                )
            )
            run = tables.Run(
                id=new_id("run"),
                project_id=project_id,
                thread_id=thread.id,
                assistant_id="asst_x",
                created_at=now(),
                status="queued",
                model="fake",
                instructions="be brief",
                tools=[],
                metadata_={},
                parallel_tool_calls=True,
                truncation_strategy={"type": "auto", "last_messages": None},
                attempts=0,
            )
            session.add(run)
            ids.append(run.id)
    return ids


async def _complete(db: Database, run_id: str) -> None:
    async with db.write() as session:
        await session.execute(
            update(tables.Run)
            .where(tables.Run.id == run_id)
            .values(status="completed", lease_owner=None, lease_expires_at=None)
        )


def test_a_backlog_does_not_hold_back_another_projects_run(db_url) -> None:
    """A queued 200 runs, then B one: the second claim, by another worker, is B's (A already has one leased,
    counted in the store), and a claim stays cheap with the backlog."""

    async def scenario() -> None:
        db = Database(db_url)
        a, b = await _project(db), await _project(db)
        backlog = await _runs(db, a, 200)
        (b_run,) = await _runs(db, b, 1)
        first_worker, second_worker = RunQueue(db), RunQueue(db)
        started = time.perf_counter()
        first = await first_worker.claim("w1", time.time(), 30)
        claim_seconds = time.perf_counter() - started
        second = await second_worker.claim("w2", time.time(), 30)
        third = await second_worker.claim("w2", time.time(), 30)
        await db.dispose()
        assert first.id == backlog[0], "equal shares: the oldest job first"
        assert second.id == b_run, "B has no run under way, A has one: B's turn"
        assert third.id == backlog[1]
        assert claim_seconds < 0.5, f"a claim over 200 queued runs took {claim_seconds:.3f} s"

    asyncio.run(scenario())


def test_equal_shares_take_turns_by_the_project_served_least_recently(db_url) -> None:
    async def scenario() -> list[str]:
        db = Database(db_url)
        a, b = await _project(db), await _project(db)
        await _runs(db, a, 3)
        await _runs(db, b, 3)
        queue, order = RunQueue(db), []
        while (run := await queue.claim("w1", time.time(), 30)) is not None:
            order.append(run.project_id)
            await _complete(db, run.id)
        await db.dispose()
        return [{a: "A", b: "B"}[project] for project in order]

    assert asyncio.run(scenario()) == ["A", "B", "A", "B", "A", "B"]


def test_a_claim_says_whether_other_jobs_were_waiting(db_url) -> None:
    """The worker stops looking after the last job: a claim tells it, over all projects."""

    async def scenario() -> list[bool | None]:
        db = Database(db_url)
        a, b = await _project(db), await _project(db)
        await _runs(db, a, 2)
        await _runs(db, b, 1)
        queue, seen = RunQueue(db), []
        for _ in range(4):
            claimed = await queue.claim_next("w1", time.time(), 30)
            seen.append(None if claimed.job is None else claimed.others_waiting)
        await db.dispose()
        return seen

    assert asyncio.run(scenario()) == [True, True, False, None]


class Timeline(LocalEventBus):
    """When each run completed."""

    def __init__(self) -> None:
        super().__init__()
        self.completed: list[tuple[float, str]] = []

    def publish(self, run_id: str, name: str, data: dict) -> None:
        if name == "thread.run.completed":
            self.completed.append((time.monotonic(), run_id))


def test_a_worker_interleaves_another_projects_run_into_a_backlog(db_url, tmp_path) -> None:
    """A worker running two runs at a time; A queued 30 runs, then B one: B's completes after at most three of
    A's (first-in-first-out it would wait for all 30)."""

    async def scenario() -> tuple[list[str], str, list[str]]:
        db = Database(db_url)
        engine = ScriptedEngine()
        engine.script = [Chunk(text="ok"), Chunk(finish_reason="stop", usage=Usage(5, 1))]
        engine.delay = 0.05
        timeline = Timeline()
        executor = RunExecutor(db, ModelRegistry({"fake": engine}), timeline, ExecutorSettings(30, 600))
        ingestor = Ingestor(db, LocalBlobStore(tmp_path / "files"), CountingEmbedder(), TokenChunker(), 30)
        worker = Worker(executor, ingestor, concurrency=2, ingest_concurrency=1, lease_seconds=30)
        a, b = await _project(db), await _project(db)
        await _runs(db, a, 30)
        (b_run,) = await _runs(db, b, 1)
        start = time.monotonic()
        worker.start()
        try:
            while b_run not in [run_id for _, run_id in timeline.completed] and time.monotonic() - start < 60:
                await asyncio.sleep(0.05)
        finally:
            await worker.stop()
            await db.dispose()
        done = [run_id for _, run_id in timeline.completed]
        steps = [f"{at - start:.2f}s {'B' if run_id == b_run else 'A'}" for at, run_id in timeline.completed]
        return done, b_run, steps

    done, b_run, steps = asyncio.run(scenario())
    assert b_run in done, steps
    assert done.index(b_run) <= 3, f"B's run completed after {done.index(b_run)} of A's: {steps}"


def test_another_projects_file_is_ingested_before_a_backlog(db_url, tmp_path) -> None:
    """A put 10 files into a vector store, then B one: one worker ingesting a file at a time takes B's second."""

    async def scenario() -> tuple[list[str], str]:
        db = Database(db_url)
        blobs = LocalBlobStore(tmp_path / "files")
        ingestor = Ingestor(db, blobs, CountingEmbedder(), TokenChunker(), lease_seconds=30)
        a, b = await _project(db), await _project(db)
        a_files = [await _file(db, blobs, a, f"a{i}.txt", b"a passage of text " * 20) for i in range(10)]
        await _queue(db, a, a_files)
        b_file = await _file(db, blobs, b, "b.txt", b"the other project's one file")
        await _queue(db, b, [b_file])
        queue, order = IngestQueue(db), []
        while (job := await queue.claim("w1", time.time(), 30)) is not None:
            await ingestor.ingest(job, "w1")
            order.append(job.id)
        await db.dispose()
        return order, b_file

    order, b_file = asyncio.run(scenario())
    assert len(order) == 11 and order.index(b_file) == 1, order
