"""The services one app (or worker) uses, built once over one Database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from assistd.config import Settings
from assistd.engines.registry import ModelRegistry
from assistd.events.bus import EventBus
from assistd.retrieval.search import Retriever
from assistd.services.assistants import AssistantService
from assistd.services.files import FileService
from assistd.services.generation import GenerationService
from assistd.services.limits import LimitService
from assistd.services.messages import MessageService
from assistd.services.projects import ProjectService
from assistd.services.runs import RunService, RunStart
from assistd.services.threads import ThreadService
from assistd.services.usage import UsageService
from assistd.services.vector_store_service import VectorStoreService
from assistd.store.blobs import BlobStore
from assistd.store.database import Database


@dataclass(frozen=True)
class Services:
    db: Database
    projects: ProjectService
    assistants: AssistantService
    threads: ThreadService
    messages: MessageService
    generation: GenerationService
    runs: RunService
    files: FileService
    vector_stores: VectorStoreService
    limits: LimitService
    usage: UsageService
    bus: EventBus

    @classmethod
    def build(
        cls,
        db: Database,
        settings: Settings,
        registry: ModelRegistry,
        bus: EventBus,
        blobs: BlobStore,
        retriever: Retriever,
        wake: Callable[[], None],
        limits: LimitService,
        usage: UsageService,
        start_run_directly: Callable[[], RunStart | None],
    ) -> Services:
        """The services; `start_run_directly` gives a slot of this process's worker for a run being created,
        when it has one to give (see services/runs.py)."""
        return cls(
            db=db,
            projects=ProjectService(db, auth_cache_seconds=settings.auth_cache_seconds),
            assistants=AssistantService(db, wake),
            threads=ThreadService(db, wake),
            messages=MessageService(db, wake),
            generation=GenerationService(registry, usage),
            runs=RunService(db, registry, bus, wake, limits, start_run_directly),
            files=FileService(db, blobs, settings.max_upload_bytes, limits),
            vector_stores=VectorStoreService(db, blobs, retriever, wake, settings.ingest_max_characters),
            limits=limits,
            usage=usage,
            bus=bus,
        )
