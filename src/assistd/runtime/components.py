"""The parts one process needs, built from the settings: store, event bus, blobs, retrieval, executor and
ingestion, and (when this process executes runs) a worker. `assistd serve` and `assistd worker` both build
them here, so both run the same code on the same configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistd.config import Settings
from assistd.engines.registry import ModelRegistry
from assistd.events.bus import EventBus, create_event_bus
from assistd.retrieval.search import Retriever
from assistd.runtime.executor import ExecutorSettings, RunExecutor
from assistd.runtime.ingestion import Ingestor
from assistd.runtime.worker import DirectStart, Worker
from assistd.services.limits import LimitService
from assistd.services.usage import UsageService
from assistd.store.blobs import BlobStore, open_blob_store
from assistd.store.database import Database
from assistd.tools.file_search import FileSearch
from assistd.tools.registry import run_tools


@dataclass
class Components:
    settings: Settings
    db: Database
    bus: EventBus
    blobs: BlobStore
    retriever: Retriever
    limits: LimitService
    usage: UsageService
    worker: Worker | None

    @classmethod
    def build(cls, settings: Settings, models: ModelRegistry, *, with_worker: bool) -> Components:
        """Everything wired; the worker (if any) is not started yet."""
        db = Database.from_settings(settings)
        worker_in_process = with_worker and settings.api_processes == 1
        bus = create_event_bus(settings.redis_url, db, worker_in_process=worker_in_process)
        blobs = open_blob_store(settings, db)
        embedder = models.embedding(settings.embedding_model)
        retriever = Retriever(db, embedder)
        limits = LimitService.from_settings(db, settings)
        usage = UsageService(db, limits)
        worker = None
        if with_worker:
            executor = RunExecutor(
                db,
                models,
                bus,
                ExecutorSettings(
                    settings.run_lease_seconds, settings.tool_output_timeout_seconds, settings.max_tool_rounds
                ),
                run_tools(FileSearch(db, retriever)),
                usage,
            )
            worker = Worker(
                executor,
                Ingestor.from_settings(settings, db, blobs, embedder),
                concurrency=settings.worker_concurrency,
                ingest_concurrency=settings.ingest_concurrency,
                lease_seconds=settings.run_lease_seconds,
            )
        return cls(settings, db, bus, blobs, retriever, limits, usage, worker)

    def wake_worker(self, *, runs: bool = True, files: bool = True) -> None:
        """Tell this process's worker that a run, files to ingest, or both were queued (other processes' workers
        poll)."""
        if self.worker is not None:
            self.worker.wake(runs=runs, files=files)

    def start_run_directly(self) -> DirectStart | None:
        """A slot of this process's worker for a run being created, when it would take the run at once (see
        runtime/worker.py); None otherwise, or without a worker."""
        return self.worker.start_directly() if self.worker is not None else None

    async def close(self) -> None:
        """Stop the worker (its runs are released to other workers), then the bus and the store."""
        if self.worker is not None:
            await self.worker.stop()
        await self.bus.close()
        await self.limits.close()
        await self.db.dispose()
