"""When the worker loop looks at its queues: at once when woken, not again for a run that merely ended, and at
overdue tool outputs once a second."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from assistd.engines.base import Chunk, Usage
from assistd.engines.registry import ModelRegistry
from assistd.errors import NotFound
from assistd.retrieval.chunking import TokenChunker
from assistd.runtime import worker as worker_module
from assistd.runtime.executor import ExecutorSettings, RunExecutor
from assistd.runtime.ingestion import Ingestor
from assistd.runtime.recorder import RunRecorder
from assistd.runtime.worker import Worker
from assistd.schemas.runs import RunCreate
from assistd.services.buckets import MemoryBuckets
from assistd.services.limit_settings import NO_LIMITS
from assistd.services.limits import LimitService
from assistd.services.principal import Principal
from assistd.services.runs import RunService
from assistd.store import tables
from assistd.store.blobs import LocalBlobStore
from assistd.store.database import Database
from assistd.store.migrate import upgrade
from assistd.store.queue import IngestQueue, RunQueue
from assistd.store.repositories import RunRepository
from tests.fakes import ScriptedEngine
from tests.unit.test_fair_queues import Timeline, _complete, _runs
from tests.unit.test_ingestion import CountingEmbedder, _project
from tests.unit.test_run_states import setup_run


@pytest.fixture()
def db_url(tmp_path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}"
    upgrade(url)
    return url


def _counting(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the worker claims runs and files, looks for overdue tool outputs and reads a run's steps, from
    now on."""
    calls: Counter[str] = Counter()
    for name, owner, method in [
        ("runs", RunQueue, "claim_next"),
        ("files", IngestQueue, "claim_next"),
        ("overdue", RunQueue, "overdue_actions"),
        ("steps", RunRecorder, "steps"),
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


async def _until_idle(worker: Worker) -> None:
    """Wait until the worker has finished its first round and waits between rounds (it gives a slot then)."""
    deadline = time.monotonic() + 10
    while (slot := worker.start_directly()) is None:
        assert time.monotonic() < deadline, "the worker never came to rest"
        await asyncio.sleep(0.01)
    slot.release()


def test_a_woken_worker_takes_a_run_at_once_and_does_not_look_again_when_it_ends(db_url, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(worker_module, "IDLE_POLL_SECONDS", 30.0)  # no polling during the test
    calls = _counting(monkeypatch)

    async def scenario() -> tuple[float, Counter[str]]:
        db, timeline = Database(db_url), Timeline()
        worker = _worker(db, timeline, tmp_path)
        worker.start()
        try:
            await _until_idle(worker)  # the first round: nothing queued
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
    assert seen["runs"] == 1  # the run, alone in the queue: nothing to look for after it, nor when it ends
    assert seen["files"] == 1
    assert seen["overdue"] == 0  # looked for in the first round, and not again within the second
    assert seen["steps"] == 1  # a claimed run may have steps (a round after tool outputs)


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


# -- a run created while the worker is idle starts at its creation, without a claim ---------------------------


def _run_service(db: Database, worker: Worker, bus) -> RunService:
    limits = LimitService(db, NO_LIMITS, MemoryBuckets())
    return RunService(db, worker.executor.registry, bus, worker.wake, limits, worker.start_directly)


async def _idle_thread(db: Database) -> tuple[Principal, str, str]:
    """A thread with one user message, and an assistant; the run setup_run queued with them has ended."""
    run = await setup_run(db, assistant_metadata={})
    await _complete(db, run.id)
    return Principal(project_id=run.project_id, key_id="test"), run.thread_id, run.assistant_id


def test_a_run_created_while_the_worker_is_idle_starts_there_without_a_claim(db_url, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(worker_module, "IDLE_POLL_SECONDS", 30.0)
    calls = _counting(monkeypatch)

    async def scenario() -> tuple[dict, tables.Run, float, Counter[str]]:
        db, timeline = Database(db_url), Timeline()
        principal, thread_id, assistant_id = await _idle_thread(db)
        worker = _worker(db, timeline, tmp_path)
        service = _run_service(db, worker, timeline)
        worker.start()
        try:
            await _until_idle(worker)  # the first round: nothing queued
            calls.clear()
            created = time.monotonic()
            started = await service.create(
                principal, thread_id, RunCreate(assistant_id=assistant_id), idempotency_key=None, stream=False
            )
            while not timeline.completed and time.monotonic() - created < 10:
                await asyncio.sleep(0.01)
            while True:  # the worker lets go of the lease just after the run ends
                async with db.read() as session:
                    row = await RunRepository(session, principal.project_id).get(started.run["id"])
                if row.lease_owner is None or time.monotonic() - created > 10:
                    break
                await asyncio.sleep(0.01)
            return started.run, row, timeline.completed[0][0] - created, Counter(calls)
        finally:
            await worker.stop()
            await db.dispose()

    body, row, seconds, seen = asyncio.run(scenario())
    assert body["status"] == "queued" and body["started_at"] is None  # what the caller sees, as OpenAI shows it
    assert (row.status, row.attempts, row.lease_owner) == ("completed", 1, None)
    assert row.started_at is not None and seconds < 2
    assert seen["runs"] == 0, "the worker took the run at its creation: nothing to claim"
    assert seen["steps"] == 0, "a run created just now has no steps to read"


def test_a_worker_gives_a_slot_only_when_idle_with_room_and_nothing_waiting(db_url, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(worker_module, "IDLE_POLL_SECONDS", 30.0)

    async def scenario() -> list[bool]:
        db = Database(db_url)
        engine = ScriptedEngine()
        executor = RunExecutor(db, ModelRegistry({"fake": engine}), Timeline(), ExecutorSettings(30, 600))
        ingestor = Ingestor(db, LocalBlobStore(tmp_path / "files"), CountingEmbedder(), TokenChunker(), 30)
        worker = Worker(executor, ingestor, concurrency=1, ingest_concurrency=1, lease_seconds=30)
        seen = [worker.start_directly() is not None]  # not started
        worker.start()
        try:
            await _until_idle(worker)
            slot = worker.start_directly()
            seen += [slot is not None, worker.start_directly() is not None]  # one slot: held
            assert slot is not None
            slot.release()
            seen.append(worker.start_directly() is not None)  # given back (and held again)
            worker.wake()  # something was queued: the worker looks first
            seen.append(worker.start_directly() is not None)
            return seen
        finally:
            await worker.stop()
            await db.dispose()

    assert asyncio.run(scenario()) == [False, True, False, True, False]


def test_a_failed_create_gives_the_slot_back(db_url, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(worker_module, "IDLE_POLL_SECONDS", 30.0)

    async def scenario() -> bool:
        db = Database(db_url)
        principal, thread_id, _assistant_id = await _idle_thread(db)
        worker = _worker(db, Timeline(), tmp_path)
        worker.concurrency = 1
        service = _run_service(db, worker, Timeline())
        worker.start()
        try:
            await _until_idle(worker)
            with pytest.raises(NotFound):
                await service.create(
                    principal, thread_id, RunCreate(assistant_id="asst_missing"), idempotency_key=None, stream=False
                )
            return worker.start_directly() is not None
        finally:
            await worker.stop()
            await db.dispose()

    assert asyncio.run(scenario()), "the worker's one slot is free again"
