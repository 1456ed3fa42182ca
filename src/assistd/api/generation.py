"""/v1/chat/completions, /v1/completions, /v1/engines/{engine}/completions, /v1/embeddings, /v1/models"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from assistd.api import sse
from assistd.api.deps import Caller, GeneratingCaller, ServicesDep
from assistd.api.documented import ERRORS, returns, streams
from assistd.errors import InvalidRequest
from assistd.protocol import wire
from assistd.protocol.common import inline_schema
from assistd.protocol.generation import (
    ChatCompletion,
    ChatCompletionChunk,
    EmbeddingList,
    Model,
    ModelList,
    TextCompletion,
    TextCompletionChunk,
)
from assistd.schemas.chat import ChatCompletionCreate
from assistd.schemas.completions import CompletionCreate
from assistd.schemas.embeddings import EmbeddingCreate
from assistd.services.generation import error_event
from assistd.services.principal import Principal

router = APIRouter(prefix="/v1", tags=["models"], responses=ERRORS)
# The routes whose only product is their answer: when the client goes, their work stops (api/disconnect.py).
ANSWER_ONLY_PATHS = re.compile(r"/v1/(chat/completions|completions|engines/[^/]+/completions|embeddings)/?")
TEXT_COMPLETION_OR_EVENTS = streams(TextCompletion, inline_schema(TextCompletionChunk))


def _sse(objects: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def messages() -> AsyncIterator[bytes]:
        try:
            async for item in objects:
                yield sse.encode(item)
        except Exception as exc:  # after the 200: the error travels inside the stream
            yield sse.encode(error_event(exc))
        yield sse.encode(sse.DONE)

    return sse.response(messages())


@router.post("/chat/completions", **streams(ChatCompletion, inline_schema(ChatCompletionChunk)))
async def create_chat_completion(
    body: ChatCompletionCreate, caller: GeneratingCaller, services: ServicesDep
) -> dict[str, Any] | StreamingResponse:
    if body.stream:
        return _sse(await services.generation.chat_stream(caller, body))
    return await services.generation.chat(caller, body)


async def _complete(
    caller: Principal, body: CompletionCreate, model: str, services
) -> dict[str, Any] | StreamingResponse:
    if body.stream:
        return _sse(await services.generation.complete_stream(caller, body, model))
    return await services.generation.complete(caller, body, model)


@router.post("/completions", **TEXT_COMPLETION_OR_EVENTS)
async def create_completion(
    body: CompletionCreate, caller: GeneratingCaller, services: ServicesDep
) -> dict[str, Any] | StreamingResponse:
    if body.model is None:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    return await _complete(caller, body, body.model, services)


@router.post("/engines/{engine}/completions", **TEXT_COMPLETION_OR_EVENTS)
async def create_engine_completion(
    engine: str, body: CompletionCreate, caller: GeneratingCaller, services: ServicesDep
) -> dict[str, Any] | StreamingResponse:
    """The pre-2023 path: the engine in the path is the model (a `model` in the body wins, as it names the same)."""
    return await _complete(caller, body, body.model or engine, services)


@router.post("/embeddings", **returns(EmbeddingList))
async def create_embeddings(body: EmbeddingCreate, caller: GeneratingCaller, services: ServicesDep) -> dict[str, Any]:
    return await services.generation.embed(caller, body)


@router.get("/models", **returns(ModelList))
async def list_models(_caller: Caller, services: ServicesDep) -> dict[str, Any]:
    return wire.model_list(services.generation.registry.describe_all())


@router.get("/models/{model:path}", **returns(Model))
async def retrieve_model(model: str, _caller: Caller, services: ServicesDep) -> dict[str, Any]:
    return services.generation.registry.describe(model)
