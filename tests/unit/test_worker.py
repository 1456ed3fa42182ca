"""When the worker loop looks at its queues: at once when woken, not again for a run that merely ended, and at
overdue tool outputs once a second."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from assistd.engines.base import Chunk, Usage
from assistd.engines.registry import ModelRegistry
from assistd.retrieval.chunking import TokenChunker
from assistd.runtime import worker as worker_module
from assistd.runtime.executor import ExecutorSettings, RunExecutor
from assistd.runtime.ingestion import Ingestor
from assistd.runtime.worker import Worker
from assistd.store.blobs import LocalBlobStore
from assistd.store.database import Database
from assistd.store.migrate import upgrade
from assistd.store.queue import IngestQueue, RunQueue
from tests.fakes import ScriptedEngine
from tests.unit.test_fair_queues import Timeline, _runs
from tests.unit.test_ingestion import CountingEmbedder, _project


@pytest.fixture()
def db_url(tmp_path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}"
    upgrade(url)
    return url


def _counting(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the worker claims runs and files and looks for overdue tool outputs, from now on."""
    calls: Counter[str] = Counter()
    for name, owner, method in [
        ("runs", RunQueue, "claim"),
        ("files", IngestQueue, "claim"),
        ("overdue", RunQueue, "overdue_actions"),
    ]:
        original = getattr(owner, method)

        async def counted(self, *args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return await _original(self, *args, **kwargs)

        monkeypatch.setattr(owner, method, counted)
    return calls


def _worker(db: Database, timeline: Timeline, tmp_path) -> Worker:
    engine = ScriptedEngine()
    engine.script = [Chunk(text="ok"), Chunk(finish_reason="stop", usage=Usage(5, 1))]
    executor = RunExecutor(db, ModelRegistry({"fake": engine}), timeline, ExecutorSettings(30, 600))
    ingestor = Ingestor(db, LocalBlobStore(tmp_path / "files"), CountingEmbedder(), TokenChunker(), 30)
    return Worker(executor, ingestor, concurrency=2, ingest_concurrency=1, lease_seconds=30)


def test_a_woken_worker_takes_a_run_at_once_and_does_not_look_again_when_it_ends(db_url, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(worker_module, "IDLE_POLL_SECONDS", 30.0)  # no polling during the test
    calls = _counting(monkeypatch)

    async def scenario() -> tuple[float, Counter[str]]:
        db, timeline = Database(db_url), Timeline()
        worker = _worker(db, timeline, tmp_path)
        worker.start()
        try:
            await asyncio.sleep(0.2)  # the first round: nothing queued
            calls.clear()
            await _runs(db, await _project(db), 1)
            queued = time.monotonic()
            worker.wake()
            while not timeline.completed and time.monotonic() - queued < 10:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # the run's end wakes the loop
            return timeline.completed[0][0] - queued, Counter(calls)
        finally:
            await worker.stop()
            await db.dispose()

    seconds, seen = asyncio.run(scenario())
    assert seconds < 2
    assert seen["runs"] == 2  # the run, then none left; its end frees a slot but queues nothing
    assert seen["files"] == 1
    assert seen["overdue"] == 0  # looked for in the first round, and not again within the second


def test_an_idle_worker_polls_its_queues_and_overdue_outputs_at_their_intervals(db_url, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(worker_module, "IDLE_POLL_SECONDS", 0.1)
    calls = _counting(monkeypatch)

    async def scenario() -> Counter[str]:
        db = Database(db_url)
        worker = _worker(db, Timeline(), tmp_path)
        worker.start()
        try:
            await asyncio.sleep(1.5)
            return Counter(calls)
        finally:
            await worker.stop()
            await db.dispose()

    seen = asyncio.run(scenario())
    assert 8 <= seen["runs"] <= 16 and 8 <= seen["files"] <= 16  # every 0.1 s
    assert seen["overdue"] == 2  # at the start and a second later
