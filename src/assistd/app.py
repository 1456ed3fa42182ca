"""create_app(settings): the FastAPI app, its middleware, error mapping and routers, wired to the store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from assistd import __version__, logs
from assistd.api import (
    assistants,
    errors,
    files,
    generation,
    health,
    messages,
    metrics,
    runs,
    threads,
    vector_stores,
)
from assistd.api.disconnect import AbandonOnDisconnect
from assistd.api.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from assistd.api.responses import JSONResponse
from assistd.clock import now
from assistd.config import Settings
from assistd.engines.base import SchemaBounds
from assistd.engines.registry import ConfigError, ModelRegistry, load_config
from assistd.errors import AssistdError
from assistd.runtime.components import Components
from assistd.services.container import Services

UPLOAD_FRAMING_BYTES = 64 * 1024
log = logging.getLogger(__name__)


def load_registry(settings: Settings) -> ModelRegistry:
    """Load every configured model (ConfigError names the entry or setting that failed)."""
    registry = ModelRegistry.from_config(
        load_config(settings.models_file),
        created=now(),
        openai_aliases=settings.openai_aliases,
        embedding_model=settings.embedding_model,
        schema_bounds=SchemaBounds(
            max_depth=settings.schema_max_depth,
            max_repetition=settings.schema_max_repetition,
            max_enum_values=settings.schema_max_enum_values,
            max_subschemas=settings.schema_max_subschemas,
            max_grammar_characters=settings.schema_max_grammar_characters,
        ),
    )
    try:
        registry.embedding(settings.embedding_model)
    except AssistdError as exc:
        raise ConfigError(
            f"ASSISTD_EMBEDDING_MODEL: {exc.message} Name an embedding model of the models file."
        ) from exc
    for line in registry.aliases.describe():
        log.info("model names %s", line)
    return registry


def create_app(settings: Settings | None = None, registry: ModelRegistry | None = None) -> FastAPI:
    """The app. `registry` holds the loaded models; without one, they are loaded from the settings at start-up."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        models = registry or load_registry(settings)
        parts = Components.build(settings, models, with_worker=settings.embedded_worker)
        app.state.services = Services.build(
            parts.db,
            settings,
            models,
            parts.bus,
            parts.blobs,
            parts.retriever,
            parts.wake_worker,
            parts.limits,
            parts.usage,
            parts.start_run_directly,
        )
        if parts.worker is not None:
            parts.worker.start()
        try:
            yield
        finally:
            await parts.close()
            await models.close()

    app = FastAPI(
        title="assistd",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        default_response_class=JSONResponse,
    )
    app.state.settings = settings
    errors.install(app)
    # runs first: POST /v1/threads/runs must not be taken for POST /v1/threads/{thread_id}
    for router in (
        health.router,
        runs.router,
        assistants.router,
        threads.router,
        messages.router,
        generation.router,
        files.router,
        vector_stores.router,
    ):
        app.include_router(router)
    if settings.metrics:
        app.include_router(metrics.router)
    app.add_middleware(AbandonOnDisconnect, paths=generation.ANSWER_ONLY_PATHS)  # inside the body read timeout
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        # an upload's limit is its file's, plus room for the multipart framing and the other fields
        max_bytes_by_path={"/v1/files": settings.max_upload_bytes + UPLOAD_FRAMING_BYTES},
        read_timeout=settings.body_read_timeout_seconds,
    )
    app.add_middleware(RequestContextMiddleware)
    return app


def create_app_from_environment() -> FastAPI:
    """The app of one of several API processes (`assistd serve --workers N`): settings from the environment."""
    settings = Settings()
    logs.configure(settings.log_level)
    return create_app(settings)
